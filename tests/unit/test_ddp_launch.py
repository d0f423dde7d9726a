"""kgzoo under Lightning DDP (gloo, CPU): the strategy a model trains under
(:func:`kgzoo.bench.experiment.strategy_for`) and the SIGTERM handling of kgzoo's Trainers
(:func:`kgzoo.dist.sigterm_without_collectives`)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from kgzoo.bench.experiment import bench_trainer, strategy_for
from kgzoo.dist import _sigterm_flag
from kgzoo.models.kgat import KGAT
from kgzoo.models.layers.fusion import create_fusion
from kgzoo.models.mf import BPRMF


class Fused(BPRMF):
    """BPR-MF with an attention fusion of its user vector and nothing else: the one present source
    passes through, and the fusion's parameters get no gradient (as KGPLM's user fusion on data
    without user attributes and social ties: kgplm-news on dkn-news)."""

    def __init__(self, *args, fusion: str = "attention", **kwargs):
        super().__init__(*args, **kwargs)
        self.user_fusion = create_fusion(fusion, self.hparams.embedding_dim, 2)


def test_a_ddp_strategy_detects_unused_parameters_where_a_step_leaves_some():
    alternating = KGAT(12, 15, n_entities=25, n_relations=2, ks=(5,))
    joint = KGAT(12, 15, n_entities=25, n_relations=2, ks=(5,), optimization="joint")
    fused = Fused(12, 15, embedding_dim=8, ks=(5,))
    mean, plain = Fused(12, 15, embedding_dim=8, ks=(5,), fusion="mean"), BPRMF(12, 15, ks=(5,))
    for model in (alternating, fused):
        assert strategy_for(model, "ddp") == "ddp_find_unused_parameters_true"
        assert strategy_for(model, "ddp_spawn") == "ddp_spawn_find_unused_parameters_true"
        # `--devices 2` without --strategy: Lightning's "auto" is plain DDP for two processes (KGAT failed there)
        for devices, nodes in ((2, 1), ("2", 1), ([0, 1], 1), ("0,1", 1), (1, 2)):
            assert strategy_for(model, "auto", devices, nodes) == "ddp_find_unused_parameters_true"
        for devices in (1, "1", "auto", -1, [0]):
            assert strategy_for(model, "auto", devices) == "auto"
    # a fusion without parameters (mean), a model without phases or fusion: DDP as asked
    for model in (joint, mean, plain):
        assert strategy_for(model, "ddp") == "ddp" and strategy_for(model, "auto", 2) == "auto"
    from lightning.pytorch.strategies import DDPStrategy

    own = DDPStrategy()
    assert strategy_for(fused, own) is own  # a strategy object is the caller's


def test_a_model_with_nothing_to_train_is_refused_by_ddp_with_one_line():
    """``kgzoo bench --models pop --devices 2 --strategy ddp`` failed its cell, after reading the data,
    with torch's 'DistributedDataParallel is not needed when a module doesn't have any parameter that
    requires a gradient' (kgzoo fit --trainer.devices 2 alike): strategy_for, which both take, now
    says what to do; one process and non-DDP strategies are left as they are."""
    from kgzoo.models.pop import Pop

    pop = Pop(12, 15, ks=(5,))
    for strategy, devices in (("ddp", 2), ("ddp", 1), ("ddp_find_unused_parameters_true", 2), ("auto", 2),
                              ("auto", "0,1")):
        with pytest.raises(ValueError, match=r"Pop has nothing to train .* run it on one device \(--devices 1\)"):
            strategy_for(pop, strategy, devices)
    assert strategy_for(pop, "auto", 1) == "auto" and strategy_for(pop, "single_device", 1) == "single_device"


def test_kgzoo_trainers_take_sigterm_without_collectives(tmp_path):
    trainer, *_ = bench_trainer(tmp_path, "valid/ndcg@10", 1, 1, progress=False)
    handler = trainer._signal_connector._sigterm_notifier_fn
    assert handler.__func__ is _sigterm_flag
    handler(signal.SIGTERM, None)  # notes the signal; no process group needed (none exists here)
    assert trainer.received_sigterm

#: a 2-rank DDP fit of BPR-MF on tiny in-memory data through kgzoo's bench Trainer, long enough to be
#: stopped mid-epoch; each rank writes its PID once it has taken 5 steps; rank 1 dwells before each
#: backward (where a signal finds it in Python) while rank 0 waits in the gradient all-reduce (in C++,
#: where its signal handler cannot run): the moment at which a collective inside a handler deadlocks
SCRIPT = textwrap.dedent('''
    import os, sys, time, warnings
    from pathlib import Path
    import lightning as L
    import torch
    from kgzoo.bench.experiment import bench_trainer
    from kgzoo.data.datamodule import KGRecDataModule
    from kgzoo.data.kgdata import KGRecData
    from kgzoo.models.mf import BPRMF

    out = Path(sys.argv[1])
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")

    class Ready(L.Callback):
        def on_before_backward(self, trainer, *args):
            if trainer.global_rank == 1:
                time.sleep(0.2)  # rank 0 waits in the step's gradient all-reduce meanwhile

        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 5:
                (out / f"rank{trainer.global_rank}.pid").write_text(str(os.getpid()))

    g = torch.Generator().manual_seed(3)
    rows = torch.tensor([(u, int(i)) for u in range(20) for i in torch.randperm(40, generator=g)[:10]])
    data = KGRecData(name="ddp-tiny", n_users=20, n_items=40, n_entities=40, interactions=rows,
                     triples=torch.zeros(0, 3, dtype=torch.long), relation_names=[])
    dm = KGRecDataModule.from_data(data, batch_size=2, seed=1)
    dm.setup()
    model = BPRMF(**dm.model_kwargs(), embedding_dim=8)
    trainer, *_ = bench_trainer(out / "run", "valid/ndcg@10", 1000, 1000, devices=2, strategy="ddp",
                                callbacks=[Ready()], progress=False)
    trainer.fit(model, datamodule=dm)
''')


def _alive(pid: int) -> bool:
    """``pid`` runs (not gone, not a zombie)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.slow  # two DDP processes (gloo): about 15 s
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_sigterm_to_every_rank_stops_the_fit(tmp_path):
    """SIGTERM to every rank at once (a scheduler stopping a job, ``kill`` of the process group):
    both ranks stop within seconds. Lightning 2.6's handler broadcasts inside the signal handler;
    a rank's handler then waited for rank 0, which waited in the step's gradient all-reduce: both
    hung until the process group's timeout (30 min)."""
    script = tmp_path / "fit.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pids = [proc.pid]
    try:
        files = [tmp_path / f"rank{r}.pid" for r in (0, 1)]
        deadline = time.monotonic() + 120
        while not all(f.is_file() and f.read_text() for f in files):
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "the fit did not start"
            time.sleep(0.1)
        pids = [int(f.read_text()) for f in files]
        assert pids[0] == proc.pid
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(p) for p in pids), "a rank still runs 60 s after SIGTERM (hung)"
        out = proc.communicate(timeout=10)[0]
        assert "Traceback" not in out, out  # both ranks stopped by Lightning's SIGTERMException (a SystemExit)
    finally:
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _interrupted(args):
    """A command stopped as Lightning stops a fit on Ctrl-C (``_call_and_handle_interrupt``)."""
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        sys.exit(1)


def _terminated(args):
    """A command stopped as Lightning stops a fit on SIGTERM."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    raise SIGTERMException


@pytest.mark.parametrize("run, code, said", [(_interrupted, 130, "stopped by Ctrl-C (SIGINT)"),
                                             (_terminated, 143, "stopped by SIGTERM")])
def test_a_stopped_command_says_so_once_on_rank_zero(monkeypatch, capsys, run, code, said):
    """Ctrl-C ended ``kgzoo bench`` with 1 and no word (Lightning's ``sys.exit(1)``); under DDP every rank
    said "stopped by SIGTERM" (each rank of a process group gets the signal)."""
    import dataclasses

    import kgzoo.cli as cli

    monkeypatch.setattr(cli, "COMMANDS", tuple(dataclasses.replace(c, run=run) if c.name == "data" else c
                                               for c in cli.COMMANDS))
    for rank, says in (("0", True), ("1", False)):
        monkeypatch.setenv("LOCAL_RANK", rank)
        assert cli.main(["data", "list"]) == code
        err = " ".join(capsys.readouterr().err.split())
        assert (said in err and "--resume" in err) if says else err == "", err


def test_kgzoo_drops_the_sync_dist_notice_of_its_own_keys_only():
    """Lightning's "use self.log(..., sync_dist=True)" came once per key and DDP cell (13 lines): kgzoo's
    valid/test values are already summed over the ranks, its train/loss rank-local on purpose."""
    import warnings

    from kgzoo.quiet import lightning_quiet

    def notice(key):
        return (f"It is recommended to use `self.log('{key}', ..., sync_dist=True)` when logging on epoch level "
                "in distributed setting to accumulate the metric across devices.")

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with lightning_quiet():
            for key in ("test/ndcg@10", "valid/auc", "train/loss", "my_metric"):
                warnings.warn(notice(key))
    assert [str(w.message) for w in seen] == [notice("my_metric")]


def test_a_bench_cell_refuses_strategies_whose_ranks_are_child_processes(capsys):
    """``kgzoo bench --strategy ddp_spawn`` failed every cell on pickling the DataModule, ``ddp_fork`` on
    ``float(None)`` (the callbacks ran in the children): one line naming ``--strategy ddp``, before data."""
    from kgzoo.bench.experiment import bench_strategy, run_experiment
    from kgzoo.cli import main

    for strategy in ("ddp_spawn", "ddp_fork", "ddp_notebook", "ddp_spawn_find_unused_parameters_true"):
        with pytest.raises(ValueError, match=f"--strategy {strategy}: .* use --strategy ddp "):
            run_experiment("bpr", "no-such-dataset", devices=2, strategy=strategy)  # refused before the data
    # taken, and recorded as the training they give: --devices 2 alone is --strategy ddp (one cell, not two)
    for (strategy, devices), recorded in zip((("ddp", 2), ("auto", 2), ("auto", 1), ("ddp_find_unused_parameters_true", 2),
                                              ("auto", "0,1"), ("auto", "1")),
                                             ("ddp", "ddp", "auto", "ddp_find_unused_parameters_true", "ddp", "auto")):
        assert bench_strategy(strategy, devices) == recorded, (strategy, devices)
    assert main(["bench", "--models", "bpr", "--devices", "2", "--strategy", "ddp_spawn", "--runs", "x"]) == 2
    assert "use --strategy ddp" in " ".join(capsys.readouterr().err.split())


def test_fewer_triple_batches_than_ranks_is_an_error(monkeypatch):
    """KG link prediction's training set gave each of 2 ranks no batch (an epoch of nothing)."""
    import kgzoo.data.datamodule as datamodule
    from kgzoo.data.datamodule import KGRecDataModule
    from kgzoo.data.kgdata import KGRecData
    from kgzoo.data.link import KGLinkDataModule

    g = torch.Generator().manual_seed(3)
    triples = torch.unique(torch.stack([torch.randint(25, (60,), generator=g), torch.randint(2, (60,), generator=g),
                                        torch.randint(25, (60,), generator=g)], 1), dim=0)
    rows = torch.tensor([(u, int(i)) for u in range(12) for i in torch.randperm(15, generator=g)[:6]])
    data = KGRecData(name="ddp-link", n_users=12, n_items=15, n_entities=25, interactions=rows, triples=triples,
                     relation_names=["r0", "r1"])
    link = KGLinkDataModule(KGRecDataModule.from_data(data, batch_size=10_000, seed=1))
    link.setup()
    assert len(list(link.train_dataloader())) == 1
    monkeypatch.setattr(datamodule, "rank_world", lambda: (0, 2))
    with pytest.raises(ValueError, match="gives 1 training batches per epoch, fewer than the 2 ranks"):
        list(link.train_dataloader())
