"""kgzoo.config.ZooConfig: overlaid config folders, sections, the one schedule merge, sha,
and the parent's config for a registered subclass without one."""
from __future__ import annotations

from pathlib import Path

import pytest

from kgzoo.config import Schedule, ZooConfig
from kgzoo.models.mf import BPRMF
from kgzoo.paths import packaged_config_dir
from kgzoo.registry import MODELS, register_model

CFG = """model: {embedding_dim: 32, lr: 0.001, ks: [10, 20]}
data: {batch_size: 512}
train: {max_epochs: 300, patience: 10}
bench: {max_epochs: 3}
"""


def write(root: Path, model: str, name: str, text: str) -> Path:
    p = root / model / f"{name}.yaml"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


@pytest.fixture(autouse=True)
def no_user_dirs(monkeypatch):
    monkeypatch.delenv("KGZOO_CONFIG_DIR", raising=False)


def test_packaged_config_is_read():
    cfg = ZooConfig.load("lightgcn", "ml-1m-kg")
    assert cfg.path == packaged_config_dir() / "lightgcn" / "ml-1m-kg.yaml"
    # its own data section; its model takes the values tuned on ml-100k-kg (tuned: {from: ml-100k-kg})
    assert cfg.model["embedding_dim"] == 64 and cfg.data["batch_size"] == 8192 and cfg.inherited_from is None
    assert cfg.model["n_layers"] == ZooConfig.load("lightgcn", "ml-100k-kg").model["n_layers"]
    dflt = ZooConfig.load("lightgcn", "mind-kg")  # no dataset file: default.yaml
    assert dflt.path == packaged_config_dir() / "lightgcn" / "default.yaml" and dflt.data["batch_size"] == 2048
    assert ZooConfig.load("lightgcn").path == dflt.path


def test_user_dirs_overlay_the_packaged_ones(tmp_path, monkeypatch):
    env, extra = tmp_path / "env", tmp_path / "extra"
    mine = write(env, "lightgcn", "ml-1m-kg", "model: {n_layers: 2}\n")
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(env))
    assert ZooConfig.load("lightgcn", "ml-1m-kg").path == mine
    # the other models keep their packaged configs (KGZOO_CONFIG_DIR adds, it does not replace)
    assert ZooConfig.load("bpr", "mind-kg").path == packaged_config_dir() / "bpr" / "default.yaml"
    assert ZooConfig.load("lightgcn", "mind-kg").path == packaged_config_dir() / "lightgcn" / "default.yaml"
    # extra dirs come after $KGZOO_CONFIG_DIR
    later = write(extra, "lightgcn", "ml-1m-kg", "model: {n_layers: 4}\n")
    cfg = ZooConfig.load("lightgcn", "ml-1m-kg", extra_dirs=[extra])
    assert cfg.path == later and cfg.model == {"n_layers": 4}  # a whole file overrides, no section merge
    # a dataset file anywhere beats a default.yaml anywhere
    write(extra, "lightgcn", "default", "model: {n_layers: 5}\n")
    assert ZooConfig.load("lightgcn", "ml-1m-kg", extra_dirs=[extra]).path == later
    assert ZooConfig.load("lightgcn", "mind-kg", extra_dirs=[extra]).model == {"n_layers": 5}


def test_sections_and_errors(tmp_path):
    write(tmp_path, "m", "d", CFG + "tune: {lr: {low: 1.0e-4, high: 1.0e-2, log: true}}\npaper: {metrics: {x: 1}}\n")
    cfg = ZooConfig.load("m", "d", extra_dirs=[tmp_path])
    assert cfg.tune == {"lr": {"low": 1e-4, "high": 1e-2, "log": True}} and cfg.paper == {"metrics": {"x": 1}}
    assert (cfg.model_name, cfg.dataset) == ("m", "d")
    bad = write(tmp_path, "m", "d", CFG + "trainer: {max_epochs: 3}\n")
    with pytest.raises(ValueError, match=f"{bad}: unknown section 'trainer'"):
        ZooConfig.load("m", "d", extra_dirs=[tmp_path])
    write(tmp_path, "m", "d", "model: [1, 2]\n")
    with pytest.raises(ValueError, match="d.yaml: section 'model' must be a mapping"):
        ZooConfig.load("m", "d", extra_dirs=[tmp_path])
    write(tmp_path, "m", "d", "model: {a: 1\n")
    with pytest.raises(ValueError, match="d.yaml: invalid YAML"):
        ZooConfig.load("m", "d", extra_dirs=[tmp_path])
    write(tmp_path, "m", "d", "- model\n")
    with pytest.raises(ValueError, match="d.yaml: expected a mapping of sections"):
        ZooConfig.load("m", "d", extra_dirs=[tmp_path])


def test_no_config_at_all_is_empty():
    cfg = ZooConfig.load("not-a-registered-model", "ml-100k-kg")
    assert cfg.path is None and cfg.inherited_from is None and cfg.model == cfg.train == cfg.tune == {}
    assert cfg.schedule() == Schedule(quick=False, max_epochs=100, patience=10, monitor=None)


def test_schedule_merge(tmp_path):
    write(tmp_path, "m", "d", CFG)
    cfg = ZooConfig.load("m", "d", extra_dirs=[tmp_path])
    assert cfg.schedule() == Schedule(quick=False, max_epochs=300, patience=10, monitor=None)
    assert cfg.schedule(quick=True) == Schedule(quick=True, max_epochs=3, patience=10, monitor=None)
    assert cfg.schedule(True, max_epochs=7, patience=2, monitor="recall@20") == Schedule(True, 7, 2, "recall@20")
    write(tmp_path, "m", "d", "train: {max_epochs: 300}\nbench: {patience: 1.5, monitor: ndcg@10}\n")
    cfg = ZooConfig.load("m", "d", extra_dirs=[tmp_path])
    assert cfg.schedule() == Schedule(False, 300, 10, None)
    with pytest.raises(ValueError, match=r"d.yaml: bench/train.patience=1.5 must be an integer >= 0"):
        cfg.schedule(quick=True)
    assert cfg.schedule(quick=True, patience=0) == Schedule(True, 300, 0, "ndcg@10")
    with pytest.raises(ValueError, match="max_epochs=0 must be an integer >= 1"):
        cfg.schedule(max_epochs=0)


def test_sha_is_stable(tmp_path):
    """The values of the former ``bench.runner.cell_config_sha`` for the same inputs (so that
    ``--resume`` still matches committed rows); computed with that function before it moved."""
    write(tmp_path, "mymodel", "ml-100k-kg", CFG)
    cfg = ZooConfig.load("mymodel", "ml-100k-kg", extra_dirs=[tmp_path])
    assert cfg.sha(schedule=cfg.schedule(quick=True)) == "eb8242f2330671e6"
    assert cfg.sha() == cfg.sha({}, cfg.schedule(quick=False)) == "0e8eb59afba8a268"
    assert cfg.sha({"embedding_dim": 64}, cfg.schedule(quick=True)) == "17e9ea17096f8400"
    assert cfg.sha({"embedding_dim": 64}, cfg.schedule(quick=False, max_epochs=7)) == "2ba9cff98fb30e0a"
    # patience and monitor are not part of it (as before); the section contents are
    assert cfg.sha() == cfg.sha(schedule=cfg.schedule(patience=3))
    write(tmp_path, "mymodel", "ml-100k-kg", CFG.replace("512", "256"))
    assert ZooConfig.load("mymodel", "ml-100k-kg", extra_dirs=[tmp_path]).sha() != "0e8eb59afba8a268"


@pytest.fixture
def subclasses():
    """``mybpr`` (a BPRMF subclass) and ``mybpr2`` (a subclass of it), registered for one test."""

    class MyBPR(BPRMF):
        pass

    class MyBPR2(MyBPR):
        pass

    register_model("mybpr", family="mf", paper="test")(MyBPR)
    register_model("mybpr2", family="mf", paper="test")(MyBPR2)
    yield
    for name in ("mybpr", "mybpr2"):
        MODELS._entries.pop(name)


def test_subclass_inherits_the_parents_config(subclasses, tmp_path):
    bpr = ZooConfig.load("bpr", "ml-100k-kg")
    cfg = ZooConfig.load("mybpr", "ml-100k-kg")
    assert cfg.inherited_from == "bpr" and cfg.path == bpr.path and cfg.model == bpr.model
    assert cfg.model_name == "mybpr"
    # mybpr has no config either: mybpr2 goes on to bpr ...
    assert ZooConfig.load("mybpr2", "ml-100k-kg").inherited_from == "bpr"
    # ... until the nearest parent has one
    own = write(tmp_path, "mybpr", "default", "model: {embedding_dim: 8}\n")
    cfg2 = ZooConfig.load("mybpr2", "ml-100k-kg", extra_dirs=[tmp_path])
    assert (cfg2.inherited_from, cfg2.path) == ("mybpr", own)
    mine = ZooConfig.load("mybpr", "ml-100k-kg", extra_dirs=[tmp_path])
    assert (mine.inherited_from, mine.path) == (None, own)


def test_a_subclass_tuned_under_a_protocol_keeps_its_parents_config(subclasses, tmp_path):
    """``kgzoo tune mybpr ml-100k-kg --protocol split=cold_item`` (mybpr: no config of its own)
    writes ``mybpr/ml-100k-kg@split=cold_item.yaml`` holding its ``tuned:`` record alone, laid over
    the config mybpr takes, bpr's: that file was laid over no file (mybpr has no dataset file),
    so the protocol's cells trained mybpr with its constructor's defaults, no epoch cap of the
    config and no ``tune:`` space (a second study: "nothing to search")."""
    from kgzoo.bench.tune import _write_record

    bpr = ZooConfig.load("bpr", "ml-100k-kg")
    inherited = ZooConfig.load("mybpr", "ml-100k-kg", protocol="split=cold_item")
    # bpr's config under that protocol (its packaged cold-item record, where a study wrote one)
    assert inherited.inherited_from == "bpr"
    assert inherited.model == ZooConfig.load("bpr", "ml-100k-kg", protocol="split=cold_item").model
    own = _write_record(tmp_path, inherited, {"params": {"lr": 0.005, "reg_weight": 1.0e-5}}, "a study", "rows")
    assert own == tmp_path / "mybpr" / "ml-100k-kg@split=cold_item.yaml"
    cold = ZooConfig.load("mybpr", "ml-100k-kg", [tmp_path], protocol="split=cold_item")
    assert cold.path == own and cold.model == {**bpr.model, "lr": 0.005, "reg_weight": 1.0e-5}
    assert (cold.data, cold.train, cold.bench, cold.tune) == (bpr.data, bpr.train, bpr.bench, bpr.tune)
    assert cold.tune_path == bpr.tune_path and cold.defaults == bpr.defaults
    assert ZooConfig.load("mybpr", "ml-100k-kg", [tmp_path]).model == bpr.model  # the default protocol's, as it was


def test_a_subclasss_study_copies_its_parents_file_without_the_parents_numbers_and_note(subclasses, tmp_path):
    """``kgzoo tune mybpr ml-100k-kg`` (no config of its own) copies bpr's file into
    ``mybpr/ml-100k-kg.yaml``: the copy kept bpr's ``reference:`` (RecBole's BPR, 0.2928), so the
    subclass's rows and leaderboard line showed RecBole's BPR number as its own reference, which
    the README says a subclass goes without. The copy keeps the schedule and search space, not the
    parent's paper, reference or note; a second study keeps the one header line."""
    from kgzoo.bench.tune import _write_record

    bpr = ZooConfig.load("bpr", "ml-100k-kg")
    assert bpr.reference_for("ml-100k-kg")  # the parent has a reference number on the dataset
    inherited = ZooConfig.load("mybpr", "ml-100k-kg")
    own = _write_record(tmp_path, inherited, {"params": {"lr": 0.005}}, "a study", "rows")
    cfg = ZooConfig.load("mybpr", "ml-100k-kg", [tmp_path])
    assert cfg.path == own and cfg.inherited_from is None
    assert cfg.reference_for("ml-100k-kg") is None and not cfg.paper and not cfg.note
    assert (cfg.data, cfg.train, cfg.bench, cfg.tune) == (bpr.data, bpr.train, bpr.bench, bpr.tune)
    assert cfg.model == {**bpr.defaults, "lr": 0.005}
    text = own.read_text()
    assert text.startswith("# mybpr on ml-100k-kg: bpr/ml-100k-kg.yaml as it was, with a study\n")
    assert "RecBole" not in text.split("tune:")[1] and "reference" not in text
    _write_record(tmp_path, cfg, {"params": {"lr": 0.004}}, "a second study", "rows")
    again = own.read_text()
    assert again.count("as it was") == 1 and again.startswith("# mybpr on ml-100k-kg: bpr/ml-100k-kg.yaml as it was")


def test_create_model_uses_the_inherited_config(subclasses, tmp_path, monkeypatch):
    import kgzoo

    write(tmp_path, "bpr", "default", "model: {embedding_dim: 12}\n")
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(tmp_path))
    m = kgzoo.create_model("mybpr", sizes={"n_users": 50, "n_items": 70})
    assert type(m).__name__ == "MyBPR" and m.hparams["embedding_dim"] == 12


def test_paper_numbers_say_on_which_dataset(tmp_path, monkeypatch):
    # kgat's config keys the paper's numbers by the paper's datasets, none of them a kgzoo one;
    # kgat/ml-100k-kg.yaml has no paper section: the paper's numbers come from kgat/default.yaml
    cfg = ZooConfig.load("kgat", "ml-100k-kg")
    assert cfg.path.name == "ml-100k-kg.yaml" and cfg.paper_path == packaged_config_dir() / "kgat" / "default.yaml"
    numbers, paper_dataset, note = cfg.paper_numbers("ml-100k-kg")
    assert paper_dataset == "amazon-book" and numbers == {"recall@20": 0.1489, "ndcg@20": 0.1006}
    assert "measured by the paper on amazon-book" in note and "KDD 2019" in note
    assert "this run is on ml-100k-kg, another dataset" in note and "also gives" in note and "yelp2018" in note
    # a dataset file with flat numbers: the paper measured that dataset
    numbers, paper_dataset, note = ZooConfig.load("kgcn", "lastfm-kg").paper_numbers("lastfm-kg")
    assert (numbers, paper_dataset) == ({"auc": 0.794, "f1": 0.719}, "lastfm-kg") and "another dataset" not in note
    # keyed by a kgzoo dataset: the run's own dataset is chosen over the first listed
    user = tmp_path / "cfg"
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(user))
    write(user, "bpr", "default", "paper:\n  metrics:\n    book: {ndcg@10: 0.2}\n    ml-1m-kg: {ndcg@10: 0.3}\n")
    assert ZooConfig.load("bpr", "ml-1m-kg").paper_numbers("ml-1m-kg")[:2] == ({"ndcg@10": 0.3}, "ml-1m-kg")
    assert ZooConfig.load("bpr", "ml-100k-kg").paper_numbers("ml-100k-kg")[:2] == ({"ndcg@10": 0.2}, "book")
    # no numbers: said so, with the source where there is one
    assert ZooConfig.load("transr", "ml-100k-kg").paper_numbers("ml-100k-kg")[:2] == ({}, None)
    assert "no paper numbers" in ZooConfig.load("transr").paper_numbers("ml-100k-kg").note
    # malformed sections name the file and field
    bad = {"flat numbers in default.yaml": ("paper:\n  metrics: {ndcg@10: 0.2}\n", "without a dataset"),
           "a string": ("paper:\n  metrics:\n    book: {ndcg@10: high}\n", r"paper.metrics.book.ndcg@10 must be a number"),
           "mixed": ("paper:\n  metrics: {ndcg@10: 0.2, book: {ndcg@10: 0.1}}\n", "mixes numbers"),
           "a list": ("paper:\n  metrics: [0.2]\n", "must be a mapping")}
    for text, match in bad.values():
        path = write(user, "bpr", "default", text)
        with pytest.raises(ValueError, match=match) as err:
            ZooConfig.load("bpr", "ml-100k-kg").paper_numbers("ml-100k-kg")
        assert str(path) in str(err.value)


def test_reference_numbers_only_on_their_own_dataset(tmp_path, monkeypatch):
    # the packaged kgat/ml-100k-kg.yaml has no reference section: RecBole's number comes from default.yaml
    cfg = ZooConfig.load("kgat", "ml-100k-kg")
    assert cfg.reference_path == packaged_config_dir() / "kgat" / "default.yaml"
    ref = cfg.reference_for("ml-100k-kg")
    assert ref["metrics"] == {"ndcg@10": 0.2734} and "RecBole 1.2.1 KGAT" in ref["source"]
    assert ZooConfig.load("kgat", "ml-1m-kg").reference_for("ml-1m-kg") is None  # never another dataset's
    assert ZooConfig.load("gat", "ml-100k-kg").reference_for("ml-100k-kg") is None
    user = tmp_path / "cfg"
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(user))
    for text, match in {"reference:\n  mind-kg: {metrics: {ndcg@10: high}, source: x}\n": "metrics.ndcg@10 must be a number",
                        "reference:\n  mind-kg: {metrics: {ndcg@10: 0.2}}\n": "metrics .* and source"}.items():
        path = write(user, "bpr", "default", text)  # mind-kg has no packaged bpr file: default.yaml counts
        with pytest.raises(ValueError, match=match) as err:
            ZooConfig.load("bpr", "mind-kg").reference_for("mind-kg")
        assert str(path) in str(err.value)


def test_tuned_from_the_same_domains_small_set(tmp_path, monkeypatch):
    user = tmp_path / "cfg"
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(user))
    write(user, "bpr", "ml-100k-kg", CFG + "tuned:\n  params: {lr: 0.0042}\n  trials: 10\n  study: s\n")
    write(user, "bpr", "ml-1m-kg", CFG + "tuned: {from: ml-100k-kg}\n")
    cfg = ZooConfig.load("bpr", "ml-1m-kg")
    assert cfg.model["lr"] == 0.0042 and cfg.model["embedding_dim"] == 32
    assert cfg.tuned["dataset"] == "ml-100k-kg" and cfg.tuned["trials"] == 10
    assert cfg.sha() != ZooConfig.load("bpr", "ml-1m-kg", [write(tmp_path / "x", "bpr", "ml-1m-kg", CFG).parent.parent]).sha()
    for text, match in {"tuned: {from: ml-1m-kg}\n": "one other dataset",
                        "tuned: {from: ml-100k-kg, trials: 3}\n": "one other dataset",
                        "tuned: {from: mind-kg}\n": "no tuned: record of its own"}.items():
        path = write(user, "bpr", "ml-1m-kg", CFG + text)
        with pytest.raises(ValueError, match=match) as err:
            ZooConfig.load("bpr", "ml-1m-kg")
        assert str(path) in str(err.value)


def test_the_converged_schedule_takes_the_datasets_warm_up(tmp_path):
    """lastfm-social's converged schedule has a warm-up (DatasetSpec.min_epochs); the quick one, a
    fixed cap, a dataset without one and every sha from before it are unchanged."""
    from kgzoo.bench.cells import cell_schedule
    from kgzoo.data.datasets import dataset_spec

    warm = dataset_spec("lastfm-social").min_epochs
    assert warm == 100 and "plateau" in dataset_spec("lastfm-social").min_epochs_reason
    write(tmp_path, "mymodel", "lastfm-social", CFG)
    write(tmp_path, "mymodel", "ml-100k-kg", CFG)
    social = ZooConfig.load("mymodel", "lastfm-social", extra_dirs=[tmp_path])
    assert social.schedule() == Schedule(False, 300, 10, None, min_epochs=warm)
    assert social.schedule(quick=True).min_epochs == 0 and social.schedule(max_epochs=7).min_epochs == 0
    ml = ZooConfig.load("mymodel", "ml-100k-kg", extra_dirs=[tmp_path])
    assert ml.schedule().min_epochs == 0 and ml.sha() == "0e8eb59afba8a268"  # test_sha_is_stable's value
    assert social.sha() != social.sha(schedule=Schedule(False, 300, 10, None))  # the warm-up is in its sha
    write(tmp_path, "mymodel", "lastfm-social", "train: {max_epochs: 1}\n")  # Pop's one closed-form epoch
    assert ZooConfig.load("mymodel", "lastfm-social", extra_dirs=[tmp_path]).schedule().min_epochs == 1
    assert cell_schedule("bpr", "lastfm-social", quick=False)["min_epochs"] == warm
    assert "min_epochs" not in cell_schedule("bpr", "ml-100k-kg", quick=False)  # rows of other sets as before


def test_a_protocol_key_reads_back_as_the_protocol_it_names():
    """A protocol's key (its config file's ``@`` part, its tuning rows' name) is what ``kgzoo bench
    --protocol`` and ``kgzoo tune --protocol`` take: ``ratios=0.7-0.1-0.2`` was refused ("must be
    three non-negative fractions summing to 1"), and a list cannot be given between the commas
    that separate the fields, so no split other than 8:1:1 could be asked for there."""
    from kgzoo.protocols import parse_protocol, protocol_key
    from kgzoo.data.protocol import EvalProtocol

    cold = EvalProtocol(split="cold_item", ratios=(0.7, 0.1, 0.2))
    key = protocol_key("ml-100k-kg", cold)
    assert parse_protocol("ml-100k-kg", key) == cold and protocol_key("ml-100k-kg", key) == key
    with pytest.raises(ValueError, match=r"EvalProtocol.ratios: \(0.7, 0.1\) must be three"):
        parse_protocol("ml-100k-kg", "ratios=0.7-0.1")


def test_a_threshold_spelled_as_an_integer_is_the_same_protocol():
    """``threshold=4`` and ``threshold=4.0`` are one protocol: one key (one config file
    ``<dataset>@threshold=4.0.yaml``, one tuning rows file) and one fingerprint (one study, one
    cell): the key wrote ``threshold=4`` and ``threshold=4.0`` as two files and the protocol
    record's JSON 4 and 4.0 gave two data fingerprints, so a study under one spelling was not the
    one ``kgzoo bench --protocol`` read under the other. A threshold that is no number is refused."""
    import json

    from kgzoo.protocols import parse_protocol, protocol_key
    from kgzoo.data.protocol import EvalProtocol

    assert protocol_key("ml-100k-kg", "threshold=4") == protocol_key("ml-100k-kg", "threshold=4.0") \
        == "threshold=4.0"
    as_int, as_float = (parse_protocol("ml-100k-kg", s) for s in ("threshold=4", "threshold=4.0"))
    assert json.dumps(as_int.to_dict(), sort_keys=True) == json.dumps(as_float.to_dict(), sort_keys=True)
    assert as_int.fingerprint({"f": "0"}) == as_float.fingerprint({"f": "0"})
    assert EvalProtocol(threshold=None).threshold is None
    for bad in ("four", True, [4]):
        with pytest.raises(ValueError, match="EvalProtocol.threshold"):
            EvalProtocol(threshold=bad)


def test_a_protocols_own_file_comes_before_the_datasets(tmp_path):
    """``ZooConfig.load(model, dataset, protocol="split=cold_item")`` reads
    ``<dataset>@split=cold_item.yaml`` where a study under that protocol wrote one, else the dataset
    file as before; the cells name the protocol by the fields that differ from the dataset's
    default (``protocol_key``), so ``split=random`` on a random-split set is the default's file."""
    from kgzoo.bench.cells import cell_config
    from kgzoo.protocols import protocol_key
    from kgzoo.config import config_file_name
    from kgzoo.data.protocol import EvalProtocol

    d = tmp_path / "bpr"
    d.mkdir()
    (d / "ml-100k-kg.yaml").write_text("model: {lr: 0.01}\ntuned: {params: {lr: 0.02}}\n")
    warm = ZooConfig.load("bpr", "ml-100k-kg", [tmp_path], protocol="split=cold_item")
    assert warm.path == d / "ml-100k-kg.yaml" and warm.model["lr"] == 0.02 and warm.protocol == "split=cold_item"
    assert config_file_name("ml-100k-kg", "split=cold_item") == "ml-100k-kg@split=cold_item.yaml"
    (d / config_file_name("ml-100k-kg", "split=cold_item")).write_text("model: {lr: 0.01}\ntuned: {params: {lr: 0.5}}\n")
    cold = ZooConfig.load("bpr", "ml-100k-kg", [tmp_path], protocol="split=cold_item")
    assert cold.path == d / "ml-100k-kg@split=cold_item.yaml" and cold.model["lr"] == 0.5
    assert ZooConfig.load("bpr", "ml-100k-kg", [tmp_path]).model["lr"] == 0.02  # the default protocol's
    assert protocol_key("ml-100k-kg", "split=cold_item") == "split=cold_item"
    assert protocol_key("ml-100k-kg", "split=random") == protocol_key("ml-100k-kg", "") == ""
    assert protocol_key("ml-100k-kg", "split=cold_item,seed=0") == "split=cold_item"  # seed 0 is the default's
    assert protocol_key("ml-100k-kg", "seed=3,split=cold_item") == "seed=3,split=cold_item"
    assert protocol_key("ml-100k-kg", EvalProtocol(split="cold_item", ratios=(0.7, 0.1, 0.2))) \
        == "ratios=0.7-0.1-0.2,split=cold_item"
    with pytest.raises(ValueError, match="unknown protocol field 'splt'"):
        protocol_key("ml-100k-kg", "splt=cold_item")
    assert cell_config("bpr", "ml-100k-kg", "split=random").path == ZooConfig.load("bpr", "ml-100k-kg").path


def test_create_model_for_a_datamodule_of_another_protocol_takes_that_protocols_values(tmp_path, monkeypatch):
    """``kgzoo.create_model("bpr", dm)`` reads the config of the protocol ``dm`` splits by: with a
    cold-item DataModule of ml-100k-kg the values ``kgzoo tune --protocol split=cold_item`` wrote
    (``bpr/ml-100k-kg@split=cold_item.yaml``), as ``kgzoo bench --protocol`` cells do; with the
    default split, or data outside the catalogue, the dataset file's as before."""
    import torch

    import kgzoo
    from kgzoo.data.datamodule import KGRecDataModule
    from kgzoo.data.kgdata import KGRecData
    from kgzoo.data.protocol import EvalProtocol
    from kgzoo.protocols import datamodule_protocol_key

    d = tmp_path / "bpr"
    d.mkdir()
    (d / "ml-100k-kg.yaml").write_text("model: {lr: 0.01}\ntuned: {params: {lr: 0.02}}\n")
    (d / "ml-100k-kg@split=cold_item.yaml").write_text("tuned: {params: {lr: 0.5, reg_weight: 0.003}}\n")
    monkeypatch.setenv("KGZOO_CONFIG_DIR", str(tmp_path))
    g = torch.Generator().manual_seed(0)
    rows = torch.stack([torch.arange(60) % 12, torch.randint(0, 30, (60,), generator=g)], 1).unique(dim=0)
    data = KGRecData(name="ml-100k-kg", n_users=12, n_items=30, n_entities=30, interactions=rows,
                     triples=torch.zeros(0, 3, dtype=torch.long), relation_names=[])

    def built(protocol, name="ml-100k-kg"):
        dm = KGRecDataModule.from_data(data.replace(name=name), name=name, protocol=protocol)
        return dm, kgzoo.create_model("bpr", dm)

    cold_dm, cold = built(EvalProtocol(split="cold_item"))
    assert datamodule_protocol_key("bpr", cold_dm) == "split=cold_item"
    assert (cold.hparams["lr"], cold.hparams["reg_weight"]) == (0.5, 0.003)
    warm_dm, warm = built(EvalProtocol())
    assert datamodule_protocol_key("bpr", warm_dm) == "" and warm.hparams["lr"] == 0.02
    other_dm, other = built(EvalProtocol(split="cold_item"), name="frames-of-no-registered-name")
    assert datamodule_protocol_key("bpr", other_dm) == ""


def test_every_trained_grid_model_has_a_converged_schedule_on_its_grid_datasets():
    """The published tables take converged runs only: early stopping with patience 10 and an epoch
    cap high enough that early stopping ends the run (issue 16, part 2). A dataset config kept from
    a paper's fixed schedule (KGCN's and RippleNet's book-crossing-kg files said ``max_epochs: 10``,
    the authors' 10 epochs) made every trial of a study stop at its cap: `kgzoo reproduce ...
    --epochs 10` is where that schedule belongs. Models with nothing to tune (Pop, news-plm-mean,
    closed forms) are left out."""
    from kgzoo.bench.cells import cell_config
    from kgzoo.data import dataset_spec
    from kgzoo.data.datasets import list_datasets

    checked, short = 0, []
    for name in list_datasets():
        for model in dataset_spec(name).grid or ():
            cfg = cell_config(model, name)
            if not cfg.tune:
                continue
            s = cfg.schedule(quick=False)
            checked += 1
            if s.max_epochs < 100 or s.patience != 10:
                short.append(f"{model} on {name}: max_epochs {s.max_epochs}, patience {s.patience} ({cfg.path})")
    assert not short, short
    assert checked >= 60


def test_a_users_dataset_file_shadows_a_protocol_file_of_an_earlier_folder(tmp_path):
    """Folder before file: a protocol's file (``bpr/ml-100k-kg@split=cold_item.yaml``, e.g. one a
    packaged study wrote) counts only where no later folder holds the dataset's file; its ``tuned:``
    values were chosen over its own folder's fixed configuration, not a user's. A dataset's file
    anywhere still beats a ``default.yaml`` anywhere."""
    from kgzoo.config import config_file_name

    early, user = tmp_path / "early", tmp_path / "user"
    for d in (early, user):
        (d / "bpr").mkdir(parents=True)
    cold = config_file_name("ml-100k-kg", "split=cold_item")
    (early / "bpr" / cold).write_text("tuned: {params: {lr: 0.5}}\n")
    (early / "bpr" / "ml-100k-kg.yaml").write_text("model: {lr: 0.01}\n")
    load = lambda: ZooConfig.load("bpr", "ml-100k-kg", [early, user], protocol="split=cold_item")  # noqa: E731
    assert load().path == early / "bpr" / cold and load().model["lr"] == 0.5
    (user / "bpr" / "default.yaml").write_text("model: {lr: 0.3}\n")  # a default.yaml: the protocol file still counts
    assert load().path == early / "bpr" / cold
    (user / "bpr" / "ml-100k-kg.yaml").write_text("model: {lr: 0.2}\n")
    assert load().path == user / "bpr" / "ml-100k-kg.yaml" and load().model["lr"] == 0.2
    (user / "bpr" / cold).write_text("tuned: {params: {lr: 0.7}}\n")  # the user's own study under the protocol
    assert load().path == user / "bpr" / cold and load().model["lr"] == 0.7
