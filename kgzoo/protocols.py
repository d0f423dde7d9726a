"""Which evaluation protocol a model is judged under on a dataset, and how another one is named.

A dataset's default protocol (its catalogue entry's :class:`~kgzoo.data.protocol.EvalProtocol`)
is what its published tables use; a news model on a dataset with an impression log takes the
impression protocol there instead (:func:`default_protocol`). Any other protocol is named by the
fields that differ from that default (:func:`protocol_key`, ``"split=cold_item"``): the name of
its own zoo config file (``zoo_configs/<model>/<dataset>@<key>.yaml``, written by
``kgzoo tune --protocol``) and of its tuning rows. The model layer (:func:`kgzoo.create_model`),
the benchmark cells and the CLI all read the protocol's values through :func:`protocol_key`, so
a model built for a DataModule of the cold-item split takes the values tuned there.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from .config import parse_assignments
from .data.datasets import dataset_spec
from .data.protocol import EvalProtocol
from .registry import MODELS
from .tasks import model_task


def task_on(model: str, dataset: str) -> str:
    """The name of the task ``model`` runs on catalogue dataset ``dataset``
    (:func:`kgzoo.tasks.model_task` of its class, the dataset's protocol task and whether it has
    an impression log): a model's own ``task`` (KG link prediction), ``"impression"`` for a news
    model on a dataset with an impression log, else the dataset's protocol task. The one reading
    behind :func:`default_protocol` and :func:`kgzoo.bench.cells.cell_task`.

    Raises:
        KeyError: an unknown model or dataset. ValueError: a model whose tasks the dataset serves
            none of (NRMS on ml-100k-kg).
    """
    spec = dataset_spec(dataset)
    return model_task(MODELS.get(model), spec.protocol.task, spec.impressions is not None)


def default_protocol(dataset: str, model: str | None = None) -> EvalProtocol:
    """The dataset's default protocol, whose split seed stays fixed across training seeds; for a
    ``model`` of the impression task (NRMS, DKN) on a dataset whose default is another task, the
    impression protocol (``task="impression", split="temporal"``, the same seed).

    A benchmark's seeds vary initialisation and negative sampling on one split, so that
    their rows share a fingerprint and the leaderboard reports mean and std over seeds.

    Raises:
        KeyError: an unknown dataset or model (with suggestions). ValueError: a model whose tasks
            the dataset serves none of (:func:`kgzoo.tasks.model_task`: NRMS on ``ml-100k-kg``).
    """
    if model is not None and task_on(model, dataset) == "impression":
        return impression_protocol(dataset) or dataset_spec(dataset).protocol
    return dataset_spec(dataset).protocol


def impression_protocol(dataset: str) -> EvalProtocol | None:
    """The impression protocol (``task="impression", split="temporal"``, the default's split
    seed) that the news models take on ``dataset`` where it has an impression log and its default
    protocol is another task (``mind-sample``), else ``None``.

    Raises:
        KeyError: an unknown dataset (with suggestions).
    """
    spec = dataset_spec(dataset)
    if spec.impressions is None or spec.protocol.task == "impression":
        return None
    return EvalProtocol(task="impression", split="temporal", seed=spec.protocol.seed)


def model_protocol(dataset: str, model: str) -> EvalProtocol | None:
    """The protocol ``model`` takes on ``dataset`` where it is not the dataset's default
    (:func:`default_protocol`: a news model's impressions on MIND data), else ``None``: what a
    DataModule built from the dataset's name alone must be given (``kgzoo fit``, ``--zoo``).

    Raises:
        KeyError: an unknown dataset or model (with suggestions). ValueError: as :func:`default_protocol`.
    """
    protocol = default_protocol(dataset, model)
    return None if protocol == dataset_spec(dataset).protocol else protocol


def parse_protocol(dataset: str, text: str = "", model: str | None = None) -> EvalProtocol:
    """The protocol ``--protocol text`` names on ``dataset`` for ``model``: the default
    (:func:`default_protocol`, the same split for every training seed) with the fields of ``text``
    (``"split=cold_item"``, :func:`kgzoo.config.parse_assignments`) replaced; a tuple field as
    :func:`protocol_key` spells it (``ratios=0.7-0.1-0.2``).

    Raises:
        KeyError: an unknown dataset or model. ValueError: an unknown protocol field or a bad
            value (naming it); a model the dataset cannot serve (:func:`default_protocol`).
    """
    base = default_protocol(dataset, model)
    fields = parse_assignments(text, "protocol")[1]
    unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(base)})
    if unknown:
        raise ValueError(f"unknown protocol field {', '.join(map(repr, unknown))}; known: "
                         f"{', '.join(f.name for f in dataclasses.fields(base))}")
    # a tuple field as protocol_key spells it (ratios=0.7-0.1-0.2): commas separate the fields
    fields = {k: _dashed(v) if isinstance(getattr(base, k), tuple) else v for k, v in fields.items()}
    return dataclasses.replace(base, **fields) if fields else base


def _dashed(value: Any) -> Any:
    """``"0.7-0.1-0.2"`` as ``(0.7, 0.1, 0.2)``; any other value as it is (the protocol refuses it, named)."""
    try:
        return tuple(float(x) for x in value.split("-")) if isinstance(value, str) else value
    except ValueError:
        return value


def protocol_key(dataset: str, protocol: EvalProtocol | str, model: str | None = None) -> str:
    """The fields of ``protocol`` that differ from the dataset's default for ``model``
    (:func:`default_protocol`), canonical ``k=v,...`` sorted by key as ``--protocol`` spells them
    (``"split=cold_item"``; a tuple value joined by ``-``); ``""`` for the default. It names the
    protocol's own zoo config file (:func:`kgzoo.config.config_file_name`) and tuning rows.

    Args:
        protocol: an :class:`~kgzoo.data.protocol.EvalProtocol`, or ``--protocol`` text
            (:func:`parse_protocol`; ``""``: the default), so every spelling of one protocol
            (``"seed=0,split=cold_item"``, ``"split=cold_item"``) has one key.

    Raises:
        KeyError: an unknown dataset or model. ValueError: as :func:`parse_protocol`.
    """
    if isinstance(protocol, str):
        protocol = parse_protocol(dataset, protocol, model)
    base = default_protocol(dataset, model)

    def text(v: Any) -> str:
        if isinstance(v, bool) or v is None:
            return {True: "true", False: "false", None: "null"}[v]
        return "-".join(map(str, v)) if isinstance(v, (tuple, list)) else str(v)

    return ",".join(f"{f.name}={text(getattr(protocol, f.name))}" for f in sorted(dataclasses.fields(base),
                                                                                   key=lambda f: f.name)
                    if getattr(protocol, f.name) != getattr(base, f.name))


def datamodule_protocol_key(model: str, datamodule: Any) -> str:
    """:func:`protocol_key` of the protocol ``datamodule`` splits by (its ``protocol``), for
    ``model`` on its catalogue dataset; ``""`` where it has none or its dataset is not in the
    catalogue (a user's frames or folder without a registered name: the default protocol's config
    applies, ``<model>/<dataset>.yaml`` or ``default.yaml``).

    Raises:
        KeyError: an unknown model. ValueError: a model the dataset cannot serve
            (:func:`default_protocol`).
    """
    dataset, protocol = getattr(datamodule, "dataset", None), getattr(datamodule, "protocol", None)
    if not isinstance(dataset, str) or not isinstance(protocol, EvalProtocol):
        return ""
    try:
        dataset_spec(dataset)
    except KeyError:
        return ""
    return protocol_key(dataset, protocol, model)
