"""CKE: collaborative knowledge-base embedding (BPR-MF + Bayesian TransR on the item KG)."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import register_model
from .base import Recommender
from .layers.fold_in import grown_embedding, grown_rows, init_from_old_neighbours
from .layers.translational import clamp_norm, transr_project
from .layers.losses import bpr_loss, l2_reg


@register_model("cke", family="kge-rec", paper="Zhang et al., KDD 2016")
class CKE(Recommender):
    """CKE (Zhang, Yuan, Lian, Xie, Ma, "Collaborative Knowledge Base Embedding for
    Recommender Systems", KDD 2016) -- the structural-knowledge part only.

    kgzoo has no item images or item text aligned for CKE, so the paper's stacked
    denoising auto-encoder (textual) and stacked convolutional auto-encoder (visual)
    components are **not** included; the item latent vector is
    ``e_j = eta_j + v_j`` (section 4.4, with the textual and visual terms dropped), where
    ``eta_j`` is an item offset and ``v_j`` the item's entity embedding in the KG.

    * Structural embedding: Bayesian TransR (section 4.1): ``f_r(h, t) = ||h M_r + r - t M_r||_2^2``
      with ``P((h, r, t) > (h, r, t')) = sigma(f_r(h, t') - f_r(h, t))``, i.e. the loss
      ``-log sigma(f_r(h, t') - f_r(h, t))`` on the DataModule's corrupted KG triples; the
      projected vectors are norm-clamped to ``<= 1`` (TransR's constraints,
      :func:`~kgzoo.models.layers.translational.transr_project`).
    * Collaborative filtering: BPR on ``score(u, j) = u_i . e_j`` (section 4.4, eq. 4).
    * Gaussian priors (section 4.4): L2 weights ``reg_weight`` on the user/item vectors
      and ``kg_reg_weight`` on the KG vectors of the batch.

    Batches: ``user, pos_item, neg_item`` plus ``head, relation, pos_tail, neg_tail``
    (KG relations ``0..R-1``, entity ids; items are entities ``0..I-1``).

    Args:
        embedding_dim: ``d`` (users, item offsets and entities share it, since ``e_j`` adds
            them). kg_embedding_dim: the relation space of TransR (``M_r`` is ``[d, d_r]``).
        kg_batch_size: KG triples per training batch. reg_weight, kg_reg_weight: L2 weights.

    Shapes: users ``[U, d]``, item offsets ``[I, d]``, entities ``[E, d]``, relations
    ``[R, d_r]``, projections ``[R, d, d_r]``; float32.

    Raises:
        ValueError: a non-positive ``kg_batch_size``; a dataset without relations.
    """

    uses_kg_batches = True

    def __init__(self, n_users: int, n_items: int, n_entities: int = 0, n_relations: int = 0,
                 embedding_dim: int = 64, kg_embedding_dim: int = 64, kg_batch_size: int = 2048,
                 reg_weight: float = 1e-2, kg_reg_weight: float = 1e-2, **kwargs: Any) -> None:
        super().__init__(n_users, n_items, n_entities=n_entities, n_relations=n_relations, **kwargs)
        if kg_batch_size < 1:
            raise ValueError(f"kg_batch_size must be >= 1, got {kg_batch_size!r}")
        self.save_hyperparameters()
        self.kg_batch_size = int(kg_batch_size)
        self.reg_weight, self.kg_reg_weight = float(reg_weight), float(kg_reg_weight)
        n_rel = max(1, self.n_relations)
        self.user = nn.Embedding(self.n_users, embedding_dim)
        self.item = nn.Embedding(self.n_items, embedding_dim)
        self.entity = nn.Embedding(self.n_entities, embedding_dim)
        self.relation = nn.Embedding(n_rel, kg_embedding_dim)
        self.proj = nn.Parameter(torch.empty(n_rel, embedding_dim, kg_embedding_dim))
        for w in (self.user.weight, self.item.weight, self.entity.weight, self.relation.weight, self.proj):
            nn.init.xavier_normal_(w)

    def item_vectors(self, items: Tensor | None = None) -> Tensor:
        """FloatTensor ``[B, d]`` (or ``[I, d]``): ``eta_j + v_j``."""
        if items is None:
            return self.item.weight + self.entity.weight[: self.n_items]
        return self.item(items) + self.entity(items)

    def kg_distance(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        """FloatTensor ``[B]``: ``||clamp(h M_r) + r - clamp(t M_r)||_2^2`` for LongTensors ``[B]``."""
        hr, tr = transr_project(self.entity(torch.cat([h, t])), self.proj, r.repeat(2)).split(h.numel())
        return (hr + clamp_norm(self.relation(r)) - tr).pow(2).sum(-1)

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        """BPR loss + Bayesian TransR loss + the Gaussian-prior L2 terms.

        Raises:
            KeyError: a batch without the KG keys (create the model with ``datamodule=``).
        """
        if "head" not in batch:
            raise KeyError("CKE needs KG batches (head, relation, pos_tail, neg_tail): create it with "
                           "kgzoo.create_model('cke', datamodule=dm), which sets dm.kg_batch_size")
        u = self.user(batch["user"])
        pi, ni = batch["pos_item"], batch["neg_item"]
        h, r, t, tn = batch["head"], batch["relation"], batch["pos_tail"], batch["neg_tail"]
        if r.numel() == 0:  # an empty KG: BPR-MF with item offsets (eta + v), no TransR term
            p, n = self.item_vectors(pi), self.item_vectors(ni)
            return bpr_loss((u * p).sum(-1), (u * n).sum(-1)) + self.reg_weight * l2_reg(u, p, n)
        # one gather per table (one dense gradient each), then split
        eta_p, eta_n = self.item(torch.cat([pi, ni])).split(pi.numel())
        ids = [pi, ni, h, t, tn]
        v_p, v_n, eh, et, etn = self.entity(torch.cat(ids)).split([x.numel() for x in ids])
        p, n = eta_p + v_p, eta_n + v_n
        rec = bpr_loss((u * p).sum(-1), (u * n).sum(-1))
        rel = self.relation(r)
        hr, tr, tnr = transr_project(torch.cat([eh, et, etn]), self.proj, r.repeat(3)).split(r.numel())
        rel_c = clamp_norm(rel)
        pos = (hr + rel_c - tr).pow(2).sum(-1)
        neg = (hr + rel_c - tnr).pow(2).sum(-1)
        kg = -F.logsigmoid(neg - pos).mean()
        reg = self.reg_weight * l2_reg(u, eta_p, eta_n)
        # ||M_r||^2 once per row of the batch, as l2_reg over the gathered M_r, without the gather
        m_sq = (torch.bincount(r, minlength=self.proj.shape[0]) * self.proj.pow(2).sum((1, 2))).sum()
        reg = reg + self.kg_reg_weight * (l2_reg(eh, rel, et, etn) + m_sq / 2 / max(1, r.numel()))
        return rec + kg + reg

    def score(self, users: Tensor) -> Tensor:
        """FloatTensor ``[B, I]`` = ``U[users] @ (eta + v_items)^T``."""
        return self.user(users) @ self.item_vectors().T

    # ------------------------------------------------------------------ incremental update
    def _update_vectors(self) -> tuple[Tensor, Tensor]:
        """``(u [U, d], eta + v [I, d])``: the vectors of ``score`` (eq. 4)."""
        return self.user.weight, self.item_vectors()

    def _grow(self, graphs: Any, growth: Any) -> None:
        """Users, item offsets and entities (by ``growth.entity_map``) grow to ``graphs``' sizes;
        a new entity's vector starts at the mean of its base KG neighbours' (an entity a new
        item links to keeps its own); the vectors and projections of new relations start from
        the model's own initialisation (Xavier normal)."""
        self.user = grown_embedding(self.user, torch.arange(growth.n_users), graphs.n_users)
        self.item = grown_embedding(self.item, torch.arange(growth.n_items), graphs.n_items)
        E1 = max(graphs.n_entities, graphs.n_items)
        ent = grown_rows(self.entity.weight, growth.entity_map, E1)
        old = torch.zeros(E1, dtype=torch.bool)
        old[growth.entity_map] = True
        t = graphs.triples
        init_from_old_neighbours(ent, old, t[:, 0], t[:, 2])
        self.entity = nn.Embedding.from_pretrained(ent, freeze=False)
        R0, R1 = self.relation.weight.shape[0], max(1, graphs.n_relations)
        if R1 > R0:
            rel = nn.init.xavier_normal_(torch.empty(R1 - R0, self.relation.weight.shape[1]))
            proj = nn.init.xavier_normal_(torch.empty(R1 - R0, *self.proj.shape[1:]))
            self.relation = nn.Embedding.from_pretrained(torch.cat([self.relation.weight.detach(), rel]), freeze=False)
            self.proj = nn.Parameter(torch.cat([self.proj.detach(), proj]))

    def _write_rows(self, kind: str, ids: Tensor, vectors: Tensor) -> None:
        """Users: ``u`` itself; items: the offset ``eta = x - v`` (the entity vector kept)."""
        if kind == "user":
            self.user.weight[ids] = vectors
        else:
            self.item.weight[ids] = vectors - self.entity.weight[ids]
