"""KGPLM: a graph encoder over the collaborative KG fused with PLM item text, attributes and
social ties (this library's fusion model).

The text tower is PLMRec's (:mod:`kgzoo.models.layers.text_tower`), the graph encoder is built
from the zoo's own convolutions (:mod:`kgzoo.models.layers.graph_encoder`), the fusions are the
registered fusion layers (:mod:`kgzoo.models.layers.fusion`); BPR loss (Rendle et al., UAI 2009,
eq. 4). Text and KG give items never seen in training a representation, which is what the
``cold_item`` protocol measures (``benchmarks/plm.md``).
"""
from __future__ import annotations

import warnings
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..registry import MODELS, register_model
from .base import Recommender
from .layers.features import FeatureEmbedding, feature_sizes
from .layers.fold_in import grown_rows, init_from_old_neighbours
from .layers.fusion import create_fusion
from .layers.graph_encoder import GraphEncoder
from .layers.losses import bpr_loss, l2_reg
from .layers.propagation import SparseAdj
from .layers.text_tower import TextConfig, TextTower


@register_model("kgplm", family="plm", paper="kgzoo fusion model (this library; no single paper)")
class KGPLM(Recommender):
    """KGPLM: a graph encoder over the collaborative KG fused with PLM item text, attributes
    and social ties.

    Item ``i``: ``e_i = Fuse_item(g_i, P(PLM(text_i)), a_i)``; user ``u``:
    ``e_u = Fuse_user(g_u, a_u, s_u)`` with ``g`` the graph encoder's output
    (:class:`GraphEncoder` over the CKG of ``graphs.ckg()``: entities ``0..E-1`` then users, all
    relations with inverses, edge types ignored; with ``use_kg=False`` or a KG embedding
    ``kg_encoder`` only the user-item graph, i.e. LightGCN; the latter adds the item's frozen
    entity vector ``W z_i`` as a fourth item source), ``a`` the attribute embeddings (:class:`FeatureEmbedding` of
    ``graphs.item_features`` / ``user_features``), ``s_u`` the mean of the friends' ``g``
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
        proj_hidden, text_*, lora_*, grad_items, text_cache_dir, text_whiten: as :class:`~kgzoo.models.plmrec.PLMRec`.
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
            disk (:class:`kgzoo.pretrain.kg_vectors.KGVectors`, handed to :meth:`attach` by
            :func:`kgzoo.api.attach`; the vectors are also saved in the
            checkpoint with their cache key, and a restored model attached to the same KG keeps
            them instead of recomputing); items without a triple (every item under ``kg_ablation="none"``) have
            no KG source. The KG then costs one pre-training per dataset and seed instead of
            a propagation over ~E extra nodes at every step.
            kge_dim: ``k``. kge_epochs: pre-training epochs.

    Raises:
        ValueError: unknown graph, fusion or kg_encoder; ``fusion_hidden`` with a fusion without a
            hidden width, or not an integer >= 1; attribute codes beyond the saved vocabulary sizes;
            ``text_whiten`` as :class:`~kgzoo.models.plmrec.PLMRec`.

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
        self.tower = TextTower(self.n_items, d, TextConfig.from_hparams(dict(self.hparams))) if use_text else None
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
    def pretrain_requests(self) -> dict[str, dict[str, Any]]:
        """What :meth:`attach` needs pre-computed in ``extras`` (made by :func:`kgzoo.api.attach`):
        ``"text_vectors"`` (the item texts' pre-trained vectors) with ``use_text``; with a KG
        embedding ``kg_encoder``, ``"kg_vectors"`` of that model trained for ``kge_epochs``
        epochs with entity width ``kge_dim``."""
        out: dict[str, dict[str, Any]] = {}
        if self.tower is not None:
            out["text_vectors"] = self.tower.vectors_request()
        if self.kge:
            out["kg_vectors"] = {"model": self.kg_encoder, "epochs": self.kge_epochs,
                                 "overrides": {"embedding_dim": int(self.kg_vectors.shape[1])}}
        return out

    def _attach(self, graphs: Any, extras: dict[str, Any]) -> None:
        """Graph, text, attributes and social ties from ``graphs``; with a KG embedding
        ``kg_encoder`` the entity vectors from ``extras["kg_vectors"]`` (an object with ``key``,
        a hex string, and ``load() -> FloatTensor [E, kge_dim]``), read only when its key differs
        from the one of the vectors held (a restored checkpoint keeps its own).

        Raises:
            RuntimeError: a KG embedding ``kg_encoder``, a KG with triples, no vectors held and
                no ``extras["kg_vectors"]`` (attach with :func:`kgzoo.api.attach`).
        """
        if self.kge:
            t = graphs.triples
            ends = torch.cat([t[:, 0], t[:, 2]])
            self.kg_linked.copy_(torch.bincount(ends[ends < self.n_items], minlength=self.n_items) > 0)
            if t.shape[0]:
                tables = self._new_kg_tables(extras, self.kg_vectors_key,
                                             hint=f", or use kg_encoder='ckg' (now {self.kg_encoder!r})")
                if tables is not None:
                    self.kg_vectors.copy_(tables["entity"][: self.n_items])
            else:  # an empty KG (kg_ablation="none"): no item has the KG source
                warnings.warn(f"kgplm: {graphs.dataset} has no KG triples (kg_ablation="
                              f"{graphs.kg_ablation!r}); the KG source is absent for every item")
                self.kg_vectors.zero_()
                self.kg_vectors_key.zero_()
        if self.use_kg and not self.kge:
            if self.graph.kind == "kgat":
                edge_index, edge_type, _, _ = graphs.ckg_relational()
            else:
                edge_index, edge_type, _ = graphs.ckg(inverse=True, social=False)
        else:
            ui = graphs.train_interactions
            u, i = ui[:, 0] + self.n_items, ui[:, 1]
            edge_index = torch.stack([torch.cat([u, i]), torch.cat([i, u])])
            edge_type = torch.cat([torch.zeros_like(u), torch.ones_like(u)])
        self.graph.set_graph(edge_index, edge_type)
        self._seen = graphs.item_counts() > 0
        if self.tower is not None:
            self.tower.set_texts(graphs.item_text, extras.get("text_vectors"))
        if self.use_attributes:
            for kind, feats in (("user", graphs.user_features), ("item", graphs.item_features)):
                if not feats:
                    continue
                sizes = feature_sizes(feats, graphs.feature_vocab)
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
        if self.use_social and graphs.social is not None and graphs.social.numel():
            s = graphs.social
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

    # ------------------------------------------------------------------ incremental update
    def check_update(self) -> None:
        """The update grows the graph encoder's node table, the text tower and, with
        ``kg_encoder="transe"``, the frozen entity vectors (the base's TransE tables grown by
        :class:`kgzoo.pretrain.kg_vectors.GrownKGVectors`: old rows unchanged, new ones fitted);
        it needs a graph whose layer-0 rows enter the output linearly (``lightgcn`` or ``none``).

        Raises:
            NotImplementedError: another graph encoder, or a ``kg_encoder`` other than ``"ckg"``
                and ``"transe"`` (TransR's projections are not cached: retrain instead).
        """
        if self.graph.kind not in ("lightgcn", "none") or (self.kge and self.kg_encoder != "transe"):
            raise NotImplementedError(f"{type(self).__name__} (kgplm) with graph={self.graph.kind!r}, "
                                      f"kg_encoder={self.kg_encoder!r} has no "
                                      "incremental update (it needs graph='lightgcn' or 'none' and kg_encoder='ckg' "
                                      "or 'transe'): retrain it on the extended data (kgzoo fit / kgzoo bench)")

    @property
    def update_reads(self) -> tuple[str, ...]:
        """``user_features``/``item_features`` with ``use_attributes`` (new users' and items' codes
        set by :meth:`attach`), ``social`` with ``use_social`` (the friends' mean rebuilt by
        :meth:`attach`). A new user's fold-in vector is written into its graph source
        (:meth:`_write_rows`); the fusion then adds its attribute and friend sources, so its
        fused vector equals the fold-in's only for a user without them."""
        return (("user_features", "item_features") if self.use_attributes else ()) + \
            (("social",) if self.use_social else ())

    def _node_layout(self, n_entities: int, n_items: int) -> int:
        """The first user node: entities (items first) then users with the KG in the graph, items
        then users without (no KG, or the KG as frozen vectors)."""
        return n_entities if self.use_kg and not self.kge else n_items

    def _grow(self, graphs: Any, growth: Any) -> dict[str, int]:
        """The graph encoder's nodes (entities by ``growth.entity_map``, then users) and the text
        tower grow to ``graphs``' sizes. A new entity or item node starts at the mean of its
        base neighbours' layer-0 vectors in the extended graph (KG triples and the train
        interactions of base users): the inductive "mean of the neighbours" of GraphSAGE
        (Hamilton et al., NeurIPS 2017, eq. 1, mean aggregator); its text source comes from the
        text tower; new users are folded in afterwards (:meth:`Recommender.update`). With
        ``kg_encoder="transe"`` the graph holds items and users only, and ``kg_vectors`` /
        ``kg_linked`` grow to the new item count, filled by :meth:`attach` from the update's
        :class:`~kgzoo.pretrain.kg_vectors.GrownKGVectors` (old items' rows unchanged)."""
        E1 = max(graphs.n_entities, graphs.n_items)
        first_user = self._node_layout(E1, graphs.n_items)
        ckg = self.use_kg and not self.kge
        ent_map = growth.entity_map if ckg else torch.arange(growth.n_items)
        index = torch.cat([ent_map, first_user + torch.arange(growth.n_users)])
        table = grown_rows(self.graph.embedding.weight, index, first_user + graphs.n_users)
        old = torch.zeros(table.shape[0], dtype=torch.bool)
        old[index] = True
        ui = graphs.train_interactions
        src, dst = [ui[:, 1]], [ui[:, 0] + first_user]
        if ckg:
            src.append(graphs.triples[:, 0])
            dst.append(graphs.triples[:, 2])
        hit = init_from_old_neighbours(table, old, torch.cat(src), torch.cat(dst),
                                       settable=torch.arange(table.shape[0]) < first_user)  # users: folded in later
        self.graph.embedding = nn.Embedding.from_pretrained(table, freeze=False)
        self.graph.n_nodes, self.user_offset = table.shape[0], first_user
        if self.tower is not None:
            self.tower.resize(graphs.n_items)
        if self.kge:  # item rows of the frozen KG vectors: the grown tables arrive with attach
            self.kg_vectors = grown_rows(self.kg_vectors, torch.arange(growth.n_items), graphs.n_items)
            self.kg_linked = torch.zeros(graphs.n_items, dtype=torch.bool)
        return {"items with a graph-neighbour prior": int(hit[growth.n_items:graphs.n_items].sum())}

    def _update_vectors(self) -> tuple[Tensor, Tensor]:
        """``(fused users [U, d], fused items [I, d])``: the vectors of ``score``."""
        g = self.graph()
        return self._users(g, torch.arange(self.n_users)), self._all_items(g)

    def _init_new_items(self, graphs: Any, growth: Any) -> dict[str, int]:
        """New items were set by :meth:`_grow` (graph neighbours' mean; text from the tower)."""
        return {"folded-in items": 0}

    def _write_rows(self, kind: str, ids: Tensor, vectors: Tensor) -> None:
        """Users: layer-0 graph rows ``e`` with ``e / (K + 1) + c = x`` (LightGCN's eq. 8, ``c`` the
        row's propagated vector while ``e = 0``); the user fusion of a single source (no
        attributes, no friends) is that source, so the fused vector is ``x`` to first order."""
        nodes = ids + self.user_offset
        rest = self.graph()[nodes]
        self.graph.embedding.weight[nodes] = (self.graph.n_layers + 1) * (vectors - rest)
