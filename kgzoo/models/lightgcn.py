"""LightGCN: simplified graph convolution over the user-item graph."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..registry import register_model
from .base import Recommender
from .layers.fold_in import grown_embedding
from .layers.losses import bpr_loss, l2_reg
from .layers.propagation import LightGCNConv, SparseAdj


def bipartite_norm_adj(interactions: Tensor, n_users: int, n_items: int) -> SparseAdj:
    """Symmetrically normalised adjacency ``D^-1/2 A D^-1/2`` of the user-item graph.

    Nodes: users ``0..U-1``, items ``U..U+I-1``. He et al., SIGIR 2020, eq. 7-8; the
    normalisation is PyG's :func:`gcn_norm` without self-loops.

    Args:
        interactions: LongTensor ``[N, 2]`` train (user, item) pairs.

    Returns:
        :class:`SparseAdj` ``[U+I, U+I]`` float32 (cached transpose for the backward).
    """
    u, i = interactions[:, 0], interactions[:, 1] + n_users
    edge_index = torch.stack([torch.cat([u, i]), torch.cat([i, u])])
    return SparseAdj.gcn_normalized(edge_index, n_users + n_items)


@register_model("lightgcn", family="cf-gnn", paper="He et al., SIGIR 2020")
class LightGCN(Recommender):
    """LightGCN (He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for
    Recommendation", SIGIR 2020).

    ``E^(k+1) = D^-1/2 A D^-1/2 E^(k)`` (eq. 7, :class:`~kgzoo.models.layers.propagation.LightGCNConv`:
    what PyG's ``LGConv(normalize=False)`` computes, done as one cached-transpose sparse matmul,
    :class:`SparseAdj`, because LGConv's CSR backward re-transposes the graph every step), final embedding the mean of layers ``0..K`` (eq. 8, alpha_k =
    1/(K+1)), score the inner product (eq. 9), BPR loss with L2 on the layer-0 embeddings
    (eq. 15).

    Args:
        embedding_dim: ``d``. n_layers: ``K``. reg_weight: L2 weight.
    """

    def __init__(self, n_users: int, n_items: int, embedding_dim: int = 64, n_layers: int = 3,
                 reg_weight: float = 1e-4, **kwargs: Any) -> None:
        super().__init__(n_users, n_items, **kwargs)
        self.save_hyperparameters()
        self.embedding = nn.Embedding(self.n_users + self.n_items, embedding_dim)
        nn.init.xavier_normal_(self.embedding.weight)
        self.n_layers, self.reg_weight = n_layers, reg_weight
        self.conv = LightGCNConv()
        self.adj: SparseAdj | None = None

    def _attach(self, graphs: Any, extras: dict[str, Any]) -> None:
        self.adj = bipartite_norm_adj(graphs.train_interactions, self.n_users, self.n_items)

    def propagate(self) -> Tensor:
        """FloatTensor ``[U+I, d]``: mean of the ``K+1`` layer embeddings."""
        if self.adj is None:
            raise RuntimeError("LightGCN has no graph: build it with kgzoo.create_model(..., datamodule=dm)")
        x = self.embedding.weight
        out = x
        for _ in range(self.n_layers):
            x = self.conv(x, self.adj)
            out = out + x
        return out / (self.n_layers + 1)

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        emb = self.propagate()
        u, p, n = batch["user"], batch["pos_item"] + self.n_users, batch["neg_item"] + self.n_users
        eu, ep, en = emb[u], emb[p], emb[n]
        ego = self.embedding
        return bpr_loss((eu * ep).sum(-1), (eu * en).sum(-1)) + self.reg_weight * l2_reg(ego(u), ego(p), ego(n))

    def final_embeddings(self) -> tuple[Tensor, Tensor]:
        """``(users [U, d], items [I, d])``: the propagated embeddings (eq. 8); score is eq. 9."""
        emb = self.propagate()
        return emb[: self.n_users], emb[self.n_users:]

    def _grow(self, graphs: Any, growth: Any) -> None:
        """The node table (users, then items) grows to ``graphs``' sizes; trained rows keep their
        users and items (the items' rows move up past the new users)."""
        U0, I0, U1 = growth.n_users, growth.n_items, graphs.n_users
        index = torch.cat([torch.arange(U0), U1 + torch.arange(I0)])
        self.embedding = grown_embedding(self.embedding, index, U1 + graphs.n_items)

    def _write_rows(self, kind: str, ids: Tensor, vectors: Tensor) -> None:
        """Layer-0 rows ``e`` with ``e / (K + 1) + c = x`` (eq. 8), ``c`` the row's propagated
        vector while ``e = 0`` (the paths from the other nodes); exact but for the paths that
        leave the node and come back (2 or more hops), which ``e`` also feeds."""
        nodes = ids if kind == "user" else ids + self.n_users
        rest = self.propagate()[nodes]
        self.embedding.weight[nodes] = (self.n_layers + 1) * (vectors - rest)
