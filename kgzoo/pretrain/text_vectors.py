"""Pre-trained PLM vectors of item texts, cached on disk per text (the frozen text encoder's work).

Item vectors of the *pre-trained* language model are computed once, outside the models, and
cached under :func:`kgzoo.paths.cache_dir` ``("text")`` (``$KGZOO_HOME/text``, else
``$XDG_CACHE_HOME/kgzoo/text``), **one entry per text**: a folder per encoder identity
(:func:`encoder_key`: model name or path and revision, pooling, normalisation, ``max_length``)
holds safetensors shards of ``(sha256 of a text, its vector)`` rows. A list of texts encodes
only the texts no shard holds (an incremental update with one new title encodes one title) and
writes them as one new shard; a list whose texts are all cached does not even load the PLM.
A whole-list cache file of an earlier kgzoo (``text/<cache_key>.safetensors``) is read once
when its list is asked for, moved into a shard and deleted (nothing is encoded again).
:func:`kgzoo.api.attach` builds a :class:`TextVectors` for a model whose
``pretrain_requests()`` asks for ``"text_vectors"`` and hands it in ``extras``; the model's
:meth:`~kgzoo.models.layers.text_encoder.ItemTextEmbedding.set_texts` compares its key (the
whole list's, :func:`cache_key`) and calls :meth:`TextVectors.load` only for texts it does not
hold. In ``lora`` mode at initialisation the pre-trained vectors equal the model's output
(LoRA's ``B`` starts at zero), so they also seed the item cache of the trainable modes.

Encoder: Sentence-BERT mean pooling (Reimers & Gurevych, EMNLP 2019, section 3) with the
:class:`~kgzoo.models.layers.text_encoder.TextEncoder` in ``frozen`` mode.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from ..models.layers.text_encoder import TextEncoder, default_model_path
from ..paths import cache_dir


def cache_key(model_name: str, pooling: str, normalize: bool, max_length: int, texts: Sequence[str]) -> str:
    """sha256 hex of the encoder's identity and every text (order matters)."""
    h = hashlib.sha256()
    h.update(json.dumps({"model": model_name, "pooling": pooling, "normalize": bool(normalize),
                         "max_length": int(max_length), "n": len(texts)}, sort_keys=True).encode())
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


@dataclass
class TextVectors:
    """The pre-trained PLM vectors ``[N, H]`` of ``texts``, lazily: :attr:`key` is cheap,
    :meth:`load` reads the cache or encodes.

    Args:
        texts: ``N`` strings (``""``: no text; encoded as the empty text).
        model: ``AutoModel`` name or path (``None``: all-MiniLM-L6-v2, the text encoder's default).
        pooling: ``"mean"`` or ``"cls"``. normalize: L2-normalise the vectors.
        max_length: tokens per text. batch_size: texts per encoder batch.
        cache_dir: cache folder (``None``: :func:`kgzoo.paths.cache_dir` ``("text")``). progress: a tqdm bar on long
            encodes (``None``: when stderr is a terminal).
    """

    texts: Sequence[str]
    model: str | None = None
    pooling: str = "mean"
    normalize: bool = True
    max_length: int = 64
    batch_size: int = 64
    cache_dir: str | Path | None = None
    progress: bool | None = None

    def __post_init__(self) -> None:
        self.texts = list(self.texts)
        self.model = str(self.model) if self.model else default_model_path()

    @property
    def key(self) -> str:
        """:func:`cache_key` of the encoder's identity and the texts."""
        if not hasattr(self, "_key"):
            self._key = cache_key(self.model, self.pooling, self.normalize, self.max_length, self.texts)
        return self._key

    @property
    def folder(self) -> Path:
        """The encoder's shard folder ``<cache_dir>/<encoder_key[:32]>``."""
        return cache_dir("text", self.cache_dir) / encoder_key(self.model, self.pooling, self.normalize,
                                                              self.max_length)[:32]

    @property
    def legacy_path(self) -> Path:
        """The whole-list cache file of an earlier kgzoo: ``<cache_dir>/<key>.safetensors``."""
        return cache_dir("text", self.cache_dir) / f"{self.key}.safetensors"

    def load(self) -> Tensor:
        """FloatTensor ``[N, H]``: each text's vector from the encoder's shards (module
        docstring); the texts none holds (each distinct text once) encoded by a frozen
        :class:`~kgzoo.models.layers.text_encoder.TextEncoder` and written as a new shard
        (atomically; concurrent writers at worst store a text twice).

        Raises:
            ValueError: a shard or legacy file of the wrong shape (corrupt cache: delete it).
        """
        digests = np.stack([np.frombuffer(hashlib.sha256(t.encode("utf-8")).digest(), dtype=np.uint8)
                            for t in self.texts]) if self.texts else np.zeros((0, 32), dtype=np.uint8)
        keys, first, inverse = np.unique(digests.view("V32").ravel(), return_index=True, return_inverse=True)
        found = _read_shards(self.folder, keys)
        if any(v is None for v in found) and self.legacy_path.is_file():
            self._migrate_legacy(digests)
            found = _read_shards(self.folder, keys)
        missing = np.array([k for k, v in enumerate(found) if v is None], dtype=np.int64)
        if missing.size:
            encoder = TextEncoder(self.model, mode="frozen", pooling=self.pooling, normalize=self.normalize,
                                  max_length=self.max_length, batch_size=self.batch_size, progress=self.progress)
            vec = encoder.encode([self.texts[i] for i in first[missing]])
            _write_shard(self.folder, digests[first[missing]], vec, self._metadata())
            for k, row in zip(missing.tolist(), vec):
                found[k] = row
        if not self.texts:
            return torch.zeros(0, 0)
        return torch.stack(found)[torch.from_numpy(inverse.reshape(-1).astype(np.int64))]

    def _metadata(self) -> dict[str, str]:
        return {"model": self.model, "pooling": self.pooling, "normalize": str(self.normalize),
                "max_length": str(self.max_length)}

    def _migrate_legacy(self, digests: np.ndarray) -> None:
        """Move the whole-list file of an earlier kgzoo (:attr:`legacy_path`, rows in the order of
        :attr:`texts`) into a shard and delete it."""
        from safetensors.torch import load_file

        path = self.legacy_path
        vec = load_file(str(path))["embeddings"]
        if vec.dim() != 2 or vec.shape[0] != len(self.texts):
            raise ValueError(f"text cache {path} has shape {tuple(vec.shape)}, expected "
                             f"[{len(self.texts)}, H]; delete the file")
        _write_shard(self.folder, digests, vec, {**self._metadata(), "from": path.name})
        path.unlink(missing_ok=True)


def encoder_key(model: str, pooling: str, normalize: bool, max_length: int) -> str:
    """sha256 hex of the encoder's identity: model name or path, its revision
    (:func:`model_revision`), pooling, normalisation and ``max_length`` (not the batch size)."""
    return hashlib.sha256(json.dumps({"model": model, "revision": model_revision(model), "pooling": pooling,
                                      "normalize": bool(normalize), "max_length": int(max_length)},
                                     sort_keys=True).encode()).hexdigest()


def model_revision(model: str) -> str:
    """A local model folder's revision: sha256 hex of its ``config.json`` and of the names and
    byte sizes of its weight files (``*.safetensors``, ``*.bin``); ``""`` for a hub name (its
    name is its identity; ``HF_HUB_OFFLINE`` runs read a fixed snapshot)."""
    p = Path(model)
    if not p.is_dir():
        return ""
    h = hashlib.sha256()
    if (p / "config.json").is_file():
        h.update((p / "config.json").read_bytes())
    for w in sorted([*p.glob("*.safetensors"), *p.glob("*.bin")]):
        h.update(f"{w.name}:{w.stat().st_size};".encode())
    return h.hexdigest()


def _read_shards(folder: Path, keys: np.ndarray) -> list[Tensor | None]:
    """For each digest of ``keys`` (unique ``V32`` array), its vector FloatTensor ``[H]`` from the
    shards of ``folder``, else ``None`` (only the shards holding a wanted text are read whole).

    Raises:
        ValueError: a shard whose tables disagree in length (corrupt: delete it)."""
    from safetensors import safe_open

    found: list[Tensor | None] = [None] * len(keys)
    if not folder.is_dir() or not len(keys):
        return found
    for shard in sorted(folder.glob("*.safetensors")):
        with safe_open(str(shard), framework="pt") as f:
            have = f.get_tensor("sha256").numpy()
            pos = np.searchsorted(keys, have.view("V32").ravel()) if have.size else np.zeros(0, dtype=np.int64)
            pos = np.minimum(pos, len(keys) - 1)
            hit = np.flatnonzero(keys[pos] == have.view("V32").ravel()) if have.size else pos
            if not hit.size:
                continue
            vec = f.get_tensor("embeddings")
        if vec.dim() != 2 or vec.shape[0] != have.shape[0]:
            raise ValueError(f"text cache shard {shard} holds {have.shape[0]} digests and vectors of shape "
                             f"{tuple(vec.shape)}; delete the file")
        for r in hit.tolist():
            found[int(pos[r])] = vec[r]
    return found


def _write_shard(folder: Path, digests: np.ndarray, vec: Tensor, metadata: dict[str, str]) -> None:
    """Write ``(digests [n, 32] uint8, vec [n, H])`` as ``<folder>/<sha256 of the digests>.safetensors``
    (atomically)."""
    from safetensors.torch import save

    folder.mkdir(parents=True, exist_ok=True)
    d = np.ascontiguousarray(digests, dtype=np.uint8)
    path = folder / f"{hashlib.sha256(d.tobytes()).hexdigest()[:32]}.safetensors"
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(save({"sha256": torch.from_numpy(d.copy()), "embeddings": vec.contiguous()},  # umask mode
                         metadata={**metadata, "n": str(d.shape[0])}))
    os.replace(tmp, path)
