"""The public entry points: create a DataModule, create a model (DESIGN.md, "Registry")."""
from __future__ import annotations

import inspect
from typing import Any

from .config import ZooConfig
from .data.datamodule import KGRecDataModule
from .data.protocol import EvalProtocol
from .registry import MODELS


def _ensure_models() -> None:
    from . import models  # noqa: F401  (registers the catalogue)


def list_models(pattern: str = "*", **meta: Any) -> list[str]:
    """Registered model names matching the shell-style ``pattern`` (``"kg*"``) and metadata
    (``family="kg-gnn"``)."""
    _ensure_models()
    return MODELS.list(pattern, **meta)


def model_hparams(cls: type) -> dict[str, inspect.Parameter]:
    """The constructor arguments of a model class and of :class:`Recommender` (the accepted keys)."""
    from .models.base import Recommender

    params: dict[str, inspect.Parameter] = {}
    for c in (Recommender, cls):
        for n, p in inspect.signature(c.__init__).parameters.items():
            if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                params[n] = p
    return params


def create_datamodule(name: str = "ml-100k-kg", root: str | None = None, protocol: EvalProtocol | dict | None = None,
                      **kwargs: Any) -> KGRecDataModule:
    """A :class:`KGRecDataModule` for catalogue dataset ``name``.

    Args:
        protocol: an :class:`EvalProtocol`, a dict of its fields, or ``None`` for the
            dataset's default. **kwargs: DataModule arguments (batch sizes, ``kg_ablation``).

    Raises:
        KeyError: unknown dataset (with suggestions). ValueError: bad protocol fields.
    """
    if isinstance(protocol, dict):
        protocol = EvalProtocol(**protocol)
    return KGRecDataModule(name, root=root, protocol=protocol, **kwargs)


def create_model(name: str, datamodule: KGRecDataModule | None = None, config: bool = True,
                 sizes: dict[str, Any] | None = None, **overrides: Any) -> Any:
    """Build model ``name`` for ``datamodule``.

    Hyper-parameters: the zoo config of the model on that dataset (``config=True``), then
    ``overrides``. Sizes (users, items, entities, relations, task) come from the DataModule
    (or ``sizes``). Models with a KG loss set the DataModule's ``kg_batch_size``.

    Raises:
        KeyError: unknown model (with the nearest names).
        ValueError: a hyper-parameter the model does not take (naming it and the known ones).
    """
    _ensure_models()
    cls = MODELS.get(name)
    dataset = datamodule.dataset if datamodule is not None else None
    hp = dict(ZooConfig.load(name, dataset).model) if config else {}
    hp.update(overrides)
    known = model_hparams(cls)
    unknown = sorted(set(hp) - set(known))
    if unknown:
        raise ValueError(f"model {name!r} takes no hyper-parameter {', '.join(map(repr, unknown))}; "
                         f"known: {', '.join(sorted(known))}")
    kwargs = dict(datamodule.model_kwargs() if datamodule is not None else (sizes or {}))
    kwargs = {k: v for k, v in kwargs.items() if k in known}
    kwargs.update(hp)
    model = cls(**kwargs)
    if datamodule is not None:
        connect(model, datamodule)
    return model


def connect(model: Any, datamodule: KGRecDataModule) -> None:
    """Join a built model and its DataModule: a model with a KG loss (``uses_kg_batches``) sets
    the DataModule's ``kg_batch_size`` (its own, else the DataModule's, else 1024), then the
    model takes its graphs with ``model.attach(datamodule)``. Used by :func:`create_model` and
    by ``kgzoo fit/test``."""
    if getattr(model, "uses_kg_batches", False):
        datamodule.kg_batch_size = int(getattr(model, "kg_batch_size", 0) or datamodule.kg_batch_size or 1024)
    model.attach(datamodule)
