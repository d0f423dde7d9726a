"""The console every ``kgzoo`` command prints with (rich), in a module of its own: the command line
imports it before it knows which command runs, so it imports nothing of kgzoo's."""
from __future__ import annotations

import os
from typing import IO, Any

#: the width of a console that is no terminal (a log file, a pipe, CI): wider than any table or
#: line, so each prints at its natural width instead of folding at rich's default of 80 columns
PIPE_WIDTH = 100_000


def console(stderr: bool = False, file: IO[str] | None = None) -> Any:
    """The :class:`rich.console.Console` a ``kgzoo`` command prints with (tables, progress lines).

    In a terminal it is rich's own (the terminal's width; tables fit it). Elsewhere (output
    piped to ``less``, a log file, CI) it has :data:`PIPE_WIDTH` columns, so tables and lines
    print at their natural width, unless ``$COLUMNS`` is set (rich honours it: the user asked
    for that width).

    Args:
        stderr: write to standard error. file: write to this stream instead (tests).
    """
    from rich.console import Console

    con = Console(stderr=stderr, file=file)
    if con.is_terminal or os.environ.get("COLUMNS"):
        return con
    return Console(stderr=stderr, file=file, width=PIPE_WIDTH)
