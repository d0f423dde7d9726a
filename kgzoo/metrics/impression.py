"""Per-impression metrics of news recommendation: AUC, MRR, nDCG@5, nDCG@10 (MIND's protocol).

An impression is one list of news shown to a user together, each clicked (label 1) or not
(label 0). MIND's official evaluation (Wu et al., "MIND: A Large-scale Dataset for News
Recommendation", ACL 2020, section 4; ``evaluate.py`` of github.com/msnews/MIND) scores each
impression on its own and averages the scores over impressions:

- ``auc``: the area under the ROC curve of the impression's candidates (ties count one half,
  as ``sklearn.metrics.roc_auc_score``): the Mann-Whitney statistic of
  :func:`kgzoo.metrics.ctr.per_group_auc` with one group per impression;
- ``mrr``: ``sum_j y_(j) / j  /  sum_j y_j``, the candidates sorted by descending score, ``y_(j)``
  the label at rank ``j`` (1-based): the mean reciprocal rank of *all* clicked news of the
  impression, not of the first one only;
- ``ndcg@k``: ``DCG@k(score) / DCG@k(label)`` with ``DCG@k = sum_{j<=k} (2^y_(j) - 1) / log2(j + 1)``.

Impressions MIND's evaluation cannot score are counted, not averaged: an impression without a
click has no MRR or nDCG (its ideal DCG is 0), one whose candidates are all clicked or all not
has no AUC (``roc_auc_score`` refuses one class). ``auc`` averages over impressions with both
classes, the others over impressions with a click.

Ties in score: the rank order puts the earlier candidate (smaller column) first (a stable
descending sort); AUC counts ties one half.

Everything is vectorised over a padded batch ``[B, C]`` (no loop over impressions), and
:class:`ImpressionMetrics` keeps sums and counts: under DDP each rank scores its own
impressions once and the states add up exactly.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

from .names import IMPRESSION_KS
from .ctr import per_group_auc

__all__ = ["ImpressionMetrics", "impression_metrics"]



def _check(scores: Tensor, labels: Tensor, mask: Tensor) -> None:
    if scores.dim() != 2 or scores.shape != labels.shape or scores.shape != mask.shape:
        raise ValueError(f"scores, labels and mask must be [B, C] of one shape, got {tuple(scores.shape)}, "
                         f"{tuple(labels.shape)}, {tuple(mask.shape)}")
    if not scores.is_floating_point():
        raise ValueError(f"scores must be a floating tensor, got {scores.dtype}")
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a BoolTensor, got {mask.dtype}")
    if labels.is_floating_point():
        raise ValueError(f"labels must be an integer or bool tensor, got {labels.dtype}")
    lab = labels[mask]
    if lab.numel() and bool(((lab != 0) & (lab != 1)).any()):
        raise ValueError("labels must be 0 or 1")
    if bool(torch.isnan(scores[mask]).any()):
        raise ValueError("scores contain NaN")


def impression_metrics(scores: Tensor, labels: Tensor, mask: Tensor, ks: tuple[int, ...] = IMPRESSION_KS
                       ) -> dict[str, Tensor]:
    """Each impression's AUC, MRR and nDCG@k (see the module docstring), vectorised.

    Args:
        scores: FloatTensor ``[B, C]``, the model's score of each candidate (any monotone score).
        labels: LongTensor (or bool) ``[B, C]`` in {0, 1}: clicked or not (padding: any value).
        mask: BoolTensor ``[B, C]``: True for a real candidate, False for padding.
        ks: the nDCG cut-offs.

    Returns:
        ``{"auc", "mrr", "ndcg@k"...}``: DoubleTensors ``[B]`` (NaN where the impression has no
        such value: no click, or for ``auc`` a single class), plus ``"has_click"`` and
        ``"two_classes"`` BoolTensors ``[B]``.

    Raises:
        ValueError: shapes that differ or are not 2-D, non-floating scores, a non-bool mask,
            labels outside {0, 1}, NaN scores (of real candidates).
    """
    _check(scores, labels, mask)
    B, C = scores.shape
    y = (labels.long() * mask).to(torch.float64)
    s = scores.to(torch.float64).masked_fill(~mask, float("-inf"))  # padding sorts last
    n_pos = y.sum(1)
    n = mask.sum(1).to(torch.float64)
    has_click = n_pos > 0
    two = has_click & (n_pos < n)
    nan = torch.full((B,), float("nan"), dtype=torch.float64, device=scores.device)

    # rank order: descending score, earlier candidate first among ties
    order = torch.argsort(-s, dim=1, stable=True)
    y_sorted = y.gather(1, order)
    pos = torch.arange(1, C + 1, dtype=torch.float64, device=scores.device)
    mrr = (y_sorted / pos).sum(1) / n_pos
    out = {"mrr": torch.where(has_click, mrr, nan)}
    discount = 1.0 / torch.log2(pos + 1.0)
    ideal = torch.sort(y, dim=1, descending=True).values
    for k in ks:
        kk = min(int(k), C)
        dcg = ((2.0 ** y_sorted[:, :kk] - 1.0) * discount[:kk]).sum(1)
        idcg = ((2.0 ** ideal[:, :kk] - 1.0) * discount[:kk]).sum(1)
        out[f"ndcg@{int(k)}"] = torch.where(has_click, dcg / idcg.clamp_min(1e-300), nan)

    auc = nan.clone()
    if bool(two.any()):
        rows = torch.arange(B, device=scores.device).unsqueeze(1).expand(B, C)
        keep = mask & two.unsqueeze(1)
        groups, g_auc, _ = per_group_auc(scores[keep].to(torch.float64), labels[keep].long(), rows[keep])
        auc[groups] = g_auc
    out["auc"] = auc
    out["has_click"], out["two_classes"] = has_click, two
    return out


class ImpressionMetrics(Metric):
    """AUC, MRR and nDCG@k averaged over impressions (MIND's evaluation), exact under DDP.

    States are sums and counts (``dist_reduce_fx="sum"``): ``auc_sum`` and ``auc_count`` over
    impressions with a click and a non-click, ``mrr_sum``, ``ndcg@k`` sums and ``ranked_count``
    over impressions with a click, ``unscored`` impressions without a click. Each impression is
    scored on the rank that evaluates it, once; merged states equal one process's.

    ``compute()`` returns ``{"auc", "mrr", "ndcg@5", "ndcg@10"}`` (the cut-offs ``ks``) as
    float64 scalars (NaN with nothing scored).

    Args:
        ks: nDCG cut-offs (default MIND's 5 and 10). **kwargs: to :class:`torchmetrics.Metric`.

    Raises:
        ValueError: a cut-off < 1; at ``update``, as :func:`impression_metrics`.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, ks: tuple[int, ...] | list[int] = IMPRESSION_KS, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ks = tuple(int(k) for k in ks)
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"nDCG cut-offs must be integers >= 1, got {ks!r}")
        zero = lambda: torch.zeros((), dtype=torch.float64)  # noqa: E731
        for name in ("auc_sum", "auc_count", "mrr_sum", "ranked_count", "unscored", *self._ndcg_states()):
            self.add_state(name, default=zero(), dist_reduce_fx="sum")

    def _ndcg_states(self) -> list[str]:
        return [f"ndcg{k}_sum" for k in self.ks]

    def update(self, scores: Tensor, labels: Tensor, mask: Tensor) -> None:  # type: ignore[override]
        """Add impressions: ``scores FloatTensor [B, C]``, ``labels LongTensor [B, C]``,
        ``mask BoolTensor [B, C]`` (True: a real candidate)."""
        m = impression_metrics(scores.detach(), labels.detach(), mask.detach(), self.ks)
        has, two = m["has_click"], m["two_classes"]
        self.auc_sum += m["auc"][two].sum()
        self.auc_count += two.sum()
        self.mrr_sum += m["mrr"][has].sum()
        self.ranked_count += has.sum()
        self.unscored += (~has).sum()
        for k in self.ks:
            setattr(self, f"ndcg{k}_sum", getattr(self, f"ndcg{k}_sum") + m[f"ndcg@{k}"][has].sum())

    def compute(self) -> dict[str, Tensor]:
        """``{"auc", "mrr", "ndcg@k"...}``: means over the scored impressions."""
        out = {"auc": self.auc_sum / self.auc_count, "mrr": self.mrr_sum / self.ranked_count}
        for k in self.ks:
            out[f"ndcg@{k}"] = getattr(self, f"ndcg{k}_sum") / self.ranked_count
        return out
