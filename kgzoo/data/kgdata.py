"""KGRecData: one dataset's behaviour, knowledge graph, text, attributes and social ties.

A plain dataclass of tensors with validation and statistics, and nothing else (see
``DESIGN.md``, "Id spaces" and "KGRecData").

Id spaces:
    users ``0..U-1``; items ``0..I-1``; every item is also an entity with the same index and
    other entities follow (``I..E-1``); KG relations are ``0..R-1`` *in* :attr:`triples` and
    become ``1..R`` in the collaborative KG (CKG), where relation ``0`` is "interact".
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch
from torch import Tensor


class DataValidationError(ValueError):
    """A KGRecData whose tensors break the id-space contract."""


@dataclass
class KGRecData:
    """All sources of one recommendation dataset, in contiguous id spaces.

    Attributes:
        name: dataset name (``"ml-100k-kg"``).
        n_users: ``U``. n_items: ``I``. n_entities: ``E >= I`` (items are entities ``0..I-1``).
        relation_names: the ``R`` KG relation names; relation ``r`` of :attr:`triples` is
            ``relation_names[r]``.
        interactions: LongTensor ``[N, 2]`` (user, item).
        rating: FloatTensor ``[N]`` explicit rating, or ``None``.
        timestamp: LongTensor ``[N]`` seconds since the epoch (or the source's order), or ``None``.
        label: LongTensor ``[N]`` 0/1 click label for CTR sources, or ``None`` (all positive).
        given_split: LongTensor ``[N]`` 0 train / 1 valid / 2 test where the source fixes the
            split (ml-1m-kg), or ``None``.
        triples: LongTensor ``[M, 3]`` (head, relation, tail) in entity and relation ids.
        social: LongTensor ``[S, 2]`` (user, user) friendships, or ``None``.
        item_text: list of ``I`` strings (``""`` where an item has no text), or ``None``.
        user_features / item_features: name -> LongTensor ``[U]`` / ``[I]`` (one categorical
            code per row, 0 = unknown) or ``[U, L]`` / ``[I, L]`` (multi-valued, padded with 0).
        feature_vocab: name -> list of value names, index = code (code 0 is ``"[UNK]"``).
        user_ids / item_ids / entity_ids: raw ids of the source, index = kgzoo id.
        mentions: LongTensor ``[Mn, 4]`` (item, entity, start, end): the characters
            ``item_text[item][start:end]`` name KG entity ``entity`` (MIND's title entities; DKN
            aligns words and entities with them), or ``None``.
        cleaning: ordered report ``step -> rows removed`` of every cleaning step applied.
        source_checksums: file name -> sha256 of the files this was read from.
    """

    name: str
    n_users: int
    n_items: int
    n_entities: int
    interactions: Tensor
    triples: Tensor
    relation_names: list[str]
    rating: Tensor | None = None
    timestamp: Tensor | None = None
    label: Tensor | None = None
    given_split: Tensor | None = None
    social: Tensor | None = None
    item_text: list[str] | None = None
    user_features: dict[str, Tensor] = field(default_factory=dict)
    item_features: dict[str, Tensor] = field(default_factory=dict)
    feature_vocab: dict[str, list[str]] = field(default_factory=dict)
    user_ids: list[str] | None = None
    item_ids: list[str] | None = None
    entity_ids: list[str] | None = None
    cleaning: dict[str, int] = field(default_factory=dict)
    source_checksums: dict[str, str] = field(default_factory=dict)
    mentions: Tensor | None = None

    # ------------------------------------------------------------------ derived
    @property
    def n_relations(self) -> int:
        """``R``, the number of KG relations (the CKG adds "interact" and inverses)."""
        return len(self.relation_names)

    @property
    def n_interactions(self) -> int:
        return int(self.interactions.shape[0])

    @property
    def n_triples(self) -> int:
        return int(self.triples.shape[0])

    @property
    def per_row_fields(self) -> list[str]:
        """Names of the optional ``[N]`` tensors aligned with :attr:`interactions`."""
        return [f for f in ("rating", "timestamp", "label", "given_split") if getattr(self, f) is not None]

    def positives(self) -> Tensor:
        """BoolTensor ``[N]``: rows that are positive feedback (``label == 1`` or no label)."""
        if self.label is None:
            return torch.ones(self.n_interactions, dtype=torch.bool)
        return self.label > 0

    def replace(self, **changes: Any) -> "KGRecData":
        """A copy with ``changes`` applied (dataclasses.replace), validated."""
        out = replace(self, **changes)
        out.validate()
        return out

    def select_interactions(self, keep: Tensor) -> dict[str, Any]:
        """``replace`` kwargs keeping rows ``keep`` (BoolTensor ``[N]``) of every per-row field."""
        out: dict[str, Any] = {"interactions": self.interactions[keep]}
        for f in self.per_row_fields:
            out[f] = getattr(self, f)[keep]
        return out

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Check dtypes, shapes and id ranges.

        Raises:
            DataValidationError: naming the field and the offending value.
        """
        U, I, E, R = self.n_users, self.n_items, self.n_entities, self.n_relations
        if E < I:
            raise DataValidationError(f"{self.name}: n_entities={E} < n_items={I}; items must be entities 0..I-1")

        def check(name: str, t: Tensor, cols: int | None, dtype: torch.dtype) -> None:
            if t.dtype != dtype:
                raise DataValidationError(f"{self.name}: field {name!r} has dtype {t.dtype}, expected {dtype}")
            if cols is not None and (t.dim() != 2 or t.shape[1] != cols):
                raise DataValidationError(f"{self.name}: field {name!r} has shape {tuple(t.shape)}, expected [*, {cols}]")

        def in_range(name: str, t: Tensor, hi: int) -> None:
            if t.numel() and (int(t.min()) < 0 or int(t.max()) >= hi):
                raise DataValidationError(
                    f"{self.name}: field {name!r} has ids in [{int(t.min())}, {int(t.max())}], expected [0, {hi})"
                )

        check("interactions", self.interactions, 2, torch.long)
        in_range("interactions[:, 0] (user)", self.interactions[:, 0], U)
        in_range("interactions[:, 1] (item)", self.interactions[:, 1], I)
        check("triples", self.triples, 3, torch.long)
        in_range("triples[:, 0] (head)", self.triples[:, 0], E)
        in_range("triples[:, 1] (relation)", self.triples[:, 1], max(R, 1) if self.n_triples else 1)
        in_range("triples[:, 2] (tail)", self.triples[:, 2], E)
        N = self.n_interactions
        for f in self.per_row_fields:
            t = getattr(self, f)
            if t.shape != (N,):
                raise DataValidationError(f"{self.name}: field {f!r} has shape {tuple(t.shape)}, expected [{N}]")
        if self.social is not None:
            check("social", self.social, 2, torch.long)
            in_range("social", self.social, U)
        if self.item_text is not None and len(self.item_text) != I:
            raise DataValidationError(f"{self.name}: item_text has {len(self.item_text)} entries, expected {I}")
        for kind, feats, n in (("user_features", self.user_features, U), ("item_features", self.item_features, I)):
            for k, t in feats.items():
                if t.dtype != torch.long or t.shape[0] != n:
                    raise DataValidationError(
                        f"{self.name}: {kind}[{k!r}] has shape {tuple(t.shape)} dtype {t.dtype}, expected long [{n}, ...]"
                    )
        if self.mentions is not None:
            m = self.mentions
            check("mentions", m, 4, torch.long)
            in_range("mentions[:, 0] (item)", m[:, 0], I)
            in_range("mentions[:, 1] (entity)", m[:, 1], E)
            if m.numel() and bool(((m[:, 2] < 0) | (m[:, 3] <= m[:, 2])).any()):
                raise DataValidationError(f"{self.name}: field 'mentions' holds a span with start < 0 or end <= start")
        for ids, n, f in ((self.user_ids, U, "user_ids"), (self.item_ids, I, "item_ids"), (self.entity_ids, E, "entity_ids")):
            if ids is not None and len(ids) != n:
                raise DataValidationError(f"{self.name}: {f} has {len(ids)} entries, expected {n}")

    # ------------------------------------------------------------------ stats
    def stats(self) -> dict[str, Any]:
        """The numbers people quote about a dataset.

        Returns:
            dict with ``users, items, interactions, positives, density`` (positives / (U*I)),
            ``entities`` (E, items included), ``kg_entities`` (entities in a triple),
            ``relations, triples, linked_items`` (items with at least one triple),
            ``social`` (friendship rows), ``text_coverage`` (fraction of items with non-empty
            text), ``user_features, item_features`` (names).
        """
        pos = int(self.positives().sum())
        linked = kg_entities = 0
        if self.n_triples:
            ent = torch.unique(torch.cat([self.triples[:, 0], self.triples[:, 2]]))
            linked = int((ent < self.n_items).sum())
            kg_entities = int(ent.numel())
        text_cov = 0.0
        if self.item_text is not None and self.n_items:
            text_cov = sum(1 for t in self.item_text if t) / self.n_items
        return {
            "users": self.n_users,
            "items": self.n_items,
            "interactions": self.n_interactions,
            "positives": pos,
            "density": pos / max(1, self.n_users * self.n_items),
            "entities": self.n_entities,
            "relations": self.n_relations,
            "kg_entities": kg_entities,
            "triples": self.n_triples,
            "linked_items": linked,
            "social": 0 if self.social is None else int(self.social.shape[0]),
            "text_coverage": text_cov,
            "user_features": sorted(self.user_features),
            "item_features": sorted(self.item_features),
        }

    def __repr__(self) -> str:  # keep tensors out of the repr
        s = self.stats()
        return (
            f"KGRecData({self.name!r}, users={s['users']}, items={s['items']}, interactions={s['interactions']}, "
            f"entities={s['entities']}, relations={s['relations']}, triples={s['triples']}, social={s['social']})"
        )


#: optional fields added after in-memory fingerprints existed: left out of the checksum while None
_ADDED_LATER = ("mentions",)


def content_checksum(data: KGRecData) -> str:
    """sha256 (hex) of everything a model or a split reads from ``data``: sizes, relation names,
    every tensor (dtype, shape, bytes), item text, features and their vocabularies, raw-id maps.

    The identity of data built in memory (:meth:`KGRecDataModule.from_data`), which has no
    source files to checksum; two equal datasets share it, a change of one value changes it.
    """
    h = hashlib.sha256()

    def put(key: str, value: Any) -> None:
        h.update(key.encode() + b"\0")
        if isinstance(value, Tensor):
            t = value.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.numpy().tobytes())
        else:
            h.update(json.dumps(value, sort_keys=True).encode())
        h.update(b"\0")

    for f in fields(data):
        v = getattr(data, f.name)
        if f.name in ("name", "cleaning", "source_checksums") or (f.name in _ADDED_LATER and v is None):
            continue
        if isinstance(v, dict):
            for k in sorted(v):
                put(f"{f.name}.{k}", v[k])
        else:
            put(f.name, v)
    return h.hexdigest()


def data_fields() -> list[str]:
    return [f.name for f in fields(KGRecData)]
