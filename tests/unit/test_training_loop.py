"""The base training loop (``Recommender.training_step``, issue 16 part 5) against the loop it
replaced (``self.log`` and a NaN check every step), on tiny in-memory data: the same parameters
after an epoch, the same logged ``train/loss`` bit for bit, and a NaN loss still raising
:class:`DivergedError` within ``finite_check_every`` steps. The validation metrics of ``Trainer.fit``
published in one call (``publish_epoch_metrics``) against the ``self.log`` per key they replaced:
every consumer gets the same values (callbacks, early stopping, the best checkpoint, loggers,
progress bar), and ``Trainer.validate`` / ``Trainer.test`` still return every metric."""
from __future__ import annotations

import csv
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

import kgzoo
from kgzoo.data.datamodule import KGRecDataModule
from kgzoo.data.kgdata import KGRecData
from kgzoo.models.base import DivergedError, publish_epoch_metrics
from kgzoo.models.mf import BPRMF
from kgzoo.ops.sampling import sorted_keys

U, I = 20, 40


class BeforeDataModule(KGRecDataModule):
    """The train loader kgzoo had before: a ``DataLoader(batch_size=None)`` around the batches, and
    negatives tested against the sorted keys of the positives (no bitmap)."""

    def setup(self, stage=None):
        super().setup(stage)
        self.bpr_sampler.known = sorted_keys(self.bpr_sampler.users, self.bpr_sampler.items, self.n_items)

    def train_dataloader(self):
        return DataLoader(super().train_dataloader(), batch_size=None)


def tiny_datamodule(batch_size: int = 12, cls: type = KGRecDataModule) -> KGRecDataModule:
    """20 users with 10 random positives each of 40 items; 8:1:1 split per user: 160 train rows."""
    g = torch.Generator().manual_seed(3)
    rows = torch.tensor([(u, int(i)) for u in range(U) for i in torch.randperm(I, generator=g)[:10]])
    data = KGRecData(name="loop-tiny", n_users=U, n_items=I, n_entities=I, interactions=rows,
                     triples=torch.zeros(0, 3, dtype=torch.long), relation_names=[])
    return cls.from_data(data, batch_size=batch_size, seed=1)


class StepLogged(BPRMF):
    """BPR-MF with the training step kgzoo had before: a host-synced NaN check and ``self.log`` per step,
    every attribute set through ``nn.Module.__setattr__``."""

    __setattr__ = L.LightningModule.__setattr__

    def training_step(self, batch, batch_idx):
        loss = self.loss(batch)
        if not torch.isfinite(loss):
            raise DivergedError("nan")
        self.log("train/loss", loss, prog_bar=True, on_step=False, on_epoch=True,
                 batch_size=next(iter(batch.values())).shape[0])
        return loss


def fit(model: L.LightningModule, dm: KGRecDataModule, epochs: int = 2) -> L.Trainer:
    trainer = L.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(model, datamodule=dm)
    return trainer


def build(cls: type, dm: KGRecDataModule) -> BPRMF:
    torch.manual_seed(0)
    dm.setup()
    return cls(**dm.model_kwargs(), embedding_dim=8, reg_weight=0.05, lr=0.05)


def test_epoch_loss_and_parameters_equal_the_loop_before():
    new, old = build(BPRMF, tiny_datamodule()), build(StepLogged, tiny_datamodule())
    assert all(torch.equal(a, b) for a, b in zip(new.parameters(), old.parameters()))
    new_trainer = fit(new, tiny_datamodule(), epochs=2)
    old_trainer = fit(old, tiny_datamodule(cls=BeforeDataModule), epochs=2)
    for a, b in zip(new.parameters(), old.parameters()):
        assert torch.equal(a, b)
    logged_new, logged_old = new_trainer.callback_metrics["train/loss"], old_trainer.callback_metrics["train/loss"]
    assert logged_new.dtype == logged_old.dtype == torch.float32
    assert torch.equal(logged_new, logged_old)  # the last epoch's mean loss per row, bit for bit
    assert float(logged_new) > 0


def test_nan_loss_raises_within_the_check_interval():
    dm = tiny_datamodule(batch_size=4)  # 160 train rows: 40 steps per epoch
    model = build(BPRMF, dm)
    model.finite_check_every = 8
    steps = []
    real_loss = model.loss

    def loss(batch):
        steps.append(1)
        value = real_loss(batch)
        return value * float("nan") if len(steps) == 11 else value  # batch 10 diverges

    model.loss = loss
    with pytest.raises(DivergedError, match=r"bpr: training loss is not finite .* at epoch 0, in batches 8\.\.15"):
        fit(model, dm, epochs=1)
    assert len(steps) == 16  # found by the check after batch 15, not at the end of the epoch


def test_nan_in_the_last_steps_raises_at_epoch_end():
    dm = tiny_datamodule(batch_size=12)  # 160 train rows: 14 steps, fewer than finite_check_every; the last of 4 rows
    model = build(BPRMF, dm)
    real_loss = model.loss
    model.loss = lambda batch: real_loss(batch) + (float("inf") if batch["user"].numel() < 12 else 0.0)
    with pytest.raises(DivergedError, match=r"in batches 0\.\.13"):
        fit(model, dm, epochs=1)


def test_plain_attributes_skip_module_registration_only():
    model = build(BPRMF, tiny_datamodule())
    model._current_fx_name = "training_step"
    model._loss_sum = torch.ones(())
    assert model.__dict__["_current_fx_name"] == "training_step" and "_loss_sum" in model.__dict__
    assert "_loss_sum" not in model._buffers and "_loss_sum" not in model.state_dict()
    model.extra = torch.nn.Parameter(torch.zeros(2))  # anything else: nn.Module's registration as before
    assert "extra" in model._parameters and "extra" not in model.__dict__


def test_a_batch_already_on_the_device_is_not_walked_again():
    model = build(BPRMF, tiny_datamodule())
    batch = {"user": torch.arange(3), "pos_item": torch.arange(3), "neg_item": torch.arange(3)}
    assert model.transfer_batch_to_device(batch, torch.device("cpu"), 0) is batch
    moved = model.transfer_batch_to_device(batch, torch.device("meta"), 0)  # elsewhere: Lightning's move
    assert moved is not batch and all(v.device.type == "meta" for v in moved.values())
    pairs = [torch.arange(2), torch.arange(2)]  # not a dict of tensors: Lightning's walk
    assert isinstance(model.transfer_batch_to_device(pairs, torch.device("cpu"), 0), list)


def test_pop_trains_without_a_loss():
    dm = tiny_datamodule()
    model = kgzoo.create_model("pop", datamodule=dm)
    trainer = fit(model, dm, epochs=1)
    assert "train/loss" not in trainer.callback_metrics


class OneWeight(L.LightningModule):
    """One parameter and a quadratic loss: a module whose validation hooks a test scripts."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, i):
        return (self.w - 1).pow(2).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_epoch_timer_counts_the_metric_computation_in_the_evaluation_window(monkeypatch):
    """Lightning calls the callbacks' on_validation_epoch_end before the module's; the timer's
    evaluation window must still include the module's metric computation (issue 16, part 5)."""
    import types

    import lightning as L
    import torch

    import kgzoo.bench.experiment as ex

    clock = [0.0]
    monkeypatch.setattr(ex, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))

    class Tiny(OneWeight):
        def validation_step(self, batch, i):
            clock[0] += 1.0  # scoring: one second per batch

        def on_validation_epoch_end(self):
            clock[0] += 100.0  # the metrics' compute
            self.log("valid/x", 1.0)

    timer = ex.EpochTimer("valid/x")
    data = torch.utils.data.DataLoader(torch.zeros(2, 1), batch_size=1)
    L.Trainer(max_epochs=2, callbacks=[timer], logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, num_sanity_val_steps=0).fit(Tiny(), data, data)
    assert timer.eval_seconds == [102.0, 102.0] and timer.best_epoch == 0

class LoggedPerKey(BPRMF):
    """BPR-MF with the metric logging kgzoo had before: ``self.log`` for every key, in every stage."""

    def _log_metrics(self, prefix, metrics):
        values = metrics.compute()
        for k, v in values.items():
            self.log(f"{prefix}/{k}", v, prog_bar=(k == self.main_metric), sync_dist=False)
        metrics.reset()


class Record(Callback):
    """What a callback sees after each validation: callback metrics, progress bar, logged metrics."""

    def __init__(self) -> None:
        self.seen: list[tuple[dict, dict, dict]] = []
        self.at_train_start: dict | None = None

    def on_train_start(self, trainer, pl_module):
        self.at_train_start = dict(trainer.callback_metrics)

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.seen.append((dict(trainer.callback_metrics), dict(trainer.progress_bar_metrics),
                              dict(trainer.logged_metrics)))


def run(cls: type, tmp: Path, epochs: int = 12, patience: int = 2, sanity: int = 0):
    torch.manual_seed(0)
    dm = tiny_datamodule()
    dm.setup()
    model = cls(**dm.model_kwargs(), embedding_dim=8, reg_weight=0.05, lr=0.3)
    rec = Record()
    stop = EarlyStopping(monitor="valid/ndcg@10", mode="max", patience=patience)
    ckpt = ModelCheckpoint(dirpath=tmp / "ckpt", monitor="valid/ndcg@10", mode="max", save_top_k=1)
    trainer = L.Trainer(max_epochs=epochs, callbacks=[rec, stop, ckpt], logger=CSVLogger(tmp, name="logs"),
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=sanity,
                        log_every_n_steps=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(model, datamodule=dm)
        valid = trainer.validate(model, datamodule=dm, verbose=False)
        test = trainer.test(model, datamodule=dm, verbose=False)
    rows = list(csv.DictReader(open(next((tmp / "logs").rglob("metrics.csv")))))
    return trainer, rec, stop, ckpt, valid, test, rows


def same(a: dict, b: dict) -> bool:
    """Equal keys, and per key the same dtype and value (tensors) or the same number."""
    if list(a) != list(b):
        return False
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
            if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.dtype == y.dtype
                    and torch.equal(x, y)):
                return False
        elif x != y:
            return False
    return True


def test_fit_validation_consumers_see_what_self_log_gave(tmp_path):
    new = run(BPRMF, tmp_path / "new")
    old = run(LoggedPerKey, tmp_path / "old")
    (t_new, r_new, s_new, c_new, v_new, te_new, rows_new), (t_old, r_old, s_old, c_old, v_old, te_old, rows_old) = new, old
    # early stopping fired, on the same epoch; the same best checkpoint score
    assert s_old.stopped_epoch > 0 and s_new.stopped_epoch == s_old.stopped_epoch
    assert torch.equal(c_new.best_model_score, c_old.best_model_score)
    # after every validation (those of fit, then Trainer.validate's): callback metrics, progress bar and
    # logged metrics alike, every key there
    assert len(r_new.seen) == len(r_old.seen) == s_old.stopped_epoch + 2
    names = {f"valid/{m}" for m in BPRMF(**tiny_datamodule().model_kwargs()).metric_names()}
    for (cb_n, pb_n, lg_n), (cb_o, pb_o, lg_o) in zip(r_new.seen, r_old.seen):
        assert names <= set(cb_n) and same(cb_n, cb_o) and pb_n == pb_o and same(lg_n, lg_o)
        assert "valid/ndcg@10" in pb_n and not any(k.startswith("valid/") and k != "valid/ndcg@10" for k in pb_n)
    # the logger got one row per validation with every metric, the same numbers
    assert rows_new == rows_old
    assert sum(1 for r in rows_new if r["valid/ndcg@10"]) == len(r_new.seen)  # Trainer.validate's row too
    assert all(names <= {k for k, v in r.items() if v} for r in rows_new if r["valid/ndcg@10"])
    # Trainer.validate and Trainer.test return every metric, as before
    assert set(v_new[0]) == names and v_new == v_old
    assert set(te_new[0]) == {n.replace("valid/", "test/") for n in names} and te_new == te_old


def test_without_a_logger_the_logged_metrics_are_kept(tmp_path):
    """``trainer.logged_metrics`` holds the validation metrics also when the Trainer has no logger."""
    seen = []
    for cls in (BPRMF, LoggedPerKey):
        torch.manual_seed(0)
        dm = tiny_datamodule()
        dm.setup()
        model = cls(**dm.model_kwargs(), embedding_dim=8, reg_weight=0.05, lr=0.3)
        trainer = L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, num_sanity_val_steps=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer.fit(model, datamodule=dm)
        seen.append(dict(trainer.logged_metrics))
    assert "valid/ndcg@10" in seen[0] and same(seen[0], seen[1])


def test_sanity_check_publishes_nothing(tmp_path):
    _, rec, *_ = run(BPRMF, tmp_path, epochs=1, sanity=2)
    assert rec.at_train_start is not None and not any(k.startswith("valid/") for k in rec.at_train_start)
    assert len(rec.seen) == 2  # fit's one epoch and Trainer.validate


def test_publish_epoch_metrics_refuses_a_vector():
    class Fake:
        _logger_connector = None

    with pytest.raises(ValueError, match="'valid/x' has 2 elements"):
        publish_epoch_metrics(Fake(), {"valid/x": torch.zeros(2)})


def test_evaluation_batches_are_built_once_and_equal_a_fresh_build():
    """A stage's loader keeps its batches (built at the first pass): later passes yield the same
    objects, equal to the batches built anew, for the valid and the test stage."""
    from kgzoo.data.datamodule import _EvalBatches

    dm = tiny_datamodule()
    dm.setup()
    for loader, stage in ((dm.val_dataloader(), "valid"), (dm.test_dataloader(), "test")):
        first, second = list(loader), list(loader)
        assert len(first) > 0 and all(a is b for a, b in zip(first, second))
        fresh = list(_EvalBatches(dm, stage)._build(0, 1))
        assert len(fresh) == len(first)
        for a, b in zip(first, fresh):
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class RecordPerRank(Callback):
    """Writes each rank's validation callback metrics after every evaluation of ``fit`` to a file."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            with open(f"{self.folder}/rank{trainer.global_rank}.txt", "a") as f:
                f.write(repr({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("valid/")}) + "\n")


def ddp_fit(cls: type, folder: Path) -> None:
    torch.manual_seed(0)
    dm = tiny_datamodule()
    dm.setup()
    model = cls(**dm.model_kwargs(), embedding_dim=8, reg_weight=0.05, lr=0.3)
    trainer = L.Trainer(max_epochs=4, strategy="ddp_spawn", devices=2, accelerator="cpu",
                        callbacks=[RecordPerRank(str(folder)), EarlyStopping("valid/ndcg@10", mode="max", patience=1)],
                        logger=CSVLogger(folder, name="logs"), enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(model, datamodule=dm)


@pytest.mark.slow  # two spawned processes: about 35 s CPU
def test_fit_validation_under_ddp_like_self_log(tmp_path):
    """Two CPU processes (gloo): every rank's callbacks see the same metrics (torchmetrics reduced
    the states first), the same as the per-key ``self.log`` gave, and the CSV log is the same."""
    for name, cls in (("new", BPRMF), ("old", LoggedPerKey)):
        (tmp_path / name).mkdir()
        ddp_fit(cls, tmp_path / name)
    seen = {n: [(tmp_path / n / f"rank{r}.txt").read_text() for r in (0, 1)] for n in ("new", "old")}
    assert seen["new"][0] == seen["new"][1] == seen["old"][0] == seen["old"][1]
    assert seen["new"][0].count("valid/ndcg@10") >= 2
    csv_new, csv_old = (next((tmp_path / n / "logs").rglob("metrics.csv")).read_text() for n in ("new", "old"))
    assert csv_new == csv_old and "valid/map@20" in csv_new


def _warm_up_fit(min_epochs: int, max_epochs: int = 12):
    """``(trainer, stopper)`` of a run whose validation curve sits on a plateau, then climbs at
    epoch 5, under :class:`WarmupEarlyStopping` with patience 2 and ``min_epochs``."""
    from kgzoo.bench.experiment import WarmupEarlyStopping

    curve = [0.5, 0.4, 0.4, 0.4, 0.4, 0.6, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]

    class Scripted(OneWeight):
        def validation_step(self, batch, i):
            pass

        def on_validation_epoch_end(self):
            self.log("valid/x", curve[self.current_epoch])

    stopper = WarmupEarlyStopping(monitor="valid/x", mode="max", patience=2, min_epochs=min_epochs)
    data = DataLoader(torch.zeros(2, 1), batch_size=1)
    trainer = L.Trainer(max_epochs=max_epochs, callbacks=[stopper], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(Scripted(), data, data)
    return trainer, stopper


@pytest.mark.parametrize("min_epochs, trained", [(0, 3), (6, 8)])
def test_early_stopping_waits_for_the_warm_up_and_then_counts_from_the_best(min_epochs, trained):
    """A validation curve that sits on a plateau, then climbs at epoch 5: patience 2 alone ends the
    run on the plateau (3 epochs); with a warm-up of 6 the climb is seen and the run ends 2 epochs
    after it (8). Lightning's Trainer(min_epochs=6) would end it at 6: the stop signalled on the
    plateau stays set (WarmupEarlyStopping's docstring)."""
    from kgzoo.bench.experiment import WarmupEarlyStopping

    trainer, stopper = _warm_up_fit(min_epochs)
    assert trainer.current_epoch == trained and stopper.stopped_epoch == trained - 1
    assert float(stopper.best_score) == pytest.approx(0.6 if min_epochs else 0.5)
    with pytest.raises(ValueError, match="min_epochs=-1 must be an integer >= 0"):
        WarmupEarlyStopping(monitor="valid/x", min_epochs=-1)


def test_the_warm_up_needs_no_private_check_method_and_refuses_a_lightning_that_would_drop_it(monkeypatch):
    """The warm-up read the epoch in Lightning's private ``_run_early_stopping_check``: a Lightning
    that checks under another name would never call it, and every stop would be held to the cap
    (12 epochs here). The epoch now comes from the public hooks. A Lightning without the one
    private method the hold overrides (``_evaluate_stopping_criteria``) would drop the warm-up
    silently: a warm-up is refused there, a run without one is plain EarlyStopping."""
    from kgzoo.bench.experiment import WarmupEarlyStopping

    check = EarlyStopping._run_early_stopping_check

    def renamed(self, trainer, pl_module):  # a Lightning whose hooks call the check by another name
        if not self._should_skip_check(trainer):
            check(self, trainer)

    monkeypatch.delattr(EarlyStopping, "_run_early_stopping_check")
    monkeypatch.setattr(EarlyStopping, "on_train_epoch_end", renamed)
    monkeypatch.setattr(EarlyStopping, "on_validation_end", lambda self, trainer, pl_module: None)
    trainer, stopper = _warm_up_fit(6)
    assert trainer.current_epoch == 8 and stopper.stopped_epoch == 7
    monkeypatch.delattr(EarlyStopping, "_evaluate_stopping_criteria")
    with pytest.raises(RuntimeError, match=r"warm-up of 6 epochs needs lightning's EarlyStopping\._evaluate_stopping"):
        WarmupEarlyStopping(monitor="valid/x", min_epochs=6)
    assert WarmupEarlyStopping(monitor="valid/x", min_epochs=0).min_epochs == 0


def test_a_stop_held_to_the_cap_leaves_no_stopping_reason():
    """A warm-up longer than the run holds every stop: nothing stopped it (stopped_epoch 0, so the
    bench's row says 'cap'), and Lightning's stopping_reason (2.5.x on; saved in checkpoints) said
    PATIENCE_EXHAUSTED all the same, set by the check that the warm-up held."""
    trainer, stopper = _warm_up_fit(20, max_epochs=12)
    assert trainer.current_epoch == 12 and stopper.stopped_epoch == 0 and stopper.wait_count == 6
    if hasattr(stopper, "stopping_reason"):  # lightning >= 2.5.x
        assert stopper.stopping_reason.name == "NOT_STOPPED"
        assert stopper.state_dict()["stopping_reason"] == stopper.stopping_reason.value


def test_a_rows_valid_metrics_are_all_of_the_best_epoch(tmp_path, data_dir):
    """Every ``valid/*`` value of a row is the restored best epoch's (``rows.ResultRow.valid_metrics``),
    not only the monitored one: the others were the last epoch's (BPR at lr 0.05, best at epoch 0,
    stopped at epoch 2: its valid recall@20 was epoch 2's 0.208 beside epoch 0's NDCG@10)."""
    import csv

    from kgzoo.bench.experiment import run_experiment

    row = run_experiment("bpr", "ml-100k-kg", max_epochs=30, patience=2, model_overrides={"lr": 0.05},
                         out_dir=tmp_path, progress=False, run_test=False)
    assert row.best_epoch < row.epochs - 1  # the case: the best epoch is not the last one
    log = next(tmp_path.rglob("metrics.csv"))
    by_epoch = {int(r["epoch"]): r for r in csv.DictReader(log.open()) if r.get(f"valid/{row.main_metric}")}
    best = by_epoch[row.best_epoch]
    for k, v in row.valid_metrics.items():
        assert v == pytest.approx(float(best[k]), rel=1e-6), k
