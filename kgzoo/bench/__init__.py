"""Benchmarking: the grid runner (:mod:`.runner`), leaderboards (:mod:`.leaderboard`, aggregation)
and their views (:mod:`.render`).

``kgzoo bench`` / ``kgzoo reproduce`` / ``kgzoo fit`` / ``kgzoo test`` live in :mod:`.cli`
(imported by :mod:`kgzoo.cli` on demand, not here).
"""
from .leaderboard import Leaderboard, build
from .render import write_leaderboard
from .runner import Cell, GridReport, read_rows, resolve_grid, run_grid

__all__ = ["Cell", "GridReport", "Leaderboard", "build", "read_rows", "resolve_grid", "run_grid",
           "write_leaderboard"]
