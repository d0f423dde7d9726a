"""BPR-MF: matrix factorisation trained with the BPR loss."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..registry import register_model
from .base import Recommender
from .layers.fold_in import grown_embedding
from .layers.losses import bpr_loss, l2_reg


@register_model("bpr", family="mf", paper="Rendle et al., UAI 2009")
class BPRMF(Recommender):
    """Matrix factorisation ``score(u, i) = <e_u, e_i>`` trained with BPR.

    Rendle et al., "BPR: Bayesian Personalized Ranking from Implicit Feedback", UAI 2009
    (eq. 4 loss; the MF model of section 5.1).

    Args:
        embedding_dim: ``d``. reg_weight: L2 weight on the batch embeddings.
        **kwargs: :class:`Recommender` arguments.
    """

    def __init__(self, n_users: int, n_items: int, embedding_dim: int = 64, reg_weight: float = 1e-4,
                 **kwargs: Any) -> None:
        super().__init__(n_users, n_items, **kwargs)
        self.save_hyperparameters()
        self.user_emb = nn.Embedding(self.n_users, embedding_dim)
        self.item_emb = nn.Embedding(self.n_items, embedding_dim)
        nn.init.xavier_normal_(self.user_emb.weight)
        nn.init.xavier_normal_(self.item_emb.weight)
        self.reg_weight = reg_weight

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        u = self.user_emb(batch["user"])
        p, n = self.item_emb(batch["pos_item"]), self.item_emb(batch["neg_item"])
        return bpr_loss((u * p).sum(-1), (u * n).sum(-1)) + self.reg_weight * l2_reg(u, p, n)

    def final_embeddings(self) -> tuple[Tensor, Tensor]:
        """``(E_u [U, d], E_i [I, d])``: score ``<e_u, e_i>`` (section 5.1)."""
        return self.user_emb.weight, self.item_emb.weight

    def _grow(self, graphs: Any, growth: Any) -> None:
        """The user and item tables grow to ``graphs``' sizes; trained rows keep their ids."""
        self.user_emb = grown_embedding(self.user_emb, torch.arange(growth.n_users), graphs.n_users)
        self.item_emb = grown_embedding(self.item_emb, torch.arange(growth.n_items), graphs.n_items)

    def _write_rows(self, kind: str, ids: Tensor, vectors: Tensor) -> None:
        """The rows themselves are the final vectors (section 5.1)."""
        (self.user_emb if kind == "user" else self.item_emb).weight[ids] = vectors
