"""Tables and lines of the ``kgzoo`` commands print at their natural width when the output is no
terminal (a log, ``| less``, CI) instead of folding at rich's default 80 columns; in a terminal
the console is rich's own."""
from __future__ import annotations

import io

from rich.table import Table

from kgzoo.console import PIPE_WIDTH, console


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def wide_table() -> Table:
    t = Table(title="a table wider than 80 columns")
    for c in ("model", "dataset", "command", "metric"):
        t.add_column(c)
    t.add_row("lightgcn", "alibaba-ifashion-kg", "kgzoo bench --models lightgcn --datasets alibaba-ifashion-kg "
              "--seeds 0 1 2 --full --results benchmarks/results", "0.1234")
    return t


def test_a_piped_console_prints_at_the_natural_width(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    out = io.StringIO()
    con = console(file=out)
    assert not con.is_terminal and con.width == PIPE_WIDTH
    con.print(wide_table())
    line = "total: 2 cells in 32.8 s; rows in /a/rather/long/path/to/the/runs/folder/20261206-200820/bench.jsonl, " \
           "checkpoints and logs in /a/rather/long/path/to/the/runs/folder/20261206-200820"
    con.print(line)
    lines = out.getvalue().splitlines()
    assert lines[-1] == line  # one line, not folded
    table = lines[:-1]
    assert len(table) == 6  # title, top border, header, rule, the one row, bottom border: nothing folded
    width = max(map(len, table[1:]))
    assert width > 120 and all(len(x) == width for x in table[1:])  # the table's own width, no padding
    assert "--results benchmarks/results" in table[4]


def test_columns_and_a_terminal_keep_riches_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    assert console(file=io.StringIO()).width == 100  # the user asked for a width
    monkeypatch.delenv("COLUMNS")
    tty = console(file=TTY())
    assert tty.is_terminal and tty.width < PIPE_WIDTH  # the terminal's own width (80 where it is unknown)
    err = console(stderr=True)
    assert err.stderr
