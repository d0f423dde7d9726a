"""The Task table: what each kind of evaluation logs, ranks by and shows (DESIGN.md, "Task").

Every other module asks :data:`TASKS` (or :func:`get_task`) instead of comparing task
strings. A task names:

- its metrics for a list of cut-offs K (``metric_names``) and its default main metric, the
  validation metric that early stopping and model selection follow;
- the torchmetrics object that accumulates them over an evaluation pass (``make_metrics``),
  exact under DDP when every user / row / query is evaluated once;
- the keys of an evaluation batch (``batch_keys``);
- the data a model of the task trains on (``data``: ``"interactions"`` for top-K and CTR,
  ``"triples"`` for KG link prediction), which decides the DataModule;
- the metric columns of its leaderboard tables, main metric first.

Sources: top-K full ranking with seen items masked (Krichene & Rendle, KDD 2020); CTR
with AUC, accuracy, F1 and gAUC (Zhou et al., KDD 2018, eq. 1); filtered link prediction
with MRR and Hits@K (Bordes et al., NeurIPS 2013, Sec. 4.2); news impressions scored one by one
with AUC, MRR, nDCG@5 and nDCG@10, averaged over impressions (Wu et al., "MIND", ACL 2020,
section 4), whatever the ``ks`` (MIND's cut-offs are fixed).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from . import metrics  # the metric objects' modules (torchmetrics) are imported when a task builds one
from .metrics.names import IMPRESSION_KS, RANKING_METRICS

#: the Hits@K cut-offs of link prediction (TransE's paper reports Hits@10; PyKEEN adds 1 and 3)
LINK_KS = (1, 3, 10)
CTR_METRICS = ("auc", "acc", "f1", "gauc")
#: MIND's per-impression metrics (Wu et al., ACL 2020, section 4), averaged over impressions
IMPRESSION_METRICS = ("auc", "mrr") + tuple(f"ndcg@{k}" for k in IMPRESSION_KS)


def _topk_names(ks: Sequence[int]) -> list[str]:
    return [f"{m}@{int(k)}" for m in RANKING_METRICS for k in ks]


def _topk_main(ks: Sequence[int]) -> str:
    return f"ndcg@{min((int(k) for k in ks), key=lambda k: abs(k - 10))}"


@dataclass(frozen=True)
class Task:
    """One evaluation task.

    Attributes:
        name: ``"topk"``, ``"ctr"``, ``"link"`` or ``"impression"``.
        data: what a model of the task trains on: ``"interactions"``, ``"triples"`` or
            ``"impressions"`` (:class:`kgzoo.data.impressions.ImpressionDataModule`).
        batch_keys: keys of an evaluation batch (tensors; see the DataModules).
        leaderboard_columns: the metric columns of a leaderboard table after the main metric.
        seeded_split: whether the run's seed also seeds the split (link prediction splits the KG
            triples with it), so each seed has its own fingerprint and the leaderboard averages
            the seeds' fingerprints of one protocol in one table.
    """

    name: str
    data: str
    batch_keys: tuple[str, ...]
    leaderboard_columns: tuple[str, ...]
    _names: Callable[[Sequence[int]], list[str]]
    _main: Callable[[Sequence[int]], str]
    _metrics: Callable[[Sequence[int]], Any]
    seeded_split: bool = False

    def metric_names(self, ks: Sequence[int] = (10, 20)) -> list[str]:
        """The metric names logged for cut-offs ``ks`` (``["recall@10", ..., "ndcg@20", ...]``,
        ``["auc", "acc", "f1", "gauc"]``, ``["mrr", "hits@1", "hits@3", "hits@10"]``)."""
        return self._names(ks)

    def main_metric(self, ks: Sequence[int] = (10, 20)) -> str:
        """The default validation metric: NDCG at the K nearest 10, AUC, or MRR."""
        return self._main(ks)

    def make_metrics(self, ks: Sequence[int] = (10, 20)) -> Any:
        """A fresh :class:`torchmetrics.Metric` accumulating :meth:`metric_names` over a pass."""
        return self._metrics(ks)

    def check_metric(self, metric: str, ks: Sequence[int] = (10, 20)) -> str:
        """``metric`` if the task logs it for ``ks``.

        Raises:
            ValueError: naming the metric, the task and the known metric names.
        """
        known = self.metric_names(ks)
        if metric not in known:
            raise ValueError(f"unknown metric {metric!r} for task {self.name!r}; known: {', '.join(known)}")
        return metric


TASKS: dict[str, Task] = {
    "topk": Task("topk", "interactions", ("user", "mask_row", "mask_col", "target_row", "target_col"),
                 ("recall@10", "recall@20", "ndcg@10", "ndcg@20"),
                 _topk_names, _topk_main, lambda ks: metrics.TopKMetrics([int(k) for k in ks])),
    "ctr": Task("ctr", "interactions", ("user", "item", "label"), CTR_METRICS,
                lambda ks: list(CTR_METRICS), lambda ks: "auc", lambda ks: metrics.CTRMetrics()),
    "link": Task("link", "triples", ("head", "relation", "tail"), ("mrr", "hits@1", "hits@3", "hits@10"),
                 lambda ks: ["mrr"] + [f"hits@{k}" for k in LINK_KS], lambda ks: "mrr",
                 lambda ks: metrics.LinkPredictionMetrics(LINK_KS), seeded_split=True),
    "impression": Task("impression", "impressions",
                       ("user", "history", "history_mask", "candidates", "candidate_mask", "label"),
                       IMPRESSION_METRICS, lambda ks: list(IMPRESSION_METRICS), lambda ks: "auc",
                       lambda ks: metrics.ImpressionMetrics(IMPRESSION_KS)),
}


def get_task(name: str) -> Task:
    """The :class:`Task` called ``name``.

    Raises:
        KeyError: an unknown task, naming the nearest known ones.
    """
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), list(TASKS), n=2)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise KeyError(f"unknown task {name!r}{hint} (known: {', '.join(TASKS)})") from None


def model_task(model: Any, data_task: str, has_impressions: bool) -> str:
    """The task ``model`` (a model class or instance) runs on a dataset whose protocol has task
    ``data_task`` and which has (``has_impressions``) or has not an impression log.

    A model's ``task`` class attribute, where set (KG link prediction: ``"link"``), decides alone.
    A model with ``tasks`` (the tasks it can run, in order of preference; the news models:
    ``("impression", "ctr")``) takes the first its data can serve: a task that trains on
    impressions where the dataset has an impression log (MIND), else the data's own task
    (DKN's labelled rows: ``"ctr"``). Any other model runs the data's task.

    Raises:
        ValueError: a model with ``tasks`` that its data serves none of (naming both).
        KeyError: an unknown task.
    """
    declared = getattr(model, "task", None)
    if isinstance(declared, str):
        return get_task(declared).name
    supported = getattr(model, "tasks", None)
    if not supported:
        return get_task(data_task).name
    for name in supported:
        if (get_task(name).data == "impressions" and has_impressions) or name == data_task:
            return name
    label = getattr(model, "__name__", type(model).__name__)
    raise ValueError(f"{label} runs the tasks {', '.join(supported)}; its data has task {data_task!r}"
                     f"{'' if has_impressions else ' and no impression log'}")

