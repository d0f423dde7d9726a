"""Pretrained weights by name (DESIGN.md, "Pretrained weights").

- :mod:`kgzoo.hub.manifest`: names ``"model/dataset"``, manifest entries (:class:`PretrainedSpec`),
  reading and writing the manifest, :func:`weights_spec` (an entry by name).
- :mod:`kgzoo.hub.store`: the weights file (shipped, or downloaded into the cache), its size and
  sha256 checked (:class:`ChecksumError`) before the safetensors bytes are parsed.
- :mod:`kgzoo.hub.pretrained`: :func:`load_pretrained` (a :class:`Pretrained` ready to
  recommend), :func:`list_pretrained`, :func:`evaluate`.
- :mod:`kgzoo.hub.checkpoint`: :func:`load_checkpoint` (model and data rebuilt from a
  self-describing Lightning checkpoint alone), :func:`open_model` (a checkpoint file, a saved
  folder or a pretrained name).
- :mod:`kgzoo.hub.export`: :func:`export` (top-K lists and embeddings with raw ids, ``kgzoo export``).
- :mod:`kgzoo.hub.update`: :func:`update_model` (new interactions, triples, items and users folded
  into a trained model); :func:`update_checkpoint` (``kgzoo update``: a checkpoint in, one out).
"""
from ..data.download import ChecksumError
from .manifest import (MANIFEST_PATH, FingerprintError, PretrainedError, PretrainedSpec, check_name, read_manifest,
                       weights_spec, write_manifest_entry)
from .checkpoint import checkpoint_meta, load_checkpoint, open_model, update_checkpoint
from .export import export
from .pretrained import Pretrained, evaluate, fp16_within, json_safe, list_pretrained, load_pretrained, metrics_close, pretrained_spec
from .store import load_weights, weights_path
from .update import update_model

__all__ = ["ChecksumError", "FingerprintError", "MANIFEST_PATH", "Pretrained", "PretrainedError", "PretrainedSpec",
           "check_name", "checkpoint_meta", "evaluate", "export", "fp16_within", "json_safe", "list_pretrained", "load_checkpoint", "load_pretrained", "load_weights", "metrics_close",
           "open_model", "pretrained_spec", "read_manifest", "update_checkpoint", "update_model", "weights_path", "weights_spec",
           "write_manifest_entry"]
