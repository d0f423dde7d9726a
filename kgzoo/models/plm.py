"""PLM fusers: item text from a pre-trained language model, alone (PLMRec) or fused with
the collaborative KG, attributes and social ties (KGPLM).

Both models take the text encoder in any of three modes (``text_mode``: ``frozen`` with a
disk cache, ``lora`` adapters, ``full`` fine-tuning; see
:mod:`kgzoo.models.layers.text_encoder`) and train with BPR (Rendle et al., UAI 2009, eq. 4).
Text and KG give items never seen in training a representation, which is what the
``cold_item`` protocol measures (``benchmarks/plm.md``).
"""
from __future__ import annotations

import warnings
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GATConv, GCNConv

from ..registry import register_model
from .base import Recommender
from .layers.fusion import create_fusion
from .layers.losses import bpr_loss, l2_reg
from .layers.text_encoder import ItemTextEmbedding, TextEncoder

from .layers.propagation import KGATConv, SparseAdj, ckg_relational, kgat_attention

GRAPHS = ("lightgcn", "gcn", "gat", "none", "kgat")


class _TextTower(nn.Module):
    """PLM item text ``[I, H]`` and its projection to ``[I, d]`` (Linear, or a 2-layer MLP),
    optionally through a fixed BERT-whitening map first.

    Whitening (``whiten=k``; BERT-whitening with its dimensionality reduction, Su et al.,
    "Whitening Sentence Representations for Better Semantics and Faster Retrieval", arXiv
    2103.15316, 2021): ``x~ = (x - mu) W``, ``mu`` ``[H]`` the mean and ``W = U_k Lambda_k^{-1/2}``
    ``[H, k]`` from the eigendecomposition ``U Lambda U^T`` of the covariance of the pre-trained
    text vectors of the items with text. :meth:`set_texts` fits it once (in float64; buffers
    ``whiten_mean`` FloatTensor ``[H]`` and ``whiten_map`` FloatTensor ``[H, k]``, saved in
    checkpoints; an all-zero map means "not fitted"), and a fitted map is kept, also when
    later texts differ: the projection was trained on it. The learned "no text" vector goes
    through the same map; a fresh fit starts it at ``mu`` (whitened: 0, the centre of the
    items' text). The projection then reads ``k`` instead of ``H`` numbers per item; in
    ``frozen`` mode every item's whitened vector is computed once (``[I, k]``), so a step
    gathers ``k`` columns.

    Raises:
        ValueError: ``whiten`` not an integer in ``1..H``; in :meth:`set_texts`, ``k`` not below
            the number of items with text, or above the rank of their vectors' covariance
            (repeated texts lower it; directions of near-zero variance would be scaled by
            ``1/sqrt`` of it).
    """

    def __init__(self, n_items: int, dim: int, text_model: str | None, text_mode: str, text_pooling: str,
                 text_max_length: int, text_batch_size: int, lora_r: int, lora_alpha: int, lora_dropout: float,
                 lora_target_modules: Sequence[str] | None, grad_items: int, text_cache_dir: str | None,
                 proj_hidden: int, whiten: int | None = None) -> None:
        super().__init__()
        enc = TextEncoder(text_model, mode=text_mode, pooling=text_pooling, max_length=text_max_length,
                          batch_size=text_batch_size, lora_r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
                          lora_target_modules=lora_target_modules, cache_dir=text_cache_dir)
        self.text = ItemTextEmbedding(n_items, enc, grad_items=grad_items)
        H = enc.dim
        if whiten is not None and (isinstance(whiten, bool) or not isinstance(whiten, int) or not 1 <= whiten <= H):
            raise ValueError(f"text_whiten={whiten!r} must be an integer in 1..{H} (the text vectors' width) or None")
        self.whiten = whiten
        if whiten is not None:
            self.register_buffer("whiten_mean", torch.zeros(H))
            self.register_buffer("whiten_map", torch.zeros(H, whiten))  # all zeros: not fitted yet
        # frozen mode: ((cache, mean, map), their versions, the whitened table [I, k])
        self._white: tuple[tuple[Tensor, ...], tuple[int, ...], Tensor] | None = None
        width = whiten or H
        self.proj = (nn.Sequential(nn.Linear(width, proj_hidden), nn.GELU(), nn.Linear(proj_hidden, dim))
                     if proj_hidden else nn.Linear(width, dim))

    def set_texts(self, texts: Sequence[str] | None) -> None:
        """The item texts (:meth:`ItemTextEmbedding.set_texts`), then, with ``whiten`` and no
        map yet (a fresh model, not a checkpoint's), fit the whitening map on their vectors."""
        self.text.set_texts(texts)
        if self.whiten is None or bool(self.whiten_map.any()):
            return
        has = self.text.has_text
        x = self.text.cache[has].double()
        if x.shape[0] <= self.whiten:
            raise ValueError(f"text_whiten={self.whiten} needs more than {self.whiten} items with text to fit "
                             f"the whitening map; {x.shape[0]} of {has.numel()} items have text")
        mu = x.mean(0)
        eigval, eigvec = torch.linalg.eigh((x - mu).T @ (x - mu) / x.shape[0])  # ascending
        eigval, eigvec = eigval.flip(0), eigvec.flip(1)
        # the numerical rank of float32 vectors' covariance (eigenvalues ~ squared singular values)
        rank = int((eigval > eigval[0] * (x.shape[1] * torch.finfo(torch.float32).eps) ** 2).sum())
        if self.whiten > rank:
            raise ValueError(f"text_whiten={self.whiten} exceeds the rank {rank} of the text vectors of the "
                             f"{x.shape[0]} items with text (repeated texts?); choose text_whiten <= {rank}")
        eigval, eigvec = eigval[: self.whiten], eigvec[:, : self.whiten]
        eigvec = eigvec * torch.sign(eigvec[eigvec.abs().argmax(0), torch.arange(self.whiten)])  # a fixed sign
        self.whiten_mean.copy_(mu)
        self.whiten_map.copy_(eigvec / eigval.sqrt())
        with torch.no_grad():  # "no text" starts at the centre of the items' text: whitened, 0
            self.text.no_text.copy_(mu)

    def _whitened(self, vec: Tensor) -> Tensor:
        return (vec - self.whiten_mean.to(vec.dtype)) @ self.whiten_map.to(vec.dtype)

    def _lookup(self, items: Tensor | None) -> tuple[Tensor, Tensor]:
        """``(FloatTensor [B, H or k], BoolTensor [B])``: :meth:`ItemTextEmbedding.lookup`, whitened."""
        if self.whiten is None:
            return self.text.lookup(items)
        if self.text.encoder.trainable:
            vec, has = self.text.lookup(items)
            return self._whitened(vec), has
        cache, has = self.text.lookup(None)  # frozen: the cache buffer itself
        # the table follows loads (in-place copies bump a tensor's version), casts and moves (new tensors)
        src = (cache, self.whiten_mean, self.whiten_map)
        versions = tuple(t._version for t in src)
        if self._white is None or any(a is not b for a, b in zip(self._white[0], src)) or self._white[1] != versions:
            with torch.no_grad():
                self._white = (src, versions, self._whitened(cache))
        table = self._white[2]
        if items is None:
            return table, has
        return table.index_select(0, items), has[items]

    def forward(self, items: Tensor) -> Tensor:
        """FloatTensor ``[B, d]`` of item ids ``items`` LongTensor ``[B]`` (PLM with grad in
        trainable modes, for at most ``grad_items`` items).

        Each distinct item is projected once (a BPR batch repeats items: on ml-100k-kg its
        4,096 positive and negative ids hold about 1,500 distinct items)."""
        uniq, inv = torch.unique(items, return_inverse=True)
        return self._project(*self._lookup(uniq)).index_select(0, inv)

    def all(self) -> Tensor:
        """FloatTensor ``[I, d]`` from the item text cache."""
        return self._project(*self._lookup(None))

    def _project(self, vec: Tensor, has_text: Tensor) -> Tensor:
        # P(where(has, v, no_text)) == where(has, P(v), P(no_text)) row by row; projecting
        # first spares the backward pass a gradient through the frozen [B, H] text vectors
        none = self.text.no_text.to(vec.dtype).unsqueeze(0)
        none = self.proj(self._whitened(none) if self.whiten is not None else none)
        return torch.where(has_text.unsqueeze(-1), self.proj(vec), none)


@register_model("plmrec", family="plm",
                paper="text two-tower after Ding et al., ZESRec, arXiv 2105.08318 (2021); Hou et al., UniSRec, KDD 2022")
class PLMRec(Recommender):
    """Text-only two-tower recommender.

    Item tower: ``e_i = P(PLM(text_i))`` (mean-pooled PLM vector ``[H]``, projection ``P`` to
    ``d``; the item representation of ZESRec, Ding et al. 2021, section 4, and of UniSRec's
    text encoder, Hou et al., KDD 2022, section 3.1, without its MoE adaptor). An item has
    no id parameter, so an item never seen in training is scored like any other.
    User tower: ``user_tower="id"`` a user id embedding ``[U, d]``; ``"mean"`` the mean of
    the item-tower vectors of the user's train items (no user parameter, ZESRec's user
    representation without its RNN). Score ``<e_u, e_i>``, BPR loss, L2 ``reg_weight`` on the
    batch's user embeddings and item vectors.

    Args:
        embedding_dim: ``d``. user_tower: ``"id"`` or ``"mean"``. proj_hidden: 0 = linear
            projection, else the hidden width of a 2-layer MLP.
        text_model: ``AutoModel`` name or path (``None`` = all-MiniLM-L6-v2).
        text_mode: ``"frozen"``, ``"lora"`` or ``"full"``. text_pooling: ``"mean"``/``"cls"``.
        text_max_length, text_batch_size: tokens per text, texts per encoder batch.
        lora_r, lora_alpha, lora_dropout, lora_target_modules: LoRA settings.
        grad_items: most distinct items encoded with grad per step (``lora``/``full``).
        text_cache_dir: frozen-vector cache (``None``: ``$KGZOO_HOME/text``).
        text_whiten: ``k``: BERT-whiten the text vectors to ``k`` dimensions before the
            projection (Su et al. 2021; fitted on the items' pre-trained vectors in :meth:`attach`,
            see :class:`_TextTower`); ``None``: the ``H``-dimensional vectors as encoded.

    Raises:
        ValueError: unknown ``user_tower``; a dataset without item text (in :meth:`attach`);
            ``text_whiten`` not an integer in ``1..H``, not below the number of items with text
            or above the rank of their vectors (in :meth:`attach`).
    """

    def __init__(self, n_users: int, n_items: int, embedding_dim: int = 64, user_tower: str = "id",
                 proj_hidden: int = 0, reg_weight: float = 1e-4, text_model: str | None = None,
                 text_mode: str = "frozen", text_pooling: str = "mean", text_max_length: int = 64,
                 text_batch_size: int = 64, lora_r: int = 8, lora_alpha: int = 16, lora_dropout: float = 0.1,
                 lora_target_modules: Sequence[str] | None = None, grad_items: int = 256,
                 text_cache_dir: str | None = None, text_whiten: int | None = None, **kwargs: Any) -> None:
        super().__init__(n_users, n_items, **kwargs)
        self.save_hyperparameters()
        if user_tower not in ("id", "mean"):
            raise ValueError(f"plmrec: user_tower must be 'id' or 'mean', got {user_tower!r}")
        self.user_tower, self.reg_weight = user_tower, reg_weight
        self.tower = _TextTower(self.n_items, embedding_dim, text_model, text_mode, text_pooling, text_max_length,
                                text_batch_size, lora_r, lora_alpha, lora_dropout, lora_target_modules, grad_items,
                                text_cache_dir, proj_hidden, text_whiten)
        self.user_emb = nn.Embedding(self.n_users, embedding_dim) if user_tower == "id" else None
        if self.user_emb is not None:
            nn.init.xavier_normal_(self.user_emb.weight)
        self.user_items: Tensor | None = None
        self._items: Tensor | None = None
        self._users: Tensor | None = None

    def attach(self, datamodule: Any) -> None:
        texts = datamodule.data.item_text
        if texts is None:
            raise ValueError(f"plmrec needs item text; dataset {datamodule.dataset!r} has none")
        self.tower.set_texts(texts)
        ui = datamodule.train_interactions
        self.user_items = SparseAdj.row_mean(ui[:, 0], ui[:, 1], self.n_users, self.n_items)

    def _user_vectors(self, users: Tensor, items_all: Tensor | None) -> Tensor:
        if self.user_emb is not None:
            return self.user_emb(users)
        if self.user_items is None:
            raise RuntimeError("plmrec (user_tower='mean') has no train matrix: build it with create_model(..., datamodule=dm)")
        items_all = self.tower.all() if items_all is None else items_all
        return self.user_items.matmul(items_all)[users]

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        u = batch["user"]
        B = u.shape[0]
        items = self.tower(torch.cat([batch["pos_item"], batch["neg_item"]]))
        p, n = items[:B], items[B:]
        eu = self._user_vectors(u, None)
        return bpr_loss((eu * p).sum(-1), (eu * n).sum(-1)) + self.reg_weight * l2_reg(eu, p, n)

    def prepare_scoring(self) -> None:
        with torch.no_grad():
            self.tower.text.refresh()
            self._items = self.tower.all()
            self._users = None

    def end_scoring(self) -> None:
        self._items = None

    def score(self, users: Tensor) -> Tensor:
        """FloatTensor ``[B, I]``: ``<e_u, e_i>`` over every item."""
        items = self._items if self._items is not None else self.tower.all()
        return self._user_vectors(users, items) @ items.T


class GraphEncoder(nn.Module):
    """Node embeddings propagated over a graph, the mean of layers ``0..K`` (LightGCN, eq. 8).

    Kinds: ``"lightgcn"`` ``x_{k+1} = D^-1/2 A D^-1/2 x_k`` (He et al., SIGIR 2020, eq. 7;
    no self-loops, weights or non-linearity); ``"gcn"`` PyG :class:`GCNConv` weights (Kipf &
    Welling, ICLR 2017, eq. 2; self-loops, a weight per layer, LeakyReLU between layers); both
    propagate with a cached-transpose :class:`SparseAdj` (fixed normalised graph); ``"gat"``
    PyG :class:`GATConv` (Velickovic et al., ICLR 2018, eq. 3-4, ``heads`` averaged);
    ``"kgat"`` KGAT's knowledge-aware attention (Wang et al., KDD 2019, eq. 4-5, trained
    end-to-end by the recommendation loss here, recomputed from the layer-0 embeddings every
    step) and bi-interaction aggregator (eq. 8) from :mod:`kgzoo.models.layers.propagation`;
    it needs ``edge_type`` and ``n_edge_types``; ``"none"`` no propagation (the embedding
    table itself).

    Args:
        n_nodes: nodes of the graph. dim: ``d``. kind: see above. n_layers: ``K``.
        heads: GAT heads. n_edge_types: relation ids of the graph (``"kgat"`` only).

    Raises:
        ValueError: unknown kind. RuntimeError: :meth:`forward` before :meth:`set_graph`.
    """

    def __init__(self, n_nodes: int, dim: int, kind: str = "lightgcn", n_layers: int = 2, heads: int = 1,
                 n_edge_types: int = 1) -> None:
        super().__init__()
        if kind not in GRAPHS:
            raise ValueError(f"unknown graph encoder {kind!r}; expected one of {GRAPHS}")
        self.kind, self.n_layers, self.n_nodes = kind, int(n_layers) if kind != "none" else 0, int(n_nodes)
        self.embedding = nn.Embedding(self.n_nodes, dim)
        nn.init.xavier_normal_(self.embedding.weight)
        if kind == "lightgcn":
            self.convs = nn.ModuleList()  # no weights: D^-1/2 A D^-1/2 x
        elif kind == "gcn":
            self.convs = nn.ModuleList([GCNConv(dim, dim, normalize=False) for _ in range(self.n_layers)])
        elif kind == "gat":
            self.convs = nn.ModuleList([GATConv(dim, dim, heads=heads, concat=False) for _ in range(self.n_layers)])
        elif kind == "kgat":
            self.convs = nn.ModuleList([KGATConv(dim, dim, dropout=0.0) for _ in range(self.n_layers)])
            self.rel_proj = nn.Parameter(nn.init.xavier_uniform_(torch.empty(n_edge_types, dim, dim)))
            self.rel_emb = nn.Parameter(nn.init.xavier_uniform_(torch.empty(n_edge_types, dim)))
        else:
            self.convs = nn.ModuleList()
        self._graph: SparseAdj | Tensor | None = None
        self._types: Tensor | None = None
        self._on: dict[torch.device, Tensor] = {}

    def set_graph(self, edge_index: Tensor, edge_type: Tensor | None = None) -> None:
        """Take a symmetric ``edge_index`` LongTensor ``[2, M]`` over ``n_nodes`` nodes (and
        ``edge_type`` LongTensor ``[M]`` for ``"kgat"``)."""
        if edge_index.numel() and int(edge_index.max()) >= self.n_nodes:
            raise ValueError(f"edge_index has node {int(edge_index.max())} >= n_nodes={self.n_nodes}")
        if self.kind == "kgat":
            if edge_type is None or edge_type.shape != (edge_index.shape[1],):
                raise ValueError("the kgat graph encoder needs edge_type [M]")
            self._types = edge_type
        n = self.n_nodes
        if self.kind in ("lightgcn", "gcn"):
            self._graph = SparseAdj.gcn_normalized(edge_index, n, self_loops=self.kind == "gcn")
        else:
            self._graph = edge_index
        self._on = {}

    def forward(self) -> Tensor:
        """FloatTensor ``[n_nodes, d]``."""
        x = self.embedding.weight
        if self.kind == "none":
            return x
        if self._graph is None:
            raise RuntimeError("GraphEncoder has no graph: the model needs attach(datamodule)")
        g = self._graph
        if isinstance(g, Tensor):
            g = self._on.get(x.device)
            if g is None:
                g = self._on[x.device] = self._graph.to(x.device)
        out = x
        att = None
        if self.kind == "kgat":
            types = self._types.to(x.device)
            att = kgat_attention(x, g, types, self.rel_proj, self.rel_emb, self.n_nodes)
        for k in range(self.n_layers):
            if self.kind == "kgat":
                x = F.normalize(self.convs[k](x, g, att), dim=-1)  # KGAT eq. 11 normalises each layer
            elif self.kind == "lightgcn":
                x = g.matmul(x)
            elif self.kind == "gcn":
                conv = self.convs[k]  # GCNConv.forward on the pre-normalised adjacency
                x = g.matmul(conv.lin(x)) + conv.bias
                if k < self.n_layers - 1:
                    x = F.leaky_relu(x, 0.2)
            else:
                x = self.convs[k](x, g)
                if k < self.n_layers - 1:
                    x = F.leaky_relu(x, 0.2)
            out = out + x
        return out / (self.n_layers + 1)


class FeatureEmbedding(nn.Module):
    """Categorical attributes -> one vector per row: per feature the mean of its codes'
    embeddings (multi-valued ``[N, L]`` or single ``[N]``; code 0 = unknown, ignored), then
    the mean over the features a row has (zeros for a row with none).

    That is a fixed weighted sum of table rows, ``a_n = sum_f sum_{c in codes_nf}
    e_{f,c} / (|codes_nf| * F_n)`` (``F_n`` the features row ``n`` has): :meth:`set_codes`
    computes every row's (code, ``|codes_nf| * F_n``) entries once, without the unknown ones,
    and :meth:`forward` is one ``embedding_bag`` over the concatenated tables with the weights
    ``1 / (|codes_nf| * F_n)`` in the tables' dtype (one lookup and one backward per call instead
    of one per feature, and no padding entries to sort in the backward).

    Args:
        sizes: feature name -> number of codes (vocabulary size, code 0 included). dim: ``d``.

    Raises: see :meth:`set_codes` and :meth:`forward`.
    """

    def __init__(self, sizes: dict[str, int], dim: int) -> None:
        super().__init__()
        self.sizes = dict(sizes)
        self.tables = nn.ModuleDict({k: nn.Embedding(int(v), dim, padding_idx=0) for k, v in sorted(sizes.items())})
        for t in self.tables.values():
            nn.init.xavier_normal_(t.weight[1:])
        # row n's entries are entry_codes/entry_denominators[row_ptr[n]:row_ptr[n + 1]], the weight
        # of an entry 1 / its denominator (an integer, so exact in any dtype); derived from the data
        # by set_codes (not saved: attach sets them again)
        for name in ("row_ptr", "entry_codes", "entry_denominators"):
            self.register_buffer(name, torch.zeros(0, dtype=torch.long), persistent=False)

    @property
    def ready(self) -> bool:
        """Whether :meth:`set_codes` has run."""
        return self.row_ptr.numel() > 0

    @torch.no_grad()
    def set_codes(self, feats: dict[str, Tensor]) -> None:
        """Take every row's codes, ``feats`` name -> LongTensor ``[N]`` or ``[N, L]`` (features
        not in ``sizes`` are ignored), as CSR entries: ``row_ptr`` LongTensor ``[N + 1]``,
        ``entry_codes`` LongTensor ``[nnz]`` (rows of the concatenated tables) and
        ``entry_denominators`` LongTensor ``[nnz]`` (``|codes_nf| * F_n``).

        Raises:
            ValueError: a feature of ``sizes`` missing; codes not integers, not ``[N]`` or
                ``[N, L]``, or beyond their vocabulary; features with different numbers of rows.
        """
        missing = [k for k in self.tables if k not in feats]
        if missing:
            raise ValueError(f"FeatureEmbedding: the data has no attribute {missing} (the model has {sorted(self.sizes)})")
        for k in self.tables:
            c = feats[k]
            if c.dtype.is_floating_point or c.dtype.is_complex or c.dtype == torch.bool or c.dim() not in (1, 2):
                raise ValueError(f"FeatureEmbedding: attribute {k!r} must be integer codes [N] or [N, L], "
                                 f"got {c.dtype} {tuple(c.shape)}")
        rows = {feats[k].shape[0] for k in self.tables}
        if len(rows) > 1:
            raise ValueError(f"FeatureEmbedding: attributes with different row counts {sorted(rows)}")
        codes, known, offset = [], [], 0
        dev = self.row_ptr.device
        for k, table in self.tables.items():
            c = feats[k].to(dev, torch.long)
            c = c.unsqueeze(1) if c.dim() == 1 else c
            if c.numel() and (int(c.min()) < 0 or int(c.max()) >= table.num_embeddings):
                raise ValueError(f"FeatureEmbedding: attribute {k!r} has codes outside 0..{table.num_embeddings - 1}")
            codes.append(c + offset)
            known.append(c > 0)
            offset += table.num_embeddings
        per_feature = torch.stack([x.sum(1) for x in known], 1)  # [N, F] known codes of each feature
        n_feats = (per_feature > 0).sum(1, keepdim=True)  # F_n
        # each known code: 1 / (codes of its feature in the row * features the row has)
        denom = torch.cat([per_feature[:, f:f + 1].expand_as(x) for f, x in enumerate(known)], 1) * n_feats
        keep = torch.cat(known, 1)  # row-major: each row's entries in order
        self.row_ptr = torch.cat([keep.new_zeros(1, dtype=torch.long), keep.sum(1).cumsum(0)])
        self.entry_codes, self.entry_denominators = torch.cat(codes, 1)[keep], denom[keep]

    def forward(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        """``(FloatTensor [B, d], BoolTensor [B] has any known attribute)`` of rows ``ids``
        (LongTensor ``[B]``, each in ``0..N-1``); rows without one get zeros.

        Raises:
            RuntimeError: before :meth:`set_codes`. IndexError: an id outside ``0..N-1``.
        """
        if not self.ready:
            raise RuntimeError("FeatureEmbedding has no codes: call set_codes(features) (models do it in attach)")
        start = self.row_ptr.index_select(0, ids)
        count = self.row_ptr.index_select(0, ids + 1) - start
        offsets = count.cumsum(0) - count  # each bag's first entry in the batch's entry list
        pos = torch.repeat_interleave(start - offsets, count)
        pos += torch.arange(pos.numel(), device=ids.device)
        weight = torch.cat([t.weight for t in self.tables.values()])
        w = self.entry_denominators.index_select(0, pos).to(weight.dtype).reciprocal_()
        out = F.embedding_bag(self.entry_codes.index_select(0, pos), weight, offsets, mode="sum", per_sample_weights=w)
        return out, count > 0


def _feature_sizes(feats: dict[str, Tensor], vocab: dict[str, list[str]]) -> dict[str, int]:
    return {k: max(len(vocab.get(k, [])), int(v.max()) + 1 if v.numel() else 1) for k, v in feats.items()}


@register_model("kgplm", family="plm", paper="kgzoo fusion model (this library; no single paper)")
class KGPLM(Recommender):
    """KGPLM: a graph encoder over the collaborative KG fused with PLM item text, attributes
    and social ties.

    Item ``i``: ``e_i = Fuse_item(g_i, P(PLM(text_i)), a_i)``; user ``u``:
    ``e_u = Fuse_user(g_u, a_u, s_u)`` with ``g`` the graph encoder's output
    (:class:`GraphEncoder` over the CKG of ``dm.ckg()``: entities ``0..E-1`` then users, all
    relations with inverses, edge types ignored; with ``use_kg=False`` or a KG embedding
    ``kg_encoder`` only the user-item graph, i.e. LightGCN; the latter adds the item's frozen
    entity vector ``W z_i`` as a fourth item source), ``a`` the attribute embeddings (:class:`FeatureEmbedding` of
    ``dm.data.item_features`` / ``user_features``), ``s_u`` the mean of the friends' ``g``
    (where the dataset has ``social``), ``Fuse`` a registered fusion layer
    (:mod:`kgzoo.models.layers.fusion`; absent sources are masked per row: items without text
    get the learned "no text" vector, rows without attributes or friends skip that source).
    Score ``<e_u, e_i>``, BPR loss plus L2 ``reg_weight`` on the batch's layer-0 graph
    embeddings (as LightGCN, eq. 15).

    Args:
        embedding_dim: ``d``. graph: ``"lightgcn"``, ``"gcn"``, ``"gat"``, ``"kgat"``, ``"none"``
            (id embeddings only); see :class:`GraphEncoder`. n_layers: propagation layers. gat_heads: GAT heads.
        fusion: a name of :func:`kgzoo.models.layers.fusion.list_fusions`. fusion_hidden: the
            hidden width of the ``attention`` (HAN's ``W``, ``q``; eq. 7) or ``concat`` fusion
            (``None``: ``d``).
        use_kg, use_text, use_attributes, use_social: switch each source off for ablations.
        proj_hidden, text_*, lora_*, grad_items, text_cache_dir, text_whiten: as :class:`PLMRec`.
        user_feature_sizes, item_feature_sizes: vocabulary sizes per attribute (filled from
            the DataModule by :meth:`attach` and saved in the hyper-parameters).
        graph_dropout: in training, the probability of hiding a batch item's graph source so
            the fusion learns to rank from content alone (the input dropout of DropoutNet,
            Volkovs et al., NeurIPS 2017, section 3.1). content_for_unseen: score items with
            no train interaction from their content (text, attributes) only, DropoutNet's
            cold-item inference (section 3.2); their graph vectors are untrained.
        kg_encoder: how the KG enters. ``"ckg"`` (default): the graph encoder propagates over
            the whole CKG (entities, items, users), trained end to end. A KG embedding model
            name (``"transe"``, ``"transr"``): the graph encoder propagates over the user-item
            graph only and each item gets a fourth fused source ``W z_i`` (``W`` Linear
            ``[kge_dim -> d]``), ``z_i`` ``[kge_dim]`` the item's entity vector from that model
            trained first on all the KG's triples for ``kge_epochs`` epochs, frozen and cached on
            disk (:func:`kgzoo.models.kge.entity_embeddings`; the vectors are also saved in the
            checkpoint with their cache key, and a restored model attached to the same KG keeps
            them instead of recomputing); items without a triple (every item under ``kg_ablation="none"``) have
            no KG source. The KG then costs one pre-training per dataset and seed instead of
            a propagation over ~E extra nodes at every step.
            kge_dim: ``k``. kge_epochs: pre-training epochs.

    Raises:
        ValueError: unknown graph, fusion or kg_encoder; ``fusion_hidden`` with a fusion without a
            hidden width, or not an integer >= 1; attribute codes beyond the saved vocabulary sizes;
            ``text_whiten`` as :class:`PLMRec`.

    Warns:
        UserWarning: ``kg_encoder`` is a KG embedding model and the KG has no triples (the KG
            source is then absent for every item).
    """

    def __init__(self, n_users: int, n_items: int, n_entities: int = 0, n_relations: int = 0,
                 embedding_dim: int = 64, graph: str = "lightgcn", n_layers: int = 2, gat_heads: int = 1,
                 fusion: str = "attention", fusion_hidden: int | None = None, use_kg: bool = True, use_text: bool = True,
                 use_attributes: bool = True, use_social: bool = True, reg_weight: float = 1e-4,
                 proj_hidden: int = 0, text_model: str | None = None, text_mode: str = "frozen",
                 text_pooling: str = "mean", text_max_length: int = 64, text_batch_size: int = 64, lora_r: int = 8,
                 lora_alpha: int = 16, lora_dropout: float = 0.1, lora_target_modules: Sequence[str] | None = None,
                 grad_items: int = 256, text_cache_dir: str | None = None,
                 user_feature_sizes: dict[str, int] | None = None, item_feature_sizes: dict[str, int] | None = None,
                 graph_dropout: float = 0.0, content_for_unseen: bool = False, kg_encoder: str = "ckg",
                 kge_dim: int = 64, kge_epochs: int = 50, text_whiten: int | None = None, **kwargs: Any) -> None:
        super().__init__(n_users, n_items, n_entities=n_entities, n_relations=n_relations, **kwargs)
        self.save_hyperparameters()
        if not 0.0 <= graph_dropout < 1.0:
            raise ValueError(f"kgplm: graph_dropout={graph_dropout} must be in [0, 1)")
        if (graph_dropout > 0 or content_for_unseen) and not (use_text or use_attributes):
            raise ValueError("kgplm: graph_dropout / content_for_unseen need a content source (use_text or use_attributes)")
        self.graph_dropout, self.content_for_unseen = float(graph_dropout), bool(content_for_unseen)
        self._seen: Tensor | None = None
        if kg_encoder != "ckg":
            from ..registry import MODELS

            if kg_encoder not in MODELS.list(family="kge"):
                raise ValueError(f"kgplm: kg_encoder must be 'ckg' or a KG embedding model "
                                 f"({', '.join(MODELS.list(family='kge'))}), got {kg_encoder!r}")
        d = embedding_dim
        self.use_kg, self.use_text, self.use_attributes, self.use_social = use_kg, use_text, use_attributes, use_social
        self.reg_weight, self.dim = reg_weight, d
        self.kg_encoder, self.kge_epochs = kg_encoder, int(kge_epochs)
        self.kge = use_kg and kg_encoder != "ckg"  # the KG as frozen entity vectors, not in the graph
        # node layout: entities (items first) then users with the KG in the graph; items then users without
        ckg = use_kg and not self.kge
        self.user_offset = self.n_entities if ckg else self.n_items
        n_types = 2 * self.n_relations + 2 if ckg else 2
        self.graph = GraphEncoder(self.user_offset + self.n_users, d, graph, n_layers, gat_heads, n_types)
        if self.kge:
            self.register_buffer("kg_vectors", torch.zeros(self.n_items, int(kge_dim)))  # filled by attach
            self.register_buffer("kg_linked", torch.zeros(self.n_items, dtype=torch.bool))
            # which KG and settings kg_vectors came from (first 60 bits of the cache key; 0 = none):
            # a restored checkpoint attached to the same data keeps its vectors
            self.register_buffer("kg_vectors_key", torch.zeros((), dtype=torch.long))
            self.kg_proj = nn.Linear(int(kge_dim), d)
        self.tower = (_TextTower(self.n_items, d, text_model, text_mode, text_pooling, text_max_length,
                                 text_batch_size, lora_r, lora_alpha, lora_dropout, lora_target_modules, grad_items,
                                 text_cache_dir, proj_hidden, text_whiten) if use_text else None)
        self.item_attr = FeatureEmbedding(item_feature_sizes, d) if use_attributes and item_feature_sizes else None
        self.user_attr = FeatureEmbedding(user_feature_sizes, d) if use_attributes and user_feature_sizes else None
        fkw = {} if fusion_hidden is None else {"hidden": fusion_hidden}  # checked by the layer
        try:
            self.item_fusion = create_fusion(fusion, d, 4 if self.kge else 3, **fkw)  # [graph, text, attributes(, KG)]
            self.user_fusion = create_fusion(fusion, d, 3, **fkw)  # [graph, attributes, social]
        except ValueError as e:
            if fusion_hidden is None:
                raise
            raise ValueError(f"kgplm: fusion_hidden={fusion_hidden!r} with fusion={fusion!r}: {e}") from None
        self.social_adj: Tensor | None = None
        self._has_friend: Tensor | None = None
        self._cache: tuple[Tensor, Tensor] | None = None

    # ------------------------------------------------------------------ data
    def attach(self, datamodule: Any) -> None:
        data = datamodule.data
        if self.kge:
            from .kge import entity_embeddings, entity_embeddings_key

            t = data.triples
            ends = torch.cat([t[:, 0], t[:, 2]])
            self.kg_linked.copy_(torch.bincount(ends[ends < self.n_items], minlength=self.n_items) > 0)
            if t.shape[0]:
                kw = dict(epochs=self.kge_epochs, seed=datamodule.seed, embedding_dim=self.kg_vectors.shape[1])
                key = int(entity_embeddings_key(datamodule, self.kg_encoder, **kw)[:15], 16)
                if int(self.kg_vectors_key) != key:
                    self.kg_vectors.copy_(entity_embeddings(datamodule, self.kg_encoder, **kw)[: self.n_items])
                    self.kg_vectors_key.fill_(key)
            else:  # an empty KG (kg_ablation="none"): no item has the KG source
                warnings.warn(f"kgplm: {datamodule.dataset} has no KG triples (kg_ablation="
                              f"{datamodule.kg_ablation_kind!r}); the KG source is absent for every item")
                self.kg_vectors.zero_()
                self.kg_vectors_key.zero_()
        if self.use_kg and not self.kge:
            if self.graph.kind == "kgat":
                edge_index, edge_type, _, _ = ckg_relational(datamodule)
            else:
                edge_index, edge_type, _ = datamodule.ckg(inverse=True, social=False)
        else:
            ui = datamodule.train_interactions
            u, i = ui[:, 0] + self.n_items, ui[:, 1]
            edge_index = torch.stack([torch.cat([u, i]), torch.cat([i, u])])
            edge_type = torch.cat([torch.zeros_like(u), torch.ones_like(u)])
        self.graph.set_graph(edge_index, edge_type)
        self._seen = torch.bincount(datamodule.train_interactions[:, 1], minlength=self.n_items) > 0
        if self.tower is not None:
            self.tower.set_texts(data.item_text)
        if self.use_attributes:
            for kind, feats in (("user", data.user_features), ("item", data.item_features)):
                if not feats:
                    continue
                sizes = _feature_sizes(feats, data.feature_vocab)
                attr = getattr(self, f"{kind}_attr")
                if attr is None:
                    setattr(self, f"{kind}_attr", FeatureEmbedding(sizes, self.dim))
                    self.hparams[f"{kind}_feature_sizes"] = sizes
                else:
                    unknown = sorted(k for k in sizes if k not in attr.sizes)
                    if unknown:
                        raise ValueError(f"kgplm: {kind} attributes {unknown} of the data are not the model's "
                                         f"({sorted(attr.sizes)})")
                    bad = {k: v for k, v in sizes.items() if v > attr.sizes[k]}
                    if bad:
                        raise ValueError(f"kgplm: {kind} attributes {bad} exceed the model's vocabulary {attr.sizes}")
                getattr(self, f"{kind}_attr").set_codes(feats)
        if self.use_social and data.social is not None and data.social.numel():
            s = data.social
            self.social_adj = SparseAdj.row_mean(s[:, 0], s[:, 1], self.n_users, self.n_users)
            self._has_friend = torch.bincount(s[:, 0], minlength=self.n_users) > 0

    # ------------------------------------------------------------------ math
    def _attr(self, kind: str, ids: Tensor) -> tuple[Tensor | None, Tensor | None]:
        module = getattr(self, f"{kind}_attr")
        if module is None or not module.ready:
            return None, None
        return module(ids)

    def _items(self, g: Tensor, items: Tensor, text: Tensor | None) -> Tensor:
        """FloatTensor ``[B, d]``: fused item vectors; ``g`` the propagated nodes, ``text`` ``[B, d]`` or None."""
        B = items.shape[0]
        ones = torch.ones(B, dtype=torch.bool, device=items.device)
        a, a_mask = self._attr("item", items)
        kg = kg_mask = None
        if self.kge:
            kg, kg_mask = self.kg_proj(self.kg_vectors.index_select(0, items)), self.kg_linked[items]
        content = torch.zeros_like(ones)
        if text is not None:
            content = ones
        elif a_mask is not None:
            content = a_mask
        if kg_mask is not None:
            content = content | kg_mask
        g_mask = ones
        if self.content_for_unseen and self._seen is not None:
            g_mask = self._seen.to(items.device)[items] | ~content
        if self.training and self.graph_dropout > 0:
            drop = torch.rand(B, device=items.device) < self.graph_dropout
            g_mask = g_mask & ~(drop & content)
        sources, masks = [g.index_select(0, items), text, a], [g_mask, ones, a_mask if a_mask is not None else ones]
        if self.kge:
            sources.append(kg)
            masks.append(kg_mask)
        return self.item_fusion(sources, torch.stack(masks, 1))

    def _users(self, g: Tensor, users: Tensor) -> Tensor:
        """FloatTensor ``[B, d]``: fused user vectors."""
        B = users.shape[0]
        ones = torch.ones(B, dtype=torch.bool, device=users.device)
        gu = g[self.user_offset:]
        a, a_mask = self._attr("user", users)
        s = s_mask = None
        if self.social_adj is not None:
            s = self.social_adj.matmul(gu).index_select(0, users)
            s_mask = self._has_friend.to(users.device)[users]
        mask = torch.stack([ones, a_mask if a_mask is not None else ones, s_mask if s_mask is not None else ones], 1)
        return self.user_fusion([gu.index_select(0, users), a, s], mask)

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        g = self.graph()
        u, p, n = batch["user"], batch["pos_item"], batch["neg_item"]
        B = u.shape[0]
        # fuse each distinct item and user of the batch once (on ml-100k-kg a batch of 2,048
        # triples holds about 1,450 distinct items among its 4,096 ids and 800 distinct users)
        items, item_inv = torch.unique(torch.cat([p, n]), return_inverse=True)
        users, user_inv = torch.unique(u, return_inverse=True)
        text = self.tower(items) if self.tower is not None else None
        # index_select: on CPU several times faster than advanced indexing, forward and backward
        ei = self._items(g, items, text).index_select(0, item_inv)
        eu = self._users(g, users).index_select(0, user_inv)
        ep, en = ei[:B], ei[B:]
        ego = self.graph.embedding
        reg = l2_reg(ego(u + self.user_offset), ego(p), ego(n))
        return bpr_loss((eu * ep).sum(-1), (eu * en).sum(-1)) + self.reg_weight * reg

    def _all_items(self, g: Tensor) -> Tensor:
        items = torch.arange(self.n_items, device=g.device)
        text = self.tower.all() if self.tower is not None else None
        return self._items(g, items, text)

    def prepare_scoring(self) -> None:
        with torch.no_grad():
            if self.tower is not None:
                self.tower.text.refresh()
            g = self.graph()
            self._cache = (g, self._all_items(g))

    def end_scoring(self) -> None:
        self._cache = None

    def score(self, users: Tensor) -> Tensor:
        """FloatTensor ``[B, I]``: ``<e_u, e_i>`` over every item."""
        if self._cache is not None:
            g, items = self._cache
        else:
            g = self.graph()
            items = self._all_items(g)
        return self._users(g, users) @ items.T
