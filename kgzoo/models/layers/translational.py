"""Translational scoring kernels of KG embeddings (TransE, TransR) shared by the KG models.

:func:`transe_distance` / :func:`transe_distance_all` (Bordes et al., NeurIPS 2013),
:func:`transr_project` and :func:`clamp_norm` (Lin et al., AAAI 2015), :func:`margin_ranking`
(the hinge loss of both). Used by TransE and TransR (:mod:`kgzoo.models.kge`), CFKG and CKE;
the per-relation matmul under TransR's projection is :func:`kgzoo.ops.grouped.relation_matmul`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ...ops.grouped import relation_matmul


def clamp_norm(x: Tensor, maxnorm: float = 1.0, p: float = 2.0, dim: int = -1) -> Tensor:
    """``x`` with every vector's ``p``-norm clamped to at most ``maxnorm`` (differentiable).

    The soft "``||x|| <= 1``" constraints of TransR (Lin et al., AAAI 2015, section 3.2).
    Shapes are kept; dtype float.
    """
    norm = x.norm(p=p, dim=dim, keepdim=True)
    return x * (maxnorm / norm.clamp_min(maxnorm))


def transe_distance(h: Tensor, r: Tensor, t: Tensor, p: float = 1.0) -> Tensor:
    """TransE dissimilarity ``d(h + r, t) = ||h + r - t||_p`` (Bordes et al., NeurIPS 2013, section 2).

    Args:
        h, r, t: FloatTensors ``[..., d]`` (broadcastable). p: 1 (L1) or 2 (L2).

    Returns:
        FloatTensor ``[...]`` (lower is more plausible).
    """
    return (h + r - t).norm(p=p, dim=-1)


def transe_distance_all(query: Tensor, candidates: Tensor, p: float = 1.0) -> Tensor:
    """``||query_b - c_e||_p`` for every query and candidate without a ``[B, E, d]`` tensor.

    Args:
        query: FloatTensor ``[B, d]`` (``h + r`` for tails, ``t - r`` for heads).
        candidates: FloatTensor ``[E, d]``.

    Returns:
        FloatTensor ``[B, E]`` (:func:`torch.cdist`).
    """
    return torch.cdist(query.unsqueeze(0), candidates.unsqueeze(0), p=p).squeeze(0)


def transr_project(e: Tensor, proj: Tensor, r: Tensor) -> Tensor:
    """TransR projection ``e_r = e M_r`` (Lin et al., AAAI 2015, eq. 1), norm-clamped to ``<= 1``
    (:func:`relation_matmul`, then :func:`clamp_norm`).

    Args:
        e: FloatTensor ``[B, k]`` entity embeddings. proj: FloatTensor ``[R, k, d]`` the
            projection matrices. r: LongTensor ``[B]`` the relation of each row.

    Returns:
        FloatTensor ``[B, d]`` with ``||e_r||_2 <= 1`` (the paper's constraints
        ``||h M_r|| <= 1``, ``||t M_r|| <= 1``, applied as a differentiable clamp).
    """
    return clamp_norm(relation_matmul(e, proj, r))


def margin_ranking(pos_dist: Tensor, neg_dist: Tensor, margin: float) -> Tensor:
    """``mean(max(0, margin + d(pos) - d(neg)))``: the hinge loss of TransE (Bordes et al., eq. 1)
    and TransR (Lin et al., eq. 2); the papers sum over the batch, we average (a learning-rate scale)."""
    return F.relu(margin + pos_dist - neg_dist).mean()
