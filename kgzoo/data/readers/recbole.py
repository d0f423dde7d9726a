"""Reader for RecBole atomic files (``.inter .item .user .kg .link``).

Format: Zhao et al., "RecBole: Towards a Unified, Comprehensive and Efficient Framework for
Recommendation Algorithms", CIKM 2021; https://recbole.io/docs/user_guide/data/atomic_files.html
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..kgdata import KGRecData
from ._io import (MIN_TEXT_MATCH, DataFormatError, check_kg_reaches_items, check_text_match, factorize,
                  link_entities, read_recbole)
from .features import encode_categorical, encode_multi


def read_recbole_kg(folder: str | Path, prefix: str, name: str | None = None,
                    text_fields: tuple[str, ...] = ("movie_title", "release_year", "class"),
                    min_text_match: float = MIN_TEXT_MATCH) -> KGRecData:
    """Read ``{prefix}.inter/.item/.user/.kg/.link`` from ``folder`` into a :class:`KGRecData`.

    Items are ordered as in ``.item`` (then any item only in ``.inter``); linked KG entities
    (``.link``) become their item's entity; other entities follow in order of appearance.
    Item text joins ``text_fields`` as ``"Title (year). Genres: a, b"`` for MovieLens.
    ``.item``, ``.user`` and ``.link``/``.kg`` are optional: a missing file leaves that source empty,
    but ``.kg`` and ``.link`` come together. ``min_text_match``: the least share of items
    (those of ``.inter``) that ``.item`` must hold a row for (:func:`~._io.check_text_match`).

    Raises:
        DataFormatError: malformed file (file, line, field: a truncated row, a NaN or empty
        float, an empty token); a ``.kg`` without its ``.link`` or the reverse (line 0); a
        ``.link`` row whose item is not an item of ``.inter``/``.item``; ``.item`` rows for fewer
        than ``min_text_match`` of the items; a KG that reaches no item.
    """
    folder = Path(folder)
    f = {ext: folder / f"{prefix}.{ext}" for ext in ("inter", "item", "user", "kg", "link")}
    if f["kg"].exists() != f["link"].exists():
        have, lack = ("kg", "link") if f["kg"].exists() else ("link", "kg")
        raise DataFormatError(f[have], 0, None, f"{f[have].name} without {f[lack].name}: the KG needs both "
                              "(.kg: head_id, relation_id, tail_id; .link: item_id, entity_id)")
    inter = read_recbole(f["inter"], ["user_id", "item_id"], ["rating", "timestamp", "label"])
    item = read_recbole(f["item"], ["item_id"], list(text_fields)) if f["item"].exists() else None
    user = read_recbole(f["user"], ["user_id"], ["age", "gender", "occupation", "zip_code"]) if f["user"].exists() else None

    item_order = item["item_id"] if item is not None else None
    items, item_ids = factorize(inter["item_id"], order=item_order)
    user_order = user["user_id"] if user is not None else None
    users, user_ids = factorize(inter["user_id"], order=user_order)
    n_items, n_users = len(item_ids), len(user_ids)

    triples = torch.zeros(0, 3, dtype=torch.long)
    relation_names: list[str] = []
    entity_ids = list(item_ids)
    if f["kg"].exists():
        kg = read_recbole(f["kg"], ["head_id", "relation_id", "tail_id"])
        link = read_recbole(f["link"], ["item_id", "entity_id"])
        link_items = pd.Index(item_ids).get_indexer(link["item_id"].astype(str)).astype(np.int64)
        if (link_items < 0).any():
            bad = int(np.flatnonzero(link_items < 0)[0])
            raise DataFormatError(f["link"], bad + 2, "item_id", f"item {link['item_id'][bad]!r} is not an item of {f['inter'].name}")
        heads, tails, others = link_entities(kg["head_id"], kg["tail_id"], link["entity_id"], link_items, n_items)
        rel, relation_names = factorize(kg["relation_id"])
        check_kg_reaches_items(f["kg"], heads, tails, n_items, (kg["head_id"], kg["tail_id"]), item_ids)
        triples = torch.from_numpy(np.stack([heads, rel, tails], 1))
        entity_ids = list(item_ids) + others  # linked items keep their item id as raw id
    n_entities = len(entity_ids)

    kw: dict = {}
    if "rating" in inter:
        kw["rating"] = torch.from_numpy(inter["rating"].astype(np.float32))
    if "timestamp" in inter:
        kw["timestamp"] = torch.from_numpy(inter["timestamp"].astype(np.int64))
    if "label" in inter:
        kw["label"] = torch.from_numpy(inter["label"].astype(np.int64))

    item_text = None
    item_features, user_features, vocab = {}, {}, {}
    if item is not None:
        rows = np.full(n_items, -1, dtype=np.int64)
        idx, _ = factorize(item["item_id"], order=np.array(item_ids, dtype=object))
        rows[idx] = np.arange(len(idx))
        inter_items = np.unique(items)
        check_text_match(f["item"], "item_id", int((rows[inter_items] >= 0).sum()), len(inter_items), min_text_match)

        def col(name: str) -> np.ndarray:
            out = np.full(n_items, "", dtype=object)
            if name in item:
                out[idx] = item[name]
            return out

        title, year, genre = col(text_fields[0]), col(text_fields[1]), col(text_fields[2])
        item_text = [
            (f"{t} ({y})" if y else t) + (f". Genres: {', '.join(g.split())}" if g else "") if t else ""
            for t, y, g in zip(title.tolist(), year.tolist(), genre.tolist())
        ]
        if text_fields[1] in item:
            item_features["year"], vocab["year"] = encode_categorical(year)
        if text_fields[2] in item:
            item_features["genre"], vocab["genre"] = encode_multi(genre)
    if user is not None:
        idx, _ = factorize(user["user_id"], order=np.array(user_ids, dtype=object))
        for name in ("age", "gender", "occupation"):
            if name in user:
                vals = np.full(n_users, "", dtype=object)
                vals[idx] = user[name]
                user_features[name], vocab[name] = encode_categorical(vals)

    data = KGRecData(
        name=name or prefix, n_users=n_users, n_items=n_items, n_entities=n_entities,
        interactions=torch.from_numpy(np.stack([users, items], 1)), triples=triples,
        relation_names=list(relation_names), item_text=item_text, user_features=user_features,
        item_features=item_features, feature_vocab=vocab, user_ids=user_ids, item_ids=item_ids,
        entity_ids=entity_ids, **kw,
    )
    data.validate()
    return data
