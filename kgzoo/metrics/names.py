"""The metric names and cut-offs that tables, tasks and configs read without computing a metric
(importing nothing: the metric objects' modules import torchmetrics)."""
from __future__ import annotations

#: Names of the metrics :func:`~kgzoo.metrics.ranking.topk_metrics` and
#: :class:`~kgzoo.metrics.ranking.TopKMetrics` know, in output order.
RANKING_METRICS: tuple[str, ...] = ("recall", "ndcg", "precision", "hit", "mrr", "map")
#: the nDCG cut-offs of MIND's leaderboard (:mod:`~kgzoo.metrics.impression`)
IMPRESSION_KS: tuple[int, ...] = (5, 10)
