"""KG embedding models (TransE, TransR): the link-prediction task as Recommenders.

TransE and TransR are :class:`~kgzoo.models.base.Recommender` subclasses that declare
``task = "link"`` (:data:`kgzoo.tasks.TASKS`): they reuse the base's ``training_step``
(``loss(batch)``, divergence check, logging), its validation/test epoch hooks (the task's
metric objects: MRR and Hits@K) and its optimiser, and override only the evaluation step
(filtered head and tail ranks). The task decides their data: a triple split of the KG
(:class:`kgzoo.data.link.KGLinkDataModule`, chosen by :func:`kgzoo.api.create_datamodule_for`),
so ``kgzoo fit --model kgzoo.models.kge.TransE`` and ``run_experiment("transe", ...)`` train
and test on held-out triples. Their scoring kernels are :mod:`kgzoo.models.layers.translational`.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import register_model
from ..tasks import LINK_KS
from .base import Recommender
from .layers.translational import clamp_norm, margin_ranking, transe_distance, transe_distance_all, transr_project


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

    task = "link"

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
                         n_relations=int(n_relations), ks=LINK_KS, main_metric=main_metric, **kwargs)
        self.n_entities = int(n_entities)  # the base takes max(E, I)
        self.margin, self.p_norm = float(margin), float(p_norm)

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
        """Margin ranking loss of true vs corrupted triples (batch of :class:`kgzoo.data.link.KGLinkDataModule`).

        Raises:
            KeyError: a batch without ``head, relation, tail, neg_head, neg_tail`` (e.g. a
            recommendation batch: build the data with :func:`kgzoo.api.create_datamodule_for`).
        """
        missing = {"head", "relation", "tail", "neg_head", "neg_tail"} - set(batch)
        if missing:
            raise KeyError(f"{self.model_name}: link-prediction batches need {sorted(missing)}; "
                           "train on KGLinkDataModule (kgzoo.api.create_datamodule_for(model, dm))")
        # one call (one embedding gather and one dense gradient per table), then split
        r = batch["relation"]
        dist = self.distance(torch.cat([batch["head"], batch["neg_head"]]), torch.cat([r, r]),
                             torch.cat([batch["tail"], batch["neg_tail"]]))
        pos, neg = dist.split(r.numel())
        return margin_ranking(pos, neg, self.margin)

    def on_fit_start(self) -> None:
        # Algorithm 1 normalises the entities before each batch: before the first one here, after every batch
        # below; a fit resumed from a checkpoint starts from entities normalised after its last batch
        # (normalising them again would move them by float round-off)
        if self._trainer is None or self._trainer.ckpt_path is None:  # (a plain loop calls the hook itself)
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
    ``M_r`` starts as the identity (paper, section 3.3).

    Initialisation (paper, section 4.2: "to avoid overfitting, we initialize entity and relation
    embeddings with results of TransE"): with ``init="transe"`` the entity table (and the relation
    table when ``d == k``) starts from a TransE of width ``k`` trained for ``init_epochs`` epochs
    with its own zoo config on the *train* triples of the same split (made outside the model by
    :class:`kgzoo.pretrain.kg_vectors.KGVectors`, handed in by :func:`kgzoo.api.attach`; a restored
    checkpoint keeps its weights); ``init="uniform"``: TransE's uniform init, no pre-training.

    Args:
        embedding_dim: ``k``. relation_dim: ``d`` (default ``k``). margin, p_norm: as TransE.
        init: ``"transe"`` (the paper) or ``"uniform"``. init_epochs: TransE's epochs (>= 1).

    Shapes: entities ``[E, k]``, relations ``[R, d]``, projections ``[R, k, d]``, float32.
    Evaluation caches the projected entity table ``[R, E, d]`` (:meth:`prepare_scoring`).

    Raises:
        ValueError: an unknown ``init``, ``init_epochs`` < 1.
        RuntimeError: ``init="transe"``, never initialised, attached without ``extras["kg_vectors"]``.
    """

    def __init__(self, n_entities: int, n_relations: int, embedding_dim: int = 50, relation_dim: int | None = None,
                 margin: float = 1.0, p_norm: float = 1.0, init: str = "transe", init_epochs: int = 50,
                 **kwargs: Any) -> None:
        super().__init__(n_entities, n_relations, margin=margin, p_norm=p_norm, **kwargs)
        if init not in ("transe", "uniform"):
            raise ValueError(f"TransR: init must be 'transe' or 'uniform', got {init!r}")
        if int(init_epochs) < 1:
            raise ValueError(f"TransR: init_epochs must be >= 1, got {init_epochs!r}")
        self.save_hyperparameters()
        d = int(relation_dim or embedding_dim)
        self.init, self.init_epochs = init, int(init_epochs)
        self.entity = nn.Embedding(self.n_entities, embedding_dim)
        self.relation = nn.Embedding(self.n_relations, d)
        self.proj = nn.Parameter(torch.eye(embedding_dim, d).repeat(self.n_relations, 1, 1))
        _uniform_init(self.entity.weight)
        _uniform_init(self.relation.weight)
        self.normalize_()
        # which TransE the tables started from (first 60 bits of its cache key; 0 = none yet)
        self.register_buffer("init_key", torch.zeros((), dtype=torch.long))
        self._cache: Tensor | None = None

    def pretrain_requests(self) -> dict[str, dict[str, Any]]:
        """With ``init="transe"``: ``"kg_vectors"`` of TransE of width ``k`` trained ``init_epochs`` epochs."""
        if self.init != "transe":
            return {}
        return {"kg_vectors": {"model": "transe", "epochs": self.init_epochs,
                               "overrides": {"embedding_dim": int(self.entity.weight.shape[1])}}}

    def _attach(self, graphs: Any, extras: dict[str, Any]) -> None:
        """Copy TransE's tables (``extras["kg_vectors"].load_tables()``) into a model not yet initialised from them."""
        if self.init != "transe":
            return
        tables = self._new_kg_tables(extras, self.init_key, hint=", or use init='uniform'", relation=True)
        if tables is None:
            return
        with torch.no_grad():
            self.entity.weight.copy_(tables["entity"])
            if tables["relation"].shape == self.relation.weight.shape:
                self.relation.weight.copy_(tables["relation"])
        self.normalize_()

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
