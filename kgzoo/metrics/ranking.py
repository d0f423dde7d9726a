"""Top-K full-ranking metrics (Recall, NDCG, Precision, HitRatio, MRR, MAP).

All metrics use binary relevance and are computed per user from one ``torch.topk`` over
the full item catalogue, followed by a gather of the relevance flags and a few
cumulative sums: there is no Python loop over users.

Formulas (for one user with ranked list ``r_1..r_K``, relevance ``rel_i`` in {0, 1} and
``n`` relevant (test) items; the conventions follow RecBole, Zhao et al., CIKM 2021):

* ``recall@K    = sum_{i<=K} rel_i / n``
* ``precision@K = sum_{i<=K} rel_i / K``
* ``hit@K       = 1 if sum_{i<=K} rel_i > 0 else 0`` (HitRatio)
* ``ndcg@K      = DCG@K / IDCG@K`` with ``DCG@K = sum_{i<=K} rel_i / log2(i + 1)`` and the
  ideal DCG taken over ``min(n, K)`` relevant items at the top (Järvelin & Kekäläinen,
  "Cumulated gain-based evaluation of IR techniques", ACM TOIS 2002).
* ``mrr@K       = 1 / i*`` where ``i*`` is the position of the first relevant item within
  the top K, and 0 if there is none.
* ``map@K       = sum_{i<=K} rel_i * precision@i / min(n, K)``.

Ties between scores are broken by ``torch.topk`` (implementation defined, not
necessarily stable); models whose scores tie a lot should be aware of this.

Masking: already-seen (training) items are expected to arrive with score ``-inf``. Such
items only reach the top K when fewer than K items have a finite score, and they then
count as relevant exactly when ``target`` marks them relevant -- which only happens if
the caller masked a test item, and that is the caller's error, not checked here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Union

import torch
from torch import Tensor
from torchmetrics import Metric

from .names import RANKING_METRICS

__all__ = [
    "TopKMetrics",
    "indices_to_dense",
    "topk_metrics",
]


#: A relevance target: dense ``BoolTensor[B, I]``, a sparse ``[B, I]`` tensor (COO/CSR) or a
#: pair ``(row, col)`` of ``LongTensor[T]`` with ``row`` in ``0..B-1`` and ``col`` in ``0..I-1``.
Target = Union[Tensor, tuple[Tensor, Tensor]]


def indices_to_dense(row: Tensor, col: Tensor, B: int, I: int) -> Tensor:  # noqa: E741
    """Turn ``(row, col)`` index pairs into a dense relevance matrix.

    Args:
        row: ``LongTensor[T]``, batch row (``0..B-1``) of each relevant pair.
        col: ``LongTensor[T]``, item id (``0..I-1``) of each relevant pair.
        B: number of rows (users in the batch).
        I: number of columns (items).

    Returns:
        ``BoolTensor[B, I]`` on ``row``'s device, ``True`` at every ``(row[t], col[t])``.
        Duplicate pairs are harmless.

    Raises:
        ValueError: if ``row``/``col`` are not 1-D integer tensors of equal length, if
            ``B`` or ``I`` is negative, or if an index lies outside ``[0, B)`` / ``[0, I)``.
    """
    _check_index_pair(row, col, B, I)
    dense = torch.zeros(B, I, dtype=torch.bool, device=row.device)
    if row.numel() > 0:
        dense[row.long(), col.long().to(row.device)] = True
    return dense


def _check_index_pair(row: Tensor, col: Tensor, B: int, I: int) -> None:  # noqa: E741
    """The checks of an index-pair target (see :func:`indices_to_dense` for the errors)."""
    if row.dim() != 1 or col.dim() != 1 or row.shape != col.shape:
        raise ValueError(
            f"row and col must be 1-D tensors of equal length, got shapes {tuple(row.shape)} and {tuple(col.shape)}"
        )
    if row.is_floating_point() or col.is_floating_point() or row.dtype == torch.bool or col.dtype == torch.bool:
        raise ValueError(f"row and col must be integer tensors, got {row.dtype} and {col.dtype}")
    if B < 0 or I < 0:
        raise ValueError(f"B and I must be non-negative, got B={B}, I={I}")
    if row.numel() > 0:
        if int(row.min()) < 0 or int(row.max()) >= B:
            raise ValueError(f"row indices must lie in [0, {B}), got range [{int(row.min())}, {int(row.max())}]")
        if int(col.min()) < 0 or int(col.max()) >= I:
            raise ValueError(f"col indices must lie in [0, {I}), got range [{int(col.min())}, {int(col.max())}]")


def _as_dense_target(target: Tensor, shape: torch.Size, device: torch.device) -> Tensor:
    """A dense or sparse tensor target as a ``BoolTensor[B, I]`` on ``device`` (index pairs never
    become dense: :func:`_index_keys`)."""
    B, I = shape  # noqa: E741
    if not isinstance(target, Tensor):
        raise ValueError(f"target must be a tensor or a (row, col) pair, got {type(target).__name__}")
    if target.layout != torch.strided:
        target = target.to_dense()
    if tuple(target.shape) != (B, I):
        raise ValueError(f"target shape {tuple(target.shape)} does not match scores shape {(B, I)}")
    if target.dtype != torch.bool:
        target = target != 0
    return target.to(device)


def _check_ks(ks: Iterable[int]) -> list[int]:
    """Validate and de-duplicate a list of cut-offs (order kept)."""
    if isinstance(ks, int):
        ks = [ks]
    out: list[int] = []
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, int):
            raise ValueError(f"K must be an int, got {k!r}")
        if k < 1:
            raise ValueError(f"K must be >= 1, got K={k}")
        if k not in out:
            out.append(k)
    if not out:
        raise ValueError("ks must hold at least one cut-off K")
    return out


def _check_metrics(metrics: Iterable[str]) -> list[str]:
    if isinstance(metrics, str):
        metrics = [metrics]
    out: list[str] = []
    for m in metrics:
        if m not in RANKING_METRICS:
            raise ValueError(f"unknown ranking metric {m!r}; known: {', '.join(RANKING_METRICS)}")
        if m not in out:
            out.append(m)
    if not out:
        raise ValueError("metrics must name at least one metric")
    return out


def topk_metrics(
    scores: Tensor,
    target: Target,
    ks: Sequence[int],
    metrics: Sequence[str] = RANKING_METRICS,
) -> dict[str, Tensor]:
    """Per-user top-K ranking metrics over the full item catalogue.

    Formulas and references are in the module docstring (NDCG: Järvelin & Kekäläinen,
    TOIS 2002; Recall/Precision/HitRatio/MRR/MAP@K conventions: RecBole, Zhao et al.,
    CIKM 2021). Computation: one ``torch.topk`` with ``max(ks)``, the relevance flags of
    the top-K items, cumulative sums; vectorised over the batch. An index-pair target is
    never expanded to a dense ``[B, I]`` matrix: the flags are a membership test of the
    top-K ``(row, item)`` keys among the target's sorted keys, and ``n`` per user is a
    bincount of the distinct target pairs.

    Args:
        scores: ``FloatTensor[B, I]``, higher is better. Masked (seen) items should be
            ``-inf``; they count as relevant only if ``target`` says so (see module doc).
        target: relevance, one of ``BoolTensor[B, I]`` (any dtype is accepted, non-zero
            means relevant), a sparse COO/CSR ``[B, I]`` tensor, or an index pair
            ``(row: LongTensor[T], col: LongTensor[T])`` with ``row`` in ``0..B-1``
            (duplicate pairs count once).
        ks: cut-offs, each ``1 <= K <= I``; duplicates are ignored.
        metrics: subset of :data:`RANKING_METRICS` to return.

    Returns:
        ``{f"{metric}@{K}": FloatTensor[B]}`` (float32, or float64 if ``scores`` is
        float64), one value per user. Users with no relevant item get 0 for every metric
        (:class:`TopKMetrics` skips such users instead).

    Raises:
        ValueError: if ``scores`` is not a 2-D floating tensor or contains NaN, if a K is
            not an int, is < 1, or exceeds the number of items ``I``, if a metric name is
            unknown, or if ``target`` has the wrong shape / invalid indices.
    """
    ks = _check_ks(ks)
    metrics = _check_metrics(metrics)
    hits, n_rel = _ranked_relevance(scores, target, ks)
    table = _topk_table(hits, n_rel, ks, metrics, torch.float64 if scores.dtype == torch.float64 else torch.float32)
    return {f"{m}@{k}": table[i, :, j] for j, k in enumerate(ks) for i, m in enumerate(metrics)}


def _check_scores(scores: Tensor, ks: list[int]) -> None:
    if scores.dim() != 2 or not scores.is_floating_point():
        raise ValueError(f"scores must be a 2-D floating tensor [B, I], got {scores.dtype} {tuple(scores.shape)}")
    I = scores.shape[1]  # noqa: E741
    for k in ks:
        if k > I:
            raise ValueError(f"K={k} is larger than the number of items I={I}")


def _index_keys(target: tuple[Tensor, Tensor], B: int, I: int, device: torch.device) -> Tensor:  # noqa: E741
    """Sorted distinct keys ``row * I + col`` (``LongTensor[T']``) of an index-pair target, checked
    as :func:`indices_to_dense` checks it."""
    if len(target) != 2:
        raise ValueError(f"index-form target must be a pair (row, col), got {len(target)} elements")
    row, col = target
    _check_index_pair(row, col, B, I)
    row, col = row.to(device=device, dtype=torch.long), col.to(device=device, dtype=torch.long)
    return torch.unique(row * I + col, sorted=True)


def _ranked_relevance(scores: Tensor, target: Target, ks: list[int],
                      scratch: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Validate the inputs; return ``(hits, n_rel)``: the relevance flags of each user's top
    ``max(ks)`` items in rank order (``BoolTensor[B, maxK]``) and the number of relevant items
    per user (``LongTensor[B]``).

    NaN is checked on the top-K values only: ``torch.topk`` ranks NaN above every number, so a
    row holding a NaN anywhere has one among its top values. ``scratch``: an all-``False``
    ``BoolTensor`` of at least ``B * I`` entries on the scores' device; an index-pair target's
    flags are then read from it (its keys set, the top-K keys gathered, the keys cleared again:
    work in the target and top-K sizes, not ``B * I``), else found by ``torch.isin``.
    """
    _check_scores(scores, ks)
    B, I = scores.shape  # noqa: E741
    top = torch.topk(scores, max(ks), dim=1, largest=True, sorted=True)
    if torch.isnan(top.values).any():
        raise ValueError("scores contain NaN")
    if isinstance(target, (tuple, list)):
        keys = _index_keys(target, B, I, scores.device)
        rows = torch.arange(B, device=scores.device).unsqueeze(1)
        ranked = rows * I + top.indices
        if scratch is not None and scratch.numel() >= B * I and scratch.device == scores.device:
            try:
                scratch[keys] = True
                hits = scratch[ranked]
            finally:
                scratch[keys] = False
        else:
            hits = torch.isin(ranked, keys, assume_unique=True)  # both sides distinct
        n_rel = torch.bincount(keys // I, minlength=B) if I > 0 else torch.zeros(B, dtype=torch.long)
        return hits, n_rel
    rel = _as_dense_target(target, scores.shape, scores.device)
    return rel.gather(1, top.indices), rel.sum(dim=1)


def _topk_table(hits: Tensor, n_rel: Tensor, ks: list[int], metrics: list[str],
                dtype: torch.dtype = torch.float32) -> Tensor:
    """Every metric at every K from :func:`_ranked_relevance`'s flags ``hits`` (``BoolTensor[B, maxK]``)
    and counts ``n_rel`` (``LongTensor[B]``), vectorised over the users and the cut-offs.

    Returns:
        ``Tensor[len(metrics), B, len(ks)]`` of ``dtype``: entry ``[m, b, j]`` is ``metrics[m]@ks[j]``
        of user ``b`` (formulas in the module docstring); 0 for a user without a relevant item.
    """
    max_k = max(ks)
    hits = hits.to(dtype)  # [B, maxK]
    n_rel = n_rel.to(dtype).unsqueeze(1)  # [B, 1]
    has_rel = n_rel > 0
    at = torch.tensor(ks, device=hits.device) - 1  # column of each K
    k = torch.tensor(ks, device=hits.device, dtype=dtype)  # [nK]

    pos = torch.arange(1, max_k + 1, device=hits.device, dtype=dtype)  # 1..maxK
    cum_hits = hits.cumsum(dim=1)  # [B, maxK]
    c = cum_hits[:, at]  # [B, nK]
    n_cut = torch.minimum(n_rel, k).clamp(min=1)  # min(n, K), at least 1
    out: list[Tensor] = []
    for m in metrics:
        if m == "recall":
            v = c / n_rel.clamp(min=1)
        elif m == "precision":  # by a Python K, as RecBole (a tensor K could round otherwise on CUDA)
            v = torch.stack([c[:, j] / kk for j, kk in enumerate(ks)], dim=1)
        elif m == "hit":
            v = (c > 0).to(dtype)
        elif m == "ndcg":
            discount = 1.0 / torch.log2(pos + 1.0)
            dcg = (hits * discount).cumsum(dim=1)[:, at]
            ideal = discount.cumsum(dim=0)[n_cut.long() - 1]  # ideal DCG with min(n, K) relevant items at the top
            v = torch.where(has_rel, dcg / ideal, torch.zeros_like(c))
        elif m == "mrr":
            first = hits.argmax(dim=1, keepdim=True).to(dtype) + 1.0  # argmax returns the first maximum
            first = torch.where(hits.any(dim=1, keepdim=True), first, torch.full_like(first, float("inf")))
            v = torch.where(first <= k, 1.0 / first, torch.zeros_like(c))
        else:  # map
            v = (hits * cum_hits / pos).cumsum(dim=1)[:, at] / n_cut
        out.append(v)
    return torch.stack(out)


class TopKMetrics(Metric):
    """Streaming top-K ranking metrics averaged over evaluated users.

    ``update`` computes :func:`topk_metrics` for a batch and accumulates, per metric, the
    sum of per-user values plus the number of evaluated users (all with
    ``dist_reduce_fx="sum"``); ``compute`` returns sum / count. Users without any
    relevant item are not evaluated: they are counted in ``skipped_users`` instead.
    Because only sums and counts are kept, DDP gives exactly the single-process numbers
    as long as every user is evaluated exactly once (no padding sampler).

    Args:
        ks: cut-offs K (ints >= 1); checked against the number of items at ``update``.
        metrics: names from :data:`RANKING_METRICS` (``recall``, ``ndcg``,
            ``precision``, ``hit``, ``mrr``, ``map``).
        **kwargs: passed to :class:`torchmetrics.Metric`.

    States:
        ``sums``: ``float64[len(keys)]``; ``count``, ``skipped_users``: ``int64`` scalars.

    Raises:
        ValueError: at construction for unknown metric names or K < 1; at ``update`` when a
            K exceeds the number of items (the message names K and I) or the inputs are
            invalid (see :func:`topk_metrics`).

    ``compute()`` returns ``{f"{metric}@{K}": scalar tensor}`` in the order metrics x ks;
    with no evaluated user every value is NaN.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    sums: Tensor
    count: Tensor
    skipped_users: Tensor

    def __init__(self, ks: Sequence[int] = (10, 20), metrics: Sequence[str] = RANKING_METRICS, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ks = _check_ks(ks)
        self.metrics = _check_metrics(metrics)
        self.keys = [f"{m}@{k}" for m in self.metrics for k in self.ks]
        self.add_state("sums", torch.zeros(len(self.keys), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("skipped_users", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    #: the largest ``B * I`` (bytes) of the scratch flags kept for index-pair targets (:meth:`_scratch_for`)
    scratch_limit: int = 64 * 2**20

    def _scratch_for(self, scores: Tensor) -> Tensor | None:
        """An all-``False`` ``BoolTensor`` of at least ``B * I`` entries on the scores' device, kept
        between batches (not a metric state: never synced, reset or saved), for
        :func:`_ranked_relevance`; ``None`` above :attr:`scratch_limit`."""
        need = scores.shape[0] * scores.shape[1] if scores.dim() == 2 else 0
        if need > self.scratch_limit:
            return None
        buf = self.__dict__.get("_scratch")
        if buf is None or buf.numel() < need or buf.device != scores.device:
            buf = torch.zeros(need, dtype=torch.bool, device=scores.device)
            self.__dict__["_scratch"] = buf
        return buf

    def update(self, scores: Tensor, target: Target) -> None:  # type: ignore[override]
        """Add one batch.

        Args:
            scores: ``FloatTensor[B, I]`` (seen items at ``-inf``).
            target: ``BoolTensor[B, I]``, sparse ``[B, I]``, or ``(row, col)`` index pair.
        """
        hits, n_rel = _ranked_relevance(scores, target, self.ks, self._scratch_for(scores))
        dtype = torch.float64 if scores.dtype == torch.float64 else torch.float32
        table = _topk_table(hits, n_rel, self.ks, self.metrics, dtype)  # [metrics, B, ks]
        valid = (n_rel > 0).to(device=self.sums.device)
        # one row per key (metrics x ks, the order of self.keys), users along the row
        stacked = table.transpose(1, 2).reshape(len(self.keys), -1).to(device=self.sums.device, dtype=torch.float64)
        self.sums += (stacked * valid).sum(dim=1)
        n_valid = valid.sum()
        self.count += n_valid
        self.skipped_users += valid.numel() - n_valid

    def compute(self) -> dict[str, Tensor]:
        """Mean of every metric over evaluated users: ``{name: scalar float64 tensor}``."""
        means = self.sums / self.count.to(torch.float64)
        return {key: means[i] for i, key in enumerate(self.keys)}
