"""Layers shared by the news recommenders (NRMS, NRMS-PLM, DKN): masked additive attention,
multi-head self-attention over a padded sequence, the NRMS user encoder, the candidate-softmax
loss and the word pieces of the news texts aligned with their KG entity mentions.

Shapes: a padded sequence is FloatTensor ``[B, L, d]`` with a BoolTensor mask ``[B, L]`` (True: a
real position). A row without any real position (a user without clicked history) gives a zero
vector, never NaN.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...ops.csr import csr_padded
from .text_encoder import TextEncoder


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
        return (masked_softmax(a, mask).unsqueeze(1) @ h).squeeze(1)


class SelfAttention(nn.Module):
    """Multi-head self-attention over a padded sequence (NRMS, eq. 1-3 and 7-8):
    ``alpha^k_ij = softmax_j(e_i^T Q_k e_j)``, ``h^k_i = V_k sum_j alpha^k_ij e_j``, heads
    concatenated; the parameters of torch's :class:`~torch.nn.MultiheadAttention` (its query and
    key projections give the bilinear ``Q_k``; ``attn``: in-projection, output projection), with
    dropout on the input. Computed as that module computes it, in-projection, scaled dot-product
    attention per head over the real keys, output projection, on batch-first views (the module's
    own forward copies a batch-first input to sequence-first and back: same values).

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
        keys = mask.clone()
        keys[~mask.any(1), 0] = True  # an empty row attends to its (zero) first slot instead of nothing
        B, L, d = x.shape
        h = self.attn.num_heads
        qkv = F.linear(self.dropout(x), self.attn.in_proj_weight, self.attn.in_proj_bias)
        q, k, v = qkv.view(B, L, 3, h, d // h).permute(2, 0, 3, 1, 4)  # each [B, h, L, d / h]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=keys[:, None, None, :])  # [B, h, L, d / h]
        return self.attn.out_proj(out.transpose(1, 2).reshape(B, L, d)) * mask.unsqueeze(-1)


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


class TitleWords(nn.Module):
    """The word pieces of each news text and their embeddings (NRMS's and DKN's word input), with
    the KG entity each word piece names where the text's entity mentions are known (DKN's
    word-entity alignment, Wang et al., WWW 2018, section 4.1).

    Words: the first ``length`` word pieces of the PLM tokenizer (all-MiniLM-L6-v2's by default;
    no special tokens), embedded in a table of the tokenizer's vocabulary, initialised once from
    the PLM's input embeddings when ``dim`` is their width (a checkpoint keeps its trained table:
    the buffer ``initialised``). Buffers set by :meth:`set_texts` (not saved): ``tokens``
    LongTensor ``[I, length]`` (0 = padding) and ``entities`` LongTensor ``[I, length]`` (entity
    id + 1 of the mention a word piece overlaps, 0 = none).

    Args:
        n_items: ``I``. length: word pieces per news. dim: the embedding width.
        text_model: tokenizer and PLM (``None``: all-MiniLM-L6-v2).
    """

    #: news per bucket of :meth:`by_length`
    bucket_size = 128

    def __init__(self, n_items: int, length: int, dim: int, text_model: str | None = None) -> None:
        super().__init__()
        self.length = int(length)
        self.source = TextEncoder(text_model, mode="frozen")  # tokenizer now, PLM weights on first use
        self.emb = nn.Embedding(len(self.source.tokenizer), int(dim), padding_idx=0)
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))
        self.register_buffer("tokens", torch.zeros(n_items, self.length, dtype=torch.long), persistent=False)
        self.register_buffer("entities", torch.zeros(n_items, self.length, dtype=torch.long), persistent=False)

    def set_texts(self, texts: Sequence[str], mentions: Tensor | None = None) -> None:
        """Tokenise ``texts`` (``I`` strings, ``""``: none) and align word pieces with ``mentions``
        LongTensor ``[Mn, 4]`` (item, entity, start, end; character spans), vectorised; then
        initialise the table from the PLM if not done yet. Each text's word pieces fill a prefix of
        its row of ``tokens``, whichever side the tokenizer pads (:meth:`pieces` relies on it)."""
        texts = list(texts)
        has = torch.tensor([bool(t) for t in texts], dtype=torch.bool)
        idx = torch.nonzero(has).flatten()
        self.tokens.zero_()
        self.entities.zero_()
        if idx.numel():
            enc = self.source.tokenizer([texts[i] for i in idx.tolist()], add_special_tokens=False, truncation=True,
                                        max_length=self.length, padding="max_length", return_tensors="pt",
                                        return_offsets_mapping=True)
            real = enc["attention_mask"].bool()
            first = torch.argsort((~real).to(torch.int8), dim=1, stable=True)  # the pieces first, in text order
            real, ids = real.gather(1, first), enc["input_ids"].long().gather(1, first)
            offsets = enc["offset_mapping"].long().gather(1, first.unsqueeze(-1).expand(-1, -1, 2))
            self.tokens[idx] = (ids * real).to(self.tokens.device)
            if mentions is not None and mentions.numel():
                self.entities[idx] = align_mentions(offsets, real, idx, mentions, len(texts)).to(self.entities.device)
        if not bool(self.initialised):
            table = self.source.plm.get_input_embeddings().weight.detach()
            if table.shape == self.emb.weight.shape:
                with torch.no_grad():
                    self.emb.weight.copy_(table)
            self.initialised.fill_(True)

    def pieces(self, items: Tensor, min_length: int = 1) -> tuple[Tensor, Tensor, Tensor]:
        """The real word pieces of news ``items`` LongTensor ``[N]``, row-major: ``(tokens LongTensor
        [T], entities LongTensor [T] (entity id + 1, 0: none), mask BoolTensor [N, L])``, ``L`` the
        longest text of ``items`` in word pieces (at least ``min_length``, at most ``length``).
        Each news's pieces are a prefix of its row (:meth:`set_texts`), so the pieces of one news
        are consecutive in ``tokens``, in text order."""
        tok = self.tokens[items]
        longest = self._longest(tok > 0, min_length)
        tok = tok[:, :longest]
        mask = tok > 0
        return tok[mask], self.entities[items, :longest][mask], mask

    def _longest(self, mask: Tensor, min_length: int = 1) -> int:
        """One past the last real position of ``mask`` BoolTensor ``[N, length]`` (0: none),
        clamped to ``min_length..length``."""
        at = torch.arange(1, mask.shape[1] + 1, device=mask.device)
        real = int((at * mask).amax()) if mask.numel() else 0  # the last real position + 1
        return min(self.length, max(int(min_length), real))

    def by_length(self, items: Tensor) -> list[tuple[Tensor, Tensor, Tensor]]:
        """The news ``items`` LongTensor ``[N]`` in buckets of similar text length, each trimmed to
        its longest text: ``[(positions LongTensor [n] into items, word vectors FloatTensor
        [n, L_b, dim], mask BoolTensor [n, L_b])]``. Sorted by length and cut into
        ``ceil(N / bucket_size)`` buckets of equal count (attribute ``bucket_size``: 128 news), so
        that a masked encoder (NRMS's self-attention) runs over about the real word pieces instead
        of ``N x length`` slots; its values are those of one padded batch (the padding takes no
        part in a masked encoder)."""
        tok = self.tokens[items]
        order = torch.argsort((tok > 0).sum(1), stable=True)
        positions = order.tensor_split(max(1, -(-items.numel() // self.bucket_size)))
        toks = [tok[pos][:, :self._longest(tok[pos] > 0)] for pos in positions]
        # one lookup for all buckets: one (dense) gradient of the table, not one per bucket
        vectors = self.emb(torch.cat([t.flatten() for t in toks])).split([t.numel() for t in toks])
        return [(pos, v.view(*t.shape, -1), t > 0) for pos, t, v in zip(positions, toks, vectors)]


def align_mentions(offsets: Tensor, real: Tensor, items: Tensor, mentions: Tensor, n_items: int) -> Tensor:
    """The entity each word piece names: the first mention of its news whose character span
    overlaps the piece's, vectorised over news and mentions.

    Args:
        offsets: LongTensor ``[N, L, 2]`` character span of each word piece of news ``items``
            (LongTensor ``[N]``); real: BoolTensor ``[N, L]`` (False: padding).
        mentions: LongTensor ``[Mn, 4]`` (item, entity, start, end). n_items: ``I``.

    Returns:
        LongTensor ``[N, L]``: entity id + 1, 0 where no mention overlaps.
    """
    m = mentions[torch.argsort(mentions[:, 0], stable=True)]
    ptr = torch.zeros(n_items + 1, dtype=torch.long)
    ptr[1:] = torch.cumsum(torch.bincount(m[:, 0], minlength=n_items), 0)
    rows = torch.arange(m.shape[0])
    pos, pmask = csr_padded(ptr, rows, items)  # [N, Mmax] mention rows of each news
    start, end, ent = m[pos, 2], m[pos, 3], m[pos, 1]
    overlap = ((offsets[..., :1] < end.unsqueeze(1)) & (offsets[..., 1:] > start.unsqueeze(1))
               & pmask.unsqueeze(1) & real.unsqueeze(-1))  # [N, L, Mmax]
    first = overlap.long().argmax(-1)
    return torch.where(overlap.any(-1), ent.gather(1, first) + 1, torch.zeros_like(first))
