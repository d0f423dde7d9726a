"""The validation curve of one model on one dataset, with early stopping held off: does the
curve sit on a plateau longer than the patience before it climbs? (issue 16: the evidence for a
dataset's warm-up, ``DatasetSpec.min_epochs``.)

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/scripts/valid_curve.py cke lastfm-social \\
        [--epochs 80] [--seed 0] [--kg none] [--set reg_weight=0.0037] [--every 4]

Trains ``MODEL`` with its zoo config for ``DATASET`` (tuned values included) for exactly
``--epochs`` epochs (a fixed schedule: the patience is set to the cap, so nothing stops it),
validation only (the test split is not read), then prints the validation main metric every
``--every`` epochs, the best value and its epoch, and the longest run of epochs without a new
best (what a patience shorter than it would have ended the run on).
"""
from __future__ import annotations

import argparse
import csv
import json
import tempfile
from pathlib import Path

from kgzoo.bench.experiment import run_experiment
from kgzoo.quiet import quiet_lightning


def longest_wait(values: list[float]) -> tuple[int, int]:
    """``(epochs, first epoch)`` of the longest run of epochs without a new best (0-based epochs)."""
    best, since, worst = float("-inf"), 0, (0, 0)
    for e, v in enumerate(values):
        if v > best:
            best, since = v, e
        elif e - since > worst[0]:
            worst = (e - since, since + 1)
    return worst


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("dataset")
    ap.add_argument("--epochs", type=int, default=80)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kg", default="real", help="KG ablation: real, none, shuffled, noisy:P")
    ap.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="model overrides (JSON values)")
    ap.add_argument("--every", type=int, default=4)
    args = ap.parse_args(argv)
    overrides = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    quiet_lightning()
    with tempfile.TemporaryDirectory() as out:
        row = run_experiment(args.model, args.dataset, seed=args.seed, max_epochs=args.epochs, patience=args.epochs,
                             kg_ablation=args.kg, model_overrides=overrides, out_dir=out, progress=False,
                             run_test=False)
        monitor = f"valid/{row.main_metric}"
        (log,) = Path(out).rglob("metrics.csv")
        values = [float(r[monitor]) for r in csv.DictReader(log.open()) if r.get(monitor)]
    best = max(range(len(values)), key=lambda e: (values[e], -e))
    wait, start = longest_wait(values)
    print(f"{args.model} on {args.dataset} (seed {args.seed}, kg {args.kg}, overrides {overrides}): {monitor} "
          f"every {args.every} epochs:")
    print(" ".join(f"{e}:{values[e]:.3f}" for e in range(0, len(values), args.every)))
    print(f"best {values[best]:.4f} at epoch {best} of {len(values)}; longest wait without a new best: {wait} "
          f"epochs from epoch {start}")


if __name__ == "__main__":
    main()
