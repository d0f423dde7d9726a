"""Zoo configs: ``zoo_configs/<model>/<dataset>.yaml`` (else ``<model>/default.yaml``).

Sections: ``model`` (hyper-parameters), ``data`` (DataModule arguments: batch sizes),
``train`` (``max_epochs``, ``patience``, ``monitor``), ``bench`` (overrides of ``train`` for
the quick default ``kgzoo bench``) and ``paper`` (the paper's reported numbers and
setting, for reproduction tables).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

SECTIONS = ("model", "data", "train", "bench", "paper")


def config_dir() -> Path:
    """``$KGZOO_CONFIG_DIR``, else the repository's ``zoo_configs/`` (beside the package)."""
    env = os.environ.get("KGZOO_CONFIG_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "zoo_configs"


def config_path(model: str, dataset: str | None) -> Path | None:
    """The config file for ``model`` on ``dataset``, falling back to ``default.yaml``; ``None`` if neither."""
    base = config_dir() / model
    for p in ([base / f"{dataset}.yaml"] if dataset else []) + [base / "default.yaml"]:
        if p.is_file():
            return p
    return None


def load_config(model: str, dataset: str | None = None, path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """The config of ``model`` on ``dataset`` (or the file ``path``) as ``section -> dict``.

    Raises:
        ValueError: an unknown section (naming the file and the section).
    """
    p = Path(path) if path is not None else config_path(model, dataset)
    out: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    if p is None:
        return out
    raw = yaml.safe_load(p.read_text()) or {}
    for k, v in raw.items():
        if k not in SECTIONS:
            raise ValueError(f"{p}: unknown section {k!r}; expected one of {', '.join(SECTIONS)}")
        out[k] = dict(v or {})
    out["_path"] = {"path": str(p)}
    return out
