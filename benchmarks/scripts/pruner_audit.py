"""Audit of ``kgzoo tune``'s median pruner: would a pruned trial have won had it run to convergence?

For each ``MODEL`` on ``DATASET``, every PRUNED trial of the study (read from
``benchmarks/results/tuning/<model>-<dataset>.jsonl``) is re-run with its parameters, the study's
training seed and the converged schedule (early stopping on the validation main metric, the
config's patience and cap), without the pruning callback. The test split is never read
(``run_test=False``), as in tuning. Each re-run appends one JSON line to ``--out``: the trial, its
parameters, the value it was pruned at, its converged validation value, epochs, best epoch and
stopped_by, beside the study's best complete value. A pruned trial whose converged value beats the
study's best means the pruner changed which configuration the table publishes.

Usage (from the repository root, one thread)::

    OMP_NUM_THREADS=1 python benchmarks/scripts/pruner_audit.py ml-100k-kg bpr lightgcn cke \\
        --out benchmarks/studies/pruner_audit.jsonl

Already audited trials (same model, dataset, study and trial in ``--out``) are skipped, so a killed
run resumes.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dataset")
    ap.add_argument("models", nargs="+")
    ap.add_argument("--out", default="benchmarks/studies/pruner_audit.jsonl")
    ap.add_argument("--results", default="benchmarks/results", help="folder holding tuning/<model>-<dataset>.jsonl")
    ap.add_argument("--seed", type=int, default=0, help="the study's training seed (kgzoo tune --seed)")
    args = ap.parse_args(argv)

    from kgzoo.bench.experiment import run_experiment  # noqa: PLC0415 (after sys.path holds this checkout)
    from kgzoo.paths import cache_dir  # noqa: PLC0415

    out = Path(args.out)
    done = set()
    if out.exists():
        for line in out.read_text().splitlines():
            r = json.loads(line)
            done.add((r["model"], r["dataset"], r["study"], r["trial"]))
    for model in args.models:
        path = Path(args.results) / "tuning" / f"{model}-{args.dataset}.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        complete = [r for r in rows if r["state"] == "COMPLETE" and r["value"] is not None]
        if not complete:
            print(f"{model} on {args.dataset}: no complete trial in {path}", flush=True)
            continue
        best = max(complete, key=lambda r: r["value"])
        for r in rows:
            if r["state"] != "PRUNED" or (model, args.dataset, r["study"], r["trial"]) in done:
                continue
            t0 = time.perf_counter()
            row = run_experiment(model, args.dataset, seed=args.seed, model_overrides=r["params"], run_test=False,
                                 out_dir=cache_dir("runs") / "pruner-audit", progress=False)
            monitor = f"valid/{row.main_metric}"
            value = row.valid_metrics.get(monitor)
            rec = {"model": model, "dataset": args.dataset, "study": r["study"], "trial": r["trial"],
                   "params": r["params"], "pruned_at_value": r["value"], "monitor": monitor,
                   "converged_value": value, "epochs": row.epochs, "best_epoch": row.best_epoch,
                   "stopped_by": row.stopped_by, "study_best_value": best["value"], "study_best_trial": best["trial"],
                   "would_win": bool(value is not None and value > best["value"]),
                   "seconds": round(time.perf_counter() - t0, 1), "code_hash": row.code_hash,
                   "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            with out.open("a") as f:
                f.write(json.dumps(rec, sort_keys=True) + "\n")
            print(f"{model} on {args.dataset} trial {r['trial']}: pruned at {r['value']:.4f}, converged "
                  f"{value:.4f} ({row.epochs} epochs, best {row.best_epoch}, {row.stopped_by}); study best "
                  f"{best['value']:.4f} (trial {best['trial']}){'  <-- would win' if rec['would_win'] else ''}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
