"""CFKG: TransE-style embeddings of the collaborative KG (users, items, entities) for recommendation."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import register_model
from .base import Recommender
from .layers.translational import margin_ranking, transe_distance, transe_distance_all
from .layers.losses import l2_reg

CFKG_LOSSES = ("inner_product", "margin")


@register_model("cfkg", family="kge-rec", paper="Zhang et al., Algorithms 2018")
class CFKG(Recommender):
    """CFKG (Zhang, Ai, Chen, Wang, "Learning Heterogeneous Knowledge Base Embeddings for
    Explainable Recommendation", Algorithms 11(9) 2018; first as Ai et al., arXiv:1805.03352).

    Users, items and KG entities share one embedding space; every relation is a translation
    ``trans(h, r) = h + r`` (section 3.2). The user-item "interact" (the paper's "buy")
    edges are triples of the collaborative KG with relation ``0``; KG relations are
    ``1..R`` (kgzoo's CKG ids; :meth:`KGRecDataModule.ckg`). Both kinds of triples are
    trained together:

    * ``loss="inner_product"`` (the paper's objective, eq. 3-5): the softmax
      ``P(t | h, r) = exp(t . trans(h, r)) / sum_t' exp(t' . trans(h, r))`` approximated by
      negative sampling, ``-log sigma(t . (h + r)) - log sigma(-t' . (h + r))`` with one
      sampled ``t'`` per triple (RecBole's default for CFKG too);
    * ``loss="margin"``: TransE's hinge ``[gamma + ||h + r - t|| - ||h + r - t'||]_+``.

    Recommendation ranks items by the translation distance (section 3.4):
    ``score(u, i) = -||e_u + r_interact - e_i||_2``.

    Batches: ``user, pos_item, neg_item`` (interact triples ``(u, 0, i)`` with a corrupted
    item) and the DataModule's KG batches ``head, relation, pos_tail, neg_tail``
    (relations ``0..R-1`` of ``data.triples``, shifted here to ``1..R``).

    Args:
        embedding_dim: ``d``. loss: ``"inner_product"`` or ``"margin"``. margin: ``gamma``
            of the hinge loss. kg_batch_size: KG triples per training batch (sets the
            DataModule's). reg_weight: L2 on the batch embeddings (0 = none, the paper's).

    Shapes: node table ``[E + U, d]`` (entities first, items ``0..I-1``, users ``E..E+U-1``),
    relation table ``[R + 1, d]``; float32.

    Raises:
        ValueError: an unknown ``loss``; a non-positive ``kg_batch_size``.
    """

    uses_kg_batches = True

    def __init__(self, n_users: int, n_items: int, n_entities: int = 0, n_relations: int = 0,
                 embedding_dim: int = 64, loss: str = "inner_product", margin: float = 1.0,
                 kg_batch_size: int = 2048, reg_weight: float = 0.0, **kwargs: Any) -> None:
        super().__init__(n_users, n_items, n_entities=n_entities, n_relations=n_relations, **kwargs)
        if loss not in CFKG_LOSSES:
            raise ValueError(f"CFKG loss must be one of {CFKG_LOSSES}, got {loss!r}")
        if kg_batch_size < 1:
            raise ValueError(f"kg_batch_size must be >= 1, got {kg_batch_size!r}")
        self.save_hyperparameters()
        self.loss_kind, self.margin = loss, float(margin)
        self.kg_batch_size, self.reg_weight = int(kg_batch_size), float(reg_weight)
        self.node = nn.Embedding(self.n_entities + self.n_users, embedding_dim)
        self.relation = nn.Embedding(self.n_relations + 1, embedding_dim)
        nn.init.xavier_normal_(self.node.weight)
        nn.init.xavier_normal_(self.relation.weight)

    def _triple_loss(self, h: Tensor, r: Tensor, t: Tensor, t_neg: Tensor) -> Tensor:
        """Loss of ``[B, d]`` head, relation, true and corrupted tail embeddings."""
        if self.loss_kind == "inner_product":
            anchor = h + r
            return (F.softplus(-(anchor * t).sum(-1)) + F.softplus((anchor * t_neg).sum(-1))).mean()
        return margin_ranking(transe_distance(h, r, t, 2), transe_distance(h, r, t_neg, 2), self.margin)

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        """Interact-triple loss plus KG-triple loss (each a batch mean), plus optional L2.

        Raises:
            KeyError: a batch without the KG keys (the DataModule's ``kg_batch_size`` is 0:
            build the model with ``kgzoo.create_model(..., datamodule=dm)``).
        """
        if "head" not in batch:
            raise KeyError("CFKG needs KG batches (head, relation, pos_tail, neg_tail): create it with "
                           "kgzoo.create_model('cfkg', datamodule=dm), which sets dm.kg_batch_size")
        # one gather from the node table (one dense gradient), then split
        ids = [batch["user"] + self.n_entities, batch["pos_item"], batch["neg_item"],
               batch["head"], batch["pos_tail"], batch["neg_tail"]]
        u, p, n, h, t, t_neg = self.node(torch.cat(ids)).split([x.numel() for x in ids])
        r0 = self.relation.weight[0].expand_as(u)
        out = self._triple_loss(u, r0, p, n)
        if self.reg_weight > 0:
            out = out + self.reg_weight * l2_reg(u, p, n)
        if batch["head"].numel():  # an empty KG (kg_ablation="none") leaves the interact triples only
            rel = self.relation(batch["relation"] + 1)
            out = out + self._triple_loss(h, rel, t, t_neg)
            if self.reg_weight > 0:
                out = out + self.reg_weight * l2_reg(h, rel, t, t_neg)
        return out

    def score(self, users: Tensor) -> Tensor:
        """FloatTensor ``[B, I]``: ``-||e_u + r_interact - e_i||_2`` for every item."""
        query = self.node(users + self.n_entities) + self.relation.weight[0]
        return -transe_distance_all(query, self.node.weight[: self.n_items], 2)
