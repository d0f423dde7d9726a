"""Full-ranking evaluation against a bare loop, side by side in one process (issue 16, part 5).

One evaluation pass over every test user of a real dataset (its DataModule's own batches:
seen items masked, the stage's items as targets), scores from fixed random embeddings
(``d`` = 64), so that the three contenders do the same score work:

- ``bare``: scores, mask, ``topk``, Recall@K and NDCG@K from the top-K flags, written
  inline (the floor any evaluation pays);
- ``kgzoo``: :class:`kgzoo.metrics.TopKMetrics` (all six metrics at K = 10, 20), as
  :meth:`Recommender._eval_step` calls it;
- ``before`` (optional, ``--before FILE``): the same with the ``TopKMetrics`` of another
  copy of ``kgzoo/metrics/ranking.py`` (e.g. ``git show REV:kgzoo/metrics/ranking.py``).

Rounds are interleaved (bare, kgzoo, before, bare, ...) and timed in process CPU seconds
(``time.process_time``), so a busy machine does not bias one contender. The metrics of
``kgzoo`` and ``before`` must agree. Usage::

    python benchmarks/scripts/eval_bench.py alibaba-ifashion-kg --threads 1 --rounds 3 \\
        --before /tmp/ranking_before.py
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import statistics
import time

import torch

import kgzoo
from kgzoo.metrics import TopKMetrics


def bare_pass(batches: list[dict], user_emb: torch.Tensor, item_emb: torch.Tensor, ks=(10, 20)) -> dict:
    """Recall@K and NDCG@K summed over users with a target, inline."""
    max_k = max(ks)
    disc = 1.0 / torch.log2(torch.arange(2, max_k + 2, dtype=torch.float32))
    idcg = disc.cumsum(0)
    sums = {f"{m}@{k}": 0.0 for m in ("recall", "ndcg") for k in ks}
    n = 0
    n_items = item_emb.shape[0]
    for b in batches:
        s = user_emb[b["user"]] @ item_emb.T
        s[b["mask_row"], b["mask_col"]] = -math.inf
        top = torch.topk(s, max_k, dim=1).indices
        keys = b["target_row"] * n_items + b["target_col"]
        hits = torch.isin(torch.arange(len(b["user"])).unsqueeze(1) * n_items + top, keys).float()
        n_rel = torch.bincount(b["target_row"], minlength=len(b["user"])).float()
        ok = n_rel > 0
        cum = hits.cumsum(1)
        dcg = (hits * disc).cumsum(1)
        for k in ks:
            sums[f"recall@{k}"] += float((cum[:, k - 1] / n_rel.clamp(min=1))[ok].sum())
            ideal = idcg[(n_rel.clamp(min=1, max=k).long() - 1)]
            sums[f"ndcg@{k}"] += float((dcg[:, k - 1] / ideal)[ok].sum())
        n += int(ok.sum())
    return {k: v / n for k, v in sums.items()}


def metric_pass(metric_cls, batches: list[dict], user_emb: torch.Tensor, item_emb: torch.Tensor) -> dict:
    metric = metric_cls([10, 20])
    for b in batches:
        s = user_emb[b["user"]] @ item_emb.T
        s[b["mask_row"], b["mask_col"]] = -math.inf
        metric.update(s, (b["target_row"], b["target_col"]))
    return {k: float(v) for k, v in metric.compute().items()}


def _load(path: str):
    spec = importlib.util.spec_from_file_location("ranking_before", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.TopKMetrics


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dataset", nargs="?", default="alibaba-ifashion-kg")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch", type=int, default=512, help="users per evaluation batch")
    p.add_argument("--before", default=None, help="another ranking.py to compare with")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    dm = kgzoo.create_datamodule(a.dataset, eval_batch_size=a.batch)
    dm.setup()
    batches = list(dm.test_dataloader())
    g = torch.Generator().manual_seed(0)
    user_emb = torch.randn(dm.n_users, 64, generator=g)
    item_emb = torch.randn(dm.n_items, 64, generator=g)
    contenders = {"bare": lambda: bare_pass(batches, user_emb, item_emb),
                  "kgzoo": lambda: metric_pass(TopKMetrics, batches, user_emb, item_emb)}
    if a.before:
        before = _load(a.before)
        contenders["before"] = lambda: metric_pass(before, batches, user_emb, item_emb)
    times: dict[str, list[float]] = {k: [] for k in contenders}
    results = {}
    for _ in range(a.rounds):
        for name, fn in contenders.items():
            t = time.process_time()
            results[name] = fn()
            times[name].append(time.process_time() - t)
    print(f"{a.dataset}: {len(batches)} batches, {sum(len(b['user']) for b in batches):,} users x "
          f"{dm.n_items:,} items, {a.threads} thread(s), {a.rounds} rounds, CPU s per pass (median)")
    base = statistics.median(times["bare"])
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:7s} {med:8.2f} s  {med / base:5.2f}x bare   ndcg@10 {results[name]['ndcg@10']:.6f}")
    if "before" in results:
        diff = max(abs(results["kgzoo"][k] - results["before"][k]) for k in results["kgzoo"])
        print(f"  kgzoo vs before: max |metric difference| {diff:.2e}")


if __name__ == "__main__":
    main()
