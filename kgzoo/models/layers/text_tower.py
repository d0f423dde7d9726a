"""The item text tower of the PLM recommenders: PLM text vectors, optional BERT-whitening, a
projection to the model's width (:class:`TextTower`), configured by one :class:`TextConfig`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from .text_encoder import ItemTextEmbedding, TextEncoder


@dataclass(frozen=True)
class TextConfig:
    """Settings of a :class:`TextTower` (the ``text_*``, ``lora_*``, ``grad_items``,
    ``proj_hidden`` hyper-parameters of PLMRec and KGPLM, :meth:`from_hparams`).

    Attributes:
        model: ``AutoModel`` name or path (``None`` = all-MiniLM-L6-v2). mode: ``"frozen"``,
            ``"lora"`` or ``"full"`` (:class:`~kgzoo.models.layers.text_encoder.TextEncoder`).
        pooling: ``"mean"`` or ``"cls"``. max_length: tokens per text. batch_size: texts per
            encoder batch. lora_r, lora_alpha, lora_dropout, lora_target_modules: LoRA settings.
        grad_items: most distinct items encoded with grad per step (``lora``/``full``).
        cache_dir: frozen-vector cache (``None``: ``$KGZOO_HOME/text``).
        proj_hidden: 0 = a linear projection, else the hidden width of a 2-layer MLP.
        whiten: ``k``: BERT-whiten the text vectors to ``k`` dimensions; ``None``: no whitening.
    """

    model: str | None = None
    mode: str = "frozen"
    pooling: str = "mean"
    max_length: int = 64
    batch_size: int = 64
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    lora_target_modules: Sequence[str] | None = None
    grad_items: int = 256
    cache_dir: str | None = None
    proj_hidden: int = 0
    whiten: int | None = None

    @classmethod
    def from_hparams(cls, hp: dict[str, Any]) -> "TextConfig":
        """The config of a model's flat hyper-parameters (``text_model``, ``text_mode``,
        ``text_pooling``, ``text_max_length``, ``text_batch_size``, ``lora_*``, ``grad_items``,
        ``text_cache_dir``, ``proj_hidden``, ``text_whiten``; missing keys take the defaults)."""
        names = {"model": "text_model", "mode": "text_mode", "pooling": "text_pooling",
                 "max_length": "text_max_length", "batch_size": "text_batch_size", "cache_dir": "text_cache_dir",
                 "whiten": "text_whiten", "lora_r": "lora_r", "lora_alpha": "lora_alpha",
                 "lora_dropout": "lora_dropout", "lora_target_modules": "lora_target_modules",
                 "grad_items": "grad_items", "proj_hidden": "proj_hidden"}
        return cls(**{field: hp[key] for field, key in names.items() if key in hp})


class TextTower(nn.Module):
    """PLM item text ``[I, H]`` and its projection to ``[I, d]`` (Linear, or a 2-layer MLP),
    optionally through a fixed BERT-whitening map first.

    Whitening (``whiten=k``; BERT-whitening with its dimensionality reduction, Su et al.,
    "Whitening Sentence Representations for Better Semantics and Faster Retrieval", arXiv
    2103.15316, 2021): ``x~ = (x - mu) W``, ``mu`` ``[H]`` the mean and ``W = U_k Lambda_k^{-1/2}``
    ``[H, k]`` from the eigendecomposition ``U Lambda U^T`` of the covariance of the pre-trained
    text vectors of the items with text. :meth:`set_texts` fits it once (in float64; buffers
    ``whiten_mean`` FloatTensor ``[H]`` and ``whiten_map`` FloatTensor ``[H, k]``, saved in
    checkpoints; an all-zero map means "not fitted"), and a fitted map is kept, also when
    later texts differ: the projection was trained on it. The learned "no text" vector goes
    through the same map; a fresh fit starts it at ``mu`` (whitened: 0, the centre of the
    items' text). The projection then reads ``k`` instead of ``H`` numbers per item; in
    ``frozen`` mode every item's whitened vector is computed once (``[I, k]``), so a step
    gathers ``k`` columns.

    Args:
        n_items: ``I``. dim: ``d``, the output width. config: the text encoder, projection
            and whitening settings (:class:`TextConfig`; ``None``: its defaults).

    Raises:
        ValueError: ``whiten`` not an integer in ``1..H``; in :meth:`set_texts`, ``k`` not below
            the number of items with text, or above the rank of their vectors' covariance
            (repeated texts lower it; directions of near-zero variance would be scaled by
            ``1/sqrt`` of it).
    """

    def __init__(self, n_items: int, dim: int, config: TextConfig | None = None) -> None:
        super().__init__()
        c = config if config is not None else TextConfig()
        enc = TextEncoder(c.model, mode=c.mode, pooling=c.pooling, max_length=c.max_length,
                          batch_size=c.batch_size, lora_r=c.lora_r, lora_alpha=c.lora_alpha, lora_dropout=c.lora_dropout,
                          lora_target_modules=c.lora_target_modules)
        self.cache_dir = c.cache_dir
        whiten, proj_hidden, grad_items = c.whiten, c.proj_hidden, c.grad_items
        self.text = ItemTextEmbedding(n_items, enc, grad_items=grad_items)
        H = enc.dim
        if whiten is not None and (isinstance(whiten, bool) or not isinstance(whiten, int) or not 1 <= whiten <= H):
            raise ValueError(f"text_whiten={whiten!r} must be an integer in 1..{H} (the text vectors' width) or None")
        self.whiten = whiten
        if whiten is not None:
            self.register_buffer("whiten_mean", torch.zeros(H))
            self.register_buffer("whiten_map", torch.zeros(H, whiten))  # all zeros: not fitted yet
        # frozen mode: ((cache, mean, map), their versions, the whitened table [I, k])
        self._white: tuple[tuple[Tensor, ...], tuple[int, ...], Tensor] | None = None
        width = whiten or H
        self.proj = (nn.Sequential(nn.Linear(width, proj_hidden), nn.GELU(), nn.Linear(proj_hidden, dim))
                     if proj_hidden else nn.Linear(width, dim))

    def vectors_request(self) -> dict[str, Any]:
        """What :meth:`set_texts` needs pre-computed: the arguments of
        :class:`kgzoo.pretrain.text_vectors.TextVectors` but the texts (the encoder's identity
        and the cache folder ``cache_dir``)."""
        return {**self.text.vectors_request(), "cache_dir": self.cache_dir}

    def set_texts(self, texts: Sequence[str] | None, vectors: Any = None) -> None:
        """The item texts and their pre-trained vectors (:meth:`ItemTextEmbedding.set_texts`),
        then, with ``whiten`` and no map yet (a fresh model, not a checkpoint's), fit the
        whitening map on their vectors."""
        self.text.set_texts(texts, vectors)
        if self.whiten is None or bool(self.whiten_map.any()):
            return
        has = self.text.has_text
        x = self.text.cache[has].double()
        if x.shape[0] <= self.whiten:
            raise ValueError(f"text_whiten={self.whiten} needs more than {self.whiten} items with text to fit "
                             f"the whitening map; {x.shape[0]} of {has.numel()} items have text")
        mu = x.mean(0)
        eigval, eigvec = torch.linalg.eigh((x - mu).T @ (x - mu) / x.shape[0])  # ascending
        eigval, eigvec = eigval.flip(0), eigvec.flip(1)
        # the numerical rank of float32 vectors' covariance (eigenvalues ~ squared singular values)
        rank = int((eigval > eigval[0] * (x.shape[1] * torch.finfo(torch.float32).eps) ** 2).sum())
        if self.whiten > rank:
            raise ValueError(f"text_whiten={self.whiten} exceeds the rank {rank} of the text vectors of the "
                             f"{x.shape[0]} items with text (repeated texts?); choose text_whiten <= {rank}")
        eigval, eigvec = eigval[: self.whiten], eigvec[:, : self.whiten]
        eigvec = eigvec * torch.sign(eigvec[eigvec.abs().argmax(0), torch.arange(self.whiten)])  # a fixed sign
        self.whiten_mean.copy_(mu)
        self.whiten_map.copy_(eigvec / eigval.sqrt())
        with torch.no_grad():  # "no text" starts at the centre of the items' text: whitened, 0
            self.text.no_text.copy_(mu)

    def resize(self, n_items: int) -> None:
        """Grow to ``n_items`` items (an incremental update): :meth:`ItemTextEmbedding.resize`, and the
        whitened table is made again on the next lookup.

        Raises:
            ValueError: fewer items than now.
        """
        self.text.resize(n_items)
        self._white = None

    def _whitened(self, vec: Tensor) -> Tensor:
        return (vec - self.whiten_mean.to(vec.dtype)) @ self.whiten_map.to(vec.dtype)

    def _lookup(self, items: Tensor | None) -> tuple[Tensor, Tensor]:
        """``(FloatTensor [B, H or k], BoolTensor [B])``: :meth:`ItemTextEmbedding.lookup`, whitened."""
        if self.whiten is None:
            return self.text.lookup(items)
        if self.text.encoder.trainable:
            vec, has = self.text.lookup(items)
            return self._whitened(vec), has
        cache, has = self.text.lookup(None)  # frozen: the cache buffer itself
        # the table follows loads (in-place copies bump a tensor's version), casts and moves (new tensors)
        src = (cache, self.whiten_mean, self.whiten_map)
        versions = tuple(t._version for t in src)
        if self._white is None or any(a is not b for a, b in zip(self._white[0], src)) or self._white[1] != versions:
            with torch.no_grad():
                self._white = (src, versions, self._whitened(cache))
        table = self._white[2]
        if items is None:
            return table, has
        return table.index_select(0, items), has[items]

    def forward(self, items: Tensor) -> Tensor:
        """FloatTensor ``[B, d]`` of item ids ``items`` LongTensor ``[B]`` (PLM with grad in
        trainable modes, for at most ``grad_items`` items).

        Each distinct item is projected once (a BPR batch repeats items: on ml-100k-kg its
        4,096 positive and negative ids hold about 1,500 distinct items)."""
        uniq, inv = torch.unique(items, return_inverse=True)
        return self._project(*self._lookup(uniq)).index_select(0, inv)

    def all(self) -> Tensor:
        """FloatTensor ``[I, d]`` from the item text cache."""
        return self._project(*self._lookup(None))

    def _project(self, vec: Tensor, has_text: Tensor) -> Tensor:
        # P(where(has, v, no_text)) == where(has, P(v), P(no_text)) row by row; projecting
        # first spares the backward pass a gradient through the frozen [B, H] text vectors
        none = self.text.no_text.to(vec.dtype).unsqueeze(0)
        none = self.proj(self._whitened(none) if self.whiten is not None else none)
        return torch.where(has_text.unsqueeze(-1), self.proj(vec), none)
