"""KGRecDataModule: one dataset under one protocol, as Lightning dataloaders.

Train batches are dicts of LongTensors: ``user, pos_item, neg_item`` (BPR) plus
``head, relation, pos_tail, neg_tail`` when :attr:`kg_batch_size` > 0 (empty LongTensors when the
KG has no triples, e.g. ``kg_ablation="none"``; for a model that trains them in a phase of its own,
:attr:`KGRecDataModule.kg_phase`, the epoch's batches without them, then the same batches whole:
:func:`kg_phase_order`), or
``user, item, label`` for the ``ctr`` task, plus, for a model that scores from the user's clicks
(``uses_history``: the news models), ``history [B, H]`` and ``history_mask [B, H]``: the user's
clicked items of the train split (label 1; never a valid or test row), the row's own item masked
out of a training row's history (DKN's protocol, Wang et al., WWW 2018, section 5.1; its
candidate would otherwise give its own label away). CTR evaluation batches carry the same keys.
Evaluation batches (``topk``) carry
``user`` ``[B]`` and, as (batch row, item) pairs, the items to mask (``mask_row``,
``mask_col``: train items, plus valid items at test time) and the ground truth
(``target_row``, ``target_col``); under the ``cold_item`` split also ``item_mask`` BoolTensor
``[I]`` (True: not a candidate for any user; every item but the stage's cold items). Every
user with a target is evaluated exactly once, also
under DDP: rank ``r`` of ``w`` takes users ``r::w`` (no padding sampler).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence, TypeVar

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import IterableDataset

from ..dist import rank_world
from .datasets import dataset_spec, load_data, resolve_dataset
from .graphs import Graphs
from .kgdata import KGRecData, content_checksum
from .protocol import EvalProtocol, Split, check_fingerprint, check_leakage, default_protocol_for
from ..ops.csr import csr_padded, csr_rows, sparse_csr, to_csr
from .sampling import BPRSampler, KGSampler
from .spec import history_cap, saved_folder

# the train loader is an IterableDataset with a length (Lightning's num_training_batches); it
# always loads in the main process, so Lightning's caution about workers does not apply
warnings.filterwarnings("ignore", message="Your `IterableDataset` has `__len__` defined")


def apply_kg_ablation(triples: Tensor, n_entities: int, kind: str, seed: int) -> tuple[Tensor, str]:
    """Replace the KG for a robustness study.

    Args:
        triples: LongTensor ``[M, 3]``. kind: ``"real"``; ``"none"`` (no triples);
            ``"shuffled"`` (tails permuted within each relation); ``"noisy:P"`` (a fraction
            ``P`` of triples replaced by random head, relation, tail).

    Returns:
        ``(triples, canonical kind)``.

    Raises:
        ValueError: an unknown kind or ``P`` outside ``[0, 1]``.
    """
    g = torch.Generator().manual_seed(seed + 7919)
    if kind == "real":
        return triples, kind
    if kind == "none":
        return triples[:0], kind
    if kind == "shuffled":
        out = triples.clone()
        order = torch.argsort(triples[:, 1], stable=True)
        rel = triples[order, 1]
        # permute tails inside each relation's block: sort by (relation, random key)
        key = torch.rand(order.numel(), generator=g)
        inner = torch.argsort(rel.double() * 2 + key.double(), stable=True)
        out[order, 2] = triples[order[inner], 2]
        return out, kind
    if kind.startswith("noisy:"):
        try:
            p = float(kind.split(":", 1)[1])
        except ValueError:
            p = -1.0
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"kg_ablation {kind!r}: P must be a number in [0, 1]")
        out = triples.clone()
        m = out.shape[0]
        idx = torch.randperm(m, generator=g)[: int(round(p * m))]
        n_rel = int(triples[:, 1].max()) + 1 if m else 1
        out[idx, 0] = torch.randint(n_entities, (idx.numel(),), generator=g)
        out[idx, 1] = torch.randint(n_rel, (idx.numel(),), generator=g)
        out[idx, 2] = torch.randint(n_entities, (idx.numel(),), generator=g)
        return out, f"noisy:{p:g}"
    raise ValueError(f"kg_ablation: unknown kind {kind!r}; expected real, none, shuffled or noisy:P")


#: the keys of the corrupted KG triples of a training batch
KG_KEYS = ("head", "relation", "pos_tail", "neg_tail")


def kg_phase_order(batches: list[dict[str, Tensor]]) -> list[dict[str, Tensor]]:
    """The batches of an epoch for a model that trains its KG loss in a phase of its own
    (``Recommender.kg_phase``; KGAT's alternating optimisation, Wang et al., KDD 2019, section
    3.4.2): first the CF part of every batch (``user, pos_item, neg_item``: the CF phase), then
    every batch as it is (the KG phase: its ``head, relation, pos_tail, neg_tail`` KG triples and
    the CF triples that the model also trains TransR on), so both phases take the draws that
    the joint loss takes from the same batches.

    Args:
        batches: ``B`` dicts of LongTensors, each with the BPR and the KG keys.

    Returns:
        ``2B`` dicts: ``B`` CF batches (views of the same tensors), then the ``B`` batches given.

    Raises:
        KeyError: a batch without the KG keys (naming it).
    """
    for i, b in enumerate(batches):
        if "head" not in b:
            raise KeyError(f"kg_phase_order: batch {i} has no KG triples (keys {sorted(b)}); a KG phase needs "
                           "kg_batch_size > 0")
    return [{k: v for k, v in b.items() if k not in KG_KEYS} for b in batches] + list(batches)


class EpochIterable(IterableDataset):
    """A training set that yields one epoch per ``__iter__`` and keys that epoch's draws (order,
    negatives) by its number (:meth:`next_epoch`): the fitting Trainer's ``current_epoch`` where
    there is one, so a run resumed from a checkpoint (:class:`kgzoo.bench.experiment.ResumePoint`)
    draws the epochs an uninterrupted run draws, else the count of earlier ``__iter__`` calls.
    The base of the top-K/CTR, impression and triple training sets."""

    def __init__(self, dm: L.LightningDataModule) -> None:
        self.dm = dm
        self.epoch = 0

    def next_epoch(self) -> int:
        """The number of the epoch to draw now (int >= 0); the next call without a Trainer counts on from it.

        Under a fitting Trainer: the fit loop's count of processed epochs (the number Lightning
        gives samplers, ``set_epoch``), which is ``current_epoch`` while an epoch trains, and also
        the resumed epoch when a fit resumed from an epoch's end fetches its first batch ahead,
        while setting its data up (a training set without a length, such as the triple set under
        its DataLoader, is prefetched there), before ``current_epoch`` counts the restored epoch:
        ``current_epoch`` then drew the last saved epoch's batches again (TransE/TransR resumed
        off the uninterrupted run on ml-100k-kg)."""
        trainer = getattr(self.dm, "trainer", None)
        if trainer is not None and trainer.training:
            self.epoch = trainer.fit_loop.epoch_progress.current.processed
        self.epoch += 1
        return self.epoch - 1


def batches_per_rank(batches: int, dataset: str, batch_size: int) -> int:
    """The training batches each rank takes of an epoch's ``batches`` (drawn identically on every
    rank, dealt ``r::w`` after truncation to a multiple of the world size, :func:`kgzoo.dist.rank_world`):
    ``batches // w`` under DDP, ``batches`` in one process. The one check of every training set
    (top-K/CTR, impressions, triples).

    Raises:
        ValueError: at least one but fewer batches than ranks (each rank would train on none),
            naming ``dataset`` and ``batch_size``.
    """
    world = rank_world()[1]
    if world > 1 and 0 < batches < world:
        raise ValueError(f"{dataset}: batch_size={batch_size} gives {batches} training batches per epoch, "
                         f"fewer than the {world} ranks (each rank would train on none); lower batch_size")
    return batches // world if world > 1 else batches


_Batch = TypeVar("_Batch")


def rank_share(batches: Sequence[_Batch], dataset: str, batch_size: int) -> Sequence[_Batch]:
    """This rank's part of an epoch's training ``batches`` (the same sequence on every rank):
    ``batches[r::w]`` after truncation to a multiple of the world size ``w``
    (:func:`batches_per_rank` of them, the last ``len % w`` left out, so every rank steps alike),
    every batch in one process. The one sharding of every training set (top-K/CTR, impressions,
    triples).

    Raises:
        ValueError: as :func:`batches_per_rank`.
    """
    rank, world = rank_world()
    return batches[rank:batches_per_rank(len(batches), dataset, batch_size) * world:world]


class _TrainBatches(EpochIterable):
    """One epoch of training batches per ``__iter__``, the same on every rank, sharded by rank
    (under the DataModule's ``kg_phase``: each rank's CF batches, then its KG batches,
    :func:`kg_phase_order`); epoch ``e`` draws from a generator seeded by the DataModule's seed and
    ``e`` (:meth:`EpochIterable.next_epoch`)."""

    def _batches(self) -> list[dict[str, Tensor]]:
        dm = self.dm
        g = torch.Generator().manual_seed(dm.seed * 1_000_003 + self.next_epoch())
        if dm.trains_on_rows:
            idx = dm.split.train[torch.randperm(dm.split.train.numel(), generator=g)]
            x = dm.data.interactions[idx]
            full = {"user": x[:, 0], "item": x[:, 1], "label": dm.data.label[idx]}
        else:
            full = dm.bpr_sampler.epoch(g)
        n = next(iter(full.values())).numel()
        bs = dm.batch_size
        batches = [{k: v[s:s + bs] for k, v in full.items()} for s in range(0, n, bs)]
        if dm.serves_history and dm.trains_on_rows:  # a labelled row's history (BPR triples take none)
            for b in batches:
                b.update(dm.histories(b["user"], b["item"]))
        if dm.kg_batch_size > 0 and dm.kg_sampler is not None:
            if dm.kg_sampler.triples.numel():
                kg = dm.kg_sampler.sample(dm.kg_batch_size * len(batches), g)
            else:  # an empty KG (kg_ablation="none"): the keys are there, with no triples
                kg = {k: torch.zeros(0, dtype=torch.long) for k in KG_KEYS}
            for i, b in enumerate(batches):
                b.update({k: v[i * dm.kg_batch_size:(i + 1) * dm.kg_batch_size] for k, v in kg.items()})
        return batches

    def __len__(self) -> int:
        """Batches this rank yields per epoch (Lightning's ``num_training_batches``: progress
        totals, and hooks that act on an epoch's last step)."""
        dm = self.dm
        n = dm.split.train.numel() if dm.trains_on_rows else dm.bpr_sampler.users.numel()
        mine = batches_per_rank(-(-n // dm.batch_size), dm.dataset, dm.batch_size)
        return 2 * mine if dm.kg_phase else mine

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        mine = rank_share(self._batches(), self.dm.dataset, self.dm.batch_size)
        yield from kg_phase_order(mine) if self.dm.kg_phase else mine


class StageBatches(IterableDataset):
    """Evaluation batches of one stage ("valid" or "test") for this rank: the one way a kgzoo
    DataModule hands evaluation batches to Lightning (top-K and CTR: :class:`_EvalBatches`;
    impressions: :class:`kgzoo.data.impressions._EvalImpressions`), as it is, without a
    ``torch.utils.data.DataLoader`` around it (which would only convert each ready-made batch
    again; workers, samplers and pinning do not apply to batches built in memory).

    The batches are a function of the split alone, so they are built at the first ``iter`` by the
    subclass's ``_build(rank, world)`` (this rank's share: DDP scores each user, row or impression
    on one rank) and kept, per rank and world size, for every later one: a ``Trainer.fit``
    evaluates each epoch with the loader it asked for once. The cache lives as long as the loader.
    """

    def __init__(self, dm: Any, stage: str) -> None:
        self.dm, self.stage = dm, stage
        self._cache: tuple[tuple[int, int], list[dict[str, Tensor]]] | None = None

    # no __len__, as under the DataLoader before: Lightning runs the evaluation's epoch-end hooks
    # (and their DDP metric sync) on every rank, also one without batches
    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        return iter(self._batches())

    def _batches(self) -> list[dict[str, Tensor]]:
        key = rank_world()
        if self._cache is None or self._cache[0] != key:
            self._cache = key, list(self._build(*key))
        return self._cache[1]

    def _build(self, rank: int, world: int) -> Iterator[dict[str, Tensor]]:
        raise NotImplementedError(f"{type(self).__name__} builds no batches")


class _EvalBatches(StageBatches):
    """Top-K and CTR evaluation batches of one stage for this rank (:class:`StageBatches`).

    Rebuilding the masks and targets (``csr_rows`` over the train, valid and test lists) cost
    about 1.3 ms of a 16 ms BPR evaluation on ml-100k-kg, hence the cache. It holds the
    seen-item masks of the stage's users as index pairs (16 bytes per train interaction of an
    evaluated user; the test stage also the valid ones).
    """

    def _build(self, rank: int, world: int) -> Iterator[dict[str, Tensor]]:
        dm = self.dm
        bs = dm.eval_batch_size
        if dm.protocol.task == "ctr":
            rows = getattr(dm.split, self.stage)[rank::world]
            x = dm.data.interactions[rows]
            lab = dm.data.label[rows]
            for s in range(0, rows.numel(), bs):
                b = {"user": x[s:s + bs, 0], "item": x[s:s + bs, 1], "label": lab[s:s + bs]}
                yield {**b, **dm.histories(b["user"])} if dm.serves_history else b
            return
        target = dm.csr[self.stage]
        users = dm.eval_users(self.stage)[rank::world]
        masks = [dm.csr["train"]] + ([dm.csr["valid"]] if self.stage == "test" else [])
        extra = {}
        if dm.protocol.split == "cold_item":  # rank only this stage's cold items
            item_mask = torch.ones(dm.n_items, dtype=torch.bool)
            item_mask[target[1]] = False
            extra["item_mask"] = item_mask
        for s in range(0, users.numel(), bs):
            u = users[s:s + bs]
            mr, mc = zip(*(csr_rows(*m, u) for m in masks))
            tr, tc = csr_rows(*target, u)
            yield {"user": u, "mask_row": torch.cat(mr), "mask_col": torch.cat(mc),
                   "target_row": tr, "target_col": tc, **extra}


class DataSizes:
    """The id-space sizes of a DataModule's set-up ``data`` (a :class:`KGRecData`), as properties,
    and the constructor arguments they give a model (:meth:`model_kwargs`)."""

    data: KGRecData
    task: str

    @property
    def n_users(self) -> int:
        return self.data.n_users

    @property
    def n_items(self) -> int:
        return self.data.n_items

    @property
    def n_entities(self) -> int:
        return self.data.n_entities

    @property
    def n_relations(self) -> int:
        return self.data.n_relations

    def __repr__(self) -> str:
        # LightningDataModule.__str__ describes DataLoaders; these loaders are plain iterables of
        # batches (it raised AttributeError on them), and naming them would set the data up
        return f"{type(self).__name__}({self.dataset!r}, protocol={self.protocol.task}/{self.protocol.split})"

    __str__ = __repr__

    def model_kwargs(self) -> dict[str, Any]:
        """The sizes a model is built with: ``n_users, n_items, n_entities, n_relations, task``."""
        self.setup()
        return {"n_users": self.n_users, "n_items": self.n_items, "n_entities": self.n_entities,
                "n_relations": self.n_relations, "task": self.task}


class KGRecDataModule(DataSizes, L.LightningDataModule):
    """A catalogue dataset under an :class:`EvalProtocol`, ready for a Lightning Trainer.

    Args:
        dataset: a dataset name (:func:`kgzoo.list_datasets`), the path of a folder of one's own
            files (its layout detected: :mod:`kgzoo.data.folders`) or the
            :class:`~kgzoo.data.spec.DatasetSpec` of :func:`kgzoo.from_frames`; :attr:`dataset`
            is the registered name.
        root: data root (else ``$KGZOO_DATA_DIR``, else the user cache).
        protocol: the evaluation protocol; ``None`` takes the dataset's default.
        batch_size: training rows per batch. eval_batch_size: users (or rows, ``ctr``) per
            evaluation batch. kg_batch_size: corrupted triples added to each training batch
            (0 = none; raised to the model's by :meth:`adapt_to` for models with a KG loss).
        kg_ablation: ``"real"``, ``"none"``, ``"shuffled"`` or ``"noisy:P"`` (see :func:`apply_kg_ablation`).
        seed: seed of negative sampling (default: the protocol's seed).
        max_history: clicked items kept per CTR row's history (the ``ctr`` task with a model that
            ``uses_history``), the last ones of the user's train clicks in item id order; ``None``:
            the dataset's (:attr:`~kgzoo.data.spec.DatasetSpec.max_history`; 50 for in-memory data).

    Raises:
        KeyError: unknown dataset. DataFormatError: a folder that matches no layout.
        ValueError: a protocol the dataset cannot take (``ctr``
        without labels, ``temporal`` without timestamps), a bad ablation, a batch size or
        ``max_history`` that is not an integer >= 1 (``kg_batch_size``: >= 0), fewer training
        batches than DDP ranks.
    """

    #: whether CTR batches carry the user's train clicks (set by :meth:`adapt_to`)
    serves_history: bool = False
    #: whether a ``ctr`` dataset's training batches are BPR triples ``user, pos_item, neg_item``
    #: of the train split's positive rows instead of its labelled rows (set by :meth:`adapt_to`
    #: for a model without ``trains_on_labels``: BPR-MF, LightGCN, ... on a CTR set)
    ctr_pairs: bool = False
    #: whether each epoch yields its CF batches, then its KG batches (:func:`kg_phase_order`), for
    #: a model that trains its KG loss in a phase of its own (its ``kg_phase``; set by :meth:`adapt_to`)
    kg_phase: bool = False

    def __init__(self, dataset: str = "ml-100k-kg", root: str | None = None, protocol: EvalProtocol | None = None,
                 batch_size: int = 2048, eval_batch_size: int = 256, kg_batch_size: int = 0,
                 kg_ablation: str = "real", seed: int | None = None, max_history: int | None = None) -> None:
        super().__init__()
        self.dataset = dataset = dataset if self._given is not None else resolve_dataset(dataset)
        self.root = root
        self.spec = None if self._given is not None else dataset_spec(dataset)  # _given: see from_data
        if self.spec is not None and self.spec.extends is not None:  # an update's extended data, by name
            self.extended_from = self.spec.extends
        self.protocol = protocol if protocol is not None else self.spec.protocol
        max_history = history_cap(self.spec) if max_history is None else max_history
        if self.protocol.task == "impression":
            raise ValueError(f"KGRecDataModule({dataset!r}): the impression task has its own DataModule "
                             "(kgzoo.data.impressions.ImpressionDataModule; kgzoo.create_datamodule chooses it)")
        for name, v, low in (("batch_size", batch_size, 1), ("eval_batch_size", eval_batch_size, 1),
                             ("kg_batch_size", kg_batch_size, 0), ("max_history", max_history, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"KGRecDataModule({dataset!r}): {name}={v!r} must be an integer >= {low}")
        self.batch_size, self.eval_batch_size, self.kg_batch_size = batch_size, eval_batch_size, kg_batch_size
        self.max_history = max_history
        self.kg_ablation_kind = kg_ablation
        self.seed = self.protocol.seed if seed is None else seed
        apply_kg_ablation(torch.zeros(0, 3, dtype=torch.long), 1, kg_ablation, 0)  # validate early
        self._ready = False

    #: the in-memory data of :meth:`from_data` (``None``: the catalogue dataset ``dataset``)
    _given: KGRecData | None = None
    #: ``(base DataModule, Growth)`` when this data is an incremental update's extension of the
    #: base (set by :mod:`kgzoo.hub.update`): the pre-computations of :func:`kgzoo.api.pretrain_extras`
    #: then extend the base's instead of starting anew (:class:`kgzoo.pretrain.kg_vectors.GrownKGVectors`);
    #: taken from the dataset's entry (``DatasetSpec.extends``) for extended data registered by name
    extended_from: tuple[Any, Any] | None = None

    @classmethod
    def from_data(cls, data: KGRecData, name: str | None = None, protocol: EvalProtocol | None = None,
                  **kwargs: Any) -> "KGRecDataModule":
        """A DataModule over a :class:`KGRecData` built in memory instead of a catalogue dataset.

        Args:
            data: the data, used as given (no cleaning; :meth:`KGRecData.validate` runs).
            name: the dataset name in rows and messages (default ``data.name``).
            protocol: the evaluation protocol (default: ``ctr`` with a random 6:2:2 split when the
                rows are labelled, else ``topk`` with a random 8:1:1 split per user).
            **kwargs: as the constructor (batch sizes, ``kg_ablation``, ``seed``).

        The fingerprint covers the data's contents (:func:`kgzoo.data.kgdata.content_checksum`)
        where ``data.source_checksums`` is empty, so that two different datasets never share one.

        Raises:
            DataValidationError: ``data`` breaks the id-space contract. ValueError: as the constructor.
        """
        data.validate()
        if not data.source_checksums:
            data = data.replace(source_checksums={"in-memory": content_checksum(data)})
        if protocol is None:
            protocol = default_protocol_for(data)
        dm = cls.__new__(cls)
        dm._given = data
        dm.__init__(name or data.name, protocol=protocol, **kwargs)
        return dm

    def _load(self) -> KGRecData:
        return self._given if self._given is not None else load_data(self.dataset, self.root)

    # ------------------------------------------------------------------ setup
    def prepare_data(self) -> None:
        self._load()

    def setup(self, stage: str | None = None) -> None:
        """Load, prepare, split and index the data once (idempotent)."""
        if self._ready:
            return
        data = self.protocol.prepare(self._load())
        triples, self.kg_ablation_kind = apply_kg_ablation(data.triples, data.n_entities, self.kg_ablation_kind,
                                                     self.protocol.seed)
        self.data: KGRecData = data.replace(triples=triples)
        self.split: Split = self.protocol.split_data(self.data)
        if self.split.dropped:  # a protocol rule removed rows after the split: report them
            rep = dict(self.data.cleaning)
            for part, n in self.split.dropped.items():
                rep[f"{part} rows: user without a positive train row (require_train_positive)"] = n
            self.data = self.data.replace(cleaning=rep)
        check_leakage(self.data, self.split, cold_items=self.protocol.split == "cold_item")
        x = self.data.interactions
        self.csr = {}
        for part in ("train", "valid", "test"):
            idx = getattr(self.split, part)
            if self.protocol.task == "ctr":
                idx = idx[self.data.label[idx] > 0]
            self.csr[part] = to_csr(x[idx, 0], x[idx, 1], self.data.n_users)
        indptr, indices = self.csr["train"]
        # LongTensor [N_train, 2] (user, item) train positives, sorted by user then item
        self.train_interactions = torch.stack(
            [torch.repeat_interleave(torch.arange(self.data.n_users), indptr.diff()), indices], 1)
        self.bpr_sampler = BPRSampler(self.train_interactions, self.data.n_items)
        self.kg_sampler = KGSampler(self.data.triples, self.data.n_entities, self.data.n_relations)
        self._ready = True

    # ------------------------------------------------------------------ info
    def _extra(self) -> dict[str, Any]:
        # max_history changes what a history model sees; it stays out while it has its default, so
        # the fingerprints of the rows before it was added hold
        return {"dataset": self.dataset, **({"max_history": self.max_history} if self.max_history != 50 else {})}

    @property
    def fingerprint(self) -> str:
        """sha256 of data checksums, protocol, metric code version, the KG ablation and
        ``max_history`` (where it is not 50)."""
        return self.protocol.fingerprint(self.data.source_checksums,
                                         {**self._extra(), "kg_ablation": self.kg_ablation_kind})

    @property
    def protocol_fingerprint(self) -> str:
        """As :attr:`fingerprint` but without the KG ablation (groups a robustness study)."""
        return self.protocol.fingerprint(self.data.source_checksums, self._extra())

    def state_dict(self) -> dict[str, Any]:
        """The identity of this data, saved by Lightning in every checkpoint of a run on it (and by
        ``Recommender.on_save_checkpoint`` under ``checkpoint["kgzoo"]["data"]``): ``dataset``,
        ``protocol`` (:meth:`EvalProtocol.to_dict`), ``kg_ablation``, ``seed``, ``batch_size``,
        ``eval_batch_size``, ``kg_batch_size``, ``max_history`` (the constructor's arguments: enough
        to build the DataModule again), ``fingerprint`` and ``folder``: a user's dataset folder
        (``DatasetSpec.folder``, absolute; ``None`` for the catalogue and in-memory data), which
        another process registers again by its path. Sets the data up."""
        self.setup()
        return {"dataset": self.dataset, "protocol": self.protocol.to_dict(), "kg_ablation": self.kg_ablation_kind,
                "seed": self.seed, "batch_size": self.batch_size, "eval_batch_size": self.eval_batch_size,
                "kg_batch_size": self.kg_batch_size, "max_history": self.max_history, "fingerprint": self.fingerprint,
                "folder": saved_folder(self.spec)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Lightning's restore of a checkpoint (``trainer.test(..., ckpt_path=...)``): refuses a
        checkpoint trained on other data.

        Raises:
            FingerprintError: ``state_dict["fingerprint"]`` differs from this data's (naming both
                and both datasets).
        """
        check_fingerprint(state_dict, self.fingerprint, self.dataset)

    @property
    def task(self) -> str:
        """The protocol's task (``topk`` or ``ctr``)."""
        return self.protocol.task

    def eval_users(self, stage: str) -> Tensor:
        """LongTensor of users with at least one ``stage`` ("valid"/"test") item, ascending."""
        indptr = self.csr[stage][0]
        return torch.nonzero(indptr[1:] > indptr[:-1]).flatten()

    def train_csr(self) -> Tensor:
        """The train interaction matrix as a ``torch.sparse_csr_tensor`` ``[U, I]`` of float32 ones."""
        indptr, indices = self.csr["train"]
        return sparse_csr(indptr, indices, torch.ones(indices.numel()), (self.n_users, self.n_items))

    def graphs(self) -> Graphs:
        """The :class:`~kgzoo.data.graphs.Graphs` of this split (sizes, train CSR and pairs,
        triples after the KG ablation, social ties, item text, attributes, fingerprint): what
        ``Recommender.attach`` takes. Built once per setup (the same object on every call, so
        models attach once)."""
        self.setup()
        if getattr(self, "_graphs", None) is None:
            self._graphs = Graphs.of(self.data, self.protocol.task, self.csr["train"], self.train_interactions,
                                     self.fingerprint, self.dataset, self.kg_ablation_kind, self.seed)
        return self._graphs

    @property
    def trains_on_rows(self) -> bool:
        """Whether the training batches are the ``ctr`` task's labelled rows ``user, item, label``
        (else BPR triples ``user, pos_item, neg_item``: ``topk``, or ``ctr_pairs``)."""
        return self.protocol.task == "ctr" and not self.ctr_pairs

    def adapt_to(self, model: Any) -> None:
        """Serve what ``model`` asks of its training batches (read by duck typing, no model class
        imported): a model with a KG loss (``uses_kg_batches``) gets ``kg_batch_size`` KG triples
        per batch, its own ``kg_batch_size``, else this DataModule's, else 1024; one that trains
        them in a phase of its own (``kg_phase``) gets each epoch's KG batches after its CF batches
        (:func:`kg_phase_order`). Called by
        :func:`kgzoo.api.attach` and by :meth:`train_dataloader` for the Trainer's model. A model
        that scores from the user's clicks (``uses_history``) on the ``ctr`` task gets
        ``history``/``history_mask`` in every batch (:meth:`histories`). A model without
        ``trains_on_labels`` (a pairwise ranking loss) on the ``ctr`` task trains on BPR triples
        of the train split's positive rows (label 1; negatives uniform over the items without a
        positive train row of the user, as on ``topk``) and is evaluated on the labelled
        valid/test rows like every CTR model (``ctr_pairs``)."""
        if getattr(model, "uses_kg_batches", False):
            self.kg_batch_size = int(getattr(model, "kg_batch_size", 0) or self.kg_batch_size or 1024)
        self.kg_phase = bool(getattr(model, "uses_kg_batches", False) and getattr(model, "kg_phase", False))
        if getattr(model, "uses_history", False) and self.protocol.task == "ctr":
            self.serves_history = True
        self.ctr_pairs = self.protocol.task == "ctr" and not getattr(model, "trains_on_labels", False)

    def histories(self, users: Tensor, items: Tensor | None = None) -> dict[str, Tensor]:
        """``history [B, H]`` and ``history_mask [B, H]`` (LongTensor, BoolTensor) of CTR rows
        ``users`` LongTensor ``[B]``: each user's last ``max_history`` train clicks (item id
        order); with ``items`` ``[B]`` (training rows) the row's own item is masked out."""
        self.setup()
        indptr, indices = self.csr["train"]
        hist, mask = csr_padded(indptr, indices, users, self.max_history, last=True)
        if items is not None:
            mask = mask & (hist != items.unsqueeze(1))
        return {"history": hist, "history_mask": mask}

    # ------------------------------------------------------------------ loaders
    def train_dataloader(self) -> "_TrainBatches":
        """The training batches: an iterable with a length (one epoch of ready-made dict batches per
        ``iter``, sharded by DDP rank), handed to Lightning as it is. A
        ``torch.utils.data.DataLoader(batch_size=None)`` around it would only convert each batch
        again and cost per step; workers, samplers and pinning, what a DataLoader adds, do not
        apply to batches built in memory a whole epoch at once."""
        self.setup()
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.lightning_module is not None:
            self.adapt_to(trainer.lightning_module)
        if not hasattr(self, "_train_ds"):
            self._train_ds = _TrainBatches(self)
        return self._train_ds

    def val_dataloader(self) -> "_EvalBatches":
        """The validation batches of this rank (seen items as masks, the valid items as targets): an
        iterable built once per loader (``_EvalBatches``), handed to Lightning as it is (as the train
        batches, without a ``DataLoader`` around them)."""
        self.setup()
        return _EvalBatches(self, "valid")

    def test_dataloader(self) -> "_EvalBatches":
        """The test batches of this rank (train and valid items masked), as :meth:`val_dataloader`."""
        self.setup()
        return _EvalBatches(self, "test")
