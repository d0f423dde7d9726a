"""The `kgzoo` command: data stats, bench, reproduce, fit and test (LightningCLI)."""
from __future__ import annotations

import logging
import os
import re
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from conftest import REPO
from kgzoo.bench.rows import read_rows
from kgzoo.config import ZooConfig
from kgzoo.data.datasets import resolve_dataset
from kgzoo.cli import main


def _kgzoo(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("kgzoo")  # the installed console script
    return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "COLUMNS": "200", **env}, timeout=300)


def test_data_stats(data_dir):
    p = _kgzoo("data", "stats", "ml-100k-kg")
    assert p.returncode == 0, p.stderr
    assert "943" in p.stdout and "1,682" in p.stdout and "triples" in p.stdout


def test_unknown_model_pattern_exits_nonzero(data_dir):
    p = _kgzoo("bench", "--models", "nosuchmodel*", "--epochs", "1", "--results", "/nonexistent/never-written")
    assert p.returncode != 0
    assert "model pattern 'nosuchmodel*' matches no registered model" in p.stderr
    assert "Trainer" not in p.stdout + p.stderr  # refused before any training


def test_a_results_name_with_a_folder_is_refused(tmp_path, capsys):
    """--name ../x wrote its rows beside the --results folder instead of in it."""
    for name in ("../evil", "sub/x", ".."):
        assert main(["bench", "--models", "pop", "--epochs", "1", "--results", str(tmp_path / "r"), "--name", name,
                     "--runs", str(tmp_path / "runs")]) == 2
        assert f"--name {name!r}: a file name without a folder" in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.jsonl"))


def test_unknown_metric_exits_nonzero(data_dir, tmp_path, capsys):
    assert main(["bench", "--models", "pop", "--metric", "ndcg@7", "--results", str(tmp_path)]) == 2
    assert "unknown metric 'ndcg@7'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_bench_then_leaderboard_only_and_reproduce(data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outside the checkout: the defaults are still the checkout's
    assert main(["bench", "--models", "pop", "--epochs", "1", "--results", ".", "--runs", "runs"]) == 0
    rows = read_rows(tmp_path / "bench.jsonl")
    assert [(r.model, r.status, r.schedule["max_epochs"]) for r in rows] == [("pop", "ok", 1)]
    out = " ".join(capsys.readouterr().out.split())
    assert "[1/1] pop / ml-100k-kg / seed 0 / kg real: ok in" in out and "total:" in out
    assert "no committed rows to compare with" not in out  # the checkout's benchmarks/results
    assert f"rows in {tmp_path.resolve() / 'bench.jsonl'}, checkpoints and logs in {tmp_path.resolve() / 'runs'}" in out
    assert "0 failed) in " in out and f"s; rows in {tmp_path.resolve() / 'bench.jsonl'}" in out  # the grid's line too
    assert "this run: 1 cell(s)" in out and "committed" in out  # this run's table, not the leaderboard
    assert not (tmp_path / "leaderboard").exists()
    # one's own rows: the leaderboard beside them, never over the committed one; absolute paths printed
    assert main(["bench", "--leaderboard-only", "--results", ".", "--no-png"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"leaderboard: {tmp_path.resolve() / 'leaderboard' / 'LEADERBOARD.md'}" in out
    assert not (tmp_path / "benchmarks").exists()
    assert main(["bench", "--leaderboard-only", "--results", str(tmp_path), "--leaderboard-dir",
                 str(tmp_path / "lb"), "--no-png"]) == 0
    # a fixed one-epoch schedule: shown in the published section, not ranked (not a converged
    # schedule), marked ° for that reason, not † (Pop has nothing to train: closed form, not stopped by its cap)
    assert "| - | pop ° |" in (tmp_path / "lb" / "LEADERBOARD.md").read_text()
    assert "result rows (1 cells) in `./*.jsonl`" in (tmp_path / "lb" / "LEADERBOARD.md").read_text()  # the cwd's
    # --with-published: one's own rows beside kgzoo's published ones (a row in both counted once)
    from kgzoo.bench.rows import read_folder
    from kgzoo.paths import published_results_dir

    published = read_folder(published_results_dir())
    (tmp_path / "copied.jsonl").write_text((published_results_dir() / "converged.jsonl").read_text())
    assert main(["bench", "--leaderboard-only", "--results", str(tmp_path), "--leaderboard-dir", str(tmp_path / "lb2"),
                 "--no-png", "--with-published"]) == 0
    text = (tmp_path / "lb2" / "LEADERBOARD.md").read_text()
    assert f"Generated from {len(published) + 1} result rows" in text and "and the published rows" in text
    # the console line counts one's own rows and the published ones apart (it said "from 603 rows
    # in ./*.jsonl and the published rows", as if the folder held them all)
    own = len(read_rows(tmp_path / "copied.jsonl")) + 1
    out = " ".join(capsys.readouterr().out.split())
    assert f"from {own} rows in ./*.jsonl and {len(published) + 1 - own} published rows (" in out
    assert "| - | pop |" in text and "| 1 | lightgcn |" in text  # our Pop beside the published ml-100k-kg lines
    capsys.readouterr()
    assert main(["bench", "--models", "pop", "--with-published"]) == 2
    assert "--with-published goes with --leaderboard-only" in capsys.readouterr().err
    # no reference folder (a run outside a checkout): said, not silently an empty column
    assert main(["bench", "--models", "pop", "--epochs", "1", "--results", str(tmp_path / "again"), "--runs",
                 str(tmp_path / "runs2"), "--reference", str(tmp_path / "nowhere")]) == 0
    assert "no committed rows to compare with" in capsys.readouterr().out.replace("\n", " ")
    # reproduce: one model over two seeds, ours beside the paper (pop's config has no paper numbers)
    assert main(["reproduce", "pop", "ml-100k-kg", "--seeds", "0", "1", "--results", str(tmp_path), "--runs",
                 str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert "reproduce pop on ml-100k-kg" in out and "ndcg@10" in out and "±" in out
    assert len(read_rows(tmp_path / "reproduce-pop-ml-100k-kg.jsonl")) == 2
    with pytest.raises(SystemExit):
        main(["reproduce", "pop"])  # argparse: the dataset is required


def test_reproduce_uses_the_papers_protocol(data_dir, tmp_path, monkeypatch, capsys):
    # a config's paper.protocol (e.g. RippleNet's require_train_positive) is what reproduce runs
    from kgzoo.bench.cli import paper_protocol

    assert paper_protocol({"protocol": {"require_train_positive": True, "seed": 3}}) == \
        "require_train_positive=true,seed=3"
    assert paper_protocol({}) == ""
    assert paper_protocol({"protocol": {"threshold": None}}) == "threshold=null"  # read back as None
    with pytest.raises(ValueError, match="paper.protocol"):
        paper_protocol({"protocol": ["require_train_positive"]})
    (tmp_path / "cfg" / "pop").mkdir(parents=True)
    (tmp_path / "cfg" / "pop" / "ml-100k-kg.yaml").write_text(
        "paper:\n  protocol: {require_train_positive: true}\n  metrics: {ndcg@10: 0.1}\n")
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(tmp_path / "cfg"))
    assert main(["reproduce", "pop", "ml-100k-kg", "--seeds", "0", "--results", str(tmp_path / "r"), "--runs",
                 str(tmp_path / "runs")]) == 0
    row, = read_rows(tmp_path / "r" / "reproduce-pop-ml-100k-kg.jsonl")
    assert row.protocol["require_train_positive"] is True
    out = capsys.readouterr().out
    assert "protocol require_train_positive=true" in out and "not the paper's protocol" not in out
    assert "measured by the paper on ml-100k-kg" in " ".join(out.split())  # the dataset of the flat numbers
    # another protocol than the paper's: the paper's numbers are flagged as a reference only
    assert main(["reproduce", "pop", "ml-100k-kg", "--seeds", "0", "--results", str(tmp_path / "r2"), "--runs",
                 str(tmp_path / "runs"), "--protocol", "seed=1"]) == 0
    assert "not the paper's protocol" in " ".join(capsys.readouterr().out.split())


def test_kgzoo_fit_trains_with_deterministic_algorithms_as_bench_does(data_dir, tmp_path):
    """A bench cell trains with torch's deterministic algorithms (warn where an op has none), so
    the same seed gives the same model with two threads too; ``kgzoo fit`` trained without them
    (a news model's CTR backward summed in another order from run to run). They are its default
    now, and ``--trainer.deterministic false`` turns them off."""
    import torch

    from kgzoo.cli.lightning import make_lightning_cli

    args = ["--model", "kgzoo.models.mf.BPRMF", "--data.dataset", "ml-100k-kg", "--trainer.default_root_dir", str(tmp_path)]
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    try:
        torch.use_deterministic_algorithms(False)
        make_lightning_cli(args, run=False)
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
        make_lightning_cli([*args, "--trainer.deterministic", "false"], run=False)
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def test_fit_and_test_through_lightning_cli(data_dir, tmp_path):
    common = ["--model", "kgzoo.models.lightgcn.LightGCN", "--model.n_layers", "2", "--data.dataset", "ml-100k-kg",
              "--trainer.limit_val_batches", "1", "--trainer.enable_progress_bar", "false",
              "--trainer.enable_model_summary", "false", "--trainer.default_root_dir", str(tmp_path)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["fit", *common, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2"]) == 0
        ckpts = list(tmp_path.rglob("*.ckpt"))
        assert len(ckpts) == 1
        assert main(["test", *common, "--trainer.limit_test_batches", "1", "--ckpt_path", str(ckpts[0])]) == 0
        warnings.warn("a real warning still shows")
    # the notices kgzoo triggers knowingly are dropped inside the run (kgzoo.cli.lightning._CLI_QUIET,
    # _EVAL_QUIET, kgzoo.quiet.lightning_quiet), nothing else
    shown = [str(w.message) for w in caught]
    for notice in ("No seed found", "tensorboardX", "overridden `transfer_batch_to_device`", "LeafSpec",
                   "is smaller than the logging interval", "callbacks used to create the checkpoint"):
        assert not [m for m in shown if notice in m], (notice, shown)
    assert shown[-1] == "a real warning still shows"
    # a registered name works where a class path does (it failed: "Expected a dot import path string: lightgcn")
    assert main(["fit", "--model", "lightgcn", *common[2:], "--trainer.max_epochs", "1",
                 "--trainer.limit_train_batches", "1", "--trainer.default_root_dir", str(tmp_path / "by-name")]) == 0
    assert len(list((tmp_path / "by-name").rglob("*.ckpt"))) == 1
    from kgzoo.cli.lightning import _model_names_to_classes
    assert _model_names_to_classes(["--model=bpr", "--model.lr", "0.1", "--model", "x.Y"]) == [
        "--model=kgzoo.models.mf.BPRMF", "--model.lr", "0.1", "--model", "x.Y"]
    # the DataModule's sizes are linked into the model; a wrong class is refused by the parser
    with pytest.raises(SystemExit):
        main(["fit", "--model", "torch.nn.Linear", "--data.dataset", "ml-100k-kg"])


def test_fit_and_test_a_news_model_on_a_mind_folder(text_home, tmp_path, monkeypatch, capsys):
    # before: `kgzoo fit` built a KGRecDataModule, which refuses a MIND folder's impression protocol,
    # and took no --data.npratio (also `--zoo nrms/mind-sample` failed on it); `kgzoo test --ckpt_path`
    # of a news checkpoint failed the same way, and found a folder's data only from its working directory
    from test_folders import tiny_mind

    folder = tiny_mind(tmp_path / "news-folder")
    quiet = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    assert main(["fit", "--model", "nrms", "--model.heads", "2", "--model.head_dim", "4", "--model.query_dim", "8",
                 "--model.title_length", "4", "--data.dataset", str(folder), "--data.npratio", "2",
                 "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(tmp_path / "runs"), *quiet]) == 0
    ckpt, = (tmp_path / "runs").rglob("*.ckpt")
    capsys.readouterr()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["test", "--ckpt_path", str(ckpt), *quiet]) == 0
    assert "test/auc" in capsys.readouterr().out
    from kgzoo.cli.lightning import cli_datamodule, zoo_cli_config
    with pytest.raises(ValueError, match="npratio is for the impression task"):
        cli_datamodule("ml-100k-kg", npratio=2)
    assert zoo_cli_config("nrms/mind-sample")["data"]["protocol"]["task"] == "impression"
    assert "protocol" not in zoo_cli_config("bpr/ml-100k-kg")["data"]


def test_a_news_model_named_on_mind_sample_runs_impressions(data_dir):
    # mind-sample's own default is ctr/random; --model nrms on it trained NRMS on those CTR rows (the
    # task linked from the DataModule before the model was known), unlike kgzoo bench, --zoo and create_model
    from kgzoo.cli.lightning import make_lightning_cli

    cli = make_lightning_cli(["--model", "kgzoo.models.nrms.NRMS", "--model.heads", "2", "--model.head_dim", "4",
                              "--data.dataset", "mind-sample", "--trainer.logger", "false"], run=False)
    assert cli.model.task == "impression" and cli.datamodule.protocol.task == "impression"
    assert cli.model.n_items == cli.datamodule.n_items > 2000  # every logged news, not news.tsv's 2,000
    bpr = make_lightning_cli(["--model", "kgzoo.models.mf.BPRMF", "--data.dataset", "mind-sample",
                              "--trainer.logger", "false"], run=False)
    assert bpr.datamodule.protocol.task == "ctr"  # the dataset's default for the others


def test_fit_from_a_zoo_config(data_dir, tmp_path, capsys):
    from kgzoo.cli.lightning import zoo_cli_config

    cfg = zoo_cli_config("cfkg/ml-100k-kg")
    assert cfg["model"]["class_path"] == "kgzoo.models.cfkg.CFKG"
    zoo = ZooConfig.load("cfkg", "ml-100k-kg")  # the tuned values where kgzoo tune wrote them
    assert cfg["model"]["init_args"]["lr"] == zoo.model["lr"] and cfg["data"]["dataset"] == "ml-100k-kg"
    assert cfg["model"]["init_args"]["embedding_dim"] == zoo.model["embedding_dim"]
    args = ["fit", "--zoo", "cfkg/ml-100k-kg", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
            "--trainer.limit_val_batches", "1", "--trainer.enable_progress_bar", "false",
            "--trainer.default_root_dir", str(tmp_path)]
    assert main(args) == 0
    ckpt, = tmp_path.rglob("*.ckpt")
    # fit says where its checkpoint went (it printed nothing: a user looked for it under ./lightning_logs)
    out = " ".join(capsys.readouterr().out.split())
    assert f"checkpoint: {ckpt.resolve()} test it: kgzoo test --ckpt_path {ckpt.resolve()}" in out, out[-2000:]
    assert main(["fit", "--zoo", "nosuchmodel"]) == 2  # unknown model: a clear error, no training


def test_fit_zoo_under_another_protocol_takes_that_protocols_values(data_dir, tmp_path, monkeypatch, capsys):
    """``kgzoo fit --zoo bpr/ml-100k-kg@split=cold_item`` trains on the cold-item split with the
    values ``kgzoo tune --protocol split=cold_item`` wrote (``bpr/ml-100k-kg@split=cold_item.yaml``,
    as ``kgzoo bench --protocol`` reads them). ``--zoo bpr/ml-100k-kg --data.protocol.split
    cold_item`` is refused, naming that file: before, it trained the cold split with the random
    split's tuned values, without a word."""
    from kgzoo.cli.lightning import _with_zoo_config, make_lightning_cli

    d = tmp_path / "bpr"
    d.mkdir()
    base = "model: {embedding_dim: 16, lr: 1.0e-3}\ndata: {batch_size: 4096}\ntrain: {max_epochs: 2, patience: 1}\n"
    (d / "ml-100k-kg.yaml").write_text(base + "tuned: {params: {lr: 0.02}, trials: 1, study: warm}\n")
    (d / "ml-100k-kg@split=cold_item.yaml").write_text(base + "tuned: {params: {lr: 0.005}, trials: 1, study: cold}\n")
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(tmp_path))
    args, tmp = _with_zoo_config("fit", ["--zoo", "bpr/ml-100k-kg@split=cold_item", "--trainer.logger", "false"])
    try:
        cli = make_lightning_cli(args, run=False)
    finally:
        os.unlink(tmp)
    assert cli.model.hparams.lr == 0.005 and cli.datamodule.protocol.split == "cold_item"
    assert cli.trainer.max_epochs == 2
    for given in (["--data.protocol.split", "cold_item"], ["--data.protocol", "{split: cold_item}"]):
        assert main(["fit", "--zoo", "bpr/ml-100k-kg", *given, "--trainer.max_epochs", "1",
                     "--trainer.default_root_dir", str(tmp_path / "runs")]) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert f"{d / 'ml-100k-kg@split=cold_item.yaml'}" in err and "--zoo bpr/ml-100k-kg@split=cold_item" in err, err
    assert not (tmp_path / "runs").exists()  # refused before training
    with pytest.raises(ValueError, match="unknown protocol field 'splt'"):
        _with_zoo_config("fit", ["--zoo", "bpr/ml-100k-kg@splt=cold_item"])


def test_fit_zoo_uses_the_converged_schedule(data_dir):
    # `--zoo` gives the config's epoch cap, early stopping on valid/<main metric> with its patience and
    # the best checkpoint; a later --trainer.* argument overrides the cap
    from kgzoo.cli.lightning import BestCheckpoint, MainMetricEarlyStopping, _with_zoo_config, make_lightning_cli
    from kgzoo.config import ZooConfig

    sched = ZooConfig.load("kgat", "ml-100k-kg").schedule()
    args, tmp = _with_zoo_config("fit", ["--zoo", "kgat/ml-100k-kg", "--trainer.enable_progress_bar", "false"])
    try:
        cli = make_lightning_cli(args, run=False)
        over = make_lightning_cli([*args, "--trainer.max_epochs", "3"], run=False)
    finally:
        os.unlink(tmp)
    assert cli.trainer.max_epochs == sched.max_epochs and over.trainer.max_epochs == 3
    stop, = [c for c in cli.trainer.callbacks if isinstance(c, MainMetricEarlyStopping)]
    best, = [c for c in cli.trainer.callbacks if isinstance(c, BestCheckpoint)]
    assert stop.patience == sched.patience and best.save_top_k == 1
    assert cli.trainer.checkpoint_callback is best
    # the monitor follows the model's main metric when training starts
    stop.setup(cli.trainer, cli.model, "fit")
    best.setup(cli.trainer, cli.model, "fit")
    assert stop.monitor == best.monitor == f"valid/{cli.model.main_metric}" == "valid/ndcg@10"
    p = _kgzoo("fit", "--help")
    assert p.returncode == 0 and "--zoo MODEL[/DATASET[@PROTOCOL]]" in p.stdout and "converged schedule" in p.stdout


def test_data_stats_of_a_folder_takes_min_text_match(tmp_path, capsys):
    """Item text keyed by another id space: ``kgzoo data stats PATH`` refuses it with the match
    rate and a value (rounded down, so that it accepts) to pass; ``--min-text-match`` given to
    ``stats`` (not only to ``import``) accepts it."""
    import pandas as pd

    rows = [(f"u{u}", f"i{i}") for u in range(10) for i in range(30) if (u + i) % 3]
    (tmp_path / "shop-text").mkdir()
    pd.DataFrame(rows, columns=["user", "item"]).to_csv(tmp_path / "shop-text" / "interactions.csv", index=False)
    keys = [f"i{i}" for i in range(14)] + [f"x{i}" for i in range(16)]  # 14 of 30 items: 46.7%
    pd.DataFrame({"item": keys, "text": "t"}).to_csv(tmp_path / "shop-text" / "item_text.csv", index=False)
    assert main(["data", "stats", str(tmp_path / "shop-text")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "match 14 of 30 items (46.7%)" in err and "--min-text-match 0.46" in err  # 0.47 would refuse it again
    # the same folder in the same process: the new threshold is another registration (it was the first one's)
    assert main(["data", "stats", str(tmp_path / "shop-text"), "--min-text-match", "0.46"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "text_coverage │ 46.6667%" in out


def test_data_list_and_stats_show_caveats(data_dir, capsys):
    from kgzoo.data.datasets import dataset_spec

    assert "not comparable" in dataset_spec("mind-kg").caveat.lower() and dataset_spec("ml-100k-kg").caveat == ""
    assert main(["data", "list"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "caveat" in out and "re-split" in out
    # mind-sample's own default is ctr/random; the news models run its impressions
    assert "ctr/random; news models: impression/temporal" in out
    assert main(["data", "stats", "dkn-news"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "caveat: DKN's own KG file is not public: the KG here is title -[mentions]-> entity" in out


def test_cli_commands_are_an_explicit_table():
    import kgzoo.cli as cli

    assert [c.name for c in cli.COMMANDS] == ["data", "bench", "reproduce", "tune", "fit", "test", "recommend",
                                             "pretrained", "export", "update"]
    sub = next(a for a in cli.build_parser()._actions if a.dest == "command")
    assert list(sub.choices) == [c.name for c in cli.COMMANDS]
    parse = cli.build_parser().parse_args  # every subcommand takes --import (repeatable)
    assert parse(["data", "--import", "a.py", "--import", "my.mod", "list"]).imports == ["a.py", "my.mod"]
    assert parse(["bench", "--import", "a.py", "--models", "pop"]).imports == ["a.py"]
    assert parse(["pretrained", "--import", "a.py"]).imports == ["a.py"]
    fit = parse(["fit", "--import", "a.py", "--model", "X"])  # fit/test: LightningCLI's arguments, split by main
    from kgzoo.cli.options import take_option

    assert take_option("--import", fit.lightning_args) == (["a.py"], ["--model", "X"])
    assert take_option("--import", ["--import=b", "--zoo", "pop"]) == (["b"], ["--zoo", "pop"])
    with pytest.raises(ValueError, match="--import needs a value"):
        take_option("--import", ["--import"])


def test_readme_fusion_file_joins_the_grid_in_one_command(data_dir, tmp_path):
    """The README's user file and its one `kgzoo bench --import my_fusion.py ...` command, run as
    written on ml-100k-kg with a 1-epoch budget and a small KGPLM (no PLM text, 16 dimensions,
    1 TransE epoch: a config folder of the test's own)."""
    readme = (REPO / "README.md").read_text()
    code = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if b.startswith("# my_fusion.py"))
    command = re.search(r"```console\n(kgzoo bench --import my_fusion.py [^\n]*)\n```", readme).group(1)
    (tmp_path / "my_fusion.py").write_text(code)
    (tmp_path / "configs" / "kgplm").mkdir(parents=True)
    (tmp_path / "configs" / "kgplm" / "ml-100k-kg.yaml").write_text(
        "model: {embedding_dim: 16, n_layers: 1, kg_encoder: transe, kge_dim: 16, kge_epochs: 1, use_text: false}\n"
        "train: {max_epochs: 1, patience: 1}\n")
    p = _kgzoo(*shlex.split(command)[1:], "--epochs", "1", "--results", str(tmp_path / "results"),
               "--runs", str(tmp_path / "runs"), cwd=tmp_path, KGZOO_CONFIG_DIR=str(tmp_path / "configs"),
               XDG_CACHE_HOME=str(tmp_path / "cache"), KGZOO_HOME=str(tmp_path / "cache" / "kgzoo"))
    assert p.returncode == 0, p.stderr[-3000:]
    rows = read_rows(tmp_path / "results" / "bench.jsonl")
    assert sorted((r.model, r.variant, r.hparams["fusion"], r.status) for r in rows) == [
        ("kgplm", "base", "attention", "ok"), ("kgplm", "fusion=weighted", "weighted", "ok")]
    assert all(r.metrics["test/ndcg@10"] > 0 for r in rows)


def test_config_dir_overlays_the_packaged_configs(data_dir, tmp_path, monkeypatch, capsys):
    from kgzoo.cli.lightning import zoo_cli_config

    monkeypatch.setenv("KGZOO_CONFIG_DIR", "")  # restored after the test; main appends to it
    (tmp_path / "pop").mkdir()
    (tmp_path / "pop" / "ml-100k-kg.yaml").write_text("train: {max_epochs: 7, patience: 2}\n")
    assert zoo_cli_config("pop/ml-100k-kg")["trainer"]["max_epochs"] != 7
    seen = []
    import dataclasses

    import kgzoo.cli as cli

    probe = dataclasses.replace(cli.COMMANDS[0], run=lambda args: seen.append(os.environ["KGZOO_CONFIG_DIR"]) or 0)
    monkeypatch.setattr(cli, "COMMANDS", (probe, *cli.COMMANDS[1:]))  # kgzoo data, reading the variable
    assert main(["data", "--config-dir", str(tmp_path), "list"]) == 0
    assert seen == [str(tmp_path.resolve())]  # for the command (and its DDP ranks) ...
    assert os.environ["KGZOO_CONFIG_DIR"] == ""  # ... only: a second call in this process does not read it
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(tmp_path.resolve()))
    trainer = zoo_cli_config("pop/ml-100k-kg")["trainer"]
    assert trainer["max_epochs"] == 7 and trainer["callbacks"][0]["init_args"]["patience"] == 2
    assert zoo_cli_config("bpr/ml-100k-kg")["model"]["init_args"]["embedding_dim"] == 64  # packaged, untouched
    assert main(["data", "--config-dir", str(tmp_path / "nowhere"), "list"]) == 2
    assert "--config-dir" in capsys.readouterr().err


def _one_epoch_bpr_study(tmp_path, monkeypatch, config: str) -> Path:
    """A folder of zoo configs with BPR's ``config`` (``ml-100k-kg.yaml``, ``default.yaml``): d=8,
    one epoch per trial, lr searched; ``KGZOO_HOME`` in ``tmp_path``. Returns the folder."""
    cfg = tmp_path / "configs"
    (cfg / "bpr").mkdir(parents=True)
    (cfg / "bpr" / config).write_text(
        "model: {embedding_dim: 8, reg_weight: 1.0e-4, lr: 1.0e-3}\ndata: {batch_size: 4096, eval_batch_size: 1024}\n"
        "train: {max_epochs: 1, patience: 1}\ntune:\n  lr: {low: 1.0e-3, high: 1.0e-2, log: true}\n")
    monkeypatch.setenv("KGZOO_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KGZOO_CONFIG_DIR", raising=False)  # --config-dir extends it for the process: undone here
    return cfg


def test_tune_command_writes_trials_and_the_tuned_record(tmp_path, monkeypatch, data_dir, capsys):
    cfg = _one_epoch_bpr_study(tmp_path, monkeypatch, "ml-100k-kg.yaml")
    banner = logging.getLogger("lightning.pytorch")
    monkeypatch.setattr(banner, "level", banner.level)  # restored after the test
    banner.setLevel(logging.INFO)  # as in a fresh process
    code = main(["tune", "bpr", "ml-100k-kg", "--trials", "1", "--config-dir", str(cfg), "--results",
                 str(tmp_path / "results"), "--write-config", str(cfg)])
    assert code == 0
    assert banner.level == logging.WARNING  # no "GPU available" banner and tips per trial, as in kgzoo bench
    assert len((tmp_path / "results" / "tuning" / "bpr-ml-100k-kg.jsonl").read_text().splitlines()) == 2  # + default
    assert "tuned:" in (cfg / "bpr" / "ml-100k-kg.yaml").read_text()
    out = " ".join(capsys.readouterr().out.split())
    assert "[defaults] bpr on ml-100k-kg trial 0 (the config's own values, outside the budget): complete" in out
    assert "of 1 trial (and the default trial: complete, 0." in out and "later runs use it" not in out
    # the record written into a folder later runs do not read yet: the summary says how they read it
    # (the study resumes complete: no trial runs again)
    code = main(["tune", "bpr", "ml-100k-kg", "--trials", "1", "--config-dir", str(cfg), "--results",
                 str(tmp_path / "results"), "--write-config", str(tmp_path / "mine")])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 0 and "trial 0" not in out
    assert f"later runs use it with --config-dir {(tmp_path / 'mine').resolve()}" in out


def test_tune_takes_a_folder_as_bench_does(tmp_path, monkeypatch, capsys):
    """kgzoo tune bpr PATH said "unknown dataset 'PATH'" where kgzoo bench --datasets PATH,
    kgzoo fit --data.dataset PATH and kgzoo data stats PATH read the folder."""
    shop = tmp_path / "shop"
    shop.mkdir()
    rows = [f"u{u},i{(u * 7 + k) % 40}" for u in range(30) for k in range(12)]
    (shop / "interactions.csv").write_text("user,item\n" + "\n".join(rows) + "\n")
    cfg = _one_epoch_bpr_study(tmp_path, monkeypatch, "default.yaml")
    code = main(["tune", "bpr", str(shop), "--trials", "1", "--config-dir", str(cfg), "--results",
                 str(tmp_path / "results"), "--write-config", str(tmp_path / "mine"),
                 "--storage", str(tmp_path / "tune.sqlite3")])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 0, out
    name = resolve_dataset(str(shop))
    assert (tmp_path / "results" / "tuning" / f"bpr-{name}.jsonl").is_file()
    assert (tmp_path / "mine" / "bpr" / f"{name}.yaml").is_file()
    assert f"--datasets {shop} --full" in out  # the hint repeats the path a later run is given


def test_fit_under_ddp_takes_the_strategy_its_model_needs(data_dir):
    # kgzoo fit --zoo kgat/ml-100k-kg --trainer.strategy ddp failed at its second step (DDP refused the
    # parameters a phase of KGAT's alternating optimisation leaves without a gradient), where kgzoo
    # bench trained it; its Trainer also takes kgzoo's SIGTERM handler without collectives
    from kgzoo.cli.lightning import _with_zoo_config, make_lightning_cli
    from kgzoo.dist import _sigterm_flag

    args, tmp = _with_zoo_config("fit", ["--zoo", "kgat/ml-100k-kg", "--trainer.enable_progress_bar", "false",
                                         "--trainer.logger", "false", "--trainer.devices", "2"])
    try:
        ddp = make_lightning_cli([*args, "--trainer.strategy", "ddp"], run=False)
        auto = make_lightning_cli(args, run=False)  # --trainer.devices 2 alone: Lightning's "auto" is DDP
    finally:
        os.unlink(tmp)
    for cli in (ddp, auto):
        assert cli.trainer.strategy._ddp_kwargs.get("find_unused_parameters") is True
        assert cli.trainer._signal_connector._sigterm_notifier_fn.__func__ is _sigterm_flag


def test_fit_of_a_model_with_nothing_to_train_says_its_checkpoint(data_dir, tmp_path, capsys):
    # kgzoo fit --zoo pop/ml-100k-kg wrote no checkpoint and said nothing (Lightning's ModelCheckpoint saves only
    # after an optimiser step, which Pop never takes), where BPR's fit says where its best.ckpt went; kgzoo bench
    # had the same gap (fixed there alone); both trainers now keep the fit (BestModelCheckpoint)
    args = ["fit", "--zoo", "pop/ml-100k-kg", "--trainer.enable_progress_bar", "false",
            "--trainer.default_root_dir", str(tmp_path)]
    assert main(args) == 0
    ckpt, = tmp_path.rglob("*.ckpt")
    assert ckpt.name == "best.ckpt"
    out = " ".join(capsys.readouterr().out.split())
    assert f"checkpoint: {ckpt.resolve()} test it: kgzoo test --ckpt_path {ckpt.resolve()}" in out, out[-2000:]
