"""Vectors for rows a trained model has never seen: the closed-form fold-in of new users (or
items) on frozen vectors, and the mean of graph neighbours' vectors (issue 15, part 7).

Both are batched tensor algebra: no Python loop over users, items or edges.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


def fold_in(fixed: Tensor, rows: Tensor, cols: Tensor, n_rows: int, target: float | Tensor = 1.0,
            reg: float = 1.0, alpha: float = 0.0, implicit: bool = True, prior: Tensor | None = None,
            chunk: int = 4096) -> Tensor:
    """Closed-form ridge fold-in of ``n_rows`` new vectors on the frozen vectors ``fixed``.

    Row ``r``'s vector minimises (Hu, Koren & Volinsky, "Collaborative Filtering for Implicit
    Feedback Datasets", ICDM 2008, eq. 3 for one user, with the item factors fixed; the fold-in
    of a new user, section 4, and Rendle & Schmidt-Thieme, RecSys 2008, for MF)::

        sum_{j observed} c (p_rj - x_r . y_j)^2  +  [implicit] sum_{j unobserved} (x_r . y_j)^2
        + reg * ||x_r - prior_r||^2

    with confidence ``c = 1 + alpha`` and ``y_j = fixed[j]``; its solution is
    ``x_r = (w Y^T Y + alpha' Y_r^T Y_r + reg I)^-1 (c Y_r^T p_r + reg prior_r)`` (``w = 1``,
    ``alpha' = alpha`` with ``implicit``, else ``w = 0``, ``alpha' = 1``, ``c = 1``: ridge
    regression on the observed entries only). Solved for all rows at once
    (:func:`torch.linalg.solve` over a ``[n_rows, d, d]`` batch; the per-row Gram matrices are
    summed with ``index_add_`` over ``chunk`` observations at a time).

    Args:
        fixed: FloatTensor ``[m, d]``: the frozen vectors (item vectors to fold users in).
        rows: LongTensor ``[P]`` in ``0..n_rows-1``, cols: LongTensor ``[P]`` in ``0..m-1``: the
            observed (row, column) pairs (each once).
        n_rows: how many vectors to fold in.
        target: the observed value ``p`` (a float, or FloatTensor ``[P]``): ``1`` for implicit
            feedback, or a score on the model's own scale.
        reg: ``lambda > 0`` (or ``>= 0`` when every row has at least ``d`` observations).
        alpha: ``alpha >= 0``, the extra confidence of an observed entry (Hu et al. eq. 2
            with ``r = 1``); used with ``implicit``.
        implicit: add the unobserved entries as zeros of confidence 1 (Hu et al.); ``False``:
            ridge on the observed entries only (a planted vector is recovered exactly as
            ``reg -> 0`` given ``d`` independent observations).
        prior: FloatTensor ``[n_rows, d]`` the ridge term pulls toward (default 0).

    Returns:
        FloatTensor ``[n_rows, d]`` (the dtype of ``fixed``; solved in float64).

    Raises:
        ValueError: ``rows``/``cols`` of different shapes, ``reg < 0`` or ``alpha < 0``.
    """
    if rows.shape != cols.shape or rows.dim() != 1:
        raise ValueError(f"fold_in: rows {tuple(rows.shape)} and cols {tuple(cols.shape)} must be the same [P]")
    if reg < 0 or alpha < 0:
        raise ValueError(f"fold_in: reg={reg} and alpha={alpha} must be >= 0")
    y = fixed.detach().double()
    d = y.shape[1]
    p = torch.as_tensor(target, dtype=torch.float64).expand(rows.shape[0])
    w_obs, c = (alpha, 1.0 + alpha) if implicit else (1.0, 1.0)
    A = torch.zeros(n_rows, d, d, dtype=torch.float64)
    b = torch.zeros(n_rows, d, dtype=torch.float64)
    for s in range(0, rows.shape[0], chunk):  # bounded memory: chunk x d x d outer products at a time
        r, yj = rows[s:s + chunk], y[cols[s:s + chunk]]
        A.index_add_(0, r, w_obs * yj.unsqueeze(2) * yj.unsqueeze(1))
        b.index_add_(0, r, c * p[s:s + chunk].unsqueeze(1) * yj)
    if implicit:
        A += y.T @ y
    A += reg * torch.eye(d, dtype=torch.float64)
    if prior is not None:
        b += reg * prior.detach().double()
    return torch.linalg.solve(A, b).to(fixed.dtype)


def neighbour_mean(src: Tensor, dst: Tensor, n_rows: int, table: Tensor) -> tuple[Tensor, Tensor]:
    """Mean of ``table[dst]`` over the edges ``src -> dst`` of each row ``0..n_rows-1``.

    Args:
        src: LongTensor ``[M]`` in ``0..n_rows-1``. dst: LongTensor ``[M]`` rows of ``table``.
        table: FloatTensor ``[n, d]``.

    Returns:
        ``(FloatTensor [n_rows, d] (0 for a row without an edge), counts LongTensor [n_rows])``.
    """
    out = torch.zeros(n_rows, table.shape[1], dtype=table.dtype, device=table.device)
    out.index_add_(0, src, table.detach()[dst])
    n = torch.bincount(src, minlength=n_rows)
    return out / n.clamp(min=1).unsqueeze(1).to(table.dtype), n


def grown_rows(weight: Tensor, new_index: Tensor, n: int) -> Tensor:
    """A ``[n, d]`` table holding row ``k`` of ``weight`` at ``new_index[k]`` and zeros elsewhere
    (the rows a growth adds, to be initialised by the caller).

    Args:
        weight: ``[n0, d]``. new_index: LongTensor ``[n0]`` distinct ids in ``0..n-1``.
    """
    out = weight.detach().new_zeros((n, *weight.shape[1:]))
    out[new_index] = weight.detach()
    return out


def grown_embedding(emb: nn.Embedding, new_index: Tensor, n: int) -> nn.Embedding:
    """A trainable ``nn.Embedding`` of ``n`` rows holding ``emb``'s rows at ``new_index`` (LongTensor
    ``[n0]``) and zeros in the others (:func:`grown_rows`)."""
    return nn.Embedding.from_pretrained(grown_rows(emb.weight, new_index, n), freeze=False)


def init_from_old_neighbours(table: Tensor, old: Tensor, src: Tensor, dst: Tensor,
                             settable: Tensor | None = None) -> Tensor:
    """Rows of ``table`` that are not ``old`` (and are ``settable``) set in place to the mean of
    their ``old`` neighbours' rows over the undirected edges ``src -- dst``
    (:func:`neighbour_mean`); a new row without an old neighbour stays as it is.

    Args:
        table: FloatTensor ``[n, d]``. old: BoolTensor ``[n]``: the trained rows.
        src, dst: LongTensor ``[M]`` edges (both directions are used).
        settable: BoolTensor ``[n]``: the new rows to set (default: every new row).

    Returns:
        BoolTensor ``[n]``: the rows set.
    """
    a, b = torch.cat([src, dst]), torch.cat([dst, src])
    keep = ~old[a] & old[b] & (settable[a] if settable is not None else True)
    mean, n = neighbour_mean(a[keep], b[keep], table.shape[0], table)
    hit = n > 0
    table[hit] = mean[hit]
    return hit
