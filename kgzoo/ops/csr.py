"""Compressed sparse rows (CSR) of 0/1 matrices as ``(indptr, indices)`` LongTensors, and
:func:`sparse_csr`, the one maker of ``torch.sparse_csr`` tensors in kgzoo.

Used by the DataModule (train / valid / test item lists, evaluation masks) and by
``Recommender.recommend`` (excluding seen items). Vectorised: no Python loop over rows.
"""
from __future__ import annotations

import warnings

import torch
from torch import Tensor

#: torch's notice on the first sparse CSR tensor of a process (a UserWarning, TORCH_WARN_ONCE):
#: kgzoo uses CSR products knowingly, so the notice says nothing about a run
CSR_BETA_WARNING = r"Sparse CSR tensor support is in beta state"
_csr_notice_consumed = False


def sparse_csr(crow: Tensor, col: Tensor, values: Tensor, size: tuple[int, int]) -> Tensor:
    """``torch.sparse_csr_tensor(crow, col, values, size)`` without invariant checks and without
    torch's beta notice.

    Args:
        crow: Int/LongTensor ``[n_rows + 1]`` row pointers; col: Int/LongTensor ``[nnz]`` column
            indices (the dtype of ``crow``); values: Tensor ``[nnz]``; size: ``(n_rows, n_cols)``.

    Returns:
        A ``torch.sparse_csr`` tensor ``[n_rows, n_cols]`` of ``values``' dtype (``values`` not detached).

    The indices are built by kgzoo (:func:`to_csr`, :class:`~kgzoo.models.layers.propagation.SparsePattern`),
    so the invariant checks are opted out of explicitly (``check_invariants=False``, what torch
    does implicitly, with a warning). torch's one-per-process "Sparse CSR tensor support is in beta
    state" UserWarning is filtered around the first call only (:data:`CSR_BETA_WARNING`, matched
    by message): entering :func:`warnings.catch_warnings` on every call would reset Python's
    "already shown" record, so other once-per-place warnings would repeat every step.
    """
    global _csr_notice_consumed
    if _csr_notice_consumed:
        return torch.sparse_csr_tensor(crow, col, values, size, check_invariants=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=CSR_BETA_WARNING, category=UserWarning)
        out = torch.sparse_csr_tensor(crow, col, values, size, check_invariants=False)
    _csr_notice_consumed = True
    return out


def to_csr(rows: Tensor, cols: Tensor, n_rows: int) -> tuple[Tensor, Tensor]:
    """``(indptr LongTensor [n_rows + 1], indices LongTensor [nnz])`` of the 0/1 matrix with ones
    at ``(rows, cols)`` (LongTensors ``[nnz]``), columns sorted within each row."""
    order = torch.argsort(rows * (int(cols.max()) + 1 if cols.numel() else 1) + cols)
    counts = torch.bincount(rows, minlength=n_rows)
    indptr = torch.zeros(n_rows + 1, dtype=torch.long)
    indptr[1:] = torch.cumsum(counts, 0)
    return indptr, cols[order]


def csr_rows(indptr: Tensor, indices: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
    """The non-zeros of ``rows`` of a CSR matrix, as (batch row, column) pairs.

    Args:
        indptr: LongTensor ``[n_rows + 1]``; indices: LongTensor ``[nnz]``; rows: LongTensor ``[B]``.

    Returns:
        ``(row, col)``: LongTensors ``[T]``, ``row`` in ``0..B-1`` (position in ``rows``).
    """
    starts, ends = indptr[rows], indptr[rows + 1]
    lens = ends - starts
    row = torch.repeat_interleave(torch.arange(rows.numel()), lens)
    offset = torch.arange(int(lens.sum())) - torch.repeat_interleave(torch.cumsum(lens, 0) - lens, lens)
    return row, indices[starts[row] + offset]


def csr_padded(indptr: Tensor, values: Tensor, rows: Tensor, width: int | None = None,
               last: bool = False) -> tuple[Tensor, Tensor]:
    """``rows`` of a CSR list-of-lists as a padded matrix (vectorised, no loop over rows).

    Args:
        indptr: LongTensor ``[n_rows + 1]``; values: Tensor ``[nnz]`` (any dtype); rows: LongTensor ``[B]``.
        width: the most values kept per row (``None``: all); the matrix is as wide as the
            longest kept row of the batch (at least 1 column).
        last: keep the last ``width`` values of a longer row (a click history: the most
            recent clicks), else the first.

    Returns:
        ``(padded [B, W] of values' dtype (0 where padded), mask BoolTensor [B, W])``, each
        row's values left-aligned in their original order.
    """
    starts, ends = indptr[rows], indptr[rows + 1]
    lens = ends - starts
    if width is not None:
        if last:
            starts = torch.maximum(starts, ends - int(width))
        lens = lens.clamp(max=int(width))
    W = max(1, int(lens.max())) if lens.numel() else 1
    col = torch.arange(W)
    mask = col.unsqueeze(0) < lens.unsqueeze(1)
    idx = (starts.unsqueeze(1) + col).masked_fill(~mask, 0)
    if values.numel() == 0:
        return torch.zeros(rows.numel(), W, dtype=values.dtype), mask
    return values[idx].masked_fill(~mask, 0), mask
