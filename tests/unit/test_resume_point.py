"""The resume point's generator states under DDP (:class:`kgzoo.bench.experiment.ResumePoint`):
every rank's states are gathered into the point and each rank takes its own back, so ranks that
draw different numbers of random values (uneven last shards) resume as if never killed."""
from __future__ import annotations

import pathlib
import time
import types
import warnings

import lightning as L
import pytest
import torch

from kgzoo.bench.experiment import ResumePoint, _rng_states


class UnevenDraws(L.LightningModule):
    """A linear model under dropout whose rank ``r`` draws ``r`` more numbers per step than rank 0,
    as a rank with a longer last shard draws more dropout masks."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        torch.rand(1 + self.global_rank)
        return self.lin(torch.nn.functional.dropout(batch, 0.5, training=True)).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)

    def train_dataloader(self):
        return _Batches()


class _Batches:
    """Four batches of ``[2, 4]`` float32, the same on every rank, drawing nothing (a DataLoader
    draws its base seed from the global generator when an epoch's iterator is made, before any
    epoch hook: kgzoo's training sets draw from their own seed and the epoch instead)."""

    def __iter__(self):
        return iter((torch.arange(32.0).view(8, 4) / 32).split(2))

    def __len__(self) -> int:
        return 4


class _Killed(Exception):
    pass


class _KillAt(L.Callback):
    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 2:
            raise _Killed()


class _DestroyGroupAtExit(L.Callback):
    """In each spawned rank, the process group destroyed at exit, as kgzoo's Trainers have it
    (:func:`kgzoo.dist.destroy_group_at_exit`: without it a rank aborted at exit now and then)."""

    def setup(self, trainer, pl_module, stage):
        from kgzoo.dist import destroy_group_at_exit

        destroy_group_at_exit()


def _fit(path, *callbacks, ckpt=None) -> torch.Tensor:
    L.seed_everything(0, verbose=False)
    model = UnevenDraws()
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", max_epochs=4, logger=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=path.parent,
                        callbacks=[ResumePoint(path, "k", every=0), _DestroyGroupAtExit(), *callbacks])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(model, ckpt_path=ckpt)
    return torch.cat([p.detach().flatten() for p in model.parameters()])  # rank 0's, sent back by ddp_spawn


@pytest.mark.slow  # three fits of two spawned processes (gloo)
def test_ddp_ranks_resume_their_own_generators(tmp_path):
    """Killed when its third epoch starts and resumed, a 2-rank DDP fit ends with the parameters of
    the fit never killed; with rank 0's states on both ranks (kgzoo before) they differ."""
    whole = _fit(tmp_path / "a.ckpt")
    with pytest.raises(Exception, match="_Killed"):
        _fit(tmp_path / "b.ckpt", _KillAt())
    point = torch.load(tmp_path / "b.ckpt", weights_only=True)
    rng = next(v for k, v in point["callbacks"].items() if k.startswith("ResumePoint"))["rng"]
    assert len(rng) == 2 and not torch.equal(rng[0]["torch"], rng[1]["torch"])
    assert torch.equal(_fit(tmp_path / "b.ckpt", ckpt=tmp_path / "b.ckpt"), whole)


def _trainer(rank: int, world: int) -> types.SimpleNamespace:
    return types.SimpleNamespace(global_rank=rank, world_size=world)


def test_each_rank_takes_its_own_states(tmp_path):
    """``restore`` then the next epoch's start sets rank ``r``'s entry on rank ``r``; a point of
    one entry (written before per-rank states, or by one rank) is every rank's; a point of another
    number of ranks is an error naming the file."""
    torch.manual_seed(1)
    first = _rng_states()
    torch.manual_seed(2)
    second = _rng_states()
    point = ResumePoint(tmp_path / "last.ckpt", "k", every=0)
    for rng, rank, world, expected in (([first, second], 1, 2, second), ([first, second], 0, 2, first),
                                       (first, 1, 2, first), ([second], 0, 1, second)):
        point.restore({"key": "k", "fit_seconds": 0.0, "rng": rng})
        torch.manual_seed(3)
        point.on_train_epoch_start(_trainer(rank, world), None)
        assert torch.equal(torch.get_rng_state(), expected["torch"])
    point.restore({"key": "k", "fit_seconds": 0.0, "rng": [first, second]})
    with pytest.raises(RuntimeError, match=r"last\.ckpt: a resume point of 2 ranks; this run has 4"):
        point.on_train_epoch_start(_trainer(0, 4), None)
    with pytest.raises(RuntimeError, match="another configuration"):
        point.restore({"key": "other", "fit_seconds": 0.0, "rng": [first]})


def test_a_point_with_state_of_a_callback_the_run_lacks_is_not_taken(tmp_path, capsys):
    """A resume point that holds the state of a callback the resuming Trainer does not have
    (written by other code: a ``ModelCheckpoint`` before the best checkpoint became
    ``BestModelCheckpoint``) is not taken, and stdout says why: Lightning would only warn and drop
    that state, so the resumed run would lose its best score (seen on a KGAT trial resumed across
    that change)."""
    import json

    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    from kgzoo.bench.experiment import BestModelCheckpoint, resume_point

    run = tmp_path / "cell"
    (run / "checkpoints").mkdir(parents=True)
    old = ModelCheckpoint(monitor="valid/ndcg@10", mode="max")
    stop = EarlyStopping(monitor="valid/ndcg@10", mode="max")
    torch.save({"callbacks": {old.state_key: {"best_model_score": 0.3}, stop.state_key: {}}},
               run / "checkpoints" / "last.ckpt")
    (run / "checkpoints" / "last.json").write_text(json.dumps(
        {"key": "k", "epoch": 3, "dir": str((run / "checkpoints").resolve())}))
    point = run / "checkpoints" / "last.ckpt"
    assert resume_point(run, "k") == point  # not checked
    assert resume_point(run, "k", [old, stop, ResumePoint(point, "k")]) == point
    assert capsys.readouterr().out == ""
    new = BestModelCheckpoint(monitor="valid/ndcg@10", mode="max")
    assert new.state_key != old.state_key
    assert resume_point(run, "k", [new, stop]) is None
    out = capsys.readouterr().out
    assert "resume point written with callbacks this run does not have" in out and old.state_key in out
    assert "training from scratch" in out
    # read weights-only: a point whose pickle would call a function is refused, and the function never runs
    ran = tmp_path / "ran"
    torch.save({"callbacks": {old.state_key: _RunsCode(str(ran))}}, point)
    assert resume_point(run, "k", [old, stop]) is None and not ran.exists()
    assert "a weights-only load refuses" in capsys.readouterr().out


class _RunsCode:
    """Unpickles by calling a function (writes the file ``path``): what a weights-only load refuses."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def test_a_point_carries_the_fit_cpu_seconds_and_an_old_one_leaves_them_unknown(tmp_path):
    """The point's state holds the fit's process CPU seconds beside its wall seconds (a resumed
    row's ``cell_cpu_seconds`` counts the earlier processes); a point written before they were
    recorded restores them as unknown (``None``), and so does the next point it writes, rather
    than count the earlier processes as 0 s."""
    point = ResumePoint(tmp_path / "last.ckpt", "k", every=0)
    time.sleep(0.01)
    sum(i * i for i in range(200_000))  # some CPU
    state = point.state_dict()
    assert state["fit_cpu_seconds"] > 0 and state["fit_seconds"] > 0
    point.restore({**state, "fit_cpu_seconds": 12.5})
    assert point.fit_cpu_seconds == 12.5 and point.state_dict()["fit_cpu_seconds"] >= 12.5
    old = {k: v for k, v in state.items() if k != "fit_cpu_seconds"}
    point.restore(old)
    assert point.fit_cpu_seconds is None and point.state_dict()["fit_cpu_seconds"] is None


def test_the_points_cpu_seconds_count_from_the_fit_start_as_its_wall_seconds_do(tmp_path):
    """``fit_seconds`` counts from ``on_fit_start`` (the Trainer's setup and the resume point's
    reading are not the fit); ``fit_cpu_seconds`` counted from the callback's construction, so the
    two clocks of one point measured different spans and a resumed row's ``cell_cpu_seconds``
    counted each killed process's set-up CPU seconds as fit."""
    point = ResumePoint(tmp_path / "last.ckpt", "k", every=0)
    t0 = time.process_time()
    while time.process_time() - t0 < 0.3:  # CPU spent before the fit (building the Trainer, reading the point)
        pass
    point.on_fit_start(None, None)
    state = point.state_dict()
    assert state["fit_cpu_seconds"] < 0.1 and state["fit_seconds"] < 0.1
