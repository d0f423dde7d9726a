"""The impression DataModule: news impressions (:class:`~kgzoo.data.impression_log.ImpressionLog`)
split by day, as training samples and evaluation batches.

An impression is one page view: a user, the news they clicked before (their history) and the
news shown together, each clicked or not (Wu et al., "MIND: A Large-scale Dataset for News
Recommendation", ACL 2020, section 2). The ``impression`` task (:data:`kgzoo.tasks.TASKS`) trains
and scores on impressions, so :func:`kgzoo.api.create_datamodule` gives an
:class:`ImpressionDataModule` for a protocol of that task.

Split (``EvalProtocol(task="impression", split="temporal")``): by the impression's time, as MIND
separates its dev set from its train set by day: the impressions of the last day are test, those
of the day before valid, the earlier ones train (days are calendar days of MIND's time stamps).

Training (NRMS's, Wu et al., EMNLP-IJCNLP 2019, section 3.4): every click of a train impression
is one sample, with ``npratio`` news shown but not clicked in the same impression as its
negatives (drawn without replacement; an impression with fewer non-clicks repeats them in a
seeded random order; one with none gets masked negatives). Evaluation: every candidate of every
valid / test impression is scored, and each impression is evaluated once, also under DDP
(rank ``r`` of ``w`` takes impressions ``r::w``).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Iterator

import lightning as L
import torch
from torch import Tensor

from ..ops.csr import csr_padded, to_csr
from .cleaning import standard_clean
from .datamodule import DataSizes, EpochIterable, StageBatches, apply_kg_ablation, batches_per_rank, rank_share
from .datasets import dataset_spec, load_impressions, resolve_dataset
from .download import sha256_file
from .graphs import Graphs
from .impression_log import ImpressionLog, split_by_day
from .kgdata import KGRecData, content_checksum
from .protocol import EvalProtocol, check_fingerprint
from .readers.mind import read_mind_impressions
from .spec import history_cap, saved_folder

def _neg_positions(label: Tensor, ptr: Tensor, samples: Tensor, k: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """``k`` non-clicked candidate positions (into the log's candidate arrays) per sample
    impression ``samples`` LongTensor ``[S]``: ``(positions [S, k], mask [S, k])``."""
    neg = torch.nonzero(label == 0).flatten()
    imp_of_cand = torch.repeat_interleave(torch.arange(ptr.numel() - 1), ptr.diff())
    n_neg_ptr = torch.zeros(ptr.numel(), dtype=torch.long)
    n_neg_ptr[1:] = torch.cumsum(torch.bincount(imp_of_cand[neg], minlength=ptr.numel() - 1), 0)
    cols, cmask = csr_padded(n_neg_ptr, neg, samples)  # [S, Wn] each impression's non-clicks
    n = cmask.sum(1)
    keys = torch.rand(cols.shape, generator=g).masked_fill(~cmask, 2.0)
    order = torch.argsort(keys, dim=1)  # a random order of the real non-clicks first
    j = torch.arange(k).unsqueeze(0) % n.clamp(min=1).unsqueeze(1)
    pos = cols.gather(1, order.gather(1, j.clamp(max=cols.shape[1] - 1)))
    return pos, (n > 0).unsqueeze(1).expand(-1, k)


class _TrainImpressions(EpochIterable):
    """One epoch of NRMS training samples per ``__iter__``, the same on every rank, sharded by rank;
    drawn by epoch (:meth:`~kgzoo.data.datamodule.EpochIterable.next_epoch`)."""

    def __len__(self) -> int:
        dm = self.dm
        return batches_per_rank(-(-dm.train_clicks.numel() // dm.batch_size), dm.dataset, dm.batch_size)

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        dm, log = self.dm, self.dm.log
        g = torch.Generator().manual_seed(dm.seed * 1_000_003 + 29 + self.next_epoch())
        clicks = dm.train_clicks[torch.randperm(dm.train_clicks.numel(), generator=g)]  # candidate positions
        imp = dm.impression_of_candidate[clicks]
        neg, neg_mask = _neg_positions(log.label, log.candidate_indptr, imp, dm.npratio, g)
        pos = torch.cat([clicks.unsqueeze(1), neg], 1)
        cand_mask = torch.cat([torch.ones(clicks.numel(), 1, dtype=torch.bool), neg_mask], 1)
        label = torch.zeros(pos.shape, dtype=torch.long)
        label[:, 0] = 1
        bs = dm.batch_size
        for s in rank_share(range(0, clicks.numel(), bs), dm.dataset, bs):
            rows = imp[s:s + bs]
            yield {**dm.histories(rows), "candidates": log.candidates[pos[s:s + bs]],
                   "candidate_mask": cand_mask[s:s + bs], "label": label[s:s + bs]}


class _EvalImpressions(StageBatches):
    """The impressions of one stage for this rank (``r::w``: each impression scored on one rank),
    every candidate, padded per batch; built once per loader (:class:`StageBatches`). The cache
    holds about ``8 x (max_history + 2 C) + C`` bytes per impression of ``C`` candidates."""

    def _build(self, rank: int, world: int) -> Iterator[dict[str, Tensor]]:
        dm, log = self.dm, self.dm.log
        rows = dm.split[self.stage][rank::world]
        for s in range(0, rows.numel(), dm.eval_batch_size):
            r = rows[s:s + dm.eval_batch_size]
            cand, cmask = csr_padded(log.candidate_indptr, log.candidates, r)
            label, _ = csr_padded(log.candidate_indptr, log.label, r)
            yield {**dm.histories(r), "candidates": cand, "candidate_mask": cmask, "label": label, "impression": r}


class ImpressionDataModule(DataSizes, L.LightningDataModule):
    """A dataset's impressions under the ``impression`` protocol, for a Lightning Trainer.

    Batches (dicts of tensors, padded per batch): ``user`` LongTensor ``[B]``, ``history``
    LongTensor ``[B, H]`` and ``history_mask`` BoolTensor ``[B, H]`` (the last ``max_history``
    clicked news, oldest first, left-aligned; a user without history has an all-False row),
    ``candidates`` LongTensor ``[B, C]``, ``candidate_mask`` BoolTensor ``[B, C]``, ``label``
    LongTensor ``[B, C]``. Training: ``C = 1 + npratio``, the click first. Evaluation: every
    candidate of the impression, plus ``impression`` LongTensor ``[B]`` (its index in the log).

    Args:
        dataset: a catalogue name whose entry reads impressions (``DatasetSpec.impressions``), or
            the path of a folder in MIND's layout (:mod:`kgzoo.data.folders`).
        root: data root. protocol: ``EvalProtocol(task="impression", split="temporal")`` (default).
        batch_size: training samples per batch. eval_batch_size: impressions per evaluation batch.
        max_history: clicked news kept per impression; ``None``: the dataset's
            (:attr:`~kgzoo.data.spec.DatasetSpec.max_history`, NRMS's 50 for MIND). npratio: negatives per click
            (NRMS: 4). kg_ablation: as :class:`~kgzoo.data.datamodule.KGRecDataModule`.
        seed: sampling seed (default: the protocol's).

    Raises:
        KeyError: unknown dataset. ValueError: a dataset without impressions, a protocol that is
            not ``impression``/``temporal``, batch sizes, ``max_history`` or ``npratio`` < 1.
    """

    _given: tuple[KGRecData, ImpressionLog] | None = None

    def __init__(self, dataset: str = "mind-sample", root: str | None = None, protocol: EvalProtocol | None = None,
                 batch_size: int = 64, eval_batch_size: int = 64, max_history: int | None = None, npratio: int = 4,
                 kg_ablation: str = "real", seed: int | None = None) -> None:
        super().__init__()
        if self._given is None:
            dataset = resolve_dataset(dataset)  # a folder in MIND's layout registers here
        self.dataset, self.root = dataset, root
        self.protocol = protocol if protocol is not None else EvalProtocol(task="impression", split="temporal")
        if self.protocol.task != "impression" or self.protocol.split != "temporal":
            raise ValueError(f"ImpressionDataModule({dataset!r}): protocol task/split must be impression/temporal, "
                             f"got {self.protocol.task}/{self.protocol.split}")
        if max_history is None:
            max_history = history_cap(dataset_spec(dataset) if self._given is None else None)
        for name, v in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size),
                        ("max_history", max_history), ("npratio", npratio)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"ImpressionDataModule({dataset!r}): {name}={v!r} must be an integer >= 1")
        if self._given is None:
            if dataset_spec(dataset).impressions is None:
                raise ValueError(f"dataset {dataset!r} has no impression log "
                                 "(its catalogue entry reads no impressions)")
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.max_history, self.npratio = max_history, npratio
        self.kg_ablation_kind = kg_ablation
        self.seed = self.protocol.seed if seed is None else int(seed)
        self._ready = False

    @classmethod
    def from_data(cls, data: KGRecData, log: ImpressionLog, name: str | None = None, **kwargs: Any
                  ) -> "ImpressionDataModule":
        """A DataModule over data and an impression log built in memory (no cleaning); its
        fingerprint covers their contents.

        Raises:
            DataValidationError: the data or the log break the id-space contract.
        """
        data.validate()
        log.validate(data.n_users, data.n_items, data.name)
        if not data.source_checksums:
            h = hashlib.sha256(content_checksum(data).encode())
            for f in ("user", "time", "history_indptr", "history", "candidate_indptr", "candidates", "label"):
                h.update(getattr(log, f).numpy().tobytes())
            data = data.replace(source_checksums={"in-memory": h.hexdigest()})
        dm = cls.__new__(cls)
        dm._given = (data, log)
        dm.__init__(name or data.name, **kwargs)
        return dm

    @classmethod
    def from_mind_folder(cls, folder: str | Path, name: str | None = None, news: str = "news.tsv",
                         behaviors: str = "behaviors.tsv", **kwargs: Any) -> "ImpressionDataModule":
        """The impressions of any folder in MIND's layout (MIND-small, MIND-large, a sample), read by
        :func:`~kgzoo.data.readers.mind.read_mind_impressions` and cleaned as a catalogue dataset
        (``standard_clean``); the fingerprint covers the two files' sha256.

        Args:
            folder: the folder. name: the dataset name (default the folder's). news, behaviors:
                the file names. **kwargs: as the constructor (batch sizes, ``max_history``, ...).

        Raises:
            FileNotFoundError: a missing file. DataFormatError: a malformed line (file, line, field).
        """
        folder = Path(folder)
        data, log = read_mind_impressions(folder, name or folder.name, news, behaviors)
        data.source_checksums = {f: sha256_file(folder / f) for f in (news, behaviors)}
        return cls.from_data(standard_clean(data), log, **kwargs)

    @classmethod
    def from_base(cls, base: Any) -> "ImpressionDataModule":
        """The impression DataModule of a recommendation DataModule's dataset (same root, seed,
        KG ablation), made once per base (kept on it): what :func:`kgzoo.api.create_datamodule_for`
        gives a model of the impression task."""
        view = getattr(base, "_impression_view", None)
        if view is None:
            view = cls(base.dataset, root=base.root, seed=base.seed, kg_ablation=base.kg_ablation_kind)
            base._impression_view = view
        return view

    def _load(self) -> tuple[KGRecData, ImpressionLog]:
        if self._given is not None:
            return self._given
        return load_impressions(self.dataset, self.root)

    def prepare_data(self) -> None:
        self._load()

    def setup(self, stage: str | None = None) -> None:
        """Load, split by day and index the impressions once (idempotent)."""
        if self._ready:
            return
        data, log = self._load()
        triples, self.kg_ablation_kind = apply_kg_ablation(data.triples, data.n_entities, self.kg_ablation_kind,
                                                           self.protocol.seed)
        self.data, self.log = data.replace(triples=triples), log
        self.split = split_by_day(log)
        ptr = log.candidate_indptr
        self.impression_of_candidate = torch.repeat_interleave(torch.arange(log.n_impressions), ptr.diff())
        in_train = torch.zeros(log.n_impressions, dtype=torch.bool)
        in_train[self.split["train"]] = True
        #: candidate positions of the train impressions' clicks: one training sample each
        self.train_clicks = torch.nonzero(in_train[self.impression_of_candidate] & (log.label == 1)).flatten()
        pairs = torch.stack([log.user[self.impression_of_candidate[self.train_clicks]],
                             log.candidates[self.train_clicks]], 1)
        pairs = torch.unique(pairs, dim=0)  # sorted by user, then item
        self.train_interactions = pairs
        self.train_csr = to_csr(pairs[:, 0], pairs[:, 1], data.n_users)
        self._ready = True

    # ------------------------------------------------------------------ info
    #: the task of :meth:`model_kwargs`
    task = "impression"

    def _extra(self, ablation: bool) -> dict[str, Any]:
        out = {"dataset": self.dataset, "split": "by day: last day test, the day before valid",
               "max_history": self.max_history}
        if ablation:
            out["kg_ablation"] = self.kg_ablation_kind
        return out

    @property
    def fingerprint(self) -> str:
        """sha256 of the data checksums, the protocol, the metric code version, the day split,
        ``max_history`` (it changes what is scored) and the KG ablation."""
        self.setup()
        return self.protocol.fingerprint(self.data.source_checksums, self._extra(True))

    @property
    def protocol_fingerprint(self) -> str:
        """As :attr:`fingerprint` without the KG ablation."""
        self.setup()
        return self.protocol.fingerprint(self.data.source_checksums, self._extra(False))

    def state_dict(self) -> dict[str, Any]:
        """The identity of this data, saved in every checkpoint of a run on it (as
        :meth:`KGRecDataModule.state_dict`): ``dataset``, ``protocol``, ``kg_ablation``, ``seed``,
        ``batch_size``, ``eval_batch_size``, ``max_history``, ``npratio``, ``fingerprint``,
        ``folder`` (a user's MIND-layout folder, absolute, by which another process registers it
        again; ``None`` for the catalogue's datasets and in-memory data). Sets the data up."""
        self.setup()
        return {"dataset": self.dataset, "protocol": self.protocol.to_dict(), "kg_ablation": self.kg_ablation_kind,
                "seed": self.seed, "batch_size": self.batch_size, "eval_batch_size": self.eval_batch_size,
                "max_history": self.max_history, "npratio": self.npratio, "fingerprint": self.fingerprint,
                "folder": saved_folder(None if self._given is not None else dataset_spec(self.dataset))}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Lightning's restore of a checkpoint: refuses one trained on other data.

        Raises:
            FingerprintError: ``state_dict["fingerprint"]`` differs from this data's.
        """
        check_fingerprint(state_dict, self.fingerprint, self.dataset)

    def sizes(self) -> dict[str, int]:
        """Impressions per part (``train``, ``valid``, ``test``) and training samples (``train_clicks``)."""
        self.setup()
        return {**{k: int(v.numel()) for k, v in self.split.items()}, "train_clicks": int(self.train_clicks.numel())}

    def histories(self, rows: Tensor) -> dict[str, Tensor]:
        """``user [B]``, ``history [B, H]``, ``history_mask [B, H]`` of impressions ``rows`` LongTensor ``[B]``."""
        log = self.log
        hist, hmask = csr_padded(log.history_indptr, log.history, rows, self.max_history, last=True)
        return {"user": log.user[rows], "history": hist, "history_mask": hmask}

    def user_histories(self, users: Tensor) -> dict[str, Tensor]:
        """``user [B]``, ``history [B, H]``, ``history_mask [B, H]`` of ``users`` LongTensor ``[B]``:
        the history of each user's last impression in the log (the latest time, the later line on a
        tie), its last ``max_history`` clicks: what a new impression of the user would carry in
        MIND's layout, which serves a recommendation for a known user
        (:meth:`kgzoo.hub.Pretrained.recommend`). A user without an impression has an all-False row."""
        self.setup()
        log = self.log
        order = torch.argsort(log.time, stable=True)
        order = order[torch.argsort(log.user[order], stable=True)]  # by user, then time, then line
        count = torch.bincount(log.user, minlength=self.n_users)
        last = order[(torch.cumsum(count, 0) - 1).clamp(min=0)].masked_fill(count == 0, -1)  # each user's last
        rows = last[users]
        out = self.histories(rows.clamp(min=0))
        out["history_mask"] &= (rows >= 0).unsqueeze(1)
        out["user"] = users
        return out

    def graphs(self) -> Graphs:
        """The :class:`~kgzoo.data.graphs.Graphs` of this split: sizes, the train impressions'
        clicks as (user, news) pairs and CSR (Pop's counts), triples after the KG ablation, item
        text and attributes, task ``"impression"``. Built once per setup."""
        self.setup()
        if getattr(self, "_graphs", None) is None:
            self._graphs = Graphs.of(self.data, "impression", self.train_csr, self.train_interactions,
                                     self.fingerprint, self.dataset, self.kg_ablation_kind, self.seed)
        return self._graphs

    def adapt_to(self, model: Any) -> None:
        """Nothing to adapt: impression batches are the same for every model."""

    # ------------------------------------------------------------------ loaders
    # as KGRecDataModule's: the iterables themselves, no DataLoader around batches built in memory
    def train_dataloader(self) -> "_TrainImpressions":
        """One epoch of training samples per ``iter``, with a length, sharded by DDP rank."""
        self.setup()
        if not hasattr(self, "_train_ds"):
            self._train_ds = _TrainImpressions(self)
        return self._train_ds

    def val_dataloader(self) -> "_EvalImpressions":
        """This rank's valid impressions, built once per loader (:class:`StageBatches`)."""
        self.setup()
        return _EvalImpressions(self, "valid")

    def test_dataloader(self) -> "_EvalImpressions":
        """This rank's test impressions, as :meth:`val_dataloader`."""
        self.setup()
        return _EvalImpressions(self, "test")
