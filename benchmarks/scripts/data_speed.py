"""Data-layer speed: cold load of each dataset and one BPR sampler epoch.

Goals (issue "Data foundation"): a BPR sampler epoch under 0.5 s on ml-1m-kg (800k train
interactions); a cold load of ml-1m-kg under 5 s. "Cold" means a fresh Python process
(imports excluded, file cache warm): read, verify checksums, parse, clean.

Usage: ``python benchmarks/scripts/data_speed.py [--datasets ...] [--out benchmarks/studies/data_speed.md]``
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

CHILD = r"""
import json, sys, time
import kgzoo, torch
from kgzoo.data.datasets import load_data
name = sys.argv[1]
t = time.perf_counter(); data = load_data(name); load = time.perf_counter() - t
out = {"dataset": name, "load_seconds": load, "interactions": data.n_interactions, "triples": data.n_triples}
if data.label is None or bool((data.label > 0).all()):
    from kgzoo.data.sampling import BPRSampler
    x = data.interactions[data.positives()]
    t = time.perf_counter(); s = BPRSampler(x, data.n_items); out["sampler_build_seconds"] = time.perf_counter() - t
    g = torch.Generator().manual_seed(0)
    s.epoch(g)
    times = []
    for _ in range(5):
        t = time.perf_counter(); s.epoch(g); times.append(time.perf_counter() - t)
    out["sampler_epoch_seconds"] = min(times)
    out["sampler_rows"] = int(x.shape[0])
print(json.dumps(out))
"""


def main() -> None:
    import kgzoo

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--datasets", nargs="*", default=None)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "studies" / "data_speed.md"))
    args = ap.parse_args()
    names = args.datasets or kgzoo.list_datasets()
    rows = []
    for n in names:
        proc = subprocess.run([sys.executable, "-c", CHILD, n], capture_output=True, text=True)
        if proc.returncode:
            print(proc.stderr[-2000:], file=sys.stderr)
            raise SystemExit(f"{n}: failed")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(rows[-1])
    lines = ["# Data-layer speed", "",
             f"Command: `python benchmarks/scripts/data_speed.py` ({time.strftime('%Y-%m-%d')}, 2 CPU cores, torch "
             f"{__import__('torch').__version__}). Cold load = read + sha256 + parse + clean in a fresh process; "
             "sampler epoch = one BPR epoch (one negative per train interaction), best of 5.", "",
             "| dataset | interactions | triples | cold load (s) | sampler epoch (s) |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        se = f"{r['sampler_epoch_seconds']:.3f}" if "sampler_epoch_seconds" in r else "- (ctr)"
        lines.append(f"| {r['dataset']} | {r['interactions']:,} | {r['triples']:,} | {r['load_seconds']:.2f} | {se} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
