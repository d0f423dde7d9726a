"""Evaluation protocols: how a dataset becomes train / valid / test, and its fingerprint.

Every split is vectorised: one seeded permutation, a stable sort by user and a rank
within each user's rows; no Python loop over users.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Literal

import torch
from torch import Tensor

from .. import metrics
from .cleaning import k_core, rating_threshold
from .kgdata import KGRecData

TASKS = ("topk", "ctr", "impression")
SPLITS = ("random", "temporal", "loo", "given", "cold_item")
VALID_SPLITS = ("per_user", "cold_item")


class FingerprintError(ValueError):
    """Data whose fingerprint differs from the one a model or weights were trained on (the
    message names both): other data files, another protocol or split, another KG ablation."""


def check_fingerprint(saved: dict, fingerprint: str, dataset: str) -> None:
    """Refuse data other than the data a checkpoint was written on.

    Args:
        saved: the data identity a checkpoint holds (``KGRecDataModule.state_dict()``:
            ``fingerprint``, ``dataset``, ``protocol``); without a ``fingerprint`` (a checkpoint
            written before kgzoo recorded it) nothing is checked.
        fingerprint, dataset: those of the data at hand.

    Raises:
        FingerprintError: the fingerprints differ (the message names both, with both datasets).
    """
    want = saved.get("fingerprint")
    if want is not None and want != fingerprint:
        raise FingerprintError(f"the checkpoint was written on dataset {saved.get('dataset')!r} with fingerprint "
                               f"{want} (protocol {saved.get('protocol')}); this data, {dataset!r}, has fingerprint "
                               f"{fingerprint}: other data files, protocol, split or KG ablation")


class LeakageError(AssertionError):
    """A split that puts a valid/test pair in train, or a cold item in train."""


@dataclass
class Split:
    """Row indices (LongTensor ``[n]`` into ``data.interactions``) of each part of a split."""

    train: Tensor
    valid: Tensor
    test: Tensor
    #: rows a protocol rule removed from each part (``require_train_positive``), by part name
    dropped: dict[str, int] = field(default_factory=dict)

    def sizes(self) -> dict[str, int]:
        return {"train": int(self.train.numel()), "valid": int(self.valid.numel()), "test": int(self.test.numel())}


@dataclass(frozen=True)
class EvalProtocol:
    """How data becomes train / valid / test, and how it is scored.

    Attributes:
        task: ``"topk"`` (implicit feedback; full ranking over all items with seen items
            masked; Recall/NDCG/...@K), ``"ctr"`` (labelled pairs; AUC, ACC, F1) or
            ``"impression"`` (news impressions scored one by one, MIND's AUC/MRR/nDCG; only with
            ``split="temporal"``: the last day's impressions test, the day before valid, see
            :mod:`kgzoo.data.impressions`; ``ratios`` unused).
        split: ``"random"`` (per user, random order, RecBole's "RS" with "RO"; for ``ctr``
            a global random split of the rows, as in RippleNet/KGCN), ``"temporal"`` (per
            user by timestamp, the latest last), ``"loo"`` (leave-one-out: latest item to
            test, the one before to valid), ``"given"`` (the source's split; valid carved
            from train per user with ``ratios[1]`` when the source has none) or
            ``"cold_item"`` (a random ``ratios[2]`` of items with all their rows to test,
            ``ratios[1]`` to valid; those items have no train interaction; each stage ranks
            only its own cold items, as cold-start item studies do, e.g. DropoutNet,
            Volkovs et al., NeurIPS 2017, section 4: a warm item cannot be a test answer).
        ratios: (train, valid, test) fractions, summing to 1.
        seed: seed of every random choice of the split.
        threshold: keep ratings ``>=`` threshold (explicit to implicit); ``None`` keeps all.
            Held as a float, so ``4`` and ``4.0`` are one protocol (one fingerprint, one
            ``kgzoo.protocols.protocol_key``).
        k_core: keep users and items with at least ``k_core`` interactions (0 = off).
        require_train_positive: after the split, drop every train, valid and test row of a
            user with no positive train row (RippleNet's protocol: the authors'
            ``data_loader.dataset_split`` keeps "only the users with positive ratings", since a
            user without one has no ripple set). The removed rows are counted in
            :attr:`Split.dropped`. Off by default (KGCN's protocol keeps every row); not part
            of the fingerprint while off, so earlier results keep theirs.
        valid_split: how a ``given`` split whose source has no validation rows carves them from
            train: ``"per_user"`` (default: ``ratios[1] / (ratios[0] + ratios[1])`` of each user's
            train rows) or ``"cold_item"`` (that share of the train items, drawn at random, with
            all their rows, so that no valid item occurs in train: a validation split drawn like
            a source's test split whose items never occur in train, as dkn-news's titles,
            ``benchmarks/studies/dkn_news_valid_split.md``). Only with ``split="given"``; not
            part of the fingerprint at its default, so earlier results keep theirs.

    Raises:
        ValueError: unknown task or split, ratios that are not three non-negative fractions
            summing to 1, a ``seed`` or ``k_core`` that is not an integer >= 0, a ``threshold``
            that is neither ``None`` nor a number, a ``require_train_positive`` that is not a
            bool, a ``valid_split`` other than ``"per_user"``/``"cold_item"`` or ``"cold_item"``
            with another split than ``"given"`` (each message names the field).
    """

    task: Literal["topk", "ctr", "impression"] = "topk"
    split: Literal["random", "temporal", "loo", "given", "cold_item"] = "random"
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    threshold: float | None = None
    k_core: int = 0
    require_train_positive: bool = False
    valid_split: Literal["per_user", "cold_item"] = "per_user"

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"EvalProtocol.task: unknown task {self.task!r}; expected one of {TASKS}")
        if self.split not in SPLITS:
            raise ValueError(f"EvalProtocol.split: unknown split {self.split!r}; expected one of {SPLITS}")
        try:
            r = tuple(float(x) for x in self.ratios)
        except (TypeError, ValueError):
            r = ()
        if len(r) != 3 or min(r) < 0 or abs(sum(r) - 1) > 1e-6:
            raise ValueError(f"EvalProtocol.ratios: {self.ratios!r} must be three non-negative fractions summing to 1")
        object.__setattr__(self, "ratios", r)
        if self.task == "impression" and self.split != "temporal":
            raise ValueError(f"EvalProtocol.split: the impression task splits by day ('temporal'), got {self.split!r}")
        for name in ("seed", "k_core"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"EvalProtocol.{name}: {v!r} must be an integer >= 0")
        if self.threshold is not None:  # one value, one protocol: 4 and 4.0 (JSON) had two fingerprints
            if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)):
                raise ValueError(f"EvalProtocol.threshold: {self.threshold!r} must be a number or null")
            object.__setattr__(self, "threshold", float(self.threshold))
        if not isinstance(self.require_train_positive, bool):  # "false" or 1 would switch it on
            raise ValueError(f"EvalProtocol.require_train_positive: {self.require_train_positive!r} must be "
                             "true or false")
        if self.valid_split not in VALID_SPLITS:
            raise ValueError(f"EvalProtocol.valid_split: unknown {self.valid_split!r}; expected one of {VALID_SPLITS}")
        if self.valid_split != "per_user" and self.split != "given":
            raise ValueError(f"EvalProtocol.valid_split: {self.valid_split!r} carves the validation rows of a "
                             f"'given' split, got split={self.split!r}")

    # ------------------------------------------------------------------ data
    def prepare(self, data: KGRecData) -> KGRecData:
        """Apply the protocol's cleaning: rating threshold, negatives dropped for ``topk``, k-core.

        Each step is counted in ``data.cleaning``.
        """
        if self.threshold is not None:
            data = rating_threshold(data, self.threshold)
        if self.task == "topk" and data.label is not None:
            keep = data.label > 0
            rep = dict(data.cleaning)
            rep["interactions: negative label (topk keeps positives)"] = int((~keep).sum())
            kw = data.select_interactions(keep)
            kw.pop("label")
            data = data.replace(label=None, cleaning=rep, **kw)
        if self.task == "ctr" and data.label is None:
            raise ValueError(f"{data.name}: the ctr protocol needs labelled rows; this dataset has none")
        if self.k_core > 0:
            data = k_core(data, self.k_core, self.k_core)
        return data

    def split_data(self, data: KGRecData) -> Split:
        """Split the rows of ``data`` (already :meth:`prepare`-d). Deterministic for :attr:`seed`.

        Raises:
            ValueError: ``temporal``/``loo`` without timestamps is fine for ``loo`` (random
                order) but an error for ``temporal``; ``given`` without a source split.
        """
        split = self._split(data)
        if not self.require_train_positive:
            return split
        # users with a positive train row (ctr: label > 0; topk rows are all positive)
        rows = split.train if data.label is None else split.train[data.label[split.train] > 0]
        known = torch.zeros(data.n_users, dtype=torch.bool)
        known[data.interactions[rows, 0]] = True
        parts, dropped = {}, {}
        for name in ("train", "valid", "test"):
            idx = getattr(split, name)
            keep = known[data.interactions[idx, 0]]
            parts[name], dropped[name] = idx[keep], int((~keep).sum())
        return Split(**parts, dropped=dropped)

    def _split(self, data: KGRecData) -> Split:
        g = torch.Generator().manual_seed(self.seed)
        N = data.n_interactions
        users = data.interactions[:, 0]
        if self.split == "cold_item":
            return self._cold_item(data, g)
        if self.split == "given":
            if data.given_split is None:
                raise ValueError(f"{data.name}: split 'given' asked for, but the source fixes no split")
            return self._given(data, g)
        if self.task == "ctr" and self.split == "random":
            perm = torch.randperm(N, generator=g)
            n_test = int(N * self.ratios[2])
            n_valid = int(N * self.ratios[1])
            return Split(perm[n_valid + n_test:].sort().values, perm[:n_valid].sort().values,
                         perm[n_valid:n_valid + n_test].sort().values)
        if self.split == "temporal":
            if data.timestamp is None:
                raise ValueError(f"{data.name}: split 'temporal' needs timestamps; the dataset has none")
        order = self._order(data, g)
        rank, count = _rank_within(users[order], data.n_users)
        if self.split == "loo":
            n_test = (count >= 2).long()
            n_valid = (count >= 3).long()
        else:
            n_test, n_valid = _ratio_counts(count, self.ratios)
        # the latest rows go to test, the ones before to valid
        from_end = count - 1 - rank
        part = torch.zeros(N, dtype=torch.long)
        part[from_end < n_test + n_valid] = 1
        part[from_end < n_test] = 2
        return _to_split(order, part)

    def _order(self, data: KGRecData, g: torch.Generator) -> Tensor:
        """Row order: random (then stable by user), or by (user, timestamp) with random ties."""
        perm = torch.randperm(data.n_interactions, generator=g)
        if self.split in ("temporal", "loo") and data.timestamp is not None:
            perm = perm[torch.sort(data.timestamp[perm], stable=True).indices]
        return perm[torch.sort(data.interactions[perm, 0], stable=True).indices]

    def _given(self, data: KGRecData, g: torch.Generator) -> Split:
        gs = data.given_split
        if bool((gs == 1).any()):
            if self.valid_split != "per_user":
                raise ValueError(f"{data.name}: valid_split={self.valid_split!r} carves validation rows from train, "
                                 "but the source's split gives its own")
            return Split(*(torch.nonzero(gs == k).flatten() for k in range(3)))
        train_rows = torch.nonzero(gs == 0).flatten()
        frac = self.ratios[1] / max(1e-12, self.ratios[0] + self.ratios[1])
        if self.valid_split == "cold_item":
            # a random share frac of the train items with all their rows: no valid item is in train
            items = torch.unique(data.interactions[train_rows, 1])
            chosen = items[torch.randperm(items.numel(), generator=g)[:int(round(items.numel() * frac))]]
            is_valid_item = torch.zeros(data.n_items, dtype=torch.bool)
            is_valid_item[chosen] = True
            in_valid = is_valid_item[data.interactions[train_rows, 1]]
            return Split(train_rows[~in_valid], train_rows[in_valid], torch.nonzero(gs == 2).flatten())
        # carve valid from train per user: a fraction ratios[1] / (ratios[0] + ratios[1])
        perm = train_rows[torch.randperm(train_rows.numel(), generator=g)]
        perm = perm[torch.sort(data.interactions[perm, 0], stable=True).indices]
        rank, count = _rank_within(data.interactions[perm, 0], data.n_users)
        n_valid, _ = _ratio_counts(count, (1 - frac, 0.0, frac))  # (n_test, n_valid): the frac sits in the test slot
        is_valid = (count - 1 - rank) < n_valid
        return Split(perm[~is_valid].sort().values, perm[is_valid].sort().values,
                     torch.nonzero(gs == 2).flatten())

    def _cold_item(self, data: KGRecData, g: torch.Generator) -> Split:
        I = data.n_items
        perm = torch.randperm(I, generator=g)
        n_test, n_valid = int(round(I * self.ratios[2])), int(round(I * self.ratios[1]))
        part_of_item = torch.zeros(I, dtype=torch.long)
        part_of_item[perm[:n_test]] = 2
        part_of_item[perm[n_test:n_test + n_valid]] = 1
        part = part_of_item[data.interactions[:, 1]]
        return Split(*(torch.nonzero(part == k).flatten() for k in range(3)))

    # ------------------------------------------------------------------ identity
    def to_dict(self) -> dict:
        d = asdict(self)
        d["ratios"] = list(self.ratios)
        if not self.require_train_positive:  # added later: absent while off, so old fingerprints hold
            d.pop("require_train_positive")
        if self.valid_split == "per_user":  # likewise
            d.pop("valid_split")
        if self.split == "cold_item":  # part of the protocol's identity (and fingerprint)
            d["candidates"] = "stage_cold_items"
        return d

    @classmethod
    def from_dict(cls, record: dict) -> "EvalProtocol":
        """The protocol of a record :meth:`to_dict` wrote (a result row's, a checkpoint's or a
        manifest entry's ``protocol``) or of a dict of its fields: :func:`protocol_fields` of it.

        Raises:
            TypeError: a field the protocol does not have. ValueError: as the constructor.
        """
        return cls(**protocol_fields(record))

    def fingerprint(self, checksums: dict[str, str], extra: dict | None = None) -> str:
        """sha256 of the data files' checksums, this protocol's fields, the metric code version
        and ``extra`` (e.g. a KG ablation). Results with different fingerprints are never
        compared in one table (DESIGN.md, "EvalProtocol")."""
        payload = {"files": dict(sorted(checksums.items())), "protocol": self.to_dict(),
                   "metric_code_version": metrics.METRIC_CODE_VERSION, "extra": extra or {}}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def protocol_fields(record: dict) -> dict:
    """The constructor's fields of a protocol record (:meth:`EvalProtocol.to_dict`): the record
    less ``candidates``, which ``to_dict`` derives from ``split`` (``cold_item``:
    ``"stage_cold_items"``) and the constructor does not take; a dict of the fields alone is
    returned as it is (a copy). The form a LightningCLI ``--data.protocol`` and
    :class:`EvalProtocol` take.
    """
    return {k: v for k, v in record.items() if k != "candidates"}


def default_protocol_for(data: KGRecData) -> EvalProtocol:
    """The protocol of a dataset without one of its own (a user's frames or folder): ``ctr`` with
    a random 6:2:2 split when the rows are labelled (RippleNet/KGCN's protocol), else ``topk``
    with a random 8:1:1 split per user (RecBole's default)."""
    if data.label is not None:
        return EvalProtocol(task="ctr", ratios=(0.6, 0.2, 0.2))
    return EvalProtocol(task="topk")


def _rank_within(sorted_users: Tensor, n_users: int) -> tuple[Tensor, Tensor]:
    """For rows sorted by user: (rank of each row within its user, that user's row count)."""
    counts = torch.bincount(sorted_users, minlength=n_users)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(sorted_users.numel()) - starts[sorted_users]
    return rank, counts[sorted_users]


def _ratio_counts(count: Tensor, ratios: tuple[float, float, float]) -> tuple[Tensor, Tensor]:
    """Per-row (n_test, n_valid) for a user with ``count`` rows, RecBole's rounding rule:
    floor of each ratio, then a part whose share is in (0, 1) gets one row while train keeps
    more than one (test first, then valid)."""
    c = count.double()
    n_test = torch.floor(c * ratios[2]).long()
    n_valid = torch.floor(c * ratios[1]).long()
    n_train = count - n_test - n_valid
    bump_t = (n_train > 1) & (c * ratios[2] > 0) & (c * ratios[2] < 1)
    n_test, n_train = n_test + bump_t.long(), n_train - bump_t.long()
    bump_v = (n_train > 1) & (c * ratios[1] > 0) & (c * ratios[1] < 1)
    n_valid = n_valid + bump_v.long()
    return n_test, n_valid


def _to_split(order: Tensor, part: Tensor) -> Split:
    return Split(*(order[part == k].sort().values for k in range(3)))


def check_leakage(data: KGRecData, split: Split, cold_items: bool = False) -> None:
    """Assert a split is leak-free.

    Raises:
        LeakageError: a (user, item) pair of valid or test is also in train; with
            ``cold_items``, a valid/test item has a train interaction.
    """
    x = data.interactions
    key = x[:, 0] * data.n_items + x[:, 1]
    train_keys = key[split.train]
    for name, idx in (("valid", split.valid), ("test", split.test)):
        leaked = torch.isin(key[idx], train_keys)
        if bool(leaked.any()):
            raise LeakageError(f"{data.name}: {int(leaked.sum())} {name} (user, item) pairs are also in train")
        if cold_items:
            bad = torch.isin(x[idx, 1], x[split.train, 1])
            if bool(bad.any()):
                raise LeakageError(f"{data.name}: {int(bad.sum())} {name} rows have an item seen in train")
