"""Graphs: what a model takes from a split, as one plain object (DESIGN.md, "Graphs").

A model never sees the DataModule: :meth:`KGRecDataModule.graphs` builds a :class:`Graphs`
from a set-up split and ``Recommender.attach(graphs, extras)`` reads only its fields. It
holds the sizes, the train interactions (CSR and pairs), the KG triples, social ties, item
text, attributes and the fingerprint of the data and protocol they come from; the
collaborative KG (CKG) is derived from them by :meth:`Graphs.ckg` and
:meth:`Graphs.ckg_relational`.

Id spaces (DESIGN.md, "Id spaces"): users ``0..U-1``, items ``0..I-1`` = entities ``0..I-1``,
other entities ``I..E-1``; in :attr:`Graphs.triples` KG relations are ``0..R-1``; in the CKG
relation ``0`` is "interact", KG relations ``1..R``, inverses ``R+1..2R``, "friend" after
them, users are nodes ``E..E+U-1``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor


@dataclass(frozen=True, eq=False)
class Graphs:
    """The graphs, counts and side information of one split, for ``Recommender.attach``.

    Attributes:
        n_users, n_items, n_entities, n_relations: ``U``, ``I``, ``E >= I``, ``R`` (KG relations).
        task: the protocol's task (``"topk"``, ``"ctr"``; ``"link"`` from the link DataModule).
        train_indptr: LongTensor ``[U + 1]``, train_indices: LongTensor ``[N]``: the CSR of the
            train positives (items of each user, ascending).
        train_interactions: LongTensor ``[N, 2]`` (user, item) train positives, sorted by user
            then item (the CSR as pairs).
        triples: LongTensor ``[M, 3]`` (head, relation, tail), relations ``0..R-1`` (after the
            DataModule's KG ablation).
        social: LongTensor ``[S, 2]`` (user, user) friendships, or ``None``.
        item_text: ``I`` strings (``""``: no text), or ``None``.
        user_features / item_features: name -> LongTensor ``[U]``/``[I]`` or ``[U, L]``/``[I, L]``
            (categorical codes, 0 = unknown). feature_vocab: name -> value names (index = code).
        fingerprint: sha256 hex of the data, protocol and KG ablation (the DataModule's
            ``fingerprint``): ``attach`` is a no-op for graphs of the fingerprint already attached.
        dataset: the dataset name. kg_ablation: the KG ablation applied (``"real"``, ``"none"``, ...).
        seed: the DataModule's sampling seed.
        mentions: LongTensor ``[Mn, 4]`` (item, entity, start, end): character spans of item texts
            naming KG entities (:attr:`kgzoo.data.kgdata.KGRecData.mentions`), or ``None``.

    Source: the DataModule's split (:meth:`kgzoo.data.datamodule.KGRecDataModule.graphs`).
    """

    n_users: int
    n_items: int
    n_entities: int
    n_relations: int
    task: str
    train_indptr: Tensor
    train_indices: Tensor
    train_interactions: Tensor
    triples: Tensor
    fingerprint: str
    social: Tensor | None = None
    item_text: list[str] | None = None
    user_features: dict[str, Tensor] = field(default_factory=dict)
    item_features: dict[str, Tensor] = field(default_factory=dict)
    feature_vocab: dict[str, list[str]] = field(default_factory=dict)
    dataset: str = ""
    kg_ablation: str = "real"
    seed: int = 0
    mentions: Tensor | None = None

    @classmethod
    def of(cls, data: Any, task: str, train_csr: tuple[Tensor, Tensor], train_interactions: Tensor,
           fingerprint: str, dataset: str, kg_ablation: str, seed: int) -> "Graphs":
        """The graphs of a split of ``data`` (a :class:`~kgzoo.data.kgdata.KGRecData`, after the KG
        ablation): its sizes, triples, social ties, text and attributes, with the split's train
        positives (``train_csr`` ``(indptr, indices)`` and the same pairs ``train_interactions``)."""
        return cls(n_users=data.n_users, n_items=data.n_items, n_entities=data.n_entities,
                   n_relations=data.n_relations, task=task, train_indptr=train_csr[0], train_indices=train_csr[1],
                   train_interactions=train_interactions, triples=data.triples, fingerprint=fingerprint,
                   social=data.social, item_text=data.item_text, user_features=data.user_features,
                   item_features=data.item_features, feature_vocab=data.feature_vocab, dataset=dataset,
                   kg_ablation=kg_ablation, seed=seed, mentions=data.mentions)

    @property
    def n_triples(self) -> int:
        """``M``, the number of KG triples."""
        return int(self.triples.shape[0])

    @property
    def train_csr(self) -> tuple[Tensor, Tensor]:
        """``(indptr LongTensor [U + 1], indices LongTensor [N])``: the train positives as CSR."""
        return self.train_indptr, self.train_indices

    def item_counts(self) -> Tensor:
        """LongTensor ``[I]``: train interactions per item (popularity)."""
        return torch.bincount(self.train_interactions[:, 1], minlength=self.n_items)

    def ckg(self, inverse: bool = True, social: bool = True) -> tuple[Tensor, Tensor, int]:
        """The collaborative KG (CKG) as PyG ``edge_index`` / ``edge_type``.

        Nodes: entities ``0..E-1`` (items first), then users ``E..E+U-1``. Relations: ``0``
        interact (user-item train pairs, both directions), KG relations ``1..R``, with
        ``inverse`` their reverses ``R+1..2R``, and with ``social`` (where the data has
        friendships) ``friend`` as the next relation id.

        Returns:
            ``(edge_index LongTensor [2, M'], edge_type LongTensor [M'], n_nodes = E + U)``.
        """
        E, R = self.n_entities, self.n_relations
        u, i = self.train_interactions[:, 0] + E, self.train_interactions[:, 1]
        src, dst, typ = [u, i], [i, u], [torch.zeros_like(u), torch.zeros_like(u)]
        h, r, t = self.triples.unbind(1)
        src.append(h); dst.append(t); typ.append(r + 1)
        if inverse:
            src.append(t); dst.append(h); typ.append(r + 1 + R)
        if social and self.social is not None:
            s = self.social
            src.append(s[:, 0] + E); dst.append(s[:, 1] + E)
            typ.append(torch.full((s.shape[0],), (2 * R if inverse else R) + 1, dtype=torch.long))
        return torch.stack([torch.cat(src), torch.cat(dst)]), torch.cat(typ), E + self.n_users

    def ckg_relational(self) -> tuple[Tensor, Tensor, int, int]:
        """The CKG with inverse relations and a separate relation for item->user edges
        (KGAT, Wang et al., KDD 2019, sections 2.2 and 3.1: every triple has its inverse).

        Nodes as :meth:`ckg`. Relations: ``0`` interact (user -> item), ``1..R`` KG
        relations, ``R+1..2R`` their inverses, ``2R+1`` interacted-by (item -> user).
        Friendships are left out.

        Returns:
            ``(edge_index LongTensor [2, M] (head, tail), edge_type LongTensor [M],
            n_nodes = E + U, n_ckg_relations = 2R + 2)``.
        """
        edge_index, edge_type, n_nodes = self.ckg(inverse=True, social=False)
        E, R = self.n_entities, self.n_relations
        edge_type = edge_type.clone()
        edge_type[(edge_type == 0) & (edge_index[0] < E)] = 2 * R + 1
        return edge_index, edge_type, n_nodes, 2 * R + 2
