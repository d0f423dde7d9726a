"""kgzoo: a PyTorch Lightning model zoo for knowledge-graph enhanced recommendation."""
from __future__ import annotations

from .version import __version__
from .api import create_datamodule, create_model, list_models
from .data import EvalProtocol, KGRecData, from_frames, list_datasets, load_data
from .hub import list_pretrained, load_checkpoint, load_pretrained
from .registry import register_model

__all__ = ["EvalProtocol", "KGRecData", "__version__", "create_datamodule", "create_model", "from_frames",
           "list_datasets", "list_models", "list_pretrained", "load_checkpoint", "load_data", "load_pretrained",
           "register_model"]
