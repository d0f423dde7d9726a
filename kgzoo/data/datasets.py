"""Dataset look-ups and loading: :func:`list_datasets`, :func:`dataset_spec`,
:func:`resolve_dataset`, :func:`load_data`.

The entries are :class:`~kgzoo.data.spec.DatasetSpec` objects registered by
:mod:`kgzoo.data.catalogue` (imported here, which registers them), by a user's
:func:`~kgzoo.data.spec.register_dataset`, by :func:`~kgzoo.data.frames.from_frames`, or for a
folder by :mod:`kgzoo.data.folders` (``kgzoo data import`` files are registered on first look-up).
"""
from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..paths import data_dir
from ..registry import DATASETS
from . import catalogue  # noqa: F401  (registers the built-in datasets)
from .cleaning import standard_clean
from .download import ChecksumError, ensure_files
from .readers._io import recording_reads
from .kgdata import KGRecData, content_checksum
from .folders import register_folder, register_imported
from .spec import DatasetSpec


def list_datasets(pattern: str = "*", domain: str | None = None) -> list[str]:
    """Names of datasets (the catalogue's, and the user's: ``kgzoo data import``,
    :func:`from_frames`, folders) matching a shell-style ``pattern`` (and ``domain``)."""
    register_imported()
    return DATASETS.list(pattern, **({"domain": domain} if domain else {}))


def dataset_spec(name: str) -> DatasetSpec:
    """The entry of dataset ``name`` (catalogue, imported or the user's).

    Raises:
        KeyError: an unknown name (with suggestions).
    """
    if name not in DATASETS:
        register_imported()
    return DATASETS.get(name)


def is_folder_reference(dataset: str | Path) -> bool:
    """Whether ``dataset`` names a folder rather than a dataset: a :class:`~pathlib.Path`, or a
    string that is no registered name (imports included) and is an existing folder."""
    if isinstance(dataset, Path):
        return True
    if dataset in DATASETS:
        return False
    register_imported()
    return dataset not in DATASETS and Path(dataset).expanduser().is_dir()


def looks_like_path(dataset: str) -> bool:
    """Whether the string ``dataset`` is meant as a path rather than a name: no registered name,
    and a path separator, a leading ``.`` or ``~`` (dataset names have none)."""
    return dataset not in DATASETS and ("/" in dataset or "\\" in dataset or dataset.startswith((".", "~")))


def resolve_dataset(dataset: str | Path | DatasetSpec) -> str:
    """The registered name of ``dataset``: a name (catalogue, imported, from frames), a
    :class:`DatasetSpec`, or the path of a folder (:func:`is_folder_reference`: a name wins over
    a folder of the same name), registered here by its detected layout
    (:func:`kgzoo.data.folders.register_folder`). What ``create_datamodule``, the DataModule,
    ``load_data``, ``kgzoo data stats``, ``kgzoo bench --datasets`` and ``kgzoo fit
    --data.dataset`` accept.

    Raises:
        KeyError: neither a known name nor a folder (with suggestions). FileNotFoundError: a
        ``Path``, or a string that looks like one (a path separator, a leading ``.`` or ``~``),
        that is not a folder. DataFormatError: a folder matching no layout (listing what
        was looked for).
    """
    if isinstance(dataset, DatasetSpec):
        return dataset.name
    if is_folder_reference(dataset):
        return register_folder(dataset).name
    text = str(dataset)
    if looks_like_path(text):
        path = Path(text).expanduser()
        what = "is a file, not a folder" if path.exists() else "does not exist"
        raise FileNotFoundError(f"{text!r} is no registered dataset, and as a folder it {what}")
    return dataset_spec(text).name


def saved_dataset(name: str, folder: str | None) -> str:
    """What to build a saved model's data from (a checkpoint's or a pretrained manifest's entry,
    :func:`kgzoo.data.spec.saved_folder`): ``name`` where this process knows it, else the user's
    ``folder`` saved beside it (registered again from its path; the caller checks the fingerprint),
    else ``name`` (an unknown name then fails where it is resolved, with suggestions)."""
    if folder and name not in list_datasets():
        return folder
    return name


def dataset_folder(name: str, root: str | Path | None = None) -> Path:
    """The folder of dataset ``name``: its own (a user's folder), else ``<data root>/<name>``."""
    spec = DATASETS.get(name)
    return spec.folder if spec.folder is not None else data_dir(root) / name


def load_data(name: str, root: str | Path | None = None, download: bool = True) -> KGRecData:
    """Read and clean dataset ``name`` (a name, folder or spec: :func:`resolve_dataset`; see
    :func:`kgzoo.data.cleaning.standard_clean`).

    Files are verified against their pinned sha256 (and downloaded when missing); the
    result is cached per process, keyed by name and folder. ``source_checksums`` (the
    fingerprint's data part) holds the sha256 of every file the builder read
    (:func:`content_checksums`), or, for a builder that read no file (data built in memory), the
    :func:`~kgzoo.data.kgdata.content_checksum` of what it returned.

    Raises:
        KeyError: unknown name. ChecksumError: a file differs from the pinned one.
        FileNotFoundError: a file is missing and cannot be downloaded.
        DataFormatError: a malformed file (file, line, field).
    """
    name = resolve_dataset(name)
    folder = dataset_folder(name, root).resolve()
    return _load_cached(name, str(folder), download)


@functools.lru_cache(maxsize=4)
def _load_cached(name: str, folder: str, download: bool) -> KGRecData:
    spec = DATASETS.get(name)
    checksums = ensure_files(Path(folder), list(spec.files), spec.wheel, download_missing=download)
    with recording_reads() as reads:
        raw = spec.builder(Path(folder))
    return standard_clean(identified(raw, name, content_checksums(Path(folder), reads, checksums)))


def identified(raw: KGRecData, name: str, checksums: dict[str, str]) -> KGRecData:
    """A copy of a builder's ``raw`` data named ``name`` with its ``source_checksums``: the files'
    (``checksums``) where the builder read any, else those ``raw`` carries (data built in memory
    with an identity of its own, e.g. ``{"extended": sha}`` of :func:`kgzoo.data.extend.extend_data`),
    else ``{"in-memory": content_checksum(raw)}``. ``raw`` itself is never changed: a builder may
    hand out the same object on every call (:func:`kgzoo.from_frames`), and a cache read must
    not rename the identity of its caller's object."""
    sums = checksums or dict(raw.source_checksums) or {"in-memory": content_checksum(raw)}
    return replace(raw, name=name, source_checksums=sums)


def content_checksums(folder: Path, reads: dict[Path, str], pinned: dict[str, str] | None = None) -> dict[str, str]:
    """The ``source_checksums`` of a dataset: file -> sha256 of its bytes, for the pinned files
    (``pinned``, already verified against the catalogue's sha256) and every other file its
    builder read (``reads``, from :func:`~kgzoo.data.readers._io.recording_reads`).

    A file is named by its path relative to ``folder`` (the absolute path when it lies
    outside). A pinned file's verified checksum IS its content hash, so a catalogue dataset,
    whose builder reads only pinned files, keeps the fingerprint of its committed rows; a file
    a builder read but no catalogue entry pins (a user's dataset) enters by its contents, so
    two folders of other contents under one name never share a fingerprint.

    Raises:
        ChecksumError: a pinned file changed between verification and reading.
    """
    pinned = dict(pinned or {})
    out = dict(pinned)
    root = folder.resolve()
    for path, sha in reads.items():
        key = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        if key in pinned and pinned[key] != sha:
            raise ChecksumError(f"{path}: sha256 {sha} read, but {pinned[key]} was verified (the file changed)")
        out[key] = sha
    return out


def load_impressions(name: str, root: str | Path | None = None, download: bool = True) -> tuple[KGRecData, Any]:
    """Read dataset ``name`` as impressions: ``(data, log)`` from its entry's ``impressions``
    reader, files verified as :func:`load_data`'s, ``data`` cleaned by ``standard_clean`` (which
    keeps user and item ids, so the :class:`~kgzoo.data.impression_log.ImpressionLog` stays valid).
    Cached per process.

    Raises:
        KeyError: unknown name. ValueError: the dataset has no impressions. ChecksumError,
        FileNotFoundError, DataFormatError: as :func:`load_data`.
    """
    name = resolve_dataset(name)
    if dataset_spec(name).impressions is None:
        raise ValueError(f"dataset {name!r} has no impression log (its catalogue entry reads no impressions)")
    return _load_impressions_cached(name, str(dataset_folder(name, root).resolve()), download)


@functools.lru_cache(maxsize=2)
def _load_impressions_cached(name: str, folder: str, download: bool) -> tuple[KGRecData, Any]:
    spec = DATASETS.get(name)
    checksums = ensure_files(Path(folder), list(spec.files), spec.wheel, download_missing=download)
    with recording_reads() as reads:
        raw, log = spec.impressions(Path(folder))
    raw = identified(raw, name, content_checksums(Path(folder), reads, checksums))
    data = standard_clean(raw)
    if (data.n_users, data.n_items) != (raw.n_users, raw.n_items):  # the log's ids must survive cleaning
        raise AssertionError(f"{name}: cleaning changed the user or item ids of an impression log")
    log.validate(data.n_users, data.n_items, name)
    return data, log
