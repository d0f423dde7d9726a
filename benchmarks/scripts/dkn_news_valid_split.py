"""How dkn-news's validation split differs from its test split (issue 17): the share of valid and
test rows whose title (the item) occurs in a train row, and the published rows' valid against test
AUC. Evidence for ``benchmarks/studies/dkn_news_valid_split.md``; reads data and committed rows only.

Usage (from the repository root)::

    python benchmarks/scripts/dkn_news_valid_split.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import kgzoo  # noqa: E402
from kgzoo.bench.leaderboard import latest_ok_rows  # noqa: E402
from kgzoo.bench.rows import read_rows  # noqa: E402


def main() -> None:
    dm = kgzoo.create_datamodule("dkn-news")
    dm.setup()
    x, sp = dm.data.interactions, dm.split
    in_train = torch.zeros(dm.data.n_items, dtype=torch.bool)
    in_train[x[sp.train, 1]] = True
    print("| split | rows | rows whose title occurs in train | share |\n|---|---|---|---|")
    for name in ("valid", "test"):
        idx = getattr(sp, name)
        seen = int(in_train[x[idx, 1]].sum())
        print(f"| {name} | {idx.numel()} | {seen} | {seen / idx.numel():.1%} |")
    rows = [r for f in sorted((REPO / "benchmarks" / "results").glob("*.jsonl")) for r in read_rows(f)]
    pub = sorted((r for r in latest_ok_rows(rows) if r.dataset == "dkn-news" and r.is_published()
                  and r.variant == "base" and r.kg_ablation == "real"), key=lambda r: (r.model, r.seed))
    print("\n| model | seed | valid AUC | test AUC | best epoch |\n|---|---|---|---|---|")
    for r in pub:
        print(f"| {r.model} | {r.seed} | {r.valid_metrics.get('valid/auc', float('nan')):.4f} | "
              f"{r.metrics.get('test/auc', float('nan')):.4f} | {r.best_epoch} |")


if __name__ == "__main__":
    main()
