"""Losses shared by models."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def bpr_loss(pos: Tensor, neg: Tensor) -> Tensor:
    """Bayesian personalised ranking loss ``-mean(log sigmoid(pos - neg))``.

    Rendle et al., "BPR: Bayesian Personalized Ranking from Implicit Feedback", UAI 2009, eq. 4.

    Args:
        pos, neg: FloatTensors ``[B]`` of scores of the positive and the negative item.

    Returns:
        scalar FloatTensor.
    """
    return -F.logsigmoid(pos - neg).mean()


def l2_reg(*tensors: Tensor) -> Tensor:
    """``sum(||t||^2) / 2 / B`` over the batch's embeddings (``B`` = rows of the first tensor),
    the regulariser of BPR-MF and LightGCN (He et al., SIGIR 2020, eq. 15)."""
    batch = tensors[0].shape[0]
    return sum(t.pow(2).sum() for t in tensors) / 2 / max(1, batch)


class _LookupWithL2(torch.autograd.Function):
    """Rows of a table and the table's ``sum(W^2) / 2``, with one dense gradient (see :func:`lookup_with_l2`)."""

    @staticmethod
    def forward(ctx: object, weight: Tensor, index: Tensor, padding_idx: int) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        flat = weight.reshape(-1)
        ctx.save_for_backward(weight, index)  # type: ignore[attr-defined]
        ctx.padding_idx = padding_idx  # type: ignore[attr-defined]
        return weight.index_select(0, index), torch.dot(flat, flat) / 2

    @staticmethod
    def backward(ctx: object, grad_rows: Tensor, grad_half_sq: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        weight, index = ctx.saved_tensors  # type: ignore[attr-defined]
        grad = weight * grad_half_sq  # d(sum W^2 / 2)/dW = W: the dense part, written once
        grad.index_add_(0, index, grad_rows)  # the looked-up rows' gradients
        if ctx.padding_idx >= 0:  # type: ignore[attr-defined]
            grad[ctx.padding_idx].zero_()  # type: ignore[attr-defined]  # as nn.Embedding: the padding row never moves
        return grad, None, None


def lookup_with_l2(weight: Tensor, index: Tensor, padding_idx: int | None = None) -> tuple[Tensor, Tensor]:
    """``(weight[index], sum(weight^2) / 2)``: an embedding lookup and TensorFlow's ``l2_loss`` of
    the whole table, as the authors' KGCN code regularises every embedding table at every step
    (Wang et al., WWW 2019; github.com/hwwang55/KGCN, ``model.py``: ``tf.nn.l2_loss`` of the user,
    entity and relation matrices).

    The same values and gradients as ``F.embedding(index, weight, padding_idx)`` plus
    ``weight.pow(2).sum() / 2`` under autograd (up to float summation order), with one dense
    gradient tensor per table and step: autograd's way builds a zero-filled dense gradient per
    lookup, another for the square's derivative, and adds them (for a 77k x 64 entity table,
    most of a KGCN step: ``benchmarks/studies/model_speed.md``). Look a table up once per step
    (all its indices concatenated) to get the saving.

    Args:
        weight: FloatTensor ``[N, d]`` (a parameter).
        index: LongTensor ``[n]`` of rows (1-D; flatten and ``view`` back).
        padding_idx: a row whose gradient stays 0 as ``nn.Embedding(padding_idx=...)``'s
            (its L2 gradient too: keep that row at 0, as ``nn.Embedding`` initialises it);
            negative counts from the end, as there.

    Returns:
        ``(FloatTensor [n, d], scalar FloatTensor)``.

    Raises:
        ValueError: ``weight`` not 2-D or ``index`` not 1-D; ``padding_idx`` outside ``-N..N-1``.
        IndexError: an ``index`` entry outside ``0..N-1`` (as an embedding lookup).
    """
    if weight.dim() != 2 or index.dim() != 1:
        raise ValueError(f"lookup_with_l2: weight must be [N, d] and index [n], got {tuple(weight.shape)} and "
                         f"{tuple(index.shape)}")
    n = weight.shape[0]
    if padding_idx is not None and not -n <= int(padding_idx) < n:
        raise ValueError(f"lookup_with_l2: padding_idx {padding_idx} must be within the table's {n} rows")
    # -1 inside means no padding row: a negative padding_idx counts from the end (nn.Embedding's rule)
    pad = -1 if padding_idx is None else int(padding_idx) % n
    return _LookupWithL2.apply(weight, index, pad)
