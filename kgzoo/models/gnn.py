"""GCN and GAT recommenders: general-purpose graph encoders over the collaborative KG."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import register_model
from .base import Recommender
from .layers.losses import bpr_loss, l2_reg
from .layers.propagation import AttentionGraph, GATLayer, GCNLayer, SparseAdj

_COMBINE = ("last", "concat", "mean")


class _CKGEncoder(Recommender):
    """Shared body of :class:`GCN` and :class:`GAT`: free node embeddings ``[E+U, d]`` of the
    CKG (entities ``0..E-1``, items first, then users ``E..E+U-1``, see
    :meth:`KGRecDataModule.ckg`), ``n_layers`` graph convolutions, BPR on the final user and
    item embeddings, score = inner product.

    Args:
        embedding_dim: ``d``. n_layers: number of convolutions. dropout: feature dropout
            before each convolution (training only). reg_weight: L2 on the batch's layer-0
            embeddings (as LightGCN, eq. 15).
        combine: the final embedding: ``"last"`` (the last layer's output, as a node
            classifier's GCN), ``"concat"`` (layers ``0..L`` concatenated, the layer
            aggregation of NGCF / KGAT) or ``"mean"`` (their mean, LightGCN).

    Raises:
        ValueError: ``n_layers < 1``, a dropout outside ``[0, 1)`` or an unknown ``combine``.
        RuntimeError: training or scoring before a DataModule was attached.
    """

    def __init__(self, n_users: int, n_items: int, embedding_dim: int = 64, n_layers: int = 2,
                 dropout: float = 0.0, reg_weight: float = 1e-4, combine: str = "concat", **kwargs: Any) -> None:
        super().__init__(n_users, n_items, **kwargs)
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if combine not in _COMBINE:
            raise ValueError(f"combine must be one of {_COMBINE}, got {combine!r}")
        self.embedding_dim, self.n_layers, self.dropout = embedding_dim, n_layers, dropout
        self.reg_weight, self.combine = reg_weight, combine
        self.n_nodes = self.n_entities + self.n_users
        self.embedding = nn.Embedding(self.n_nodes, embedding_dim)
        nn.init.xavier_uniform_(self.embedding.weight)

    # subclasses: self.convs (a ModuleList of one layer class, whose ``activation`` goes
    # between layers), _conv(i, x) and _attach()
    def _conv(self, i: int, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _check_graph(self, n_nodes: int) -> None:
        if n_nodes != self.n_nodes:
            raise ValueError(f"{type(self).__name__} was built for {self.n_nodes} CKG nodes, "
                             f"the DataModule's CKG has {n_nodes}")

    def encode(self) -> Tensor:
        """FloatTensor ``[E+U, d']``: the final node embeddings (``d' = d (L+1)`` for ``concat``)."""
        x = self.embedding.weight
        outs = [x]
        for i in range(self.n_layers):
            x = F.dropout(x, self.dropout, self.training)
            x = self._conv(i, x)
            if i < self.n_layers - 1:
                x = self.convs[i].activation(x)
            outs.append(x)
        if self.combine == "last":
            return outs[-1]
        if self.combine == "concat":
            return torch.cat(outs, 1)
        return torch.stack(outs).mean(0)

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        emb = self.encode()
        E = self.n_entities
        u, p, n = batch["user"] + E, batch["pos_item"], batch["neg_item"]
        eu, ep, en = emb[u], emb[p], emb[n]
        ego = self.embedding
        return bpr_loss((eu * ep).sum(-1), (eu * en).sum(-1)) + self.reg_weight * l2_reg(ego(u), ego(p), ego(n))

    def final_embeddings(self) -> tuple[Tensor, Tensor]:
        """``(users [U, d'], items [I, d'])``: the final CKG node embeddings of users and items."""
        emb = self.encode()
        return emb[self.n_entities:], emb[: self.n_items]


@register_model("gcn", family="kg-gnn", paper="Kipf & Welling, ICLR 2017")
class GCN(_CKGEncoder):
    """GCN (Kipf & Welling, "Semi-Supervised Classification with Graph Convolutional
    Networks", ICLR 2017) as a recommender over the CKG.

    Layer (eq. 2): ``H' = D~^-1/2 A~ D~^-1/2 H W`` with ``A~ = A + I`` (self-loops), ReLU
    between layers; PyG's :class:`GCNConv` with the normalisation computed once
    (:func:`gcn_norm`) and passed as a :class:`SparseAdj` (the CKG is fixed, so the
    normalised adjacency and its transpose are cached: one sparse matmul forward and
    backward). Relation types are ignored (GCN is a homogeneous-graph model); node inputs
    are free embeddings (the CKG has no node features). Final embedding: ``combine``.
    """

    def __init__(self, n_users: int, n_items: int, embedding_dim: int = 64, n_layers: int = 2,
                 dropout: float = 0.0, reg_weight: float = 1e-4, combine: str = "concat", **kwargs: Any) -> None:
        super().__init__(n_users, n_items, embedding_dim, n_layers, dropout, reg_weight, combine, **kwargs)
        self.save_hyperparameters()
        self.convs = nn.ModuleList(GCNLayer(embedding_dim, embedding_dim) for _ in range(n_layers))
        self.adj: SparseAdj | None = None

    def _attach(self, graphs: Any, extras: dict[str, Any]) -> None:
        edge_index, _, n_nodes = graphs.ckg(inverse=True, social=False)
        self._check_graph(n_nodes)
        self.adj = SparseAdj.gcn_normalized(edge_index, n_nodes, self_loops=True)

    def _conv(self, i: int, x: Tensor) -> Tensor:
        if self.adj is None:
            raise RuntimeError("GCN has no graph: build it with kgzoo.create_model(..., datamodule=dm)")
        return self.convs[i](x, self.adj)


@register_model("gat", family="kg-gnn", paper="Velickovic et al., ICLR 2018")
class GAT(_CKGEncoder):
    """GAT (Velickovic et al., "Graph Attention Networks", ICLR 2018) as a recommender over the CKG.

    Layer (eq. 1-4): ``alpha_ij = softmax_j(LeakyReLU(a^T [W h_i || W h_j]))`` over ``i``'s
    neighbours (self-loop included), ``h_i' = ||_k sum_j alpha_ij^k W^k h_j`` with ``heads``
    heads of width ``d / heads`` concatenated, ELU between layers, attention dropout
    ``attn_dropout``; PyG's :class:`GATConv`. With ``relation_aware`` (off by default, not in
    the paper) each edge's CKG relation embedding enters the attention logit through
    GATConv's ``edge_dim``. The attention is recomputed at every step (it is the model), over
    an :class:`AttentionGraph` built once (self-loops and the sparse pattern of the per-head
    sums): per-edge work is on ``[M, heads]`` scalars only.

    Args:
        heads: attention heads (``embedding_dim`` must be divisible by it). attn_dropout:
            dropout on the attention coefficients. relation_aware: see above.
        Others: :class:`_CKGEncoder`.
    """

    def __init__(self, n_users: int, n_items: int, embedding_dim: int = 64, n_layers: int = 2,
                 heads: int = 2, dropout: float = 0.0, attn_dropout: float = 0.0, reg_weight: float = 1e-4,
                 combine: str = "concat", relation_aware: bool = False, **kwargs: Any) -> None:
        super().__init__(n_users, n_items, embedding_dim, n_layers, dropout, reg_weight, combine, **kwargs)
        self.save_hyperparameters()
        self.relation_aware = relation_aware
        edge_dim = embedding_dim if relation_aware else None
        self.convs = nn.ModuleList(GATLayer(embedding_dim, heads, attn_dropout, edge_dim) for _ in range(n_layers))
        self.rel_emb = nn.Embedding(2 * self.n_relations + 1, embedding_dim) if relation_aware else None
        self.graph: AttentionGraph | None = None

    def _attach(self, graphs: Any, extras: dict[str, Any]) -> None:
        edge_index, edge_type, n_nodes = graphs.ckg(inverse=True, social=False)
        self._check_graph(n_nodes)
        n_types = self.rel_emb.num_embeddings if self.rel_emb is not None else None
        self.graph = AttentionGraph(edge_index, n_nodes, edge_type if self.relation_aware else None, n_types)

    def _conv(self, i: int, x: Tensor) -> Tensor:
        if self.graph is None:
            raise RuntimeError("GAT has no graph: build it with kgzoo.create_model(..., datamodule=dm)")
        attr = self.rel_emb.weight if self.rel_emb is not None else None  # one row per CKG relation
        return self.convs[i](x, self.graph, edge_attr=attr)
