"""Filtered link-prediction ranks and metrics for KG embedding models.

Setting: for a query ``(h, r, ?)`` a model scores every entity as tail. In the
"filtered" setting (Bordes et al., "Translating Embeddings for Modeling Multi-relational
Data", NeurIPS 2013) every *other* known true tail of ``(h, r)`` is removed from the
candidates before ranking the true tail. Ties are resolved with the "realistic" rank,
the mean of the optimistic rank (1 + #strictly better) and the pessimistic rank
(#better or equal, the true entity included) -- PyKEEN's default (Berrendorf et al.,
"On the Ambiguity of Rank-Based Evaluation of Entity Alignment or Link Prediction
Methods", 2020; Ali et al., "PyKEEN 1.0", JMLR 2021).

Metrics over ranks ``r_q``: ``mrr = mean(1 / r_q)``, ``hits@k = mean(r_q <= k)``,
``mean_rank = mean(r_q)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["LinkPredictionMetrics", "build_filter", "filtered_ranks", "link_metrics"]


def _check_hits_ks(ks: Sequence[int]) -> list[int]:
    out: list[int] = []
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"hits@k cut-offs must be ints >= 1, got {k!r}")
        if k not in out:
            out.append(k)
    return out


def filtered_ranks(
    scores: Tensor,
    true: Tensor,
    filter_row: Tensor | None = None,
    filter_col: Tensor | None = None,
) -> Tensor:
    """Filtered, realistic (tie-averaged) 1-based rank of each query's true entity.

    Candidates at ``(filter_row[f], filter_col[f])`` are excluded (treated as ``-inf``,
    without modifying ``scores``) unless ``filter_col[f]`` is the query's own true entity
    (Bordes et al., NeurIPS 2013). The rank is ``(optimistic + pessimistic) / 2`` with
    ``optimistic = 1 + #{e: s_e > s_true}`` and ``pessimistic = #{e: s_e >= s_true}``
    over the remaining candidates (PyKEEN's "realistic" rank, Berrendorf et al., 2020).

    Args:
        scores: ``FloatTensor[B, E]``, higher is better.
        true: ``LongTensor[B]``, the true entity of each query, in ``0..E-1``.
        filter_row: ``LongTensor[F]`` query index (``0..B-1``) of each pair to exclude,
            e.g. from :func:`build_filter`; ``None`` for the raw (unfiltered) setting.
        filter_col: ``LongTensor[F]`` entity id of each pair to exclude.

    Returns:
        ``FloatTensor[B]`` ranks in ``[1, E]`` (``float32``; ``float64`` if ``scores``
        is), possibly half-integers when ties occur.

    Raises:
        ValueError: if shapes or dtypes do not match, an index is out of range, only one
            of ``filter_row``/``filter_col`` is given, or ``scores`` contains NaN.
    """
    if scores.dim() != 2 or not scores.is_floating_point():
        raise ValueError(f"scores must be a 2-D floating tensor [B, E], got {scores.dtype} {tuple(scores.shape)}")
    B, E = scores.shape
    if true.dim() != 1 or true.numel() != B or true.is_floating_point() or true.dtype == torch.bool:
        raise ValueError(f"true must be an integer tensor of shape [{B}], got {true.dtype} {tuple(true.shape)}")
    if (filter_row is None) != (filter_col is None):
        raise ValueError("give both filter_row and filter_col, or neither")
    if torch.isnan(scores).any():
        raise ValueError("scores contain NaN")
    true = true.to(device=scores.device, dtype=torch.long)
    if B > 0 and (int(true.min()) < 0 or int(true.max()) >= E):
        raise ValueError(f"true entities must lie in [0, {E})")
    true_score = scores.gather(1, true[:, None])  # [B, 1]
    better = scores > true_score
    equal = scores == true_score
    if filter_row is not None and filter_row.numel() > 0:
        if filter_row.shape != filter_col.shape or filter_row.dim() != 1:
            raise ValueError("filter_row and filter_col must be 1-D tensors of equal length")
        filter_row = filter_row.to(device=scores.device, dtype=torch.long)
        filter_col = filter_col.to(device=scores.device, dtype=torch.long)
        if int(filter_row.min()) < 0 or int(filter_row.max()) >= B:
            raise ValueError(f"filter_row must lie in [0, {B})")
        if int(filter_col.min()) < 0 or int(filter_col.max()) >= E:
            raise ValueError(f"filter_col must lie in [0, {E})")
        keep = torch.ones(B, E, dtype=torch.bool, device=scores.device)
        keep[filter_row, filter_col] = False
        keep[torch.arange(B, device=scores.device), true] = True
        better &= keep
        equal &= keep
    n_better = better.sum(dim=1)
    n_equal = equal.sum(dim=1)  # includes the true entity itself
    dtype = torch.float64 if scores.dtype == torch.float64 else torch.float32
    optimistic = n_better.to(dtype) + 1.0
    pessimistic = (n_better + n_equal).to(dtype)
    return (optimistic + pessimistic) / 2.0


def link_metrics(ranks: Tensor, ks: Sequence[int] = (1, 3, 10)) -> dict[str, Tensor]:
    """Mean reciprocal rank, Hits@k and mean rank from 1-based ranks.

    Args:
        ranks: ``FloatTensor[B]`` (or integer) ranks ``>= 1``, e.g. from
            :func:`filtered_ranks`.
        ks: cut-offs for Hits@k; a rank counts as a hit when ``rank <= k``.

    Returns:
        ``{"mrr", "hits@1", "hits@3", "hits@10", "mean_rank"}`` (hits keys follow ``ks``)
        as scalar float tensors; NaN for an empty ``ranks``.

    Raises:
        ValueError: if ``ranks`` is not 1-D, any rank is < 1, or a k is not an int >= 1.
    """
    ks = _check_hits_ks(ks)
    if ranks.dim() != 1:
        raise ValueError(f"ranks must be 1-D, got shape {tuple(ranks.shape)}")
    r = ranks.to(torch.float64)
    if r.numel() > 0 and bool((r < 1).any()):
        raise ValueError("ranks must be >= 1")
    out = {"mrr": (1.0 / r).mean()}
    for k in ks:
        out[f"hits@{k}"] = (r <= k).to(torch.float64).mean()
    out["mean_rank"] = r.mean()
    return out


def build_filter(known: Tensor, queries: Tensor, side: str = "tail") -> tuple[Tensor, Tensor]:
    """Find, for each query, all known true entities on the predicted side.

    For ``side="tail"`` and query ``(h, r, ?)`` returns every ``t`` with ``(h, r, t)`` in
    ``known``; for ``side="head"`` and ``(?, r, t)`` every ``h`` with ``(h, r, t)`` in
    ``known``. Vectorised: the pair ``(h, r)`` (or ``(t, r)``) is combined into one int64
    key, ``known`` is sorted by key once and each query's range is found with
    ``torch.searchsorted``; no loop over triples or queries.

    Args:
        known: ``LongTensor[M, 3]`` (head, relation, tail) triples known to be true
            (typically train + valid + test).
        queries: ``LongTensor[B, 3]`` evaluation triples; the column being predicted is
            ignored when matching.
        side: ``"tail"`` or ``"head"``.

    Returns:
        ``(filter_row, filter_col)``, both ``LongTensor[F]``: query index in ``0..B-1``
        and entity id, grouped by query, ready for :func:`filtered_ranks`. A query's own
        true entity appears too if it is in ``known`` (``filtered_ranks`` keeps it).

    Raises:
        ValueError: for a bad ``side``, shapes other than ``[*, 3]``, non-integer dtypes or
            negative ids.
    """
    if side not in ("tail", "head"):
        raise ValueError(f"side must be 'tail' or 'head', got {side!r}")
    for name, t in (("known", known), ("queries", queries)):
        if t.dim() != 2 or t.shape[1] != 3:
            raise ValueError(f"{name} must have shape [*, 3], got {tuple(t.shape)}")
        if t.is_floating_point() or t.dtype == torch.bool:
            raise ValueError(f"{name} must be an integer tensor, got {t.dtype}")
        if t.numel() > 0 and int(t.min()) < 0:
            raise ValueError(f"{name} contains negative ids")
    device = queries.device
    known = known.to(device=device, dtype=torch.long)
    queries = queries.to(device=device, dtype=torch.long)
    anchor, target = (0, 2) if side == "tail" else (2, 0)
    empty = torch.zeros(0, dtype=torch.long, device=device)
    if known.shape[0] == 0 or queries.shape[0] == 0:
        return empty, empty.clone()

    n_rel = int(torch.maximum(known[:, 1].max(), queries[:, 1].max())) + 1
    k_key = known[:, anchor] * n_rel + known[:, 1]
    q_key = queries[:, anchor] * n_rel + queries[:, 1]
    k_key, order = torch.sort(k_key, stable=True)
    k_target = known[order, target]

    lo = torch.searchsorted(k_key, q_key, right=False)
    hi = torch.searchsorted(k_key, q_key, right=True)
    counts = hi - lo  # [B]
    B = queries.shape[0]
    filter_row = torch.repeat_interleave(torch.arange(B, device=device), counts)
    # offset of each output within its query's block
    starts = torch.cumsum(counts, 0) - counts
    within = torch.arange(filter_row.numel(), device=device) - starts[filter_row]
    filter_col = k_target[lo[filter_row] + within]
    return filter_row, filter_col


class LinkPredictionMetrics(Metric):
    """Streaming filtered link-prediction metrics: MRR, Hits@k, mean rank.

    ``update`` computes :func:`filtered_ranks` and accumulates sums of reciprocal ranks,
    ranks and hits plus a count of queries, all with ``dist_reduce_fx="sum"``, so DDP
    gives the single-process numbers when every query is evaluated exactly once.

    Args:
        ks: Hits@k cut-offs (ints >= 1).
        **kwargs: passed to :class:`torchmetrics.Metric`.

    Raises:
        ValueError: for invalid ``ks``; at ``update`` as :func:`filtered_ranks`.

    ``compute()`` returns the keys of :func:`link_metrics` (``mrr``, ``hits@k``...,
    ``mean_rank``) as scalar float64 tensors (NaN before any query).
    """

    is_differentiable = False
    higher_is_better = None  # mrr/hits: higher, mean_rank: lower
    full_state_update = False

    def __init__(self, ks: Sequence[int] = (1, 3, 10), **kwargs) -> None:
        super().__init__(**kwargs)
        self.ks = _check_hits_ks(ks)
        self.add_state("sum_rr", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("sum_rank", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("sum_hits", torch.zeros(len(self.ks), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(  # type: ignore[override]
        self,
        scores: Tensor,
        true: Tensor,
        filter_row: Tensor | None = None,
        filter_col: Tensor | None = None,
    ) -> None:
        """Add queries: arguments as :func:`filtered_ranks`.

        For head and tail prediction call it once per side (each call adds ``B`` queries).
        """
        r = filtered_ranks(scores, true, filter_row, filter_col).to(self.sum_rr.device, torch.float64)
        self.sum_rr += (1.0 / r).sum()
        self.sum_rank += r.sum()
        ks = torch.tensor(self.ks, dtype=torch.float64, device=r.device)
        self.sum_hits += (r[:, None] <= ks[None, :]).to(torch.float64).sum(dim=0)
        self.count += r.numel()

    def compute(self) -> dict[str, Tensor]:
        """``{"mrr", "hits@k"..., "mean_rank"}`` averaged over all queries."""
        n = self.count.to(torch.float64)
        out = {"mrr": self.sum_rr / n}
        for i, k in enumerate(self.ks):
            out[f"hits@{k}"] = self.sum_hits[i] / n
        out["mean_rank"] = self.sum_rank / n
        return out
