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
from ..paths import cache_dir


@dataclass
class KGVectors:
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

    @property
    def path(self) -> Path:
        """The cache file: ``<cache_dir>/<name>-<key[:32]>.safetensors``."""
        return cache_dir("kge", self.cache_dir) / f"{self.name}-{self.key[:32]}.safetensors"

    def load(self) -> Tensor:
        """FloatTensor ``[E, k]`` (``k`` the model's entity width): :meth:`load_tables`' ``"entity"``."""
        return self.load_tables(relation=False)["entity"]

    def load_tables(self, relation: bool = True) -> dict[str, Tensor]:
        """``{"entity": FloatTensor [E, k], "relation": FloatTensor [R, k']}``: read from the cache,
        else trained (:meth:`train`) and written there (safetensors, atomically). A cache file of
        an earlier kgzoo holds the entity table only: it serves ``relation=False`` as it is, and
        is trained again and replaced when the relation table is asked for.

        Raises:
            ValueError: a cached file of the wrong shape (corrupt cache: delete it).
        """
        from safetensors.torch import load_file, save_file

        path = self.path
        if path.is_file():
            tables = load_file(str(path))
            vec = tables["entity"]
            if vec.dim() != 2 or vec.shape[0] != self.n_entities:
                raise ValueError(f"KG embedding cache {path} has shape {tuple(vec.shape)}, "
                                 f"expected [{self.n_entities}, k]; delete the file")
            if "relation" in tables or not relation:
                return tables
        tables = self.train()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        save_file({k: v.contiguous() for k, v in tables.items()}, str(tmp),
                  metadata={"model": self.name, "epochs": str(self.epochs), "seed": str(self.seed)})
        os.replace(tmp, path)
        return tables

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
            trainer = L.Trainer(accelerator=self.accelerator, devices=self.devices, max_epochs=int(self.epochs),
                                logger=False, enable_checkpointing=False, enable_progress_bar=False,
                                enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0)
            trainer.fit(kge, train_dataloaders=link.train_dataloader())
        return {"entity": kge.entity.weight.detach().cpu().clone(),
                "relation": kge.relation.weight.detach().cpu().clone()}
