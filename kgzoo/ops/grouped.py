"""Per-relation grouped matmul: each row times its relation's matrix, one matmul per group."""
from __future__ import annotations

import torch
from torch import Tensor


def relation_matmul(e: Tensor, proj: Tensor, r: Tensor, grouped: bool = False) -> Tensor:
    """``e_i M_{r_i}`` for every row: each row times its relation's matrix.

    Rows are grouped by relation and each group is one ``[n_r, k] @ [k, d]`` matmul (a loop
    over the relations present, at most ``R``; never over entities or triples), which avoids
    gathering a ``[B, k, d]`` copy of the matrices for a ``bmm`` (and its scatter-add in
    backward) (measured in benchmarks/studies/model_speed.md).

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
        return grouped_matmul(e, proj, counts)
    order = torch.argsort(r)
    out = torch.empty(e.shape[0], proj.shape[2], dtype=e.dtype, device=e.device)
    return out.index_copy(0, order, grouped_matmul(e.index_select(0, order), proj, counts)) if e.shape[0] else out


def grouped_matmul(e: Tensor, proj: Tensor, counts: list[int]) -> Tensor:
    """:func:`relation_matmul` of rows already grouped by relation: the first ``counts[0]`` rows
    times ``proj[0]``, the next ``counts[1]`` times ``proj[1]``... one matmul per non-empty
    group on a slice of ``e`` (no gather, no scatter back). A caller whose rows may come in any
    order (a loss that is a mean over them) sorts its index tensors by relation once and skips
    the two ``[B, k]`` copies of :func:`relation_matmul` and their backward.

    Args:
        e: FloatTensor ``[B, k]``. proj: FloatTensor ``[R, k, d]``. counts: ``R`` non-negative
            ints summing to ``B`` (``torch.bincount(r, minlength=R).tolist()`` of sorted ``r``).

    Returns:
        FloatTensor ``[B, d]``; without autograd (no grad mode, or neither input requiring it:
        a custom Function's forward and backward) each group's product is written into its rows
        of one output instead of concatenated.

    Raises:
        ValueError: ``counts`` not ``R`` ints summing to ``B``.
    """
    if len(counts) != proj.shape[0] or sum(counts) != e.shape[0] or min(counts, default=0) < 0:
        raise ValueError(f"grouped_matmul: counts (sum {sum(counts)}, {len(counts)} groups) do not fit {e.shape[0]} "
                         f"rows and {proj.shape[0]} matrices")
    if torch.is_grad_enabled() and (e.requires_grad or proj.requires_grad):
        parts = [x @ proj[i] for i, x in enumerate(e.split(counts)) if x.numel()]
        return torch.cat(parts) if parts else e.new_empty(0, proj.shape[2])
    out = e.new_empty(e.shape[0], proj.shape[2])  # no autograd (a Function's forward or backward): written in place
    for i, (x, o) in enumerate(zip(e.split(counts), out.split(counts))):
        if x.numel():
            torch.mm(x, proj[i], out=o)
    return out
