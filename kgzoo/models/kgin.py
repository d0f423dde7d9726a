"""KGIN: knowledge graph-based intent network."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import register_model
from .base import Recommender
from .layers.losses import bpr_loss, l2_reg
from .layers.propagation import NeighbourMean, RelationalMean, keep_mask

_INDEPENDENCE = ("distance", "cosine", "mi")


def distance_correlation(x: Tensor, y: Tensor) -> Tensor:
    """Distance correlation ``dCor(x, y)`` (KGIN eq. 14; Szekely et al., 2007), batched.

    Treats the ``d`` components of each vector as samples (as the authors' code).

    Args:
        x, y: FloatTensors ``[..., d]`` (the same shape).

    Returns:
        FloatTensor ``[...]`` in ``[0, 1]``.
    """
    def centred(v: Tensor) -> Tensor:
        a = (v.unsqueeze(-1) - v.unsqueeze(-2)).abs()  # [..., d, d]
        return a - a.mean(-2, keepdim=True) - a.mean(-1, keepdim=True) + a.mean((-2, -1), keepdim=True)

    a, b = centred(x), centred(y)
    dcov_xy = (a * b).mean((-2, -1)).clamp_min(0).sqrt()
    dcov_xx = (a * a).mean((-2, -1)).clamp_min(0).sqrt()
    dcov_yy = (b * b).mean((-2, -1)).clamp_min(0).sqrt()
    return dcov_xy / (dcov_xx * dcov_yy).clamp_min(1e-10).sqrt()


def independence_loss(intents: Tensor, kind: str = "distance", temperature: float = 0.2) -> Tensor:
    """Intent independence loss of KGIN (section 3.2.3).

    Args:
        intents: FloatTensor ``[P, d]`` intent embeddings ``e_p``.
        kind: ``"distance"`` (eq. 14: sum of ``dCor(e_p, e_p')`` over pairs ``p < p'``),
            ``"mi"`` (eq. 13: InfoNCE of each intent against all, cosine similarity /
            ``temperature``) or ``"cosine"`` (sum of squared cosine similarities over pairs,
            the authors' code's third option).

    Returns:
        scalar FloatTensor.

    Raises:
        ValueError: an unknown ``kind``.
    """
    P = intents.shape[0]
    if kind == "mi":
        z = F.normalize(intents, dim=1)
        logits = z @ z.T / temperature
        return F.cross_entropy(logits, torch.arange(P, device=intents.device))
    iu = torch.triu_indices(P, P, 1, device=intents.device)
    if kind == "cosine":
        z = F.normalize(intents, dim=1)
        return (z @ z.T)[iu[0], iu[1]].pow(2).sum()
    if kind == "distance":
        return distance_correlation(intents[iu[0]], intents[iu[1]]).sum()  # pairs p < p'; 0 for P = 1
    raise ValueError(f"independence kind must be one of {_INDEPENDENCE}, got {kind!r}")


@register_model("kgin", family="kg-gnn", paper="Wang et al., WWW 2021")
class KGIN(Recommender):
    """KGIN (Wang et al., "Learning Intents behind Interactions with Knowledge Graph for
    Recommendation", WWW 2021).

    Nodes: users ``U`` (own table) and entities ``E`` (items first); relations: the ``R`` KG
    relations and their inverses (``2R``; "interact" is not a relation embedding: the
    intents take its place).

    * Intents (eq. 1-2): ``e_p = sum_r alpha(r, p) e_r``, ``alpha(r, p) = softmax_r(w_rp)``.
    * User aggregation (eq. 3-6): ``beta(u, p) = softmax_p(e_p^T e_u^(0))``;
      ``e_u^(l+1) = 1/|N_u| sum_{i in N_u} (sum_p beta(u, p) e_p) * e_i^(l)`` (one sparse
      matmul for the mean over the kept interactions, :class:`NeighbourMean`, then the
      element-wise intent product). The authors' code adds the mean item embedding once more
      (a residual); ``user_residual`` switches it on.
    * Entity aggregation (eq. 7): ``e_h^(l+1) = 1/|N_h| sum_{(h,r,t)} e_r * e_t^(l)``
      (:class:`RelationalMean`, two sparse products over the KG with inverse triples).
    * ``L`` hops, each output L2-normalised and summed with layer 0 (eq. 10-11: ``e* = sum_l
      e^(l)``); message dropout on every layer, node (edge) dropout of the KG and the
      interactions during training (section 4.1.3).
    * Prediction ``e_u*^T e_i*`` (eq. 12); loss BPR + ``reg_weight`` x L2 of the batch's
      layer-0 embeddings + ``ind_weight`` x independence loss (eq. 13 or 14; computed on the
      intent embeddings ``e_p`` as the paper writes it, the authors' code uses the intent
      weights ``w_rp``).

    Args:
        embedding_dim: ``d``. n_hops: ``L``. n_intents: ``P``. independence: ``"distance"``
            (eq. 14), ``"mi"`` (eq. 13) or ``"cosine"``. ind_weight: ``lambda_1``.
        reg_weight: ``lambda_2``. mess_dropout / node_dropout: rates in ``[0, 1)``.
        user_residual: see above.

    Raises:
        ValueError: ``n_hops < 1``, ``n_intents < 1``, an unknown ``independence``, a rate
            outside ``[0, 1)``. RuntimeError: training or scoring before a DataModule was attached.
    """

    def __init__(self, n_users: int, n_items: int, embedding_dim: int = 64, n_hops: int = 3, n_intents: int = 4,
                 independence: str = "distance", ind_weight: float = 1e-4, reg_weight: float = 1e-5,
                 mess_dropout: float = 0.1, node_dropout: float = 0.5, user_residual: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(n_users, n_items, **kwargs)
        if n_hops < 1 or n_intents < 1:
            raise ValueError(f"n_hops and n_intents must be >= 1, got {n_hops}, {n_intents}")
        if independence not in _INDEPENDENCE:
            raise ValueError(f"independence must be one of {_INDEPENDENCE}, got {independence!r}")
        for name, p in (("mess_dropout", mess_dropout), ("node_dropout", node_dropout)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {p}")
        self.save_hyperparameters()
        self.n_hops, self.n_intents, self.independence = n_hops, n_intents, independence
        self.ind_weight, self.reg_weight = ind_weight, reg_weight
        self.mess_dropout, self.node_dropout, self.user_residual = mess_dropout, node_dropout, user_residual
        n_kg_rel = max(1, 2 * self.n_relations)
        self.user_emb = nn.Embedding(self.n_users, embedding_dim)
        self.entity_emb = nn.Embedding(self.n_entities, embedding_dim)
        self.rel_emb = nn.Embedding(n_kg_rel, embedding_dim)  # e_r, KG relations and inverses
        self.intent_weight = nn.Parameter(torch.empty(n_intents, n_kg_rel))  # w_rp
        for w in (self.user_emb.weight, self.entity_emb.weight, self.rel_emb.weight, self.intent_weight):
            nn.init.xavier_uniform_(w)
        self._kg_mean: RelationalMean | None = None  # eq. 7 over the KG with inverse triples
        self._user_mean: NeighbourMean | None = None  # the 1/|N_u| sum_i of eq. 6 over the interactions

    def _attach(self, graphs: Any, extras: dict[str, Any]) -> None:
        if graphs.n_entities != self.n_entities or graphs.n_users != self.n_users:
            raise ValueError(f"KGIN was built for {self.n_users} users / {self.n_entities} entities, the "
                             f"data has {graphs.n_users} / {graphs.n_entities}")
        h, r, t = graphs.triples.unbind(1)
        R = self.n_relations
        self._kg_mean = RelationalMean(torch.stack([torch.cat([h, t]), torch.cat([t, h])]), torch.cat([r, r + R]),
                                       self.n_entities, 2 * R)
        user, item = graphs.train_interactions.unbind(1)
        self._user_mean = NeighbourMean(user, item, self.n_users, self.n_entities)

    def intents(self) -> Tensor:
        """FloatTensor ``[P, d]``: ``e_p = softmax_r(w_rp) @ e_r`` (eq. 1-2)."""
        return torch.softmax(self.intent_weight, dim=1) @ self.rel_emb.weight

    def propagate(self) -> tuple[Tensor, Tensor]:
        """``(users FloatTensor [U, d], entities FloatTensor [E, d])``: the final representations (eq. 11)."""
        if self._kg_mean is None or self._user_mean is None:
            raise RuntimeError("KGIN has no graph: build it with kgzoo.create_model(..., datamodule=dm)")
        dev = self.entity_emb.weight.device
        # node dropout of the KG, then of the interactions, as keep masks of the means (both move themselves)
        keep = keep_mask(self.node_dropout, self._kg_mean.n_edges, dev, training=self.training)
        keep_ui = keep_mask(self.node_dropout, self._user_mean.n_edges, dev, training=self.training)
        user0, ent = self.user_emb.weight, self.entity_emb.weight
        e_p = self.intents()
        # beta(u, p) from the layer-0 user embedding (eq. 5); [U, d] combined intent per user
        user_intent = torch.softmax(user0 @ e_p.T, dim=1) @ e_p
        user_out, ent_out = user0, ent
        for _ in range(self.n_hops):
            mean_items = self._user_mean(ent, keep_ui)
            user = user_intent * mean_items + (mean_items if self.user_residual else 0)
            ent = self._kg_mean(ent, self.rel_emb.weight, keep)
            user = F.dropout(user, self.mess_dropout, self.training)
            ent = F.dropout(ent, self.mess_dropout, self.training)
            user_out = user_out + F.normalize(user, dim=1)
            ent_out = ent_out + F.normalize(ent, dim=1)
        return user_out, ent_out

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        users, ents = self.propagate()
        u, p, n = batch["user"], batch["pos_item"], batch["neg_item"]
        eu, ep, en = users[u], ents[p], ents[n]
        loss = bpr_loss((eu * ep).sum(-1), (eu * en).sum(-1))
        loss = loss + self.reg_weight * l2_reg(self.user_emb(u), self.entity_emb(p), self.entity_emb(n))
        if self.ind_weight:
            loss = loss + self.ind_weight * independence_loss(self.intents(), self.independence)
        return loss

    def final_embeddings(self) -> tuple[Tensor, Tensor]:
        """``(users [U, d], items [I, d])``: the summed hop outputs; score ``e_u*^T e_i*`` (eq. 15)."""
        user_emb, ent_emb = self.propagate()
        return user_emb, ent_emb[: self.n_items]
