"""RippleNet: user preferences propagated over the KG through hop-wise ripple sets.

Wang, Zhang, Wang, Zhao, Li, Xie, Guo, "RippleNet: Propagating User Preferences on the
Knowledge Graph for Recommender Systems", CIKM 2018 (arXiv:1803.03467).
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops.grouped import relation_matmul
from ..registry import register_model
from .base import Recommender
from .kgcn import kg_csr, sample_fixed_size
from .layers.losses import bpr_loss

UPDATE_MODES = ("replace", "plus", "replace_transform", "plus_transform")


def build_ripple_sets(seed_indptr: Tensor, seeds: Tensor, triples: Tensor, n_entities: int, n_relations: int,
                      n_hop: int, n_memory: int, generator: torch.Generator) -> Tensor:
    """Hop-wise ripple sets of every user (RippleNet section 3.2, the code's ``get_ripple_set``).

    Hop 0 starts from the user's seed items; hop ``h`` lists every KG triple ``(e, r, t)`` whose
    head ``e`` is a seed (hop 0) or a tail of hop ``h - 1`` (with multiplicity), and keeps
    ``n_memory`` of them: uniformly without replacement when there are at least that many,
    else with replacement (:func:`~kgzoo.models.kgcn.sample_fixed_size`). A hop with no triple
    copies the previous hop, as the code; a user with none at hop 0 (no seed or no KG edge)
    gets the padding triple ``(E, R, E)`` everywhere. KG edges are directed (head to tail).
    Vectorised: the candidate triples of all users are materialised as index arrays
    (``sum`` of seed out-degrees entries per hop), no loop over users.

    Args:
        seed_indptr: LongTensor ``[U + 1]``, seeds: LongTensor ``[nnz]`` -- CSR of the users'
            seed entities (the train positives). triples: LongTensor ``[M, 3]``.
        n_entities, n_relations: ``E``, ``R`` (padding ids). n_hop: ``H``. n_memory: ``m``.

    Returns:
        LongTensor ``[U, H, 3, m]``: heads, relations, tails of each user's hops.
    """
    U = seed_indptr.numel() - 1
    kptr, ktail, krel = kg_csr(triples, n_entities + 1, undirected=False)
    hsorted = torch.repeat_interleave(torch.arange(n_entities + 1), kptr.diff())
    out = torch.empty(U, n_hop, 3, n_memory, dtype=torch.long)
    pad = torch.tensor([n_entities, n_relations, n_entities]).view(3, 1)
    sptr, sent = seed_indptr, seeds
    for h in range(n_hop):  # loop over hops only
        deg = kptr.diff()[sent]  # out-degree of each seed
        owner = torch.repeat_interleave(torch.arange(U), sptr.diff())
        per_user = torch.zeros(U, dtype=torch.long).index_add_(0, owner, deg)
        cptr = torch.cat([torch.zeros(1, dtype=torch.long), per_user.cumsum(0)])
        total = int(cptr[-1])
        seed_start = deg.cumsum(0) - deg
        offset = torch.arange(total) - torch.repeat_interleave(seed_start, deg)
        cand = torch.repeat_interleave(kptr[:-1][sent], deg) + offset  # candidate edge ids
        pos, empty = sample_fixed_size(cptr, n_memory, generator)
        edge = cand[pos] if total else torch.zeros_like(pos)
        hop = torch.stack([hsorted[edge], krel[edge], ktail[edge]], 1)  # [U, 3, m]
        fallback = out[:, h - 1] if h > 0 else pad.expand(U, 3, n_memory)
        out[:, h] = torch.where(empty[:, None, None], fallback, hop)
        sent = out[:, h, 2].reshape(-1)
        sptr = torch.arange(U + 1) * n_memory
    return out


@register_model("ripplenet", family="kg-memory", paper="Wang et al., CIKM 2018")
class RippleNet(Recommender):
    """RippleNet (Wang et al., CIKM 2018).

    * Ripple sets (section 3.2, eq. 1-2): per user and hop ``h = 1..H`` a fixed-size set of
      ``m`` = ``n_memory`` KG triples, grown from the user's train positives
      (:func:`build_ripple_sets`, seeded by ``sample_seed``), stored in the buffer ``ripple``
      ``[U, H, 3, m]``.
    * Preference propagation (eq. 3-5): ``p_i = softmax_i(v^T R_i h_i)`` with ``R_i`` a
      ``d x d`` relation matrix; ``o^h = sum_i p_i t_i``. After each hop the item vector is
      updated (``item_update_mode``: ``"plus_transform"`` ``v <- (v + o) T`` is the code's
      default; ``"replace"`` ``v <- o`` is the paper's eq. 6 reading; also ``"plus"``,
      ``"replace_transform"``).
    * Prediction (eq. 7-8): ``y = sigmoid(v_H^T (o^1 + ... + o^H))`` (``using_all_hops``; else
      only ``o^H``).
    * Loss (eq. 10, the code): BCE (``ctr``) or BPR (``topk``) ``- kge_weight * sum_h
      mean(sigmoid(h^T R t))`` over the batch users' ripple sets ``+ l2_weight * sum_h
      (||h||^2 + ||R||^2 + ||t||^2)`` (batch rows) ``+ l2_weight * ||T||^2 / 2``.

    :meth:`score` ranks all items at once per user chunk: ``R h`` is item-independent, so the
    cost is ``b x I x m x d`` per hop, user chunks keep ``b x I x max(m, d)`` under
    ``score_budget`` floats. The default (``2^19``, 2 MB per float32 tensor) keeps a chunk's
    tensors in the CPU cache: each hop streams them through about ten memory-bound operations
    (products, softmax, sums; measured in ``benchmarks/studies/model_speed.md``).

    A batch's ``B H m`` memories repeat the KG's triples: ``R h``, ``R t`` and ``h^T R t`` are
    computed once per distinct triple of the batch and gathered per memory, the L2 norms
    weighted by each triple's number of memories (same values as per memory).

    Args:
        embedding_dim: ``d``. n_hop: ``H``. n_memory: ``m``. kge_weight, l2_weight: loss
        weights. item_update_mode, using_all_hops: see above. sample_seed: ripple-set seed.
        score_budget: floats per user chunk in :meth:`score`. **kwargs: :class:`Recommender`.

    Raises:
        ValueError: unknown ``item_update_mode``; ``n_hop`` or ``n_memory`` < 1.
        RuntimeError: use before :meth:`attach` built the ripple sets.
    """

    trains_on_labels = True  # BCE on the ctr task's labelled rows (eq. 10)

    def __init__(self, n_users: int, n_items: int, n_entities: int = 0, n_relations: int = 0,
                 embedding_dim: int = 16, n_hop: int = 2, n_memory: int = 32, kge_weight: float = 0.01,
                 l2_weight: float = 1e-7, item_update_mode: str = "plus_transform", using_all_hops: bool = True,
                 sample_seed: int = 0, score_budget: int = 2 ** 19, **kwargs: Any) -> None:
        super().__init__(n_users, n_items, n_entities=n_entities, n_relations=n_relations, **kwargs)
        self.save_hyperparameters()
        if item_update_mode not in UPDATE_MODES:
            raise ValueError(f"RippleNet: unknown item_update_mode {item_update_mode!r}; expected one of {UPDATE_MODES}")
        if n_hop < 1 or n_memory < 1:
            raise ValueError(f"RippleNet: n_hop ({n_hop}) and n_memory ({n_memory}) must be >= 1")
        d, E, R = embedding_dim, self.n_entities, max(self.n_relations, 1)
        self.dim, self.H, self.m = d, n_hop, n_memory
        self.kge_weight, self.l2_weight = kge_weight, l2_weight
        self.item_update_mode, self.using_all_hops = item_update_mode, using_all_hops
        self.sample_seed, self.score_budget = sample_seed, score_budget
        self.entity_emb = nn.Embedding(E + 1, d, padding_idx=E)  # row E: padding
        self.relation_emb = nn.Embedding(R + 1, d * d, padding_idx=R)  # R_r as a flat d x d matrix
        self.transform = nn.Parameter(torch.empty(d, d))
        nn.init.xavier_uniform_(self.entity_emb.weight)
        nn.init.xavier_uniform_(self.transform)
        # TF's glorot for a [R, d, d] tensor: fan_in = fan_out = d * R
        bound = math.sqrt(6.0 / (2 * d * R))
        nn.init.uniform_(self.relation_emb.weight, -bound, bound)
        with torch.no_grad():
            self.entity_emb.weight[E].zero_()
            self.relation_emb.weight[R].zero_()
        pad = torch.tensor([E, R, E]).view(1, 1, 3, 1).expand(self.n_users, n_hop, 3, n_memory)
        self.register_buffer("ripple", pad.clone())

    def _attach(self, graphs: Any, extras: dict[str, Any]) -> None:
        """Ripple sets from the train positives (``graphs.train_csr``) and KG triples.

        Raises:
            ValueError: the KG has no triples (e.g. ``kg_ablation="none"``): RippleNet's
                memories are KG triples, so it has nothing to attend over.
        """
        if graphs.n_triples == 0:
            raise ValueError("RippleNet needs a KG: its ripple sets are the KG triples reached from a user's "
                             "items, and this DataModule's KG is empty (kg_ablation='none'?)")
        indptr, items = graphs.train_csr
        rs = build_ripple_sets(indptr, items, graphs.triples, self.n_entities, max(self.n_relations, 1),
                               self.H, self.m, torch.Generator().manual_seed(self.sample_seed))
        self.ripple.copy_(rs.to(self.ripple.device))

    # ------------------------------------------------------------------ math
    def _memories(self, users: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """The users' ripple sets as their distinct KG triples.

        Returns:
            ``inv`` LongTensor ``[B H m]`` (the distinct triple of each memory, flattened from
            ``[B, H, m]``), ``counts`` LongTensor ``[T]`` (memories per distinct triple), ``rel``
            LongTensor ``[T]``, ``h``, ``t`` FloatTensors ``[T, d]`` (head and tail
            embeddings), the ``T`` distinct triples sorted by relation.
        """
        rs = self.ripple[users]  # [B, H, 3, m]
        E1 = self.n_entities + 1  # entity ids with padding: 0..E
        key = (rs[:, :, 1] * E1 + rs[:, :, 0]) * E1 + rs[:, :, 2]  # (relation, head, tail), relation first
        uniq, inv, counts = torch.unique(key.flatten(), return_inverse=True, return_counts=True)
        rel, head, tail = uniq // (E1 * E1), uniq // E1 % E1, uniq % E1
        table = self.entity_emb.weight
        if torch.is_grad_enabled() and table.requires_grad:  # the padding row E gets no gradient (padding_idx)
            table = torch.cat([table[:-1], table[-1:].detach()])
        return inv, counts, rel, table.index_select(0, head), table.index_select(0, tail)

    def _relation_matrices(self) -> Tensor:
        """FloatTensor ``[R+1, d, d]``: the ``R_r``; the padding relation ``R`` stays zero (no
        gradient, as the embedding's ``padding_idx``)."""
        w = self.relation_emb.weight
        return torch.cat([w[:-1], w[-1:].detach()]).view(-1, self.dim, self.dim)

    def _apply_relation(self, x: Tensor, rel: Tensor) -> Tensor:
        """``R_rel x`` ``[T, s, d]`` for ``s`` vectors per row ``x`` ``[T, s, d]`` and relation ids
        ``rel`` ``[T]`` sorted ascending: one matmul per relation
        (:func:`~kgzoo.ops.grouped.relation_matmul`) instead of gathering a ``[T, d, d]`` copy
        of the matrices (the authors' ``embedding_lookup``), same values."""
        T, n, d = x.shape
        mats = self._relation_matrices().transpose(1, 2)  # (R x)^T = x^T R^T
        return relation_matmul(x.reshape(T * n, d), mats, rel.repeat_interleave(n), grouped=True).view(T, n, d)

    def _update(self, v: Tensor, o: Tensor) -> Tensor:
        mode = self.item_update_mode
        if mode == "replace":
            return o
        if mode == "plus":
            return v + o
        if mode == "replace_transform":
            return o @ self.transform
        return (v + o) @ self.transform

    def _propagate(self, Rh: Tensor, t: Tensor, v: Tensor) -> Tensor:
        """Logits ``[B, n]`` for item vectors ``v`` ``[B, n, d]`` given ``Rh``, ``t`` ``[H, B, m, d]``
        (hop-major: each hop's memories contiguous for the batched products)."""
        y = None
        for hop in range(self.H):
            p = torch.softmax(torch.bmm(v, Rh[hop].transpose(1, 2)), -1)  # eq. 4, [B, n, m]
            o = torch.bmm(p, t[hop])  # eq. 5, [B, n, d]
            v = self._update(v, o)
            if self.using_all_hops or hop == self.H - 1:
                y = o if y is None else y + o
        return (v * y).sum(-1)

    def _forward(self, users: Tensor, v: Tensor) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Logits ``[B, n]`` of item vectors ``v`` ``[B, n, d]`` for ``users`` ``[B]``, and the
        memories for :meth:`_regularisers`: ``(inv, counts, rel, h, t)`` of :meth:`_memories` and
        ``R t`` ``[T, d]``. ``R h`` and ``R t`` are computed once per distinct triple of the
        batch's ripple sets (a batch's ``B H m`` memories repeat the KG's triples), then
        gathered per memory."""
        inv, counts, rel, h, t = self._memories(users)
        Rht = self._apply_relation(torch.stack([h, t], 1), rel)  # [T, 2, d]: R h, R t
        hop_major = inv.view(-1, self.H, self.m).transpose(0, 1).reshape(-1)
        shape = (self.H, users.numel(), self.m, self.dim)
        Rh, tm = Rht[:, 0].index_select(0, hop_major).view(shape), t.index_select(0, hop_major).view(shape)
        return self._propagate(Rh, tm, v), (inv, counts, rel, h, t, Rht[:, 1])

    def predict(self, users: Tensor, items: Tensor) -> Tensor:
        """FloatTensor ``[B]``: logits of (user, item) pairs."""
        return self._forward(users, self.entity_emb(items[:, None]))[0][:, 0]

    def _regularisers(self, inv: Tensor, counts: Tensor, rel: Tensor, h: Tensor, t: Tensor, Rt: Tensor) -> Tensor:
        """KGE and L2 terms of eq. 10 over the batch's memories, from their distinct triples
        (:meth:`_forward`): ``h^T R t`` once per triple, gathered per memory for the per-hop
        mean; the squared norms weighted by each triple's number of memories."""
        hRt = (h * Rt).sum(-1).index_select(0, inv).view(-1, self.H, self.m)  # h^T R t, [B, H, m]
        kge = -self.kge_weight * torch.sigmoid(hRt).mean((0, 2)).sum()
        # sum over the batch's memories of ||h||^2 + ||t||^2 + ||R_rel||^2, as counts per triple
        mats = self._relation_matrices()
        w = counts.to(h.dtype)
        uses = torch.zeros(mats.shape[0], dtype=h.dtype, device=h.device).index_add_(0, rel, w)
        l2 = (w * (h.pow(2).sum(-1) + t.pow(2).sum(-1))).sum() + (uses * mats.pow(2).sum((1, 2))).sum()
        if self.item_update_mode.endswith("transform"):
            l2 = l2 + self.transform.pow(2).sum() / 2
        return kge + self.l2_weight * l2

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        """BCE (``{user, item, label}``) or BPR (``{user, pos_item, neg_item}``) + KGE + L2."""
        if self.attached_fingerprint is None and bool((self.ripple[:, 0, 1] == max(self.n_relations, 1)).all()):
            raise RuntimeError("RippleNet has no ripple sets: build it with kgzoo.create_model(..., datamodule=dm)")
        if "label" in batch:
            logits, mem = self._forward(batch["user"], self.entity_emb(batch["item"][:, None]))
            base = F.binary_cross_entropy_with_logits(logits[:, 0], batch["label"].float())
        else:
            items = torch.stack([batch["pos_item"], batch["neg_item"]], 1)
            logits, mem = self._forward(batch["user"], self.entity_emb(items))
            base = bpr_loss(logits[:, 0], logits[:, 1])
        return base + self._regularisers(*mem)

    def score(self, users: Tensor) -> Tensor:
        """FloatTensor ``[B, I]``: logits of every item, in user chunks."""
        chunk = max(1, self.score_budget // (self.n_items * max(self.m, self.dim)))
        items = self.entity_emb.weight[: self.n_items]
        out = []
        for s in range(0, users.numel(), chunk):
            u = users[s:s + chunk]
            out.append(self._forward(u, items.expand(u.numel(), -1, -1))[0])
        return torch.cat(out)
