"""Reader for the RippleNet / KGCN / MKR file format, and KGCN's preprocessing of raw files.

Format (Wang et al., "RippleNet: Propagating User Preferences on the Knowledge Graph for
Recommender Systems", CIKM 2018; Wang et al., "Knowledge Graph Convolutional Networks for
Recommender Systems" (KGCN), WWW 2019):

* ``ratings_final.txt`` (``user \\t item \\t label``) or ``ratings_final.npy`` (an integer array
  ``[N, 3]`` of the same): labelled rows, half of them negatives sampled per user;
* ``kg_final.txt``: ``head \\t relation \\t tail`` where items are entities ``0..n_items-1``;
* optional ``item_index2entity_id.txt`` (or ``..._rehashed.txt``): ``raw item id \\t KG entity``,
  line ``i`` is item ``i`` (gives items their raw ids);
* optional raw ``kg.txt`` (``head entity \\t relation name \\t tail entity``), the file
  ``kg_final.txt`` was made from (gives relation names and raw entity ids).

:func:`build_kgcn_ratings` repeats KGCN's ``preprocess.py`` on the raw files (Last.FM:
``user_artists.dat`` + ``item_index2entity_id.txt`` + ``kg.txt``): items are the rows of the
item map, every rating at or above a threshold is a positive, and each user gets as many
negatives as positives, drawn from the items they did not rate, with a fixed seed.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..kgdata import KGRecData
from ._io import DataFormatError, check_kg_reaches_items, read_bytes, read_text
from .kgin import fast_columns, field_on_empty, read_kg_final

RATING_FIELDS = (("user", "int"), ("item", "int"), ("label", "int"))
MAP_FIELDS = (("item", "str"), ("entity", "str"))
RAW_KG_FIELDS = (("head", "str"), ("relation", "str"), ("tail", "str"))


def read_ratings_final(path: str | Path) -> dict[str, np.ndarray]:
    """``{"user", "item", "label"}`` int64 arrays of ``ratings_final.txt`` or ``.npy``.

    Raises:
        DataFormatError: malformed text (file, line, field); an ``.npy`` that does not load, is
        not an integer array ``[N, 3]`` (line 0, field ``"array"``) or has a negative id or a
        label outside {0, 1} (the row as line, 1-based, and the field).
    """
    p = Path(path)
    if p.suffix == ".npy":
        raw = read_bytes(p)
        try:
            a = np.load(io.BytesIO(raw), allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise DataFormatError(p, 0, "array", f"not a readable .npy file ({e})") from None
        if a.ndim != 2 or a.shape[1] != 3 or not np.issubdtype(a.dtype, np.integer):
            raise DataFormatError(p, 0, "array", f"expected an integer array [N, 3] (user, item, label), got {a.dtype} {a.shape}")
        if a.shape[0] == 0:
            raise DataFormatError(p, 1, "user", "empty array")
        a = a.astype(np.int64)
        out = {"user": a[:, 0], "item": a[:, 1], "label": a[:, 2]}
    else:
        out = fast_columns(p, RATING_FIELDS, sep=None)
    for name in ("user", "item"):
        if out[name].min() < 0:
            i = int(np.flatnonzero(out[name] < 0)[0])
            raise DataFormatError(p, i + 1, name, f"negative id {out[name][i]}")
    bad = (out["label"] != 0) & (out["label"] != 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataFormatError(p, i + 1, "label", f"label {out['label'][i]} is not 0 or 1")
    return out


def read_item_map(path: str | Path) -> dict[str, np.ndarray]:
    """``item_index2entity_id.txt``: ``{"item": raw item ids, "entity": KG entity ids}`` (str arrays)."""
    return fast_columns(path, MAP_FIELDS, sep="\t")


def read_ripplenet(folder: str | Path, name: str = "ripplenet", ratings: str = "ratings_final.txt",
                   kg: str = "kg_final.txt", item_map: str | None = "item_index2entity_id.txt",
                   raw_kg: str | None = "kg.txt") -> KGRecData:
    """Read a RippleNet/KGCN folder into a :class:`KGRecData` (ids kept as in the files).

    ``n_users`` is the largest user id + 1 and ``n_items`` the largest of (item id + 1, lines
    of the item map), as in KGCN's loader; ``n_entities`` the largest KG id + 1. Every row
    carries its 0/1 ``label``. When ``raw_kg`` exists next to ``kg_final.txt`` (same number of
    lines, KGCN numbers new entities and relations in order of first appearance), relations
    get their names and entities their raw ids from it. Raw ids: items keep the item map's
    (artist id, ISBN), other entities are ``"entity:<KG id>"`` (the id of ``raw_kg`` when read,
    else of ``kg``), so the two never collide.

    Raises:
        DataFormatError: malformed file (file, line, field); ``raw_kg`` that disagrees with ``kg``;
        a KG that reaches no item.
    """
    folder = Path(folder)
    r = read_ratings_final(folder / ratings)
    h, rel, t = read_kg_final(folder / kg)
    imap = read_item_map(folder / item_map) if item_map and (folder / item_map).is_file() else None
    n_users = int(r["user"].max()) + 1
    n_items = max(int(r["item"].max()) + 1, len(imap["item"]) if imap is not None else 0)
    check_kg_reaches_items(folder / kg, h, t, n_items)
    E = max(n_items, int(max(h.max(), t.max())) + 1)
    R = int(rel.max()) + 1
    relation_names = [str(i) for i in range(R)]
    entity_ids = np.array([f"entity:{i}" for i in range(E)], dtype=object)
    if imap is not None:
        entity_ids[: len(imap["item"])] = imap["item"]
    if raw_kg and (folder / raw_kg).is_file():
        raw = fast_columns(folder / raw_kg, RAW_KG_FIELDS, sep="\t")
        if len(raw["head"]) != len(h):
            raise DataFormatError(folder / raw_kg, 0, None, f"{len(raw['head'])} lines, but {kg} has {len(h)}")
        names = np.empty(R, dtype=object)
        names[rel] = raw["relation"]  # the last write wins; checked below
        bad = names[rel] != raw["relation"]
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataFormatError(folder / raw_kg, i + 1, "relation", f"relation {raw['relation'][i]!r} disagrees with {kg} line {i + 1}")
        relation_names = [str(x) if x is not None else str(i) for i, x in enumerate(names)]
        ent_raw = np.empty(E, dtype=object)
        ent_raw[h], ent_raw[t] = raw["head"], raw["tail"]
        other = np.arange(E) >= n_items
        known = other & (ent_raw != None)  # noqa: E711 (elementwise)
        entity_ids[known] = "entity:" + ent_raw[known].astype(str).astype(object)
    entity_ids = entity_ids.tolist()
    data = KGRecData(
        name=name, n_users=n_users, n_items=n_items, n_entities=E,
        interactions=torch.from_numpy(np.stack([r["user"], r["item"]], 1)),
        label=torch.from_numpy(r["label"]),
        triples=torch.from_numpy(np.stack([h, rel, t], 1)), relation_names=relation_names,
        user_ids=[str(i) for i in range(n_users)], item_ids=entity_ids[:n_items], entity_ids=entity_ids,
    )
    data.validate()
    return data


def draw_unrated_items(users: np.ndarray, pos_items: np.ndarray, n_users: int, n_items: int,
                     seed: int = 0, exclude: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """KGCN's negatives: for each user as many distinct items as positives, drawn uniformly
    without replacement from the items the user did not rate.

    Vectorised: one random key per (user, item), rated items get +inf, and each user keeps
    the items of the lowest keys (a ``[U, I]`` float matrix: fine for Last.FM and Book-Crossing).

    Args:
        users, pos_items: the positive pairs (distinct). exclude: further (users, items) pairs
            that must not be drawn (ratings below the threshold).

    Returns:
        ``(users, items)`` of the negatives, grouped by user.
    """
    rng = np.random.default_rng(seed)
    keys = rng.random((n_users, n_items))
    keys[users, pos_items] = np.inf
    if exclude is not None:
        keys[exclude[0], exclude[1]] = np.inf
    n_pos = np.bincount(users, minlength=n_users)
    avail = np.isfinite(keys).sum(1)
    if (n_pos > avail).any():
        u = int(np.flatnonzero(n_pos > avail)[0])
        raise ValueError(f"user {u} has {n_pos[u]} positives but only {avail[u]} unrated items to draw negatives from")
    order = np.argsort(keys, axis=1, kind="stable")
    take = np.arange(n_items)[None, :] < n_pos[:, None]
    neg_users = np.repeat(np.arange(n_users), n_pos)
    return neg_users, order[take]


def build_kgcn_ratings(folder: str | Path, name: str = "lastfm-kg-raw", ratings: str = "user_artists.dat",
                       item_map: str = "item_index2entity_id.txt", kg: str = "kg.txt",
                       columns: tuple[str, str, str] = ("userID", "artistID", "weight"),
                       threshold: float = 0.0, seed: int = 0) -> KGRecData:
    """Build the RippleNet/KGCN structure from raw files, as KGCN's ``preprocess.py`` does.

    * Items are the lines of ``item_map`` (item ``i`` = line ``i``, whose KG entity becomes entity
      ``i``); ratings of other items are dropped.
    * A rating ``>= threshold`` is a positive (Last.FM: every listening count, threshold 0);
      users are numbered in order of their first positive row.
    * Each user gets as many negatives as positives, from the items they did not rate
      (:func:`draw_unrated_items`, seeded): the draw differs from the published
      ``ratings_final.txt`` (NumPy's legacy global RNG there), the positives are the same.
    * KG: entities other than items and relations are numbered in order of first appearance
      in ``kg`` (head before tail), giving the published ``kg_final.txt``.

    Rows are grouped by user, positives (in file order) before negatives.

    Raises:
        DataFormatError: the rating file's header lacks ``columns`` (line 1, that field), a
        malformed line (file, line, field).
    """
    folder = Path(folder)
    p = folder / ratings
    with field_on_empty(columns[0]):
        text = read_text(p)
    header = text.split("\n", 1)[0].rstrip("\r").split("\t")
    for j, c in enumerate(columns):
        got = header[j] if j < len(header) else None
        if got != c:
            what = "missing column" if got is None else f"misnamed column {got!r}"
            raise DataFormatError(p, 1, c, f"{what}: header is {header}, expected {list(columns)}")
    rt = fast_columns(p, ((columns[0], "int"), (columns[1], "str"), (columns[2], "float")), sep="\t", skip=1, text=text)
    imap = read_item_map(folder / item_map)
    n_items = len(imap["item"])
    item_index = pd.Index(imap["item"])
    if not item_index.is_unique:
        i = int(np.flatnonzero(item_index.duplicated())[0])
        raise DataFormatError(folder / item_map, i + 1, "item", f"item {imap['item'][i]!r} listed twice")
    items_all = item_index.get_indexer(rt[columns[1]].astype(str))
    keep = items_all >= 0
    raw_users, items, rating = rt[columns[0]][keep], items_all[keep], rt[columns[2]][keep]
    pos = rating >= threshold
    user_codes, user_uniq = pd.factorize(raw_users[pos])  # order of first positive row
    n_users = len(user_uniq)
    pos_pairs = pd.DataFrame({"u": user_codes, "i": items[pos]}).drop_duplicates()
    pu, pi = pos_pairs["u"].to_numpy(np.int64), pos_pairs["i"].to_numpy(np.int64)
    neg_u_raw = pd.Index(user_uniq).get_indexer(raw_users[~pos])
    excl = (neg_u_raw[neg_u_raw >= 0], items[~pos][neg_u_raw >= 0])
    nu, ni = draw_unrated_items(pu, pi, n_users, n_items, seed=seed, exclude=excl)
    users = np.concatenate([pu, nu])
    order = np.argsort(users, kind="stable")
    inter = np.stack([users, np.concatenate([pi, ni])], 1)[order]
    label = np.concatenate([np.ones(len(pu), np.int64), np.zeros(len(nu), np.int64)])[order]

    raw = fast_columns(folder / kg, RAW_KG_FIELDS, sep="\t")
    M = len(raw["head"])
    seq = np.stack([raw["head"], raw["tail"]], 1).ravel()  # head before tail, line by line
    known = pd.Index(imap["entity"])
    first = pd.unique(seq)
    new = first[known.get_indexer(first) < 0]
    ent_index = pd.Index(np.concatenate([imap["entity"], new]))
    ids = ent_index.get_indexer(seq)
    rel_codes, rel_names = pd.factorize(raw["relation"])
    triples = np.stack([ids[0::2], rel_codes.astype(np.int64), ids[1::2]], 1) if M else np.zeros((0, 3), np.int64)
    entity_ids = [str(x) for x in imap["item"]] + [f"entity:{x}" for x in new]
    data = KGRecData(
        name=name, n_users=n_users, n_items=n_items, n_entities=len(ent_index),
        interactions=torch.from_numpy(inter.astype(np.int64)), label=torch.from_numpy(label),
        triples=torch.from_numpy(triples.astype(np.int64)), relation_names=[str(x) for x in rel_names],
        user_ids=[str(x) for x in user_uniq], item_ids=entity_ids[:n_items], entity_ids=entity_ids,
    )
    data.validate()
    return data
