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
