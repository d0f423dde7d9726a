"""``kgzoo fit`` and ``kgzoo test``: Lightning's :class:`~lightning.pytorch.cli.LightningCLI`.

Arguments come from the type hints of a :class:`~kgzoo.models.base.Recommender` subclass
(``--model``, subclass mode) and of :func:`cli_datamodule` (``--data.*``: a
:class:`~kgzoo.data.datamodule.KGRecDataModule`, or for the impression task an
:class:`~kgzoo.data.impressions.ImpressionDataModule`); the DataModule's sizes (users, items, entities, relations, task) are linked
into the model on instantiation::

    kgzoo fit --model kgzoo.models.lightgcn.LightGCN --data.dataset ml-100k-kg --trainer.max_epochs 2

``--zoo MODEL[/DATASET[@PROTOCOL]]`` starts from that model's zoo config instead (:func:`zoo_cli_config`):
its hyper-parameters, its DataModule arguments and, for ``fit``, its converged schedule (the
epoch cap, early stopping on the model's main validation metric with the config's patience, the
best checkpoint kept); every later ``--model.*``, ``--data.*`` or ``--trainer.*`` overrides it::

    kgzoo fit --zoo kgat/ml-100k-kg
    kgzoo fit --zoo kgat/ml-100k-kg --trainer.max_epochs 5
    kgzoo fit --zoo kgat/ml-100k-kg@split=cold_item   # the values kgzoo tune --protocol split=cold_item chose

``--pretrained NAME_OR_FOLDER`` starts from pretrained weights instead (:func:`pretrained_cli_config`):
``fit`` trains them on, in train mode, ``test`` evaluates them; ``test --ckpt_path P`` of a kgzoo
checkpoint needs nothing else (:func:`ckpt_cli_config`)::

    kgzoo fit --pretrained kgat/ml-100k-kg --data.kg_ablation shuffled --trainer.max_epochs 5
    kgzoo test --pretrained kgat/ml-100k-kg
    kgzoo test --ckpt_path lightning_logs/version_0/checkpoints/best.ckpt
"""
from __future__ import annotations

import argparse
import functools
import os
import pydoc
import tempfile
from typing import Any, Optional

import yaml
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.cli import LightningCLI

from .. import models  # noqa: F401  (registers every Recommender subclass for --model NAME)
from ..api import attach, create_datamodule, create_datamodule_for
from ..protocols import model_protocol, parse_protocol, protocol_key
from ..bench.experiment import BestModelCheckpoint, WarmupEarlyStopping, strategy_for
from ..console import console
from .options import take_option
from ..config import ZooConfig
from ..data.datamodule import KGRecDataModule
from ..data.datasets import dataset_spec, resolve_dataset
from ..data.protocol import EvalProtocol, check_fingerprint, protocol_fields
from ..dist import destroy_group_at_exit, sigterm_without_collectives
from ..hub.checkpoint import checkpoint_meta, datamodule_arguments, datamodule_from, model_name
from ..hub.manifest import PretrainedError, PretrainedSpec
from ..hub.pretrained import json_safe, load_state, pretrained_spec
from ..hub.store import load_weights
from ..hub.update import register_extended
from ..models.base import SIZE_KEYS, Recommender
from ..quiet import lightning_quiet
from ..registry import MODELS
from ..tasks import get_task

PRETRAINED_HELP = ("pretrained weights, a name 'model/dataset' (kgzoo pretrained) or a folder written by "
                   "save_pretrained: their model, hyper-parameters and data; fit goes on training them with the zoo "
                   "config's schedule, test/validate evaluates them (the test metric kgzoo pretrained lists); later "
                   "--data.*, --model.* and --trainer.* arguments override it")
ZOO_METAVAR = "MODEL[/DATASET[@PROTOCOL]]"
ZOO_HELP = ("MODEL[/DATASET[@PROTOCOL]] (dataset default ml-100k-kg): start from the zoo config of MODEL on DATASET: "
            "its model and data sections and, for fit, its converged schedule (max_epochs, early stopping on "
            "valid/<main metric> with its patience, the best checkpoint kept); @PROTOCOL (e.g. @split=cold_item, "
            "as kgzoo bench --protocol) trains under that protocol with the values kgzoo tune --protocol chose for it "
            "(its own config file, where there is one); later --model.*, --data.* and --trainer.* arguments "
            "override it (a --data.protocol whose own tuned config the --zoo one is not is refused)")


class MainMetricEarlyStopping(WarmupEarlyStopping):
    """:class:`~lightning.pytorch.callbacks.EarlyStopping` on ``valid/<monitor>`` (maximised),
    by default ``valid/<the model's main_metric>``, read when training starts, so that a config
    need not know the task's metric names; with the dataset's warm-up
    (:class:`kgzoo.bench.experiment.WarmupEarlyStopping`).

    Args:
        patience: validation passes without improvement before training stops.
        monitor: a metric name without ``valid/`` (``"recall@20"``); ``None``: the model's main metric.
        min_epochs: epochs trained before early stopping may end the run (the dataset's
            :attr:`kgzoo.data.spec.DatasetSpec.min_epochs`); 0: none.
        **kwargs: as ``EarlyStopping`` (``min_delta``, ``verbose``, ...; not ``mode``).
    """

    def __init__(self, patience: int = 10, monitor: str | None = None, min_epochs: int = 0, **kwargs: Any) -> None:
        super().__init__(monitor=f"valid/{monitor or 'main_metric'}", mode="max", patience=patience,
                         min_epochs=min_epochs, **kwargs)
        self._follow_model = monitor is None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self._follow_model:
            self.monitor = f"valid/{pl_module.main_metric}"
        super().setup(trainer, pl_module, stage)


class BestCheckpoint(BestModelCheckpoint):
    """:class:`~lightning.pytorch.callbacks.ModelCheckpoint` keeping the one best checkpoint by
    ``valid/<monitor>`` (maximised; default the model's main metric, read when training starts)
    as ``best.ckpt`` under ``dirpath`` (default: the logger's folder, as Lightning's own); a model
    with nothing to train (Pop) gets its fit saved there too
    (:class:`~kgzoo.bench.experiment.BestModelCheckpoint`).

    Args:
        dirpath: folder of the checkpoint (``None``: Lightning's default).
        monitor: a metric name without ``valid/``; ``None``: the model's main metric.
    """

    def __init__(self, dirpath: str | None = None, monitor: str | None = None) -> None:
        super().__init__(dirpath=dirpath, monitor=f"valid/{monitor or 'main_metric'}", mode="max", save_top_k=1,
                         filename="best", enable_version_counter=False)
        self._follow_model = monitor is None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self._follow_model:
            self.monitor = f"valid/{pl_module.main_metric}"
        super().setup(trainer, pl_module, stage)


def _size(key: str, datamodule: Any) -> Any:
    return datamodule.model_kwargs()[key]


class KGZooCLI(LightningCLI):
    """LightningCLI with the DataModule's sizes linked into the model, ``--zoo`` documented,
    and the model joined to its DataModule before each run.

    Args:
        pretrained: the manifest entry of weights to start ``fit`` from (``--pretrained``): loaded
            (checksum verified) into the model after it joined its data, in train mode.
        zoo: the ``--zoo`` spec the config came from (:func:`zoo_cli_config`), checked against the
            parsed ``--data.protocol`` (:func:`check_zoo_protocol`) before anything is built.
        *args, **kwargs: as :class:`~lightning.pytorch.cli.LightningCLI`.
    """

    def __init__(self, *args: Any, pretrained: PretrainedSpec | None = None, zoo: str | None = None,
                 **kwargs: Any) -> None:
        self.pretrained, self.zoo = pretrained, zoo
        self._weights: dict[str, Any] | None = None  # the pretrained state dict, read once (_pretrained_weights)
        super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser: Any) -> None:
        for k in SIZE_KEYS:
            parser.link_arguments("data", f"model.init_args.{k}", compute_fn=functools.partial(_size, k),
                                  apply_on="instantiate")
        # read by kgzoo.cli.main before LightningCLI parses (see _with_zoo_config, take_option);
        # declared here so that `kgzoo fit --help` documents them
        parser.add_argument("--zoo", default=None, metavar=ZOO_METAVAR, help=ZOO_HELP)
        parser.add_argument("--pretrained", dest="pretrained_", default=None, metavar="NAME_OR_FOLDER",
                            help=PRETRAINED_HELP)
        parser.add_argument("--import", dest="import_", default=None, metavar="MODULE_OR_FILE",
                            help="import a module or .py file first (repeatable): its registered models, "
                                 "datasets and fusions join the run")
        parser.add_argument("--config-dir", dest="config_dir_", default=None, metavar="DIR",
                            help="a folder of zoo configs over the packaged ones (repeatable; the last wins)")

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """Lightning's Trainer, under the strategy the model trains under (as ``kgzoo bench``:
        :func:`kgzoo.bench.experiment.strategy_for`, e.g. ``--trainer.strategy ddp`` detecting unused
        parameters for KGAT's alternating optimisation) and with a SIGTERM handler without collective
        calls (:func:`kgzoo.dist.sigterm_without_collectives`), the process group destroyed at exit
        (:func:`kgzoo.dist.destroy_group_at_exit`)."""
        cfg = {**self._get(self.config_init, "trainer", default={}), **kwargs}
        if getattr(self, "model", None) is not None and "strategy" in cfg:
            kwargs["strategy"] = strategy_for(self.model, cfg["strategy"], cfg.get("devices", 1),
                                              cfg.get("num_nodes") or 1)
        trainer = super().instantiate_trainer(**kwargs)
        sigterm_without_collectives(trainer)
        destroy_group_at_exit()
        return trainer

    def _parse_ckpt_path(self) -> None:
        # a kgzoo checkpoint's model and data came in as a config first (ckpt_cli_config), which
        # later arguments override; Lightning's own parse of its hyper-parameters would lose the
        # model class (subclass mode) and fail
        ckpt = self.config[self.config.subcommand].get("ckpt_path") if self.config.get("subcommand") else None
        if ckpt and _kgzoo_meta(ckpt) is not None:
            return
        super()._parse_ckpt_path()

    def before_instantiate_classes(self) -> None:
        # as kgzoo bench, --zoo and kgzoo.create_model: a model of the impression task (a news model,
        # Pop) on a dataset with impressions runs that task. Its DataModule must serve it before the
        # sizes (the task among them) are linked from it into the model: else --model nrms
        # --data.dataset mind-sample trained NRMS on the dataset's CTR rows
        cfg = self.config[self.config.subcommand] if self.config.get("subcommand") else self.config
        data, model = cfg.get("data"), cfg.get("model")
        if self.zoo is not None and data is not None and data.get("protocol") is not None:
            check_zoo_protocol(self.zoo, data.get("dataset"), data.protocol)
        if data is None or model is None or data.get("protocol") is not None or not data.get("dataset"):
            return
        name = MODELS.name_of(pydoc.locate(str(model.get("class_path"))))
        protocol = model_protocol(resolve_dataset(data.dataset), name) if name is not None else None
        if protocol is not None:
            data.protocol = protocol

    def _join(self) -> None:
        # as kgzoo.create_model: the model's task chooses its DataModule (KG link prediction: a
        # triple split), the DataModule adapts to the model, the model takes its graphs
        self.datamodule = create_datamodule_for(self.model, self.datamodule)
        ckpt = self.config[self.config.subcommand].get("ckpt_path") if self.config.get("subcommand") else None
        saved = _kgzoo_checkpoint(ckpt) if ckpt else None
        # the weights loaded next (--pretrained's, or the kgzoo checkpoint's Lightning restores)
        # hand in the tables they carry (TransE, PLM text vectors): as load_pretrained and
        # load_checkpoint, nothing is computed only to be overwritten
        attach(self.model, self.datamodule,
               state=self._pretrained_weights() if self.pretrained is not None else saved and saved[0]["state_dict"])
        # Lightning restores a checkpoint's weights before its DataModule state: data of other
        # sizes would fail on a shape mismatch before the fingerprint check that names both
        meta = saved[1] if saved else None
        if meta and meta.get("data") and hasattr(self.datamodule, "load_state_dict"):
            self.datamodule.load_state_dict(meta["data"])

    def before_fit(self) -> None:
        self._join()
        if self.pretrained is not None:
            spec, dm = self.pretrained, self.datamodule
            try:
                load_state(self.model, self._pretrained_weights(), f"weights of {spec.name!r}")
            except PretrainedError as e:
                if dm.dataset == spec.dataset:
                    raise
                raise PretrainedError(f"weights of {spec.name!r} were trained on dataset {spec.dataset!r}, "
                                      f"--data.dataset {dm.dataset!r} has {dm.n_users} users, {dm.n_items} items: {e}") from None
            self.model.train()

    def before_test(self) -> None:
        self._join()
        self._load_pretrained_for_eval()

    def before_validate(self) -> None:
        self._join()
        self._load_pretrained_for_eval()

    def _load_pretrained_for_eval(self) -> None:
        if self.pretrained is not None:  # kgzoo test/validate --pretrained: the weights as load_pretrained gives them
            load_state(self.model, self._pretrained_weights(), f"weights of {self.pretrained.name!r}")
            self.model.eval()

    def _pretrained_weights(self) -> dict[str, Any] | None:
        """The state dict of ``--pretrained`` (checksum verified, read once), ``None`` without it."""
        if self.pretrained is not None and self._weights is None:
            self._weights = load_weights(self.pretrained)
        return self._weights


def cli_datamodule(dataset: str = "ml-100k-kg", root: Optional[str] = None, protocol: Optional[EvalProtocol] = None,
                   batch_size: Optional[int] = None, eval_batch_size: Optional[int] = None,
                   kg_batch_size: Optional[int] = None, kg_ablation: str = "real", seed: Optional[int] = None,
                   max_history: Optional[int] = None, npratio: Optional[int] = None) -> LightningDataModule:
    """The DataModule of ``kgzoo fit``/``test`` (``--data.*``): :func:`kgzoo.create_datamodule`, so
    a protocol of the ``impression`` task gives an
    :class:`~kgzoo.data.impressions.ImpressionDataModule` (a news checkpoint's, ``--zoo
    nrms/mind-sample``'s), any other a :class:`KGRecDataModule`.

    Args:
        dataset, root, protocol, kg_ablation, seed, max_history: as both DataModules.
        batch_size, eval_batch_size: ``None``: the DataModule's own default.
        kg_batch_size: :class:`KGRecDataModule` only. npratio: ``ImpressionDataModule`` only
            (negatives per click).

    Raises:
        ValueError: ``npratio`` without an impression protocol, ``kg_batch_size`` with one; and as
            :func:`kgzoo.create_datamodule`.
    """
    given = {k: v for k, v in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size),
                                ("max_history", max_history), ("kg_batch_size", kg_batch_size),
                                ("npratio", npratio)) if v is not None}
    if isinstance(protocol, dict):
        protocol = EvalProtocol.from_dict(protocol)
    dataset = resolve_dataset(dataset)  # a folder registers here
    impressions = get_task((protocol or dataset_spec(dataset).protocol).task).data == "impressions"
    wrong = "kg_batch_size" if impressions else "npratio"
    if wrong in given:
        raise ValueError(f"--data.{wrong} is for " + ("a top-K or CTR protocol, not the impression task's"
                                                      if impressions else "the impression task (--data.protocol "
                                                      "'{task: impression, split: temporal}', as --zoo gives a news "
                                                      "model on a dataset with impressions)"))
    return create_datamodule(dataset, root=root, protocol=protocol, kg_ablation=kg_ablation, seed=seed, **given)


def make_lightning_cli(args: list[str], run: bool = True, pretrained: PretrainedSpec | None = None,
                       zoo: str | None = None) -> KGZooCLI:
    """Lightning's CLI over :class:`Recommender` subclasses and the DataModule of :func:`cli_datamodule`.

    Args:
        args: the command line after ``kgzoo`` (``["fit", "--model", ...]``), ``--zoo`` already
            replaced by ``--config FILE`` (:func:`_with_zoo_config`).
        run: run the subcommand (``False``: only parse and instantiate).
        pretrained: weights ``fit`` starts from (:class:`KGZooCLI`). zoo: the ``--zoo`` spec
            (:class:`KGZooCLI`).
    """
    # deterministic algorithms (warn where an op has none), as every kgzoo bench cell trains: with
    # --seed_everything N a fit gives the same model again, with more than one thread too (a news
    # model's CTR backward summed in another order from run to run without them);
    # --trainer.deterministic false turns them off
    return KGZooCLI(Recommender, cli_datamodule, subclass_mode_model=True, subclass_mode_data=False,
                    args=args, run=run, save_config_kwargs={"overwrite": True},
                    parser_kwargs={"prog": "kgzoo"}, pretrained=pretrained, zoo=zoo,
                    trainer_defaults={"deterministic": "warn"})


def pretrained_cli_config(spec: PretrainedSpec, subcommand: str = "fit") -> dict[str, Any]:
    """A LightningCLI config of pretrained weights, for ``fit`` one that goes on training them: the zoo
    config of the weights' model on their dataset (:func:`zoo_cli_config`: for ``fit`` its converged schedule) with
    the model's hyper-parameters and the DataModule (dataset, protocol, KG ablation, batch sizes)
    of the manifest entry ``spec``; later ``--data.*`` (another split, ``--data.dataset``) or
    ``--model.*`` (``--model.init_args.lr``) override it.

    Raises:
        KeyError: a model or dataset that is not registered.
    """
    cfg = zoo_cli_config(f"{spec.model}/{spec.dataset}", subcommand)
    cfg["model"]["init_args"] = json_safe(spec.hparams)
    cfg["data"] = {"dataset": spec.dataset, "protocol": dict(spec.protocol), "kg_ablation": spec.kg_ablation,
                   **spec.data}
    return cfg


def zoo_spec_parts(spec: str) -> tuple[str, str, str]:
    """``--zoo MODEL[/DATASET[@PROTOCOL]]`` as ``(model, dataset, protocol key)``: the dataset
    ``ml-100k-kg`` where none is given, the key :func:`kgzoo.protocols.protocol_key` of the
    protocol fields (``"split=cold_item"``; ``""``: the dataset's default).

    Raises:
        KeyError: an unknown dataset or model. ValueError: an unknown protocol field or a bad
            value (:func:`kgzoo.protocols.parse_protocol`, naming it).
    """
    model, _, rest = spec.partition("/")
    dataset, _, protocol = rest.partition("@")
    dataset = dataset or "ml-100k-kg"
    MODELS.get(model)
    dataset_spec(dataset)
    return model, dataset, protocol_key(dataset, protocol, model) if protocol else ""


def check_zoo_protocol(spec: str, dataset: str | None, protocol: Any) -> None:
    """Refuse ``--zoo SPEC`` with a ``--data.protocol`` whose own tuned config is another file than
    the one ``SPEC`` read (``--zoo bpr/ml-100k-kg --data.protocol.split cold_item`` where
    ``bpr/ml-100k-kg@split=cold_item.yaml`` exists): the model would train under that protocol
    with another protocol's values. A protocol without a file of its own takes the dataset's, as
    its ``kgzoo bench --protocol`` cells do (:func:`kgzoo.bench.cells.cell_config`); another
    ``--data.dataset`` is not checked.

    Args:
        spec: the ``--zoo`` value. dataset: the parsed ``--data.dataset``. protocol: the parsed
            ``--data.protocol`` (a mapping of :class:`~kgzoo.data.protocol.EvalProtocol` fields).

    Raises:
        ValueError: naming both files and the ``--zoo`` that reads the protocol's own.
    """
    model, zoo_dataset, key = zoo_spec_parts(spec)
    if dataset != zoo_dataset:
        return
    given = protocol_key(zoo_dataset, EvalProtocol.from_dict(
        protocol.as_dict() if hasattr(protocol, "as_dict") else dict(protocol)), model)
    own, read = (ZooConfig.load(model, zoo_dataset, protocol=k).path for k in (given, key))
    if given != key and own != read:
        raise ValueError(f"--zoo {spec} reads {read}, but --data.protocol is {given or 'the default protocol'}, "
                         f"whose own values are in {own}: give --zoo {model}/{zoo_dataset}"
                         f"{'@' + given if given else ''} instead")


def zoo_cli_config(spec: str, subcommand: str = "fit") -> dict[str, Any]:
    """A LightningCLI config from the zoo configs: ``spec`` is ``MODEL``, ``MODEL/DATASET`` or
    ``MODEL/DATASET@PROTOCOL`` (default dataset ``ml-100k-kg``; :func:`zoo_spec_parts`): under a
    protocol other than the dataset's default (``@split=cold_item``) the config of that protocol
    (:meth:`ZooConfig.load` with its key: the values ``kgzoo tune --protocol`` chose) and its split.

    Returns:
        ``{"model": {"class_path", "init_args"}, "data": {...}}`` (the model class with its
        config's ``model`` section, the DataModule with ``data``, and the ``protocol`` where the
        model's differs from the dataset's default: :func:`kgzoo.protocols.model_protocol`, a
        news model's impressions on MIND) and, for ``subcommand="fit"``,
        ``"trainer"``: the converged schedule (:meth:`ZooConfig.schedule`): ``max_epochs`` and
        the callbacks :class:`MainMetricEarlyStopping` (its ``patience`` and ``monitor``) and
        :class:`BestCheckpoint` (the same ``monitor``).

    Raises:
        KeyError: unknown model or dataset (with suggestions). ValueError: a broken config, an
            unknown protocol field.
    """
    model, dataset, key = zoo_spec_parts(spec)
    cls = MODELS.get(model)
    cfg = ZooConfig.load(model, dataset, protocol=key)
    # a news model on MIND: the impression protocol
    protocol = parse_protocol(dataset, key, model) if key else model_protocol(dataset, model)
    out: dict[str, Any] = {"model": {"class_path": f"{cls.__module__}.{cls.__qualname__}",
                                     "init_args": dict(cfg.model)},
                           "data": {"dataset": dataset, **cfg.data,
                                    **({"protocol": protocol_fields(protocol.to_dict())} if protocol is not None else {})}}
    if subcommand == "fit":
        sched = cfg.schedule(quick=False)
        out["trainer"] = {"max_epochs": sched.max_epochs, "callbacks": [
            {"class_path": f"{__name__}.MainMetricEarlyStopping",
             "init_args": {"patience": sched.patience, "monitor": sched.monitor,
                           **({"min_epochs": sched.min_epochs} if sched.min_epochs else {})}},
            {"class_path": f"{__name__}.BestCheckpoint", "init_args": {"monitor": sched.monitor}}]}
    return out


def _kgzoo_checkpoint(path: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """``(checkpoint, its "kgzoo" entry)`` of ``path`` (:func:`kgzoo.hub.checkpoint.checkpoint_meta`),
    ``None`` for a file that is not a kgzoo checkpoint."""
    try:
        return checkpoint_meta(path)
    except (PretrainedError, FileNotFoundError):
        return None


def _kgzoo_meta(path: str) -> dict[str, Any] | None:
    """The ``"kgzoo"`` entry of checkpoint ``path`` (:func:`_kgzoo_checkpoint`), ``None`` for a file
    that is not a kgzoo checkpoint."""
    saved = _kgzoo_checkpoint(path)
    return saved[1] if saved else None


def ckpt_cli_config(path: str) -> dict[str, Any] | None:
    """A LightningCLI config from a self-describing checkpoint (:mod:`kgzoo.hub.checkpoint`):
    ``{"model": {"class_path", "init_args"}, "data": {...}}``, the model class (its module
    imported, so a plugin's class registers) with the saved hyper-parameters less the sizes
    (linked from the data), the DataModule with the saved dataset, protocol, KG ablation, seed
    and batch sizes. ``None`` for a checkpoint without a ``"kgzoo"`` entry.

    A checkpoint of ``kgzoo update`` names its base data and the update's files (with their
    sha256): its extended data is rebuilt from them (:func:`kgzoo.hub.checkpoint.datamodule_from`),
    checked against the checkpoint's fingerprint and registered under its name
    (:func:`kgzoo.hub.update.register_extended`), which the config then gives.

    Raises:
        PretrainedError: the checkpoint's model class is neither registered nor importable.
        FileNotFoundError, ChecksumError, FingerprintError: an update checkpoint whose update
            files are gone or changed (named), or whose base data differs.
    """
    meta = _kgzoo_meta(path)
    if meta is None:
        return None
    if (meta.get("data") or {}).get("update"):
        ext = datamodule_from(meta["data"])
        ext.setup()
        check_fingerprint(meta["data"], ext.fingerprint, ext.dataset)
        register_extended(ext)
    cls = MODELS.get(model_name(meta))
    hp = {k: v for k, v in (meta.get("hparams") or {}).items() if k not in SIZE_KEYS and not k.startswith("_")}
    data = datamodule_arguments(meta["data"]) if (meta.get("data") or {}).get("dataset") else {}
    return {"model": {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": hp},
            **({"data": data} if data else {})}


def _with_ckpt_config(args: list[str]) -> tuple[list[str], str | None]:
    """Put ``--config FILE`` of :func:`ckpt_cli_config` first in ``args`` when they give
    ``--ckpt_path`` of a kgzoo checkpoint (later arguments override it).

    Returns:
        ``(args, path of the temporary config file or None)``; the caller removes the file.
    """
    paths, _ = take_option("--ckpt_path", args)
    cfg = ckpt_cli_config(paths[-1]) if paths else None
    if cfg is None:
        return args, None
    fd, tmp = tempfile.mkstemp(prefix="kgzoo-ckpt-", suffix=".yaml")
    with open(fd, "w") as f:
        yaml.safe_dump(cfg, f)
    return ["--config", tmp, *args], tmp


def _with_zoo_config(subcommand: str, args: list[str]) -> tuple[list[str], str | None]:
    """Replace ``--zoo SPEC`` in ``args`` by ``--config FILE`` (first, so later arguments override it).

    Returns:
        ``(args, path of the temporary config file or None)``; the caller removes the file.
    """
    for i, a in enumerate(args):
        if a == "--zoo" or a.startswith("--zoo="):
            if a == "--zoo" and i + 1 == len(args):
                raise ValueError("--zoo needs a value: MODEL, MODEL/DATASET or MODEL/DATASET@PROTOCOL")
            spec = a.split("=", 1)[1] if "=" in a else args[i + 1]
            rest = args[:i] + args[i + (1 if "=" in a else 2):]
            fd, path = tempfile.mkstemp(prefix="kgzoo-cli-", suffix=".yaml")
            with open(fd, "w") as f:
                yaml.safe_dump(zoo_cli_config(spec, subcommand), f)
            return ["--config", path, *rest], path
    return args, None


def _model_names_to_classes(args: list[str]) -> list[str]:
    """``--model NAME`` (or ``--model=NAME``) of a registered model name (``bpr``, the name every
    other kgzoo command takes) as its class path, which LightningCLI's subclass mode reads; a
    class path, a class name or a config is left as it is (``kgzoo fit --model bpr`` failed with
    jsonargparse's "Expected a dot import path string: bpr")."""
    out = list(args)
    for i, a in enumerate(out):
        value = a.split("=", 1)[1] if a.startswith("--model=") else (
            out[i + 1] if a == "--model" and i + 1 < len(out) else None)
        if value is not None and value in MODELS:
            cls = MODELS.get(value)
            path = f"{cls.__module__}.{cls.__qualname__}"
            if a == "--model":
                out[i + 1] = path
            else:
                out[i] = f"--model={path}"
    return out


def passthrough_arguments(p: argparse.ArgumentParser) -> None:
    """Every argument, options and ``--help`` included, goes to LightningCLI untouched."""
    p.prefix_chars = "\x00"
    p.add_argument("lightning_args", nargs=argparse.REMAINDER,
                   help="LightningCLI arguments: --model, --data.*, --trainer.*, --ckpt_path, --config; "
                        "--zoo MODEL[/DATASET[@PROTOCOL]] starts from that model's zoo config")


def _with_pretrained_config(subcommand: str, args: list[str]) -> tuple[list[str], str | None, PretrainedSpec | None]:
    """Replace ``--pretrained NAME_OR_FOLDER`` in ``args`` by ``--config FILE`` of
    :func:`pretrained_cli_config` (first, so later arguments override it).

    Returns:
        ``(args, path of the temporary config file or None, the weights' manifest entry or None)``.

    Raises:
        ValueError: ``--pretrained`` given twice, with ``--zoo``, with another subcommand than ``fit``,
            ``test`` or ``validate``, or with ``--ckpt_path`` (test/validate: one source of weights).
        KeyError, PretrainedError: unknown or invalid weights (:func:`kgzoo.hub.pretrained_spec`).
    """
    names, rest = take_option("--pretrained", args)
    if not names:
        return args, None, None
    if (subcommand not in ("fit", "test", "validate") or len(names) > 1
            or any(a == "--zoo" or a.startswith("--zoo=") for a in rest)):
        raise ValueError("--pretrained NAME_OR_FOLDER: once, with kgzoo fit or test, without --zoo (the weights' model "
                         "and dataset choose the zoo config)")
    if subcommand != "fit" and any(a == "--ckpt_path" or a.startswith("--ckpt_path=") for a in rest):
        raise ValueError(f"kgzoo {subcommand}: --pretrained NAME_OR_FOLDER or --ckpt_path CHECKPOINT, not both "
                         "(each gives the weights)")
    spec = pretrained_spec(names[0])
    fd, tmp = tempfile.mkstemp(prefix="kgzoo-pretrained-", suffix=".yaml")
    with open(fd, "w") as f:
        yaml.safe_dump(pretrained_cli_config(spec, subcommand), f)
    return ["--config", tmp, *rest], tmp, spec


#: LightningCLI's notices that say nothing about a ``kgzoo fit``/``test`` run, beside the library
#: warnings that :func:`kgzoo.quiet.lightning_quiet` drops for every kgzoo Trainer
_CLI_QUIET = (
    "LightningCLI's args parameter",  # kgzoo passes the parsed command line on purpose
    r"No seed found, seed set to",  # the next line, "Seed set to 0", says it (and --seed_everything sets it)
    r"Starting from v1\.9\.0, `tensorboardX` has been removed",  # the default logger is CSVLogger: as intended
)
#: and for ``test``/``validate`` only (a resumed ``fit`` needs its callbacks' states: there it stays)
_EVAL_QUIET = (
    r"Be aware that when using `ckpt_path`, callbacks used to create the checkpoint need to be provided",
)


def run_lightning(subcommand: str, args: list[str]) -> KGZooCLI:
    """Run ``kgzoo SUBCOMMAND ARGS`` (``fit``, ``test``, ``validate``) in this process: ``--model NAME``
    of a registered name turned into its class path (:func:`_model_names_to_classes`), ``--pretrained``,
    ``--zoo`` and a kgzoo ``--ckpt_path`` (test/validate) turned into configs first, then
    :func:`make_lightning_cli`; the temporary config files are removed. Known-harmless library
    notices are dropped inside this call only (:func:`kgzoo.quiet.lightning_quiet`,
    :data:`_CLI_QUIET`, :data:`_EVAL_QUIET`); every other warning shows.

    Returns:
        The finished :class:`KGZooCLI` (``.model``, ``.datamodule``, ``.trainer.callback_metrics``).

    Raises:
        as :func:`_with_pretrained_config`, :func:`zoo_cli_config`, :func:`ckpt_cli_config` and LightningCLI.
    """
    tmps: list[str | None] = []
    try:
        cli_args, tmp_pre, spec = _with_pretrained_config(subcommand, _model_names_to_classes(list(args)))
        tmps.append(tmp_pre)
        zoo = take_option("--zoo", cli_args)[0]
        cli_args, tmp = _with_zoo_config(subcommand, cli_args)
        tmps.append(tmp)
        cli_args, tmp_ckpt = _with_ckpt_config(cli_args) if subcommand in ("test", "validate") else (cli_args, None)
        tmps.append(tmp_ckpt)
        with lightning_quiet(*_CLI_QUIET, *(_EVAL_QUIET if subcommand in ("test", "validate") else ())):
            return make_lightning_cli([subcommand, *cli_args], pretrained=spec, zoo=zoo[0] if zoo else None)
    finally:
        for t in tmps:
            if t:
                os.unlink(t)


def _run(subcommand: str, args: argparse.Namespace) -> int:
    run_lightning(subcommand, list(args.lightning_args))
    return 0


def fit_command(args: argparse.Namespace) -> int:
    """``kgzoo fit ...``: train with LightningCLI, then say where the checkpoint went (the
    :class:`BestCheckpoint` of ``--zoo``/``--pretrained``, else Lightning's own, under
    ``--trainer.default_root_dir`` or ``./lightning_logs``) and how to test it; returns 0."""
    cli = run_lightning("fit", list(args.lightning_args))
    ckpt = getattr(cli.trainer.checkpoint_callback, "best_model_path", "") if cli.trainer.is_global_zero else ""
    if ckpt:
        path = os.path.abspath(ckpt)
        console().print(f"checkpoint: {path}\n  test it: kgzoo test --ckpt_path {path}", soft_wrap=True)
    return 0


def test_command(args: argparse.Namespace) -> int:
    """``kgzoo test ...``: test a checkpoint with LightningCLI; returns 0."""
    return _run("test", args)
