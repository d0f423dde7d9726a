"""Recommender: the LightningModule every kgzoo model subclasses.

A model file holds only its math: ``loss(batch)`` and ``score(users)`` (top-K) or
``predict(users, items)`` (CTR), ``impression_scores(batch)`` (news impressions). The base owns
training_step, validation and test (masking seen items, metrics, logging), ``recommend``, and
``configure_optimizers``
(DESIGN.md, "Recommender").
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn
import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from ..ops.csr import csr_rows
from ..registry import MODELS
from ..tasks import get_task
from ..version import __version__
from .layers.fold_in import fold_in

#: constructor arguments that come from the DataModule (sizes and task), not from a config
SIZE_KEYS = ("n_users", "n_items", "n_entities", "n_relations", "task")


class DivergedError(FloatingPointError):
    """A training loss that became NaN or infinite."""


#: attributes set on every training step that are plain Python attributes, never a parameter, buffer
#: or submodule: Lightning's hook name (``_current_fx_name``, set and restored around each of about
#: 12 hook calls per step) and the epoch's running loss. :meth:`Recommender.__setattr__` stores them
#: directly instead of through ``nn.Module.__setattr__`` (whose parameter, buffer and module checks
#: cost more than the assignment; the result is the same attribute)
_PLAIN_ATTRIBUTES = frozenset({"_current_fx_name", "_loss_sum", "_loss_rows", "_loss_checked", "_loss_last"})


def publish_epoch_metrics(trainer: L.Trainer, values: dict[str, Tensor | float], prog_bar: Sequence[str] = ()) -> None:
    """Hands epoch-level metrics, already reduced over the ranks, to what reads Lightning's logged
    values, in one call: ``trainer.callback_metrics`` (early stopping, checkpointing, Optuna
    pruning, LR schedulers), ``trainer.logged_metrics`` and every logger (one ``log_metrics`` call
    with the ``epoch`` and the step Lightning would use), ``trainer.progress_bar_metrics`` for the
    names in ``prog_bar``. The values are those ``self.log(name, value, on_epoch=True)`` gives at
    an epoch's end (a tensor detached and squeezed, an integer or half-precision value as the
    default float dtype, a Python number as a CPU tensor), bit for bit; what
    it skips is Lightning's per-key ``_ResultMetric`` bookkeeping (about 0.3 ms a key on CPU).

    Args:
        trainer: the running Trainer. values: ``{name: scalar tensor or number}``, the same on
            every rank (no reduction is done here). prog_bar: names also shown in the progress bar.

    Raises:
        ValueError: a value with more than one element (named).
    """
    out: dict[str, Tensor] = {}
    for name, value in values.items():
        v = value.detach().clone() if isinstance(value, Tensor) else torch.tensor(value)
        if v.numel() != 1:
            raise ValueError(f"publish_epoch_metrics: {name!r} has {v.numel()} elements, not one")
        v = v.squeeze()
        out[name] = v if v.dtype in (torch.float32, torch.float64) else v.to(torch.get_default_dtype())
    connector = trainer._logger_connector  # Lightning's own path from logged values to callbacks and loggers
    connector.callback_metrics.update(out)
    connector.logged_metrics.update(out)  # also without a logger, as Lightning's epoch end does
    connector.progress_bar_metrics.update({k: out[k].item() for k in prog_bar if k in out})
    connector.log_metrics(out)


class Recommender(L.LightningModule):
    """Base class of every kgzoo model.

    Args:
        n_users, n_items, n_entities, n_relations: sizes of the id spaces (from
            ``KGRecDataModule.model_kwargs()``).
        task: a task of :data:`kgzoo.tasks.TASKS` (``"topk"``, ``"ctr"``; KG embedding models: ``"link"``).
        lr: Adam learning rate. weight_decay: Adam weight decay.
        ks: the K of top-K metrics. main_metric: the validation metric monitored for early
            stopping and model selection (``"ndcg@10"``, ``"recall@20"``, ``"auc"``, ...).

    Raises:
        ValueError: ``main_metric`` is not one this task computes; a K larger than the items
            ranked. KeyError: an unknown task.
    """

    model_name: str = "recommender"
    #: the task of a model whose task does not come from its data (KG link prediction: ``"link"``);
    #: ``None``: the data's (``topk`` or ``ctr``, the ``task`` argument)
    task: str | None = None
    #: set to True by models that train a KG loss and want ``head, relation, pos_tail, neg_tail``
    uses_kg_batches: bool = False
    #: True for a model (with ``uses_kg_batches``) that trains its KG loss in a phase of its own,
    #: as KGAT's paper alternates ``L_CF`` and ``L_KG`` (Wang et al., KDD 2019, section 3.4.2): the
    #: DataModule yields each epoch's CF batches (``user, pos_item, neg_item``), then its KG batches
    #: (:func:`kgzoo.data.datamodule.kg_phase_order`: a batch with ``head`` is a KG-phase batch), and
    #: the base trains each phase with an Adam of its own (:meth:`configure_optimizers`, Lightning's
    #: manual optimisation in :meth:`training_step`). A model may make it a property of its arguments.
    kg_phase: bool = False
    #: set to True by models that score from the user's clicked history and want ``history``,
    #: ``history_mask`` in their CTR batches (the news models)
    uses_history: bool = False
    #: set to True by models whose loss reads the ``ctr`` task's labelled rows ``user, item, label``
    #: (KGCN, RippleNet, the news models). Any other model trains on a ``ctr`` dataset as on
    #: ``topk``: BPR triples ``user, pos_item, neg_item`` of the train split's positive rows
    #: (:meth:`kgzoo.data.datamodule.KGRecDataModule.adapt_to`); it is still evaluated on the
    #: labelled valid/test rows (AUC, F1).
    trains_on_labels: bool = False

    def __init__(self, n_users: int, n_items: int, n_entities: int = 0, n_relations: int = 0,
                 task: str = "topk", lr: float = 1e-3, weight_decay: float = 0.0,
                 ks: Sequence[int] = (10, 20), main_metric: str | None = None) -> None:
        super().__init__()
        self.n_users, self.n_items = int(n_users), int(n_items)
        self.n_entities, self.n_relations = max(int(n_entities), int(n_items)), int(n_relations)
        self.task = type(self).task or task
        spec = get_task(self.task)
        self.lr, self.weight_decay = lr, weight_decay
        self.ks = [int(k) for k in ks]
        self.main_metric = spec.check_metric(main_metric or spec.main_metric(self.ks), self.ks)
        self._final_cache: tuple[Tensor, Tensor] | None = None
        # the epoch's running training loss (training_step): sum of loss * rows, rows, first unchecked batch
        self._loss_sum: Tensor | None = None
        self._loss_rows, self._loss_checked, self._loss_last = 0, 0, 0
        self._attached_fingerprint: str | None = None
        # a task whose evaluation masks seen items ranks every item: K <= I
        if "mask_col" in spec.batch_keys and max(self.ks) > self.n_items:
            raise ValueError(f"K={max(self.ks)} is larger than the number of items ({self.n_items})")
        self.valid_metrics, self.test_metrics = spec.make_metrics(self.ks), spec.make_metrics(self.ks)

    @property
    def automatic_optimization(self) -> bool:
        """Lightning's flag: ``False`` for a model that trains in phases (:attr:`kg_phase`), whose
        :meth:`training_step` steps the phase's optimiser itself; else as set (default ``True``)."""
        return self._automatic_optimization and not self.kg_phase

    @automatic_optimization.setter
    def automatic_optimization(self, value: bool) -> None:
        self._automatic_optimization = value

    def is_kg_phase_batch(self, batch: dict[str, Tensor]) -> bool:
        """Whether ``batch`` belongs to the KG phase of a model that trains in phases
        (:attr:`kg_phase`; a KG-phase batch carries ``head``); always ``False`` otherwise."""
        return self.kg_phase and "head" in batch

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _PLAIN_ATTRIBUTES:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    # ------------------------------------------------------------------ model API
    def metric_names(self) -> list[str]:
        """The metric names this task logs (:meth:`kgzoo.tasks.Task.metric_names` of ``ks``)."""
        return get_task(self.task).metric_names(self.ks)

    @property
    def attached_fingerprint(self) -> str | None:
        """The fingerprint of the graphs last attached (:meth:`attach`), ``None`` before."""
        return self._attached_fingerprint

    def attach(self, graphs: Any, extras: dict[str, Any] | None = None) -> None:
        """Take what the model needs beyond its sizes from ``graphs`` (a
        :class:`kgzoo.data.graphs.Graphs`: train interactions, CKG, triples, text, features)
        and ``extras`` (cached pre-computations made outside the model by :mod:`kgzoo.pretrain`
        and handed in by :func:`kgzoo.api.attach`: ``"kg_vectors"``, ...).

        Idempotent by ``graphs.fingerprint``: graphs of the fingerprint already attached change
        nothing (:func:`kgzoo.create_model` attaches, then ``Trainer.fit`` calls :meth:`setup`);
        graphs of another fingerprint are attached anew. The model's own work is :meth:`_attach`.
        """
        fingerprint = graphs.fingerprint
        if fingerprint is not None and fingerprint == self._attached_fingerprint:
            return
        self._attach(graphs, dict(extras or {}))
        self._attached_fingerprint = fingerprint

    def _attach(self, graphs: Any, extras: dict[str, Any]) -> None:
        """The model's part of :meth:`attach` (build graph buffers, counts, ...). The default takes nothing."""

    def _new_kg_tables(self, extras: dict[str, Any], held_key: Tensor, hint: str = "",
                       relation: bool = False) -> dict[str, Tensor] | None:
        """The tables of ``extras["kg_vectors"]`` (pre-trained KG embeddings,
        :class:`kgzoo.pretrain.kg_vectors.KGVectors`: ``key`` hex string, ``load_tables(relation)``
        -> ``{"entity": FloatTensor [E, k]}``, plus ``"relation": FloatTensor [R, k']`` when
        ``relation``) for a model to copy
        into its own tables, or ``None`` when it already holds them: ``held_key`` (LongTensor
        ``[]`` buffer, the first 60 bits of the key the model's tables came from, 0 = none) equals
        theirs, or no vectors were given and the model holds some (a restored checkpoint).
        ``held_key`` is set to the new key. Vectors that extend others (an incremental update's,
        ``vectors.grown_from``: the key of the tables they extend) may replace only those.

        Raises:
            RuntimeError: no ``extras["kg_vectors"]`` and nothing held (naming the model; ``hint``
                says what else the user may do).
            ValueError: vectors that extend tables other than the ones held (both keys named).
        """
        vectors = extras.get("kg_vectors")
        if vectors is None:
            if int(held_key) == 0:
                raise RuntimeError(f"{self.model_name} needs extras['kg_vectors']: attach it with "
                                   f"kgzoo.api.attach(model, datamodule) or kgzoo.create_model{hint}")
            return None
        key = int(vectors.key[:15], 16)
        if int(held_key) == key:
            return None
        grown_from = getattr(vectors, "grown_from", None)
        if grown_from is not None and int(held_key) not in (0, int(grown_from[:15], 16)):
            raise ValueError(f"{self.model_name}: the update's KG vectors extend the tables of key {grown_from[:15]}, "
                             f"the model holds those of key {int(held_key):015x}: update the model on the data "
                             "it was trained on")
        tables = vectors.load_tables(relation=relation)
        held_key.fill_(key)
        return tables

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        """Scalar training loss of a batch (see ``KGRecDataModule`` for the batch keys)."""
        raise NotImplementedError

    def final_embeddings(self) -> tuple[Tensor, Tensor]:
        """``(users FloatTensor [U, d], items FloatTensor [I, d])``: the final representations of a
        model that scores by inner product (MF, LightGCN, the GNNs over the CKG).

        A model that implements it inherits :meth:`score` (``e_u^T e_i``) and an evaluation cache
        (computed once per pass in :meth:`prepare_scoring`, without gradient).

        Raises:
            NotImplementedError: a model that scores (user, item) pairs itself (KGCN, RippleNet,
                the CTR models: :meth:`has_final_embeddings` is ``False``).
        """
        raise NotImplementedError(f"{type(self).__name__} scores each (user, item) pair itself (score/predict): it "
                                  "has no user and item embeddings whose inner product ranks items; rank with "
                                  "score() or recommend()")

    def has_final_embeddings(self) -> bool:
        """Whether the model ranks by the inner product of :meth:`final_embeddings` (it overrides them)."""
        return type(self).final_embeddings is not Recommender.final_embeddings

    def score(self, users: Tensor) -> Tensor:
        """FloatTensor ``[B, I]``: scores of every item for ``users`` (LongTensor ``[B]``).

        The default is ``e_u^T e_i`` from :meth:`final_embeddings` (cached during evaluation).

        Raises:
            NotImplementedError: the model has neither ``score`` nor ``final_embeddings``.
        """
        if not self.has_final_embeddings():
            raise NotImplementedError(f"{type(self).__name__} does not support top-K scoring")
        user_emb, item_emb = self._scoring_embeddings()
        return user_emb[users] @ item_emb.T

    def _scoring_embeddings(self) -> tuple[Tensor, Tensor]:
        """:meth:`final_embeddings`, or the evaluation pass's cache of them (:meth:`prepare_scoring`)."""
        cache = getattr(self, "_final_cache", None)
        return cache if cache is not None else self.final_embeddings()

    def predict(self, users: Tensor, items: Tensor) -> Tensor:
        """FloatTensor ``[B]``: logits of (user, item) pairs (LongTensors ``[B]``).

        The default is ``e_u^T e_i`` of the pairs for a model that ranks by
        :meth:`final_embeddings` and keeps the inherited :meth:`score` (no ``[B, I]`` row is
        built); otherwise it gathers from :meth:`score`. CTR models override it.
        """
        if type(self).score is Recommender.score and self.has_final_embeddings():
            user_emb, item_emb = self._scoring_embeddings()
            return (user_emb[users] * item_emb[items]).sum(-1)
        return self.score(users).gather(1, items.view(-1, 1)).squeeze(1)

    def ctr_scores(self, batch: dict[str, Tensor]) -> Tensor:
        """FloatTensor ``[B]``: logits of the ``ctr`` task's rows ``user``/``item`` LongTensors
        ``[B]`` (plus ``history``/``history_mask [B, H]`` for a model with ``uses_history``; see
        :class:`~kgzoo.data.datamodule.KGRecDataModule`). The default: :meth:`predict` of the
        pairs; news models score the item against the user's clicked history."""
        return self.predict(batch["user"], batch["item"])

    def impression_scores(self, batch: dict[str, Tensor]) -> Tensor:
        """FloatTensor ``[B, C]``: scores of the candidates of ``B`` impressions (the
        ``impression`` task's batch: ``user [B]``, ``history``/``history_mask [B, H]``,
        ``candidates``/``candidate_mask [B, C]``; see
        :class:`kgzoo.data.impressions.ImpressionDataModule`). Padded candidates may score anything.

        The default ignores the history: :meth:`predict` of (user, candidate) pairs. News models
        that encode the clicked history (NRMS, DKN) override it.
        """
        cand = batch["candidates"]
        users = batch["user"].unsqueeze(1).expand_as(cand)
        return self.predict(users.reshape(-1), cand.reshape(-1)).view(cand.shape)

    def prepare_scoring(self) -> None:
        """Hook before an evaluation pass: caches :meth:`final_embeddings` where the model has them."""
        if self.has_final_embeddings():
            with torch.no_grad():
                self._final_cache = self.final_embeddings()

    def end_scoring(self) -> None:
        """Hook after an evaluation pass: drops what :meth:`prepare_scoring` cached."""
        self._final_cache = None

    # ------------------------------------------------------------------ Lightning
    def setup(self, stage: str) -> None:
        """Attach the graphs of the Trainer's DataModule (its ``graphs()`` method, duck-typed;
        no extras: a model that needs some was attached by :func:`kgzoo.api.attach` first)."""
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is not None and hasattr(dm, "graphs"):
            self.attach(dm.graphs())

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Make every checkpoint self-describing (DESIGN.md, "Recommender"): adds
        ``checkpoint["kgzoo"]``, read by :func:`kgzoo.load_checkpoint` and ``kgzoo test --ckpt_path``:

        - ``format`` (1), ``kgzoo`` (the version that wrote it);
        - ``model``: the registered name (``None`` for an unregistered class), ``class_path``:
          ``module.QualName`` of the class (imported on load where the name is not registered);
        - ``hparams``: the constructor arguments (``self.hparams``; sizes and task included);
        - ``fingerprint``: of the graphs attached (:attr:`attached_fingerprint`);
        - ``data``: the Trainer DataModule's ``state_dict()`` where it has one (duck-typed, as
          :meth:`setup`): dataset, protocol, KG ablation, seed, batch sizes, fingerprint.
        """
        cls = type(self)
        name = next((e.name for e in MODELS.entries() if e.obj is cls), None)
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        data = dm.state_dict() if dm is not None and hasattr(dm, "graphs") else {}
        checkpoint["kgzoo"] = {"format": 1, "kgzoo": __version__, "model": name,
                               "class_path": f"{cls.__module__}.{cls.__qualname__}",
                               "hparams": {k: v for k, v in dict(self.hparams).items() if not k.startswith("_")},
                               "fingerprint": self._attached_fingerprint, "data": data}

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        """:meth:`loss` of the batch, added to the epoch's running sum ``sum_b loss_b * n_b`` (``n_b``:
        the batch's rows) on the loss's device: no host sync and no ``self.log`` per step. The sum
        is checked for NaN/inf every :attr:`finite_check_every` steps and at the epoch's end, and
        ``train/loss`` (its mean per row, rank-local as before) is logged once per epoch by
        :meth:`on_train_epoch_end`: the value Lightning's ``self.log(..., on_epoch=True,
        batch_size=n_b)`` reduction gave, bit for bit (same float32 sums in the same order).

        A model that trains in phases (:attr:`kg_phase`) steps the batch's phase optimiser here
        (zero_grad, ``manual_backward``, step: index 1 for a KG-phase batch, else 0); a KG-phase
        batch adds its loss times its rows to the sum but no rows (it repeats a CF batch's
        interactions), so ``train/loss`` is the summed objective ``L_CF + L_KG`` per
        interaction, as the joint loss's.

        Raises:
            DivergedError: a batch's loss was NaN or infinite (found at the next check).
        """
        loss = self.loss(batch)
        if batch_idx == 0 or self._loss_sum is None:
            self._loss_sum, self._loss_rows, self._loss_checked = torch.zeros((), device=loss.device), 0, batch_idx
        value = loss.detach()
        if value.dtype not in (torch.float32, torch.float64):  # half precision: summed in float32
            value = value.float()
        n = next(iter(batch.values())).shape[0]
        kg_step = self.is_kg_phase_batch(batch)
        self._loss_sum = self._loss_sum + value * n
        if not kg_step:  # a KG-phase batch repeats a CF batch's rows: they are counted once
            self._loss_rows += n
        self._loss_last = batch_idx
        if (batch_idx + 1) % self.finite_check_every == 0:
            self._check_finite(batch_idx)
        if not self.automatic_optimization and self.kg_phase:
            opt = self.optimizers()[int(kg_step)]
            opt.zero_grad()
            self.manual_backward(loss)
            opt.step()
        return loss

    def masked_scores(self, users: Tensor, mask_row: Tensor | None = None, mask_col: Tensor | None = None) -> Tensor:
        """FloatTensor ``[B, I]``: :meth:`score` of ``users`` (LongTensor ``[B]``) in float32 with the
        (batch row, item) pairs ``mask_row, mask_col`` (LongTensors ``[P]``) set to ``-inf``: the
        full ranking that evaluation (seen items masked) and :meth:`recommend` share."""
        scores = self.score(users).float()
        if mask_row is not None:
            scores[mask_row.to(scores.device), mask_col.to(scores.device)] = -math.inf
        return scores

    #: training steps between two checks that the epoch's running loss is finite (each check is
    #: one host sync); a non-finite loss raises :class:`DivergedError` at most this many steps later
    finite_check_every: int = 50

    def _check_finite(self, batch_idx: int) -> None:
        if not bool(torch.isfinite(self._loss_sum)):
            raise DivergedError(f"{self.model_name}: training loss is not finite (the epoch's running sum is "
                                f"{float(self._loss_sum)}) at epoch {self.current_epoch}, in batches "
                                f"{self._loss_checked}..{batch_idx}")
        self._loss_checked = batch_idx + 1

    def on_train_epoch_end(self) -> None:
        """Checks and logs the epoch's mean training loss per row (``train/loss``, progress bar);
        a subclass that overrides this hook calls ``super().on_train_epoch_end()``."""
        if self._loss_sum is None:  # no training step ran (Pop returns no loss)
            return
        self._check_finite(self._loss_last)
        self.log("train/loss", self._loss_sum / max(self._loss_rows, 1), prog_bar=True, on_step=False, on_epoch=True,
                 batch_size=1)
        self._loss_sum = None

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """Lightning's hook that moves a batch to ``device``: a dict of tensors already there (every
        batch on CPU) is returned as it is, without Lightning's walk over the collection, which
        would return the same tensors; anything else goes to Lightning's implementation."""
        if isinstance(batch, dict) and all(isinstance(v, Tensor) and v.device == device for v in batch.values()):
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def _eval_step(self, batch: dict[str, Tensor], metrics: Any) -> None:
        if "candidates" in batch:  # impressions: the impression task's batch keys
            metrics.update(self.impression_scores(batch).float(), batch["label"], batch["candidate_mask"])
            return
        if "label" in batch:  # (user, item, label) rows: the ctr task's batch keys
            metrics.update(self.ctr_scores(batch), batch["label"], batch["user"])
            return
        scores = self.masked_scores(batch["user"], batch["mask_row"], batch["mask_col"])
        if "item_mask" in batch:  # items no user of the stage may be recommended (cold_item split)
            scores[:, batch["item_mask"]] = -math.inf
        metrics.update(scores, (batch["target_row"], batch["target_col"]))

    def _log_metrics(self, prefix: str, metrics: Any) -> None:
        """Computes the stage's metrics (``metrics.compute()``: under DDP torchmetrics sums the
        metric states over the ranks first, so every rank gets the exact single-process values),
        resets them and hands them on as ``"<prefix>/<name>"``.

        A validation inside ``Trainer.fit`` (once per epoch) publishes them in one call
        (:func:`publish_epoch_metrics`): callbacks (early stopping, checkpoint, pruning), loggers
        and the progress bar get the values ``self.log`` gave them, without Lightning's per-key
        result bookkeeping. ``Trainer.validate`` and ``Trainer.test`` log them through ``self.log``,
        which is how those calls return them. Nothing is published while Lightning's sanity check
        runs (Lightning drops logged values there too)."""
        values = {f"{prefix}/{k}": v for k, v in metrics.compute().items()}
        metrics.reset()
        trainer = self.trainer
        if trainer.state.fn == TrainerFn.FITTING:
            if not trainer.sanity_checking:
                publish_epoch_metrics(trainer, values, prog_bar=(f"{prefix}/{self.main_metric}",))
            return
        for k, v in values.items():
            self.log(k, v, prog_bar=(k == f"{prefix}/{self.main_metric}"), sync_dist=False)

    def _start_metrics(self, metrics: Any) -> None:
        # fresh metric states in this process: a model sent to DDP ranks by ``ddp_spawn`` arrives
        # with its tensors in shared memory, one storage for every rank, so in-place updates of the
        # states (``x += ...``) added up across ranks before torchmetrics' own sum over the ranks
        # (found by the impression DDP check of tests/unit/test_impressions.py: counts doubled, nDCG halved)
        metrics.reset()

    def on_validation_epoch_start(self) -> None:
        self._start_metrics(self.valid_metrics)
        self.prepare_scoring()

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._eval_step(batch, self.valid_metrics)

    def on_validation_epoch_end(self) -> None:
        self.end_scoring()
        self._log_metrics("valid", self.valid_metrics)

    def on_test_epoch_start(self) -> None:
        self._start_metrics(self.test_metrics)
        self.prepare_scoring()

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._eval_step(batch, self.test_metrics)

    def on_test_epoch_end(self) -> None:
        self.end_scoring()
        self._log_metrics("test", self.test_metrics)

    def configure_optimizers(self) -> Any:
        """Adam (Kingma & Ba, ICLR 2015) over the trainable parameters, ``lr`` and
        ``weight_decay`` from the hyper-parameters; ``None`` when nothing trains (Pop).

        Fused (``torch.optim.Adam(fused=True)``: one kernel over every parameter) when every
        trainable parameter is floating point on CPU or CUDA and the Trainer, if there is one,
        does not clip gradients (Lightning refuses to clip under mixed precision with an
        optimizer that unscales gradients itself). The same algorithm as the per-tensor loop
        (not bit for bit: the fused kernel computes half-precision parameters in float32), and
        on CPU 4x faster for a model of 17 parameter tensors (KGPLM: 0.3 against 1.2 ms per step).

        A model that trains in phases (:attr:`kg_phase`) gets two such Adams, ``[CF, KG]``, each
        over every trainable parameter with its own moments (as the authors' KGAT code: one
        ``AdamOptimizer`` minimising ``L_CF``, another ``L_KG``; a parameter without a gradient in
        a phase, such as KGAT's aggregation weights in the KG phase, is not moved by its Adam).
        Lightning then checkpoints and restores both states."""
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            return None
        clips = self._trainer is not None and (self._trainer.gradient_clip_val or 0) > 0
        fused = not clips and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
        adams = [torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay, fused=fused or None)
                 for _ in range(2 if self.kg_phase else 1)]
        return adams if self.kg_phase else adams[0]

    # ------------------------------------------------------------------ incremental update
    #: the fold-in's ridge weight and confidence (:func:`~kgzoo.models.layers.fold_in.fold_in`)
    fold_in_reg: float = 1.0
    fold_in_alpha: float = 10.0

    @property
    def update_reads(self) -> tuple[str, ...]:
        """The side tables of an update (``"user_features"``, ``"item_features"``, ``"social"``)
        this model reads (:func:`kgzoo.hub.update.check_side_tables` refuses the others); default none."""
        return ()

    def update(self, graphs: Any, growth: Any, extras: dict[str, Any] | None = None) -> dict[str, Any]:
        """Grow the model to extended data without retraining it (issue 15, part 7).

        Every table of users, items, entities (and relations) grows to the sizes of ``graphs``;
        the trained rows are copied unchanged to their ids in the extended data (users and
        items keep theirs, entities follow ``growth.entity_map``); the graph is rebuilt by
        :meth:`attach` (``graphs`` of the extended split: normalised adjacency, CKG, text). The
        new rows are then initialised, without gradient:

        1. new items: a prior, the mean of the final vectors of the base items that share a KG
           entity with them (or are their KG neighbours; 0 without a KG path), refined by the
           fold-in (:func:`~kgzoo.models.layers.fold_in.fold_in`, Hu et al. ICDM 2008) on the
           frozen final vectors of the base users who interacted with them (per model:
           :meth:`_init_new_items`; KGPLM: the mean of their graph neighbours' vectors, its
           text tower gives the text source);
        2. new users: the fold-in on the final item vectors (new items included) of their
           train interactions; observed target the margin by which base train pairs outscore
           the average pair (:meth:`_fold_in_target`: the model's own score scale), ridge
           ``fold_in_reg``, confidence ``1 + fold_in_alpha``, unobserved items as zeros (Hu et
           al.'s implicit form).

        A model writes a final-space vector into its parameters with :meth:`_write_rows` (BPR: the
        row itself; LightGCN: the layer-0 row ``e`` with ``(e + c) / (K + 1) ~ x``, ``c`` the
        propagated rest). Fine-tuning on the new interactions is the caller's
        (:func:`kgzoo.hub.update.update_model`).

        Args:
            graphs: the :class:`~kgzoo.data.graphs.Graphs` of the extended data's split.
            growth: a :class:`~kgzoo.data.extend.Growth` (the base sizes and ``entity_map``
                ``[E]``). extras: pre-computations for :meth:`attach` (text vectors).

        Returns:
            counts: ``"new users"``, ``"new items"``, ``"new entities"``, ``"folded-in users"``,
            ``"folded-in items"`` and how many new items had a prior (``"items with a KG prior"``;
            KGPLM: ``"items with a graph-neighbour prior"``).

        Raises:
            NotImplementedError: a model the update does not support (named; retrain it).
            ValueError: ``graphs`` smaller than the model, or of another task.
        """
        self.check_update()
        if (growth.n_users, growth.n_items, growth.n_entities) != (self.n_users, self.n_items, self.n_entities):
            raise ValueError(f"{type(self).__name__}.update: the growth starts from {growth.n_users} users, "
                             f"{growth.n_items} items, {growth.n_entities} entities; the model has {self.n_users}, "
                             f"{self.n_items}, {self.n_entities}")
        if graphs.n_users < self.n_users or graphs.n_items < self.n_items or graphs.task != self.task:
            raise ValueError(f"{type(self).__name__}.update: graphs of {graphs.n_users} users, {graphs.n_items} items "
                             f"(task {graphs.task}) cannot extend a model of {self.n_users}, {self.n_items} "
                             f"({self.task})")
        with torch.no_grad():
            grown = self._grow(graphs, growth) or {}
        sizes = {"n_users": graphs.n_users, "n_items": graphs.n_items,
                 "n_entities": max(graphs.n_entities, graphs.n_items), "n_relations": graphs.n_relations}
        for k, v in sizes.items():
            setattr(self, k, v)
            if k in self.hparams:
                self.hparams[k] = v
        self._final_cache, self._attached_fingerprint = None, None
        self.attach(graphs, extras)
        report = {"new users": graphs.n_users - growth.n_users, "new items": graphs.n_items - growth.n_items,
                  "new entities": sizes["n_entities"] - growth.n_entities, **grown}
        with torch.no_grad():
            report.update(self._init_new_items(graphs, growth))
            report.update(self._init_new_users(graphs, growth))
        return report

    def check_update(self) -> None:
        """Raise where :meth:`update` cannot extend this model (the default: every model that does
        not implement :meth:`_grow`)."""
        if type(self)._grow is Recommender._grow:
            raise NotImplementedError(f"{type(self).__name__} ({self.model_name}) has no incremental update: "
                                      "retrain it on the extended data (kgzoo fit / kgzoo bench)")

    def _grow(self, graphs: Any, growth: Any) -> dict[str, int] | None:
        """Replace the id tables with ones of the sizes of ``graphs``: trained rows at their new
        ids (:func:`~kgzoo.models.layers.fold_in.grown_rows`), new rows 0 (per model); may return
        counts for the report."""
        raise NotImplementedError

    def _write_rows(self, kind: str, ids: Tensor, vectors: Tensor) -> None:
        """Set the parameters of ``kind`` (``"user"`` or ``"item"``) rows ``ids`` (LongTensor
        ``[n]``) so that their final vectors are ``vectors`` FloatTensor ``[n, d]`` (exactly or,
        for graph models, to first order; per model)."""
        raise NotImplementedError(f"{type(self).__name__} does not write final-space vectors")

    def _update_vectors(self) -> tuple[Tensor, Tensor]:
        """``(users FloatTensor [U, d], items [I, d])``: the vectors whose inner product the model
        scores by, for the fold-in (default :meth:`final_embeddings`)."""
        return self.final_embeddings()

    def _fold_in_target(self, growth: Any, graphs: Any, users: Tensor, items: Tensor) -> Tensor | float:
        """The fold-in's observed target on the model's own score scale: the margin by which the
        base train pairs outscore the average (base user, base item) pair, ``mean <e_u, e_i>``
        over train pairs minus ``mean_u e_u . mean_i e_i``; ``1`` where that margin is not
        positive (a model that has not learnt to rank its train pairs up)."""
        x = graphs.train_interactions
        old = x[(x[:, 0] < growth.n_users) & (x[:, 1] < growth.n_items)]
        pos = (users[old[:, 0]] * items[old[:, 1]]).sum(-1).mean()
        margin = pos - users[: growth.n_users].mean(0) @ items[: growth.n_items].mean(0)
        return margin if float(margin) > 0 else 1.0

    def _kg_item_prior(self, graphs: Any, growth: Any, items: Tensor) -> tuple[Tensor, Tensor]:
        """``(FloatTensor [k, d], LongTensor [k])``: for the ``k`` new items, the mean of the final
        vectors ``items`` of the base items one or two KG hops away (a shared entity), and how
        many there are (sparse products of the KG's adjacency; 0 without a path)."""
        I0, I1, E = growth.n_items, graphs.n_items, max(graphs.n_entities, graphs.n_items)
        t = graphs.triples.numpy()
        src, dst = np.concatenate([t[:, 0], t[:, 2]]), np.concatenate([t[:, 2], t[:, 0]])
        adj = sp.csr_matrix((np.ones(src.size, dtype=np.float64), (src, dst)), shape=(E, E))
        rows = adj[I0:I1]
        hops = (rows + rows @ adj)[:, :I0].tocsr()  # paths to base items of length 1 and 2
        total = np.asarray(hops.sum(1)).ravel()
        mean = hops @ items.detach().double().numpy() / np.maximum(total, 1)[:, None]
        return torch.from_numpy(mean).to(items.dtype), torch.from_numpy(total > 0).long()

    def _init_new_items(self, graphs: Any, growth: Any) -> dict[str, int]:
        """New items in final space: the KG prior (:meth:`_kg_item_prior`) folded in on the base
        users who interacted with them, written by :meth:`_write_rows`."""
        I0, I1, U0 = growth.n_items, graphs.n_items, growth.n_users
        if I1 == I0:
            return {"items with a KG prior": 0, "folded-in items": 0}
        users, items = self._update_vectors()
        prior, has = self._kg_item_prior(graphs, growth, items[:I0])
        x = graphs.train_interactions
        obs = x[(x[:, 1] >= I0) & (x[:, 0] < U0)]
        mu = self._fold_in_target(growth, graphs, users, items)
        vec = fold_in(users[:U0], obs[:, 1] - I0, obs[:, 0], I1 - I0, mu, self.fold_in_reg, self.fold_in_alpha,
                      prior=prior)
        seen = torch.bincount(obs[:, 1] - I0, minlength=I1 - I0) > 0
        vec = torch.where(seen.unsqueeze(1), vec, prior)  # no interaction: the prior as it is
        self._write_rows("item", torch.arange(I0, I1), vec)
        return {"items with a KG prior": int(has.sum()), "folded-in items": int(seen.sum())}

    def _init_new_users(self, graphs: Any, growth: Any) -> dict[str, int]:
        """New users: the fold-in on the final item vectors of their train interactions, written by
        :meth:`_write_rows` (a new user without a train interaction keeps 0)."""
        U0, U1 = growth.n_users, graphs.n_users
        if U1 == U0:
            return {"folded-in users": 0}
        users, items = self._update_vectors()
        x = graphs.train_interactions
        obs = x[x[:, 0] >= U0]
        mu = self._fold_in_target(growth, graphs, users, items)
        vec = fold_in(items, obs[:, 0] - U0, obs[:, 1], U1 - U0, mu, self.fold_in_reg, self.fold_in_alpha)
        self._write_rows("user", torch.arange(U0, U1), vec)
        return {"folded-in users": int((torch.bincount(obs[:, 0] - U0, minlength=U1 - U0) > 0).sum())}

    # ------------------------------------------------------------------ use
    @torch.no_grad()
    def recommend(self, users: Tensor, k: int = 10, exclude: tuple[Tensor, Tensor] | None = None,
                  batch_size: int = 1024) -> tuple[Tensor, Tensor]:
        """Top-``k`` items for ``users``: full ranking of every item, as in evaluation (scores of
        :meth:`score`, excluded items set to ``-inf``), ``batch_size`` users at a time after one
        :meth:`prepare_scoring` (an inner-product model propagates once for all batches).

        Args:
            users: LongTensor ``[B]``. k: list length.
            exclude: optional CSR ``(indptr LongTensor [U+1], indices LongTensor [nnz])`` of items
                not to recommend; :meth:`kgzoo.hub.Pretrained.exclusion` makes it from the
                policy name (``"seen"``, ``"train"``, ``"none"``) that the hub and the commands
                take; ``None``: nothing excluded. An excluded item can only
                appear, with score ``-inf``, in a list longer than the user's candidates.
            batch_size: users scored at once (memory: ``batch_size x I`` floats).

        Returns:
            ``(scores FloatTensor [B, k], items LongTensor [B, k])``, best first.

        Raises:
            ValueError: ``k`` outside ``1..I``, ``batch_size`` < 1.
        """
        if not 1 <= k <= self.n_items:
            raise ValueError(f"k={k} must be in 1..{self.n_items}")
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        was_training = self.training
        self.eval()
        self.prepare_scoring()
        values, indices = [], []
        try:
            for s in range(0, users.numel(), batch_size):
                u = users[s:s + batch_size]
                r, c = csr_rows(exclude[0], exclude[1], u.cpu()) if exclude is not None else (None, None)
                scores = self.masked_scores(u.to(self.device), r, c)
                top = torch.topk(scores, k, dim=1)
                values.append(top.values)
                indices.append(top.indices)
        finally:
            self.end_scoring()
            self.train(was_training)
        if not values:
            return torch.zeros(0, k, device=self.device), torch.zeros(0, k, dtype=torch.long, device=self.device)
        return torch.cat(values), torch.cat(indices)
