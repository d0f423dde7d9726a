"""Incremental updates: fold new interactions, triples, items and users into a trained model
without retraining it (issue 15, part 7; ``kgzoo update``).

:func:`update_model` extends the model's data (:func:`kgzoo.data.extend.extend_data`: every id
kept, new ones appended), builds the extended data's DataModule under the same protocol with the
base's split kept (:func:`keep_base_split`: the new rows train, the test pairs are the base's), grows
the model (:meth:`kgzoo.models.base.Recommender.update`: trained rows unchanged, graphs rebuilt,
new rows by fold-in and KG/graph neighbours) and optionally fine-tunes it for a few epochs on the
new train interactions plus a replay sample of the base ones (against forgetting: experience
replay, Rolnick et al., NeurIPS 2019). :func:`update_checkpoint` does it for a checkpoint file and
writes a new self-describing checkpoint (:func:`write_checkpoint`) whose data entry names the base's
entry and the update's files, so that :func:`kgzoo.load_checkpoint` rebuilds the extended data from
the path alone (:func:`extended_datamodule`); :func:`kgzoo.hub.checkpoint.update_checkpoint` is
``kgzoo update``.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import lightning as L
import pandas as pd
import torch

from ..api import has_nothing_to_train, pretrain_extras
from ..data.datamodule import KGRecDataModule, kg_phase_order
from ..data.download import ChecksumError, sha256_file
from ..data.extend import SIDE_TABLES, UPDATE_FRAMES, Growth, extend_data
from ..data.folders import read_tables, table_roles
from ..data.frames import Origin
from ..data.kgdata import KGRecData
from ..data.protocol import EvalProtocol
from ..data.readers._io import MIN_TEXT_MATCH, DataFormatError
from ..data.spec import DatasetSpec, register_dataset
from ..ops.sampling import uniform_negatives
from ..quiet import FIT_STOPPED, NO_VALIDATION, lightning_quiet


@dataclass
class Update:
    """The result of :func:`update_model`.

    Attributes:
        model: the grown (and fine-tuned) model, in eval mode. datamodule: the extended data's
        :class:`KGRecDataModule` (set up). growth: how the ids grew. report: counts (new users,
        items, entities, rows, cleaning) and ``seconds`` (wall clock of the update).
    """

    model: Any
    datamodule: KGRecDataModule
    growth: Growth
    report: dict[str, Any] = field(default_factory=dict)


def check_updatable(datamodule: KGRecDataModule) -> None:
    """Refuse data an update cannot extend with stable ids.

    Raises:
        ValueError: a task other than ``topk``, a k-core protocol (its filter could renumber
        users and items), a cold-item split (drawn over the items: the extended items would
        redraw which items are cold, and the base's test items could enter training), a KG
        ablation other than ``real`` (retrain on the extended data).
    """
    p = datamodule.protocol
    if p.task != "topk":
        raise ValueError(f"update: the {p.task} task has no incremental update (topk only); retrain")
    if p.split == "cold_item":
        raise ValueError("update: a cold-item split is drawn over the items, so the extended items would redraw "
                         "which items are cold (the base's test items could enter training); retrain on the extended "
                         "data instead")
    if p.k_core > 0:
        raise ValueError(f"update: the protocol's k-core filter (k_core={p.k_core}) could renumber users and items of "
                         "the extended data; retrain on it instead")
    if datamodule.kg_ablation_kind != "real":
        raise ValueError(f"update: a model trained under KG ablation {datamodule.kg_ablation_kind!r} is not extended; "
                         "retrain on the extended data")


#: the base splits an update keeps (:func:`keep_base_split`): drawn over all rows, they would be
#: drawn anew over the extended rows
REDRAWN_SPLITS = ("random", "temporal", "loo")


def keep_base_split(base: KGRecDataModule, data: KGRecData) -> tuple[KGRecData, EvalProtocol]:
    """The extended ``data`` with the base's split fixed, and the protocol that reads it.

    A random (temporal, leave-one-out) split is drawn from one permutation of all rows, so over
    the extended rows it is another split: on ml-100k-kg, 4 new rows moved 7,741 of the 9,598 test
    pairs to pairs the base model had trained on, and test NDCG@10 of the unchanged BPR read 0.376
    for 0.297. Here every base row keeps its part (``given_split`` 0 train / 1 valid / 2 test, -1
    for a row the base split left out) and every new row is a training row, as for a base with
    a source split (:func:`kgzoo.data.extend.extend_data`): the update is tested on the base's
    test pairs. The protocol is the base's with ``split="given"``.

    Args:
        base: the base DataModule (set up). data: :func:`extend_data` of ``base.data``: its rows
            first, in order, then the new ones.

    Returns:
        ``(data with given_split, protocol)``; a base of another split: ``(data, base.protocol)``.

    Raises:
        RuntimeError: ``data`` does not start with the base's rows.
    """
    if base.protocol.split not in REDRAWN_SPLITS:
        return data, base.protocol
    n = base.data.n_interactions
    if not torch.equal(data.interactions[:n], base.data.interactions):
        raise RuntimeError("update: the extended interactions do not start with the base's rows")
    labels = torch.zeros(data.n_interactions, dtype=torch.long)
    labels[:n] = -1
    for k, part in enumerate((base.split.train, base.split.valid, base.split.test)):
        labels[part] = k
    return data.replace(given_split=labels), dataclasses.replace(base.protocol, split="given")


def new_train_pairs(datamodule: KGRecDataModule, data: KGRecData, growth: Growth) -> torch.Tensor:
    """BoolTensor ``[N_train]``: the train pairs of ``datamodule`` (the split of ``data``, the
    extended data) that the update added (``growth.new_interactions``, rows of ``data``; matched
    by (user, item), as the protocol's preparation may drop rows)."""
    I = data.n_items
    added = data.interactions[growth.new_interactions]
    t = datamodule.train_interactions
    return torch.isin(t[:, 0] * I + t[:, 1], added[:, 0] * I + added[:, 1])


class FineTuneBatches:
    """The fine-tuning batches of :func:`fine_tune`: one epoch per ``iter``, with a length, handed
    to a Lightning Trainer as it is (as :meth:`KGRecDataModule.train_dataloader`'s batches).

    Each epoch draws ``replay x |new|`` base train pairs uniformly (a new sample per epoch),
    shuffles them with the new pairs, pairs each with a uniform negative item that is not a train
    positive of its user, and yields batches of ``datamodule.batch_size`` rows: ``user``,
    ``pos_item``, ``neg_item`` LongTensors ``[B]`` (with ``kg_batch_size`` corrupted KG triples,
    ``head``, ``relation``, ``pos_tail``, ``neg_tail`` ``[K]``, for a model with a KG loss), all
    from one ``torch.Generator`` seeded with ``seed``. Experience replay against forgetting:
    Rolnick et al., NeurIPS 2019.

    Args:
        datamodule: the extended data's DataModule (set up). new: BoolTensor ``[N_train]``: the new
        rows of ``datamodule.train_interactions``. replay: base pairs per new pair. seed: the
        sampling's seed. kg: add KG batches (the model's ``uses_kg_batches``, with triples).
        kg_phase: yield the epoch's CF batches, then its KG batches (the model's ``kg_phase``:
        :func:`kgzoo.data.datamodule.kg_phase_order`, the same draws); needs ``kg``.
    """

    def __init__(self, datamodule: KGRecDataModule, new: torch.Tensor, replay: float, seed: int, kg: bool,
                 kg_phase: bool = False) -> None:
        self.dm, self.kg, self.kg_phase = datamodule, kg, kg and kg_phase
        self.pairs, self.old = datamodule.train_interactions[new], datamodule.train_interactions[~new]
        self.n_replay = min(int(round(replay * self.pairs.shape[0])), self.old.shape[0])
        self.g = torch.Generator().manual_seed(seed)

    @property
    def rows_per_epoch(self) -> int:
        """New plus replayed pairs of one epoch."""
        return int(self.pairs.shape[0] + self.n_replay)

    def __len__(self) -> int:
        n = -(-self.rows_per_epoch // self.dm.batch_size)
        return 2 * n if self.kg_phase else n

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        dm, g, bs = self.dm, self.g, self.dm.batch_size
        rows = self.pairs
        if self.n_replay:
            rows = torch.cat([rows, self.old[torch.randint(self.old.shape[0], (self.n_replay,), generator=g)]])
        rows = rows[torch.randperm(rows.shape[0], generator=g)]
        neg = uniform_negatives(rows[:, 0], dm.n_items, dm.bpr_sampler.known, g)
        batches = []
        for s in range(0, rows.shape[0], bs):
            batch = {"user": rows[s:s + bs, 0], "pos_item": rows[s:s + bs, 1], "neg_item": neg[s:s + bs]}
            if self.kg:
                batch.update(dm.kg_sampler.sample(dm.kg_batch_size, g))
            batches.append(batch)
        yield from kg_phase_order(batches) if self.kg_phase else batches


def fine_tune(model: Any, datamodule: KGRecDataModule, new: torch.Tensor, epochs: int, replay: float = 1.0,
              seed: int = 0) -> dict[str, Any]:
    """A few epochs of the model's own training on the new train pairs plus a replay sample
    (:class:`FineTuneBatches`), through a Lightning Trainer: the model's ``training_step``
    (its ``loss``, the base's finite-loss check), its ``configure_optimizers`` (a fresh Adam) and
    its epoch hooks, in train mode (dropout on) on the device the model is on, without
    validation, logger or checkpoint.

    Args:
        model: a :class:`~kgzoo.models.base.Recommender` attached to ``datamodule``'s graphs.
        new: BoolTensor ``[N_train]``: the new rows of ``datamodule.train_interactions``.
        epochs: passes over the new pairs (0: none). replay: base pairs per new pair.
        seed: seed of the sampling.

    Returns:
        ``{"epochs", "rows per epoch", "train/loss"}``: the last epoch's mean loss per row, as
        the model logs it (``None`` when nothing trained); the model is left in eval mode.

    Raises:
        ValueError: ``epochs < 0`` or ``replay < 0``. DivergedError: a NaN or infinite loss.
    """
    if epochs < 0 or replay < 0:
        raise ValueError(f"fine_tune: epochs={epochs} and replay={replay} must be >= 0")
    kg = bool(getattr(model, "uses_kg_batches", False) and datamodule.data.n_triples)
    batches = FineTuneBatches(datamodule, new, replay, seed, kg, kg_phase=bool(getattr(model, "kg_phase", False)))
    out: dict[str, Any] = {"epochs": epochs, "rows per epoch": 0, "train/loss": None}
    if epochs == 0 or not batches.pairs.shape[0] or has_nothing_to_train(model):
        return out
    device = next(model.parameters()).device
    model.train()  # Lightning keeps the modes it finds: dropout on, as training
    with lightning_quiet(NO_VALIDATION, lines=(FIT_STOPPED,)):  # no validation on purpose; the Trainer inside: its banner
        trainer = L.Trainer(accelerator=device.type, devices=[device.index] if device.index is not None else 1,
                            max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0)
        trainer.fit(model, train_dataloaders=batches)
    model.eval()
    loss = trainer.callback_metrics.get("train/loss")
    out["rows per epoch"], out["train/loss"] = batches.rows_per_epoch, None if loss is None else float(loss)
    return out


def check_side_tables(model: Any, tables: Sequence[str]) -> None:
    """Refuse side tables (``user_features``, ``item_features``, ``social``) that ``model``'s
    update does not read (:attr:`~kgzoo.models.base.Recommender.update_reads`): they would be
    carried into the data and ignored by the model.

    Raises:
        ValueError: naming the model and the table.
    """
    reads = set(getattr(model, "update_reads", ()))
    for t in tables:
        if t not in reads:
            name = getattr(model, "model_name", type(model).__name__)
            raise ValueError(f"update: {name} does not read the {t} table (it reads "
                             f"{', '.join(sorted(reads)) or 'no side table'}): leave it out, or retrain a model "
                             "that reads it")


def update_model(model: Any, datamodule: KGRecDataModule, interactions: pd.DataFrame | None = None,
                 triples: pd.DataFrame | None = None, links: pd.DataFrame | None = None,
                 item_text: pd.DataFrame | None = None, user_features: pd.DataFrame | None = None,
                 item_features: pd.DataFrame | None = None, social: pd.DataFrame | None = None,
                 name: str | None = None, epochs: int = 0,
                 replay: float = 1.0, seed: int = 0, min_text_match: float = MIN_TEXT_MATCH,
                 origins: dict[str, Origin] | None = None) -> Update:
    """Fold new data into a trained model (module docstring).

    Args:
        model: a trained model attached to ``datamodule`` (``kgzoo.load_checkpoint(...).model``).
        datamodule: its data. interactions, triples, links, item_text, user_features,
            item_features, social: the new rows, frames of raw ids
            (:func:`kgzoo.data.extend.extend_data`); a side table the model does not read is
            refused (:func:`check_side_tables`).
        name: the extended dataset's name. epochs, replay, seed: :func:`fine_tune` (``epochs=0``:
            the closed-form update alone). min_text_match, origins: as :func:`extend_data`.

    Returns:
        :class:`Update` (model in eval mode; ``report["seconds"]`` the wall clock of extending,
        growing and fine-tuning).

    Raises:
        ValueError: see :func:`check_updatable` and :func:`check_side_tables`.
        NotImplementedError: a model without an update (named). DataFormatError: a bad frame
        (frame or file, line, field).
    """
    start = time.perf_counter()
    datamodule.setup()
    check_updatable(datamodule)
    model.check_update()
    side = {"user_features": user_features, "item_features": item_features, "social": social}
    check_side_tables(model, [t for t in SIDE_TABLES if side[t] is not None])
    data, growth = extend_data(datamodule.data, interactions, triples, links, item_text, **side, name=name,
                               min_text_match=min_text_match, origins=origins)
    data, protocol = keep_base_split(datamodule, data)
    dm = KGRecDataModule.from_data(data, protocol=protocol, batch_size=datamodule.batch_size,
                                   eval_batch_size=datamodule.eval_batch_size, kg_batch_size=datamodule.kg_batch_size,
                                   seed=datamodule.seed)
    dm.extended_from = (datamodule, growth)
    dm.setup()
    dm.adapt_to(model)
    model.eval()
    report: dict[str, Any] = dict(growth.counts)
    report.update(model.update(dm.graphs(), growth, pretrain_extras(model, dm)))
    new = new_train_pairs(dm, data, growth)
    report["new train pairs"] = int(new.sum())
    report["fine-tune"] = fine_tune(model, dm, new, epochs, replay, seed)
    report["seconds"] = time.perf_counter() - start
    return Update(model, dm, growth, report)


def read_update(paths: Sequence[str | Path]) -> tuple[dict[str, pd.DataFrame], dict[str, Origin], dict[str, str]]:
    """The update's frames from a folder or table files (``.csv``/``.tsv``/``.parquet``, each
    file's role given by its columns, :data:`kgzoo.data.folders.TABLE_ROLES`).

    Returns:
        ``(frames, origins, files)``: role -> DataFrame, role -> :class:`Origin`, role ->
        absolute path.

    Raises:
        FileNotFoundError: a path that does not exist. DataFormatError: a file that is no table,
        whose columns match no role, or a second table of one role; no table at all.
    """
    files: list[Path] = []
    for given in paths:
        p = Path(given).expanduser().resolve()
        if not p.exists():
            raise FileNotFoundError(f"update data {given}: no such file or folder")
        files += sorted(q for q in p.iterdir() if q.is_file() and not q.name.startswith(".")) if p.is_dir() else [p]
    roles = table_roles(files)
    for role, p in roles.items():
        if role not in UPDATE_FRAMES:
            raise DataFormatError(p, 1, None, f"a {role} table: an update takes {', '.join(UPDATE_FRAMES)}")
    if not roles:
        raise DataFormatError(paths[0] if paths else "", 0, None, "no table to add")
    frames, origins = read_tables(roles)
    return frames, origins, {r: str(p) for r, p in roles.items()}


def write_checkpoint(model: Any, datamodule: KGRecDataModule, path: str | Path, update: dict[str, Any]) -> Path:
    """A self-describing checkpoint (``checkpoint["kgzoo"]``, as
    :meth:`~kgzoo.models.base.Recommender.on_save_checkpoint` writes it) of an updated model; its
    data entry is the extended DataModule's state with ``update``: the base's data entry and the
    update's files (:func:`extended_datamodule` rebuilds the data from it)."""
    ckpt: dict[str, Any] = {"state_dict": model.state_dict(), "epoch": 0, "global_step": 0,
                            "pytorch-lightning_version": L.__version__,
                            "hyper_parameters": {k: v for k, v in dict(model.hparams).items() if not k.startswith("_")}}
    model.on_save_checkpoint(ckpt)
    ckpt["kgzoo"]["data"] = {**datamodule.state_dict(), "update": update}
    ckpt["kgzoo"]["fingerprint"] = datamodule.fingerprint
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, p)
    return p


def extended_datamodule(data: dict[str, Any], base: KGRecDataModule) -> KGRecDataModule:
    """The DataModule of an updated checkpoint's data entry (``data["update"]``): ``base``, the
    DataModule of its base entry (built by :func:`kgzoo.hub.checkpoint.datamodule_from`, itself
    possibly an update), extended again with the update's files, each checked against the sha256
    the entry records (``up["sha256"]``, role -> hex; absent in checkpoints written before it was
    recorded, whose data the caller's fingerprint check still covers).

    Raises:
        FileNotFoundError: an update file that is gone (named, with the checkpoint's way out).
        ChecksumError: an update file whose bytes changed since ``kgzoo update`` (naming the
        file and both sha256). DataFormatError: as :func:`read_update`.
    """
    up = data["update"]
    for role, f in up["files"].items():
        if not Path(f).is_file():
            raise FileNotFoundError(f"update file {f} ({role}), read by kgzoo update into data {up['name']!r}, is "
                                    "gone: the extended data cannot be rebuilt without it")
        want = (up.get("sha256") or {}).get(role)
        if want is not None and (got := sha256_file(f)) != want:
            raise ChecksumError(f"update file {f} ({role}) has sha256 {got}, but kgzoo update read {want}: the "
                                f"file changed since, so data {up['name']!r} cannot be rebuilt")
    base.setup()
    frames, origins, _ = read_update(list(up["files"].values()))
    ext, growth = extend_data(base.data, **frames, name=up["name"], min_text_match=up["min_text_match"],
                              origins=origins)
    protocol = EvalProtocol.from_dict(data["protocol"])
    if protocol.split == "given" and base.protocol.split in REDRAWN_SPLITS:  # written with keep_base_split
        ext, _ = keep_base_split(base, ext)
    dm = KGRecDataModule.from_data(ext, protocol=protocol, seed=data.get("seed"),
                                   **{k: data[k] for k in ("batch_size", "eval_batch_size", "kg_batch_size")
                                      if k in data})
    dm.extended_from = (base, growth)
    return dm


def register_extended(datamodule: KGRecDataModule) -> str:
    """Register the extended data of an update (``datamodule``: :func:`update_model`'s or
    :func:`extended_datamodule`'s, built by :meth:`KGRecDataModule.from_data`) as a dataset under
    its name, so that it is given by name like any other (``kgzoo test --ckpt_path`` of an update
    checkpoint, whose LightningCLI builds its DataModule from a name). Its entry's builder returns
    the extended data unchanged (identity ``{"extended": sha}`` kept, so the fingerprint is the
    checkpoint's), its protocol is ``datamodule``'s and ``extends`` its ``extended_from`` (so
    KG pre-computations grow the base's, as in :func:`update_model`).

    Returns:
        The registered name. Registering the same contents again returns it.

    Raises:
        ValueError: the name is registered with other contents.
    """
    data = datamodule._given
    if data is None or datamodule.extended_from is None:
        raise ValueError(f"register_extended: {datamodule!r} is not the extended data of an update")
    base = datamodule.extended_from[0]
    spec = DatasetSpec(name=datamodule.dataset, domain="user", files=(), builder=lambda folder: data,
                       description=f"{base.dataset!r} extended by kgzoo update", licence="that of the base data",
                       citation="", protocol=datamodule.protocol, origin="update:" + ",".join(f"{k}={v}" for k, v in sorted(data.source_checksums.items())),
                       extends=datamodule.extended_from)
    return register_dataset(spec).name


__all__ = ["FineTuneBatches", "Update", "check_updatable", "extended_datamodule", "fine_tune", "keep_base_split",
           "new_train_pairs", "read_update",
           "register_extended", "update_model", "write_checkpoint"]
