"""KGCN: knowledge graph convolutional networks with a sampled, user-weighted receptive field.

Wang, Zhao, Xie, Li, Guo, "Knowledge Graph Convolutional Networks for Recommender Systems",
WWW 2019 (arXiv:1904.12575). Also home of the vectorised fixed-size row sampler shared
with RippleNet (:func:`sample_fixed_size`).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import register_model
from .base import Recommender
from .layers.losses import bpr_loss, lookup_with_l2

AGGREGATORS = ("sum", "concat", "neighbor")


def _tanh_(x: Tensor) -> Tensor:
    """``tanh`` of ``x`` in place as ``2 sigmoid(2x) - 1`` (the same function; torch's CPU sigmoid
    is vectorised where its tanh is not, measured in ``benchmarks/studies/model_speed.md``);
    for full-ranking scoring without gradients. FloatTensor in, the same tensor out."""
    return x.mul_(2).sigmoid_().mul_(2).sub_(1)


def sample_fixed_size(indptr: Tensor, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Draw ``n`` positions per row of a CSR structure, as RippleNet's/KGCN's ``np.random.choice``.

    A row with ``deg >= n`` entries gets ``n`` distinct entries (uniform, without replacement);
    a row with ``0 < deg < n`` gets ``n`` draws with replacement; an empty row gets position 0
    and is flagged. Vectorised: one random key per entry and one sort by ``(row, key)`` (no
    loop over rows).

    Args:
        indptr: LongTensor ``[rows + 1]``. n: draws per row (>= 1). generator: torch RNG.

    Returns:
        ``(positions LongTensor [rows, n]`` into the CSR's value array, ``empty BoolTensor [rows])``.

    Raises:
        ValueError: ``n < 1``.
    """
    if n < 1:
        raise ValueError(f"sample size must be >= 1, got {n}")
    rows = indptr.numel() - 1
    deg = indptr.diff()
    nnz = int(indptr[-1])
    row_of = torch.repeat_interleave(torch.arange(rows), deg)
    key = torch.rand(nnz, generator=generator, dtype=torch.float64)
    shuffled = torch.argsort(row_of.double() + key)  # a random permutation inside every row
    j = torch.arange(n)
    start = indptr[:-1, None]
    without = shuffled[(start + j).clamp(max=max(nnz - 1, 0))] if nnz else torch.zeros(rows, n, dtype=torch.long)
    draw = (torch.rand(rows, n, generator=generator, dtype=torch.float64) * deg[:, None].clamp(min=1)).long()
    with_rep = start + draw
    pos = torch.where((deg >= n)[:, None], without, with_rep)
    empty = deg == 0
    pos = torch.where(empty[:, None], torch.zeros_like(pos), pos)
    return pos, empty


def kg_csr(triples: Tensor, n_entities: int, undirected: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Adjacency lists of the KG, grouped by head entity.

    Args:
        triples: LongTensor ``[M, 3]`` (head, relation, tail), relations ``0..R-1``.
        undirected: also list ``tail -> head`` with the same relation (KGCN's ``construct_kg``).

    Returns:
        ``(indptr LongTensor [E + 1], neighbour LongTensor [M'], relation LongTensor [M'])``,
        entries of entity ``e`` at ``indptr[e]:indptr[e + 1]`` in input order.
    """
    h, r, t = triples.unbind(1)
    if undirected:
        h, r, t = torch.cat([h, t]), torch.cat([r, r]), torch.cat([t, h])
    order = torch.argsort(h, stable=True)
    counts = torch.bincount(h, minlength=n_entities)
    indptr = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
    return indptr, t[order], r[order]


class _Aggregator(nn.Module):
    """One KGCN aggregator (eq. 2-4): ``sum`` ``act(W (v + v_N) + b)``, ``concat``
    ``act(W [v ; v_N] + b)``, ``neighbor`` ``act(W v_N + b)``; dropout on the input of ``W``."""

    def __init__(self, kind: str, dim: int, dropout: float) -> None:
        super().__init__()
        self.kind = kind
        self.linear = nn.Linear(2 * dim if kind == "concat" else dim, dim)
        nn.init.xavier_uniform_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, self_vec: Tensor, nbr_vec: Tensor, act: Any) -> Tensor:
        if self.kind == "sum":
            x = self_vec + nbr_vec
        elif self.kind == "concat":
            x = torch.cat(torch.broadcast_tensors(self_vec, nbr_vec), -1)
        else:
            x = nbr_vec
        return act(self.linear(self.dropout(x)))

    @property
    def linear_after_mean(self) -> bool:
        """Whether :meth:`projected` is exact: no dropout is active between the mean and ``W``."""
        return not (self.training and self.dropout.p > 0)

    def projected(self, self_vec: Tensor, nbr_vecs: Tensor) -> tuple[Tensor | None, Tensor]:
        """``(W_s v, W_n e_k)``: the linear map applied to user-independent inputs before the
        user-weighted mean, so that ``forward(v, sum_k pi_k e_k / K)`` equals
        ``act(W_s v + b + sum_k pi_k W_n e_k / K)`` (W is linear: the ``d x d`` product runs
        once per entity instead of once per (user, entity)). ``sum``: ``W_s = W_n = W``;
        ``concat``: ``W = [W_s, W_n]``; ``neighbor``: no self term (``None``).

        Args:
            self_vec: FloatTensor ``[n, d]``. nbr_vecs: FloatTensor ``[n, K, d]``.

        Returns:
            ``(FloatTensor [n, d] or None, FloatTensor [n, K, d])``.

        Raises:
            RuntimeError: dropout is active (training with ``dropout > 0``,
                :attr:`linear_after_mean` false), where the map cannot move inside the mean.
        """
        if not self.linear_after_mean:
            raise RuntimeError("KGCN aggregator: the projection is exact only without active dropout")
        w, d = self.linear.weight, nbr_vecs.shape[-1]
        if self.kind == "sum":
            return self_vec @ w.T, nbr_vecs @ w.T
        if self.kind == "concat":
            return self_vec @ w[:, :d].T, nbr_vecs @ w[:, d:].T
        return None, nbr_vecs @ w.T


class _FirstIteration:
    """KGCN's first iteration with its linear map moved inside the user-weighted mean
    (:meth:`_Aggregator.projected`), for full-ranking scoring (no gradient).

    For ``n`` entities with sampled neighbours of relations ``r_k`` it holds ``A = W_s v + b``
    ``[n, d]`` and ``P_k = W_n e_k / K`` ``[n, K, d]``; the pre-activation of user ``u`` is
    ``A + sum_k softmax_k(g(u, r_k)) P_k`` (eq. 2-4). Where the neighbourhoods hold at most ``K``
    distinct relations (``R'``), the sum is regrouped by relation, exactly:
    ``sum_k pi_k P_k = sum_r w_r S_r / sum_r w_r c_r`` with ``w_r = exp(g(u, r) - max)``, ``S_r``
    the sum of an entity's ``P_k`` of relation ``r`` (``[R', n, d]``) and ``c_r`` their count
    (``[n, R']``): per (user, entity) ``R'`` weights instead of a ``K``-term gather, and for all
    entities one ``[b, R'] x [R', n d]`` product. ``doubled`` copies of ``A`` and ``S`` (times 2)
    serve ``tanh(x) = 2 sigmoid(2x) - 1`` without a pass over the result.

    Raises:
        ValueError: (``build``) tables of other sizes than ``[n, d]``, ``[n, K, d]``, ``[n, K]``.
    """

    def __init__(self, base: Tensor, nbr: Tensor, relations: Tensor, present: Tensor | None,
                 sums: Tensor | None, counts: Tensor | None) -> None:
        self.base, self.nbr, self.relations = base, nbr, relations
        self.present, self.sums, self.counts = present, sums, counts
        self._doubled: tuple[Tensor, Tensor | None] | None = None

    @classmethod
    def build(cls, base: Tensor, nbr: Tensor, relations: Tensor) -> _FirstIteration:
        """From ``A [n, d]``, ``P [n, K, d]`` and the neighbours' relations ``[n, K]`` (LongTensor);
        the per-relation sums where ``R' <= K``."""
        n, K, d = nbr.shape
        if base.shape != (n, d) or relations.shape != (n, K):
            raise ValueError(f"KGCN first iteration: base {tuple(base.shape)}, neighbours {tuple(nbr.shape)} "
                             f"and relations {tuple(relations.shape)} do not agree ([n, d], [n, K, d], [n, K])")
        present, slot = torch.unique(relations, return_inverse=True)  # [R'], [n, K]
        if present.numel() > K:
            return cls(base, nbr, relations, None, None, None)
        R = present.numel()
        rows = torch.arange(n, device=nbr.device).expand(K, n).T  # [n, K]
        sums = nbr.new_zeros(R, n, d).index_put_((slot.flatten(), rows.flatten()), nbr.reshape(n * K, d),
                                                 accumulate=True)
        counts = nbr.new_zeros(n, R).scatter_add_(1, slot, torch.ones_like(nbr[..., 0]))
        return cls(base, nbr, relations, present, sums.view(R, n * d), counts)

    def pre_activation(self, rel_score: Tensor | None, attention: Any, doubled: bool = False) -> Tensor:
        """FloatTensor ``[b, n, d]``: ``A + sum_k pi_k P_k`` (times 2 where ``doubled``) for users
        with relation scores ``rel_score [b, R+1]`` (``None``: uniform weights ``1/K``, through
        ``attention``, ``b = 1``); the plain ``K``-term form where the relations were not grouped
        or a user's scores over the relations present span more than 80 (an exponential could
        underflow to 0), with ``attention(relations [n, K]) -> [b, n, K]``."""
        base = self.base
        if self.present is not None and rel_score is not None:
            s = rel_score[:, self.present]  # [b, R']
            top = s.max(1, keepdim=True).values
            if not bool(((top - s.min(1, keepdim=True).values) > 80).any()):
                sums = self.sums
                if doubled:
                    base, sums = self._doubled_tables()
                w = (s - top).exp_()  # [b, R']
                out = (w @ sums).view(w.shape[0], *base.shape)  # [b, n, d]
                return out.div_((w @ self.counts.T)[..., None]).add_(base)
        out = torch.einsum("bnk,nkd->bnd", attention(self.relations), self.nbr).add_(base)
        return out.mul_(2) if doubled else out

    def _doubled_tables(self) -> tuple[Tensor, Tensor]:
        if self._doubled is None:
            self._doubled = (self.base * 2, self.sums * 2)
        return self._doubled  # type: ignore[return-value]


@register_model("kgcn", family="kg-gnn", paper="Wang et al., WWW 2019")
class KGCN(Recommender):
    """KGCN (Wang et al., WWW 2019): an item's representation aggregates a fixed-size sampled
    KG neighbourhood, weighted by how much the user cares about each relation.

    * Receptive field (section 3.2): every entity gets ``K`` = ``n_neighbors`` neighbours drawn
      from its undirected KG adjacency (without replacement when it has ``>= K``, else with
      replacement; :func:`sample_fixed_size`), kept in buffers ``adj_entity``/``adj_relation``
      ``[E + 1, K]``; drawn at :meth:`attach` with ``sample_seed`` (the official code samples
      once; ``resample_every=N`` redraws every ``N`` epochs). An entity without KG edges points
      to a padding entity (zero embedding, padding relation of score 0).
    * User-relation score (eq. 1-2): ``pi_r^u = g(u, r)``, softmax-normalised over the ``K``
      neighbours; ``g`` is the inner product divided by ``d`` and the neighbourhood vector
      ``v_N = sum_k pi_k e_k / K``, exactly as the authors' ``reduce_mean`` code (the paper's
      eq. 1-2 up to these constant factors).
    * Aggregators (eq. 3-4 and the two variants): ``sum`` (KGCN-sum, default), ``concat``,
      ``neighbor``; ``H`` = ``n_iter`` iterations, each with its own weights, ReLU on every
      iteration but the last, which uses tanh (section 3.3, Algorithm 1).
    * Prediction: ``y = sigmoid(<u, v_u>)``; loss (eq. 5) binary cross-entropy (``ctr``); for
      ``topk`` batches ``{user, pos_item, neg_item}`` ``topk_loss="bpr"`` (kgzoo's top-K
      training) or ``"bce"`` (eq. 5 as written: cross-entropy with the positive labelled 1 and
      the sampled negative 0, as RecBole's KGCN); plus ``l2_weight`` times the TF ``l2_loss``
      (sum of squares / 2) of all embedding tables and aggregator weights, as the code.

    Top-K scoring (:meth:`score`) computes every item's user-specific representation. The
    representation of entity ``e`` after iteration ``i`` depends only on ``(u, e)``, so
    instead of expanding each item's tree (``B x I x K^H`` leaves) it evaluates each
    iteration once per *distinct* entity of the level sets ``N_0 = items``, ``N_m = N_{m-1}
    + neighbours(N_{m-1})`` (iteration ``i`` updates ``N_{H-i}``), in user chunks sized so a
    chunk's ``[b, |N|, K, d]`` tensor stays under ``score_budget`` floats. The first
    iteration's inputs do not depend on the user, so its aggregator's linear map is applied to
    them once per scoring call and moved inside the user-weighted neighbour mean
    (``W (v + sum_k pi_k e_k / K) = W v + sum_k pi_k (W e_k) / K``; concat: the two halves of
    ``W``): per (user, entity) a ``K x d`` weighted sum instead of a ``d x d`` product, or, where
    the neighbourhoods hold at most ``K`` distinct relations, a sum over those relations
    (:class:`_FirstIteration`); with one iteration ``<u, tanh(x)>`` is taken as
    ``2 <u, sigmoid(2x)> - sum(u)``. Where
    every sampled neighbourhood of the receptive field has one relation (a KG of one relation,
    such as lastfm-social's artist -[tag]-> tag), eq. 2's softmax is ``1/K`` for every user, so
    every item's representation is the same for all users: it is computed once per scoring call
    and the scores are one product ``U V^T``. It equals the pairwise :meth:`predict` up to float
    round-off (tested).

    Args:
        embedding_dim: ``d``. n_neighbors: ``K``. n_iter: ``H``. aggregator: ``"sum"``,
            ``"concat"`` or ``"neighbor"``. l2_weight: ``lambda``. dropout: on aggregator inputs.
        topk_loss: ``"bpr"`` or ``"bce"`` on top-K batches (see above).
        resample_every: redraw neighbours every this many epochs (0 = never). sample_seed:
            seed of the neighbour draw. score_budget: floats per user chunk in :meth:`score`.
        **kwargs: :class:`Recommender` arguments (``lr``, ``task``, ...).

    Raises:
        ValueError: unknown aggregator or ``topk_loss``; ``n_iter`` or ``n_neighbors`` < 1.
        RuntimeError: scoring before :meth:`attach` built the receptive field.
    """

    trains_on_labels = True  # BCE on the ctr task's labelled rows (eq. 5)

    def __init__(self, n_users: int, n_items: int, n_entities: int = 0, n_relations: int = 0,
                 embedding_dim: int = 16, n_neighbors: int = 8, n_iter: int = 1, aggregator: str = "sum",
                 l2_weight: float = 1e-4, dropout: float = 0.0, resample_every: int = 0, sample_seed: int = 0,
                 score_budget: int = 2 ** 24, topk_loss: str = "bpr", **kwargs: Any) -> None:
        super().__init__(n_users, n_items, n_entities=n_entities, n_relations=n_relations, **kwargs)
        self.save_hyperparameters()
        if aggregator not in AGGREGATORS:
            raise ValueError(f"KGCN: unknown aggregator {aggregator!r}; expected one of {AGGREGATORS}")
        if topk_loss not in ("bpr", "bce"):
            raise ValueError(f"KGCN: unknown topk_loss {topk_loss!r}; expected 'bpr' or 'bce'")
        self.topk_loss = topk_loss
        if n_iter < 1 or n_neighbors < 1:
            raise ValueError(f"KGCN: n_iter ({n_iter}) and n_neighbors ({n_neighbors}) must be >= 1")
        d, E, R = embedding_dim, self.n_entities, max(self.n_relations, 1)
        self.dim, self.K, self.H = d, n_neighbors, n_iter
        self.l2_weight, self.resample_every, self.sample_seed = l2_weight, resample_every, sample_seed
        self.score_budget = score_budget
        self.user_emb = nn.Embedding(self.n_users, d)
        self.entity_emb = nn.Embedding(E + 1, d, padding_idx=E)  # row E: padding entity
        self.relation_emb = nn.Embedding(R + 1, d, padding_idx=R)  # row R: padding relation
        for emb in (self.user_emb, self.entity_emb, self.relation_emb):
            nn.init.xavier_uniform_(emb.weight)
        with torch.no_grad():
            self.entity_emb.weight[E].zero_()
            self.relation_emb.weight[R].zero_()
        self.aggregators = nn.ModuleList(_Aggregator(aggregator, d, dropout) for _ in range(n_iter))
        self.register_buffer("adj_entity", torch.full((E + 1, n_neighbors), E, dtype=torch.long))
        self.register_buffer("adj_relation", torch.full((E + 1, n_neighbors), R, dtype=torch.long))
        self._csr: tuple[Tensor, Tensor, Tensor] | None = None
        self._levels: list[Tensor] | None = None
        #: every item's representation where it is the same for all users (:meth:`shared_items`),
        #: kept for one evaluation pass (:meth:`prepare_scoring` .. :meth:`end_scoring`)
        self._shared: Tensor | None = None
        #: the first iteration's projected tables (:meth:`_first_projection`), kept for one evaluation pass
        self._first: _FirstIteration | None = None

    # ------------------------------------------------------------------ receptive field
    def _attach(self, graphs: Any, extras: dict[str, Any]) -> None:
        """Build the undirected KG adjacency from ``graphs.triples`` and draw neighbours."""
        self._csr = kg_csr(graphs.triples, self.n_entities, undirected=True)
        self.sample_neighbors(self.sample_seed)

    def sample_neighbors(self, seed: int) -> None:
        """Redraw ``adj_entity``/``adj_relation`` ``[E + 1, K]`` with ``seed`` (vectorised)."""
        if self._csr is None:
            raise RuntimeError("KGCN has no KG: build it with kgzoo.create_model(..., datamodule=dm)")
        indptr, nbr, rel = self._csr
        E, R = self.n_entities, max(self.n_relations, 1)
        pos, empty = sample_fixed_size(indptr, self.K, torch.Generator().manual_seed(seed))
        if nbr.numel():
            ent, relation = nbr[pos], rel[pos]
        else:
            ent, relation = torch.zeros_like(pos), torch.zeros_like(pos)
        ent[empty], relation[empty] = E, R
        pad_e = torch.full((1, self.K), E, dtype=torch.long)
        pad_r = torch.full((1, self.K), R, dtype=torch.long)
        self.adj_entity.copy_(torch.cat([ent, pad_e]).to(self.adj_entity.device))
        self.adj_relation.copy_(torch.cat([relation, pad_r]).to(self.adj_relation.device))
        self._levels, self._shared, self._first = None, None, None

    def on_train_epoch_start(self) -> None:
        e = self.current_epoch
        if self.resample_every > 0 and e > 0 and e % self.resample_every == 0:
            self.sample_neighbors(self.sample_seed + e)

    # ------------------------------------------------------------------ pairwise
    def _act(self, i: int, in_place: bool = False) -> Any:
        """Iteration ``i``'s activation (Algorithm 1): tanh for the last, ReLU before; ``in_place``:
        the in-place forms full-ranking scoring uses on tensors it owns (no gradient)."""
        if i == self.H - 1:
            return _tanh_ if in_place else torch.tanh
        return torch.relu_ if in_place else F.relu

    def receptive_field(self, items: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """The sampled tree of each item (section 3.2, Algorithm 1): ``(entities, relations)``,
        ``entities[j]`` LongTensor ``[B, K^j]`` (hop ``j``, ``j = 0..H``; hop 0 the items
        ``[B]``) and ``relations[j]`` ``[B, K^(j+1)]`` (the relations to hop ``j + 1``)."""
        B = items.numel()
        ents, rels = [items.view(B, 1)], []
        for _ in range(self.H):
            rels.append(self.adj_relation[ents[-1]].view(B, -1))
            ents.append(self.adj_entity[ents[-1]].view(B, -1))
        return ents, rels

    def aggregate(self, u: Tensor, ent_vecs: list[Tensor], rel_vecs: list[Tensor]) -> Tensor:
        """FloatTensor ``[B, d]``: ``v_u`` from the user vectors ``u [B, d]`` and the embeddings of
        the receptive field (:meth:`receptive_field`: ``ent_vecs[j] [B, K^j, d]``,
        ``rel_vecs[j] [B, K^(j+1), d]``): eq. 1-4, the tree formulation of the official code."""
        B, K, d = u.shape[0], self.K, self.dim
        # pi^u_r normalised over each entity's K neighbours: [B, K^j, K]
        att = [torch.softmax((u[:, None, :] * r).mean(-1).view(B, -1, K), -1) for r in rel_vecs]
        vecs = ent_vecs
        for i in range(self.H):
            vecs = [self.aggregators[i](vecs[j], (att[j][..., None] * vecs[j + 1].view(B, -1, K, d)).mean(2),
                                        self._act(i)) for j in range(self.H - i)]
        return vecs[0][:, 0]

    def item_representation(self, users: Tensor, items: Tensor) -> Tensor:
        """FloatTensor ``[B, d]``: ``v_u`` of (user, item) pairs (LongTensors ``[B]``), the tree
        formulation of the official code (hop ``j`` holds ``[B, K^j]`` entities)."""
        ents, rels = self.receptive_field(items)
        return self.aggregate(self.user_emb(users), [self.entity_emb(e) for e in ents],
                              [self.relation_emb(r) for r in rels])

    def predict(self, users: Tensor, items: Tensor) -> Tensor:
        """FloatTensor ``[B]``: logits ``<u, v_u>`` of (user, item) pairs."""
        return (self.user_emb(users) * self.item_representation(users, items)).sum(-1)

    def l2(self) -> Tensor:
        """TF ``l2_loss`` (sum of squares / 2) of the embedding tables and aggregator weights."""
        out = sum(t.pow(2).sum() for t in (self.user_emb.weight, self.entity_emb.weight, self.relation_emb.weight))
        out = out + sum(a.linear.weight.pow(2).sum() for a in self.aggregators)
        return out / 2

    def predict_with_l2(self, users: Tensor, items: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`predict` and :meth:`l2` in one pass, for the training loss (eq. 5 plus the authors'
        whole-table L2, Wang et al., WWW 2019): each embedding table looked up once with its L2
        (:func:`~kgzoo.models.layers.losses.lookup_with_l2`: one dense gradient per table instead of
        one per lookup plus the square's); the same values and gradients as the two apart, up to
        float summation order (``test_kgcn_loss_with_one_lookup_per_table_equals_the_plain_loss``).

        Args:
            users, items: LongTensors ``[B]`` (user rows, item ids ``< n_items``).

        Returns:
            ``(logits FloatTensor [B], l2 scalar FloatTensor)``: ``<u, v_u>`` and the TF
            ``l2_loss`` (sum of squares / 2) of the three tables and the aggregator weights.

        Raises:
            IndexError: an id outside its table (as an embedding lookup).
        """
        ents, rels = self.receptive_field(items)
        u, l2_u = lookup_with_l2(self.user_emb.weight, users)
        ent_flat, l2_e = lookup_with_l2(self.entity_emb.weight, torch.cat([e.reshape(-1) for e in ents]),
                                        self.entity_emb.padding_idx)
        rel_flat, l2_r = lookup_with_l2(self.relation_emb.weight, torch.cat([r.reshape(-1) for r in rels]),
                                        self.relation_emb.padding_idx)
        B, d = u.shape[0], self.dim
        ent_vecs = [v.view(B, -1, d) for v in ent_flat.split([e.numel() for e in ents])]
        rel_vecs = [v.view(B, -1, d) for v in rel_flat.split([r.numel() for r in rels])]
        logits = (u * self.aggregate(u, ent_vecs, rel_vecs)).sum(-1)
        weights = sum(a.linear.weight.pow(2).sum() for a in self.aggregators) / 2
        return logits, l2_u + l2_e + l2_r + weights

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        """BCE on ``{user, item, label}`` (``ctr``); BPR or BCE (``topk_loss``) on ``{user, pos_item, neg_item}``; plus L2."""
        if "label" in batch:
            logits, l2 = self.predict_with_l2(batch["user"], batch["item"])
            base = F.binary_cross_entropy_with_logits(logits, batch["label"].float())
        else:
            u = batch["user"]
            both, l2 = self.predict_with_l2(torch.cat([u, u]), torch.cat([batch["pos_item"], batch["neg_item"]]))
            if self.topk_loss == "bce":  # eq. 5: positives 1, sampled negatives 0
                labels = torch.cat([torch.ones_like(both[: u.numel()]), torch.zeros_like(both[u.numel():])])
                base = F.binary_cross_entropy_with_logits(both, labels)
            else:
                base = bpr_loss(*both.split(u.numel()))
        return base + self.l2_weight * l2

    # ------------------------------------------------------------------ full ranking
    def _level_sets(self) -> list[Tensor]:
        """``[N_0, ..., N_H]``: sorted distinct entities within ``m`` hops of the items."""
        if self._levels is None:
            levels = [torch.arange(self.n_items, device=self.adj_entity.device)]
            for _ in range(self.H):
                prev = levels[-1]
                levels.append(torch.unique(torch.cat([prev, self.adj_entity[prev].flatten()])))
            self._levels = levels
        return self._levels

    def prepare_scoring(self) -> None:
        """Before an evaluation pass: the level sets anew, and once for the pass the first
        iteration's projected tables (:meth:`_first_projection`) and, where they do not depend on
        the user, the items' representations (:meth:`shared_items`)."""
        self._levels, self._shared, self._first = None, None, None
        with torch.no_grad():
            self._first = self._first_projection(self._level_sets())
            self._shared = self.shared_items()

    def end_scoring(self) -> None:
        self._levels, self._shared, self._first = None, None, None

    def _first_of(self, levels: list[Tensor]) -> _FirstIteration | None:
        """The pass's first-iteration tables (:meth:`prepare_scoring`), else computed now."""
        return self._first if self._first is not None else self._first_projection(levels)

    def _first_projection(self, levels: list[Tensor]) -> _FirstIteration | None:
        """Iteration 0's inputs are the user-independent entity embeddings, so its aggregator's
        linear map moves inside the user-weighted mean (:meth:`_Aggregator.projected`):
        ``W_s v + b`` ``[n, d]`` and ``W_n e_k / K`` ``[n, K, d]`` for the entities ``N_{H-1}`` it
        updates, computed once per :meth:`score` call, with their sums per relation where an
        entity's ``K`` neighbours hold few relations (:class:`_FirstIteration`); ``None`` while
        dropout is active (training) or gradients are recorded (the projected path works in
        place), where the unprojected path runs."""
        agg = self.aggregators[0]
        if torch.is_grad_enabled() or not agg.linear_after_mean:
            return None
        targets = levels[self.H - 1]
        table = self.entity_emb.weight
        self_proj, nbr_proj = agg.projected(table[targets], table[self.adj_entity[targets]])
        bias = agg.linear.bias.expand(targets.numel(), -1)
        return _FirstIteration.build(bias if self_proj is None else self_proj + bias, nbr_proj / self.K,
                                     self.adj_relation[targets])

    def _attention(self, rel_score: Tensor, relations: Tensor) -> Tensor:
        """``softmax_k g(u, r_k)`` (eq. 2) ``[b, n, K]`` for ``rel_score [b, R+1]`` and the
        neighbours' ``relations [n, K]``: exponentials of the ``R + 1`` scores per user (shifted by
        the user's largest, which softmax ignores) gathered and normalised, instead of a softmax
        over ``n`` rows of ``K``; the plain softmax where a user's scores span more than 80
        (an exponential could underflow to 0)."""
        top, low = rel_score.max(1, keepdim=True).values, rel_score.min(1, keepdim=True).values
        if bool(((top - low) > 80).any()):
            return torch.softmax(rel_score[:, relations], -1)
        w = (rel_score - top).exp_()[:, relations]
        return w.div_(w.sum(-1, keepdim=True))

    def _uniform_attention(self, levels: list[Tensor]) -> bool:
        """Whether eq. 2's softmax is ``1/K`` for every user: each entity that an iteration updates
        has ``K`` sampled neighbours of one relation (each row of ``adj_relation`` over
        ``N_0 .. N_{H-1}`` constant; always so for a KG of one relation)."""
        rows = self.adj_relation[torch.cat(levels[: self.H])]  # [sum |N_m|, K]
        return bool((rows == rows[:, :1]).all())

    def _score_chunk(self, users: Tensor, levels: list[Tensor], first: _FirstIteration | None = None) -> Tensor:
        u = self.user_emb(users)  # [b, d]
        rel_score = u @ self.relation_emb.weight.T / self.dim  # [b, R+1]: g(u, r)
        if self.H == 1 and first is not None:
            # one iteration, tanh last: <u, tanh(x)> = 2 <u, sigmoid(2x)> - sum(u), the doubling
            # folded into the pre-activation's tables (one pass over [b, I, d] instead of four)
            pre = first.pre_activation(rel_score, lambda relations: self._attention(rel_score, relations), doubled=True)
            return torch.bmm(pre.sigmoid_(), u[:, :, None]).squeeze(-1).mul_(2).sub_(u.sum(1, keepdim=True))
        table = self._propagate(levels, first, lambda relations: self._attention(rel_score, relations), rel_score)
        return torch.bmm(table, u[:, :, None]).squeeze(-1)  # N_0 = 0..I-1 in order

    def _propagate(self, levels: list[Tensor], first: _FirstIteration | None,
                   attention: Any, rel_score: Tensor | None = None) -> Tensor:
        """The ``H`` iterations over the level sets: FloatTensor ``[b, I, d]``, every item's
        representation for ``b`` users, where ``attention(relations [n, K]) -> [b, n, K]`` gives
        eq. 2's weights (``b = 1`` where they are the same for every user) and ``rel_score``
        ``[b, R+1]`` the scores ``g(u, r)`` behind them (``None``: the weights are uniform)."""
        K, E1 = self.K, self.n_entities + 1
        prev_tab: Tensor = self.entity_emb.weight  # iteration 0: [E+1, d], user-independent
        prev_ids: Tensor | None = None
        for i in range(self.H):
            targets = levels[self.H - 1 - i]
            nbr = self.adj_entity[targets]  # [n, K]
            if i == 0 and first is not None:  # W inside the mean: act(W_s v + b + sum_k pi_k W_n e_k / K)
                prev_tab = self._act(i, in_place=True)(first.pre_activation(rel_score, attention))
            elif i == 0:
                att = attention(self.adj_relation[targets])  # [b, n, K]
                agg = torch.einsum("bnk,nkd->bnd", att, prev_tab[nbr]) / K
                prev_tab = self.aggregators[i](prev_tab[targets], agg, self._act(i))  # [b, n, d]
            else:
                att = attention(self.adj_relation[targets])  # [b, n, K]
                lookup = torch.full((E1,), -1, dtype=torch.long, device=nbr.device)
                lookup[prev_ids] = torch.arange(prev_ids.numel(), device=nbr.device)
                agg = (att[..., None] * prev_tab[:, lookup[nbr]]).sum(2) / K
                prev_tab = self.aggregators[i](prev_tab[:, lookup[targets]], agg, self._act(i))  # [b, n, d]
            prev_ids = targets
        return prev_tab[:, : self.n_items]

    def shared_items(self) -> Tensor | None:
        """FloatTensor ``[I, d]``: every item's representation ``v`` where it is the same for all
        users (eq. 2's weights ``1/K`` for every user: :meth:`_uniform_attention`, e.g. a KG of one
        relation), so that ``score = U V^T``; ``None`` where the weights depend on the user."""
        levels = self._level_sets()
        if not self._uniform_attention(levels):
            return None
        uniform = torch.full((), 1.0 / self.K, device=self.adj_entity.device)
        return self._propagate(levels, self._first_of(levels),
                               lambda relations: uniform.expand(1, *relations.shape))[0]

    def score(self, users: Tensor) -> Tensor:
        """FloatTensor ``[B, I]``: ``<u, v_u>`` for every item, evaluated per distinct entity of
        the receptive field (see the class docstring) in user chunks, or as ``U V^T`` where the
        items' representations do not depend on the user (:meth:`shared_items`, computed once per
        evaluation pass by :meth:`prepare_scoring`)."""
        shared = self._shared if self._shared is not None else self.shared_items()
        if shared is not None:
            return self.user_emb(users) @ shared.T
        levels = self._level_sets()
        first = self._first_of(levels)
        widest = max(lv.numel() for lv in levels[: self.H]) * self.K * self.dim
        chunk = max(1, self.score_budget // max(1, widest))
        return torch.cat([self._score_chunk(users[s:s + chunk], levels, first)
                          for s in range(0, users.numel(), chunk)])
