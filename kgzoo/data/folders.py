"""A folder of one's own files as a kgzoo dataset: its layout detected, registered under a name.

:func:`detect_layout` looks at the file names and header lines (it reads no data) and answers
with the first :data:`LAYOUTS` entry that matches:

* ``recbole``: RecBole atomic files ``<prefix>.inter`` (+ ``.item .user .kg .link``);
* ``ripplenet``: RippleNet/KGCN ``ratings_final.txt`` or ``.npy`` + ``kg_final.txt``
  (+ ``item_index2entity_id[_rehashed].txt``, ``kg.txt``);
* ``kgin``: KGAT/KGIN lists ``train.txt`` / ``valid.txt`` / ``test.txt`` (+ ``kg_final.txt``
  and the id lists);
* ``hin``: librahu's HIN ``.dat`` edge lists: ``user_<item>.dat`` (user, item[, rating[,
  timestamp]]), ``<item>_<attribute>.dat`` (item, value[, weight]) and ``user_user*.dat``
  (social), tab- or comma-separated;
* ``tables``: plain ``.csv`` / ``.tsv`` / ``.parquet`` files with named columns, each file's role
  given by its columns (:data:`TABLE_ROLES`): ``user,item[,rating,timestamp,label]``,
  ``head,relation,tail``, ``item,entity``, ``item,text``, ``user,friend``, ``user,<attributes>``,
  ``item,<attributes>``; read by :func:`~kgzoo.data.frames.build_from_frames`.

* ``mind``: MIND's ``news.tsv`` + ``behaviors.tsv`` (MIND-small, MIND-large or a sample; joined
  through :func:`register_layout`, tried first): the labelled rows of
  :func:`~kgzoo.data.readers.mind.read_mind` and, for the default ``impression`` protocol (split
  by day), its impressions (:func:`~kgzoo.data.readers.mind.read_mind_impressions`).

Other layouts join with :func:`register_layout`. :func:`register_folder` registers a folder for this
process; :func:`import_folder` (``kgzoo data import PATH --name N``) also writes
``<user config>/datasets/<N>.json`` (:func:`kgzoo.paths.user_config_dir`), which
:func:`register_imported` registers in every later process.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import pyarrow.parquet as pq

from ..paths import user_config_dir
from ..registry import DATASETS
from .frames import Origin, build_from_frames
from .kgdata import KGRecData
from .protocol import EvalProtocol
from .readers._io import MIN_TEXT_MATCH, DataFormatError, read_bytes
from .readers.hin import EdgeFile, read_hin
from .readers.kgin import read_kgin
from .readers.mind import read_mind, read_mind_impressions
from .readers.recbole import read_recbole_kg
from .readers.ripplenet import read_ripplenet
from .spec import DatasetSpec, register_dataset

#: the default protocols of a folder: click data (labels) vs. implicit feedback
CTR = EvalProtocol(task="ctr", ratios=(0.6, 0.2, 0.2))
TOPK = EvalProtocol(task="topk")


@dataclass(frozen=True)
class Layout:
    """One folder layout.

    Attributes:
        name: the layout's name. looks_for: what it looks for, in words (for the error of a
            folder that matches no layout). detect: ``folder -> (builder, protocol)`` where the
            folder is of this layout, else ``None``; ``builder(folder, min_text_match)`` reads it
            into a raw :class:`KGRecData`. impressions: ``folder -> (KGRecData, ImpressionLog)``
            for a layout that logs impressions (MIND; the registered spec's
            ``DatasetSpec.impressions``), else ``None``.
    """

    name: str
    looks_for: str
    detect: Callable[[Path], tuple[Callable[[Path, float], KGRecData], EvalProtocol] | None]
    impressions: Callable[[Path], tuple[KGRecData, Any]] | None = None


def _first_line(path: Path) -> str:
    with open(path, encoding="utf-8-sig", errors="replace") as f:  # -sig: a BOM (Excel's "CSV UTF-8") is no header text
        return f.readline().rstrip("\r\n")


def _recbole(folder: Path):
    inter = sorted(folder.glob("*.inter"))
    if not inter:
        return None
    if len(inter) > 1:
        raise DataFormatError(folder, 0, None, f"several RecBole .inter files ({', '.join(p.name for p in inter)}): "
                              "one dataset per folder")
    prefix = inter[0].stem
    labelled = any(h.rsplit(":", 1)[0] == "label" for h in _first_line(inter[0]).split("\t"))
    return (lambda f, m: read_recbole_kg(f, prefix, name=prefix, min_text_match=m)), (CTR if labelled else TOPK)


def _ripplenet(folder: Path):
    ratings = next((n for n in ("ratings_final.txt", "ratings_final.npy") if (folder / n).is_file()), None)
    if ratings is None or not (folder / "kg_final.txt").is_file():
        return None
    imap = next((n for n in ("item_index2entity_id.txt", "item_index2entity_id_rehashed.txt")
                 if (folder / n).is_file()), None)
    return (lambda f, m: read_ripplenet(f, name=f.name, ratings=ratings, item_map=imap,
                                        raw_kg="kg.txt" if (f / "kg.txt").is_file() else None)), CTR


def _kgin(folder: Path):
    parts = [p for p in ("train", "valid", "test") if (folder / f"{p}.txt").is_file()]
    if not parts:
        return None
    given = "train" in parts and len(parts) > 1
    protocol = EvalProtocol(task="topk", split="given") if given else TOPK
    return (lambda f, m: read_kgin(f, name=f.name, given=given, min_text_match=m)), protocol


def _sep(path: Path) -> str:
    return "\t" if "\t" in _first_line(path) else ","


def _hin(folder: Path):
    dats = sorted(p for p in folder.glob("*.dat"))
    ui = [p for p in dats if p.stem.startswith("user_") and not p.stem.startswith("user_user")]
    if len(ui) != 1:
        return None
    item = ui[0].stem[len("user_"):]
    n_cols = len(_first_line(ui[0]).split(_sep(ui[0])))
    extra = (("rating", "float"), ("timestamp", "int"))[: max(0, min(2, n_cols - 2))]
    inter = EdgeFile(ui[0].name, _sep(ui[0]), (("user", "int"), (item, "int"), *extra))
    attributes = []
    for p in dats:
        if p.stem.startswith(f"{item}_"):
            k = len(_first_line(p).split(_sep(p)))
            cols = (("item", "int"), ("value", "int")) + ((("weight", "float"),) if k >= 3 else ())
            attributes.append((p.stem[len(item) + 1:], EdgeFile(p.name, _sep(p), cols)))
    soc = next((p for p in dats if p.stem.startswith("user_user")), None)
    social = None
    if soc is not None:
        k = len(_first_line(soc).split(_sep(soc)))
        social = EdgeFile(soc.name, _sep(soc), (("user", "int"), ("friend", "int")) + ((("weight", "float"),) if k >= 3 else ()))
    return (lambda f, m: read_hin(f, f.name, inter, attributes, social)), TOPK


#: the role of a table by its columns: (role, required columns); the first match wins
TABLE_ROLES = (
    ("interactions", {"user", "item"}), ("triples", {"head", "relation", "tail"}), ("links", {"item", "entity"}),
    ("item_text", {"item", "text"}), ("social", {"user", "friend"}), ("user_features", {"user"}),
    ("item_features", {"item"}),
)
_TABLE_EXT = {".csv": ",", ".tsv": "\t", ".parquet": None}


def _columns(path: Path) -> list[str]:
    if path.suffix == ".parquet":
        return list(pq.read_schema(path).names)
    return [c.strip() for c in _first_line(path).split(_TABLE_EXT[path.suffix])]


def _table_roles(folder: Path) -> dict[str, Path]:
    """Table file of each role (:data:`TABLE_ROLES`) in ``folder``; ``{}`` without an interactions table.

    Raises:
        DataFormatError: in a folder with an interactions table, a table whose columns match no
        role (line 1; nothing is ignored without a word) or a second table of one role.
    """
    tables = [p for p in sorted(folder.iterdir()) if p.suffix in _TABLE_EXT and p.is_file()]
    if not any({"user", "item"} <= set(_columns(p)) for p in tables):
        return {}
    return table_roles(tables)


def table_roles(tables: list[Path]) -> dict[str, Path]:
    """The role of each table file (:data:`TABLE_ROLES`, by its columns).

    Raises:
        DataFormatError: a file that is not ``.csv``/``.tsv``/``.parquet`` (line 0), a table whose
        columns match no role (line 1) or a second table of one role.
    """
    roles: dict[str, Path] = {}
    for p in tables:
        if p.suffix not in _TABLE_EXT:
            raise DataFormatError(p, 0, None, f"not a table file (expected {', '.join(_TABLE_EXT)})")
    cols_of = {p: set(_columns(p)) for p in tables}
    for p in tables:
        cols = cols_of[p]
        role = next((r for r, need in TABLE_ROLES if need <= cols), None)
        if role is None:
            raise DataFormatError(p, 1, None, f"columns {sorted(cols)} match no table role; expected "
                                  + "; ".join(f"{r}: {','.join(sorted(n))}" for r, n in TABLE_ROLES))
        if role in roles:
            raise DataFormatError(p, 1, None, f"a second {role} table (columns {sorted(cols)}); "
                                  f"{roles[role].name} is one already")
        roles[role] = p
    return roles


def read_table(path: Path) -> pd.DataFrame:
    """One ``.csv`` / ``.tsv`` / ``.parquet`` table; text columns stay text, an empty field is null.
    Column names are read as :func:`_columns` reads them for the file's role: a UTF-8 byte order
    mark (Excel's "CSV UTF-8") and spaces around a name (``user, item``) are no part of it.

    Raises:
        DataFormatError: a line with more fields than the header (file, line).
    """
    raw = read_bytes(path)  # recorded for the fingerprint
    if path.suffix == ".parquet":
        return pd.read_parquet(io.BytesIO(raw))
    try:
        df = pd.read_csv(io.BytesIO(raw), sep=_TABLE_EXT[path.suffix], dtype=str, keep_default_na=False,
                         na_values=[""], skip_blank_lines=False, encoding="utf-8-sig")
    except pd.errors.ParserError as e:
        m = re.search(r"line (\d+)", str(e))
        raise DataFormatError(path, int(m.group(1)) if m else 0, None, f"malformed table: {e}") from None
    return df.rename(columns=lambda c: c.strip())


def read_tables(paths: dict[str, Path]) -> tuple[dict[str, pd.DataFrame], dict[str, Origin]]:
    """The frames of table files by role (:func:`read_table`) and their :class:`Origin` (a header
    line above the rows of ``.csv``/``.tsv``)."""
    frames = {r: read_table(p) for r, p in paths.items()}
    return frames, {r: Origin(str(p), 0 if p.suffix == ".parquet" else 1) for r, p in paths.items()}


def _tables(folder: Path):
    roles = _table_roles(folder)
    if "interactions" not in roles:
        return None
    labelled = "label" in _columns(roles["interactions"])

    def build(f: Path, m: float) -> KGRecData:
        frames, origins = read_tables({r: f / p.name for r, p in _table_roles(f).items()})
        return build_from_frames(**frames, name=f.name, min_text_match=m, origins=origins)
    return build, (CTR if labelled else TOPK)


#: the layouts, tried in order (:func:`register_layout` adds one)
LAYOUTS: list[Layout] = [
    Layout("recbole", "RecBole atomic files (<prefix>.inter, optional .item .user .kg .link)", _recbole),
    Layout("ripplenet", "RippleNet/KGCN files (ratings_final.txt or .npy with kg_final.txt)", _ripplenet),
    Layout("kgin", "KGAT/KGIN lists (train.txt / valid.txt / test.txt, optional kg_final.txt)", _kgin),
    Layout("hin", "HIN edge lists (one user_<item>.dat, <item>_<attribute>.dat, user_user*.dat)", _hin),
    Layout("tables", "CSV/TSV/Parquet tables with named columns, one of them user,item[,rating,timestamp,label]",
           _tables),
]


def register_layout(layout: Layout, first: bool = False) -> None:
    """Add a folder layout (tried last, or ``first``). The hook for layouts kgzoo lacks."""
    LAYOUTS.insert(0 if first else len(LAYOUTS), layout)


#: the impression protocol of a MIND folder: the last day's impressions test, the day before valid
IMPRESSIONS = EvalProtocol(task="impression", split="temporal")


def _mind(folder: Path):
    if not ((folder / "behaviors.tsv").is_file() and (folder / "news.tsv").is_file()):
        return None
    return (lambda f, m: read_mind(f, name=f.name)), IMPRESSIONS


register_layout(Layout("mind", "MIND's news.tsv and behaviors.tsv (MIND-small, MIND-large or a sample)", _mind,
                       impressions=lambda f: read_mind_impressions(f, name=f.name)), first=True)


def layout_named(name: str) -> Layout:
    """The layout called ``name``.

    Raises:
        KeyError: no such layout (naming the known ones).
    """
    for layout in LAYOUTS:
        if layout.name == name:
            return layout
    raise KeyError(f"no folder layout {name!r}; known: {', '.join(lay.name for lay in LAYOUTS)}")


def detect_layout(folder: str | Path) -> tuple[Layout, Callable[[Path, float], KGRecData], EvalProtocol]:
    """The layout of ``folder`` (first match of :data:`LAYOUTS`), its builder and default protocol.

    Raises:
        FileNotFoundError: not a folder. DataFormatError: a folder matching no layout (line 0;
        the message lists what was looked for and the files found), or an ambiguous one.
    """
    f = Path(folder).expanduser()
    if not f.is_dir():
        raise FileNotFoundError(f"{f}: not a folder")
    for layout in LAYOUTS:
        hit = layout.detect(f)
        if hit is not None:
            return layout, hit[0], hit[1]
    files = sorted(f.iterdir())[:20]
    # a table's header says why it is no interactions table (userId,movieId; one column: ';'-separated)
    shown = [p.name + (f" (columns {', '.join(_columns(p))})" if p.suffix in _TABLE_EXT and p.is_file()
                       and p.stat().st_size else "") for p in files]
    raise DataFormatError(f, 0, None, "matches no dataset layout; looked for: " + "; ".join(
        f"{lay.name}: {lay.looks_for}" for lay in LAYOUTS) + f". Files there: {', '.join(shown) or 'none'}")


def _valid_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "dataset"


def folder_origin(folder: Path, min_text_match: float = MIN_TEXT_MATCH, protocol: EvalProtocol | None = None) -> str:
    """The identity of a folder's registration (``DatasetSpec.origin``): ``"folder:<path>"``, then
    ``;min_text_match=M`` where ``M`` is not the default and ``;protocol=<its fields>`` where a
    protocol other than the layout's is given, so that two registrations of one folder with other
    options are two datasets."""
    out = f"folder:{folder}"
    if float(min_text_match) != MIN_TEXT_MATCH:
        out += f";min_text_match={float(min_text_match)!r}"
    if protocol is not None:
        out += f";protocol={json.dumps(protocol.to_dict(), sort_keys=True, default=str)}"
    return out


def register_folder(folder: str | Path, name: str | None = None, protocol: EvalProtocol | dict | None = None,
                    min_text_match: float = MIN_TEXT_MATCH) -> DatasetSpec:
    """Register ``folder`` (its layout detected) as a dataset of this process.

    A registration is keyed by the folder and its options (:func:`folder_origin`): the same
    folder with the same options is the entry already there; with other options (another
    ``min_text_match`` or protocol) it is another dataset.

    Args:
        name: the dataset's name; default: the folder's name, or, where a dataset of another
            origin already has it (another folder, or this folder with other options), the
            folder's name and 8 hex digits of the sha256 of its path (with default options) or
            of its origin (with others).
        protocol: default protocol (an :class:`EvalProtocol` or its fields); default: the
            layout's (``ctr`` 6:2:2 for labelled rows, ``given`` for KGIN with train.txt and
            another part, ``impression`` split by day for MIND, else ``topk`` 8:1:1).
        min_text_match: passed to the reader (item text keys must match this share of items).

    Returns:
        The registered :class:`DatasetSpec` (``spec.name`` is the name to use everywhere).
        The folder is read when the dataset is first loaded; its fingerprint follows the
        contents of the files read.

    Raises:
        FileNotFoundError, DataFormatError: as :func:`detect_layout`. ValueError: ``name`` is
        taken by another dataset, or by this folder registered with other options (naming both).
    """
    f = Path(folder).expanduser().resolve()
    layout, builder, default = detect_layout(f)
    if isinstance(protocol, dict):
        protocol = EvalProtocol(**protocol)
    origin = folder_origin(f, min_text_match, None if protocol in (None, default) else protocol)
    if name is None:
        name = _valid_name(f.name)
        if name in DATASETS and DATASETS.get(name).origin != origin:
            key = str(f) if origin == folder_origin(f) else origin
            name = f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"
    spec = DatasetSpec(
        name=name, domain="user", description=f"{layout.name} folder {f}", files=(),
        builder=lambda folder, _b=builder, _m=min_text_match: _b(folder, _m),
        licence="the user's own data", citation="", protocol=protocol or default, folder=f, origin=origin,
        impressions=layout.impressions,
    )
    return register_dataset(spec)


def imported_dir() -> Path:
    """``<user config>/datasets``: one ``<name>.json`` per ``kgzoo data import``."""
    return user_config_dir() / "datasets"


def import_folder(folder: str | Path, name: str, protocol: EvalProtocol | dict | None = None,
                  min_text_match: float = MIN_TEXT_MATCH) -> Path:
    """Register ``folder`` as ``name`` now and for later runs (``kgzoo data import PATH --name N``).

    Writes ``<user config>/datasets/<name>.json`` (folder, layout, protocol, min_text_match).

    Returns:
        The written file.

    Raises:
        As :func:`register_folder`; ValueError: an invalid ``name`` or one of the catalogue's.
    """
    if name != _valid_name(name):
        raise ValueError(f"dataset name {name!r}: use letters, digits, '.', '_' and '-' only")
    if name in DATASETS and not DATASETS.get(name).origin:
        raise ValueError(f"dataset name {name!r} is a catalogue dataset: choose another name")
    if isinstance(protocol, dict):
        protocol = EvalProtocol(**protocol)
    spec = register_folder(folder, name, protocol, min_text_match)
    out = imported_dir() / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    entry = {"name": name, "folder": str(spec.folder), "layout": spec.description.split(" ", 1)[0],
             "protocol": spec.protocol.to_dict(), "min_text_match": min_text_match}
    entry["protocol"].pop("candidates", None)
    out.write_text(json.dumps(entry, indent=2, sort_keys=True) + "\n")
    return out


def register_imported() -> list[str]:
    """Register every dataset of ``<user config>/datasets/*.json`` (written by :func:`import_folder`)
    not yet registered. A file whose folder no longer matches its layout is reported on use.

    Returns:
        The names registered now.

    Raises:
        ValueError: a file that is not a JSON object with ``name`` and ``folder`` (naming it).
    """
    out = []
    d = imported_dir()
    if not d.is_dir():
        return out
    for p in sorted(d.glob("*.json")):
        try:
            e = json.loads(p.read_text())
            name, folder = e["name"], e["folder"]
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{p}: not a kgzoo dataset import ({err})") from None
        if name in DATASETS:
            continue
        spec = DatasetSpec(
            name=name, domain="user", description=f"{e.get('layout', '?')} folder {folder}", files=(),
            builder=lambda f, _m=float(e.get("min_text_match", MIN_TEXT_MATCH)): detect_layout(f)[1](f, _m),
            licence="the user's own data", citation="", protocol=EvalProtocol(**e.get("protocol", {})),
            folder=Path(folder), origin=folder_origin(Path(folder), float(e.get("min_text_match", MIN_TEXT_MATCH)),
                                                      EvalProtocol(**e.get("protocol", {}))),
            impressions=layout_named(e["layout"]).impressions if e.get("layout") in {
                lay.name for lay in LAYOUTS} else None,
        )
        register_dataset(spec)
        out.append(name)
    return out
