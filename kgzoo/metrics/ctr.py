"""Click-through-rate (CTR) metrics: AUC, accuracy, F1 and group AUC (gAUC).

AUC, accuracy and F1 come from torchmetrics' binary classification functionals
(``binary_auroc``, ``binary_accuracy``, ``binary_f1_score``). gAUC is the
impression-weighted mean of per-user AUCs (Zhou et al., "Deep Interest Network for
Click-Through Rate Prediction", KDD 2018, eq. 1), computed here without a loop over
users: one sort by (user, score), tie-averaged ranks, and per-user segment sums giving
the Mann-Whitney U statistic (Mann & Whitney, 1947; AUC = U / (n_pos * n_neg)).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.functional.classification import binary_accuracy, binary_auroc, binary_f1_score
from torchmetrics.utilities import dim_zero_cat

__all__ = ["CTRMetrics", "group_auc", "per_group_auc"]


def _check_1d(scores: Tensor, labels: Tensor, users: Tensor) -> None:
    if scores.dim() != 1 or labels.dim() != 1 or users.dim() != 1:
        raise ValueError(
            f"scores, labels and users must be 1-D, got shapes {tuple(scores.shape)}, "
            f"{tuple(labels.shape)}, {tuple(users.shape)}"
        )
    if not (scores.shape == labels.shape == users.shape):
        raise ValueError(
            f"scores, labels and users must have the same length, got {scores.numel()}, "
            f"{labels.numel()}, {users.numel()}"
        )
    if not scores.is_floating_point():
        raise ValueError(f"scores must be a floating tensor, got {scores.dtype}")
    if users.is_floating_point() or users.dtype == torch.bool:
        raise ValueError(f"users must be an integer tensor, got {users.dtype}")
    if labels.is_floating_point():
        raise ValueError(f"labels must be an integer or bool tensor, got {labels.dtype}")
    if labels.numel() > 0 and bool(((labels != 0) & (labels != 1)).any()):
        raise ValueError("labels must be 0 or 1")
    if torch.isnan(scores).any():
        raise ValueError("scores contain NaN")


def per_group_auc(scores: Tensor, labels: Tensor, users: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """AUC of every user, vectorised (no loop over users).

    For each user ``u`` with ``P`` positives and ``N`` negatives the AUC is the
    Mann-Whitney statistic ``(R_pos - P (P + 1) / 2) / (P N)`` where ``R_pos`` is the sum
    of the positives' 1-based ranks (ascending score) within the user, tied scores getting
    their average rank -- i.e. the probability that a random positive outscores a random
    negative, ties counting one half (the same value as the ROC-curve area).

    Args:
        scores: ``FloatTensor[N]`` logits or probabilities (any monotone score).
        labels: ``LongTensor[N]`` (or bool) with values in {0, 1}.
        users: ``LongTensor[N]`` group id of each impression (any integers).

    Returns:
        ``(groups, auc, impressions)``: ``LongTensor[G]`` sorted distinct user ids,
        ``DoubleTensor[G]`` their AUC (NaN where a user's labels are all 0 or all 1) and
        ``LongTensor[G]`` their number of impressions.

    Raises:
        ValueError: on shape/dtype mismatch, labels outside {0, 1}, or NaN scores.
    """
    _check_1d(scores, labels, users)
    device = scores.device
    s = scores.to(torch.float64)
    # Lexicographic sort by (user, score): stable sort by score, then stable sort by user.
    by_score = torch.argsort(s, stable=True)
    order = by_score[torch.argsort(users[by_score], stable=True)]
    u, s, y = users[order], s[order], labels[order].to(torch.float64)

    groups, g_idx, g_cnt = torch.unique_consecutive(u, return_inverse=True, return_counts=True)
    g_start = torch.cumsum(g_cnt, 0) - g_cnt
    n = u.numel()
    # Blocks of tied (user, score): their members share the average of their positions.
    new_block = torch.ones(n, dtype=torch.bool, device=device)
    if n > 1:
        new_block[1:] = (u[1:] != u[:-1]) | (s[1:] != s[:-1])
    b_idx = torch.cumsum(new_block.long(), 0) - 1
    b_cnt = torch.bincount(b_idx)
    b_start = torch.cumsum(b_cnt, 0) - b_cnt
    avg_pos = b_start[b_idx].to(torch.float64) + (b_cnt[b_idx].to(torch.float64) - 1.0) / 2.0
    rank = avg_pos - g_start[g_idx].to(torch.float64) + 1.0  # 1-based rank within the user

    G = groups.numel()
    n_pos = torch.zeros(G, dtype=torch.float64, device=device).scatter_add_(0, g_idx, y)
    r_pos = torch.zeros(G, dtype=torch.float64, device=device).scatter_add_(0, g_idx, rank * y)
    n_neg = g_cnt.to(torch.float64) - n_pos
    denom = n_pos * n_neg
    auc = (r_pos - n_pos * (n_pos + 1.0) / 2.0) / denom
    auc = torch.where(denom > 0, auc, torch.full_like(auc, float("nan")))
    return groups, auc, g_cnt


def group_auc(scores: Tensor, labels: Tensor, users: Tensor) -> Tensor:
    """Group AUC (gAUC): per-user AUC averaged with impression-count weights.

    ``gAUC = sum_u n_u * AUC_u / sum_u n_u`` over users ``u`` whose labels contain both
    classes (others are skipped), ``n_u`` being the user's number of impressions (Zhou et
    al., KDD 2018, eq. 1). Per-user AUCs come from :func:`per_group_auc`.

    Args:
        scores: ``FloatTensor[N]``; labels: ``LongTensor[N]`` in {0, 1};
        users: ``LongTensor[N]``.

    Returns:
        Scalar ``float64`` tensor; NaN if no user has both classes.

    Raises:
        ValueError: as :func:`per_group_auc`.
    """
    _, auc, cnt = per_group_auc(scores, labels, users)
    ok = ~torch.isnan(auc)
    w = cnt.to(torch.float64) * ok
    return (torch.where(ok, auc, torch.zeros_like(auc)) * w).sum() / w.sum()


class CTRMetrics(Metric):
    """AUC, accuracy, F1 and gAUC for CTR prediction.

    Keeps the logits, labels and user ids of every impression (``dist_reduce_fx="cat"``,
    so under DDP ``compute`` sees all impressions, whichever process scored them).

    ``compute()`` returns ``{"auc", "acc", "f1", "gauc"}`` as scalar tensors:

    * ``auc``: ``binary_auroc`` over all impressions;
    * ``acc``, ``f1``: ``binary_accuracy`` / ``binary_f1_score`` with ``sigmoid(logit) >
      threshold`` (default 0.5) as the positive prediction;
    * ``gauc``: :func:`group_auc` (Zhou et al., KDD 2018).

    Probabilities are taken in float64 so that large logits do not saturate to 1.0 and
    create artificial ties in AUC. If all labels are of one class ``auc`` is 0 (with a
    torchmetrics warning) and ``gauc`` is NaN.

    Args:
        threshold: probability threshold for ``acc`` and ``f1``.
        **kwargs: passed to :class:`torchmetrics.Metric`.

    Raises:
        ValueError: at ``update`` if inputs are not 1-D of equal length, logits are not
            floating or contain NaN, labels are outside {0, 1}, or users are not integers.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, threshold: float = 0.5, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= float(threshold) <= 1.0:
            raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
        self.threshold = float(threshold)
        self.add_state("logits", [], dist_reduce_fx="cat")
        self.add_state("labels", [], dist_reduce_fx="cat")
        self.add_state("users", [], dist_reduce_fx="cat")

    def update(self, logits: Tensor, labels: Tensor, users: Tensor) -> None:  # type: ignore[override]
        """Add impressions: ``logits: FloatTensor[N]``, ``labels: LongTensor[N]``, ``users: LongTensor[N]``."""
        _check_1d(logits, labels, users)
        self.logits.append(logits.detach().to(torch.float64))
        self.labels.append(labels.detach().long())
        self.users.append(users.detach().long())

    def compute(self) -> dict[str, Tensor]:
        """``{"auc", "acc", "f1", "gauc"}`` over all impressions seen."""
        logits = dim_zero_cat(self.logits)
        labels = dim_zero_cat(self.labels)
        users = dim_zero_cat(self.users)
        probs = torch.sigmoid(logits.to(torch.float64))
        return {
            "auc": binary_auroc(probs, labels),
            "acc": binary_accuracy(probs, labels, threshold=self.threshold),
            "f1": binary_f1_score(probs, labels, threshold=self.threshold),
            "gauc": group_auc(logits, labels, users),
        }
