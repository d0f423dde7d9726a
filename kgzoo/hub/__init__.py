"""Pretrained weights by name: a manifest, safetensors files, sha256 checks and a cache.

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

Weights are safetensors only: the bytes are read once, their sha256 (and size) checked
against the manifest, and only then parsed by :func:`safetensors.torch.load`, which
reads tensors and executes nothing. No pickle is ever loaded. A mismatch is an error
naming the file (:class:`ChecksumError`), never a warning.

Graph models rebuild their graph from the data: :func:`load_pretrained` builds the
DataModule with the manifest's protocol, checks that its fingerprint equals the
manifest's (:class:`FingerprintError` otherwise), builds the model with
:func:`kgzoo.create_model` (which calls ``model.attach(dm)``) and loads the weights.

Downloaded files are cached in :func:`kgzoo.paths.cache_dir` ``("hub")``: ``$KGZOO_HOME/hub``,
else ``$XDG_CACHE_HOME/kgzoo/hub`` (``~/.cache/kgzoo/hub``).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from torch import Tensor

from .paths import cache_dir as kind_cache_dir
from .registry import PRETRAINED

MANIFEST_FORMAT = 1
PACKAGE_DIR = Path(__file__).resolve().parent / "pretrained"
MANIFEST_PATH = PACKAGE_DIR / "manifest.json"
#: one part of a name (model or dataset): no path separator, no leading dot, no ".."
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+.-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_REQUIRED = ("model", "dataset", "protocol", "fingerprint", "metrics", "hparams", "sha256", "size", "licence")


class PretrainedError(ValueError):
    """A pretrained entry or file that cannot be loaded (bad manifest entry, bad file)."""


class ChecksumError(PretrainedError):
    """A weights file whose sha256 or size differs from its manifest entry."""


class FingerprintError(PretrainedError):
    """Data whose protocol fingerprint differs from the one the weights were trained under."""


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


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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

    def summary(self) -> dict[str, Any]:
        """What :func:`list_pretrained` shows: name, model, dataset, main metric, metrics, size, ..."""
        return {"name": self.name, "model": self.model, "dataset": self.dataset, "main_metric": self.main_metric,
                "metrics": dict(self.metrics), "size": self.size, "dtype": self.dtype, "source": self.source,
                "licence": self.licence, "fingerprint": self.fingerprint}


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


def _ensure_registered() -> None:
    """Register the package manifest's entries in :data:`kgzoo.registry.PRETRAINED` (once)."""
    global _registered
    if _registered:
        return
    for name, spec in read_manifest(MANIFEST_PATH).items():
        if name not in PRETRAINED:
            PRETRAINED.register(name, spec, model=spec.model, dataset=spec.dataset)
    _registered = True


def get_spec(name: str, manifest: str | Path | None = None) -> PretrainedSpec:
    """The manifest entry of ``name``: from the package's registry, or from the manifest file ``manifest``.

    Raises:
        PretrainedError: an invalid name. KeyError: an unknown name (with the nearest names).
    """
    check_name(name)
    if manifest is None:
        _ensure_registered()
        return PRETRAINED.get(name)
    entries = read_manifest(manifest)
    if name not in entries:
        import difflib

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
        ``source`` (``package``/``url``/``hf``), ``licence``, ``fingerprint``.
    """
    import fnmatch

    if manifest is None:
        _ensure_registered()
        specs = {n: PRETRAINED.get(n) for n in PRETRAINED.list(pattern)}
    else:
        pats = [pattern] if isinstance(pattern, str) else list(pattern)
        specs = {n: s for n, s in read_manifest(manifest).items() if any(fnmatch.fnmatchcase(n, p) for p in pats)}
    return [s.summary() for n, s in sorted(specs.items()) if dataset is None or s.dataset == dataset]


# ---------------------------------------------------------------------------- fetch + verify
def _download_url(url: str, dest: Path) -> None:
    """Copy ``url`` (http, https or file) to ``dest``. Tests may monkeypatch this."""
    with urllib.request.urlopen(url, timeout=60) as r, open(dest, "wb") as f:  # noqa: S310 (scheme checked)
        shutil.copyfileobj(r, f)


def _download_hf(hf: dict[str, str], dest: Path, cache_dir: Path) -> None:
    """Fetch a file from the Hugging Face Hub (``huggingface_hub.hf_hub_download``) to ``dest``."""
    from huggingface_hub import hf_hub_download

    path = hf_hub_download(repo_id=hf["repo_id"], filename=hf["filename"], revision=hf.get("revision"),
                           cache_dir=str(cache_dir / "hf"))
    shutil.copyfile(path, dest)


def _verify(spec: PretrainedSpec, path: str | Path, data: bytes) -> None:
    if len(data) != spec.size:
        raise ChecksumError(f"{path}: size {len(data)} bytes differs from the manifest's {spec.size} for "
                            f"{spec.name!r} (truncated or replaced file)")
    digest = sha256_bytes(data)
    if digest != spec.sha256:
        raise ChecksumError(f"{path}: sha256 {digest} differs from the manifest's {spec.sha256} for {spec.name!r} "
                            f"(corrupted or tampered file)")


def weights_path(spec: PretrainedSpec, cache_dir: str | Path | None = None, download: bool = True) -> Path:
    """The local file of ``spec``: the shipped file, or the cached download (fetched if missing).

    A download goes to a temporary file, is checked (size, sha256), and only then moved
    into the cache as ``<model>__<dataset>__<sha256[:16]>.safetensors``.

    Raises:
        FileNotFoundError: a shipped file is missing, or ``download=False`` and not cached.
        ChecksumError: the downloaded bytes differ from the manifest.
    """
    if spec.file:
        path = spec.base_dir / spec.file
        if not path.is_file():
            raise FileNotFoundError(f"{path}: weights of {spec.name!r} are missing from the package")
        return path
    cache = kind_cache_dir("hub", cache_dir)
    path = cache / f"{spec.model}__{spec.dataset}__{spec.sha256[:16]}.safetensors"
    if path.is_file():
        return path
    if not download:
        raise FileNotFoundError(f"{path}: weights of {spec.name!r} are not cached and download=False")
    cache.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=cache, prefix=".download-", suffix=".safetensors")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if spec.url:
            _download_url(spec.url, tmp)
        else:
            _download_hf(spec.hf or {}, tmp, cache)
        _verify(spec, spec.url or f"hf://{spec.hf['repo_id']}/{spec.hf['filename']}", tmp.read_bytes())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _header_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors header (8-byte little-endian length, then JSON)."""
    n = int.from_bytes(data[:8], "little")
    return dict(json.loads(data[8:8 + n]).get("__metadata__") or {})


def load_weights(spec: PretrainedSpec, cache_dir: str | Path | None = None, download: bool = True
                 ) -> dict[str, Tensor]:
    """The verified state dict of ``spec`` (tensors in the file's dtype).

    The file is read once; size and sha256 are checked on those bytes before they are
    parsed as safetensors (no pickle, nothing executed).

    Raises:
        ChecksumError: size or sha256 mismatch (naming the file). PretrainedError: the bytes
            are not safetensors, or their metadata names other weights.
    """
    from safetensors.torch import load

    path = weights_path(spec, cache_dir, download)
    data = path.read_bytes()
    _verify(spec, path, data)
    try:
        tensors = load(data)
        meta = _header_metadata(data)
    except Exception as e:  # safetensors raises its own error types
        raise PretrainedError(f"{path}: not a valid safetensors file ({e})") from None
    if meta.get("name", spec.name) != spec.name:
        raise PretrainedError(f"{path}: the file holds weights of {meta['name']!r}, not {spec.name!r}")
    return tensors


# ---------------------------------------------------------------------------- evaluate, load
def evaluate(model: Any, datamodule: Any, stage: str = "test") -> dict[str, float]:
    """Metrics of ``model`` on the ``stage`` ("test" or "valid") split, through a Lightning
    Trainer on CPU (no logger, no checkpoint). Returns ``{"test/ndcg@10": ..., ...}``."""
    import lightning as L

    if stage not in ("test", "valid"):
        raise ValueError(f"stage must be 'test' or 'valid', got {stage!r}")
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    run = trainer.test if stage == "test" else trainer.validate
    out = run(model, datamodule=datamodule, verbose=False)
    return {k: float(v) for k, v in (out[0] if out else {}).items()}


def metrics_close(a: dict[str, float], b: dict[str, float], rel: float = 1e-6, abs_: float = 1e-12) -> list[str]:
    """Keys where ``a`` and ``b`` differ beyond ``rel`` relative tolerance (or one lacks a key)."""
    bad = [k for k in sorted(set(a) | set(b)) if k not in a or k not in b
           or not math.isclose(a[k], b[k], rel_tol=rel, abs_tol=abs_)]
    return bad


class Pretrained:
    """A pretrained model with its dataset's id maps: raw ids in, raw ids and titles out.

    Attributes:
        name: ``"model/dataset"``. spec: the manifest entry. model: the :class:`Recommender`
        (eval mode). datamodule: the :class:`KGRecDataModule` it was trained on (set up).
    """

    def __init__(self, spec: PretrainedSpec, model: Any, datamodule: Any) -> None:
        self.spec, self.name, self.model, self.datamodule = spec, spec.name, model, datamodule
        data = datamodule.data
        self._user_index = {str(u): i for i, u in enumerate(data.user_ids or range(data.n_users))}
        self._item_ids = [str(i) for i in (data.item_ids or range(data.n_items))]
        self._seen: tuple[Tensor, Tensor] | None = None

    def __repr__(self) -> str:
        return f"Pretrained({self.name!r}, {type(self.model).__name__}, metrics={self.spec.main_metric})"

    def user_ids(self, raw_user_ids: Sequence[str | int]) -> Tensor:
        """LongTensor of kgzoo user ids for raw (source) user ids.

        Raises:
            KeyError: a raw id the dataset does not have.
        """
        missing = [u for u in raw_user_ids if str(u) not in self._user_index]
        if missing:
            raise KeyError(f"{self.spec.dataset}: unknown user id(s) {', '.join(map(repr, missing[:5]))} "
                           f"(raw ids as in the source, e.g. {list(self._user_index)[:3]})")
        return torch.tensor([self._user_index[str(u)] for u in raw_user_ids], dtype=torch.long)

    def seen(self) -> tuple[Tensor, Tensor]:
        """CSR ``(indptr, indices)`` of every observed positive (user, item) pair (train, valid, test)."""
        if self._seen is None:
            from .data.sampling import to_csr

            data = self.datamodule.data
            x = data.interactions[data.positives()]
            self._seen = to_csr(x[:, 0], x[:, 1], data.n_users)
        return self._seen

    def title(self, item: int) -> str:
        text = self.datamodule.data.item_text
        return text[item] if text else ""

    def recommend(self, raw_user_ids: str | int | Sequence[str | int], k: int = 10, exclude_seen: bool = True
                  ) -> list[tuple[str, str, float]] | list[list[tuple[str, str, float]]]:
        """Top-``k`` items per user: ``(raw item id, title, score)``, best first.

        Args:
            raw_user_ids: one raw user id (``"196"`` or ``196``) or a sequence of them.
            k: list length. exclude_seen: leave out the items the user interacted with
                (in any split).

        Returns:
            For one id, a list of ``k`` tuples; for a sequence, one such list per id.

        Raises:
            KeyError: an unknown raw user id. ValueError: ``k`` outside ``1..I``.
        """
        single = isinstance(raw_user_ids, (str, int))
        ids = [raw_user_ids] if single else list(raw_user_ids)
        users = self.user_ids(ids)
        scores, items = self.model.recommend(users, k, exclude=self.seen() if exclude_seen else None)
        out = [[(self._item_ids[i], self.title(i), float(s)) for s, i in zip(srow.tolist(), irow.tolist())]
               for srow, irow in zip(scores, items)]
        return out[0] if single else out


def load_pretrained(name: str, datamodule: Any = None, root: str | None = None, manifest: str | Path | None = None,
                    cache_dir: str | Path | None = None, download: bool = True, device: str = "cpu") -> Pretrained:
    """Load pretrained weights by name, ready to ``recommend``.

    Args:
        name: ``"model/dataset"`` (:func:`list_pretrained`).
        datamodule: reuse this DataModule (its fingerprint must match); default: build one
            from the manifest's dataset, protocol and DataModule arguments.
        root: data root for the dataset (default ``$KGZOO_DATA_DIR`` or the user cache).
        manifest: read the entry from this manifest file instead of the package's.
        cache_dir: cache of downloaded weights (default :func:`kgzoo.paths.cache_dir` ``("hub")``).
        device: where the model goes.

    Returns:
        :class:`Pretrained` (``.model`` in eval mode, ``.datamodule``, ``.recommend``).

    Raises:
        PretrainedError: an invalid name; an entry whose model is not registered; weights
            that do not fit the model. KeyError: an unknown name (with the nearest names).
        ChecksumError: a file whose size or sha256 differs from the manifest (naming it).
        FingerprintError: data or protocol that differ from the ones the weights were trained on.
    """
    from .api import _ensure_models, create_datamodule, create_model
    from .data.protocol import EvalProtocol
    from .registry import MODELS

    spec = get_spec(name, manifest)
    _ensure_models()
    if spec.model not in MODELS:
        close = MODELS.suggest(spec.model)
        raise PretrainedError(f"manifest entry {name!r} names model {spec.model!r}, which is not registered"
                              + (f" (did you mean {', '.join(map(repr, close))}?)" if close else "")
                              + f"; registered: {', '.join(MODELS.list())}")
    state = load_weights(spec, cache_dir, download)  # checksum first: nothing else runs on a bad file
    if datamodule is None:
        try:
            protocol = EvalProtocol(**spec.protocol)
        except TypeError as e:
            raise PretrainedError(f"manifest entry {name!r}: bad protocol {spec.protocol} ({e})") from None
        datamodule = create_datamodule(spec.dataset, root=root, protocol=protocol, kg_ablation=spec.kg_ablation,
                                       **spec.data)
    elif datamodule.dataset != spec.dataset:
        raise FingerprintError(f"{name!r} was trained on {spec.dataset!r}, the DataModule holds {datamodule.dataset!r}")
    datamodule.setup()
    if datamodule.fingerprint != spec.fingerprint:
        raise FingerprintError(f"{name!r}: the data fingerprint {datamodule.fingerprint} differs from the manifest's "
                               f"{spec.fingerprint} (other data files, protocol {spec.protocol}, or metric code)")
    model = create_model(spec.model, datamodule=datamodule, config=False, **spec.hparams)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise PretrainedError(f"weights of {name!r} do not fit model {spec.model!r}: {e}") from None
    model.to(device)
    model.eval()
    return Pretrained(spec, model, datamodule)


__all__ = ["ChecksumError", "FingerprintError", "MANIFEST_PATH", "Pretrained", "PretrainedError", "PretrainedSpec",
           "check_name", "evaluate", "get_spec", "list_pretrained", "load_pretrained",
           "load_weights", "read_manifest", "sha256_file", "write_manifest_entry"]
