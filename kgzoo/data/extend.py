"""Extend a dataset with new interactions, triples, items and users, keeping its ids (issue 15,
part 7: incremental updates; DESIGN.md, "Id spaces").

:func:`extend_data` takes a :class:`KGRecData` (the data a model was trained on) and frames of
raw ids in the columns of :func:`~kgzoo.data.frames.build_from_frames`:

* ``interactions``: ``user, item`` and every per-row field the base has (``rating``,
  ``timestamp``, ``label``; a column the base has not is an error too: the extended tensors
  must be complete);
* ``triples``: ``head, relation, tail`` (raw entity tokens, raw relation names); ``links``:
  ``item, entity`` (which entity token a new item is); ``item_text``: ``item, text``;
* ``user_features`` / ``item_features``: ``user`` / ``item`` and attribute columns of the base
  (single-valued): the attributes of new users / items (a base row is accepted only with its base
  values: retrain to change them); ``social``: ``user, friend``, new ties among base and new users.

Ids: users and items of the base keep theirs; new users follow (``U..U'-1``) in order of first
appearance in ``interactions``, new items follow (``I..I'-1``) in order of first appearance in
``interactions``, then ``links``, then ``item_text`` (an item with text or a KG link but no
interaction yet is a cold item, scored from its content). Items are entities ``0..I'-1``
(the id-space contract), so the base's other entities move up by the number of new items, in
their order (:attr:`Growth.entity_map` says where each old entity went); an old entity that a
new item links to (``links``, or without ``links`` a token equal to the new item's raw id, the
rule of :func:`~kgzoo.data.frames.build_from_frames`) becomes that item; entity tokens of
``triples`` never seen follow; new relation names follow the base's. Raw-id maps are extended.

Cleaning, counted in ``cleaning`` under ``"update ..."`` keys (nothing is dropped silently):
interactions repeating a base or an earlier update row (same user and item), triples repeating
one, self-loops, and dangling triples (in no connected component with an item, base KG
included). Everything else that is wrong is a :class:`~kgzoo.data.readers._io.DataFormatError`
naming the frame (or file), line and field.

Attributes and social ties, counted likewise: rows of a user or item that is neither in the
base nor new (no interaction, link or text), attribute values outside the base's vocabulary
(coded 0, "unknown": a model's attribute tables have no row for them; retrain to learn them),
social self-ties and ties repeating a base or an earlier update tie. New users and items
without an attribute row get code 0 ("unknown"); the base's social ties are kept.

The extended data is other data: ``source_checksums`` is the sha256 of its whole contents
(:func:`~kgzoo.data.kgdata.content_checksum`), so its fingerprint differs from the base's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from .cleaning import drop_unused_entities, reaches_items
from .frames import COLUMNS, Origin, _check_frame, _check_id_forms, _numbers, _origin, has_integer_ids
from .kgdata import KGRecData, content_checksum
from .readers._io import MIN_TEXT_MATCH, DataFormatError, check_text_match

#: the frames :func:`extend_data` takes
UPDATE_FRAMES = ("interactions", "triples", "links", "item_text", "user_features", "item_features", "social")
#: the side tables among them that a model reads only if it says so (:attr:`Recommender.update_reads`)
SIDE_TABLES = ("user_features", "item_features", "social")


@dataclass
class Growth:
    """How an extension grew the id spaces: what a model needs to grow its tables
    (:meth:`kgzoo.models.base.Recommender.update`).

    Attributes:
        n_users, n_items, n_entities, n_relations: the base's sizes ``U, I, E, R`` (before).
        entity_map: LongTensor ``[E]``: the new id of each base entity (items keep theirs; the
            others move up past the new items, or become the new item that links to them).
        new_interactions: LongTensor ``[n]``: rows of the extended ``interactions`` that the
            update added (after cleaning).
        new_triples: LongTensor ``[m]``: rows of the extended ``triples`` that the update added.
        counts: what the update added and removed, by name (``"new users"``, ..., and the
            cleaning steps).
    """

    n_users: int
    n_items: int
    n_entities: int
    n_relations: int
    entity_map: Tensor
    new_interactions: Tensor
    new_triples: Tensor
    counts: dict[str, int] = field(default_factory=dict)


def _keys(index: pd.Index, raw: np.ndarray) -> np.ndarray:
    return index.get_indexer(np.asarray(raw).astype(str))


def _append_new(known: list[str], *columns: np.ndarray) -> list[str]:
    """The raw ids of ``columns`` (in order, first appearance) that are not in ``known``."""
    vals = pd.unique(np.concatenate([np.asarray(c).astype(str) for c in columns]))
    return vals[pd.Index(known).get_indexer(vals) < 0].astype(str).tolist()


def extend_data(base: KGRecData, interactions: pd.DataFrame | None = None, triples: pd.DataFrame | None = None,
                links: pd.DataFrame | None = None, item_text: pd.DataFrame | None = None,
                user_features: pd.DataFrame | None = None, item_features: pd.DataFrame | None = None,
                social: pd.DataFrame | None = None, name: str | None = None, min_text_match: float = MIN_TEXT_MATCH,
                origins: Mapping[str, Origin] | None = None) -> tuple[KGRecData, Growth]:
    """``base`` extended with new rows and ids (module docstring), and how it grew.

    Args:
        base: the data to extend (with raw-id maps ``user_ids``, ``item_ids``, ``entity_ids``).
        interactions, triples, links, item_text, user_features, item_features, social: frames of
            raw ids (columns: module docstring); at least one.
        name: the extended dataset's name (default ``"<base name>+update-<8 hex of its sha256>"``).
        min_text_match: the least share of the new items that ``item_text`` must name
            (:func:`~kgzoo.data.readers._io.check_text_match`; ``0`` accepts any).
        origins: frame name -> :class:`~kgzoo.data.frames.Origin` (the file it was read from).

    Returns:
        ``(extended KGRecData, Growth)``.

    Raises:
        ValueError: no frame; a base without raw-id maps. DataFormatError (frame or file, line,
        field): a missing column or value, a per-row field the base has and the frame lacks
        (or the reverse), a rating/timestamp that is not a number, a label other than 0/1,
        ``links`` without ``triples``, a link of an old item (its entity is fixed) or to another
        item's entity, text for an old item that differs from its text, text naming fewer than
        ``min_text_match`` of the new items; an attribute column the base has not, a
        multi-valued one, a user or item named twice, a base row with other values.
    """
    given = (interactions, triples, links, item_text, user_features, item_features, social)
    if all(f is None for f in given):
        raise ValueError(f"extend_data: nothing to add (give one of {', '.join(UPDATE_FRAMES)})")
    if base.user_ids is None or base.item_ids is None:
        raise ValueError(f"extend_data: {base.name} has no raw-id maps (user_ids/item_ids), so new rows cannot "
                         "be matched to its users and items")
    o = {f: _origin(origins, f) for f in COLUMNS}
    U0, I0, E0, R0 = base.n_users, base.n_items, base.n_entities, base.n_relations
    entity_ids0 = list(base.entity_ids) if base.entity_ids is not None else list(base.item_ids) + \
        np.char.add("entity:", np.arange(I0, E0).astype(str)).tolist()
    counts: dict[str, int] = {}

    # ---------------------------------------------------------------- frames checked
    x = _check_frame(interactions, "interactions", o["interactions"]) if interactions is not None else None
    t = _check_frame(triples, "triples", o["triples"]) if triples is not None else None
    if links is not None and triples is None:
        raise DataFormatError(o["links"].path, 0, None, "links without triples: the KG they link items into is missing")
    lk = _check_frame(links, "links", o["links"]) if links is not None else None
    tx = _check_frame(item_text, "item_text", o["item_text"]) if item_text is not None else None
    # "5.0" where the base's ids are integers would be a new user or item beside "5", silently
    users_int, items_int = has_integer_ids(base.user_ids), has_integer_ids(base.item_ids)
    entities_int = has_integer_ids(entity_ids0)
    for df, frame, col, known in ((x, "interactions", "user", users_int), (x, "interactions", "item", items_int),
                                  (lk, "links", "item", items_int), (tx, "item_text", "item", items_int),
                                  (t, "triples", "head", entities_int), (t, "triples", "tail", entities_int)):
        if df is not None:
            _check_id_forms(df[col], frame, col, o[frame], known_integers=known)
    if x is not None:
        for f in ("rating", "timestamp", "label"):
            has_base, has_new = getattr(base, f) is not None, f in x.columns
            if has_base != has_new:
                line = o["interactions"].header
                raise DataFormatError(o["interactions"].path, line, f,
                                      f"interactions: {'missing column' if has_base else 'a column'} {f!r}: the "
                                      f"base {base.name} {'has' if has_base else 'has no'} {f} for every row, and "
                                      "the extended rows must match it")

    # ---------------------------------------------------------------- users and items
    empty = np.array([], dtype=object)
    new_users = _append_new(base.user_ids, x["user"].to_numpy() if x is not None else empty)
    new_items = _append_new(base.item_ids, x["item"].to_numpy() if x is not None else empty,
                            lk["item"].to_numpy() if lk is not None else empty,
                            tx["item"].to_numpy() if tx is not None else empty)
    user_ids, item_ids = list(base.user_ids) + new_users, list(base.item_ids) + new_items
    U1, I1, k = len(user_ids), len(item_ids), len(new_items)
    uidx, iidx = pd.Index(user_ids), pd.Index(item_ids)
    counts["new users"], counts["new items"] = len(new_users), k

    # ---------------------------------------------------------------- entities
    # each new item's entity token: its link, else (no links frame) its raw id; an item's own
    # entity id (entity_ids[item]) is its raw item id, as build_from_frames writes it, and its
    # link token is an alias of it when new triples are read
    item_token = np.array(new_items, dtype=object)
    if lk is not None:
        link_item = _keys(iidx, lk["item"].to_numpy())
        old = link_item < I0
        if old.any():
            r = int(np.flatnonzero(old)[0])
            raise DataFormatError(o["links"].path, o["links"].line(r), "item",
                                  f"item {lk['item'].iloc[r]!r} is a base item: its entity is fixed (retrain to "
                                  "relink it)")
        tokens = lk["entity"].astype(str).to_numpy(dtype=object)
        twice = pd.Index(tokens).duplicated(keep="first") | pd.Index(link_item).duplicated(keep="first")
        if twice.any():
            r = int(np.flatnonzero(twice)[0])
            raise DataFormatError(o["links"].path, o["links"].line(r), "entity",
                                  f"item {lk['item'].iloc[r]!r} or entity {tokens[r]!r} is linked twice")
        item_token = np.full(k, None, dtype=object)
        item_token[link_item - I0] = tokens
    linked = pd.notna(item_token)
    pos = np.full(k, -1, dtype=np.int64)
    pos[linked] = pd.Index(entity_ids0).get_indexer(item_token[linked].astype(str))
    if ((pos >= 0) & (pos < I0)).any():
        j = int(np.flatnonzero((pos >= 0) & (pos < I0))[0])
        frame = "links" if lk is not None else "interactions"
        raise DataFormatError(o[frame].path, 0, "entity" if lk is not None else "item",
                              f"new item {new_items[j]!r}: its entity {item_token[j]!r} is base item "
                              f"{base.item_ids[pos[j]]!r}'s; an item cannot be another item's entity")
    moved = pos >= I0  # base entities that new items become
    entity_map = torch.empty(E0, dtype=torch.long)
    entity_map[:I0] = torch.arange(I0)
    is_moved = torch.zeros(E0, dtype=torch.bool)
    is_moved[torch.from_numpy(pos[moved])] = True
    entity_map[torch.from_numpy(pos[moved])] = torch.from_numpy(np.flatnonzero(moved) + I0)
    rest = torch.arange(I0, E0)[~is_moved[I0:]]
    entity_map[rest] = I1 + torch.arange(rest.numel())
    counts["base entities that became new items"] = int(moved.sum())
    n_ent = I1 + rest.numel()
    ent_arr = np.empty(n_ent, dtype=object)
    ent_arr[entity_map.numpy()] = np.asarray(entity_ids0, dtype=object)
    ent_arr[I0:I1] = np.asarray(new_items, dtype=object)
    ent_ids = ent_arr.astype(str).tolist()
    # tokens that name an item other than by its raw id: links, and base entities that became items
    alias = pd.Series(np.flatnonzero(linked) + I0, index=item_token[linked].astype(str), dtype=np.int64)
    triples_old = entity_map[base.triples[:, [0, 2]]] if base.n_triples else base.triples[:, [0, 2]]
    tri = torch.stack([triples_old[:, 0], base.triples[:, 1], triples_old[:, 1]], 1) if base.n_triples else \
        base.triples.clone()
    relation_names = list(base.relation_names)
    new_tri_rows = torch.zeros(0, dtype=torch.long)
    if t is not None:
        toks = np.concatenate([t["head"].astype(str).to_numpy(), t["tail"].astype(str).to_numpy()])
        code = pd.Index(ent_ids).get_indexer(toks)
        if len(alias):
            via_alias = alias.index.get_indexer(toks)
            code[via_alias >= 0] = alias.to_numpy()[via_alias[via_alias >= 0]]
        fresh = pd.unique(toks[code < 0])
        code[code < 0] = len(ent_ids) + pd.Index(fresh).get_indexer(toks[code < 0])
        ent_ids += np.asarray(fresh).astype(str).tolist()
        code = code.astype(np.int64)
        rel_new = _append_new(relation_names, t["relation"].to_numpy())
        relation_names += rel_new
        rel = pd.Index(relation_names).get_indexer(t["relation"].astype(str).to_numpy()).astype(np.int64)
        M = len(t)
        cand = torch.from_numpy(np.stack([code[:M], rel, code[M:]], 1))
        # self-loops, duplicates (of the base or earlier in the update), dangling triples
        loop = cand[:, 0] == cand[:, 2]
        counts["update triples: self-loop"] = int(loop.sum())
        cand = cand[~loop]
        n_all = len(ent_ids)
        key = (cand[:, 0] * len(relation_names) + cand[:, 1]) * n_all + cand[:, 2]
        base_key = (tri[:, 0] * len(relation_names) + tri[:, 1]) * n_all + tri[:, 2]
        _, first = np.unique(key.numpy(), return_index=True)
        keep = torch.zeros(cand.shape[0], dtype=torch.bool)
        keep[torch.from_numpy(first)] = True
        dup_in = int((~keep).sum())
        in_base = torch.isin(key, base_key) & keep
        counts["update triples: duplicate"] = dup_in + int(in_base.sum())
        cand = cand[keep & ~in_base]
        reach = reaches_items(torch.cat([tri, cand]), n_all, I1)[tri.shape[0]:]
        counts["update triples: dangling (reach no item)"] = int((~reach).sum())
        cand = cand[reach]
        # entities that only dangling triples named are dropped again (the new ones only)
        cand, used, _ = drop_unused_entities(cand, n_all, n_ent)
        ent_ids = np.asarray(ent_ids, dtype=object)[used.numpy()].tolist()
        # relation names that only dropped triples used are dropped again (the new ones only)
        rel_used = torch.zeros(len(relation_names), dtype=torch.bool)
        rel_used[:R0] = True
        rel_used[cand[:, 1]] = True
        rel_id = torch.cumsum(rel_used.long(), 0) - 1
        cand[:, 1] = rel_id[cand[:, 1]]
        relation_names = np.asarray(relation_names, dtype=object)[rel_used.numpy()].tolist()
        counts["new relations"] = len(relation_names) - R0
        new_tri_rows = torch.arange(tri.shape[0], tri.shape[0] + cand.shape[0])
        tri = torch.cat([tri, cand])
        counts["new triples"] = int(cand.shape[0])
    counts["new entities (not items)"] = len(ent_ids) - n_ent

    # ---------------------------------------------------------------- interactions
    inter, kw = base.interactions, {f: getattr(base, f) for f in base.per_row_fields}
    new_rows = torch.zeros(0, dtype=torch.long)
    if x is not None:
        u = torch.from_numpy(_keys(uidx, x["user"].to_numpy()).astype(np.int64))
        i = torch.from_numpy(_keys(iidx, x["item"].to_numpy()).astype(np.int64))
        extra: dict[str, Tensor] = {}
        if base.rating is not None:
            extra["rating"] = torch.from_numpy(_numbers(x, "rating", o["interactions"], False).astype(np.float32))
        if base.timestamp is not None:
            extra["timestamp"] = torch.from_numpy(_numbers(x, "timestamp", o["interactions"], True))
        if base.label is not None:
            lab = _numbers(x, "label", o["interactions"], True)
            bad = (lab != 0) & (lab != 1)
            if bad.any():
                r = int(np.flatnonzero(bad)[0])
                raise DataFormatError(o["interactions"].path, o["interactions"].line(r), "label",
                                      f"label {lab[r]} is not 0 or 1")
            extra["label"] = torch.from_numpy(lab)
        if base.given_split is not None:  # an update's rows are training rows
            extra["given_split"] = torch.zeros(len(x), dtype=torch.long)
        key = u * I1 + i
        _, first = np.unique(key.numpy(), return_index=True)
        keep = torch.zeros(len(x), dtype=torch.bool)
        keep[torch.from_numpy(first)] = True
        in_base = torch.isin(key, inter[:, 0] * I1 + inter[:, 1])
        counts["update interactions: duplicate"] = int((~keep).sum()) + int((keep & in_base).sum())
        keep &= ~in_base
        new_rows = torch.arange(inter.shape[0], inter.shape[0] + int(keep.sum()))
        inter = torch.cat([inter, torch.stack([u, i], 1)[keep]])
        for f in kw:
            kw[f] = torch.cat([kw[f], extra[f][keep]])
        counts["new interactions"] = int(keep.sum())

    # ---------------------------------------------------------------- text and attributes
    text = list(base.item_text) + [""] * k if base.item_text is not None else None
    if tx is not None:
        idx = _keys(iidx, tx["item"].to_numpy())
        vals = tx["text"].astype(str).to_numpy(dtype=object)
        if text is None:
            text = [""] * I1
        old = idx < I0
        if old.any():
            base_text = np.array(text, dtype=object)[idx[old]]
            differs = (base_text != vals[old]) & (base_text != "")
            if differs.any():
                r = int(np.flatnonzero(old)[np.flatnonzero(differs)[0]])
                raise DataFormatError(o["item_text"].path, o["item_text"].line(r), "text",
                                      f"item {tx['item'].iloc[r]!r} is a base item with other text (retrain to "
                                      "change it)")
        counts["update item_text: rows of base items"] = int(old.sum())
        seen: dict[int, int] = {}  # a new item on two rows: the same text is one, another is an error (the last won)
        for r in np.flatnonzero(~old):
            first = seen.setdefault(int(idx[r]), int(r))
            if first != r and vals[first] != vals[r]:
                raise DataFormatError(o["item_text"].path, o["item_text"].line(int(r)), "text",
                                      f"item {tx['item'].iloc[r]!r} repeats line {o['item_text'].line(first)} with "
                                      f"another text ({vals[first]!r}, then {vals[r]!r})")
        counts["update item_text: a new item's row repeating an earlier one"] = int((~old).sum()) - len(seen)
        arr = np.array(text, dtype=object)
        arr[idx] = vals
        text = arr.tolist()
        if k:
            check_text_match(o["item_text"].path, "item", len(np.unique(idx[~old])), k, min_text_match)
    feats = {}
    for kind, table, n_new, df, index, n0 in (("user", base.user_features, U1 - U0, user_features, uidx, U0),
                                              ("item", base.item_features, k, item_features, iidx, I0)):
        feats[kind] = {f: torch.cat([v, v.new_zeros((n_new, *v.shape[1:]))]) for f, v in table.items()}
        if df is not None:
            _new_attributes(df, kind, feats[kind], base.feature_vocab, index, n0, o[f"{kind}_features"], counts)
    soc = base.social
    if social is not None:
        soc = _new_social(social, soc, uidx, o["social"], counts)
    mentions = base.mentions
    if mentions is not None and mentions.numel():
        mentions = torch.cat([mentions[:, :1], entity_map[mentions[:, 1:2]], mentions[:, 2:]], 1)

    cleaning = dict(base.cleaning)
    cleaning.update({key: v for key, v in counts.items() if key.startswith("update ")})
    out = KGRecData(
        name=base.name, n_users=U1, n_items=I1, n_entities=len(ent_ids), interactions=inter, triples=tri,
        relation_names=relation_names, social=soc, item_text=text, user_features=feats["user"],
        item_features=feats["item"], feature_vocab=dict(base.feature_vocab), user_ids=user_ids, item_ids=item_ids,
        entity_ids=ent_ids, cleaning=cleaning, mentions=mentions, **kw)
    out.validate()
    sha = content_checksum(out)
    out.name = name or f"{base.name}+update-{sha[:8]}"
    out.source_checksums = {"extended": sha}
    growth = Growth(U0, I0, E0, R0, entity_map, new_rows, new_tri_rows, counts)
    return out, growth



def _new_attributes(df: pd.DataFrame, kind: str, codes: dict[str, Tensor], vocab: Mapping[str, list[str]],
                    index: pd.Index, n0: int, origin: Origin, counts: dict[str, int]) -> None:
    """Write the codes of ``df`` (``kind`` and attribute columns) into ``codes`` (attribute ->
    LongTensor ``[n]``, grown already), in place (module docstring; ``n0`` base rows)."""
    frame = f"{kind}_features"
    f = _check_frame(df, frame, origin)
    cols = [c for c in f.columns if c != kind]
    for c in cols:
        if c not in codes:
            raise DataFormatError(origin.path, origin.header, c, f"{frame}: attribute {c!r} is not one of the base's "
                                  f"({', '.join(sorted(codes)) or 'none'}): retrain to add an attribute")
        if codes[c].dim() != 1:
            raise DataFormatError(origin.path, origin.header, c, f"{frame}: {c!r} is a multi-valued attribute: an "
                                  "update takes single values only (retrain)")
    idx = _keys(index, f[kind].to_numpy())
    known = idx >= 0
    counts[f"update {frame}: rows of a {kind} without interactions"] = int((~known).sum())
    twice = pd.Index(idx).duplicated(keep="first") & known
    if twice.any():
        r = int(np.flatnonzero(twice)[0])
        raise DataFormatError(origin.path, origin.line(r), kind, f"{frame}: {kind} {f[kind].iloc[r]!r} is named twice")
    rows, at = np.flatnonzero(known), idx[known]
    old = at < n0
    unknown_values = 0
    for c in cols:
        vals = f[c].iloc[rows].fillna("").astype(str).to_numpy()
        code = pd.Index(vocab[c]).get_indexer(vals)
        unknown_values += int(((code < 0) & (vals != "")).sum())
        code = np.where(code < 0, 0, code).astype(np.int64)
        differs = code[old] != codes[c][at[old]].numpy()
        if differs.any():
            r = int(rows[np.flatnonzero(old)[np.flatnonzero(differs)[0]]])
            raise DataFormatError(origin.path, origin.line(r), c, f"{frame}: {kind} {f[kind].iloc[r]!r} is a base {kind} "
                                  f"with other {c!r} (retrain to change it)")
        codes[c][torch.from_numpy(at[~old])] = torch.from_numpy(code[~old])
    counts[f"update {frame}: values outside the base vocabulary (coded unknown)"] = unknown_values
    counts[f"new {kind}s with attributes"] = int((~old).sum())


def _new_social(df: pd.DataFrame, base: Tensor | None, uidx: pd.Index, origin: Origin,
                counts: dict[str, int]) -> Tensor:
    """LongTensor ``[S', 2]``: the base's ties then the new ones of ``df`` (``user, friend``),
    cleaning counted in ``counts`` (module docstring)."""
    s = _check_frame(df, "social", origin)
    a, b = _keys(uidx, s["user"].to_numpy()), _keys(uidx, s["friend"].to_numpy())
    known = (a >= 0) & (b >= 0)
    counts["update social: rows of a user without interactions"] = int((~known).sum())
    pairs = torch.from_numpy(np.stack([a[known], b[known]], 1).astype(np.int64))
    loop = pairs[:, 0] == pairs[:, 1]
    counts["update social: self-tie"] = int(loop.sum())
    pairs = pairs[~loop]
    old = base if base is not None else torch.zeros(0, 2, dtype=torch.long)
    n = len(uidx)
    key = pairs[:, 0] * n + pairs[:, 1]
    _, first = np.unique(key.numpy(), return_index=True)
    keep = torch.zeros(pairs.shape[0], dtype=torch.bool)
    keep[torch.from_numpy(first)] = True
    repeat = torch.isin(key, old[:, 0] * n + old[:, 1])
    counts["update social: duplicate"] = int((~keep).sum()) + int((keep & repeat).sum())
    pairs = pairs[keep & ~repeat]
    counts["new social ties"] = int(pairs.shape[0])
    return torch.cat([old, pairs])
