"""KGPLM's graph encoder: node embeddings propagated by the zoo's own convolutions."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .propagation import (AttentionGraph, GATLayer, GCNLayer, KGATConv, LightGCNConv, RelationGroups, SparseAdj,
                          kgat_attention)

#: the graph kinds of :class:`GraphEncoder`
GRAPHS = ("lightgcn", "gcn", "gat", "none", "kgat")


class GraphEncoder(nn.Module):
    """Node embeddings propagated over a graph, the mean of layers ``0..K`` (LightGCN, eq. 8).

    Each kind is built from the convolution class of the zoo's model of that name
    (:mod:`kgzoo.models.layers.propagation`), with that model's activation between layers, so a
    name means one convolution in the zoo: ``"lightgcn"`` :class:`LightGCNConv` ``x_{k+1} =
    D^-1/2 A D^-1/2 x_k`` (He et al., SIGIR 2020, eq. 7; no self-loops, weights or
    non-linearity); ``"gcn"`` :class:`GCNLayer` (Kipf & Welling, ICLR 2017, eq. 2; self-loops,
    a weight per layer, ReLU between layers); both propagate with a cached-transpose
    :class:`SparseAdj` (fixed normalised graph); ``"gat"`` :class:`GATLayer` (Velickovic et
    al., ICLR 2018, eq. 1-4, ``heads`` heads of width ``d / heads`` concatenated, ELU between
    layers); ``"kgat"`` :class:`KGATConv` with KGAT's knowledge-aware attention (Wang et al., KDD 2019, eq. 4-5, trained
    end-to-end by the recommendation loss here, recomputed from the layer-0 embeddings every
    step) and bi-interaction aggregator (eq. 8) from :mod:`kgzoo.models.layers.propagation`;
    it needs ``edge_type`` and ``n_edge_types``; ``"none"`` no propagation (the embedding
    table itself).

    Args:
        n_nodes: nodes of the graph. dim: ``d``. kind: see above. n_layers: ``K``.
        heads: GAT heads. n_edge_types: relation ids of the graph (``"kgat"`` only).

    Raises:
        ValueError: unknown kind; ``dim`` not a multiple of ``heads`` (``"gat"``). RuntimeError: :meth:`forward` before :meth:`set_graph`.
    """

    def __init__(self, n_nodes: int, dim: int, kind: str = "lightgcn", n_layers: int = 2, heads: int = 1,
                 n_edge_types: int = 1) -> None:
        super().__init__()
        if kind not in GRAPHS:
            raise ValueError(f"unknown graph encoder {kind!r}; expected one of {GRAPHS}")
        self.kind, self.n_layers, self.n_nodes = kind, int(n_layers) if kind != "none" else 0, int(n_nodes)
        self.embedding = nn.Embedding(self.n_nodes, dim)
        nn.init.xavier_normal_(self.embedding.weight)
        layer = {"lightgcn": LightGCNConv, "gcn": lambda: GCNLayer(dim, dim), "gat": lambda: GATLayer(dim, heads),
                 "kgat": lambda: KGATConv(dim, dim, dropout=0.0)}.get(kind)
        self.convs = nn.ModuleList(layer() for _ in range(self.n_layers)) if layer else nn.ModuleList()
        if kind == "kgat":
            self.rel_proj = nn.Parameter(nn.init.xavier_uniform_(torch.empty(n_edge_types, dim, dim)))
            self.rel_emb = nn.Parameter(nn.init.xavier_uniform_(torch.empty(n_edge_types, dim)))
        self._graph: SparseAdj | AttentionGraph | Tensor | None = None
        self._groups: RelationGroups | None = None  # kgat: the edges grouped by relation, built once
        self._on: dict[torch.device, Tensor] = {}

    def set_graph(self, edge_index: Tensor, edge_type: Tensor | None = None) -> None:
        """Take a symmetric ``edge_index`` LongTensor ``[2, M]`` over ``n_nodes`` nodes (and
        ``edge_type`` LongTensor ``[M]`` for ``"kgat"``)."""
        if edge_index.numel() and int(edge_index.max()) >= self.n_nodes:
            raise ValueError(f"edge_index has node {int(edge_index.max())} >= n_nodes={self.n_nodes}")
        if self.kind == "kgat":
            if edge_type is None or edge_type.shape != (edge_index.shape[1],):
                raise ValueError("the kgat graph encoder needs edge_type [M]")
            self._groups = RelationGroups(edge_index, edge_type, self.n_nodes, self.rel_proj.shape[0])
        n = self.n_nodes
        if self.kind in ("lightgcn", "gcn"):
            self._graph = SparseAdj.gcn_normalized(edge_index, n, self_loops=self.kind == "gcn")
        elif self.kind == "gat":  # self-loops and the per-head pattern, built once
            self._graph = AttentionGraph(edge_index, n)
        else:
            self._graph = edge_index
        self._on = {}

    def forward(self) -> Tensor:
        """FloatTensor ``[n_nodes, d]``."""
        x = self.embedding.weight
        if self.kind == "none":
            return x
        if self._graph is None:
            raise RuntimeError("GraphEncoder has no graph: the model needs attach(graphs)")
        g = self._graph
        if isinstance(g, Tensor):
            g = self._on.get(x.device)
            if g is None:
                g = self._on[x.device] = self._graph.to(x.device)
        out = x
        att = None
        if self.kind == "kgat":
            att = kgat_attention(x, self._groups, None, self.rel_proj, self.rel_emb, self.n_nodes)
        for k, conv in enumerate(self.convs):
            if self.kind == "kgat":
                x = F.normalize(conv(x, g, att), dim=-1)  # KGAT eq. 11 normalises each layer
                out = out + x
                continue
            x = conv(x, g)
            if conv.activation is not None and k < self.n_layers - 1:
                x = conv.activation(x)
            out = out + x
        return out / (self.n_layers + 1)
