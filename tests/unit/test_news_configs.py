"""The news models' zoo configs on dkn-news and mind-sample are ready for a tuned, converged table
(issue 17): a converged schedule (early stopping on the valid main metric, AUC, patience 10, a cap
far above it), a search space of the model's own arguments, and a default trial that is the
config's own values (every searched argument set in the dataset file, inside the space)."""
from __future__ import annotations

import pytest

from kgzoo.api import model_hparams
from kgzoo.bench.tune import default_point, parse_space
from kgzoo.config import ZooConfig
from kgzoo.registry import MODELS

TUNED = ("dkn", "nrms", "nrms-plm", "kgplm-news")
DATASETS = ("dkn-news", "mind-sample")


@pytest.mark.parametrize("model", TUNED)
@pytest.mark.parametrize("dataset", DATASETS)
def test_news_configs_tune_space_schedule_and_default_trial(model, dataset):
    cfg = ZooConfig.load(model, dataset)
    assert cfg.path is not None and cfg.path.name == f"{dataset}.yaml", cfg.path
    assert cfg.tune_path == cfg.path  # the space is the dataset file's own
    sched = cfg.schedule(quick=False)
    assert sched.patience == 10 and sched.max_epochs >= 50 and sched.monitor is None  # None: the task's main metric
    space = parse_space(cfg.tune, f"{cfg.path}: tune")
    names = {p.name for p in space}
    assert {"lr", "weight_decay"} <= names
    accepted = model_hparams(MODELS.get(model))
    assert names <= set(accepted), names - set(accepted)
    assert set(cfg.defaults) <= set(accepted), set(cfg.defaults) - set(accepted)
    # the default trial is the config's values: every searched argument set, each inside the space
    point = {k.rstrip("#") for k in default_point(space, cfg.defaults)}  # a list choice: "name#" (its index)
    assert point == names, names - point


def test_a_dataset_file_does_not_inherit_the_model_section(tmp_path):
    """Why each news dataset file writes its model section out: only tune, paper and reference
    fall back to default.yaml (a file without a model section runs the class defaults)."""
    (tmp_path / "nrms").mkdir()
    (tmp_path / "nrms" / "default.yaml").write_text("model: {lr: 1.0e-4}\ntune: {lr: {low: 1.0e-5, high: 1.0e-3}}\n")
    (tmp_path / "nrms" / "some-news.yaml").write_text("data: {batch_size: 8}\n")
    cfg = ZooConfig.load("nrms", "some-news", extra_dirs=[tmp_path])
    assert cfg.model == {} and cfg.tune == {"lr": {"low": 1.0e-5, "high": 1.0e-3}}


def test_registered_names_and_the_news_protocols():
    """One lookup of a registered object's name (the checkpoint's model, the config parent, the
    CLI's --model class), and one rule for the protocol a news model takes: the impression
    protocol where the data have an impression log under another default (mind-sample), none on
    a CTR set without one (dkn-news) or on top-K data."""
    from kgzoo.protocols import default_protocol, impression_protocol, model_protocol
    from kgzoo.models.kgat import KGAT
    from kgzoo.registry import MODELS

    assert MODELS.name_of(KGAT) == "kgat" and MODELS.name_of(type("Sub", (KGAT,), {})) is None
    assert MODELS.name_of(None) is None
    imp = impression_protocol("mind-sample")
    assert (imp.task, imp.split) == ("impression", "temporal")
    assert impression_protocol("dkn-news") is None and impression_protocol("ml-100k-kg") is None
    assert model_protocol("mind-sample", "nrms") == imp == default_protocol("mind-sample", "nrms")
    assert model_protocol("mind-sample", "bpr") is None and model_protocol("dkn-news", "nrms") is None
