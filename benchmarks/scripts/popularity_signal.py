"""How much of a model's ranking is item popularity, and how much of popularity its item side can express.

    python benchmarks/scripts/popularity_signal.py [--dataset ml-100k-kg] [--models plmrec bpr lightgcn]
    python benchmarks/scripts/popularity_signal.py --dataset ml-1m-kg --text-only

For each pretrained ``MODEL/DATASET`` (the shipped weights of the converged, tuned runs):

* Spearman's rho between the mean score of each item over all users and its train interaction
  count (Pop's state), and the share of top-10 slots (train items not masked) held by the 100 most
  popular items;
* for text models, the 5-fold cross-validated R^2 of a ridge regression of ``log(1 + count)`` on the
  frozen PLM text vectors of the items: the most popularity that a linear item tower on the
  text can express.

``--text-only`` (a dataset without shipped weights): the R^2 alone, from the frozen text vectors
of PLMRec's zoo config on the dataset (no training: they are the PLM's) and the train split's counts.

``--ctr`` (a CTR set: lastfm-kg, book-crossing-kg): the test AUC of each item's train positive
count alone (Pop's score), overall and among the test rows whose item has a train row, and the
share of test rows whose item has none (no training, no weights):

    python benchmarks/scripts/popularity_signal.py --dataset book-crossing-kg --ctr

Writes nothing; the study ``benchmarks/studies/plmrec_below_pop.md`` quotes its output.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from scipy.stats import spearmanr

import kgzoo


def ridge_cv_r2(x: np.ndarray, y: np.ndarray, lam: float, folds: int = 5, seed: int = 0) -> float:
    """Cross-validated R^2 of ridge regression (centred, penalty ``lam``) of ``y [N]`` on ``x [N, H]``."""
    idx = np.random.default_rng(seed).permutation(len(y))
    pred = np.zeros_like(y)
    for part in np.array_split(idx, folds):
        train = np.setdiff1d(idx, part)
        mu, ym = x[train].mean(0), y[train].mean()
        a = x[train] - mu
        w = np.linalg.solve(a.T @ a + lam * np.eye(x.shape[1]), a.T @ (y[train] - ym))
        pred[part] = (x[part] - mu) @ w + ym
    return float(1 - ((y - pred) ** 2).sum() / ((y - y.mean()) ** 2).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="ml-100k-kg")
    ap.add_argument("--models", nargs="+", default=["plmrec", "bpr", "lightgcn"])
    ap.add_argument("--text-only", action="store_true",
                    help="only the R^2 of popularity from PLMRec's frozen text vectors (no pretrained weights needed)")
    ap.add_argument("--ctr", action="store_true",
                    help="a CTR set: the test AUC of the train positive count alone (no weights needed)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.ctr:
        print(ctr_popularity(args.dataset), flush=True)
        return
    if args.text_only:
        dm = kgzoo.create_datamodule(args.dataset)
        model = kgzoo.create_model("plmrec", dm)
        dm.setup()
        train = dm.data.interactions[dm.split.train]
        count = torch.bincount(train[:, 1], minlength=dm.n_items).double().numpy()
        print(f"{args.dataset}: {text_r2(model.tower, count)}", flush=True)
        return
    count = kgzoo.load_pretrained(f"pop/{args.dataset}").model.item_count.double().numpy()
    top100 = np.argsort(-count)[:100]
    for name in args.models:
        pre = kgzoo.load_pretrained(f"{name}/{args.dataset}")
        model = pre.model.eval()
        with torch.no_grad():
            scores = model.score(torch.arange(pre.datamodule.n_users)).double().numpy()
        rho = spearmanr(scores.mean(0), count).correlation
        share = np.isin(np.argsort(-scores, axis=1)[:, :10], top100).mean()
        line = f"{name}: rho(mean item score, train count) = {rho:.3f}; top-10 slots on the 100 most popular items = {share:.3f}"
        tower = getattr(model, "tower", None)
        if tower is not None:
            line += f"; {text_r2(tower, count)}"
        print(line, flush=True)


def ctr_popularity(dataset: str) -> str:
    """On a CTR set's default split: the test AUC of each item's count of train positives (what Pop
    scores), overall and among the test rows whose item has a train row, and the share of test rows
    (and of their positives) whose item has no train row."""
    from sklearn.metrics import roc_auc_score  # noqa: PLC0415

    dm = kgzoo.create_datamodule(dataset)
    dm.setup()
    items, label, split = dm.data.interactions[:, 1], dm.data.label, dm.split
    tr, te = split.train, split.test
    positives = torch.bincount(items[tr][label[tr] == 1], minlength=dm.n_items)
    warm = (torch.bincount(items[tr], minlength=dm.n_items) > 0)[items[te]].numpy()
    y, score = label[te].numpy(), positives[items[te]].double().numpy()
    return (f"{dataset}: {len(y)} test rows ({y.mean():.3f} positive); test AUC of the train positive count "
            f"{roc_auc_score(y, score):.4f}, among the {warm.mean():.1%} of rows whose item has a train row "
            f"{roc_auc_score(y[warm], score[warm]):.4f}; rows whose item has none: {(~warm).mean():.1%} "
            f"({y[~warm].mean():.3f} positive)")


def text_r2(tower, count: np.ndarray) -> str:
    """The line on the CV R^2 of ``log(1 + count)`` from an item tower's frozen text vectors."""
    vec, has = tower.text.lookup(None)
    x = vec.double().numpy()[has.numpy()]
    r2 = max(ridge_cv_r2(x, np.log1p(count[has.numpy()]), lam) for lam in (0.1, 1.0, 10.0, 100.0))
    return (f"CV R^2 of log(1+count) from the text vectors (best ridge penalty) = {r2:.3f} "
            f"({int(has.sum())} of {has.numel()} items with text)")


if __name__ == "__main__":
    main()
