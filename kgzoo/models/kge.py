"""KG embedding models (TransE, TransR) with filtered link-prediction evaluation.

Shared pieces: the translational scoring functions (:func:`transe_distance`,
:func:`transr_project`, :func:`relation_matmul`, :func:`clamp_norm`) that the recommenders
CFKG, CKE and KGAT reuse, and the link-prediction task: a seeded split of the KG's triples
(:func:`split_triples`), its DataModule (:class:`KGLinkDataModule`) and the model base (:class:`KGEmbeddingModel`).

Design (how a model that is not a recommender fits the zoo). TransE and TransR are
:class:`~kgzoo.models.base.Recommender` subclasses with ``task = "link"``: they reuse the
base's ``training_step`` (``loss(batch)``, divergence check, logging), its validation/test
epoch hooks (``valid/<metric>`` logging of a torchmetrics object) and its optimiser, and
override only the evaluation step (filtered head and tail ranks). Their data cannot be the
recommendation DataModule's: a link-prediction model must not train on the held-out
triples, which ``KGRecDataModule``'s KG batches sample from. So a dedicated
:class:`KGLinkDataModule` *wraps* a :class:`~kgzoo.data.datamodule.KGRecDataModule` (same
dataset, same KG ablation, batch sizes taken from it), splits its triples 90/5/5 with the
protocol's seed, and serves triple batches. The model announces this with
:meth:`KGEmbeddingModel.wrap_datamodule`, which :func:`kgzoo.train.run_experiment` calls when
a model has it, so ``run_experiment("transe", "ml-100k-kg")`` trains and tests on the link
task and returns a normal result row (``metrics["test/mrr"]``, ``"test/hits@10"``, ...,
``main_metric="mrr"``, ``task="link"``, a fingerprint that covers the triple split). The
recommendation DataModule stays untouched and no other model sees any of this.

Evaluation: for every held-out triple ``(h, r, t)`` both the tail query ``(h, r, ?)`` and the
head query ``(?, r, t)`` are ranked against all ``E`` entities, filtered against all known
triples (train + valid + test; Bordes et al., NeurIPS 2013, section 4.2), with the
"realistic" tie-averaged rank of :mod:`kgzoo.metrics.link` (PyKEEN's convention). The filter
is built once per stage with :func:`kgzoo.metrics.link.build_filter` (sort +
``searchsorted``; no loop over triples).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from typing import Any, Iterator, Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, IterableDataset

from ..data.sampling import sample_negatives, sorted_keys
from ..metrics.link import LinkPredictionMetrics, build_filter
from ..registry import register_model
from .base import Recommender

LINK_METRICS_KS = (1, 3, 10)


# ---------------------------------------------------------------------- scoring functions
def clamp_norm(x: Tensor, maxnorm: float = 1.0, p: float = 2.0, dim: int = -1) -> Tensor:
    """``x`` with every vector's ``p``-norm clamped to at most ``maxnorm`` (differentiable).

    The soft "``||x|| <= 1``" constraints of TransR (Lin et al., AAAI 2015, section 3.2).
    Shapes are kept; dtype float.
    """
    norm = x.norm(p=p, dim=dim, keepdim=True)
    return x * (maxnorm / norm.clamp_min(maxnorm))


def transe_distance(h: Tensor, r: Tensor, t: Tensor, p: float = 1.0) -> Tensor:
    """TransE dissimilarity ``d(h + r, t) = ||h + r - t||_p`` (Bordes et al., NeurIPS 2013, section 2).

    Args:
        h, r, t: FloatTensors ``[..., d]`` (broadcastable). p: 1 (L1) or 2 (L2).

    Returns:
        FloatTensor ``[...]`` (lower is more plausible).
    """
    return (h + r - t).norm(p=p, dim=-1)


def transe_distance_all(query: Tensor, candidates: Tensor, p: float = 1.0) -> Tensor:
    """``||query_b - c_e||_p`` for every query and candidate without a ``[B, E, d]`` tensor.

    Args:
        query: FloatTensor ``[B, d]`` (``h + r`` for tails, ``t - r`` for heads).
        candidates: FloatTensor ``[E, d]``.

    Returns:
        FloatTensor ``[B, E]`` (:func:`torch.cdist`).
    """
    return torch.cdist(query.unsqueeze(0), candidates.unsqueeze(0), p=p).squeeze(0)


def relation_matmul(e: Tensor, proj: Tensor, r: Tensor) -> Tensor:
    """``e_i M_{r_i}`` for every row: each row times its relation's matrix.

    Rows are grouped by relation and each group is one ``[n_r, k] @ [k, d]`` matmul (a loop
    over the relations present, at most ``R``; never over entities or triples), which avoids
    gathering a ``[B, k, d]`` copy of the matrices for a ``bmm`` (and its scatter-add in
    backward): for KGAT's TransR batch on ml-100k-kg's CKG (50 relations, 3 x 4,096 rows,
    k = d = 64) 13 ms of forward and backward instead of 262 ms with
    ``bmm(e.unsqueeze(1), proj[r])`` (one thread).

    The product of TransR's projection (Lin et al., AAAI 2015, eq. 1) and KGAT's ``W_r e``
    (Wang et al., KDD 2019, eq. 1); RippleNet's ``R h`` (Wang et al., CIKM 2018, eq. 3) with
    the transposed matrices.

    Args:
        e: FloatTensor ``[B, k]``. proj: FloatTensor ``[R, k, d]``. r: LongTensor ``[B]`` in ``0..R-1``.

    Returns:
        FloatTensor ``[B, d]`` (``e``'s dtype and device).

    Raises:
        IndexError: a relation id ``>= R``. RuntimeError: a negative relation id (``bincount``).
    """
    order = torch.argsort(r)
    counts = torch.bincount(r, minlength=proj.shape[0]).tolist()
    parts = [x @ proj[i] for i, x in enumerate(e.index_select(0, order).split(counts)) if x.numel()]
    out = torch.empty(e.shape[0], proj.shape[2], dtype=e.dtype, device=e.device)
    return out.index_copy(0, order, torch.cat(parts)) if parts else out


def transr_project(e: Tensor, proj: Tensor, r: Tensor) -> Tensor:
    """TransR projection ``e_r = e M_r`` (Lin et al., AAAI 2015, eq. 1), norm-clamped to ``<= 1``
    (:func:`relation_matmul`, then :func:`clamp_norm`).

    Args:
        e: FloatTensor ``[B, k]`` entity embeddings. proj: FloatTensor ``[R, k, d]`` the
            projection matrices. r: LongTensor ``[B]`` the relation of each row.

    Returns:
        FloatTensor ``[B, d]`` with ``||e_r||_2 <= 1`` (the paper's constraints
        ``||h M_r|| <= 1``, ``||t M_r|| <= 1``, applied as a differentiable clamp).
    """
    return clamp_norm(relation_matmul(e, proj, r))


def margin_ranking(pos_dist: Tensor, neg_dist: Tensor, margin: float) -> Tensor:
    """``mean(max(0, margin + d(pos) - d(neg)))``: the hinge loss of TransE (Bordes et al., eq. 1)
    and TransR (Lin et al., eq. 2); the papers sum over the batch, we average (a learning-rate scale)."""
    return F.relu(margin + pos_dist - neg_dist).mean()


# ---------------------------------------------------------------------- the triple split
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


# ---------------------------------------------------------------------- data
class _LinkTrainBatches(IterableDataset):
    """One epoch per ``__iter__``: every train triple once, in a seeded random order, with its
    head or its tail corrupted (probability 1/2 each, Bordes et al., Algorithm 1), the same
    on every rank and sharded by rank (DDP)."""

    def __init__(self, dm: "KGLinkDataModule") -> None:
        self.dm, self.epoch = dm, 0

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        from ..data.datamodule import dist_info

        dm = self.dm
        g = torch.Generator().manual_seed(dm.seed * 1_000_003 + 17 + self.epoch)
        self.epoch += 1
        x = dm.train_triples[torch.randperm(dm.train_triples.shape[0], generator=g)]
        h, r, t = x.unbind(1)
        E, R = dm.n_entities, dm.n_relations
        corrupt_head = torch.rand(h.shape, generator=g) < 0.5
        # negatives are never known train triples: keys (h, r) -> t and (t, r) -> h
        neg_t = sample_negatives(h * R + r, E, dm.known_tail_keys, g)
        neg_h = sample_negatives(t * R + r, E, dm.known_head_keys, g)
        neg_head = torch.where(corrupt_head, neg_h, h)
        neg_tail = torch.where(corrupt_head, t, neg_t)
        bs = dm.batch_size
        n = h.numel()
        batches = [slice(s, s + bs) for s in range(0, n, bs)]
        rank, world = dist_info()
        usable = len(batches) // world * world if world > 1 else len(batches)
        for sl in batches[rank:usable:world]:
            yield {"head": h[sl], "relation": r[sl], "tail": t[sl], "neg_head": neg_head[sl], "neg_tail": neg_tail[sl]}


class _LinkEvalBatches(IterableDataset):
    """Evaluation triples of one stage with their head and tail filters, sharded ``rank::world``."""

    def __init__(self, dm: "KGLinkDataModule", stage: str) -> None:
        self.dm, self.stage = dm, stage

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        from ..data.datamodule import dist_info

        rank, world = dist_info()
        q, filters = self.dm.eval_queries[self.stage]
        idx = torch.arange(q.shape[0])[rank::world]
        bs = self.dm.eval_batch_size
        for s in range(0, idx.numel(), bs):
            rows = idx[s:s + bs]
            batch = {"head": q[rows, 0], "relation": q[rows, 1], "tail": q[rows, 2]}
            for side, (indptr, col) in filters.items():
                lo, hi = indptr[rows], indptr[rows + 1]
                lens = hi - lo
                row = torch.repeat_interleave(torch.arange(rows.numel()), lens)
                off = torch.arange(int(lens.sum())) - torch.repeat_interleave(torch.cumsum(lens, 0) - lens, lens)
                batch[f"{side}_filter_row"], batch[f"{side}_filter_col"] = row, col[lo[row] + off]
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

    # the fields of a result row (kgzoo.train.run_experiment)
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


# ---------------------------------------------------------------------- models
class KGEmbeddingModel(Recommender):
    """Base of KG embedding models: ``task = "link"``, margin ranking loss, filtered ranks.

    Subclasses give :meth:`distance` (``[B]`` for aligned triples) and :meth:`distance_all`
    (``[B, E]`` for every candidate head or tail). Lower distance = more plausible; the
    score is ``-distance``.

    Args:
        n_entities, n_relations: ``E`` and ``R`` (relations ``0..R-1`` of ``dm.data.triples``).
        margin: ``gamma`` of the hinge loss. p_norm: 1 or 2 (the dissimilarity).
        main_metric: one of ``mrr``, ``hits@1``, ``hits@3``, ``hits@10`` (default ``mrr``).
        n_users, n_items, task, ks: accepted for :func:`kgzoo.create_model` and ignored
            (the task is always ``"link"``). lr, weight_decay: Adam's.

    Raises:
        ValueError: ``p_norm`` not 1 or 2, a non-positive margin, no entities or relations,
        an unknown main metric.
    """

    def __init__(self, n_entities: int, n_relations: int, margin: float = 1.0, p_norm: float = 1.0,
                 n_users: int = 0, n_items: int = 0, main_metric: str | None = "mrr", **kwargs: Any) -> None:
        kwargs.pop("task", None)
        kwargs.pop("ks", None)
        if p_norm not in (1, 2):
            raise ValueError(f"p_norm must be 1 or 2, got {p_norm!r}")
        if margin <= 0:
            raise ValueError(f"margin must be > 0, got {margin!r}")
        if int(n_entities) < 1 or int(n_relations) < 1:
            raise ValueError(f"a KG embedding model needs entities and relations, got E={n_entities}, R={n_relations}")
        super().__init__(max(int(n_users), 1), max(int(n_items), 1), n_entities=int(n_entities),
                         n_relations=int(n_relations), task="link", ks=(1,), main_metric=main_metric or "mrr",
                         **kwargs)
        self.n_entities = int(n_entities)  # the base takes max(E, I)
        self.ks = list(LINK_METRICS_KS)
        self.margin, self.p_norm = float(margin), float(p_norm)
        self.valid_metrics = LinkPredictionMetrics(LINK_METRICS_KS)
        self.test_metrics = LinkPredictionMetrics(LINK_METRICS_KS)

    def metric_names(self) -> list[str]:
        return ["mrr"] + [f"hits@{k}" for k in LINK_METRICS_KS]

    def wrap_datamodule(self, datamodule: Any) -> KGLinkDataModule:
        """The :class:`KGLinkDataModule` this model trains and tests on (called by ``run_experiment``)."""
        return datamodule if isinstance(datamodule, KGLinkDataModule) else KGLinkDataModule(datamodule)

    # -- math of the subclasses
    def distance(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        """FloatTensor ``[B]``: dissimilarity of triples given as LongTensors ``[B]``."""
        raise NotImplementedError

    def distance_all(self, anchor: Tensor, r: Tensor, side: str) -> Tensor:
        """FloatTensor ``[B, E]``: dissimilarity of ``(anchor, r, e)`` (``side="tail"``) or
        ``(e, r, anchor)`` (``side="head"``) for every entity ``e``."""
        raise NotImplementedError

    def normalize_(self) -> None:
        """Project parameters back on the paper's constraint set (in place, no grad)."""

    # -- training
    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        """Margin ranking loss of true vs corrupted triples (batch of :class:`KGLinkDataModule`).

        Raises:
            KeyError: a batch without ``head, relation, tail, neg_head, neg_tail`` (e.g. a
            recommendation batch: build the data with :meth:`wrap_datamodule`).
        """
        missing = {"head", "relation", "tail", "neg_head", "neg_tail"} - set(batch)
        if missing:
            raise KeyError(f"{self.model_name}: link-prediction batches need {sorted(missing)}; "
                           "train on KGLinkDataModule (model.wrap_datamodule(dm))")
        # one call (one embedding gather and one dense gradient per table), then split
        r = batch["relation"]
        dist = self.distance(torch.cat([batch["head"], batch["neg_head"]]), torch.cat([r, r]),
                             torch.cat([batch["tail"], batch["neg_tail"]]))
        pos, neg = dist.split(r.numel())
        return margin_ranking(pos, neg, self.margin)

    def on_fit_start(self) -> None:
        self.normalize_()

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.normalize_()

    # -- evaluation
    def score_triples(self, head: Tensor, relation: Tensor, side: str = "tail") -> Tensor:
        """FloatTensor ``[B, E]``: ``-distance`` of every candidate tail of ``(head, relation, ?)``
        (``side="tail"``) or every candidate head of ``(?, relation, tail=head)`` (``side="head"``)."""
        if side not in ("tail", "head"):
            raise ValueError(f"side must be 'tail' or 'head', got {side!r}")
        return -self.distance_all(head, relation, side)

    def _eval_step(self, batch: dict[str, Tensor], metrics: Any) -> None:
        h, r, t = batch["head"], batch["relation"], batch["tail"]
        for side, anchor, true in (("tail", h, t), ("head", t, h)):
            scores = self.score_triples(anchor, r, side).float()
            metrics.update(scores, true, batch[f"{side}_filter_row"].to(scores.device),
                           batch[f"{side}_filter_col"].to(scores.device))

    def score(self, users: Tensor) -> Tensor:
        raise NotImplementedError(f"{self.model_name} is a KG embedding model (task 'link'): it ranks "
                                  "entities with score_triples(head, relation), not items for users")


def _uniform_init(w: Tensor) -> None:
    """Bordes et al., Algorithm 1: ``uniform(-6/sqrt(k), 6/sqrt(k))``."""
    bound = 6.0 / math.sqrt(w.shape[-1])
    nn.init.uniform_(w, -bound, bound)


@register_model("transe", family="kge", paper="Bordes et al., NeurIPS 2013")
class TransE(KGEmbeddingModel):
    """TransE (Bordes, Usunier, Garcia-Duran, Weston, Yakhnenko, "Translating Embeddings for
    Modeling Multi-relational Data", NeurIPS 2013).

    ``d(h, r, t) = ||e_h + e_r - e_t||_p`` (section 2), trained with the hinge loss
    ``[gamma + d(h, r, t) - d(h', r, t')]_+`` over triples with the head or the tail
    corrupted (eq. 1). Algorithm 1: embeddings initialised ``uniform(-6/sqrt(k), 6/sqrt(k))``,
    relations L2-normalised once, entities L2-normalised before every minibatch (here: at
    fit start and after every optimiser step, so evaluation also sees unit entities).
    Differences from the paper: Adam (the paper's SGD in the config's comments) and the
    batch-mean of the hinge loss (the paper sums).

    Args:
        embedding_dim: ``k``. margin: ``gamma``. p_norm: 1 (L1) or 2 (L2).

    Shapes: entity table ``[E, k]``, relation table ``[R, k]``, float32.
    """

    def __init__(self, n_entities: int, n_relations: int, embedding_dim: int = 50, margin: float = 1.0,
                 p_norm: float = 1.0, **kwargs: Any) -> None:
        super().__init__(n_entities, n_relations, margin=margin, p_norm=p_norm, **kwargs)
        self.save_hyperparameters()
        self.entity = nn.Embedding(self.n_entities, embedding_dim)
        self.relation = nn.Embedding(self.n_relations, embedding_dim)
        _uniform_init(self.entity.weight)
        _uniform_init(self.relation.weight)
        with torch.no_grad():
            self.relation.weight.copy_(F.normalize(self.relation.weight, dim=-1))
            self.entity.weight.copy_(F.normalize(self.entity.weight, dim=-1))

    def normalize_(self) -> None:
        with torch.no_grad():
            self.entity.weight.copy_(F.normalize(self.entity.weight, dim=-1))

    def distance(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        eh, et = self.entity(torch.cat([h, t])).split(h.numel())
        return transe_distance(eh, self.relation(r), et, self.p_norm)

    def distance_all(self, anchor: Tensor, r: Tensor, side: str) -> Tensor:
        a, rel = self.entity(anchor), self.relation(r)
        query = a + rel if side == "tail" else a - rel  # ||h + r - t|| = ||(t - r) - h||
        return transe_distance_all(query, self.entity.weight, self.p_norm)


@register_model("transr", family="kge", paper="Lin et al., AAAI 2015")
class TransR(KGEmbeddingModel):
    """TransR (Lin, Liu, Sun, Liu, Zhu, "Learning Entity and Relation Embeddings for Knowledge
    Graph Completion", AAAI 2015).

    Entities in ``R^k``, relations in ``R^d``, one projection ``M_r`` ``[k, d]`` per relation;
    ``h_r = h M_r``, ``t_r = t M_r`` (eq. 1), ``f_r(h, t) = ||h_r + r - t_r||_p`` (eq. 2, the
    paper's squared L2 or L1 dissimilarity; we use the plain norm), hinge loss with margin
    ``gamma`` (eq. 3). Constraints ``||h||, ||r||, ||t|| <= 1`` (projected after every step)
    and ``||h M_r||, ||t M_r|| <= 1`` (a differentiable clamp in :func:`transr_project`).
    ``M_r`` starts as the identity (paper, section 3.3); the paper initialises entities and
    relations from a trained TransE, here they start as TransE's uniform init (a difference).

    Args:
        embedding_dim: ``k``. relation_dim: ``d`` (default ``k``). margin, p_norm: as TransE.

    Shapes: entities ``[E, k]``, relations ``[R, d]``, projections ``[R, k, d]``, float32.
    Evaluation caches the projected entity table ``[R, E, d]`` (:meth:`prepare_scoring`).
    """

    def __init__(self, n_entities: int, n_relations: int, embedding_dim: int = 50, relation_dim: int | None = None,
                 margin: float = 1.0, p_norm: float = 1.0, **kwargs: Any) -> None:
        super().__init__(n_entities, n_relations, margin=margin, p_norm=p_norm, **kwargs)
        self.save_hyperparameters()
        d = int(relation_dim or embedding_dim)
        self.entity = nn.Embedding(self.n_entities, embedding_dim)
        self.relation = nn.Embedding(self.n_relations, d)
        self.proj = nn.Parameter(torch.eye(embedding_dim, d).repeat(self.n_relations, 1, 1))
        _uniform_init(self.entity.weight)
        _uniform_init(self.relation.weight)
        self.normalize_()
        self._cache: Tensor | None = None

    def normalize_(self) -> None:
        with torch.no_grad():
            for w in (self.entity.weight, self.relation.weight):
                w.copy_(clamp_norm(w))

    def distance(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        eh, et = self.entity(torch.cat([h, t])).split(h.numel())
        hr, tr = transr_project(torch.cat([eh, et]), self.proj, torch.cat([r, r])).split(h.numel())
        return transe_distance(hr, self.relation(r), tr, self.p_norm)

    def prepare_scoring(self) -> None:
        with torch.no_grad():
            self._cache = clamp_norm(torch.matmul(self.entity.weight.unsqueeze(0), self.proj))  # [R, E, d]

    def end_scoring(self) -> None:
        self._cache = None

    def distance_all(self, anchor: Tensor, r: Tensor, side: str) -> Tensor:
        projected = self._cache
        if projected is None:
            projected = clamp_norm(torch.matmul(self.entity.weight.unsqueeze(0), self.proj))
        a = projected[r, anchor]  # [B, d]
        rel = self.relation(r)
        query = a + rel if side == "tail" else a - rel
        out = query.new_empty(r.numel(), self.n_entities)
        # one cdist per relation present in the batch (at most R; no loop over entities or triples)
        for rel_id in torch.unique(r).tolist():
            rows = torch.nonzero(r == rel_id).flatten()
            out[rows] = transe_distance_all(query[rows], projected[rel_id], self.p_norm)
        return out


# ---------------------------------------------------------------------- pre-trained entity vectors
def _entity_embeddings_key(datamodule: Any, model: str, epochs: int, seed: int,
                           overrides: dict[str, Any]) -> tuple[str, dict[str, Any], int]:
    """``(sha256 hex, hyper-parameters, batch size)`` identifying :func:`entity_embeddings`'
    result: triples, model, hyper-parameters, epochs, seed, batch size.

    Raises:
        KeyError: unknown model. ValueError: the KG has no triples.
    """
    from ..config import ZooConfig
    from ..registry import MODELS

    MODELS.get(model)  # KeyError with the nearest names
    datamodule.setup()
    triples = datamodule.data.triples
    if triples.shape[0] == 0:
        raise ValueError(f"{datamodule.dataset}: the KG has no triples (kg_ablation="
                         f"{datamodule.kg_ablation_kind!r}); entity embeddings need some")
    E, R = int(datamodule.n_entities), max(1, int(datamodule.n_relations))
    cfg = ZooConfig.load(model, datamodule.dataset)
    hp = dict(cfg.model)
    hp.update(overrides)
    batch = int(cfg.data.get("batch_size") or datamodule.batch_size)
    h = hashlib.sha256(json.dumps({"model": model, "hp": hp, "epochs": int(epochs), "seed": int(seed), "E": E,
                                   "R": R, "batch": batch}, sort_keys=True).encode())
    h.update(triples.contiguous().numpy().tobytes())
    return h.hexdigest(), hp, batch


def entity_embeddings_key(datamodule: Any, model: str = "transe", epochs: int = 50, seed: int = 0,
                          **overrides: Any) -> str:
    """sha256 hex of what :func:`entity_embeddings` with these arguments returns (its cache key):
    a caller holding vectors under this key needs no call.

    Raises:
        KeyError: unknown model. ValueError: the KG has no triples.
    """
    return _entity_embeddings_key(datamodule, model, epochs, seed, overrides)[0]


def entity_embeddings(datamodule: Any, model: str = "transe", epochs: int = 50, seed: int = 0,
                      cache_dir: str | None = None, **overrides: Any) -> Tensor:
    """Entity vectors of a KG embedding model trained on every triple of a dataset's KG.

    The model (``"transe"`` or ``"transr"``, or any registered model of family ``kge``) is
    built with its zoo config for the dataset plus ``overrides``, trained with a Lightning
    :class:`~lightning.pytorch.Trainer` on all of ``datamodule.data.triples`` (after the
    DataModule's KG ablation; no held-out triples: these vectors are features, not a link
    prediction result) for ``epochs`` epochs, negatives as :class:`KGLinkDataModule`. The
    result is written to ``cache_dir`` (default :func:`kgzoo.paths.cache_dir` ``("kge")``:
    ``$KGZOO_HOME/kge``, else ``$XDG_CACHE_HOME/kgzoo/kge``) as safetensors, keyed
    by sha256 of the triples, the model name, its hyper-parameters, ``epochs``, ``seed`` and
    the batch size (the model's zoo config ``data.batch_size``, else the DataModule's), so a
    second call trains nothing (the frozen-text cache of
    :mod:`kgzoo.models.layers.text_encoder`, for the KG). Training runs under
    :func:`torch.random.fork_rng` seeded with ``seed``: the caller's random state is the same
    whether the cache was hit or not.

    This is the "embed the KG's nodes with a KG-embedding model, then fuse" route (CKE, Zhang
    et al., KDD 2016, section 4.2, trains TransR jointly; here it is trained first and frozen,
    as the text vectors are).

    Args:
        datamodule: a :class:`~kgzoo.data.datamodule.KGRecDataModule`.
        model: registered KG embedding model name. epochs: training epochs (>= 1).
        seed: initialisation and sampling seed. cache_dir: cache folder.
        overrides: hyper-parameters over the zoo config (e.g. ``embedding_dim=64``).

    Returns:
        FloatTensor ``[E, k]`` (``E`` = ``datamodule.n_entities``, ``k`` the model's entity width).

    Raises:
        ValueError: ``epochs < 1``; the KG has no triples; a cached file of the wrong shape
            (corrupt cache: delete it).
        KeyError: unknown model.
    """
    from safetensors.torch import load_file, save_file

    from ..api import create_model
    from ..paths import cache_dir as kind_cache_dir

    if int(epochs) < 1:
        raise ValueError(f"entity_embeddings: epochs must be >= 1, got {epochs!r}")
    key, hp, batch = _entity_embeddings_key(datamodule, model, epochs, seed, overrides)
    E, R = int(datamodule.n_entities), max(1, int(datamodule.n_relations))
    path = kind_cache_dir("kge", cache_dir)
    path = path / f"{model}-{key[:32]}.safetensors"
    if path.is_file():
        vec = load_file(str(path))["entity"]
        if vec.dim() != 2 or vec.shape[0] != E:
            raise ValueError(f"KG embedding cache {path} has shape {tuple(vec.shape)}, expected [{E}, k]; delete the file")
        return vec
    link = KGLinkDataModule(datamodule, ratios=(1.0, 0.0, 0.0), seed=seed, max_valid_triples=None)
    link.batch_size = batch  # the KG model's own batch size, not the recommender's
    with torch.random.fork_rng():
        torch.manual_seed(int(seed))
        kge = create_model(model, sizes={"n_entities": E, "n_relations": R}, config=False, **hp)
        trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=int(epochs), logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                            limit_val_batches=0, num_sanity_val_steps=0)
        trainer.fit(kge, train_dataloaders=link.train_dataloader())
    vec = kge.entity.weight.detach().clone()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    save_file({"entity": vec.contiguous()}, str(tmp), metadata={"model": model, "epochs": str(epochs), "seed": str(seed)})
    os.replace(tmp, path)
    return vec
