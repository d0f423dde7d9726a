"""kgzoo tune: the search space, the study loop (budget, resume, rows, pruning) and the tuned: record."""
from __future__ import annotations

import json
import math
from types import SimpleNamespace

import optuna
import pytest
import yaml

from kgzoo.bench.experiment import tuning_record
from kgzoo.bench.tune import PruningCallback, parse_space, strip_tuned, tune, write_tuned_from
from kgzoo.config import ZooConfig


@pytest.fixture(autouse=True)
def no_packaged_configs(tmp_path, monkeypatch):
    """The study tests read only the configs they write: the packaged folder (where `kgzoo tune`
    writes the committed tuned: files, e.g. bpr/ml-100k-kg.yaml) is replaced by an empty one."""
    empty = tmp_path / "packaged"
    empty.mkdir()
    monkeypatch.setattr("kgzoo.paths.packaged_config_dir", lambda: empty)


def _config_dir(tmp_path, text: str):
    d = tmp_path / "configs"
    (d / "bpr").mkdir(parents=True)
    (d / "bpr" / "default.yaml").write_text(text)
    return d


SPACE = """# BPR for the test
model: {embedding_dim: 8, reg_weight: 1.0e-4, lr: 1.0e-3}
train: {max_epochs: 7, patience: 2}
tune:
  lr: {low: 1.0e-4, high: 1.0e-1, log: true}
  reg_weight: {choices: [0.0, 1.0e-4]}
  ks: {choices: [[8], [8, 4]]}
"""


class FakeExperiment:
    """A trial whose valid value peaks at lr = 1e-2 (log scale); it records how it was called."""

    def __init__(self) -> None:
        self.calls = []

    def __call__(self, model, dataset, *, seed, model_overrides, root, run_test, callbacks, out_dir, progress, resume):
        assert resume is True  # an interrupted trial's rerun goes on from its resume point
        self.calls.append(dict(model_overrides, run_test=run_test))
        assert run_test is False  # tuning never reads the test split
        value = 1.0 - abs(math.log10(model_overrides["lr"]) + 2.0) / 3.0
        return {"main_metric": "ndcg@10", "valid_metrics": {"valid/ndcg@10": value}, "epochs": 3,
                "best_epoch": 2, "stopped_by": "early_stopping"}


def test_space_parsing_and_errors():
    space = parse_space(yaml.safe_load(SPACE)["tune"])
    assert [p.name for p in space] == ["lr", "reg_weight", "ks"]
    assert space[0].log and space[2].choices == ((8,), (8, 4))
    for bad, msg in [({"lr": 0.1}, "expected a mapping"), ({"lr": {"low": 1}}, "needs either"),
                     ({"lr": {"low": 1, "high": 1}}, "must be below"), ({"lr": {"low": 0, "high": 1, "log": True}},
                                                                          "log scale"),
                     ({"n": {"choices": []}}, "non-empty"), ({"n": {"choices": [1, 1]}}, "repeats"),
                     ({"n": {"low": 1, "high": 4, "step": 2}}, "integer range"), ({"n": {"lo": 1}}, "unknown key")]:
        with pytest.raises(ValueError, match=msg):
            parse_space(bad, "f.yaml: tune")


def test_study_budget_resume_rows_and_tuned_record(tmp_path, monkeypatch):
    d = _config_dir(tmp_path, SPACE)
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(d))
    fake = FakeExperiment()
    common = dict(seed=3, results=tmp_path / "results", storage=tmp_path / "study.sqlite3", experiment=fake,
                  fingerprint=lambda m, ds: "f" * 64, log=None)
    rep = tune("bpr", "ml-100k-kg", 4, **common)  # the default trial, then 4 searched ones
    assert (rep.complete, rep.pruned, rep.failed) == (4, 0, 0) and len(fake.calls) == 5
    assert {k: fake.calls[0][k] for k in ("lr", "reg_weight")} == {"lr": 1e-3, "reg_weight": 1e-4}  # the config's
    assert rep.default == {"state": "COMPLETE", "value": pytest.approx(2 / 3), "trial": 0, "chosen": False}
    rep = tune("bpr", "ml-100k-kg", 6, write_config=d, **common)  # resumes: only 2 more trials
    assert len(fake.calls) == 7 and rep.complete == 6
    rows = [json.loads(line) for line in (tmp_path / "results" / "tuning" / "bpr-ml-100k-kg.jsonl").read_text().splitlines()]
    assert [r["trial"] for r in rows] == list(range(7)) and {r["state"] for r in rows} == {"COMPLETE"}
    assert [r["default"] for r in rows] == [True] + [False] * 6
    assert all(r["params"]["ks"] in ([8], [8, 4]) for r in rows)
    best = max(rows, key=lambda r: r["value"])
    assert rep.best_params == best["params"] and rep.best_value == pytest.approx(best["value"])
    # the record: the dataset gets its own file (default.yaml copied, comments kept) with tuned: over model
    text = (d / "bpr" / "ml-100k-kg.yaml").read_text()
    assert "# BPR for the test" in text and text.count("tuned:") == 1
    cfg = ZooConfig.load("bpr", "ml-100k-kg")
    assert cfg.model["lr"] == best["params"]["lr"] and cfg.model["embedding_dim"] == 8
    assert cfg.tuned["trials"] == 6 and cfg.tuned["budget"] == {"trials": 6, "max_epochs": 7, "patience": 2}
    assert cfg.tuned["default"]["trial"] == 0 and cfg.tuned["default"]["chosen"] is False
    assert cfg.defaults["lr"] == 1e-3 and cfg.model["lr"] == best["params"]["lr"]  # as written / as tuned
    assert cfg.tune_path == d / "bpr" / "ml-100k-kg.yaml"
    # every row run under the tuned config carries the record it used
    rec = tuning_record(cfg)
    assert rec["trials"] == 6 and rec["chosen"] == best["params"] and rec["study"] == cfg.tuned["study"]
    assert tuning_record(ZooConfig.load("bpr", "ml-1m-kg")) is None  # no tuned: section there
    # a second study replaces the section instead of adding one
    tune("bpr", "ml-100k-kg", 7, write_config=d, **common)
    assert (d / "bpr" / "ml-100k-kg.yaml").read_text().count("tuned:") == 1
    assert ZooConfig.load("bpr", "ml-100k-kg").tuned["trials"] == 7
    # another dataset of the domain takes these values: tuned: {from: ml-100k-kg}, resolved on load
    path = write_tuned_from(d, ZooConfig.load("bpr", "ml-1m-kg"), "ml-100k-kg")
    assert path == d / "bpr" / "ml-1m-kg.yaml" and "# BPR for the test" in path.read_text()
    other = ZooConfig.load("bpr", "ml-1m-kg")
    assert other.model["lr"] == ZooConfig.load("bpr", "ml-100k-kg").model["lr"]
    assert tuning_record(other)["dataset"] == "ml-100k-kg" and tuning_record(other)["trials"] == 7
    assert write_tuned_from(d, other, "ml-100k-kg").read_text().count("tuned:") == 1  # replaced, not added
    with pytest.raises(ValueError, match="no tuned: record"):  # nothing tuned there: refused, file untouched
        write_tuned_from(d, ZooConfig.load("bpr", "lastfm-kg"), "yelp-social")
    assert not (d / "bpr" / "lastfm-kg.yaml").exists()


def _killed_lane(cut: list):
    """An experiment whose lane is killed mid-trial (the trial stays RUNNING); records the point."""
    def killed(*a, model_overrides, **k):
        cut.append(model_overrides)
        raise KeyboardInterrupt
    return killed


def _study_of_three_and_a_killed_lane(tmp_path, monkeypatch):
    """``(tune kwargs, the fake experiment, the cut-off points, a killed-lane experiment)`` after a
    study ran its default trial and 2 searched trials."""
    d = _config_dir(tmp_path, SPACE)
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(d))
    common = dict(results=tmp_path, storage=tmp_path / "s.sqlite3", fingerprint=lambda m, ds: "0" * 64, log=None)
    fake = FakeExperiment()
    tune("bpr", "ml-100k-kg", 2, experiment=fake, **common)  # the default trial and 2 searched
    cut: list = []
    return common, fake, cut, _killed_lane(cut)


def test_a_trial_cut_off_by_a_killed_process_runs_again_and_is_not_counted(tmp_path, monkeypatch):
    common, fake, cut, killed = _study_of_three_and_a_killed_lane(tmp_path, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        tune("bpr", "ml-100k-kg", 3, experiment=killed, **common)
    rep = tune("bpr", "ml-100k-kg", 3, experiment=fake, **common)
    assert len(fake.calls) == 4 and (rep.complete, rep.pruned, rep.failed) == (3, 0, 0)
    rows = [json.loads(x) for x in (tmp_path / "tuning" / "bpr-ml-100k-kg.jsonl").read_text().splitlines()]
    assert [(r["trial"], r["rerun_of"]) for r in rows] == [(0, None), (1, None), (2, None), (4, 3)]
    assert rows[3]["params"] == cut[0]  # the same point ran again


def test_a_point_cut_off_twice_still_runs_and_takes_one_budget_slot(tmp_path, monkeypatch):
    """A rerun cut off in its turn used to be dropped as a repeat of its own interrupted original,
    and took a budget slot as a failure without ever running (gcn/ml-100k-kg trial 2,
    lightgcn/amazon-hin trial 7)."""
    common, fake, cut, killed = _study_of_three_and_a_killed_lane(tmp_path, monkeypatch)
    for _ in range(2):  # killed in the trial, then again in its rerun
        with pytest.raises(KeyboardInterrupt):
            tune("bpr", "ml-100k-kg", 3, experiment=killed, **common)
    assert cut[0] == cut[1]  # the rerun is the same point
    rep = tune("bpr", "ml-100k-kg", 3, experiment=fake, **common)
    assert (rep.complete, rep.pruned, rep.failed) == (3, 0, 0)  # no slot taken by an interrupted point
    rows = [json.loads(x) for x in (tmp_path / "tuning" / "bpr-ml-100k-kg.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and rows[3]["params"] == cut[0] and rows[3]["rerun_of"] in (3, 4)
    assert len(fake.calls) == 4  # the point ran once, and nothing else was drawn


def test_a_failed_trial_counts_and_is_not_rerun(tmp_path, monkeypatch):
    """A trial whose experiment raised is a result (FAIL, with its error): it takes its budget
    slot and is not queued again when the study is reopened, unlike an interrupted trial."""
    d = _config_dir(tmp_path, SPACE)
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(d))
    common = dict(results=tmp_path, storage=tmp_path / "s.sqlite3", fingerprint=lambda m, ds: "0" * 64, log=None)
    fake = FakeExperiment()
    tune("bpr", "ml-100k-kg", 1, experiment=fake, **common)  # the default trial and 1 searched

    def broken(*a, **k):
        raise RuntimeError("diverged")

    rep = tune("bpr", "ml-100k-kg", 2, experiment=broken, **common)
    assert (rep.complete, rep.failed) == (1, 1)
    rep = tune("bpr", "ml-100k-kg", 3, experiment=fake, **common)
    assert (rep.complete, rep.pruned, rep.failed) == (2, 0, 1) and len(fake.calls) == 3
    rows = [json.loads(x) for x in (tmp_path / "tuning" / "bpr-ml-100k-kg.jsonl").read_text().splitlines()]
    assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE"]
    assert rows[2]["error"] == "RuntimeError: diverged" and rows[3]["rerun_of"] is None


def test_a_resumed_study_draws_new_points(tmp_path, monkeypatch):
    """Each process seeds a fresh sampler: without a resume-aware seed, the first random draw after a
    resume repeats the study's first point (seen on kgcn/ml-100k-kg: trials 1 and 2 identical)."""
    d = _config_dir(tmp_path, SPACE)
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(d))
    common = dict(results=tmp_path, storage=tmp_path / "s.sqlite3", fingerprint=lambda m, ds: "0" * 64, log=None)
    fake = FakeExperiment()
    for n in (1, 2, 3):  # three processes, one searched trial each (the first also runs the default)
        tune("bpr", "ml-100k-kg", n, experiment=fake, **common)
    lrs = [c["lr"] for c in fake.calls][1:]
    assert len(lrs) == 3 and len(set(lrs)) == 3
    again = FakeExperiment()  # the same budget in one process draws the same first point (seeded)
    tune("bpr", "ml-100k-kg", 1, experiment=again,  # a new study: its own file and no rows to restore from
         **dict(common, storage=tmp_path / "t.sqlite3", results=tmp_path / "t"))
    assert again.calls[1]["lr"] == lrs[0]


def test_the_default_trial_is_never_pruned_and_joins_a_study_opened_before_it(tmp_path, monkeypatch):
    import types

    import optuna

    from kgzoo.bench.tune import fixed_sha, parse_space, study_name

    d = _config_dir(tmp_path, SPACE)
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(d))
    storage = tmp_path / "s.sqlite3"
    space = parse_space(yaml.safe_load(SPACE)["tune"])
    fixed = fixed_sha(ZooConfig.load("bpr", "ml-100k-kg"), space)
    old = optuna.create_study(study_name=study_name("bpr", "ml-100k-kg", "0" * 64, space, 0, fixed),
                              storage=f"sqlite:///{storage}", direction="maximize")
    for lr in (0.05, 0.002):  # two searched trials of a study made before the default-trial rule
        old.enqueue_trial({"lr": lr, "reg_weight": 0.0, "ks#": 0})
        t = old.ask()
        for p in space:
            p.suggest(t)
        old.tell(t, 0.1)
    pruned = []

    class Recording(FakeExperiment):
        def __call__(self, *a, callbacks, **k):
            pruned.append(len(callbacks(types.SimpleNamespace(main_metric="ndcg@10"))))
            return super().__call__(*a, callbacks=callbacks, **k)

    old.enqueue_trial({"lr": 0.05, "reg_weight": 0.0, "ks#": 0})  # a repeated point: not a new trial
    t = old.ask()
    for p in space:
        p.suggest(t)
    old.tell(t, 0.1)
    rec = Recording()
    rep = tune("bpr", "ml-100k-kg", 2, results=tmp_path, storage=storage, experiment=rec,
               fingerprint=lambda m, ds: "0" * 64, log=None)
    assert len(rec.calls) == 1 and rec.calls[0]["lr"] == 1e-3 and pruned == [0]  # only the default, unpruned
    assert rep.default["trial"] == 3 and rep.default["chosen"] is True  # 0.667 beats the two 0.1
    assert rep.complete == 2  # trial 2 repeats trial 0: counted once
    assert rep.best_params["lr"] == 1e-3
    tune("bpr", "ml-100k-kg", 3, results=tmp_path, storage=storage, experiment=rec,
         fingerprint=lambda m, ds: "0" * 64, log=None)
    assert len(rec.calls) == 2 and pruned == [0, 1]  # a searched trial: pruning on


def test_failed_trials_count_and_no_space_is_an_error(tmp_path, monkeypatch):
    d = _config_dir(tmp_path, SPACE)
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(d))

    def boom(*a, **k):
        raise RuntimeError("diverged")

    rep = tune("bpr", "ml-100k-kg", 2, results=tmp_path, storage=tmp_path / "s.sqlite3", experiment=boom,
               fingerprint=lambda m, ds: "0" * 64, write_config=d, log=None)
    assert rep.failed == 2 and rep.best_value is None and rep.config is None
    (d / "bpr" / "default.yaml").write_text("model: {lr: 1.0e-3}\n")
    with pytest.raises(ValueError, match="no tune: section"):
        tune("bpr", "ml-100k-kg", 1, results=tmp_path, storage=tmp_path / "s.sqlite3", experiment=boom,
             fingerprint=lambda m, ds: "0" * 64, log=None)
    with pytest.raises(ValueError, match="trials=0"):
        tune("bpr", "ml-100k-kg", 0, experiment=boom, log=None)


def test_pruning_callback_reports_and_prunes():
    study = optuna.create_study(direction="maximize",
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0))
    for v in (0.5, 0.6):  # two earlier trials set the median at epoch 0
        t = study.ask()
        t.report(v, 0)
        study.tell(t, v)
    trainer = SimpleNamespace(sanity_checking=False, current_epoch=0, callback_metrics={"valid/ndcg@10": 0.9})
    good = study.ask()
    PruningCallback(good, "valid/ndcg@10").on_validation_end(trainer, None)  # above the median: goes on
    assert study.get_trials(deepcopy=False)[good.number].intermediate_values == {0: 0.9}
    trainer.callback_metrics["valid/ndcg@10"] = 0.1
    with pytest.raises(optuna.TrialPruned, match="epoch 0"):
        PruningCallback(study.ask(), "valid/ndcg@10").on_validation_end(trainer, None)
    trainer.sanity_checking = True  # the sanity check reports nothing
    PruningCallback(study.ask(), "valid/ndcg@10").on_validation_end(trainer, None)


def test_a_resumed_trial_reports_its_earlier_epochs_to_its_rerun():
    """The rerun of an interrupted trial that resumes from its resume point gets, from the
    callback state in that point, the values the interrupted trial reported, so the pruner sees
    the whole curve (MedianPruner compares a trial's best value so far); a checkpoint loaded by
    another stage reports nothing."""
    study = optuna.create_study(direction="maximize")
    first = PruningCallback(study.ask(), "valid/ndcg@10")
    trainer = SimpleNamespace(sanity_checking=False, current_epoch=0, callback_metrics={"valid/ndcg@10": 0.3})
    for epoch, v in enumerate((0.3, 0.5)):
        trainer.current_epoch, trainer.callback_metrics["valid/ndcg@10"] = epoch, v
        first.on_validation_end(trainer, None)
    state = first.state_dict()  # as the resume point holds it
    tested = PruningCallback(study.ask(), "valid/ndcg@10")  # a test pass's restore of a checkpoint: nothing reported
    tested.setup(None, None, "test")
    tested.load_state_dict(state)
    assert tested.state_dict() == {"reported": []}
    rerun = study.ask()
    resumed = PruningCallback(rerun, "valid/ndcg@10")
    resumed.setup(None, None, "fit")  # Lightning sets the stage up before it restores the callbacks
    resumed.load_state_dict(state)
    assert study.get_trials(deepcopy=False)[rerun.number].intermediate_values == {0: 0.3, 1: 0.5}
    assert study.get_trials(deepcopy=False)[rerun.number].user_attrs["monitor"] == "valid/ndcg@10"
    trainer.current_epoch, trainer.callback_metrics["valid/ndcg@10"] = 2, 0.4
    resumed.on_validation_end(trainer, None)
    assert resumed.state_dict() == {"reported": [[0, 0.3], [1, 0.5], [2, 0.4]]}


def test_a_trial_row_counts_the_seconds_of_every_process():
    """A trial resumed from an interrupted one's point: its row's seconds are the run's
    cell_seconds (every process), not this process's wall time; a pruned trial has no run row."""
    from kgzoo.bench.tune import _trial_seconds

    assert _trial_seconds({"cell_seconds": 812.5, "epochs": 60}, 301.0) == 812.5
    assert _trial_seconds(None, 301.0) == 301.0 and _trial_seconds({"monitor": "valid/ndcg@10"}, 7.0) == 7.0


def test_strip_tuned_keeps_the_rest():
    text = "# c\nmodel: {lr: 1}\n# chosen by `kgzoo tune` x\ntuned:\n  params: {lr: 2}\n  trials: 3\npaper: {a: 1}\n"
    assert strip_tuned(text) == "# c\nmodel: {lr: 1}\npaper: {a: 1}\n"


def test_a_trial_with_list_values_gets_its_row_and_name():
    """A trial's overrides may hold lists (kgat's layer_sizes, dkn's windows): its row is named
    by them and its config sha follows them; before, the name was re-parsed as a grid variant
    (scalars only) and the trial failed after training."""
    import time

    from kgzoo.bench.cells import Cell, cell_config_sha, cell_schedule, parse_variant, variant_name
    from kgzoo.protocols import default_protocol
    from kgzoo.bench.experiment import assemble_row

    assert variant_name({"windows": [1, 2], "lr": 0.001}) == "lr=0.001,windows=[1, 2]"
    assert variant_name({"use_kg": False, "lr": 0.01}) == parse_variant("use_kg=false,lr=0.01")[0]
    assert variant_name({}) == "base"
    with pytest.raises(ValueError, match="must be a scalar"):
        parse_variant("windows=[1]")  # a grid variant still spells scalars only
    sched = cell_schedule("dkn", "dkn-news", quick=False)
    shas = {cell_config_sha(Cell("dkn", "dkn-news", 0), sched, {"windows": w}) for w in ([1, 2], [1, 2, 3])}
    assert len(shas) == 2
    row = assemble_row(model="dkn", dataset="dkn-news", seed=0, protocol=default_protocol("dkn-news", "dkn"),
                       kg_ablation="real", overrides={"windows": [1, 2], "lr": 0.001}, schedule=sched, devices=1,
                       strategy="auto", num_nodes=1, accelerator="cpu", fingerprint="f" * 64,
                       protocol_fingerprint="p" * 64, t_start=time.perf_counter(), status="ok")
    assert row.variant == "lr=0.001,windows=[1, 2]" and row.overrides["windows"] == [1, 2]
    assert row.config_sha == cell_config_sha(Cell("dkn", "dkn-news", 0), sched, {"windows": [1, 2], "lr": 0.001})


def test_the_default_trial_takes_the_class_defaults_where_the_config_sets_none(tmp_path, monkeypatch):
    """A dataset config without a ``model`` section (bpr/lastfm-kg.yaml once did) left the default
    trial's values to the sampler while the trial was flagged the default; it must run the values
    the model trains with untuned: BPR's constructor defaults (lr 1e-3, reg_weight 1e-4)."""
    d = _config_dir(tmp_path, SPACE)
    (d / "bpr" / "ml-100k-kg.yaml").write_text("data: {batch_size: 64}\ntrain: {max_epochs: 7, patience: 2}\n")
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(d))
    rec = FakeExperiment()
    rep = tune("bpr", "ml-100k-kg", 1, results=tmp_path, storage=tmp_path / "s.sqlite3", experiment=rec,
               fingerprint=lambda m, ds: "0" * 64, log=None)
    assert rec.calls[0]["lr"] == 1e-3 and rec.calls[0]["reg_weight"] == 1e-4  # the class's, not sampled
    assert rep.default["trial"] == 0


def test_an_unknown_model_or_dataset_is_named_before_the_config_and_pop_has_nothing_to_search(tmp_path):
    """Found by the new-user trial of issue 16: `kgzoo tune bprr ml-100k-kg` said "no tune: section"."""
    common = dict(results=tmp_path, storage=tmp_path / "s.sqlite3", experiment=FakeExperiment(),
                  fingerprint=lambda m, ds: "0" * 64, log=None)
    with pytest.raises(KeyError, match="unknown model 'bprr'; did you mean 'bpr'"):
        tune("bprr", "ml-100k-kg", 1, **common)
    with pytest.raises(KeyError, match="unknown dataset 'ml-100k-k'"):
        tune("pop", "ml-100k-k", 1, **common)
    with pytest.raises(ValueError, match="nothing to search.*such as pop"):
        tune("pop", "ml-100k-kg", 1, **common)
    assert not (tmp_path / "s.sqlite3").exists()  # no study opened


def test_the_tuned_record_names_the_trial_rows_it_came_from(tmp_path, monkeypatch):
    d = _config_dir(tmp_path, SPACE)
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(d))
    monkeypatch.chdir(tmp_path)
    tune("bpr", "ml-100k-kg", 1, results=tmp_path / "mine", storage=tmp_path / "s.sqlite3",
         experiment=FakeExperiment(), fingerprint=lambda m, ds: "0" * 64, write_config=d, log=None)
    text = (d / "bpr" / "ml-100k-kg.yaml").read_text()
    assert "trials in mine/tuning/bpr-ml-100k-kg.jsonl" in text and "benchmarks/results" not in text
    assert "chosen by `kgzoo tune`" not in strip_tuned(text)  # the comment goes with the section


def test_tune_command_without_a_budget_says_what_is_missing(capsys):
    from kgzoo.cli import main

    with pytest.raises(SystemExit, match="give --trials N .* or --from DATASET"):
        main(["tune", "bpr", "ml-100k-kg"])
    with pytest.raises(SystemExit, match="not both"):
        main(["tune", "bpr", "ml-100k-kg", "--trials", "2", "--from", "ml-1m-kg"])


def test_an_installed_kgzoo_does_not_write_its_packaged_configs(monkeypatch, tmp_path):
    """A wheel's configs live in site-packages: `kgzoo tune` asks for --write-config there, before any trial."""
    from kgzoo.cli import main
    from kgzoo.cli import tune as tune_cli

    monkeypatch.setattr(tune_cli, "packaged_config_dir", lambda: tune_cli.INSTALLED_CONFIGS)  # as in a wheel
    with pytest.raises(SystemExit, match="installed .* --write-config DIR"):
        main(["tune", "bpr", "ml-100k-kg", "--trials", "1", "--results", str(tmp_path / "results")])
    assert not (tmp_path / "results").exists()  # nothing ran


def test_trials_stopped_by_their_cap_are_said(tmp_path, monkeypatch):
    """A cap too short for the model (all the user's trial runs of issue 16 stopped by it) is said, trial by
    trial and for the best one, instead of a tuned record that looks converged."""
    d = _config_dir(tmp_path, SPACE)
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(d))
    fake = FakeExperiment()

    def capped(*a, **k):
        return {**fake(*a, **k), "epochs": 7, "best_epoch": 6, "stopped_by": "cap"}

    said = []
    tune("bpr", "ml-100k-kg", 1, results=tmp_path, storage=tmp_path / "s.sqlite3", experiment=capped,
         fingerprint=lambda m, ds: "0" * 64, log=said.append)
    assert sum("stopped at its cap of 7 epochs" in s for s in said) == 3  # two trials and the summary
    assert "the best trial stopped at its cap of 7 epochs" in said[-1] and "raise train.max_epochs" in said[-1]
    said.clear()
    tune("bpr", "ml-100k-kg", 1, results=tmp_path / "t", storage=tmp_path / "t.sqlite3", experiment=FakeExperiment(),
         fingerprint=lambda m, ds: "0" * 64, log=said.append)
    assert not any("cap" in s for s in said)


def test_a_study_resumes_only_under_the_same_fixed_configuration(tmp_path, monkeypatch):
    """The study key holds the sha of what a trial runs besides the searched values
    (``fixed_sha``): the same config resumes its study; a changed fixed model value, data
    section or converged schedule starts a new one; a changed tuned: record, bench section or
    comment does not."""
    from kgzoo.bench.tune import fixed_sha

    d = _config_dir(tmp_path, SPACE)
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(d))
    common = dict(results=tmp_path, storage=tmp_path / "s.sqlite3", fingerprint=lambda m, ds: "0" * 64, log=None)
    first = FakeExperiment()
    tune("bpr", "ml-100k-kg", 2, experiment=first, **common)
    assert len(first.calls) == 3  # 2 searched + the default trial
    again = FakeExperiment()
    tune("bpr", "ml-100k-kg", 2, experiment=again, **common)
    assert again.calls == []  # resumed: the budget is already spent
    space = parse_space(yaml.safe_load(SPACE)["tune"])
    sha = fixed_sha(ZooConfig.load("bpr", "ml-100k-kg"), space)
    same = ("# another comment\n" + SPACE + "bench: {max_epochs: 1}\ntuned: {params: {lr: 0.01}}\n")
    (d / "bpr" / "default.yaml").write_text(same)
    assert fixed_sha(ZooConfig.load("bpr", "ml-100k-kg"), space) == sha
    for changed in (SPACE.replace("embedding_dim: 8", "embedding_dim: 16"),
                    SPACE.replace("train:", "data: {batch_size: 64}\ntrain:"),
                    SPACE.replace("max_epochs: 7", "max_epochs: 9")):
        (d / "bpr" / "default.yaml").write_text(changed)
        assert fixed_sha(ZooConfig.load("bpr", "ml-100k-kg"), space) != sha
    (d / "bpr" / "default.yaml").write_text(SPACE.replace("embedding_dim: 8", "embedding_dim: 16"))
    fresh, said = FakeExperiment(), []
    rep = tune("bpr", "ml-100k-kg", 2, experiment=fresh, **dict(common, log=said.append))
    assert len(fresh.calls) == 3 and rep.complete == 2  # a new study: its own default and budget
    # and it says so before it spends a budget beside rows that look like its own
    assert "a new study (bpr/ml-100k-kg/" in said[0] and "holds 3 trials of 1 other studies of it" in said[0]
    said.clear()
    tune("bpr", "ml-100k-kg", 2, experiment=FakeExperiment(), **dict(common, log=said.append))
    assert not any("a new study" in x for x in said)  # resumed: nothing to say
    # a searched value changed in the model section is not part of the fixed configuration
    wider = SPACE.replace("embedding_dim: 8", "embedding_dim: 16")
    (d / "bpr" / "default.yaml").write_text(wider.replace("lr: 1.0e-3}", "lr: 2.0e-3}"))
    moved_lr = fixed_sha(ZooConfig.load("bpr", "ml-100k-kg"), space)
    (d / "bpr" / "default.yaml").write_text(wider)
    assert moved_lr == fixed_sha(ZooConfig.load("bpr", "ml-100k-kg"), space)


def test_the_trial_rows_go_to_the_checkout_from_any_working_directory(tmp_path, monkeypatch, capsys):
    """`--results` used to default to `benchmarks/results` under the working directory: run from
    elsewhere, the rows went to a stray folder there while the tuned: record went to the checkout."""
    from kgzoo.cli import main

    d = _config_dir(tmp_path, SPACE)
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(d))
    monkeypatch.setenv("KGZOO_HOME", str(tmp_path / "home"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    checkout = tmp_path / "checkout"
    monkeypatch.setattr("kgzoo.paths.checkout_dir", lambda: checkout)
    monkeypatch.setattr("kgzoo.bench.tune.run_experiment", FakeExperiment())
    monkeypatch.setattr("kgzoo.bench.tune._cell_fingerprint", lambda m, ds, protocol="": "0" * 64)
    assert main(["tune", "bpr", "ml-100k-kg", "--trials", "1", "--no-write-config",
                 "--storage", str(tmp_path / "s.sqlite3")]) == 0
    rows = checkout / "benchmarks" / "results" / "tuning" / "bpr-ml-100k-kg.jsonl"
    assert len(rows.read_text().splitlines()) == 2 and not list(elsewhere.iterdir())
    assert f"rows in {rows.resolve()}\n" in capsys.readouterr().out  # absolute, on one line
    # an installed kgzoo (no checkout): the user cache, beside the study's SQLite file
    monkeypatch.setattr("kgzoo.paths.checkout_dir", lambda: None)
    rep = tune("bpr", "ml-100k-kg", 1, storage=tmp_path / "s2.sqlite3", experiment=FakeExperiment(),
               fingerprint=lambda m, ds: "0" * 64, log=None)
    assert rep.rows == tmp_path / "home" / "runs" / "tuning" / "bpr-ml-100k-kg.jsonl" and rep.rows.is_file()


def test_the_tuned_comment_names_the_rows_relative_to_the_checkout(tmp_path, monkeypatch):
    """Run from elsewhere, the comment in the (committed) config names the rows beside it, not a machine's path."""
    checkout = tmp_path / "checkout"
    d = _config_dir(checkout, SPACE)  # checkout/configs, as zoo_configs/ in a checkout
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(d))
    monkeypatch.chdir(tmp_path)
    tune("bpr", "ml-100k-kg", 1, results=checkout / "benchmarks" / "results", storage=tmp_path / "s.sqlite3",
         experiment=FakeExperiment(), fingerprint=lambda m, ds: "0" * 64, write_config=d, log=None)
    text = (d / "bpr" / "ml-100k-kg.yaml").read_text()
    assert "trials in benchmarks/results/tuning/bpr-ml-100k-kg.jsonl" in text and str(tmp_path) not in text


class CurveExperiment(FakeExperiment):
    """A trial that reports a validation curve epoch by epoch through the pruning callbacks, as
    Lightning would; the 7th call (after the default trial and 5 searched ones) falls below the
    median, peaking at epoch 2."""

    GOOD = [0.5, 0.52, 0.55, 0.56, 0.57, 0.58, 0.58, 0.57]
    BAD = [0.10, 0.12, 0.15, 0.11, 0.10, 0.09, 0.08, 0.07]

    def __call__(self, model, dataset, *, seed, model_overrides, root, run_test, callbacks, out_dir, progress, resume):
        assert resume is True  # an interrupted trial's rerun goes on from its resume point
        curve = self.BAD if len(self.calls) == 6 else self.GOOD
        self.calls.append(dict(model_overrides, run_test=run_test))
        cbs = callbacks(SimpleNamespace(main_metric="ndcg@10"))
        trainer = SimpleNamespace(sanity_checking=False, current_epoch=0, callback_metrics={})
        for epoch, v in enumerate(curve):
            trainer.current_epoch, trainer.callback_metrics = epoch, {"valid/ndcg@10": v}
            for cb in cbs:
                cb.on_validation_end(trainer, None)
        return {"main_metric": "ndcg@10", "valid_metrics": {"valid/ndcg@10": max(curve)}, "epochs": len(curve),
                "best_epoch": curve.index(max(curve)), "stopped_by": "early_stopping"}


def test_a_pruned_trial_row_carries_its_epochs_best_epoch_and_monitor(tmp_path, monkeypatch):
    """A pruned trial's row said `epochs: null` (the epoch the pruner stopped it at was only in
    its `error` text): it carries the epochs it trained, its best epoch, the monitor and
    `stopped_by: pruner`, with the same keys as a complete trial's row, and its progress line says so."""
    d = _config_dir(tmp_path, SPACE)
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(d))
    said: list = []
    rep = tune("bpr", "ml-100k-kg", 6, results=tmp_path, storage=tmp_path / "s.sqlite3", experiment=CurveExperiment(),
               fingerprint=lambda m, ds: "0" * 64, log=said.append)
    assert (rep.complete, rep.pruned, rep.failed) == (5, 1, 0)
    rows = [json.loads(x) for x in (tmp_path / "tuning" / "bpr-ml-100k-kg.jsonl").read_text().splitlines()]
    (pruned,) = [r for r in rows if r["state"] == "PRUNED"]
    assert pruned["error"].startswith("pruned at epoch 5")  # the pruner stopped it in its 6th epoch (0-based 5)
    assert (pruned["epochs"], pruned["best_epoch"], pruned["stopped_by"]) == (6, 2, "pruner")
    assert pruned["monitor"] == "valid/ndcg@10" and pruned["value"] == pytest.approx(0.09)
    assert set(pruned) == set(rows[-2])  # the same fields as a complete row: old readers read both
    assert rows[0]["default"] and said[0].startswith("[defaults] bpr on ml-100k-kg trial 0 (the config's own values")
    assert f"trial {pruned['trial']}: pruned, 0.0900 after 6 epochs (best epoch 2)" in said[pruned["trial"]]


def test_the_tuned_file_header_names_the_record_written_once(tmp_path, monkeypatch):
    """Tuning into a folder of one's own copied the packaged dataset file with its header, under a
    new one: `# ...(3 trials)` above `# ...(10 trials)`, the second stale; a rewrite kept a header
    with the first study's count."""
    from kgzoo.bench.tune import TuneReport, write_tuned

    base = tmp_path / "base"
    (base / "bpr").mkdir(parents=True)
    (base / "bpr" / "ml-100k-kg.yaml").write_text(
        "# bpr on ml-100k-kg: default.yaml as it was, with the values kgzoo tune chose (10 trials)\n" + SPACE
        + "# chosen by `kgzoo tune` on the validation split only\ntuned:\n  params: {lr: 0.002}\n  trials: 10\n")
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(base))
    cfg = ZooConfig.load("bpr", "ml-100k-kg")
    mine = tmp_path / "mine"
    for n in (3, 5):
        rep = TuneReport("bpr", "ml-100k-kg", n, complete=n, best_value=0.25, best_params={"lr": 0.001},
                         monitor="valid/ndcg@10", rows=tmp_path / "rows.jsonl", default={"state": "COMPLETE"})
        text = write_tuned(mine, cfg, rep, cfg.schedule(quick=False), "study").read_text()
        assert text.splitlines()[0] == (f"# bpr on ml-100k-kg: ml-100k-kg.yaml as it was, with the values kgzoo "
                                        f"tune chose ({n} trials)")
        assert text.count("as it was") == 1 and text.count("tuned:") == 1 and "# BPR for the test" in text
        assert yaml.safe_load(text)["tuned"]["trials"] == n


def _rows(results):
    return [json.loads(x) for x in (results / "tuning" / "bpr-ml-100k-kg.jsonl").read_text().splitlines()]


def test_a_study_whose_sqlite_file_is_gone_resumes_from_its_rows_as_from_the_file(tmp_path, monkeypatch):
    """A new machine has the committed trial rows but not the study's SQLite file: the rows rebuild
    the study (same trials, values, curves), and it goes on drawing the points the file would have."""
    import shutil

    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(_config_dir(tmp_path, SPACE)))
    first = tmp_path / "first"
    common = dict(seed=1, fingerprint=lambda m, ds: "e" * 64, log=None)
    rep = tune("bpr", "ml-100k-kg", 6, results=first, storage=tmp_path / "a.sqlite3", experiment=CurveExperiment(),
               **common)
    assert rep.restored == 0 and rep.pruned == 1  # the curves made the pruner stop the 7th call
    rows = _rows(first)
    assert all(len(r["curve"]) == (0 if r["default"] else int(r["epochs"])) for r in rows)
    for name in ("kept", "lost"):
        shutil.copytree(first, tmp_path / name)
    shutil.copy(tmp_path / "a.sqlite3", tmp_path / "kept.sqlite3")
    kept = tune("bpr", "ml-100k-kg", 8, results=tmp_path / "kept", storage=tmp_path / "kept.sqlite3",
                experiment=CurveExperiment(), **common)
    lost = tune("bpr", "ml-100k-kg", 8, results=tmp_path / "lost", storage=tmp_path / "new.sqlite3",
                experiment=CurveExperiment(), **common)
    assert kept.restored == 0 and lost.restored == len(rows) == 7
    new = [{k: r[k] for k in ("trial", "state", "params", "value", "curve", "rerun_of")}
           for r in _rows(tmp_path / "kept")[7:]]
    assert len(new) == 2 and new == [{k: r[k] for k in new[0]} for r in _rows(tmp_path / "lost")[7:]]
    assert (kept.best_value, kept.best_params, kept.default) == (lost.best_value, lost.best_params, lost.default)
    a = optuna.load_study(study_name=rows[0]["study"], storage=f"sqlite:///{tmp_path / 'a.sqlite3'}").trials
    b = optuna.load_study(study_name=rows[0]["study"], storage=f"sqlite:///{tmp_path / 'new.sqlite3'}").trials[:7]
    assert [(t.number, t.state, t.value, t.params, t.intermediate_values, t.user_attrs.get("default"))
            for t in a] == [(t.number, t.state, t.value, t.params, t.intermediate_values,
                             t.user_attrs.get("default")) for t in b]


def test_a_trial_without_a_row_is_a_gap_and_a_bad_row_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(_config_dir(tmp_path, SPACE)))
    common = dict(seed=0, fingerprint=lambda m, ds: "e" * 64, log=None, experiment=FakeExperiment())
    tune("bpr", "ml-100k-kg", 3, results=tmp_path, storage=tmp_path / "a.sqlite3", **common)
    path = tmp_path / "tuning" / "bpr-ml-100k-kg.jsonl"
    rows = _rows(tmp_path)
    assert [r["trial"] for r in rows] == [0, 1, 2, 3]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows if r["trial"] != 2))  # killed before its row
    rep = tune("bpr", "ml-100k-kg", 3, results=tmp_path, storage=tmp_path / "b.sqlite3", **common)
    assert rep.restored == 3 and (rep.complete, rep.pruned, rep.failed) == (3, 0, 0)
    after = _rows(tmp_path)
    assert [(r["trial"], r["rerun_of"]) for r in after] == [(0, None), (1, None), (3, None), (4, None)]
    bad = dict(rows[1], params=dict(rows[1]["params"], reg_weight=0.5))
    path.write_text(json.dumps(rows[0]) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(ValueError, match=r"bpr-ml-100k-kg.jsonl:2: field 'params.reg_weight' = 0.5 lies outside"):
        tune("bpr", "ml-100k-kg", 3, results=tmp_path, storage=tmp_path / "c.sqlite3", **common)
    # nothing restored before the bad row: a half-restored file used to pass as the whole study
    name = rows[0]["study"]
    assert optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / 'c.sqlite3'}").trials == []
    path.write_text(json.dumps(rows[0]) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"jsonl:2: not a JSON trial row"):
        tune("bpr", "ml-100k-kg", 3, results=tmp_path, storage=tmp_path / "d.sqlite3", **common)


def test_every_committed_tuned_record_comes_back_from_its_rows():
    """The committed trial rows are enough to rebuild each study behind a committed ``tuned:``
    record (a new machine has no SQLite file): the restored study's best complete trial has the
    record's value and parameters, its default trial the record's number, state and value."""
    from pathlib import Path

    from kgzoo.bench.tune import _from_trial, fixed_sha, restore_rows
    from kgzoo.paths import checkout_dir

    if checkout_dir() is None:
        pytest.skip("an installed kgzoo has no committed rows")
    results = checkout_dir() / "benchmarks" / "results"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    checked = 0
    for path in sorted((checkout_dir() / "zoo_configs").glob("*/*.yaml")):
        tuned = (yaml.safe_load(path.read_text()) or {}).get("tuned") or {}
        if "study" not in tuned:  # untuned, or tuned: {from: SMALL}
            continue
        # <dataset>.yaml, or <dataset>@<protocol>.yaml: a study under another protocol (kgzoo tune --protocol)
        model, (dataset, _, protocol) = path.parent.name, path.stem.partition("@")
        cfg = ZooConfig.load(model, dataset, extra_dirs=[checkout_dir() / "zoo_configs"], protocol=protocol)
        assert cfg.path == path
        space = parse_space(cfg.tune)
        study = optuna.create_study(study_name=tuned["study"], direction="maximize")
        rows = results / "tuning" / f"{model}-{path.stem}.jsonl"
        restored, _ = restore_rows(study, rows, space, cfg, "a new machine")  # a legacy key's rows first
        assert restored >= tuned["trials"], f"{rows}: fewer rows than {path}'s record"
        done = [t for t in study.trials if t.state.name == "COMPLETE"]
        best = max(done, key=lambda t: t.value)
        (metric, value), = tuned["best_valid"].items()
        assert best.value == pytest.approx(value, abs=1e-6), path
        got = {p.name: _from_trial(p, best.params) for p in space}
        assert got.keys() == tuned["params"].keys(), path
        for k, v in tuned["params"].items():
            assert got[k] == (pytest.approx(v, rel=1e-5) if isinstance(v, float) else v), (path, k)
        default = next(t for t in study.trials if t.user_attrs.get("default"))
        assert (default.number, default.state.name) == (tuned["default"]["trial"], tuned["default"]["state"]), path
        parts = tuned["study"].split("/")
        if len(parts) == 6:  # a key with its fixed sha: today's configs must still find the study
            assert parts[4] == fixed_sha(cfg, space), path
        checked += 1
    assert checked >= 20  # every tuned cell of the tables so far


def _legacy_study(tmp_path, monkeypatch):
    """A finished 3-trial bpr study whose rows and record name its key as before the fixed sha
    joined keys (:func:`kgzoo.bench.tune.legacy_key`), as most committed studies do: ``(config
    folder, tune's common arguments, rows file, config file, today's key, the legacy key)``."""
    from kgzoo.bench.tune import legacy_key

    d = _config_dir(tmp_path, SPACE)
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(d))
    common = dict(seed=0, fingerprint=lambda m, ds: "e" * 64, log=None, results=tmp_path)
    tune("bpr", "ml-100k-kg", 3, storage=tmp_path / "a.sqlite3", experiment=FakeExperiment(), write_config=d,
         **common)
    rows_file, config = tmp_path / "tuning" / "bpr-ml-100k-kg.jsonl", d / "bpr" / "ml-100k-kg.yaml"
    key = _rows(tmp_path)[0]["study"]
    legacy = legacy_key(key)
    assert legacy is not None and legacy_key(legacy) is None
    for f in (rows_file, config):
        f.write_text(f.read_text().replace(key, legacy))
    return d, common, rows_file, config, key, legacy


def test_a_study_from_before_the_fixed_sha_is_found_through_the_configs_record(tmp_path, monkeypatch):
    """Most committed studies were keyed before the fixed sha joined the key; the config's tuned:
    record names that key. A new machine finds such a finished study through the record instead of
    tuning it anew (which would change the record and every converged row's config)."""
    d, common, rows_file, config, key, legacy = _legacy_study(tmp_path, monkeypatch)
    fresh = FakeExperiment()
    rep = tune("bpr", "ml-100k-kg", 3, storage=tmp_path / "b.sqlite3", experiment=fresh, write_config=d, **common)
    assert fresh.calls == [] and rep.restored == 4 and (rep.complete, rep.pruned, rep.failed) == (3, 0, 0)
    assert yaml.safe_load(config.read_text())["tuned"]["study"] == key  # the record names today's key now
    assert all(r["study"] == legacy for r in _rows(tmp_path))  # nothing ran: the rows are the legacy ones still
    # the record names today's key now, and the legacy key as the trials it extends: found again
    assert yaml.safe_load(config.read_text())["tuned"]["extends"] == legacy
    more = FakeExperiment()  # one trial more, under today's key (KGCN's tenth distinct point, session 16)
    rep = tune("bpr", "ml-100k-kg", 4, storage=tmp_path / "d.sqlite3", experiment=more, write_config=d, **common)
    assert rep.restored == 4 and len(more.calls) == 1 and (rep.complete, rep.pruned, rep.failed) == (4, 0, 0)
    assert [r["study"] for r in _rows(tmp_path)] == [legacy] * 4 + [key]
    tuned = yaml.safe_load(config.read_text())["tuned"]
    assert (tuned["study"], tuned["extends"], tuned["trials"]) == (key, legacy, 4)
    again = FakeExperiment()  # a new machine: the legacy rows first, today's key's row extends them
    rep = tune("bpr", "ml-100k-kg", 4, storage=tmp_path / "e.sqlite3", experiment=again, write_config=d, **common)
    assert again.calls == [] and rep.restored == 5 and (rep.complete, rep.pruned, rep.failed) == (4, 0, 0)
    assert yaml.safe_load(config.read_text())["tuned"] == tuned | {"date": tuned["date"]}
    config.write_text(config.read_text().replace(key, "bpr/ml-100k-kg/other/study/seed0"))  # a record of another study
    rows_file.write_text("".join(ln + "\n" for ln in rows_file.read_text().splitlines() if key not in ln))
    other = FakeExperiment()
    rep = tune("bpr", "ml-100k-kg", 1, storage=tmp_path / "c.sqlite3", experiment=other, **common)
    assert rep.restored == 0 and len(other.calls) == 2  # legacy rows that no record vouches for: a new study


def test_rows_extend_a_study_that_holds_their_first_trials_and_refuse_one_that_went_another_way(tmp_path,
                                                                                               monkeypatch):
    """A machine whose SQLite file holds the first trials of a study that went on from its rows
    elsewhere: restoring was skipped (the study was not empty), so it ran the trials the rows
    already held once more and wrote their numbers twice. The rows now extend it; a machine cut
    off in a trial that the rows hold finished (another point) is told to rebuild from the rows."""
    import shutil

    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(_config_dir(tmp_path, SPACE)))
    common = dict(seed=0, fingerprint=lambda m, ds: "e" * 64, log=None, results=tmp_path / "res")
    tune("bpr", "ml-100k-kg", 2, storage=tmp_path / "b.sqlite3", experiment=FakeExperiment(), **common)
    shutil.copy(tmp_path / "b.sqlite3", tmp_path / "c.sqlite3")
    cut: list = []
    with pytest.raises(KeyboardInterrupt):  # machine c is cut off in trial 3
        tune("bpr", "ml-100k-kg", 3, storage=tmp_path / "c.sqlite3", experiment=_killed_lane(cut), **common)
    there = tune("bpr", "ml-100k-kg", 4, storage=tmp_path / "a.sqlite3", experiment=FakeExperiment(), **common)
    assert there.restored == 3  # machine a: no file, the rows of b's 3 trials, then trials 3 and 4
    back, said = FakeExperiment(), []
    rep = tune("bpr", "ml-100k-kg", 4, storage=tmp_path / "b.sqlite3", experiment=back,
               **dict(common, log=said.append))
    assert back.calls == [] and rep.restored == 2 and "held only its first 3 trials" in said[0]
    assert [r["trial"] for r in _rows(tmp_path / "res")] == [0, 1, 2, 3, 4]
    assert (rep.best_value, rep.best_params, rep.default) == (there.best_value, there.best_params, there.default)
    with pytest.raises(ValueError, match=r"jsonl:4: trial 3 is COMPLETE .* in its rows but RUNNING .*c\.sqlite3"):
        tune("bpr", "ml-100k-kg", 4, storage=tmp_path / "c.sqlite3", experiment=FakeExperiment(), **common)


def test_a_trial_written_twice_is_one_trial_or_two_histories(tmp_path, monkeypatch):
    """The same row twice (a merge) restores one trial; another row under the same number is a
    second history of the study, which restoring used to mix in silently (the first row won)."""
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(_config_dir(tmp_path, SPACE)))
    common = dict(seed=0, fingerprint=lambda m, ds: "e" * 64, log=None, results=tmp_path)
    tune("bpr", "ml-100k-kg", 2, storage=tmp_path / "a.sqlite3", experiment=FakeExperiment(), **common)
    path = tmp_path / "tuning" / "bpr-ml-100k-kg.jsonl"
    rows = _rows(tmp_path)
    path.write_text("".join(json.dumps(r) + "\n" for r in [*rows, rows[2]]))
    assert tune("bpr", "ml-100k-kg", 2, storage=tmp_path / "b.sqlite3", experiment=FakeExperiment(),
                **common).restored == 3
    other = dict(rows[2], params=dict(rows[2]["params"], lr=0.05), value=0.1)
    path.write_text("".join(json.dumps(r) + "\n" for r in [*rows, other]))
    with pytest.raises(ValueError, match=r"jsonl:4: field 'trial' 2 is written twice \(line 3 too\)"):
        tune("bpr", "ml-100k-kg", 2, storage=tmp_path / "c.sqlite3", experiment=FakeExperiment(), **common)


def test_a_dataset_warm_up_holds_the_pruner_too(tmp_path, monkeypatch):
    """lastfm-social's warm-up (100 epochs) is there because curves sit on a plateau before they
    climb; the median pruner stopped a trial on it from epoch 5 all the same (the 7th call's curve,
    below the median from its first epoch, pruned on ml-100k-kg). On lastfm-social it completes,
    and its row names the pruner's warm-up."""
    space = SPACE.replace("max_epochs: 7", "max_epochs: 300")
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(_config_dir(tmp_path, space)))
    common = dict(seed=1, fingerprint=lambda m, ds: "e" * 64, log=None, storage=tmp_path / "s.sqlite3")
    for dataset, pruned, pruner in (("ml-100k-kg", 1, "MedianPruner(5, 5)"),
                                    ("lastfm-social", 0, "MedianPruner(5, 99)")):
        rep = tune("bpr", dataset, 6, results=tmp_path / dataset, experiment=CurveExperiment(), **common)
        path = tmp_path / dataset / "tuning" / f"bpr-{dataset}.jsonl"
        rows = [json.loads(x) for x in path.read_text().splitlines()]
        assert rep.pruned == pruned and {r["pruner"] for r in rows} == {pruner}, dataset


def test_a_torn_row_does_not_stop_a_study_that_its_sqlite_file_holds(tmp_path, monkeypatch):
    """A torn line in the rows (a crash while writing; the next row starts a new line after it) is
    an error where the rows rebuild the study, but a study resumed from its SQLite file does not
    read them: reading every rows file to see whether it extends the study must not stop it."""
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(_config_dir(tmp_path, SPACE)))
    common = dict(seed=0, fingerprint=lambda m, ds: "e" * 64, log=None, results=tmp_path)
    tune("bpr", "ml-100k-kg", 2, storage=tmp_path / "a.sqlite3", experiment=FakeExperiment(), **common)
    path = tmp_path / "tuning" / "bpr-ml-100k-kg.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:2], lines[2][:40], *lines[2:]]) + "\n")
    fake = FakeExperiment()
    assert tune("bpr", "ml-100k-kg", 3, storage=tmp_path / "a.sqlite3", experiment=fake, **common).complete == 3
    assert len(fake.calls) == 1
    with pytest.raises(ValueError, match=r"bpr-ml-100k-kg.jsonl:3: not a JSON trial row"):
        tune("bpr", "ml-100k-kg", 3, storage=tmp_path / "b.sqlite3", experiment=FakeExperiment(), **common)


def test_a_name_the_model_does_not_take_stops_the_study_before_any_trial(tmp_path, monkeypatch):
    """A typo in the space (``reg_weigth``) or the config's model section ran the default trial
    and the whole budget as failed trials, each printed as a bare ``fail``, the reason only in
    the rows file: now it is one error naming the file and the section, before any trial."""
    d = _config_dir(tmp_path, SPACE.replace("  reg_weight: {", "  reg_weigth: {"))
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(d))
    fake = FakeExperiment()
    common = dict(results=tmp_path, storage=tmp_path / "s.sqlite3", fingerprint=lambda m, ds: "0" * 64, log=None)
    path = d / "bpr" / "default.yaml"
    with pytest.raises(ValueError, match=f"^{path}: tune: model 'bpr' takes no hyper-parameter 'reg_weigth'; "
                                         r"known: .* \(did you mean 'reg_weight'\?\)$"):
        tune("bpr", "ml-100k-kg", 2, experiment=fake, **common)
    path.write_text(SPACE.replace("reg_weight: 1.0e-4,", "reg_weigth: 1.0e-4,"))
    with pytest.raises(ValueError, match=f"^{path}: model: model 'bpr' takes no hyper-parameter 'reg_weigth'"):
        tune("bpr", "ml-100k-kg", 2, experiment=fake, **common)
    assert fake.calls == [] and not (tmp_path / "tuning").exists()


def test_a_failed_trial_says_why_in_its_progress_line(tmp_path, monkeypatch):
    d = _config_dir(tmp_path, SPACE)
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(d))
    lines = []

    def broken(*a, **k):
        raise RuntimeError("diverged")

    tune("bpr", "ml-100k-kg", 1, results=tmp_path, storage=tmp_path / "s.sqlite3", experiment=broken,
         fingerprint=lambda m, ds: "0" * 64, log=lines.append)
    fails = [x for x in lines if x.startswith("[")]
    assert len(fails) == 2 and all(": fail {" in x and x.endswith("; RuntimeError: diverged") for x in fails)


def test_a_protocols_file_is_rewritten_in_place_and_keeps_what_a_user_wrote(tmp_path):
    """A second study under the same protocol replaces the protocol file's header and tuned: record
    (none stacked) and keeps a section a user added there (it overrides the dataset file's)."""
    from kgzoo.bench.tune import TuneReport, write_tuned

    d = _config_dir(tmp_path, SPACE)
    cfg = ZooConfig.load("bpr", "ml-100k-kg", [d], protocol="split=cold_item")
    report = TuneReport("bpr", "ml-100k-kg", 2, rows=tmp_path / "rows.jsonl")
    report.best_params, report.monitor, report.best_value = {"lr": 0.02}, "valid/ndcg@10", 0.5
    report.default = {"state": "COMPLETE", "value": 0.4, "trial": 0, "chosen": False}
    path = write_tuned(d, cfg, report, cfg.schedule(), "bpr/ml-100k-kg/x/y/z/seed0")
    assert path == d / "bpr" / "ml-100k-kg@split=cold_item.yaml" and list(yaml.safe_load(path.read_text())) == ["tuned"]
    path.write_text(path.read_text() + "train: {max_epochs: 4}\n")  # a user's own cap for this protocol
    report.best_params = {"lr": 0.03}
    write_tuned(d, cfg, report, cfg.schedule(), "bpr/ml-100k-kg/x/y/z/seed0")
    text = path.read_text()
    assert text.count("laid over its ml-100k-kg config") == 1 and text.count("tuned:") == 1
    again = ZooConfig.load("bpr", "ml-100k-kg", [d], protocol="split=cold_item")
    assert again.model["lr"] == 0.03 and again.schedule().max_epochs == 4 and again.tune == cfg.tune
    assert ZooConfig.load("bpr", "ml-100k-kg", [d]).schedule().max_epochs == 7  # the default protocol's


def test_a_study_restored_from_a_legacy_key_by_an_older_kgzoo_keeps_extends_when_it_goes_on(tmp_path, monkeypatch):
    """A lane's SQLite file into which a kgzoo before the ``legacy`` mark restored a legacy key's
    rows (under today's key, through the config's record) holds those trials unmarked. Run on there,
    the study's record must still name the legacy key as ``extends``: without it a new machine
    restores today's key's rows alone (gaps where the legacy trials were) and tunes the study anew."""
    from kgzoo.bench.tune import parse_space, restore_study

    d, common, rows_file, config, key, legacy = _legacy_study(tmp_path, monkeypatch)
    common["write_config"] = d
    # the older kgzoo's restore: the legacy rows as today's key's first trials, with no 'legacy' mark
    mem = optuna.create_study(study_name=legacy, direction="maximize")
    assert restore_study(mem, rows_file, parse_space(yaml.safe_load(SPACE)["tune"])) == 4
    storage = tmp_path / "lane.sqlite3"
    optuna.create_study(study_name=key, storage=f"sqlite:///{storage}", direction="maximize").add_trials(mem.trials)
    more = FakeExperiment()
    rep = tune("bpr", "ml-100k-kg", 4, storage=storage, experiment=more, **common)
    assert len(more.calls) == 1 and rep.extends == legacy
    tuned = yaml.safe_load(config.read_text())["tuned"]
    assert (tuned["study"], tuned.get("extends"), tuned["trials"]) == (key, legacy, 4)
    again = FakeExperiment()  # a new machine finds the study finished
    rep = tune("bpr", "ml-100k-kg", 4, storage=tmp_path / "new.sqlite3", experiment=again, **common)
    assert again.calls == [] and rep.restored == 5
    assert yaml.safe_load(config.read_text())["tuned"]["best_valid"] == tuned["best_valid"]


def test_a_record_that_extends_a_legacy_key_whose_rows_are_gone_is_an_error_not_a_new_study(tmp_path, monkeypatch):
    """The record names today's key and ``extends`` a legacy key, but the rows file lost that key's
    rows: today's key's rows alone restored with gaps for the legacy trials, and the study was tuned
    anew (its default trial again) over the committed record. It is an error, before any trial."""
    d, common, rows_file, config, key, legacy = _legacy_study(tmp_path, monkeypatch)
    common["write_config"] = d
    tune("bpr", "ml-100k-kg", 4, storage=tmp_path / "b.sqlite3", experiment=FakeExperiment(), **common)
    record = config.read_text()
    assert yaml.safe_load(record)["tuned"]["extends"] == legacy
    rows_file.write_text("".join(ln + "\n" for ln in rows_file.read_text().splitlines() if f'"{legacy}"' not in ln))
    fresh = FakeExperiment()
    with pytest.raises(ValueError, match="holds no trial row of"):
        tune("bpr", "ml-100k-kg", 4, storage=tmp_path / "c.sqlite3", experiment=fresh, **common)
    assert fresh.calls == [] and config.read_text() == record


def test_a_budget_above_a_finite_space_is_refused_before_any_trial(tmp_path, monkeypatch):
    """A repeated point is counted once, so a budget above a finite space's distinct points never
    ended: the loop trained the same points again without end (2 points, budget 5: 31+ trials)."""
    from kgzoo.bench.tune import space_size

    d = _config_dir(tmp_path, "model: {embedding_dim: 8, reg_weight: 1.0e-4, lr: 1.0e-3}\n"
                              "train: {max_epochs: 7, patience: 2}\n"
                              "tune:\n  reg_weight: {choices: [0.0, 1.0e-4]}\n  n: {low: 1, high: 5, int: true, step: 2}\n")
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(d))
    assert space_size(parse_space({"reg_weight": {"choices": [0.0, 1.0e-4]}, "n": {"low": 1, "high": 5, "int": True,
                                                                                "step": 2}})) == 6
    assert space_size(parse_space(yaml.safe_load(SPACE)["tune"])) is None  # a float range: unbounded
    fake = FakeExperiment()
    with pytest.raises(ValueError, match=r"budget of 7 trials exceeds the 6 distinct points"):
        tune("bpr", "ml-100k-kg", 7, seed=0, results=tmp_path / "r", storage=tmp_path / "s.sqlite3",
             experiment=fake, fingerprint=lambda m, ds: "f" * 64, log=None)
    assert fake.calls == []
