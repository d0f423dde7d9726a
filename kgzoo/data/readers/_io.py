"""Fast, strict table reading shared by every reader.

The fast path is pandas' C parser (or one ``numpy`` conversion for id lists); when it
fails, a slow line-by-line scan finds the first bad line and raises
:class:`DataFormatError` naming the file, the 1-based line and the field. Nothing is
skipped silently: a malformed line is always an error.
"""
from __future__ import annotations

import contextlib
import contextvars
import io
import math
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd

from ..download import sha256_bytes


class DataFormatError(ValueError):
    """Malformed input: names the file, 1-based line number and field.

    The message reads ``"<file>, line <n>, field '<f>': <what>"``; for a fault of the whole file
    (``line=0``) it names no line: ``"<file>, field '<f>': <what>"``.

    Attributes:
        path: the file. line: 1-based line number (0 when the whole file is at fault).
        field: the column or field name, or ``None``.
    """

    def __init__(self, path: str | Path, line: int, field: str | None, message: str) -> None:
        self.path, self.line, self.field = str(path), int(line), field
        where = f"{self.path}, line {self.line}" if self.line > 0 else self.path  # 0: no line to name
        what = f", field {field!r}" if field else ""
        super().__init__(f"{where}{what}: {message}")


_KIND = {"int": np.int64, "float": np.float64, "str": object}


#: the files read inside :func:`recording_reads` (resolved path -> sha256 of the bytes read)
_READS: contextvars.ContextVar[dict[Path, str] | None] = contextvars.ContextVar("kgzoo_reads", default=None)


@contextlib.contextmanager
def recording_reads() -> Iterator[dict[Path, str]]:
    """Record every file a reader reads in this block: yields a dict, resolved path -> sha256
    (hex) of the bytes read, filled as the block runs (nested blocks record into their own dict
    and the enclosing one).

    This is how a dataset's fingerprint follows its contents (DESIGN.md, "EvalProtocol"): every
    reader of :mod:`kgzoo.data.readers` reads its files through :func:`read_bytes`, so the
    record holds exactly the files a build read, whatever the builder.
    """
    outer = _READS.get()
    log: dict[Path, str] = {}
    token = _READS.set(log)
    try:
        yield log
    finally:
        _READS.reset(token)
        if outer is not None:
            outer.update(log)


def read_bytes(path: str | Path) -> bytes:
    """The file's bytes; inside :func:`recording_reads` its sha256 is recorded.

    Raises:
        FileNotFoundError: no such file.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    raw = p.read_bytes()
    log = _READS.get()
    if log is not None:
        log[p.resolve()] = sha256_bytes(raw)
    return raw


def read_text(path: str | Path, encoding: str = "utf-8") -> str:
    """The file's text (read through :func:`read_bytes`, so recorded for fingerprints).

    Raises:
        FileNotFoundError: no such file. DataFormatError: the file is empty or not ``encoding``.
    """
    p = Path(path)
    raw = read_bytes(p)
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataFormatError(p, line, None, f"not valid {encoding} text ({e.reason})") from None
    if not text.strip():
        raise DataFormatError(p, 1, None, "empty file")
    return text


def _split(line: str, sep: str | None) -> list[str]:
    return line.split(sep) if sep is not None else line.split()


def _check_value(path: Path, lineno: int, name: str, kind: str, value: str) -> None:
    if kind == "int":
        try:
            int(value)
        except ValueError:
            raise DataFormatError(path, lineno, name, f"expected an integer id, got {value!r}") from None
    elif kind == "float":
        try:
            ok = math.isfinite(float(value))
        except ValueError:
            ok = False
        if not ok:
            raise DataFormatError(path, lineno, name, f"expected a finite number, got {value!r}") from None
    elif kind == "str" and value == "":
        raise DataFormatError(path, lineno, name, "empty value")


def scan_for_error(path: Path, text: str, fields: Sequence[tuple[str, str]], sep: str | None,
                   skip: int, exact: bool) -> None:
    """Slow path: raise :class:`DataFormatError` at the first line that breaks ``fields``."""
    for i, line in enumerate(text.splitlines()[skip:], start=skip + 1):
        if not line.strip():
            raise DataFormatError(path, i, None, "empty line")
        parts = _split(line, sep)
        if len(parts) < len(fields):
            missing = fields[len(parts)][0]
            raise DataFormatError(path, i, missing, f"truncated line: {len(parts)} fields, expected {len(fields)}")
        if exact and len(parts) > len(fields):
            raise DataFormatError(path, i, None, f"{len(parts)} fields, expected {len(fields)}")
        for (name, kind), value in zip(fields, parts):
            _check_value(path, i, name, kind, value.strip() if sep is not None and kind != "str" else value)


def read_columns(path: str | Path, fields: Sequence[tuple[str, str]], sep: str | None = None,
                 skip: int = 0, exact: bool = True, text: str | None = None) -> dict[str, np.ndarray]:
    """Read a delimited file of fixed columns into numpy arrays.

    Args:
        path: the file. fields: ``(name, kind)`` per column, kind ``"int"``, ``"float"`` or ``"str"``.
        sep: ``None`` for any whitespace, else the delimiter (``"\\t"``).
        skip: header lines to skip. exact: extra columns are an error (else ignored).
        text: the file's text when the caller already read it.

    Returns:
        name -> array ``[rows]`` (int64, float64 or object).

    Raises:
        DataFormatError: empty file, truncated line, non-numeric id, extra field (naming
        file, line and field). FileNotFoundError: no such file.
    """
    p = Path(path)
    text = read_text(p) if text is None else text
    names = [f[0] for f in fields]
    try:
        if sep is None:
            df = pd.read_csv(io.StringIO(text), sep=r"\s+", header=None, skiprows=skip, dtype=str,
                             engine="c", na_filter=False, skip_blank_lines=False)
        else:
            df = pd.read_csv(io.StringIO(text), sep=sep, header=None, skiprows=skip, dtype=str,
                             engine="c", na_filter=False, quoting=3, skip_blank_lines=False)
        if df.shape[1] < len(fields) or (exact and df.shape[1] > len(fields)):
            raise ValueError("column count")
        out: dict[str, np.ndarray] = {}
        if (df.iloc[:, : len(fields)] == "").any().any() or df.iloc[:, : len(fields)].isna().any().any():
            raise ValueError("missing field")  # a short line: pandas pads it with "" (na_filter off)
        for j, (name, kind) in enumerate(fields):
            col = df.iloc[:, j]
            if kind == "str":
                if (col == "").any():
                    raise ValueError("empty")
                out[name] = col.to_numpy(dtype=object)
            else:
                out[name] = pd.to_numeric(col, errors="raise").to_numpy(dtype=_KIND[kind])
                if kind == "int" and not np.issubdtype(pd.to_numeric(col).dtype, np.integer):
                    raise ValueError("not integer")
                if kind == "float" and not np.isfinite(out[name]).all():
                    raise ValueError("NaN or infinite")
        if len(df) == 0:
            raise ValueError("no rows")
        return out
    except (ValueError, pd.errors.ParserError):
        scan_for_error(p, text, fields, sep, skip, exact)
        if len(text.splitlines()) <= skip:
            raise DataFormatError(p, skip, None, "no data rows after the header") from None
        raise DataFormatError(p, 0, None, "could not be parsed as " + ", ".join(names)) from None


def read_id_lists(path: str | Path, key: str = "user", value: str = "item") -> tuple[np.ndarray, np.ndarray]:
    """Read a KGAT/KGIN list file: each line ``key v1 v2 ...`` (whitespace separated).

    Returns:
        ``(keys, values)``: int64 arrays ``[pairs]``, one entry per (key, value) pair; a line
        with a key and no values contributes nothing.

    Raises:
        DataFormatError: empty file, empty line or non-integer token (file, line, field).
    """
    p = Path(path)
    text = read_text(p)
    lines = text.splitlines()
    try:
        flat = np.array(text.replace("\n", " -1 ").split(), dtype=np.int64)
        if (flat < -1).any():
            raise ValueError("negative")
        ends = np.flatnonzero(flat == -1)
        n_lines = len(ends) + (0 if flat.size and flat[-1] == -1 else 1)
        if n_lines != len(lines):
            raise ValueError("line count")
        line_of = np.cumsum(flat == -1) - (flat == -1)
        tok = flat != -1
        starts = np.concatenate([[0], ends + 1])[:n_lines]
        if (starts >= len(flat)).any() or (flat[np.minimum(starts, len(flat) - 1)] == -1).any():
            raise ValueError("empty line")
        is_key = np.zeros(len(flat), dtype=bool)
        is_key[starts] = True
        keys_per_line = flat[starts]
        vals = tok & ~is_key
        return keys_per_line[line_of[vals]], flat[vals]
    except ValueError:
        for i, line in enumerate(lines, start=1):
            parts = line.split()
            if not parts:
                raise DataFormatError(p, i, key, "empty line")
            for j, v in enumerate(parts):
                try:
                    if int(v) < 0:
                        raise ValueError
                except ValueError:
                    raise DataFormatError(p, i, key if j == 0 else f"{value} {j}",
                                          f"expected a non-negative integer id, got {v!r}") from None
        raise DataFormatError(p, 0, None, "could not be parsed") from None


def read_recbole(path: str | Path, required: Sequence[str], optional: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Read a RecBole atomic file (``.inter .item .user .kg .link``): a tab-separated table
    whose header names each column as ``name:type`` (type ``token``, ``token_seq``,
    ``float``, ``float_seq``).

    Args:
        required: column names (without ``:type``) that must be present.
        optional: columns read when present.

    Returns:
        name -> array: ``float`` columns as float64; ``token`` and ``token_seq`` as str objects.

    Raises:
        DataFormatError: empty file, a header field without ``:type`` or with an unknown
        type, a missing required column (line 1, that field), a truncated row or a
        non-numeric float (naming the row's line and the field).
    """
    p = Path(path)
    text = read_text(p)
    header = text.split("\n", 1)[0].rstrip("\r").split("\t")
    cols: dict[str, tuple[int, str]] = {}
    for j, h in enumerate(header):
        if ":" not in h:
            raise DataFormatError(p, 1, h, "header field is not of the form name:type")
        name, typ = h.rsplit(":", 1)
        if typ not in ("token", "token_seq", "float", "float_seq"):
            raise DataFormatError(p, 1, h, f"unknown RecBole type {typ!r}")
        cols[name] = (j, typ)
    for name in required:
        if name not in cols:
            raise DataFormatError(p, 1, name, f"missing column (header has {', '.join(cols)})")
    fields = [(h.rsplit(":", 1)[0], "float" if h.endswith(":float") else "str") for h in header]
    # token_seq fields may be empty (e.g. a movie with no genre): read as str, allow ""
    want = [n for n in list(required) + [o for o in optional if o in cols]]
    try:
        df = pd.read_csv(io.StringIO(text), sep="\t", header=0, dtype=str, engine="c",
                         na_filter=False, quoting=3, skip_blank_lines=False)
        if df.shape[1] != len(header) or df.isna().any().any():
            raise ValueError("shape")
        # the C parser pads a short row with "": every row must hold exactly len(header) - 1 tabs
        if text.count("\t") != (len(header) - 1) * len(text.splitlines()):
            raise ValueError("row length")
        out: dict[str, np.ndarray] = {}
        for n in want:
            j, typ = cols[n]
            col = df.iloc[:, j]
            if typ == "float":
                out[n] = pd.to_numeric(col, errors="raise").to_numpy(dtype=np.float64)
                if not np.isfinite(out[n]).all():
                    raise ValueError("NaN or infinite")
            else:
                if typ == "token" and (col == "").any():
                    raise ValueError("empty token")
                out[n] = col.to_numpy(dtype=object)
        if len(df) == 0:
            raise DataFormatError(p, 1, None, "no data rows after the header")
        return out
    except (ValueError, pd.errors.ParserError) as e:
        if isinstance(e, DataFormatError):
            raise
        lines = text.splitlines()
        for i, line in enumerate(lines[1:], start=2):
            parts = line.split("\t")
            if len(parts) < len(header):
                raise DataFormatError(p, i, fields[len(parts)][0],
                                      f"truncated line: {len(parts)} fields, expected {len(header)}")
            if len(parts) > len(header):
                raise DataFormatError(p, i, None, f"{len(parts)} fields, expected {len(header)}")
            for (name, kind), value in zip(fields, parts):
                if name in want:
                    if cols[name][1] == "token" and value == "":
                        raise DataFormatError(p, i, name, "empty token")
                    if kind == "float":
                        _check_value(p, i, name, "float", value)
        raise DataFormatError(p, 0, None, "could not be parsed") from None


def factorize(values: np.ndarray, order: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
    """Map raw ids to ``0..n-1`` in order of first appearance.

    Args:
        values: raw ids ``[rows]``. order: raw ids that take the first codes, in this order
            (e.g. the item list, so that items are entities ``0..I-1``).

    Returns:
        ``(codes int64 [rows], raw ids list[str] indexed by code)``.
    """
    vals = np.asarray(values).astype(str)
    if order is not None:
        order = np.asarray(order).astype(str)
        uniq = pd.unique(np.concatenate([order, vals]))
    else:
        uniq = pd.unique(vals)
    index = pd.Index(uniq)
    return index.get_indexer(vals).astype(np.int64), [str(x) for x in uniq]


#: the least share of items whose key an item-text source must match (:func:`check_text_match`)
MIN_TEXT_MATCH = 0.5


def check_text_match(path: str | Path, field: str, matched: int, n_items: int,
                     min_match: float = MIN_TEXT_MATCH) -> float:
    """The share of items that an item-text source has a row for; below ``min_match`` an error.

    A text file keyed by another id space (another dataset's item ids) matches few items and
    would attach no text, or the wrong text, without a word; the share says so.

    Args:
        path: the text source. field: its key field. matched: items with a text row.
        n_items: items of the dataset. min_match: the least share accepted (``0`` accepts any).

    Returns:
        ``matched / n_items`` (1.0 for a dataset without items).

    Raises:
        DataFormatError: the share is below ``min_match`` (line 0, ``field``; the message gives
        the share and how to accept it).
    """
    rate = matched / n_items if n_items else 1.0
    if rate < min_match:
        accept = math.floor(rate * 100) / 100  # rounded down: a value that accepts this rate
        raise DataFormatError(path, 0, field, f"item text keys match {matched:,} of {n_items:,} items ({rate:.1%}), "
                              f"below the required {min_match:.0%}: keys of another id space? Pass "
                              f"min_text_match={accept:.2f} (or 0) to accept it (kgzoo data stats|import PATH "
                              f"--min-text-match {accept:.2f})")
    return rate


def check_kg_reaches_items(path: str | Path, heads: np.ndarray, tails: np.ndarray, n_items: int,
                           tokens: tuple[Sequence[Any], Sequence[Any]] | None = None,
                           item_ids: Sequence[str] | None = None) -> None:
    """A KG (entity ids, items ``0..n_items-1``) of at least one triple must touch an item.

    Args:
        path: the KG file. heads, tails: entity ids ``[M]``. n_items: items of the dataset.
        tokens: the heads and tails as the file writes them, for a format of string tokens
            (whose entity ids are kgzoo's own, so the message names the file's tokens and
            ``item_ids``, the items' raw ids, instead); ``None``: a format of integer ids whose
            items are ids ``0..n_items-1`` of the file itself.

    Raises:
        DataFormatError: no triple has an item as head or tail (no line, field ``head``): the KG
        is of another id space, or its item links (``.link``, an item map) are missing.
    """
    h, t = np.asarray(heads), np.asarray(tails)
    if h.size and not ((h < n_items).any() or (t < n_items).any()):
        if tokens is None:
            what = f"has an item (entity id < {n_items:,}) as head or tail"
        else:
            like = ", ".join(repr(str(i)) for i in list(item_ids or [])[:3])
            what = (f"names an item as head or tail (the first: head {str(tokens[0][0])!r}, tail "
                    f"{str(tokens[1][0])!r}; items are named like {like})")
        raise DataFormatError(path, 0, "head", f"none of the {h.size:,} triples {what}: the KG reaches no item "
                              "(another id space, or item links missing?)")


def link_entities(heads: np.ndarray, tails: np.ndarray, link_entity: np.ndarray, link_item: np.ndarray,
                  n_items: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Entity ids of a KG given by raw entity tokens, items ``0..n_items-1`` first.

    An entity token that an item link names (``link_entity[k]`` is item ``link_item[k]``; a
    token linked twice takes its last link) *is* that item; every other token becomes a new
    entity after the items, in order of first appearance (heads before tails).

    Args:
        heads, tails: raw entity tokens ``[M]`` (compared as str). link_entity: raw tokens
            ``[L]``. link_item: LongArray ``[L]`` item index of each link.

    Returns:
        ``(head ids int64 [M], tail ids int64 [M], raw tokens of the entities after the items)``.
    """
    M = len(heads)
    codes, uniq = factorize(np.concatenate([np.asarray(heads), np.asarray(tails)]))
    uniq_arr = np.array(uniq, dtype=object)
    tokens = np.asarray(link_entity).astype(str)
    last = ~pd.Index(tokens).duplicated(keep="last")
    link_pos = pd.Index(tokens[last]).get_indexer(uniq_arr.astype(str))
    is_item = link_pos >= 0
    new_id = np.empty(len(uniq), dtype=np.int64)
    new_id[is_item] = np.asarray(link_item, dtype=np.int64)[last][link_pos[is_item]]
    new_id[~is_item] = n_items + np.arange(int((~is_item).sum()))
    ent = new_id[codes]
    return ent[:M], ent[M:], [str(u) for u in uniq_arr[~is_item].tolist()]
