"""Pretrained weights by name (DESIGN.md, "Pretrained weights").

- :mod:`kgzoo.hub.manifest`: names ``"model/dataset"``, manifest entries (:class:`PretrainedSpec`),
  reading and writing the manifest, :func:`weights_spec` (an entry by name), :func:`list_pretrained`.
- :mod:`kgzoo.hub.store`: the weights file (shipped, or downloaded into the cache), its size and
  sha256 checked (:class:`ChecksumError`) before the safetensors bytes are parsed.
- :mod:`kgzoo.hub.pretrained`: :func:`load_pretrained` (a :class:`Pretrained` ready to
  recommend), :func:`evaluate`.
- :mod:`kgzoo.hub.checkpoint`: :func:`load_checkpoint` (model and data rebuilt from a
  self-describing Lightning checkpoint alone), :func:`open_model` (a checkpoint file, a saved
  folder or a pretrained name).
- :mod:`kgzoo.hub.export`: :func:`export` (top-K lists and embeddings with raw ids, ``kgzoo export``).
- :mod:`kgzoo.hub.update`: :func:`update_model` (new interactions, triples, items and users folded
  into a trained model); :func:`update_checkpoint` (``kgzoo update``: a checkpoint in, one out).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

#: public name -> its module (imported on first use: checkpoints and weights import the models)
_HOMES = {
    "ChecksumError": "kgzoo.data.download",
    **dict.fromkeys(["MANIFEST_PATH", "FingerprintError", "PretrainedError", "PretrainedSpec", "check_name",
                     "read_manifest", "weights_spec", "write_manifest_entry", "list_pretrained"], "kgzoo.hub.manifest"),
    **dict.fromkeys(["checkpoint_meta", "load_checkpoint", "open_model", "update_checkpoint"], "kgzoo.hub.checkpoint"),
    "export": "kgzoo.hub.export",
    **dict.fromkeys(["Pretrained", "evaluate", "fp16_within", "json_safe", "load_pretrained",
                     "metrics_close", "pretrained_spec"], "kgzoo.hub.pretrained"),
    "load_weights": "kgzoo.hub.store", "weights_path": "kgzoo.hub.store",
    "update_model": "kgzoo.hub.update",
}
__all__ = sorted(_HOMES)

if TYPE_CHECKING:
    from ..data.download import ChecksumError
    from .checkpoint import checkpoint_meta, load_checkpoint, open_model, update_checkpoint
    from .export import export
    from .manifest import (MANIFEST_PATH, FingerprintError, PretrainedError, PretrainedSpec, check_name,
                           list_pretrained, read_manifest, weights_spec, write_manifest_entry)
    from .pretrained import (Pretrained, evaluate, fp16_within, json_safe, load_pretrained,
                             metrics_close, pretrained_spec)
    from .store import load_weights, weights_path
    from .update import update_model

__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
