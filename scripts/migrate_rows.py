#!/usr/bin/env python
"""Rewrite result files in the current ResultRow schema (:mod:`kgzoo.bench.rows`).

Usage::

    python scripts/migrate_rows.py                       # every benchmarks/results/*.jsonl
    python scripts/migrate_rows.py path/to/a.jsonl ...   # the files named

Each file is read with :func:`kgzoo.bench.rows.read_rows` (a schema-1 row is upgraded without
loss: :func:`kgzoo.bench.rows.upgrade_v1`) and rewritten atomically by
:func:`kgzoo.bench.rows.rewrite_rows`; one line per file says the rows in and out. Running it
again changes nothing. Exit status 1 when a file holds a bad row or a torn last line (it is then
left untouched and named).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kgzoo.bench.rows import rewrite_rows

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", type=Path, help=f"JSON-lines result files (default: {RESULTS}/*.jsonl)")
    args = ap.parse_args(argv)
    files = args.files or sorted(RESULTS.glob("*.jsonl"))
    if not files:
        print(f"no result files in {RESULTS}", file=sys.stderr)
        return 1
    status = 0
    for f in files:
        try:
            n_in, n_out = rewrite_rows(f)
        except (OSError, ValueError) as e:
            print(f"{f}: not migrated: {e}", file=sys.stderr)
            status = 1
            continue
        print(f"{f}: {n_in} rows in, {n_out} rows out")
    return status


if __name__ == "__main__":
    sys.exit(main())
