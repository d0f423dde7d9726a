"""kgzoo: a PyTorch Lightning model zoo for knowledge-graph enhanced recommendation.

The public names below are imported on first use (PEP 562), so that ``import kgzoo`` and the
``kgzoo`` command's help, ``data`` and ``pretrained`` commands do not import the models, and
Lightning with them, before they are needed.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .lazy import lazy_exports
from .registry import MODELS, register_model
from .version import __version__

#: public name -> the module that defines it
_HOMES = {
    "create_datamodule": "kgzoo.api", "create_model": "kgzoo.api", "list_models": "kgzoo.api",
    "EvalProtocol": "kgzoo.data", "KGRecData": "kgzoo.data", "from_frames": "kgzoo.data",
    "list_datasets": "kgzoo.data", "load_data": "kgzoo.data",
    "list_pretrained": "kgzoo.hub", "load_checkpoint": "kgzoo.hub", "load_pretrained": "kgzoo.hub",
}

__all__ = sorted([*_HOMES, "__version__", "register_model"])

if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from .api import create_datamodule, create_model, list_models
    from .data import EvalProtocol, KGRecData, from_frames, list_datasets, load_data
    from .hub import list_pretrained, load_checkpoint, load_pretrained

__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
MODELS.builtins_from("kgzoo.models")  # imported where a model is first named, not here
