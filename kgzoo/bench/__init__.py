"""Benchmarking: the grid runner (:mod:`.runner`) and leaderboards (:mod:`.leaderboard`).

``kgzoo bench`` / ``kgzoo reproduce`` / ``kgzoo fit`` / ``kgzoo test`` live in :mod:`.cli`
(imported by :mod:`kgzoo.cli` on demand, not here).
"""
from .leaderboard import build_robustness, build_tables, write_leaderboard
from .runner import Cell, GridReport, read_rows, resolve_grid, run_grid

__all__ = ["Cell", "GridReport", "build_robustness", "build_tables", "read_rows", "resolve_grid", "run_grid",
           "write_leaderboard"]
