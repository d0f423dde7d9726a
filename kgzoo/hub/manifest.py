"""Pretrained weights' manifest: names, entries (:class:`PretrainedSpec`) and their lookup.

A name is ``"<model>/<dataset>"`` (``"lightgcn/ml-100k-kg"``). Each name has one manifest
entry (DESIGN.md, "Pretrained weights") in ``kgzoo/pretrained/manifest.json``::

    {"format": 1, "entries": {"lightgcn/ml-100k-kg": {
        "model": "lightgcn", "dataset": "ml-100k-kg",
        "protocol": {...EvalProtocol fields...}, "kg_ablation": "real", "fingerprint": "<sha256>",
        "main_metric": "ndcg@10", "metrics": {"test/ndcg@10": ..., ...}, "hparams": {...},
        "data": {...DataModule arguments...},
        "file": "lightgcn__ml-100k-kg.safetensors"      # shipped inside the package, or
        "url": "https://.../x.safetensors"             # downloaded and cached, or
        "hf": {"repo_id": "...", "filename": "...", "revision": "..."},  # Hugging Face Hub
        "sha256": "<sha256 of the file>", "size": <bytes>, "dtype": "float16", "licence": "..."}}}

The package's entries are registered in :data:`kgzoo.registry.PRETRAINED` on first use;
:func:`weights_spec` looks a name up there or in another manifest file; :func:`list_pretrained`
lists them. Fetching and
verifying the files is :mod:`kgzoo.hub.store`; loading a model, :mod:`kgzoo.hub.pretrained`.
"""
from __future__ import annotations

import difflib
import fnmatch
import json
import os
import re
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..data.protocol import FingerprintError
from ..registry import PRETRAINED

MANIFEST_FORMAT = 1
#: the package's folder of shipped weights and their manifest
PACKAGE_DIR = Path(__file__).resolve().parent.parent / "pretrained"
#: the manifest's file name (the package's, and a folder written by ``Pretrained.save_pretrained``)
MANIFEST_NAME = "manifest.json"
MANIFEST_PATH = PACKAGE_DIR / MANIFEST_NAME
#: one part of a name (model or dataset): no path separator, no leading dot, no ".."
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+.-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_REQUIRED = ("model", "dataset", "protocol", "fingerprint", "metrics", "hparams", "sha256", "size", "licence")


class PretrainedError(ValueError):
    """A pretrained entry or file that cannot be loaded (bad manifest entry, bad file)."""


# ---------------------------------------------------------------------------- names, paths
def check_name(name: str) -> tuple[str, str]:
    """Split ``"model/dataset"`` into its two parts.

    Raises:
        PretrainedError: not a string of exactly two parts, or a part with a path separator
            (``\\``), ``..``, a leading dot or other characters than ``[A-Za-z0-9_+.-]``.
    """
    if not isinstance(name, str):
        raise PretrainedError(f"pretrained name must be a string 'model/dataset', got {type(name).__name__}")
    parts = name.split("/")
    if len(parts) != 2 or not all(_PART.match(p) and ".." not in p for p in parts):
        raise PretrainedError(f"invalid pretrained name {name!r}: expected 'model/dataset' (e.g. "
                              f"'lightgcn/ml-100k-kg'), two parts of letters, digits, '_', '+', '.', '-', "
                              f"without path separators or '..'")
    return parts[0], parts[1]


def _check_file_name(name: str, file: str) -> str:
    """A manifest ``file`` must be a bare file name inside the manifest's folder."""
    if not isinstance(file, str) or not _PART.match(file) or ".." in file or not file.endswith(".safetensors"):
        raise PretrainedError(f"manifest entry {name!r}: file {file!r} must be a bare '*.safetensors' name "
                              f"(no path separators or '..')")
    return file


# ---------------------------------------------------------------------------- manifest
@dataclass(frozen=True)
class PretrainedSpec:
    """One manifest entry (see the module docstring for the fields).

    ``base_dir`` is the folder of the manifest, where a ``file`` entry lives.
    """

    name: str
    model: str
    dataset: str
    protocol: dict[str, Any]
    fingerprint: str
    metrics: dict[str, float]
    hparams: dict[str, Any]
    sha256: str
    size: int
    licence: str
    base_dir: Path
    file: str | None = None
    url: str | None = None
    hf: dict[str, str] | None = None
    dtype: str = "float32"
    main_metric: str | None = None
    kg_ablation: str = "real"
    data: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_entry(cls, name: str, entry: dict[str, Any], base_dir: str | Path) -> "PretrainedSpec":
        """Validate a manifest entry.

        Raises:
            PretrainedError: a bad name, a missing field, a name that does not say
                ``model/dataset`` of the entry, a bad sha256, no source or several, a
                ``file`` that is not a bare name.
        """
        model, dataset = check_name(name)
        if not isinstance(entry, dict):
            raise PretrainedError(f"manifest entry {name!r} must be an object")
        missing = [k for k in _REQUIRED if k not in entry]
        if missing:
            raise PretrainedError(f"manifest entry {name!r} lacks {', '.join(missing)}")
        if (entry["model"], entry["dataset"]) != (model, dataset):
            raise PretrainedError(f"manifest entry {name!r} says model {entry['model']!r}, dataset "
                                  f"{entry['dataset']!r}; its name must be 'model/dataset'")
        sha = str(entry["sha256"]).lower()
        if not _SHA256.match(sha):
            raise PretrainedError(f"manifest entry {name!r}: sha256 {entry['sha256']!r} is not 64 hex digits")
        sources = [k for k in ("file", "url", "hf") if entry.get(k)]
        if len(sources) != 1:
            raise PretrainedError(f"manifest entry {name!r} needs exactly one of file, url, hf (has {sources})")
        file = _check_file_name(name, entry["file"]) if entry.get("file") else None
        url = entry.get("url")
        if url is not None and urllib.parse.urlparse(url).scheme not in ("http", "https", "file"):
            raise PretrainedError(f"manifest entry {name!r}: url {url!r} must be http(s):// or file://")
        hf = entry.get("hf")
        if hf is not None and not (isinstance(hf, dict) and hf.get("repo_id") and hf.get("filename")):
            raise PretrainedError(f"manifest entry {name!r}: hf must give repo_id and filename")
        known = {f for f in cls.__dataclass_fields__ if f not in ("name", "base_dir", "extra")}
        return cls(name=name, model=model, dataset=dataset, protocol=dict(entry["protocol"]),
                   fingerprint=str(entry["fingerprint"]), metrics={k: float(v) for k, v in entry["metrics"].items()},
                   hparams=dict(entry["hparams"]), sha256=sha, size=int(entry["size"]), licence=str(entry["licence"]),
                   base_dir=Path(base_dir), file=file, url=url, hf=dict(hf) if hf else None,
                   dtype=str(entry.get("dtype", "float32")), main_metric=entry.get("main_metric"),
                   kg_ablation=str(entry.get("kg_ablation", "real")), data=dict(entry.get("data") or {}),
                   extra={k: v for k, v in entry.items() if k not in known})

    @property
    def source(self) -> str:
        """``"package"``, ``"url"`` or ``"hf"``."""
        return "package" if self.file else ("url" if self.url else "hf")

    @property
    def training_label(self) -> str:
        """How the weights were trained, in words: ``"converged (epoch 79, seed 0), tuned (10 trials)"``
        for a run that early stopping ended (the seed of its row: the weights are that one run, the
        leaderboard's line the mean over its seeds), ``"closed form"`` for a model with nothing to
        train, else ``"short schedule, not converged"``: not a baseline (issue 16)."""
        t = self.extra.get("training") or {}
        stopped = t.get("stopped_by")
        if stopped == "closed_form":
            return "closed form"
        if stopped == "early_stopping":
            tuned = t.get("tuning") or {}
            how = (f", tuned ({tuned['trials']} trials)" if tuned.get("trials")
                   else f", tuned on {tuned['dataset']}" if tuned.get("dataset") else ", untuned")
            seed = f", seed {t['seed']}" if t.get("seed") is not None else ""
            return f"converged (epoch {t.get('best_epoch')}{seed}){how}"
        return "short schedule, not converged"

    def summary(self) -> dict[str, Any]:
        """What :func:`list_pretrained` shows: name, model, dataset, main metric, metrics, size, ..."""
        return {"name": self.name, "model": self.model, "dataset": self.dataset, "main_metric": self.main_metric,
                "metrics": dict(self.metrics), "size": self.size, "dtype": self.dtype, "source": self.source,
                "licence": self.licence, "fingerprint": self.fingerprint, "training": self.training_label}


def read_manifest(path: str | Path) -> dict[str, PretrainedSpec]:
    """The entries of a manifest file, validated; ``{}`` for a missing file.

    Raises:
        PretrainedError: not JSON, an unknown format, a bad entry (see :meth:`PretrainedSpec.from_entry`).
    """
    p = Path(path)
    if not p.is_file():
        return {}
    try:
        raw = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise PretrainedError(f"{p}: not a valid manifest ({e})") from None
    if not isinstance(raw, dict) or raw.get("format") != MANIFEST_FORMAT or not isinstance(raw.get("entries"), dict):
        raise PretrainedError(f"{p}: expected {{'format': {MANIFEST_FORMAT}, 'entries': {{...}}}}")
    return {n: PretrainedSpec.from_entry(n, e, p.parent) for n, e in raw["entries"].items()}


def write_manifest_entry(path: str | Path, name: str, entry: dict[str, Any]) -> None:
    """Add or replace entry ``name`` of the manifest at ``path`` (created if missing), atomically."""
    p = Path(path)
    PretrainedSpec.from_entry(name, entry, p.parent)  # validate before writing
    raw = json.loads(p.read_text()) if p.is_file() else {"format": MANIFEST_FORMAT, "entries": {}}
    raw["entries"][name] = entry
    raw["entries"] = dict(sorted(raw["entries"].items()))
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=".manifest-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(raw, f, indent=1, sort_keys=False)
        f.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, p)


_registered = False


def ensure_registered() -> None:
    """Register the package manifest's entries in :data:`kgzoo.registry.PRETRAINED` (once)."""
    global _registered
    if _registered:
        return
    for name, spec in read_manifest(MANIFEST_PATH).items():
        if name not in PRETRAINED:
            PRETRAINED.register(name, spec, model=spec.model, dataset=spec.dataset)
    _registered = True


def weights_spec(name: str, manifest: str | Path | None = None) -> PretrainedSpec:
    """The manifest entry of ``name``: from the package's registry, or from the manifest file ``manifest``.

    Raises:
        PretrainedError: an invalid name. KeyError: an unknown name (with the nearest names).
    """
    check_name(name)
    if manifest is None:
        ensure_registered()
        return PRETRAINED.get(name)
    entries = read_manifest(manifest)
    if name not in entries:
        close = difflib.get_close_matches(name, list(entries), n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise KeyError(f"unknown pretrained weights {name!r} in {manifest}{hint} (known: {', '.join(sorted(entries))})")
    return entries[name]


def list_pretrained(pattern: str | Iterable[str] = "*", dataset: str | None = None,
                    manifest: str | Path | None = None) -> list[dict[str, Any]]:
    """Pretrained weights whose name matches the shell-style ``pattern`` (``"kgat*"``, ``"*/ml-100k-kg"``).

    Args:
        dataset: keep only weights trained on this dataset. manifest: read this manifest
            file instead of the package's.

    Returns:
        One dict per name, sorted by name: ``name`` (``"model/dataset"``), ``model``,
        ``dataset``, ``main_metric``, ``metrics`` (test split), ``size`` (bytes), ``dtype``,
        ``source`` (``package``/``url``/``hf``), ``licence``, ``fingerprint``, ``training`` (how the
        weights were trained, in words: :attr:`PretrainedSpec.training_label`).
    """
    if manifest is None:
        ensure_registered()
        specs = {n: PRETRAINED.get(n) for n in PRETRAINED.list(pattern)}
    else:
        pats = [pattern] if isinstance(pattern, str) else list(pattern)
        specs = {n: s for n, s in read_manifest(manifest).items() if any(fnmatch.fnmatchcase(n, p) for p in pats)}
    return [s.summary() for n, s in sorted(specs.items()) if dataset is None or s.dataset == dataset]


__all__ = ["FingerprintError", "MANIFEST_FORMAT", "MANIFEST_NAME", "MANIFEST_PATH", "PACKAGE_DIR", "PretrainedError", "PretrainedSpec",
           "check_name", "ensure_registered", "list_pretrained", "read_manifest", "weights_spec", "write_manifest_entry"]
