"""KG link prediction data: a seeded split of a dataset's KG triples and its DataModule.

The task ``"link"`` (:data:`kgzoo.tasks.TASKS`) trains on triples, not interactions, so
:func:`kgzoo.api.create_datamodule_for` gives a model of that task a :class:`KGLinkDataModule`
wrapping the recommendation DataModule (same dataset, same KG ablation, batch sizes taken from
it). It splits the base's triples 90/5/5 with the protocol's seed (:func:`split_triples`) and
serves triple batches; a link-prediction model never trains on the held-out triples, which the
recommendation DataModule's KG batches would sample from.

Evaluation: for every held-out triple ``(h, r, t)`` both the tail query ``(h, r, ?)`` and the
head query ``(?, r, t)`` are ranked against all ``E`` entities, filtered against all known
triples (train + valid + test; Bordes et al., NeurIPS 2013, section 4.2), with the
"realistic" tie-averaged rank of :mod:`kgzoo.metrics.link` (PyKEEN's convention). The filter
is built once per stage with :func:`kgzoo.metrics.link.build_filter` (sort +
``searchsorted``; no loop over triples).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any, Iterator, Sequence

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

from ..dist import rank_world
from ..metrics.link import build_filter
from ..ops.csr import csr_rows
from ..ops.sampling import corrupt_triples, sorted_keys
from .datamodule import EpochIterable, rank_share
from .graphs import Graphs
from .protocol import check_fingerprint


def split_triples(triples: Tensor, ratios: Sequence[float] = (0.9, 0.05, 0.05), seed: int = 0,
                  cleanup: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    """Seeded random split of KG triples into train / valid / test (vectorised).

    One permutation, cut by ``ratios``. With ``cleanup`` every valid/test triple whose head,
    tail or relation never occurs in train is moved to train (one vectorised pass, as
    PyKEEN's ``cleanup``): a model cannot rank an entity it never trained.

    Args:
        triples: LongTensor ``[M, 3]`` (head, relation, tail).
        ratios: (train, valid, test) fractions, non-negative, summing to 1.

    Returns:
        ``(train, valid, test)``: LongTensors ``[M_*, 3]``, disjoint, together ``triples``.

    Raises:
        ValueError: bad ratios, or triples that are not ``[M, 3]`` integer ids.
    """
    if triples.dim() != 2 or triples.shape[1] != 3 or triples.is_floating_point():
        raise ValueError(f"triples must be a LongTensor [M, 3], got {triples.dtype} {tuple(triples.shape)}")
    if len(ratios) != 3 or min(ratios) < 0 or not math.isclose(sum(ratios), 1.0, abs_tol=1e-6):
        raise ValueError(f"ratios must be three non-negative fractions summing to 1, got {tuple(ratios)}")
    m = triples.shape[0]
    perm = torch.randperm(m, generator=torch.Generator().manual_seed(seed))
    n_valid, n_test = int(round(ratios[1] * m)), int(round(ratios[2] * m))
    n_train = m - n_valid - n_test
    part = torch.zeros(m, dtype=torch.long)  # 0 train, 1 valid, 2 test (in permuted order)
    part[n_train:n_train + n_valid] = 1
    part[n_train + n_valid:] = 2
    x = triples[perm].long()
    if cleanup and m:
        n_ent = int(torch.maximum(x[:, 0].max(), x[:, 2].max())) + 1
        n_rel = int(x[:, 1].max()) + 1
        train = x[part == 0]
        seen_e = torch.zeros(n_ent, dtype=torch.bool)
        seen_e[train[:, 0]] = True
        seen_e[train[:, 2]] = True
        seen_r = torch.zeros(n_rel, dtype=torch.bool)
        seen_r[train[:, 1]] = True
        unseen = ~(seen_e[x[:, 0]] & seen_e[x[:, 2]] & seen_r[x[:, 1]])
        part[unseen] = 0
    return x[part == 0], x[part == 1], x[part == 2]


class _LinkTrainBatches(EpochIterable):
    """One epoch per ``__iter__``: every train triple once, in a seeded random order, with its
    head or its tail corrupted (probability 1/2 each, Bordes et al., Algorithm 1), the same
    on every rank and sharded by rank (DDP); drawn by epoch (:meth:`EpochIterable.next_epoch`)."""

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        dm = self.dm
        g = torch.Generator().manual_seed(dm.seed * 1_000_003 + 17 + self.next_epoch())
        x = dm.train_triples[torch.randperm(dm.train_triples.shape[0], generator=g)]
        h, r, t = x.unbind(1)
        # negatives are never known train triples: keys (h, r) -> t and (t, r) -> h
        neg_head, neg_tail = corrupt_triples(x, dm.n_entities, dm.n_relations, dm.known_tail_keys,
                                             dm.known_head_keys, g)
        bs = dm.batch_size
        n = h.numel()
        for sl in rank_share([slice(s, s + bs) for s in range(0, n, bs)], dm.dataset, bs):
            yield {"head": h[sl], "relation": r[sl], "tail": t[sl], "neg_head": neg_head[sl], "neg_tail": neg_tail[sl]}


class _LinkEvalBatches(IterableDataset):
    """Evaluation triples of one stage with their head and tail filters, sharded ``rank::world``."""

    def __init__(self, dm: "KGLinkDataModule", stage: str) -> None:
        self.dm, self.stage = dm, stage

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        rank, world = rank_world()
        q, filters = self.dm.eval_queries[self.stage]
        idx = torch.arange(q.shape[0])[rank::world]
        bs = self.dm.eval_batch_size
        for s in range(0, idx.numel(), bs):
            rows = idx[s:s + bs]
            batch = {"head": q[rows, 0], "relation": q[rows, 1], "tail": q[rows, 2]}
            for side, (indptr, col) in filters.items():
                batch[f"{side}_filter_row"], batch[f"{side}_filter_col"] = csr_rows(indptr, col, rows)
            yield batch


class KGLinkDataModule(L.LightningDataModule):
    """Link prediction on the KG of a recommendation dataset.

    Wraps a :class:`~kgzoo.data.datamodule.KGRecDataModule` (its data, KG ablation,
    ``batch_size`` and ``eval_batch_size``) and splits ``dm.data.triples`` with
    :func:`split_triples`. Train batches: dicts of LongTensors ``[B]`` ``head, relation,
    tail, neg_head, neg_tail`` (one side corrupted per row). Evaluation batches: ``head,
    relation, tail`` ``[B]`` and, for ``side`` in ``tail``/``head``, ``{side}_filter_row``,
    ``{side}_filter_col`` ``[F]``: the (batch row, entity) pairs of every known true answer
    (train + valid + test) of the query, for :func:`kgzoo.metrics.link.filtered_ranks`.

    Args:
        base: the recommendation DataModule. ratios: (train, valid, test) triple fractions.
        seed: split and sampling seed (default: the base's seed).
        max_valid_triples: validation (model selection, early stopping) ranks a seeded subset
            of at most this many valid triples, to keep an epoch cheap; ``None`` = all. The
            filters still use every valid triple, and test always ranks all test triples.

    Raises:
        ValueError: the KG has no triples, bad ratios.
    """

    def __init__(self, base: Any, ratios: Sequence[float] = (0.9, 0.05, 0.05), seed: int | None = None,
                 max_valid_triples: int | None = 1000) -> None:
        super().__init__()
        if max_valid_triples is not None and max_valid_triples < 1:
            raise ValueError(f"max_valid_triples must be >= 1 or None, got {max_valid_triples!r}")
        self.base = base
        self.dataset = base.dataset
        self.max_valid_triples = max_valid_triples
        self.ratios = tuple(float(x) for x in ratios)
        self.seed = int(base.seed if seed is None else seed)
        self.batch_size, self.eval_batch_size = base.batch_size, base.eval_batch_size
        self._ready = False

    def prepare_data(self) -> None:
        self.base.prepare_data()

    def __repr__(self) -> str:  # as KGRecDataModule's: Lightning's __str__ fails on plain iterables
        return f"KGLinkDataModule({self.dataset!r}, ratios={list(self.ratios)}, seed={self.seed})"

    __str__ = __repr__

    def setup(self, stage: str | None = None) -> None:
        """Split the triples and build the negative-sampling keys and the filters (once)."""
        if self._ready:
            return
        self.base.setup()
        triples = self.base.data.triples
        if triples.shape[0] == 0:
            raise ValueError(f"{self.dataset}: the KG has no triples (kg_ablation={self.kg_ablation_kind!r}); "
                             "link prediction needs some")
        self.n_entities, self.n_relations = self.base.n_entities, max(1, self.base.n_relations)
        self.train_triples, self.valid_triples, self.test_triples = split_triples(triples, self.ratios, self.seed)
        h, r, t = self.train_triples.unbind(1)
        self.known_tail_keys = sorted_keys(h * self.n_relations + r, t, self.n_entities)
        self.known_head_keys = sorted_keys(t * self.n_relations + r, h, self.n_entities)
        known = torch.cat([self.train_triples, self.valid_triples, self.test_triples])
        self.eval_queries: dict[str, tuple[Tensor, dict[str, tuple[Tensor, Tensor]]]] = {}
        valid_q = self.valid_triples
        if self.max_valid_triples is not None and valid_q.shape[0] > self.max_valid_triples:
            keep = torch.randperm(valid_q.shape[0], generator=torch.Generator().manual_seed(self.seed + 1))
            valid_q = valid_q[keep[:self.max_valid_triples].sort().values]
        for stage, q in (("valid", valid_q), ("test", self.test_triples)):
            filters = {}
            for side in ("tail", "head"):
                row, col = build_filter(known, q, side=side)  # grouped by query
                indptr = torch.zeros(q.shape[0] + 1, dtype=torch.long)
                indptr[1:] = torch.cumsum(torch.bincount(row, minlength=q.shape[0]), 0)
                filters[side] = (indptr, col)
            self.eval_queries[stage] = (q, filters)
        self._ready = True

    # the fields of a result row (kgzoo.bench.experiment.run_experiment)
    @property
    def protocol(self) -> Any:
        return self.base.protocol

    @property
    def kg_ablation_kind(self) -> str:
        return self.base.kg_ablation_kind

    def _link_extra(self) -> dict[str, Any]:
        return {"task": "link", "triple_split": list(self.ratios), "triple_seed": self.seed, "cleanup": True,
                "max_valid_triples": self.max_valid_triples}

    @property
    def fingerprint(self) -> str:
        """The base's fingerprint combined with the triple split (ratios, seed)."""
        payload = {"base": self.base.fingerprint, **self._link_extra()}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    @property
    def protocol_fingerprint(self) -> str:
        payload = {"base": self.base.protocol_fingerprint, **self._link_extra()}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def state_dict(self) -> dict[str, Any]:
        """The base's identity (:meth:`KGRecDataModule.state_dict`) with this DataModule's
        ``fingerprint`` and its triple split under ``link``, saved in every checkpoint."""
        return {**self.base.state_dict(), "fingerprint": self.fingerprint,
                "link": {"ratios": list(self.ratios), "seed": self.seed, "max_valid_triples": self.max_valid_triples}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Refuse a checkpoint trained on another triple split or data.

        Raises:
            FingerprintError: the checkpoint's fingerprint differs (naming both).
        """
        check_fingerprint(state_dict, self.fingerprint, self.dataset)

    def model_kwargs(self) -> dict[str, Any]:
        """The base's sizes (:meth:`KGRecDataModule.model_kwargs`): a KG embedding model takes
        ``n_entities`` and ``n_relations`` of the whole KG (held-out triples' entities included)."""
        return self.base.model_kwargs()

    def sizes(self) -> dict[str, int]:
        self.setup()
        return {"train": int(self.train_triples.shape[0]), "valid": int(self.valid_triples.shape[0]),
                "test": int(self.test_triples.shape[0])}

    def train_dataloader(self) -> DataLoader:
        self.setup()
        if not hasattr(self, "_train_ds"):
            self._train_ds = _LinkTrainBatches(self)
        return DataLoader(self._train_ds, batch_size=None)

    def val_dataloader(self) -> DataLoader:
        self.setup()
        return DataLoader(_LinkEvalBatches(self, "valid"), batch_size=None)

    def test_dataloader(self) -> DataLoader:
        self.setup()
        return DataLoader(_LinkEvalBatches(self, "test"), batch_size=None)

    def graphs(self) -> Graphs:
        """The base's :class:`~kgzoo.data.graphs.Graphs` under this DataModule's fingerprint and
        task ``"link"`` (what ``Recommender.setup`` attaches; KG embedding models take nothing)."""
        self.setup()
        return dataclasses.replace(self.base.graphs(), task="link", fingerprint=self.fingerprint)

    def adapt_to(self, model: Any) -> None:
        """Nothing to adapt: link batches are whole triple batches (the recommendation
        DataModule's counterpart serves KG batches to recommenders with a KG loss)."""
