"""Benchmarking: result rows (:mod:`.rows`), the grid's cells (:mod:`.cells`), one cell
(:mod:`.experiment`), the grid runner (:mod:`.runner`), leaderboards (:mod:`.leaderboard`,
aggregation) and their views (:mod:`.render`).

``kgzoo bench`` / ``kgzoo reproduce`` live in :mod:`.cli` (listed by :mod:`kgzoo.cli`, not
imported here).
"""
from .cells import Cell, resolve_grid
from .leaderboard import Leaderboard, build
from .render import write_leaderboard
from .rows import ResultRow, read_rows
from .runner import GridReport, run_grid

__all__ = ["Cell", "GridReport", "Leaderboard", "ResultRow", "build", "read_rows", "resolve_grid", "run_grid",
           "write_leaderboard"]
