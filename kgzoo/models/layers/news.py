"""Layers shared by the news recommenders (NRMS, NRMS-PLM, DKN): masked additive attention,
multi-head self-attention over a padded sequence, the NRMS user encoder, the candidate-softmax
loss and the title tokens of the news texts.

Shapes: a padded sequence is FloatTensor ``[B, L, d]`` with a BoolTensor mask ``[B, L]`` (True: a
real position). A row without any real position (a user without clicked history) gives a zero
vector, never NaN.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def masked_softmax(scores: Tensor, mask: Tensor, dim: int = -1) -> Tensor:
    """Softmax of ``scores`` over ``dim`` among ``mask``-ed positions; an all-masked slice gives zeros."""
    w = scores.masked_fill(~mask, float("-inf")).softmax(dim)
    return torch.nan_to_num(w, nan=0.0)


class AdditiveAttention(nn.Module):
    """Additive attention pooling (NRMS, Wu et al., EMNLP-IJCNLP 2019, eq. 5-6 and 9-10):
    ``a_i = q^T tanh(V h_i + v)``, ``alpha_i = softmax_i(a_i)`` over the real positions,
    ``r = sum_i alpha_i h_i``.

    Args:
        dim: ``d``, the width of ``h``. query_dim: the width of ``q`` (NRMS: 200).
    """

    def __init__(self, dim: int, query_dim: int = 200) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, query_dim)
        self.query = nn.Parameter(torch.empty(query_dim).uniform_(-0.1, 0.1))

    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        """``h`` FloatTensor ``[B, L, d]``, ``mask`` BoolTensor ``[B, L]`` -> FloatTensor ``[B, d]``."""
        a = torch.tanh(self.proj(h)) @ self.query
        return (masked_softmax(a, mask).unsqueeze(-1) * h).sum(1)


class SelfAttention(nn.Module):
    """Multi-head self-attention over a padded sequence (NRMS, eq. 1-3 and 7-8):
    ``alpha^k_ij = softmax_j(e_i^T Q_k e_j)``, ``h^k_i = V_k sum_j alpha^k_ij e_j``, heads
    concatenated; here torch's :class:`~torch.nn.MultiheadAttention` (its query and key
    projections give the bilinear ``Q_k``), with an output projection and dropout on the input.

    Args:
        dim: ``d`` (input and output width, ``heads * head_dim``). heads: ``h``. dropout: on the input.

    Raises:
        ValueError: ``dim`` not divisible by ``heads``.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.2) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"self-attention width {dim} is not divisible by {heads} heads")
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """``x`` FloatTensor ``[B, L, d]``, ``mask`` BoolTensor ``[B, L]`` -> FloatTensor ``[B, L, d]``
        (zeros at padded positions and in rows without a real position)."""
        empty = ~mask.any(1)
        key_pad = ~mask.clone()
        key_pad[empty, 0] = False  # an empty row attends to its (zero) first slot instead of nothing
        x = self.dropout(x)
        out, _ = self.attn(x, x, x, key_padding_mask=key_pad, need_weights=False)
        return out * mask.unsqueeze(-1)


class UserEncoder(nn.Module):
    """NRMS's user encoder (Wu et al., 2019, section 3.2): self-attention over the clicked news
    vectors, then additive attention pooling: ``u = sum_i alpha_i MHSA(r_1..r_N)_i``.

    Args:
        dim: ``d``, the news vector width. heads: self-attention heads. query_dim: additive
            attention width. dropout: on the news vectors.
    """

    def __init__(self, dim: int, heads: int, query_dim: int = 200, dropout: float = 0.2) -> None:
        super().__init__()
        self.self_attn = SelfAttention(dim, heads, dropout)
        self.pool = AdditiveAttention(dim, query_dim)

    def forward(self, news: Tensor, mask: Tensor) -> Tensor:
        """``news`` FloatTensor ``[B, H, d]`` (clicked news vectors), ``mask`` ``[B, H]`` -> ``[B, d]``."""
        return self.pool(self.self_attn(news, mask), mask)


def candidate_softmax_loss(scores: Tensor, mask: Tensor) -> Tensor:
    """NRMS's training loss (Wu et al., 2019, section 3.4, after Huang et al., CIKM 2013): the click
    (column 0) against its ``K`` negatives, ``-log(exp(y+) / (exp(y+) + sum_k exp(y-_k)))``,
    averaged over the batch; masked negatives take no part.

    Args:
        scores: FloatTensor ``[B, 1 + K]``, the click first. mask: BoolTensor ``[B, 1 + K]``.

    Returns:
        FloatTensor scalar.
    """
    return -F.log_softmax(scores.masked_fill(~mask, float("-inf")), dim=1)[:, 0].mean()


def title_tokens(texts: Sequence[str], tokenizer: object, length: int) -> tuple[Tensor, Tensor]:
    """The first ``length`` word-piece ids of each news text, without special tokens.

    Args:
        texts: ``I`` strings (``""``: a news without text). tokenizer: a Hugging Face tokenizer.
        length: tokens kept per text (NRMS: 30 title words).

    Returns:
        ``(tokens LongTensor [I, length] (0 where padded), has_text BoolTensor [I])``.
    """
    texts = list(texts)
    has = torch.tensor([bool(t) for t in texts], dtype=torch.bool)
    tokens = torch.zeros(len(texts), length, dtype=torch.long)
    idx = torch.nonzero(has).flatten()
    if idx.numel():
        enc = tokenizer([texts[i] for i in idx.tolist()], add_special_tokens=False, truncation=True,
                        max_length=length, padding="max_length", return_tensors="pt")
        tokens[idx] = enc["input_ids"].long() * enc["attention_mask"].long()
    return tokens, has
