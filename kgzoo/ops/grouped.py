"""Per-relation grouped matmul: each row times its relation's matrix, one matmul per group."""
from __future__ import annotations

import torch
from torch import Tensor


def relation_matmul(e: Tensor, proj: Tensor, r: Tensor, grouped: bool = False) -> Tensor:
    """``e_i M_{r_i}`` for every row: each row times its relation's matrix.

    Rows are grouped by relation and each group is one ``[n_r, k] @ [k, d]`` matmul (a loop
    over the relations present, at most ``R``; never over entities or triples), which avoids
    gathering a ``[B, k, d]`` copy of the matrices for a ``bmm`` (and its scatter-add in
    backward): for KGAT's TransR batch on ml-100k-kg's CKG (50 relations, 3 x 4,096 rows,
    k = d = 64) 13 ms of forward and backward instead of 262 ms with
    ``bmm(e.unsqueeze(1), proj[r])`` (one thread).

    The product of TransR's projection (Lin et al., AAAI 2015, eq. 1) and KGAT's ``W_r e``
    (Wang et al., KDD 2019, eq. 1); RippleNet's ``R h`` (Wang et al., CIKM 2018, eq. 3) with
    the transposed matrices.

    Args:
        e: FloatTensor ``[B, k]``. proj: FloatTensor ``[R, k, d]``. r: LongTensor ``[B]`` in ``0..R-1``.
        grouped: the rows are already sorted by relation (``r`` non-decreasing): no sort,
            gather and scatter of the rows, only the matmuls.

    Returns:
        FloatTensor ``[B, d]`` (``e``'s dtype and device).

    Raises:
        IndexError: a relation id ``>= R``. RuntimeError: a negative relation id (``bincount``).
        ValueError: ``grouped`` with ``r`` not sorted.
    """
    counts = torch.bincount(r, minlength=proj.shape[0]).tolist()
    if grouped:
        if r.numel() > 1 and not bool((r[1:] >= r[:-1]).all()):
            raise ValueError("relation_matmul(grouped=True): the relation ids are not sorted")
        parts = [x @ proj[i] for i, x in enumerate(e.split(counts)) if x.numel()]
        return torch.cat(parts) if parts else e.new_empty(e.shape[0], proj.shape[2])
    order = torch.argsort(r)
    parts = [x @ proj[i] for i, x in enumerate(e.index_select(0, order).split(counts)) if x.numel()]
    out = torch.empty(e.shape[0], proj.shape[2], dtype=e.dtype, device=e.device)
    return out.index_copy(0, order, torch.cat(parts)) if parts else out
