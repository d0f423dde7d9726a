"""Categorical attributes of users or items as embeddings (:class:`FeatureEmbedding`)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class FeatureEmbedding(nn.Module):
    """Categorical attributes -> one vector per row: per feature the mean of its codes'
    embeddings (multi-valued ``[N, L]`` or single ``[N]``; code 0 = unknown, ignored), then
    the mean over the features a row has (zeros for a row with none).

    That is a fixed weighted sum of table rows, ``a_n = sum_f sum_{c in codes_nf}
    e_{f,c} / (|codes_nf| * F_n)`` (``F_n`` the features row ``n`` has): :meth:`set_codes`
    computes every row's (code, ``|codes_nf| * F_n``) entries once, without the unknown ones,
    and :meth:`forward` is one ``embedding_bag`` over the concatenated tables with the weights
    ``1 / (|codes_nf| * F_n)`` in the tables' dtype (one lookup and one backward per call instead
    of one per feature, and no padding entries to sort in the backward).

    Args:
        sizes: feature name -> number of codes (vocabulary size, code 0 included). dim: ``d``.

    Raises: see :meth:`set_codes` and :meth:`forward`.
    """

    def __init__(self, sizes: dict[str, int], dim: int) -> None:
        super().__init__()
        self.sizes = dict(sizes)
        self.tables = nn.ModuleDict({k: nn.Embedding(int(v), dim, padding_idx=0) for k, v in sorted(sizes.items())})
        for t in self.tables.values():
            nn.init.xavier_normal_(t.weight[1:])
        # row n's entries are entry_codes/entry_denominators[row_ptr[n]:row_ptr[n + 1]], the weight
        # of an entry 1 / its denominator (an integer, so exact in any dtype); derived from the data
        # by set_codes (not saved: attach sets them again)
        for name in ("row_ptr", "entry_codes", "entry_denominators"):
            self.register_buffer(name, torch.zeros(0, dtype=torch.long), persistent=False)

    @property
    def ready(self) -> bool:
        """Whether :meth:`set_codes` has run."""
        return self.row_ptr.numel() > 0

    @torch.no_grad()
    def set_codes(self, feats: dict[str, Tensor]) -> None:
        """Take every row's codes, ``feats`` name -> LongTensor ``[N]`` or ``[N, L]`` (features
        not in ``sizes`` are ignored), as CSR entries: ``row_ptr`` LongTensor ``[N + 1]``,
        ``entry_codes`` LongTensor ``[nnz]`` (rows of the concatenated tables) and
        ``entry_denominators`` LongTensor ``[nnz]`` (``|codes_nf| * F_n``).

        Raises:
            ValueError: a feature of ``sizes`` missing; codes not integers, not ``[N]`` or
                ``[N, L]``, or beyond their vocabulary; features with different numbers of rows.
        """
        missing = [k for k in self.tables if k not in feats]
        if missing:
            raise ValueError(f"FeatureEmbedding: the data has no attribute {missing} (the model has {sorted(self.sizes)})")
        for k in self.tables:
            c = feats[k]
            if c.dtype.is_floating_point or c.dtype.is_complex or c.dtype == torch.bool or c.dim() not in (1, 2):
                raise ValueError(f"FeatureEmbedding: attribute {k!r} must be integer codes [N] or [N, L], "
                                 f"got {c.dtype} {tuple(c.shape)}")
        rows = {feats[k].shape[0] for k in self.tables}
        if len(rows) > 1:
            raise ValueError(f"FeatureEmbedding: attributes with different row counts {sorted(rows)}")
        codes, known, offset = [], [], 0
        dev = self.row_ptr.device
        for k, table in self.tables.items():
            c = feats[k].to(dev, torch.long)
            c = c.unsqueeze(1) if c.dim() == 1 else c
            if c.numel() and (int(c.min()) < 0 or int(c.max()) >= table.num_embeddings):
                raise ValueError(f"FeatureEmbedding: attribute {k!r} has codes outside 0..{table.num_embeddings - 1}")
            codes.append(c + offset)
            known.append(c > 0)
            offset += table.num_embeddings
        per_feature = torch.stack([x.sum(1) for x in known], 1)  # [N, F] known codes of each feature
        n_feats = (per_feature > 0).sum(1, keepdim=True)  # F_n
        # each known code: 1 / (codes of its feature in the row * features the row has)
        denom = torch.cat([per_feature[:, f:f + 1].expand_as(x) for f, x in enumerate(known)], 1) * n_feats
        keep = torch.cat(known, 1)  # row-major: each row's entries in order
        self.row_ptr = torch.cat([keep.new_zeros(1, dtype=torch.long), keep.sum(1).cumsum(0)])
        self.entry_codes, self.entry_denominators = torch.cat(codes, 1)[keep], denom[keep]

    def forward(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        """``(FloatTensor [B, d], BoolTensor [B] has any known attribute)`` of rows ``ids``
        (LongTensor ``[B]``, each in ``0..N-1``); rows without one get zeros.

        Raises:
            RuntimeError: before :meth:`set_codes`. IndexError: an id outside ``0..N-1``.
        """
        if not self.ready:
            raise RuntimeError("FeatureEmbedding has no codes: call set_codes(features) (models do it in attach)")
        start = self.row_ptr.index_select(0, ids)
        count = self.row_ptr.index_select(0, ids + 1) - start
        offsets = count.cumsum(0) - count  # each bag's first entry in the batch's entry list
        pos = torch.repeat_interleave(start - offsets, count)
        pos += torch.arange(pos.numel(), device=ids.device)
        weight = torch.cat([t.weight for t in self.tables.values()])
        w = self.entry_denominators.index_select(0, pos).to(weight.dtype).reciprocal_()
        out = F.embedding_bag(self.entry_codes.index_select(0, pos), weight, offsets, mode="sum", per_sample_weights=w)
        return out, count > 0


def feature_sizes(feats: dict[str, Tensor], vocab: dict[str, list[str]]) -> dict[str, int]:
    """Vocabulary size per attribute (name -> number of codes, code 0 included): the larger of
    the vocabulary's length and the largest code + 1 (``feats`` name -> LongTensor ``[N]`` or
    ``[N, L]``, ``vocab`` name -> value names)."""
    return {k: max(len(vocab.get(k, [])), int(v.max()) + 1 if v.numel() else 1) for k, v in feats.items()}
