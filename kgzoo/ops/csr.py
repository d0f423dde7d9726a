"""Compressed sparse rows (CSR) of 0/1 matrices as ``(indptr, indices)`` LongTensors.

Used by the DataModule (train / valid / test item lists, evaluation masks) and by
``Recommender.recommend`` (excluding seen items). Vectorised: no Python loop over rows.
"""
from __future__ import annotations

import torch
from torch import Tensor


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
