"""A user's own data as a kgzoo dataset: pandas frames (:func:`build_from_frames`, and
:func:`from_frames`, which registers the result) or the files of a folder, which :mod:`kgzoo.data.folders` reads into
the same frames (one home for turning raw-id tables into a :class:`KGRecData`).

Frames and their columns (raw ids of any type; they are compared as text and kept as raw ids):

* ``interactions``: ``user, item`` and optionally ``rating`` (float), ``timestamp`` (integer
  seconds, or a datetime column, converted to seconds since the epoch) and ``label`` (0/1,
  for click data);
* ``triples``: ``head, relation, tail`` (raw entity ids); ``links``: ``item, entity`` (which KG
  entity an item is). Without ``links``, a KG entity whose id equals an item's id is that item;
* ``item_text``: ``item, text``; ``user_features`` / ``item_features``: ``user`` / ``item`` and
  one column per categorical attribute; ``social``: ``user, friend``.

Users are numbered in order of first appearance in ``interactions``, items likewise (items
are entities ``0..I-1``), other entities follow in order of first appearance in ``triples``.
Rows of the side frames (text, features, social) whose user or item has no interaction are
dropped and counted in :attr:`KGRecData.cleaning`, as is a text or feature row repeated whole; an
item (user) with two text or feature rows of other values is an error naming the second row's line
and the field that differs; everything else that is wrong is an error,
a column of no known name in a frame other than the features included (it would be ignored).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from .kgdata import KGRecData, content_checksum
from .protocol import EvalProtocol, default_protocol_for
from .readers._io import (MIN_TEXT_MATCH, DataFormatError, check_kg_reaches_items, check_text_match, factorize,
                          link_entities)
from .readers.features import encode_categorical
from .spec import DatasetSpec, register_dataset

#: the frames of :func:`build_from_frames`: (required columns, optional columns)
COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "interactions": (("user", "item"), ("rating", "timestamp", "label")),
    "triples": (("head", "relation", "tail"), ()),
    "links": (("item", "entity"), ()),
    "item_text": (("item", "text"), ()),
    "user_features": (("user",), ()),
    "item_features": (("item",), ()),
    "social": (("user", "friend"), ()),
}
#: the frames whose other columns are attributes (one per column), not unknown columns
FEATURE_FRAMES = ("user_features", "item_features")


@dataclass(frozen=True)
class Origin:
    """Where a frame came from, for error messages: ``path`` (a file, or ``"<name frame>"``) and
    ``header`` (1 when row 0 of the frame is line 2 of the file, a header line above it)."""

    path: str
    header: int = 0

    def line(self, row: int) -> int:
        """The 1-based line of frame row ``row`` (0-based)."""
        return row + 1 + self.header


def _origin(origins: Mapping[str, Origin] | None, frame: str) -> Origin:
    return (origins or {}).get(frame) or Origin(f"<{frame} frame>")


def _check_frame(df: Any, frame: str, where: Origin) -> pd.DataFrame:
    """``df`` as a DataFrame with its required columns, no null in them, its rows numbered 0..n-1.

    Raises:
        DataFormatError: not a DataFrame (line 0), a missing required column or, in a frame of
        fixed columns (not the features), a column that is neither required nor optional (line 1
        when the source has a header, else 0: a ``score`` or ``time`` column was dropped without
        a word), a null (NaN/None) in a required column (its line), no rows.
    """
    if not isinstance(df, pd.DataFrame):
        raise DataFormatError(where.path, 0, None, f"{frame}: expected a pandas DataFrame, got {type(df).__name__}")
    required, optional = COLUMNS[frame]
    for c in required:
        if c not in df.columns:
            raise DataFormatError(where.path, where.header, c, f"{frame}: missing column {c!r} "
                                  f"(columns: {', '.join(map(str, df.columns))}; expected {', '.join(required)})")
    if frame not in FEATURE_FRAMES:
        extra = [c for c in df.columns if c not in required and c not in optional]
        if extra:
            raise DataFormatError(where.path, where.header, str(extra[0]),
                                  f"{frame}: unknown column {extra[0]!r}; its columns are {', '.join(required)}"
                                  + (f" and optionally {', '.join(optional)}" if optional else "")
                                  + " (rename it to one of them, or drop it: it would be ignored)")
    if len(df) == 0:
        raise DataFormatError(where.path, where.header + 1, required[0], f"{frame}: no rows")
    df = df.reset_index(drop=True)
    for c in required:
        bad = df[c].isna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataFormatError(where.path, where.line(i), c, f"{frame}: missing value")
        if c not in NOT_IDS:
            _check_id_forms(df[c], frame, c, where)
    return df


#: required columns that hold no ids (the rest are raw user, item or entity ids)
NOT_IDS = ("relation", "text")


#: an integer id as text, and one written as a float (``5`` and ``5.0``)
INTEGER_ID, FLOAT_WRITTEN_ID = r"[+-]?\d+", r"[+-]?\d+\.0+"


def has_integer_ids(ids: Sequence[str] | pd.Series) -> bool:
    """Whether any of ``ids`` (raw ids as text) is an integer written as one (``"5"``)."""
    return bool(len(ids)) and bool(pd.Series(ids, dtype=str).str.fullmatch(INTEGER_ID).any())


def _check_id_forms(ids: pd.Series, frame: str, col: str, where: Origin, known_integers: bool = False) -> None:
    """Refuse an id column that holds integers and integers written as floats (``5`` and
    ``5.0``: a float cell of a spreadsheet, an id column upcast by a NaN): ids are compared as
    text, so ``5.0`` would be another user or item than ``5``, silently. ``known_integers``: the
    ids the column's ids join hold integers (an update's base ids, :func:`has_integer_ids`,
    :func:`kgzoo.data.extend.extend_data`).

    Raises:
        DataFormatError: naming the line of the first float-written id.
    """
    s = ids.astype(str)
    floats = s.str.fullmatch(FLOAT_WRITTEN_ID).to_numpy()
    if floats.any() and (known_integers or has_integer_ids(s)):
        i = int(np.flatnonzero(floats)[0])
        raise DataFormatError(where.path, where.line(i), col, f"{frame}: id {s.iloc[i]!r} is an integer written as a "
                              f"float where the other ids are integers; it would be another id than "
                              f"{s.iloc[i].split('.')[0]!r} (ids are compared as text): write it as one")


def _numbers(df: pd.DataFrame, col: str, where: Origin, integer: bool) -> np.ndarray:
    """Column ``col`` as finite float64 (or int64 where ``integer``).

    Raises:
        DataFormatError: a value that is not a finite number, or not a whole number where
        ``integer`` (naming its line and the column).
    """
    s = df[col]
    if pd.api.types.is_datetime64_any_dtype(s):
        if s.isna().any():
            i = int(np.flatnonzero(s.isna().to_numpy())[0])
            raise DataFormatError(where.path, where.line(i), col, "missing time")
        naive = s.dt.tz_convert("UTC").dt.tz_localize(None) if s.dt.tz is not None else s
        return ((naive - pd.Timestamp(0)) // pd.Timedelta(seconds=1)).to_numpy(np.int64)
    v = pd.to_numeric(s, errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(v)
    if integer:
        bad |= np.isfinite(v) & (v != np.round(v))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        what = "a whole number" if integer else "a finite number"
        got = ("a missing value (an empty field, or a row with fewer fields than the header)"
               if s.iloc[i] is None or (isinstance(s.iloc[i], float) and np.isnan(s.iloc[i])) else repr(s.iloc[i]))
        raise DataFormatError(where.path, where.line(i), col, f"expected {what}, got {got}")
    return v.astype(np.int64) if integer else v


def _index_of(raw: np.ndarray, index: pd.Index) -> np.ndarray:
    return index.get_indexer(np.asarray(raw).astype(str))


def build_from_frames(interactions: pd.DataFrame, triples: pd.DataFrame | None = None,
                      links: pd.DataFrame | None = None, item_text: pd.DataFrame | None = None,
                      user_features: pd.DataFrame | None = None, item_features: pd.DataFrame | None = None,
                      social: pd.DataFrame | None = None, name: str = "frames",
                      min_text_match: float = MIN_TEXT_MATCH,
                      origins: Mapping[str, Origin] | None = None) -> KGRecData:
    """A raw :class:`KGRecData` (before cleaning) from pandas frames (columns: module docstring).

    Args:
        min_text_match: the least share of items that ``item_text`` must name
            (:func:`~kgzoo.data.readers._io.check_text_match`; ``0`` accepts any).
        origins: frame name -> :class:`Origin` (the file it was read from) for error messages.

    Returns:
        ``KGRecData`` with ``user_ids``/``item_ids``/``entity_ids`` the raw ids as str.

    Raises:
        DataFormatError (file or ``<frame>``, line, field): a frame that is not a DataFrame, a
        missing required column, a missing value, a rating or timestamp that is not a number, a
        label other than 0/1, ``links`` without ``triples``, a link to an item without
        interactions, a KG that reaches no item, text for fewer than ``min_text_match`` of the items,
        an item (user) on two text or feature rows of other values.
    """
    o = {f: _origin(origins, f) for f in COLUMNS}
    x = _check_frame(interactions, "interactions", o["interactions"])
    users, user_ids = factorize(x["user"].to_numpy())
    items, item_ids = factorize(x["item"].to_numpy())
    U, I = len(user_ids), len(item_ids)
    uidx, iidx = pd.Index(user_ids), pd.Index(item_ids)
    kw: dict[str, Any] = {}
    if "rating" in x:
        kw["rating"] = torch.from_numpy(_numbers(x, "rating", o["interactions"], False).astype(np.float32))
    if "timestamp" in x:
        kw["timestamp"] = torch.from_numpy(_numbers(x, "timestamp", o["interactions"], True))
    if "label" in x:
        lab = _numbers(x, "label", o["interactions"], True)
        bad = (lab != 0) & (lab != 1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataFormatError(o["interactions"].path, o["interactions"].line(i), "label", f"label {lab[i]} is not 0 or 1")
        kw["label"] = torch.from_numpy(lab)
    cleaning: dict[str, int] = {}

    def one_per_key(df: pd.DataFrame, frame: str, key: str) -> pd.DataFrame:
        """``df`` with a row repeated whole dropped (counted); a key on two rows of other values is
        an error: which row's text or attributes should the item have? (kept silently, the last won)."""
        vals = df.astype(object).where(df.notna(), "").astype(str)
        keys = vals[key].to_numpy()
        whole = vals.duplicated().to_numpy()
        cleaning[f"{frame}: a row repeating an earlier one"] = int(whole.sum())
        again = pd.Series(keys).duplicated().to_numpy() & ~whole
        if again.any():
            i = int(np.flatnonzero(again)[0])
            first = int(np.flatnonzero(keys == keys[i])[0])
            col = next(c for c in df.columns if c != key and vals[c].iloc[i] != vals[c].iloc[first])
            raise DataFormatError(o[frame].path, o[frame].line(i), str(col),
                                  f"{frame}: {key} {keys[i]!r} repeats line {o[frame].line(first)} with another "
                                  f"{col} ({vals[col].iloc[first]!r}, then {vals[col].iloc[i]!r})")
        return df[~whole]

    def known(df: pd.DataFrame, frame: str, col: str, index: pd.Index, what: str) -> tuple[pd.DataFrame, np.ndarray]:
        """Rows of ``df`` whose ``col`` is a known user/item (the rest counted), and their indices."""
        idx = _index_of(df[col].to_numpy(), index)
        keep = idx >= 0
        cleaning[f"{frame}: rows of {'an' if what == 'item' else 'a'} {what} without interactions"] = int((~keep).sum())
        return df[keep], idx[keep]

    # ---------------------------------------------------------------- KG
    tri = torch.zeros(0, 3, dtype=torch.long)
    relation_names: list[str] = []
    entity_ids = list(item_ids)
    if links is not None and triples is None:
        raise DataFormatError(o["links"].path, 0, None, "links without triples: the KG they link items into is missing")
    if triples is not None:
        t = _check_frame(triples, "triples", o["triples"])
        if links is not None:
            lk = _check_frame(links, "links", o["links"])
            link_item = _index_of(lk["item"].to_numpy(), iidx)
            if (link_item < 0).any():
                i = int(np.flatnonzero(link_item < 0)[0])
                raise DataFormatError(o["links"].path, o["links"].line(i), "item",
                                      f"item {lk['item'].iloc[i]!r} has no interactions")
            link_entity = lk["entity"].to_numpy()
        else:  # an entity named like an item is that item
            link_entity, link_item = np.array(item_ids, dtype=object), np.arange(I)
        h, tl, others = link_entities(t["head"].to_numpy(), t["tail"].to_numpy(), link_entity, link_item, I)
        check_kg_reaches_items(o["triples"].path, h, tl, I, (t["head"].to_numpy(), t["tail"].to_numpy()), item_ids)
        rel, relation_names = factorize(t["relation"].to_numpy())
        tri = torch.from_numpy(np.stack([h, rel, tl], 1))
        entity_ids += others

    # ---------------------------------------------------------------- side frames
    text = None
    if item_text is not None:
        tx = one_per_key(_check_frame(item_text, "item_text", o["item_text"]), "item_text", "item")
        rows, idx = known(tx, "item_text", "item", iidx, "item")
        check_text_match(o["item_text"].path, "item", len(np.unique(idx)), I, min_text_match)
        arr = np.full(I, "", dtype=object)
        arr[idx] = rows["text"].astype(str).to_numpy(dtype=object)
        text = arr.tolist()
    feats: dict[str, dict[str, torch.Tensor]] = {"user": {}, "item": {}}
    vocab: dict[str, list[str]] = {}
    for kind, df, index, n in (("user", user_features, uidx, U), ("item", item_features, iidx, I)):
        if df is None:
            continue
        frame = f"{kind}_features"
        f = one_per_key(_check_frame(df, frame, o[frame]), frame, kind)
        rows, idx = known(f, frame, kind, index, kind)
        for col in [c for c in f.columns if c != kind]:
            vals = np.full(n, "", dtype=object)
            vals[idx] = rows[col].fillna("").astype(str).to_numpy(dtype=object)  # "" = unknown (code 0)
            feats[kind][str(col)], vocab[str(col)] = encode_categorical(vals)
    if social is not None:
        s = _check_frame(social, "social", o["social"])
        a, b = _index_of(s["user"].to_numpy(), uidx), _index_of(s["friend"].to_numpy(), uidx)
        keep = (a >= 0) & (b >= 0)
        cleaning["social: rows of a user without interactions"] = int((~keep).sum())
        kw["social"] = torch.from_numpy(np.stack([a[keep], b[keep]], 1).astype(np.int64))

    data = KGRecData(
        name=name, n_users=U, n_items=I, n_entities=len(entity_ids),
        interactions=torch.from_numpy(np.stack([users, items], 1)), triples=tri, relation_names=list(relation_names),
        item_text=text, user_features=feats["user"], item_features=feats["item"], feature_vocab=vocab,
        user_ids=list(user_ids), item_ids=list(item_ids), entity_ids=entity_ids, cleaning=cleaning, **kw,
    )
    data.validate()
    return data


def frames_origin(paths: Mapping[str, str | Path], header: bool = True) -> dict[str, Origin]:
    """:class:`Origin` of each frame read from a file (``header``: the file's first line names the columns)."""
    return {k: Origin(str(p), int(header)) for k, p in paths.items()}


def from_frames(interactions: pd.DataFrame, triples: pd.DataFrame | None = None, links: pd.DataFrame | None = None,
                item_text: pd.DataFrame | None = None, user_features: pd.DataFrame | None = None,
                item_features: pd.DataFrame | None = None, social: pd.DataFrame | None = None,
                name: str | None = None, protocol: EvalProtocol | dict | None = None,
                min_text_match: float = MIN_TEXT_MATCH) -> DatasetSpec:
    """A dataset from pandas frames with raw ids of any type, registered under ``name``.

    The frames and their columns are those of :func:`kgzoo.data.frames.build_from_frames`
    (``interactions``: ``user, item[, rating, timestamp, label]``; ``triples``: ``head, relation,
    tail``; ``links``: ``item, entity``; ``item_text``: ``item, text``; features: ``user``/``item``
    and attribute columns; ``social``: ``user, friend``). Loading applies the catalogue's
    cleaning (:func:`~kgzoo.data.cleaning.standard_clean`); the fingerprint follows the contents
    (:func:`~kgzoo.data.kgdata.content_checksum` of the frames as read).

    Args:
        name: the dataset's name (default ``"frames-"`` and 8 hex digits of the contents' sha256).
        protocol: default protocol (an :class:`EvalProtocol` or its fields); default ``ctr`` 6:2:2
            for labelled rows, else ``topk`` 8:1:1 (:func:`~kgzoo.data.protocol.default_protocol_for`).
        min_text_match: the least share of items ``item_text`` must name (``0`` accepts any).

    Returns:
        The registered :class:`DatasetSpec`: ``spec.name`` (or ``spec`` itself) works wherever a
        catalogue name does (``create_datamodule``, bench cells, ``kgzoo fit`` in this process).

    Raises:
        DataFormatError: a malformed frame (frame, row as line, column). ValueError: ``name`` is
        registered with other contents.
    """
    raw = build_from_frames(interactions, triples, links, item_text, user_features, item_features, social,
                            name=name or "frames", min_text_match=min_text_match)
    sha = content_checksum(raw)
    name = name or f"frames-{sha[:8]}"
    raw.name = name
    if isinstance(protocol, dict):
        protocol = EvalProtocol(**protocol)
    spec = DatasetSpec(name=name, domain="user", description=f"from_frames: {raw!r}", files=(),
                       builder=lambda folder: raw, licence="the user's own data", citation="",
                       protocol=protocol or default_protocol_for(raw), origin=f"frames:{sha}")
    return register_dataset(spec)
