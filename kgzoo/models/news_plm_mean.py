"""A history-mean PLM scorer: a content-based news baseline with nothing to train.

News vector ``r = PLM(text)``: the frozen, L2-normalised mean-pooled vector of the news text
(Sentence-BERT pooling, Reimers & Gurevych, EMNLP 2019, section 3; computed once and cached on
disk by :mod:`kgzoo.pretrain.text_vectors`), the zero vector for a news without text. User
vector ``u = 1/|h| sum_{i in h} r_i`` over the clicked history ``h``; score ``y = u^T r_c``
(the cosine of ``r_c`` and the history's centroid, up to ``|u|``, the same for all candidates of
an impression). The PLM news vectors of PLM-NR (Wu et al., SIGIR 2021) without any training: how
far the text alone ranks an impression.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..registry import register_model
from .layers.text_encoder import TextEncoder
from .news import NewsRecommender


@register_model("news-plm-mean", family="news", paper="history-mean PLM scorer (frozen Sentence-BERT vectors, "
                                                     "Reimers & Gurevych, EMNLP 2019): a content baseline")
class NewsPLMMean(NewsRecommender):
    """Scores a candidate by its frozen PLM vector's inner product with the mean vector of the
    clicked news (see the module). No trained parameter: fitting records nothing.

    Args:
        text_model: ``AutoModel`` name or path (``None``: all-MiniLM-L6-v2). text_max_length:
            tokens per text. text_cache_dir: vector cache (``None``: ``$KGZOO_HOME/text``).

    Buffers: ``vectors`` FloatTensor ``[I, H]`` (from :meth:`attach`; not saved).
    """

    def __init__(self, n_users: int, n_items: int, text_model: str | None = None, text_max_length: int = 32,
                 text_cache_dir: str | None = None, **kwargs: Any) -> None:
        source = TextEncoder(text_model, mode="frozen", max_length=text_max_length)  # width only, no weights
        super().__init__(n_users, n_items, dim=source.dim, id_fallback=False, **kwargs)
        self.save_hyperparameters()
        self.text_request = {"model": source.model_name, "pooling": "mean", "normalize": True,
                             "max_length": int(text_max_length), "cache_dir": text_cache_dir}
        self.register_buffer("vectors", torch.zeros(self.n_items, self.dim), persistent=False)
        self.automatic_optimization = False

    def pretrain_requests(self) -> dict[str, dict[str, Any]]:
        """``"text_vectors"``: the frozen PLM vectors of the news texts."""
        return {"text_vectors": dict(self.text_request)}

    def _attach(self, graphs: Any, extras: dict[str, Any]) -> None:
        """The news vectors from ``extras["text_vectors"]`` (zeros for news without text).

        Raises:
            RuntimeError: no ``extras["text_vectors"]`` (attach with :func:`kgzoo.api.attach`).
        """
        super()._attach(graphs, extras)
        vectors = extras.get("text_vectors")
        if vectors is None:
            raise RuntimeError("news-plm-mean needs extras['text_vectors']: attach it with kgzoo.api.attach")
        self.vectors.copy_(vectors.load() * self.has_text.unsqueeze(1))

    def text_vectors(self, items: Tensor) -> Tensor:
        """FloatTensor ``[N, H]``: the frozen PLM vectors of ``items``."""
        return self.vectors[items]

    def user_vectors(self, history: Tensor, mask: Tensor) -> Tensor:
        """FloatTensor ``[B, H]``: the mean of the clicked news vectors (zeros without history)."""
        m = mask.unsqueeze(-1).to(history.dtype)
        return (history * m).sum(1) / m.sum(1).clamp_min(1.0)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        return None

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        """Zero: nothing trains."""
        return torch.zeros((), device=self.vectors.device)
