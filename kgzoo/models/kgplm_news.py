"""KGPLM for news: KGPLM's fusion of the news text (PLM), the news KG and the clicks, scoring
impressions (MIND) or labelled rows (DKN's Bing News) from the user's clicked history.

A thin adapter over :class:`~kgzoo.models.kgplm.KGPLM` and
:class:`~kgzoo.models.news.NewsRecommender`, nothing copied:

- news vector ``r_i = Fuse_item(g_i, P(PLM(text_i)), a_i, W z_i)``: KGPLM's item vector
  (:meth:`KGPLM._items`: the graph encoder's output over the train clicks and the news KG, the
  text tower, the attributes, the frozen TransE entity vector; a news without text takes the
  tower's learned "no text" vector, so its graph, KG and attribute sources carry it);
- user vector ``u = Fuse_user'(h_u, e_u)``: ``h_u = sum_k alpha_k r_{c_k}``, additive attention over
  the clicked news' vectors (NRMS's user pooling, Wu et al., EMNLP-IJCNLP 2019, eq. 9-10; zeros
  for an empty history), and ``e_u`` KGPLM's fused user vector (:meth:`KGPLM._users`), present only
  for users with a train click (a user first seen at test time has only the history);
  ``Fuse_user'`` the same registered fusion kind as KGPLM's, over these two sources;
- score ``y = <u, r_c>`` (NRMS's click predictor, section 3.3); losses of
  :class:`~kgzoo.models.news.NewsRecommender` (the candidate softmax on impressions, log loss on
  CTR rows). KGPLM's L2 term on the layer-0 embeddings is left out.

Each distinct news of a batch is fused once, the graph propagated once per step, and in
evaluation every news once per pass (the frozen PLM's vectors cached on disk by
:mod:`kgzoo.pretrain.text_vectors`).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..registry import register_model
from .kgplm import KGPLM
from .layers.fusion import create_fusion
from .layers.news import AdditiveAttention
from .news import NewsRecommender


@register_model("kgplm-news", family="news", paper="kgzoo fusion model (KGPLM) with a click-history user "
                                                  "(NRMS's attention pooling); no single paper")
class KGPLMNews(NewsRecommender, KGPLM):
    """KGPLM's news tower and fusion with a user from the clicked history (see the module).

    Args:
        query_dim: the additive attention width of the history pooling (NRMS: 200).
        **kwargs: :class:`~kgzoo.models.kgplm.KGPLM` (``embedding_dim`` = the news and user
            width, ``graph``, ``fusion``, ``use_kg``, ``kg_encoder``, ``use_text``, ``text_mode``
            frozen / lora / full, ...) and :class:`~kgzoo.models.base.Recommender`.

    Raises:
        ValueError: as :class:`~kgzoo.models.kgplm.KGPLM`; a task other than ``impression``/``ctr``.

    Buffers: ``user_seen`` BoolTensor ``[U]`` (users with a train click; from :meth:`attach`, not saved).
    """

    def __init__(self, n_users: int, n_items: int, embedding_dim: int = 64, query_dim: int = 200,
                 fusion: str = "attention", **kwargs: Any) -> None:
        super().__init__(n_users, n_items, dim=int(embedding_dim), id_fallback=False, embedding_dim=embedding_dim,
                         fusion=fusion, **kwargs)
        self.save_hyperparameters(ignore=["dim", "id_fallback"])
        self.history_pool = AdditiveAttention(self.dim, int(query_dim))
        self.history_fusion = create_fusion(fusion, self.dim, 2)  # [history, KGPLM's user]
        self._graph_cache: Tensor | None = None
        #: users with a train click (their graph vector is trained), from attach
        self.register_buffer("user_seen", torch.zeros(self.n_users, dtype=torch.bool), persistent=False)

    def _attach(self, graphs: Any, extras: dict[str, Any]) -> None:
        """KGPLM's graph, text, KG vectors and attributes, and the news' text flags."""
        KGPLM._attach(self, graphs, extras)
        NewsRecommender._attach(self, graphs, extras)
        self.user_seen.copy_(torch.bincount(graphs.train_interactions[:, 0], minlength=self.n_users) > 0)

    def check_update(self) -> None:
        """KGPLM's incremental update grows a top-K model; a news model scores from histories.

        Raises:
            NotImplementedError: always (retrain on the extended data).
        """
        raise NotImplementedError(f"{type(self).__name__} (kgplm-news) has no incremental update: retrain it on "
                                  "the extended data (kgzoo fit / kgzoo bench)")

    def news_vectors(self, items: Tensor) -> Tensor:
        """FloatTensor ``[N, d]``: KGPLM's fused item vectors of news ``items`` LongTensor ``[N]``."""
        g = self._propagated()
        return self._items(g, items, self.tower(items) if self.tower is not None else None)

    def _propagated(self) -> Tensor:
        """The graph encoder's output ``[E + U, d]`` (cached over an evaluation pass)."""
        return self._graph_cache if self._graph_cache is not None else self.graph()

    def impression_scores(self, batch: dict[str, Tensor]) -> Tensor:
        """FloatTensor ``[B, C]``: ``<u, r_c>`` for the batch's ``candidates`` ``[B, C]``, ``u`` from
        its ``user [B]`` and ``history``/``history_mask`` ``[B, H]`` (the graph propagated once)."""
        hist, cand, users = batch["history"], batch["candidates"], batch["user"]
        g = self._propagated()
        uniq, inv = torch.unique(torch.cat([hist.flatten(), cand.flatten()]), return_inverse=True)
        if self._news_cache is not None:
            vec = self._news_cache[uniq]
        else:
            vec = self._items(g, uniq, self.tower(uniq) if self.tower is not None else None)
        h = vec[inv[:hist.numel()]].view(*hist.shape, -1)
        c = vec[inv[hist.numel():]].view(*cand.shape, -1)
        pooled = self.history_pool(h, batch["history_mask"])
        seen = self.user_seen[users]
        mask = torch.stack([torch.ones_like(seen), seen], 1)
        u = self.history_fusion([pooled, self._users(g, users)], mask)
        return (c * u.unsqueeze(1)).sum(-1)

    def prepare_scoring(self) -> None:
        """Propagate the graph and fuse every news once for the evaluation pass."""
        with torch.no_grad():
            if self.tower is not None:
                self.tower.text.refresh()
            self._graph_cache = self.graph()
            self._news_cache = KGPLM._all_items(self, self._graph_cache)

    def end_scoring(self) -> None:
        self._graph_cache = None
        self._news_cache = None
