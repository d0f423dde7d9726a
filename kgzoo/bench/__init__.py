"""Benchmarking: result rows (:mod:`.rows`), the grid's cells (:mod:`.cells`), one cell
(:mod:`.experiment`), the grid runner (:mod:`.runner`), leaderboards (:mod:`.leaderboard`,
aggregation) and their views (:mod:`.render`).

``kgzoo bench`` / ``kgzoo reproduce`` live in :mod:`.cli` (listed by :mod:`kgzoo.cli`, not
imported here).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

#: public name -> its module (imported on first use: the runner imports the models and Lightning)
_HOMES = {"Cell": "kgzoo.bench.cells", "resolve_grid": "kgzoo.bench.cells", "Leaderboard": "kgzoo.bench.leaderboard", "build": "kgzoo.bench.leaderboard",
          "write_leaderboard": "kgzoo.bench.render", "ResultRow": "kgzoo.bench.rows", "read_rows": "kgzoo.bench.rows", "GridReport": "kgzoo.bench.runner",
          "run_grid": "kgzoo.bench.runner"}
__all__ = sorted(_HOMES)

if TYPE_CHECKING:
    from .cells import Cell, resolve_grid
    from .leaderboard import Leaderboard, build
    from .render import write_leaderboard
    from .rows import ResultRow, read_rows
    from .runner import GridReport, run_grid

__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
