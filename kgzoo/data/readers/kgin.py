"""Reader for the KGAT / KGIN file format.

Format (Wang et al., "KGAT: Knowledge Graph Attention Network for Recommendation", KDD 2019;
Wang et al., "Learning Intents behind Interactions with Knowledge Graph for Recommendation"
(KGIN), WWW 2021), one folder holding:

* ``train.txt`` / ``valid.txt`` / ``test.txt``: one line per user, ``user item item ...``
  (whitespace separated, ids already remapped; a line may hold the user alone);
* ``kg_final.txt``: ``head relation tail`` per line, entity ids in which items are entities
  ``0..n_items-1``;
* optional id lists with a header line: ``user_list.txt`` and ``relation_list.txt``
  (``org_id remap_id``), ``entity_list.txt`` (``org_id remap_id`` or ``freebase_id remap_id``;
  labels may be quoted and hold spaces), ``item_list.txt`` (``org_id remap_id freebase_id``,
  separated by spaces or by tabs when the header is tab separated).
"""
from __future__ import annotations

import io
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import torch

from ..kgdata import KGRecData
from ._io import (MIN_TEXT_MATCH, DataFormatError, check_kg_reaches_items, check_text_match, read_columns,
                  read_id_lists, read_text, scan_for_error)

_PART = {"train": 0, "valid": 1, "test": 2}
KG_FIELDS = (("head", "int"), ("relation", "int"), ("tail", "int"))


@contextmanager
def field_on_empty(field: str) -> Iterator[None]:
    """Name ``field`` (the first field the file should hold) in an "empty file" error.

    :func:`~kgzoo.data.readers._io.read_text` reports an empty file without a field; every
    reader of this package names the field it expected on line 1 instead.
    """
    try:
        yield
    except DataFormatError as e:
        if e.field is None and "empty file" in str(e):
            raise DataFormatError(e.path, e.line, field, f"empty file (expected {field!r} on line 1)") from None
        raise


def read_list_file(path: str | Path, columns: Sequence[str],
                   first: Sequence[str] = ("org_id", "freebase_id")) -> dict[str, np.ndarray]:
    """Read a KGAT/KGIN id list with a header line.

    Args:
        path: the file. columns: expected header names from the second column on
            (``("remap_id",)`` or ``("remap_id", "freebase_id")``); the first column is the raw
            id and may be named any of ``first``.

    Returns:
        ``{"org_id": str array, "remap_id": int64 array, <other columns>: str arrays}``, rows in
        file order; surrounding double quotes of labels are removed.

    Raises:
        DataFormatError: empty file, header of another layout (line 1, the missing or misnamed
        field), a truncated line, a non-integer or repeated ``remap_id`` (file, line, field).
    """
    p = Path(path)
    with field_on_empty(first[0]):
        text = read_text(p)
    lines = text.splitlines()
    header = lines[0]
    sep = "\t" if "\t" in header else None
    names = header.split(sep)
    if not names or names[0].strip() not in first:
        raise DataFormatError(p, 1, first[0], f"header starts with {names[0] if names else ''!r}, expected one of {list(first)}")
    for j, want in enumerate(columns, start=1):
        got = names[j].strip() if j < len(names) else None
        if got != want:
            what = "missing column" if got is None else f"misnamed column {got!r}"
            raise DataFormatError(p, 1, want, f"{what}: header is {header!r}, expected column {j + 1} {want!r}")
    all_names = ["org_id", *columns]
    body = pd.Series(lines[1:], dtype=object)
    if body.empty:
        raise DataFormatError(p, 2, all_names[0], "no rows after the header")
    n = len(all_names)
    parts = _fast_split(text, sep, n, len(body))
    if parts is None:  # slow path: split each line in Python (and find the bad line below)
        if n == 2 and sep is None:
            parts = body.str.rsplit(n=1, expand=True)  # labels may hold spaces: the id is the last token
        else:
            parts = body.str.split(sep, n=n - 1, expand=True)
    if parts.shape[1] < n or parts.iloc[:, :n].isna().any().any() or (parts.iloc[:, :n] == "").any().any():
        cols = parts.reindex(columns=range(n))
        bad = cols.isna() | (cols == "")
        i = int(np.flatnonzero(bad.any(axis=1).to_numpy())[0])
        j = int(np.flatnonzero(bad.iloc[i].to_numpy())[0])
        raise DataFormatError(p, i + 2, all_names[j], f"truncated line {lines[i + 1]!r}: expected {n} fields {all_names}")
    remap_s = parts.iloc[:, 1].str.strip()
    remap = pd.to_numeric(remap_s, errors="coerce")
    ok = remap.notna().to_numpy() & remap_s.str.fullmatch(r"\d+").to_numpy()
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise DataFormatError(p, i + 2, "remap_id", f"expected a non-negative integer id, got {remap_s.iloc[i]!r}")
    remap_a = remap.to_numpy(dtype=np.int64)
    seen = pd.Series(remap_a).duplicated().to_numpy()
    if seen.any():
        i = int(np.flatnonzero(seen)[0])
        raise DataFormatError(p, i + 2, "remap_id", f"remap_id {remap_a[i]} repeats an earlier line")
    out = {"org_id": _unquote(parts.iloc[:, 0]), "remap_id": remap_a}
    for j, c in enumerate(columns[1:], start=2):
        out[c] = _unquote(parts.iloc[:, j])
    return out


def _unquote(col: pd.Series) -> np.ndarray:
    """Strip whitespace and one pair of surrounding double quotes (only where a value has them)."""
    col = col.str.strip()
    quoted = (col.str.startswith('"') & col.str.endswith('"') & (col.str.len() >= 2)).to_numpy()
    out = col.to_numpy(dtype=object)
    if quoted.any():
        out[quoted] = col[quoted].str.slice(1, -1).to_numpy(dtype=object)
    return out


def _fast_split(text: str, sep: str | None, n: int, rows: int) -> pd.DataFrame | None:
    """The body of a list file as ``n`` str columns with pandas' C parser, or ``None`` when the
    file does not parse cleanly that way (the caller then splits line by line)."""
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep or " ", header=None, skiprows=1, dtype=str, engine="c",
                         na_filter=False, skip_blank_lines=False, quoting=3 if sep == "\t" else 0)
    except (ValueError, pd.errors.ParserError):
        return None
    if df.shape != (rows, n) or df.isna().any().any():
        return None
    return df


def names_by_id(lst: dict[str, np.ndarray] | None, n: int, column: str = "org_id", default: str = "{}") -> np.ndarray:
    """Object array ``[n]``: ``lst[column]`` placed at ``remap_id``, ``default.format(id)`` elsewhere."""
    out = np.array([default.format(i) for i in range(n)], dtype=object)
    if lst is not None:
        keep = lst["remap_id"] < n
        out[lst["remap_id"][keep]] = lst[column][keep]
    return out


def fast_columns(path: str | Path, fields: Sequence[tuple[str, str]], sep: str | None = None, skip: int = 0,
                 text: str | None = None) -> dict[str, np.ndarray]:
    """:func:`~kgzoo.data.readers._io.read_columns` with a faster first try.

    Numeric columns are parsed by pandas' C parser straight into int64/float64; when that
    fails or the shape is off (a truncated or extra field, a blank line, a non-integer id),
    the file is read again by ``read_columns``, whose line scan raises the
    :class:`DataFormatError` naming file, line and field. An empty file names the first field.
    """
    p = Path(path)
    with field_on_empty(fields[0][0]):
        text = read_text(p) if text is None else text
    n_lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    kinds = {"int": np.int64, "float": np.float64, "str": object}
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep or r"\s+", header=None, skiprows=skip, engine="c",
                         dtype={j: kinds[k] for j, (_, k) in enumerate(fields)}, na_filter=False,
                         skip_blank_lines=False, quoting=3)
        ok = df.shape == (n_lines - skip, len(fields)) and n_lines > skip and not df.isna().to_numpy().any()
        if ok:
            out = {name: np.array(df.iloc[:, j].to_numpy()) for j, (name, _) in enumerate(fields)}  # writable copies
            if all(k != "str" or not (out[nm] == "").any() for nm, k in fields) and \
                    _integers_as_written(text, fields, sep, skip):
                return out
    except (ValueError, TypeError, pd.errors.ParserError):
        pass
    # the line scan first: read_columns lets a line missing its last *float* field through (NaN)
    scan_for_error(p, text, fields, sep, skip, exact=True)
    with field_on_empty(fields[0][0]):
        return read_columns(p, fields, sep=sep, skip=skip, exact=True, text=text)


def _integers_as_written(text: str, fields: Sequence[tuple[str, str]], sep: str | None, skip: int) -> bool:
    """Whether every ``int`` field is written as an integer: pandas' C parser reads ``5.0`` into
    an int64 column as 5, so where the text holds a ``.`` or an exponent the int fields are read
    again as text and matched against ``[+-]?digits`` (else the caller's line scan names the line)."""
    ints = [j for j, (_, k) in enumerate(fields) if k == "int"]
    if not ints or not any(c in text for c in ".eE"):
        return True
    df = pd.read_csv(io.StringIO(text), sep=sep or r"\s+", header=None, skiprows=skip, engine="c", usecols=ints,
                     dtype=str, na_filter=False, skip_blank_lines=False, quoting=3)
    return all(df[j].str.fullmatch(r"[+-]?\d+").all() for j in ints)


def read_kg_final(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(head, relation, tail)`` int64 arrays of a ``kg_final.txt`` (``h r t`` per line).

    Raises:
        DataFormatError: empty file, truncated line, non-integer or negative id (file, line, field).
    """
    p = Path(path)
    kg = fast_columns(p, KG_FIELDS, sep=None)
    h, r, t = kg["head"], kg["relation"], kg["tail"]
    for name, a in (("head", h), ("relation", r), ("tail", t)):
        if a.size and a.min() < 0:
            i = int(np.flatnonzero(a < 0)[0])
            raise DataFormatError(p, i + 1, name, f"negative id {a[i]}")
    return h, r, t


def read_kgin(folder: str | Path, name: str = "kgin", parts: Sequence[str] = ("train", "valid", "test"),
              given: bool = True, text_column: str | None = None, all_items: bool = False,
              min_text_match: float = MIN_TEXT_MATCH) -> KGRecData:
    """Read a KGAT/KGIN folder into a :class:`KGRecData`.

    Users keep their ids; their count is the length of ``user_list.txt`` when present, else the
    largest user id + 1 (KGIN's rule), so users without interactions are kept. Items are the
    items that occur in the interaction files (``all_items=False``; the other items of
    ``item_list.txt`` stay plain entities) or every id below ``len(item_list.txt)`` /
    the largest item id + 1 (``all_items=True``, KGIN's rule). Items become entities
    ``0..I-1`` in increasing source id; the other KG entities follow in increasing source id.

    Args:
        parts: which of ``train/valid/test.txt`` to read; missing files are skipped (at least
            one must exist). given: set ``given_split`` (0/1/2) when ``train.txt`` is read; when it
            is absent (a pool of valid + test to be re-split) ``given_split`` stays ``None``.
        text_column: a column of ``item_list.txt`` used as item text (``"freebase_id"`` for MIND's
            entity labels), or ``None``.
        min_text_match: the least share of items that ``item_list.txt`` must name when it gives
            the text (:func:`~._io.check_text_match`).

    ``kg_final.txt`` may be missing (interactions only: no triples); ``entity_list.txt`` or
    ``relation_list.txt`` without it is an error.

    Raises:
        FileNotFoundError: none of the interaction files exists.
        DataFormatError: a malformed file (file, line, field) or an interaction/KG id beyond
            the id lists; an entity or relation list without ``kg_final.txt``; a KG that reaches
            no item; item text for fewer than ``min_text_match`` of the items.
    """
    folder = Path(folder)
    files = [(p, folder / f"{p}.txt") for p in parts if (folder / f"{p}.txt").is_file()]
    if not files:
        raise FileNotFoundError(f"{folder}: none of {', '.join(p + '.txt' for p in parts)}")
    users_l, items_l, part_l = [], [], []
    for part, path in files:
        with field_on_empty("user"):
            u, i = read_id_lists(path, "user", "item")
        users_l.append(u)
        items_l.append(i)
        part_l.append(np.full(len(u), _PART.get(part, 0), dtype=np.int64))
    users, items_src, part_a = np.concatenate(users_l), np.concatenate(items_l), np.concatenate(part_l)

    def opt(fname: str, columns: Sequence[str]) -> dict[str, np.ndarray] | None:
        f = folder / fname
        return read_list_file(f, columns) if f.is_file() else None

    user_list = opt("user_list.txt", ("remap_id",))
    item_list = opt("item_list.txt", ("remap_id", "freebase_id"))
    entity_list = opt("entity_list.txt", ("remap_id",))
    relation_list = opt("relation_list.txt", ("remap_id",))

    max_user = int(users.max()) if users.size else -1
    n_users = len(user_list["org_id"]) if user_list is not None else max_user + 1
    if max_user >= n_users:
        i = int(np.flatnonzero(users >= n_users)[0])
        which = files[int(np.searchsorted(np.cumsum([len(x) for x in users_l]), i, side="right"))][1]
        raise DataFormatError(which, 0, "user", f"user id {users[i]} is not in user_list.txt ({n_users} users)")
    user_ids = names_by_id(user_list, n_users).tolist()

    n_src_items = max(len(item_list["org_id"]) if item_list is not None else 0,
                      int(items_src.max()) + 1 if items_src.size else 0)
    if (folder / "kg_final.txt").is_file():
        h, r, t = read_kg_final(folder / "kg_final.txt")
    else:  # interactions only (a list file without a KG to name is an error below)
        for lst in ("entity_list.txt", "relation_list.txt"):
            if (folder / lst).is_file():
                raise DataFormatError(folder / lst, 0, None, f"{lst} without kg_final.txt: the KG it names is missing")
        h = r = t = np.zeros(0, dtype=np.int64)
    E_src = max(n_src_items, int(max(h.max(), t.max())) + 1 if h.size else 0,
                len(entity_list["org_id"]) if entity_list is not None else 0)
    item_set = np.arange(n_src_items) if all_items else np.unique(items_src)
    is_item = np.zeros(E_src, dtype=bool)
    is_item[item_set] = True
    order = np.concatenate([item_set, np.flatnonzero(~is_item)])  # new id -> source id
    new_of_src = np.empty(E_src, dtype=np.int64)
    new_of_src[order] = np.arange(E_src)
    n_items = len(item_set)

    R = max(len(relation_list["org_id"]) if relation_list is not None else 0, int(r.max()) + 1 if r.size else 0)
    relation_names = names_by_id(relation_list, R, default="r{}").tolist()

    ent_names = names_by_id(entity_list, E_src, default="entity:{}")
    if item_list is not None:  # items are named by their own raw id (news id, product hash)
        keep = item_list["remap_id"] < E_src
        ent_names[item_list["remap_id"][keep]] = item_list["org_id"][keep]
    entity_ids = ent_names[order].tolist()

    item_text = None
    if text_column is not None:
        if item_list is None or text_column not in item_list:
            raise DataFormatError(folder / "item_list.txt", 1, text_column, "item text column not found")
        item_text = names_by_id(item_list, n_src_items, text_column, default="")[item_set].tolist()
        check_text_match(folder / "item_list.txt", "remap_id", int(np.isin(item_set, item_list["remap_id"]).sum()),
                         n_items, min_text_match)

    check_kg_reaches_items(folder / "kg_final.txt", new_of_src[h], new_of_src[t], n_items)
    triples = torch.from_numpy(np.stack([new_of_src[h], r, new_of_src[t]], 1)) if h.size else torch.zeros(0, 3, dtype=torch.long)
    kw = {}
    if given and any(p == "train" for p, _ in files):
        kw["given_split"] = torch.from_numpy(part_a)
    data = KGRecData(
        name=name, n_users=n_users, n_items=n_items, n_entities=E_src,
        interactions=torch.from_numpy(np.stack([users, new_of_src[items_src]], 1)),
        triples=triples, relation_names=relation_names, item_text=item_text,
        user_ids=user_ids, item_ids=entity_ids[:n_items], entity_ids=entity_ids, **kw,
    )
    data.validate()
    return data
