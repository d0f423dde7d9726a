"""KGAT: knowledge graph attention network over the collaborative KG."""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops.grouped import grouped_matmul
from ..registry import register_model
from .base import Recommender
from .layers.losses import bpr_loss
from .layers.propagation import KGATConv, RelationGroups, SparseAdj, kgat_attention


class _LayerBPR(torch.autograd.Function):
    """``L_CF`` (eq. 13) + ``reg`` x L2 of the batch's final representations, from the layer
    outputs, with a closed-form backward (see :func:`layer_bpr`)."""

    @staticmethod
    def forward(ctx: Any, rows: Tensor, reg: float, eps: float, *layers: Tensor) -> Tensor:
        widths = [x.shape[1] for x in layers]
        e = torch.cat(layers, 1).index_select(0, rows)  # [3B, d*]: one gather of the batch's rows
        # F.normalize of layers 1..L (x / max(||x||, eps)) on the gathered rows; the norms taken
        # on the contiguous [N, d] layers (N < 3B rows) and gathered
        norms = torch.stack([x.norm(p=2, dim=1) for x in layers[1:]], 1).clamp_min_(eps).index_select(0, rows)
        for k, y in enumerate(e.split(widths, 1)[1:]):
            y.div_(norms[:, k:k + 1])
        eu, ep, en = e.split(rows.numel() // 3)  # e_u*, e_i*, e_j* of eq. 11
        pos, neg = (eu * ep).sum(-1), (eu * en).sum(-1)
        half_sq = e.pow(2).sum(-1).view(3, -1).mean(1).sum() / 2  # the authors' _L2_loss_mean of eu, ep, en
        loss = bpr_loss(pos, neg) + reg * half_sq
        ctx.save_for_backward(rows, e, pos, neg, norms)
        ctx.reg, ctx.eps, ctx.widths, ctx.n_rows = reg, eps, widths, layers[0].shape[0]
        return loss

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        rows, e, pos, neg, norms = ctx.saved_tensors
        b = rows.numel() // 3
        eu, ep, en = e.split(b)
        a = torch.sigmoid(neg - pos).mul_(-grad / b).unsqueeze(1)  # d loss / d pos (= -d loss / d neg)
        c = grad * ctx.reg / b  # d (reg x L2) / d e = reg e / B
        g = e * c  # the L2 part, then the BPR part of each row
        gu, gp, gn = g.split(b)
        gu.addcmul_(a, ep - en)
        gp.addcmul_(a, eu)
        gn.addcmul_(a, eu, value=-1)
        for gk, yk, nk in zip(g.split(ctx.widths, 1)[1:], e.split(ctx.widths, 1)[1:], norms.split(1, 1)):
            # through y = x / n, n = max(||x||, eps): (g - y (y . g)) / n; g / eps where clamped
            dot = (yk * gk).sum(1, keepdim=True).masked_fill_(nk <= ctx.eps, 0.0)
            gk.addcmul_(yk, dot, value=-1).div_(nk)
        full = g.new_zeros(ctx.n_rows, g.shape[1]).index_add_(0, rows, g)
        return (None, None, None, *full.split(ctx.widths, 1))


def layer_bpr(layers: Sequence[Tensor], users: Tensor, pos_items: Tensor, neg_items: Tensor, reg: float,
              eps: float = 1e-12) -> Tensor:
    """KGAT's ``L_CF`` (eq. 13, BPR over ``y(u, i) = e_u*^T e_i*``, eq. 12) plus ``reg`` x
    ``sum_t mean_rows(||t_row||^2 / 2)`` over ``e_u*``, ``e_i*``, ``e_j*`` (the authors'
    ``_L2_loss_mean``), where ``e* = [x_0 | x_1 / ||x_1|| | ... | x_L / ||x_L||]`` (eq. 11, each
    ``||.||`` clamped at ``eps`` as :func:`torch.nn.functional.normalize`).

    The same value as gathering the batch's rows of :meth:`KGAT.propagate`: the layers are
    concatenated unnormalised, the ``3B`` rows gathered once and normalised in place (the norms
    taken on the ``[N, d_l]`` layers), and the backward is closed-form (``dL/dpos = -sigmoid(neg
    - pos) / B``, ``dL/dneg = -dL/dpos``, the normalisation's Jacobian on the gathered rows, one
    ``index_add`` back to ``[N, d*]``) instead of autograd's chain of ``[N, d*]`` and ``[3B, d*]``
    temporaries.

    Args:
        layers: FloatTensors ``[N, d_l]``, the layer outputs ``x_0..x_L`` (``x_0`` not normalised).
        users, pos_items, neg_items: LongTensors ``[B]`` node ids (rows of ``layers``).
        reg: ``lambda``. eps: of the normalisation.

    Returns:
        scalar FloatTensor, differentiable in every layer.

    Raises:
        ValueError: no layers, layers with different row counts or node ids of different lengths.
    """
    same_rows = len({x.shape[0] for x in layers}) == 1
    if not layers or not same_rows or not users.numel() == pos_items.numel() == neg_items.numel():
        raise ValueError(f"layer_bpr: layers {[tuple(x.shape) for x in layers]}, batch {users.numel()}/"
                         f"{pos_items.numel()}/{neg_items.numel()}")
    return _LayerBPR.apply(torch.cat([users, pos_items, neg_items]), float(reg), float(eps), *layers)


class _TransRBPR(torch.autograd.Function):
    """TransR's ``L_KG`` (eq. 1-2) + ``reg`` x L2 with a closed-form backward (see :meth:`KGAT.transr_loss`)."""

    @staticmethod
    def forward(ctx: Any, nodes: Tensor, relation: Tensor, reg: float, emb: Tensor, rel_proj: Tensor,
                rel_emb: Tensor) -> Tensor:
        t, n_nodes = relation.numel(), emb.shape[0]
        # each distinct (relation, node) pair of the batch projected once: the sorted keys group the
        # pairs by relation (one matmul per relation on slices); every row gathers its pair's W_r e
        keys = relation.repeat_interleave(3) * n_nodes + nodes
        pairs, inverse = torch.unique(keys, return_inverse=True)
        pair_rel = torch.div(pairs, n_nodes, rounding_mode="floor")
        pair_node = pairs - pair_rel * n_nodes
        counts = torch.bincount(pair_rel, minlength=rel_proj.shape[0]).tolist()
        e = emb.index_select(0, pair_node)  # [S, d]
        proj = grouped_matmul(e, rel_proj, counts).index_select(0, inverse).view(t, 3, -1)  # W_r e of (h, t, t')
        wh, wp, wn = proj.unbind(1)
        er = rel_emb.index_select(0, relation)
        translated = wh + er
        d_pos, d_neg = translated - wp, translated - wn
        g_pos, g_neg = (d_pos * d_pos).sum(-1), (d_neg * d_neg).sum(-1)  # eq. 1
        half_sq = proj.pow(2).sum(-1).mean(0).sum() / 2  # the same L2 of W_r e_h, W_r e_t, W_r e_t' in one pass
        loss = bpr_loss(g_neg, g_pos) + reg * (half_sq + er.pow(2).sum(-1).mean() / 2)
        ctx.save_for_backward(relation, inverse, pair_node, e, proj, er, d_pos, d_neg, g_pos, g_neg, rel_proj)
        ctx.counts, ctx.reg, ctx.shapes = counts, reg, (emb.shape, rel_emb.shape)
        return loss

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        relation, inverse, pair_node, e, proj, er, d_pos, d_neg, g_pos, g_neg, rel_proj = ctx.saved_tensors
        t = relation.numel()
        s = torch.sigmoid(g_pos - g_neg).mul_(2 * grad / t).unsqueeze(1)  # 2 dL/dg_pos = -2 dL/dg_neg
        c = grad * ctx.reg / t  # d (reg x L2) / d x = reg x / T
        g_tr = torch.sub(d_pos, d_neg).mul_(s)  # dL/d(W_r e_h + e_r), without the L2 part
        g = proj * c  # dL/d(W_r e) of h, t, t': the L2 part, then the ranking part
        g[:, 0].add_(g_tr)
        g[:, 1].addcmul_(d_pos, s, value=-1)
        g[:, 2].addcmul_(d_neg, s)
        g_pair = g.new_zeros(e.shape[0], g.shape[2]).index_add_(0, inverse, g.view(3 * t, -1))  # per (r, node) pair
        g_emb = g_proj = g_rel = None
        if ctx.needs_input_grad[3]:  # d(W_r e)/de = W_r^T, the pairs grouped by relation as in forward
            g_e = grouped_matmul(g_pair, rel_proj.transpose(1, 2), ctx.counts)
            g_emb = g_e.new_zeros(ctx.shapes[0]).index_add_(0, pair_node, g_e)
        if ctx.needs_input_grad[4]:  # one e_r^T g_r per relation (a loop over the relations only)
            g_proj = torch.zeros_like(rel_proj)
            for r, (e_r, g_r) in enumerate(zip(e.split(ctx.counts), g_pair.split(ctx.counts))):
                if e_r.numel():
                    torch.mm(e_r.T, g_r, out=g_proj[r])
        if ctx.needs_input_grad[5]:
            g_rel = er.new_zeros(ctx.shapes[1]).index_add_(0, relation, g_tr.add_(er * c))
        return None, None, None, g_emb, g_proj, g_rel


@register_model("kgat", family="kg-gnn", paper="Wang et al., KDD 2019")
class KGAT(Recommender):
    """KGAT (Wang et al., "KGAT: Knowledge Graph Attention Network for Recommendation", KDD 2019).

    Graph: the CKG of :func:`~kgzoo.models.layers.propagation.ckg_relational` (users,
    entities; interact, KG relations, their inverses and interacted-by: ``2R+2`` relations).

    * Embedding layer (section 3.1): node embeddings ``e`` ``[E+U, d]``, relation
      embeddings ``e_r`` ``[2R+2, k]`` and projections ``W_r`` ``[2R+2, d, k]``; TransR
      plausibility ``g(h,r,t) = ||W_r e_h + e_r - W_r e_t||^2`` (eq. 1) and the pairwise
      ranking loss ``L_KG = -ln sigmoid(g(h,r,t') - g(h,r,t))`` (eq. 2). The KG triples come
      from the DataModule (``head, relation, pos_tail, neg_tail``, KG relations shifted to
      ``1..R``); as in the paper, which trains TransR on the whole CKG, the BPR triplet
      ``(u, interact, i, j)`` of the same batch is also a TransR example
      (``kg_on_interactions``).
    * Attention (eq. 4-5): ``pi(h,r,t) = (W_r e_t)^T tanh(W_r e_h + e_r)``, softmax over each
      head's edges. As in the authors' code it is a constant of the propagation (no gradient),
      recomputed from the current embeddings after the last step of every training epoch
      (as the authors' code) and, if the weights changed since, at the start of an epoch and
      before an evaluation pass (so a restored checkpoint scores with its own attention).
    * Propagation: ``L`` :class:`KGATConv` layers (bi-interaction aggregator, eq. 8) with
      sizes ``layer_sizes`` and message dropout; the final representation concatenates the
      L2-normalised outputs of layers ``0..L`` (eq. 11; normalisation as the authors' code):
      width ``d + sum(layer_sizes)``.
    * Prediction: ``y(u, i) = e_u*^T e_i*`` (eq. 12). Losses: ``L_CF`` (BPR, eq. 13) plus
      ``reg_weight`` x L2 of the batch's final embeddings, and ``L_KG`` (eq. 2) plus
      ``reg_weight`` x L2 of its projected embeddings (eq. 14 splits into the two).
    * Optimisation (``optimization``). ``"alternating"`` (default), the paper's (section 3.4.2:
      "we optimize L_KG and L_CF alternatively") and its code's: per epoch, first every CF
      batch with one Adam (``L_CF`` + its L2), then the KG phase with a second Adam (``L_KG`` +
      its L2, times ``kg_weight``), then the attention update (eq. 4-5), once. The base steps
      the phases (:attr:`~kgzoo.models.base.Recommender.kg_phase`: two Adams, Lightning's manual
      optimisation); the DataModule yields the epoch's CF batches, then one KG batch per CF
      batch: its ``kg_batch_size`` KG triples and (``kg_on_interactions``) the CF batch's
      ``(u, interact, i, j)`` triples, the very draws the joint loss takes
      (:func:`kgzoo.data.datamodule.kg_phase_order`). ``"joint"``: ``L_CF + kg_weight x L_KG``
      summed per batch, one Adam step (kgzoo's training before the alternating one; kept bit
      for bit).
      What still differs, from the authors' code: its KG phase has ``|CKG| / kg_batch_size + 1``
      batches of ``kg_batch_size`` distinct heads drawn uniformly, each with one of its
      triples, over the whole CKG with inverse relations and negative tails over every node;
      here the KG phase draws ``kg_batch_size`` x (CF batches) triples uniformly with
      replacement from the KG's forward triples (negative tails over the entities) plus every
      train interaction once (negative: the BPR negative item), in as many batches as the CF
      phase: on ml-100k-kg (batch 2048) 40 KG batches, 81,920 KG triples and 80,808
      interactions per epoch, where the authors' code would take 344,878 / 2048 + 1 = 169
      batches over the CKG's 344,878 directed edges. From RecBole 1.2.1 (``KGATTrainer``): one
      optimiser for both phases, its KG phase one shuffled pass over the KG triples
      (``ceil(|KG| / train batch size)`` batches) without the interactions, and its L2 the
      norms (not squared) of the batch's embeddings (``EmbLoss``).

    Args:
        embedding_dim: ``d`` (= ``k``, the relation space). layer_sizes: output width of each
            layer. dropout: message dropout per layer. reg_weight: ``lambda`` of the L2 terms
            (on the batch's final embeddings and the KG batch's projected embeddings).
        kg_weight: weight of ``L_KG``. kg_batch_size: KG triples per training batch.
        kg_on_interactions: also train TransR on the batch's ``(user, interact, item)`` triples.
        optimization: ``"alternating"`` or ``"joint"`` (above). (Not ``training``: that name is
            :class:`torch.nn.Module`'s train/eval flag.)
        **kwargs: :class:`Recommender` arguments (``n_entities``, ``n_relations``, ``lr``...).

    Raises:
        ValueError: empty ``layer_sizes``, a non-positive size, a dropout outside ``[0, 1)`` or an
            unknown ``optimization``.
        RuntimeError: training or scoring before a DataModule was attached.
    """

    uses_kg_batches = True
    #: the values of ``optimization``
    OPTIMIZATIONS = ("alternating", "joint")

    def __init__(self, n_users: int, n_items: int, embedding_dim: int = 64,
                 layer_sizes: Sequence[int] = (64, 32, 16), dropout: float = 0.1, reg_weight: float = 1e-5,
                 kg_weight: float = 1.0, kg_batch_size: int = 2048, kg_on_interactions: bool = True,
                 optimization: str = "alternating", **kwargs: Any) -> None:
        super().__init__(n_users, n_items, **kwargs)
        layer_sizes = [int(s) for s in layer_sizes]
        if not layer_sizes or min(layer_sizes) < 1 or embedding_dim < 1:
            raise ValueError(f"KGAT needs embedding_dim >= 1 and non-empty positive layer_sizes, got "
                             f"{embedding_dim}, {layer_sizes}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if optimization not in self.OPTIMIZATIONS:
            raise ValueError(f"KGAT: optimization={optimization!r}; expected one of {', '.join(self.OPTIMIZATIONS)}")
        self.save_hyperparameters()
        self.optimization = optimization
        self.layer_sizes, self.reg_weight, self.kg_weight = layer_sizes, reg_weight, kg_weight
        self.kg_batch_size, self.kg_on_interactions = int(kg_batch_size), kg_on_interactions
        self.n_nodes = self.n_entities + self.n_users
        self.n_ckg_relations = 2 * self.n_relations + 2
        self.embedding = nn.Embedding(self.n_nodes, embedding_dim)
        self.rel_emb = nn.Embedding(self.n_ckg_relations, embedding_dim)
        self.rel_proj = nn.Parameter(torch.empty(self.n_ckg_relations, embedding_dim, embedding_dim))
        nn.init.xavier_uniform_(self.embedding.weight)
        nn.init.xavier_uniform_(self.rel_emb.weight)
        nn.init.xavier_uniform_(self.rel_proj)
        dims = [embedding_dim] + layer_sizes
        self.convs = nn.ModuleList(KGATConv(a, b, dropout) for a, b in zip(dims[:-1], dims[1:]))
        self.edge_index: Tensor | None = None
        self.edge_type: Tensor | None = None
        self._groups: RelationGroups | None = None
        self._adj: SparseAdj | None = None  # the [N, N] attention matrix

    # ------------------------------------------------------------------ graph
    def _attach(self, graphs: Any, extras: dict[str, Any]) -> None:
        edge_index, edge_type, n_nodes, n_rel = graphs.ckg_relational()
        if n_nodes != self.n_nodes or n_rel != self.n_ckg_relations:
            raise ValueError(f"KGAT was built for {self.n_nodes} nodes / {self.n_ckg_relations} relations, "
                             f"the DataModule's CKG has {n_nodes} / {n_rel}")
        self.edge_index, self.edge_type = edge_index, edge_type
        self._groups = RelationGroups(edge_index, edge_type, n_nodes, n_rel)  # built once: the graph is fixed
        self._adj = None
        self._attn_version = None

    def _graph(self) -> tuple[Tensor, RelationGroups]:
        if self.edge_index is None or self.edge_type is None:
            raise RuntimeError("KGAT has no graph: build it with kgzoo.create_model(..., datamodule=dm)")
        dev = self.embedding.weight.device
        if self.edge_index.device != dev:
            self.edge_index, self.edge_type = self.edge_index.to(dev), self.edge_type.to(dev)
        return self.edge_index, self._groups.to(dev)

    @torch.no_grad()
    def attention(self) -> Tensor:
        """FloatTensor ``[M]``: ``pi(h,r,t)`` of every CKG edge (eq. 4-5), no gradient."""
        _, groups = self._graph()
        return kgat_attention(self.embedding.weight, groups, None, self.rel_proj, self.rel_emb.weight, self.n_nodes)

    def _weights_version(self) -> int | None:
        """The trainer's optimizer step count (weights change only with it), ``None`` outside a Trainer."""
        return self.trainer.global_step if self._trainer is not None else None

    def load_state_dict(self, state_dict: Any, *args: Any, **kwargs: Any) -> Any:
        """:meth:`torch.nn.Module.load_state_dict`, then the attention is marked stale.

        The attention's cache key is the trainer's step count (fused Adam does not bump the
        parameters' version counters), and loading weights does not move it:
        ``trainer.test(ckpt_path="best")`` restores the best epoch's weights beside the last
        epoch's ``global_step``, so the cached attention would be the last epoch's.
        """
        out = super().load_state_dict(state_dict, *args, **kwargs)
        self._adj, self._attn_version = None, None
        return out

    @torch.no_grad()
    def update_attention(self) -> None:
        """Recompute the attention and its sparse matrix (rows = heads) from the current weights.

        Skipped when the weights have not changed since the last computation (the evaluation
        at the end of an epoch and the start of the next epoch share one computation, as in
        the paper's code, which updates the attention once per epoch).
        """
        version = self._weights_version()
        if self._adj is not None and version is not None and version == getattr(self, "_attn_version", None):
            return
        edge_index, groups = self._graph()
        self._adj = SparseAdj(edge_index, self.attention(), self.n_nodes, pattern=groups.adjacency)
        self._attn_version = version

    def layers(self) -> list[Tensor]:
        """FloatTensors ``[E+U, d]``, ``[E+U, layer_sizes[l]]``: the embeddings and each layer's output (eq. 8)."""
        if self._adj is None:
            self.update_attention()
        outs = [self.embedding.weight]
        for conv in self.convs:
            outs.append(conv(outs[-1], self._adj))
        return outs

    def propagate(self) -> Tensor:
        """FloatTensor ``[E+U, d + sum(layer_sizes)]``: concatenated normalised layer outputs (eq. 11)."""
        x0, *rest = self.layers()
        return torch.cat([x0] + [F.normalize(x, p=2, dim=1) for x in rest], 1)

    # ------------------------------------------------------------------ losses
    def transr_loss(self, head: Tensor, relation: Tensor, pos_tail: Tensor, neg_tail: Tensor) -> Tensor:
        """``L_KG`` (eq. 1-2) plus ``reg_weight`` x L2 of the projected embeddings.

        Each distinct (relation, node) pair of the batch is projected once (``torch.unique`` of
        the pairs, sorted so that ``W_r e`` is one matmul per relation on slices; on ml-1m-kg about
        21k pairs for 49k rows) and gathered per triple; the backward is closed-form: with ``s =
        sigmoid(g(h,r,t) - g(h,r,t')) / T``, ``dL/d(W_r e_h) = dL/de_r = 2s (e_t'^r - e_t^r)``,
        ``dL/d(W_r e_t) = -2s (W_r e_h + e_r - W_r e_t)``, ``dL/d(W_r e_t') = 2s (W_r e_h + e_r -
        W_r e_t')``, each plus ``reg_weight x / T``; then summed per pair, ``W_r^T`` and ``e^T`` per
        relation and one ``index_add`` per table.

        Args:
            head, pos_tail, neg_tail: LongTensors ``[B]`` CKG node ids. relation: LongTensor
                ``[B]`` CKG relation ids (``0..2R+1``).

        Returns:
            scalar FloatTensor, differentiable in ``embedding``, ``rel_proj`` and ``rel_emb``.
        """
        nodes = torch.stack([head, pos_tail, neg_tail], 1).view(-1)  # (h, t, t') of a triple side by side
        return _TransRBPR.apply(nodes, relation, float(self.reg_weight), self.embedding.weight, self.rel_proj,
                                self.rel_emb.weight)

    def on_train_epoch_start(self) -> None:
        self.update_attention()

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # the authors' code (and RecBole's) updates the attention after each epoch's training:
        # done at the epoch's last step, so it counts as training time and the validation
        # right after (Lightning runs it before on_train_epoch_end) reuses it
        if self._trainer is not None and batch_idx + 1 >= self.trainer.num_training_batches:
            self.update_attention()

    @property
    def kg_phase(self) -> bool:
        """Whether the KG loss trains in a phase of its own (``optimization="alternating"``)."""
        return getattr(self, "optimization", "joint") == "alternating"

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        """``"joint"``: ``L_CF + kg_weight x L_KG`` of the batch. ``"alternating"``: ``L_CF`` of a
        CF batch, ``kg_weight x L_KG`` of a KG-phase batch (one with ``head``; the class docstring)."""
        u, p, n = batch["user"] + self.n_entities, batch["pos_item"], batch["neg_item"]
        kg_step = self.is_kg_phase_batch(batch)
        if self.kg_phase and not kg_step:
            return layer_bpr(self.layers(), u, p, n, self.reg_weight)
        cf = None if kg_step else layer_bpr(self.layers(), u, p, n, self.reg_weight)
        heads, rels, pos, neg = [], [], [], []
        if "head" in batch:
            heads.append(batch["head"]); rels.append(batch["relation"] + 1)
            pos.append(batch["pos_tail"]); neg.append(batch["neg_tail"])
        if self.kg_on_interactions:
            heads.append(u); rels.append(torch.zeros_like(u)); pos.append(p); neg.append(n)
        if not heads or self.kg_weight == 0 or not sum(h.numel() for h in heads):
            # nothing for TransR: a KG-phase step without triples moves nothing (a zero gradient)
            return cf if cf is not None else self.embedding.weight.sum() * 0.0
        kg = self.transr_loss(torch.cat(heads), torch.cat(rels), torch.cat(pos), torch.cat(neg))
        return self.kg_weight * kg if cf is None else cf + self.kg_weight * kg

    # ------------------------------------------------------------------ scoring
    def prepare_scoring(self) -> None:
        self.update_attention()
        super().prepare_scoring()

    def final_embeddings(self) -> tuple[Tensor, Tensor]:
        """``(users [U, d*], items [I, d*])``: concatenated layer outputs (eq. 11); score ``e_u*^T e_i*`` (eq. 12)."""
        emb = self.propagate()
        return emb[self.n_entities:], emb[: self.n_items]
