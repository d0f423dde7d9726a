"""Pre-trained PLM vectors of item texts, cached on disk (the frozen text encoder's work).

Item vectors of the *pre-trained* language model are computed once, outside the models, and
cached as a safetensors file under :func:`kgzoo.paths.cache_dir` ``("text")`` (``$KGZOO_HOME/text``,
else ``$XDG_CACHE_HOME/kgzoo/text``), keyed by
the sha256 of (model name or path, pooling, normalisation, ``max_length``, every item text): a
second run with the same texts encodes nothing and does not even load the PLM.
:func:`kgzoo.api.attach` builds a :class:`TextVectors` for a model whose
``pretrain_requests()`` asks for ``"text_vectors"`` and hands it in ``extras``; the model's
:meth:`~kgzoo.models.layers.text_encoder.ItemTextEmbedding.set_texts` compares its key and calls
:meth:`TextVectors.load` only for texts it does not hold. In ``lora`` mode at initialisation the
pre-trained vectors equal the model's output (LoRA's ``B`` starts at zero), so they also seed
the item cache of the trainable modes.

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
    def path(self) -> Path:
        """The cache file ``<cache_dir>/<key>.safetensors``."""
        return cache_dir("text", self.cache_dir) / f"{self.key}.safetensors"

    def load(self) -> Tensor:
        """FloatTensor ``[N, H]``: read from the disk cache, else encoded by a frozen
        :class:`~kgzoo.models.layers.text_encoder.TextEncoder` and written there (atomically).

        Raises:
            ValueError: a cached file of the wrong shape (corrupt cache; delete it).
        """
        from safetensors.torch import load_file, save_file

        path = self.path
        if path.is_file():
            vec = load_file(str(path))["embeddings"]
            if vec.dim() != 2 or vec.shape[0] != len(self.texts):
                raise ValueError(f"text cache {path} has shape {tuple(vec.shape)}, expected "
                                 f"[{len(self.texts)}, H]; delete the file")
            return vec
        encoder = TextEncoder(self.model, mode="frozen", pooling=self.pooling, normalize=self.normalize,
                              max_length=self.max_length, batch_size=self.batch_size, progress=self.progress)
        vec = encoder.encode(self.texts)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        save_file({"embeddings": vec.contiguous()}, str(tmp),
                  metadata={"model": self.model, "pooling": self.pooling, "normalize": str(self.normalize),
                            "max_length": str(self.max_length), "n": str(len(self.texts))})
        os.replace(tmp, path)
        return vec
