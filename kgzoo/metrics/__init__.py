"""Evaluation metrics: top-K ranking, CTR (AUC/ACC/F1/gAUC), filtered link prediction and
per-impression news metrics (AUC, MRR, nDCG@5/10).

``METRIC_CODE_VERSION`` is part of every protocol fingerprint: bump it whenever the
formula of any metric here changes, so results computed with different formulas are
never put in one table.
"""

from kgzoo.metrics.ctr import CTRMetrics, group_auc, per_group_auc
from kgzoo.metrics.impression import IMPRESSION_KS, ImpressionMetrics, impression_metrics
from kgzoo.metrics.link import LinkPredictionMetrics, build_filter, filtered_ranks, link_metrics
from kgzoo.metrics.ranking import RANKING_METRICS, TopKMetrics, indices_to_dense, topk_metrics

#: Version of the metric formulas; goes into protocol fingerprints. Bump on any formula change.
METRIC_CODE_VERSION = "1"

__all__ = [
    "METRIC_CODE_VERSION",
    "RANKING_METRICS",
    "CTRMetrics",
    "IMPRESSION_KS",
    "ImpressionMetrics",
    "LinkPredictionMetrics",
    "TopKMetrics",
    "build_filter",
    "filtered_ranks",
    "group_auc",
    "impression_metrics",
    "indices_to_dense",
    "link_metrics",
    "per_group_auc",
    "topk_metrics",
]
