"""Test the best checkpoint of every row of a results file on ONE process and compare its test
metrics with the row's (``benchmarks/studies/ddp_exactness.md``): a row written under DDP
(``kgzoo bench --devices 2 --strategy ddp``) must give the same numbers, since each rank scores
users ``r::w`` (impressions alike) with no padding and torchmetrics sums the states over the ranks.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/scripts/ddp_exactness.py RUNS/bench.jsonl [...]

The row's ``checkpoint`` is relative to the results file's folder (``--runs`` and ``--results``
the same folder, as ``kgzoo bench --runs R`` writes them). Per row: the main metric both ways,
how many metrics are bit-equal, and the largest absolute difference.
"""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import lightning as L
import torch

from kgzoo.bench.rows import read_rows
from kgzoo.hub.checkpoint import load_checkpoint
from kgzoo.quiet import lightning_quiet


def compare(results: Path) -> list[dict]:
    """One dict per row of ``results`` (a ``.jsonl``): model, dataset, devices, strategy, the row's
    and the one-process main metric, bit-equal count, metric count, largest absolute difference."""
    out = []
    for row in read_rows(results):
        if row.status != "ok" or not row.checkpoint:
            continue
        loaded = load_checkpoint(results.parent / row.checkpoint)
        trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                            enable_model_summary=False)
        with warnings.catch_warnings(), lightning_quiet():
            warnings.simplefilter("ignore")
            one = trainer.test(loaded.model, datamodule=loaded.datamodule, verbose=False)[0]
        diffs = {k: abs(float(one[k]) - v) for k, v in row.metrics.items()}
        main = f"test/{row.main_metric}"
        out.append({"model": row.model, "dataset": row.dataset, "devices": row.devices, "strategy": row.strategy,
                    "row": row.metrics[main], "one_process": float(one[main]),
                    "bit_equal": sum(d == 0 for d in diffs.values()), "metrics": len(diffs),
                    "max_abs_diff": max(diffs.values()), "same_keys": set(one) == set(row.metrics)})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("results", nargs="+", type=Path)
    args = p.parse_args()
    torch.set_num_threads(1)
    print("| model | dataset | devices, strategy | row's main metric | one process | bit-equal | max abs diff |")
    print("|---|---|---|---|---|---|---|")
    for path in args.results:
        for c in compare(path):
            print(f"| {c['model']} | {c['dataset']} | {c['devices']}, {c['strategy']} | {c['row']!r} | "
                  f"{c['one_process']!r} | {c['bit_equal']}/{c['metrics']}{'' if c['same_keys'] else ' (other keys)'} | "
                  f"{c['max_abs_diff']:.2g} |", flush=True)


if __name__ == "__main__":
    main()
