"""Entity vectors of a KG embedding model trained on all of a dataset's KG triples, cached on disk.

The "embed the KG's nodes with a KG-embedding model, then fuse" route (CKE, Zhang et al.,
KDD 2016, section 4.2, trains TransR jointly; here it is trained first and frozen, as the
frozen text vectors are). Computed outside the models: :func:`kgzoo.api.attach` builds a
:class:`KGVectors` for a model whose ``pretrain_requests()`` asks for ``"kg_vectors"`` and
hands it in ``extras``; the model compares :attr:`KGVectors.key` with the key of the vectors
it holds and calls :meth:`KGVectors.load` only when they differ (a restored checkpoint
attached to the same KG trains and reads nothing).

The model class, its hyper-parameters, the epochs, seed, batch size and the Trainer's
accelerator are given by the caller (``api`` reads them from the zoo config); nothing here
reads a config or calls the public API.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor

from ..data.link import KGLinkDataModule
from ..ops.sampling import corrupt_triples, sorted_keys
from ..paths import cache_dir
from ..quiet import FIT_STOPPED, NO_VALIDATION, lightning_quiet


class _CachedTables:
    """The cache file and entity table of KG vectors with ``name``, ``key``, ``cache_dir`` and
    ``load_tables(relation)``."""

    @property
    def path(self) -> Path:
        """The cache file: ``<cache_dir>/<name>-<key[:32]>.safetensors``."""
        return cache_dir("kge", self.cache_dir) / f"{self.name}-{self.key[:32]}.safetensors"

    def load(self) -> Tensor:
        """FloatTensor ``[E, k]`` (``k`` the model's entity width): :meth:`load_tables`' ``"entity"``."""
        return self.load_tables(relation=False)["entity"]


@dataclass
class KGVectors(_CachedTables):
    """Entity vectors ``[E, k]`` of KG embedding model ``name`` (class ``model_cls``) trained on
    every triple of ``datamodule``'s KG (after its KG ablation; no held-out triples: these
    vectors are features, not a link-prediction result), lazily: :attr:`key` is cheap,
    :meth:`load` reads the cache or trains.

    Args:
        datamodule: a set-up-able :class:`~kgzoo.data.datamodule.KGRecDataModule`.
        name: the registered model name (cache file prefix and part of the key).
        model_cls: the model class, built as ``model_cls(n_entities=E, n_relations=R, **hparams)``.
        hparams: its hyper-parameters (zoo config plus overrides). epochs: training epochs (>= 1).
        seed: initialisation and sampling seed. batch_size: triples per training batch.
        accelerator, devices: of the Lightning Trainer that trains it (``"auto"``: a GPU where
            there is one). cache_dir: cache folder (default :func:`kgzoo.paths.cache_dir` ``("kge")``:
            ``$KGZOO_HOME/kge``, else ``$XDG_CACHE_HOME/kgzoo/kge``).
        link: a :class:`~kgzoo.data.link.KGLinkDataModule` over ``datamodule``: train on its
            train triples only (a link-prediction model initialised from these vectors, as TransR
            from TransE, must not see the held-out triples), else ``None``: every triple.

    Raises:
        ValueError: ``epochs < 1``; the KG has no triples.
    """

    datamodule: Any
    name: str
    model_cls: type
    hparams: dict[str, Any] = field(default_factory=dict)
    epochs: int = 50
    seed: int = 0
    batch_size: int = 2048
    accelerator: str = "auto"
    devices: int = 1
    cache_dir: str | Path | None = None
    link: Any = None

    def __post_init__(self) -> None:
        if int(self.epochs) < 1:
            raise ValueError(f"kg_vectors: epochs must be >= 1, got {self.epochs!r}")
        dm = self.datamodule
        dm.setup()
        if dm.data.triples.shape[0] == 0:
            raise ValueError(f"{dm.dataset}: the KG has no triples (kg_ablation={dm.kg_ablation_kind!r}); "
                             "entity embeddings need some")
        self.n_entities, self.n_relations = int(dm.n_entities), max(1, int(dm.n_relations))

    @property
    def key(self) -> str:
        """sha256 hex of the triples, the model name, its hyper-parameters, the epochs, the seed,
        ``E``, ``R`` and the batch size: what :meth:`load` returns is a function of these."""
        if not hasattr(self, "_key"):
            h = hashlib.sha256(json.dumps({"model": self.name, "hp": self.hparams, "epochs": int(self.epochs),
                                           "seed": int(self.seed), "E": self.n_entities, "R": self.n_relations,
                                           "batch": int(self.batch_size)}, sort_keys=True).encode())
            h.update(self._triples().contiguous().numpy().tobytes())
            self._key = h.hexdigest()
        return self._key

    def _triples(self) -> Tensor:
        """LongTensor ``[T, 3]``: the triples trained on (the link split's train part, else all)."""
        if self.link is not None:
            self.link.setup()
            return self.link.train_triples
        return self.datamodule.data.triples

    def load_tables(self, relation: bool = True) -> dict[str, Tensor]:
        """``{"entity": FloatTensor [E, k], "relation": FloatTensor [R, k']}``: read from the cache,
        else trained (:meth:`train`) and written there (safetensors, atomically). A cache file of
        an earlier kgzoo holds the entity table only: it serves ``relation=False`` as it is, and
        is trained again and replaced when the relation table is asked for.

        Raises:
            ValueError: a cached file of the wrong shape (corrupt cache: delete it).
        """
        return _cached_tables(self.path, self.n_entities, relation, self.train,
                              {"model": self.name, "epochs": str(self.epochs), "seed": str(self.seed)})

    def train(self) -> dict[str, Tensor]:
        """Train the model on the triples (every triple, or :attr:`link`'s train triples) for
        :attr:`epochs` epochs with a Lightning Trainer (negatives as
        :class:`~kgzoo.data.link.KGLinkDataModule`) and return its entity ``[E, k]`` and relation
        ``[R, k']`` tables (on CPU). Runs under :func:`torch.random.fork_rng` seeded with
        :attr:`seed`: the caller's random state is the same whether the cache was hit or not."""
        link = self.link
        if link is None:
            link = KGLinkDataModule(self.datamodule, ratios=(1.0, 0.0, 0.0), seed=self.seed, max_valid_triples=None)
        else:  # the same train triples and negatives, with the KG model's own batch size
            link = KGLinkDataModule(link.base, ratios=link.ratios, seed=link.seed, max_valid_triples=1)
        link.batch_size = int(self.batch_size)  # the KG model's own batch size, not the recommender's
        with torch.random.fork_rng():
            torch.manual_seed(int(self.seed))
            kge = self.model_cls(n_entities=self.n_entities, n_relations=self.n_relations, **self.hparams)
            with lightning_quiet(NO_VALIDATION, lines=(FIT_STOPPED,)):  # trained for its tables: no validation on purpose
                trainer = L.Trainer(accelerator=self.accelerator, devices=self.devices, max_epochs=int(self.epochs),
                                    logger=False, enable_checkpointing=False, enable_progress_bar=False,
                                    enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0)
                trainer.fit(kge, train_dataloaders=link.train_dataloader())
        return {"entity": kge.entity.weight.detach().cpu().clone(),
                "relation": kge.relation.weight.detach().cpu().clone()}


def _cached_tables(path: Path, n_entities: int, relation: bool, make: Any, metadata: dict[str, str]) -> dict[str, Tensor]:
    """The tables of the cache file ``path`` (entity ``[n_entities, k]`` first), else ``make()``'s,
    written there atomically (:meth:`KGVectors.load_tables`)."""
    from safetensors.torch import load_file, save

    if path.is_file():
        tables = load_file(str(path))
        vec = tables["entity"]
        if vec.dim() != 2 or vec.shape[0] != n_entities:
            raise ValueError(f"KG embedding cache {path} has shape {tuple(vec.shape)}, "
                             f"expected [{n_entities}, k]; delete the file")
        if "relation" in tables or not relation:
            return tables
    tables = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(save({k: v.contiguous() for k, v in tables.items()}, metadata=metadata))  # umask mode (save_file: 0600)
    os.replace(tmp, path)
    return tables


@dataclass
class GrownKGVectors(_CachedTables):
    """The entity and relation tables of an incremental update's extended KG (issue 15, part 7):
    the tables ``base`` holds (of the data before the update, :class:`KGVectors` or a
    :class:`GrownKGVectors` of an earlier update), every old row unchanged at its new id
    (entities by ``growth.entity_map``, relations keep theirs), and a vector for each row the
    update added (new items, new entities, new relations), without retraining the old ones.

    The new rows (:meth:`train`):

    1. closed form: TransE's premise ``e_h + e_r ~ e_t`` (Bordes et al., NeurIPS 2013, section
       2) read as an estimate of the one unknown vector of a triple whose other two are old:
       ``e_t ~ e_h + e_r`` for a new tail, ``e_h ~ e_t - e_r`` for a new head, ``e_r ~ e_t - e_h``
       for a new relation; each new row starts at the mean of its estimates (the least-squares
       solution of ``sum ||e_h + e_r - e_t||_2^2`` over its triples with the others fixed),
       entities L2-normalised as TransE keeps them (a row with no old neighbour keeps the
       model's initialisation);
    2. a short fit: ``epochs`` passes of the model's own loss (:meth:`KGEmbeddingModel.loss`, the
       margin ranking loss of eq. 1) and negative sampling (:func:`kgzoo.ops.sampling.corrupt_triples`,
       Algorithm 1, never a known triple of the extended KG) over the triples that touch a new
       row only, Adam (the model's :meth:`configure_optimizers`), every old row written back
       after each step (frozen exactly), entities renormalised after each step.

    Only models whose parameters are their ``entity`` and ``relation`` tables (TransE) can be
    grown: another model's other parameters (TransR's projections) are not in the cache.

    Args:
        base: the vectors of the data before the update (``key``, ``name``, ``model_cls``,
            ``hparams``, ``epochs``, ``seed``, ``batch_size``, ``cache_dir``, ``load_tables``).
        datamodule: the extended data's :class:`~kgzoo.data.datamodule.KGRecDataModule`.
        growth: the update's :class:`~kgzoo.data.extend.Growth`.

    Raises:
        NotImplementedError: a model with parameters other than ``entity`` and ``relation``
            (named). ValueError: a growth that does not start from ``base``'s sizes.
    """

    base: Any
    datamodule: Any
    growth: Any

    def __post_init__(self) -> None:
        b = self.base
        self.name, self.model_cls, self.hparams = b.name, b.model_cls, dict(b.hparams)
        self.epochs, self.seed, self.batch_size, self.cache_dir = int(b.epochs), int(b.seed), int(b.batch_size), b.cache_dir
        dm = self.datamodule
        dm.setup()
        self.n_entities, self.n_relations = int(dm.n_entities), max(1, int(dm.n_relations))
        if self.growth.entity_map.numel() != b.n_entities:
            raise ValueError(f"kg_vectors: the update grows {self.growth.entity_map.numel()} entities, the base vectors "
                             f"have {b.n_entities}")

    @property
    def grown_from(self) -> str:
        """The key (sha256 hex) of the tables this extends (``base.key``)."""
        return self.base.key

    @property
    def key(self) -> str:
        """sha256 hex of ``base.key``, the model, its hyper-parameters, the epochs, seed and batch
        size, the extended triples and ``growth.entity_map``."""
        if not hasattr(self, "_key"):
            h = hashlib.sha256(json.dumps({"grown from": self.base.key, "model": self.name, "hp": self.hparams,
                                           "epochs": self.epochs, "seed": self.seed, "E": self.n_entities,
                                           "R": self.n_relations, "batch": self.batch_size},
                                          sort_keys=True).encode())
            h.update(self.datamodule.data.triples.contiguous().numpy().tobytes())
            h.update(self.growth.entity_map.contiguous().numpy().tobytes())
            self._key = h.hexdigest()
        return self._key

    def load_tables(self, relation: bool = True) -> dict[str, Tensor]:
        """``{"entity": [E', k], "relation": [R', k']}`` of the extended KG: from the cache, else
        :meth:`train` and written there (as :meth:`KGVectors.load_tables`)."""
        return _cached_tables(self.path, self.n_entities, True, self.train,
                              {"model": self.name, "grown from": self.base.key, "epochs": str(self.epochs)})

    def train(self) -> dict[str, Tensor]:
        """The grown tables (class docstring), under :func:`torch.random.fork_rng` seeded with
        :attr:`seed`."""
        old = self.base.load_tables(relation=True)
        emap, triples = self.growth.entity_map, self.datamodule.data.triples
        E, R, R0 = self.n_entities, self.n_relations, old["relation"].shape[0]
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)
            kge = self.model_cls(n_entities=E, n_relations=R, **self.hparams)
            names = sorted(n for n, _ in kge.named_parameters())
            if names != ["entity.weight", "relation.weight"]:
                raise NotImplementedError(f"kg_vectors: {self.name} has parameters {names}; an update grows only "
                                          "models made of entity and relation tables (transe): retrain")
            ent, rel = kge.entity.weight, kge.relation.weight
            old_ent = torch.zeros(E, dtype=torch.bool)
            old_ent[emap] = True
            old_rel = torch.arange(R) < R0
            keep_e, keep_r = old["entity"].to(ent.dtype)[torch.argsort(emap)], old["relation"].to(rel.dtype)

            def restore() -> None:  # the old rows, bit for bit (after a step or a renormalisation)
                with torch.no_grad():
                    ent[old_ent], rel[old_rel] = keep_e, keep_r

            restore()
            with torch.no_grad():
                self._closed_form(ent, rel, triples, old_ent, old_rel)
            kge.normalize_()
            restore()
            h, r, t = triples.unbind(1)
            touch = triples[~old_ent[h] | ~old_rel[r] | ~old_ent[t]]
            if touch.shape[0] and self.epochs:
                self._fit(kge, touch, triples, restore)
        return {"entity": ent.detach().cpu().clone(), "relation": rel.detach().cpu().clone()}

    @staticmethod
    def _closed_form(ent: Tensor, rel: Tensor, triples: Tensor, old_ent: Tensor, old_rel: Tensor) -> None:
        """New rows set in place to the mean of their translation estimates (class docstring, 1)."""
        h, r, t = triples.unbind(1)
        for table, rows, est, ok in (
                (ent, t, ent[h] + rel[r], old_ent[h] & old_rel[r] & ~old_ent[t]),   # new tail
                (ent, h, ent[t] - rel[r], old_ent[t] & old_rel[r] & ~old_ent[h]),   # new head
                (rel, r, ent[t] - ent[h], old_ent[h] & old_ent[t] & ~old_rel[r])):  # new relation
            if ok.any():
                total = torch.zeros_like(table).index_add_(0, rows[ok], est[ok])
                n = torch.bincount(rows[ok], minlength=table.shape[0])
                hit = n > 0
                table[hit] = total[hit] / n[hit].unsqueeze(1).to(table.dtype)

    def _fit(self, kge: Any, touch: Tensor, triples: Tensor, restore: Any) -> None:
        """The short fit of the new rows on the triples ``touch`` (class docstring, 2); ``restore()``
        writes the old rows back."""
        E, R = self.n_entities, self.n_relations
        h, r, t = triples.unbind(1)
        known_tail, known_head = sorted_keys(h * R + r, t, E), sorted_keys(t * R + r, h, E)
        opt = kge.configure_optimizers()
        g = torch.Generator().manual_seed(self.seed)
        kge.train()
        for _ in range(self.epochs):
            x = touch[torch.randperm(touch.shape[0], generator=g)]
            neg_head, neg_tail = corrupt_triples(x, E, R, known_tail, known_head, g)
            for s in range(0, x.shape[0], self.batch_size):
                sl = slice(s, s + self.batch_size)
                batch = {"head": x[sl, 0], "relation": x[sl, 1], "tail": x[sl, 2], "neg_head": neg_head[sl],
                         "neg_tail": neg_tail[sl]}
                loss = kge.loss(batch)
                opt.zero_grad()
                loss.backward()
                opt.step()
                kge.normalize_()
                restore()
        kge.eval()
