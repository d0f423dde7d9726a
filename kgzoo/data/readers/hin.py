"""Reader for the HIN edge lists of librahu's "HIN Datasets for Recommendation and Network
Embedding" (github.com/librahu/HIN-Datasets-for-Recommendation-and-Network-Embedding), as
used by HERec (Shi et al., "Heterogeneous Information Network Embedding for Recommendation",
IEEE TKDE 2019).

Each ``.dat`` file is one relation, one edge per line, no header: integer ids of the two
node types, then optional numbers (a rating, a timestamp, a weight), separated by tabs or
commas. Ids are per node type (item 3 and brand 3 are different nodes).

Mapping to kgzoo: the user-item file gives the interactions (its third column as
``rating``: a 1-5 rating, or Last.FM's listening count; a fourth as ``timestamp``); each
item-attribute file becomes one KG relation ``item -[name]-> attribute value``, the values
becoming entities after the items (raw id ``"<name>:<id>"``); the user-user file becomes
``social``. Users and items are numbered in increasing raw id (raw id kept in
``user_ids``/``item_ids``); attribute values per relation, in increasing raw id.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ..kgdata import KGRecData
from ._io import DataFormatError
from .kgin import fast_columns


@dataclass(frozen=True)
class EdgeFile:
    """One ``.dat`` file: its name, separator and columns (``(name, kind)``, kind ``int``/``float``)."""

    file: str
    sep: str
    columns: tuple[tuple[str, str], ...]


def _ids(path: Path, spec: EdgeFile) -> dict[str, np.ndarray]:
    cols = fast_columns(path, spec.columns, sep=spec.sep)
    for name, kind in spec.columns[:2]:
        a = cols[name]
        if a.size and a.min() < 0:
            i = int(np.flatnonzero(a < 0)[0])
            raise DataFormatError(path, i + 1, name, f"negative id {a[i]}")
    return cols


def read_hin(folder: str | Path, name: str, interactions: EdgeFile,
             attributes: Sequence[tuple[str, EdgeFile]] = (), social: EdgeFile | None = None) -> KGRecData:
    """Read librahu-style edge lists into a :class:`KGRecData`.

    Args:
        interactions: the user-item file; columns ``user, item`` then optionally ``rating`` and
            ``timestamp``.
        attributes: ``(relation name, file)`` pairs; columns ``item, value`` (then an optional
            weight, ignored). An item only named here (no interaction) is still an item.
        social: the user-user file (columns ``user, friend``, optional weight), kept as listed
            (both directions where the source lists both).

    Raises:
        DataFormatError: a malformed line (file, line, field), e.g. a truncated line, a
        non-integer or negative id, an empty file.
    """
    folder = Path(folder)
    ui = _ids(folder / interactions.file, interactions)
    cu, ci = interactions.columns[0][0], interactions.columns[1][0]
    attr = [(rel, spec, _ids(folder / spec.file, spec)) for rel, spec in attributes]
    soc = _ids(folder / social.file, social) if social is not None else None

    user_raw = [ui[cu]]
    if soc is not None:
        user_raw += [soc[social.columns[0][0]], soc[social.columns[1][0]]]
    users = np.unique(np.concatenate(user_raw))
    items = np.unique(np.concatenate([ui[ci]] + [a[spec.columns[0][0]] for _, spec, a in attr]))
    U, I = len(users), len(items)
    uidx, iidx = pd.Index(users), pd.Index(items)

    triples, entity_ids, base = [], [str(x) for x in items], I
    for r, (rel, spec, a) in enumerate(attr):
        heads = iidx.get_indexer(a[spec.columns[0][0]])
        vals, codes = np.unique(a[spec.columns[1][0]], return_inverse=True)
        triples.append(np.stack([heads, np.full(len(heads), r), codes.reshape(-1) + base], 1))
        entity_ids += [f"{rel}:{v}" for v in vals.tolist()]
        base += len(vals)
    tri = np.concatenate(triples).astype(np.int64) if triples else np.zeros((0, 3), np.int64)

    kw = {}
    extra = [c for c, _ in interactions.columns[2:]]
    if "rating" in extra:
        kw["rating"] = torch.from_numpy(ui["rating"].astype(np.float32))
    if "timestamp" in extra:
        kw["timestamp"] = torch.from_numpy(ui["timestamp"].astype(np.int64))
    if soc is not None:
        s = np.stack([uidx.get_indexer(soc[social.columns[0][0]]), uidx.get_indexer(soc[social.columns[1][0]])], 1)
        kw["social"] = torch.from_numpy(s.astype(np.int64))
    data = KGRecData(
        name=name, n_users=U, n_items=I, n_entities=len(entity_ids),
        interactions=torch.from_numpy(np.stack([uidx.get_indexer(ui[cu]), iidx.get_indexer(ui[ci])], 1).astype(np.int64)),
        triples=torch.from_numpy(tri), relation_names=[rel for rel, _ in attributes],
        user_ids=[str(x) for x in users.tolist()], item_ids=entity_ids[:I], entity_ids=entity_ids, **kw,
    )
    data.validate()
    return data


def read_amazon_hin(folder: str | Path, name: str = "amazon-hin") -> KGRecData:
    """librahu's ``Amazon/``: ``user_item.dat`` (user, item, rating, timestamp; tabs) and the
    comma-separated ``item_brand.dat``, ``item_category.dat`` and ``item_view.dat``.

    "View" is its own node type (3,857 ids in the source's statistics, beyond the 2,753 items),
    so ``item_view`` links an item to a view entity, not to another item.
    """
    two = lambda f, a, b: EdgeFile(f, ",", ((a, "int"), (b, "int")))  # noqa: E731
    return read_hin(
        folder, name,
        EdgeFile("user_item.dat", "\t", (("user", "int"), ("item", "int"), ("rating", "float"), ("timestamp", "int"))),
        [("brand", two("item_brand.dat", "item", "brand")), ("category", two("item_category.dat", "item", "category")),
         ("view", two("item_view.dat", "item", "view"))],
    )


def read_lastfm_social(folder: str | Path, name: str = "lastfm-social") -> KGRecData:
    """librahu's ``LastFM/`` (HetRec 2011): ``user_artist.dat`` (user, artist, listening count,
    kept as ``rating``), ``user_user(original).dat`` (friendships, both directions listed) and
    ``artist_tag.dat`` (artist, tag: one row per user who applied the tag, so pairs repeat and
    cleaning removes the repeats)."""
    return read_hin(
        folder, name,
        EdgeFile("user_artist.dat", "\t", (("user", "int"), ("artist", "int"), ("rating", "float"))),
        [("tag", EdgeFile("artist_tag.dat", "\t", (("artist", "int"), ("tag", "int"))))],
        social=EdgeFile("user_user(original).dat", "\t", (("user", "int"), ("friend", "int"))),
    )


def read_yelp_social(folder: str | Path, name: str = "yelp-social") -> KGRecData:
    """librahu's ``Yelp/``: ``user_business.dat`` (user, business, stars), ``user_user.dat``
    (friendships with weight 1, both directions listed), ``business_category.dat`` and
    ``business_city.dat`` (business, value, weight 1)."""
    three = lambda f, a, b: EdgeFile(f, "\t", ((a, "int"), (b, "int"), ("weight", "float")))  # noqa: E731
    return read_hin(
        folder, name,
        EdgeFile("user_business.dat", "\t", (("user", "int"), ("business", "int"), ("rating", "float"))),
        [("category", three("business_category.dat", "business", "category")),
         ("city", three("business_city.dat", "business", "city"))],
        social=three("user_user.dat", "user", "friend"),
    )
