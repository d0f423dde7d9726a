"""PLMRec: item text from a pre-trained language model in a two-tower recommender.

The text encoder runs in any of three modes (``text_mode``: ``frozen`` with a disk cache,
``lora`` adapters, ``full`` fine-tuning; see :mod:`kgzoo.models.layers.text_encoder`) and the
model trains with BPR (Rendle et al., UAI 2009, eq. 4). An item has no id parameter, so items
never seen in training get a representation from their text (the ``cold_item`` protocol,
``benchmarks/plm.md``).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..registry import register_model
from .base import Recommender
from .layers.losses import bpr_loss, l2_reg
from .layers.propagation import SparseAdj
from .layers.text_tower import TextConfig, TextTower


@register_model("plmrec", family="plm",
                paper="text two-tower after Ding et al., ZESRec, arXiv 2105.08318 (2021); Hou et al., UniSRec, KDD 2022")
class PLMRec(Recommender):
    """Text-only two-tower recommender.

    Item tower: ``e_i = P(PLM(text_i))`` (mean-pooled PLM vector ``[H]``, projection ``P`` to
    ``d``; the item representation of ZESRec, Ding et al. 2021, section 4, and of UniSRec's
    text encoder, Hou et al., KDD 2022, section 3.1, without its MoE adaptor). An item has
    no id parameter, so an item never seen in training is scored like any other.
    User tower: ``user_tower="id"`` a user id embedding ``[U, d]``; ``"mean"`` the mean of
    the item-tower vectors of the user's train items (no user parameter, ZESRec's user
    representation without its RNN). Score ``<e_u, e_i>``, BPR loss, L2 ``reg_weight`` on the
    batch's user embeddings and item vectors.

    Args:
        embedding_dim: ``d``. user_tower: ``"id"`` or ``"mean"``. proj_hidden: 0 = linear
            projection, else the hidden width of a 2-layer MLP.
        text_model: ``AutoModel`` name or path (``None`` = all-MiniLM-L6-v2).
        text_mode: ``"frozen"``, ``"lora"`` or ``"full"``. text_pooling: ``"mean"``/``"cls"``.
        text_max_length, text_batch_size: tokens per text, texts per encoder batch.
        lora_r, lora_alpha, lora_dropout, lora_target_modules: LoRA settings.
        grad_items: most distinct items encoded with grad per step (``lora``/``full``).
        text_cache_dir: frozen-vector cache (``None``: ``$KGZOO_HOME/text``).
        text_whiten: ``k``: BERT-whiten the text vectors to ``k`` dimensions before the
            projection (Su et al. 2021; fitted on the items' pre-trained vectors in :meth:`attach`,
            see :class:`~kgzoo.models.layers.text_tower.TextTower`); ``None``: the ``H``-dimensional vectors as encoded.

    Raises:
        ValueError: unknown ``user_tower``; a dataset without item text (in :meth:`attach`);
            ``text_whiten`` not an integer in ``1..H``, not below the number of items with text
            or above the rank of their vectors (in :meth:`attach`).
    """

    def __init__(self, n_users: int, n_items: int, embedding_dim: int = 64, user_tower: str = "id",
                 proj_hidden: int = 0, reg_weight: float = 1e-4, text_model: str | None = None,
                 text_mode: str = "frozen", text_pooling: str = "mean", text_max_length: int = 64,
                 text_batch_size: int = 64, lora_r: int = 8, lora_alpha: int = 16, lora_dropout: float = 0.1,
                 lora_target_modules: Sequence[str] | None = None, grad_items: int = 256,
                 text_cache_dir: str | None = None, text_whiten: int | None = None, **kwargs: Any) -> None:
        super().__init__(n_users, n_items, **kwargs)
        self.save_hyperparameters()
        if user_tower not in ("id", "mean"):
            raise ValueError(f"plmrec: user_tower must be 'id' or 'mean', got {user_tower!r}")
        self.user_tower, self.reg_weight = user_tower, reg_weight
        self.tower = TextTower(self.n_items, embedding_dim, TextConfig.from_hparams(dict(self.hparams)))
        self.user_emb = nn.Embedding(self.n_users, embedding_dim) if user_tower == "id" else None
        if self.user_emb is not None:
            nn.init.xavier_normal_(self.user_emb.weight)
        self.user_items: Tensor | None = None
        self._items: Tensor | None = None
        self._users: Tensor | None = None

    def pretrain_requests(self) -> dict[str, dict[str, Any]]:
        """What :meth:`attach` needs pre-computed in ``extras`` (made by :func:`kgzoo.api.attach`):
        ``"text_vectors"``, the pre-trained vectors of the item texts for the text tower."""
        return {"text_vectors": self.tower.vectors_request()}

    def _attach(self, graphs: Any, extras: dict[str, Any]) -> None:
        texts = graphs.item_text
        if texts is None:
            raise ValueError(f"plmrec needs item text; dataset {graphs.dataset!r} has none")
        self.tower.set_texts(texts, extras.get("text_vectors"))
        ui = graphs.train_interactions
        self.user_items = SparseAdj.row_mean(ui[:, 0], ui[:, 1], self.n_users, self.n_items)

    def _user_vectors(self, users: Tensor, items_all: Tensor | None) -> Tensor:
        if self.user_emb is not None:
            return self.user_emb(users)
        if self.user_items is None:
            raise RuntimeError("plmrec (user_tower='mean') has no train matrix: build it with create_model(..., datamodule=dm)")
        items_all = self.tower.all() if items_all is None else items_all
        return self.user_items.matmul(items_all)[users]

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        u = batch["user"]
        B = u.shape[0]
        items = self.tower(torch.cat([batch["pos_item"], batch["neg_item"]]))
        p, n = items[:B], items[B:]
        eu = self._user_vectors(u, None)
        return bpr_loss((eu * p).sum(-1), (eu * n).sum(-1)) + self.reg_weight * l2_reg(eu, p, n)

    def prepare_scoring(self) -> None:
        with torch.no_grad():
            self.tower.text.refresh()
            self._items = self.tower.all()
            self._users = None

    def end_scoring(self) -> None:
        self._items = None

    def score(self, users: Tensor) -> Tensor:
        """FloatTensor ``[B, I]``: ``<e_u, e_i>`` over every item."""
        items = self._items if self._items is not None else self.tower.all()
        return self._user_vectors(users, items) @ items.T
