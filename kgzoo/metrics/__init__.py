"""Evaluation metrics: top-K ranking, CTR (AUC/ACC/F1/gAUC), filtered link prediction and
per-impression news metrics (AUC, MRR, nDCG@5/10).

``METRIC_CODE_VERSION`` is part of every protocol fingerprint: bump it whenever the
formula of any metric here changes, so results computed with different formulas are
never put in one table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports
from .names import IMPRESSION_KS, RANKING_METRICS

#: public name -> its module (imported on first use: the metric objects import torchmetrics, which the
#: protocol fingerprint, reading METRIC_CODE_VERSION, does not need)
_HOMES = {
    **dict.fromkeys(["CTRMetrics", "group_auc", "per_group_auc"], "kgzoo.metrics.ctr"),
    **dict.fromkeys(["ImpressionMetrics", "impression_metrics"], "kgzoo.metrics.impression"),
    **dict.fromkeys(["LinkPredictionMetrics", "build_filter", "filtered_ranks", "link_metrics"], "kgzoo.metrics.link"),
    **dict.fromkeys(["TopKMetrics", "indices_to_dense", "topk_metrics"], "kgzoo.metrics.ranking"),
}

if TYPE_CHECKING:
    from .ctr import CTRMetrics, group_auc, per_group_auc
    from .impression import ImpressionMetrics, impression_metrics
    from .link import LinkPredictionMetrics, build_filter, filtered_ranks, link_metrics
    from .ranking import TopKMetrics, indices_to_dense, topk_metrics

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

__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
