"""Pretrained weights on disk: the shipped file or a verified, cached download, and its tensors.

Weights are safetensors only: the bytes are read once, their size and sha256 checked
against the manifest entry (:class:`kgzoo.data.download.ChecksumError` otherwise, naming the
file, never a warning), and only then parsed by :func:`safetensors.torch.load`, which reads
tensors and executes nothing. No pickle is ever loaded.

Downloaded files are cached in :func:`kgzoo.paths.cache_dir` ``("hub")``: ``$KGZOO_HOME/hub``,
else ``$XDG_CACHE_HOME/kgzoo/hub`` (``~/.cache/kgzoo/hub``).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

from torch import Tensor

from ..data.download import ChecksumError, sha256_bytes
from ..paths import cache_dir as kind_cache_dir
from .manifest import PretrainedError, PretrainedSpec


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
    """Raise :class:`ChecksumError` (naming ``path``) where ``data``'s size or sha256 is not ``spec``'s."""
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


__all__ = ["load_weights", "weights_path"]
