"""mind-sample as impressions (counts, split by day, text coverage) and the news models trained a
few short epochs on it (NRMS, NRMS-PLM frozen, DKN; Pop and the history-mean PLM scorer), through the Lightning Trainer."""
from __future__ import annotations

import warnings

import lightning as L
import pytest
import torch

import kgzoo
from kgzoo.api import create_datamodule_for
from kgzoo.bench.cells import Cell, cell_fingerprint, cell_task
from kgzoo.data.datasets import load_impressions
from kgzoo.data.impression_log import ImpressionLog
from kgzoo.data.impressions import ImpressionDataModule
from kgzoo.data.kgdata import KGRecData


@pytest.fixture(scope="module")
def imp_dm() -> ImpressionDataModule:
    dm = kgzoo.create_datamodule("mind-sample", protocol={"task": "impression", "split": "temporal"})
    dm.setup()
    return dm


def test_mind_sample_impressions_counts(imp_dm):
    data, log = load_impressions("mind-sample")
    s = log.stats(data.item_text)
    assert (s["impressions"], s["users"], s["candidates"], s["clicks"], s["days"]) == (5000, 4637, 189359, 7542, 6)
    # news.tsv covers 838 of the 22,592 logged news: the other 21,754 are items without text, counted
    assert (s["logged_news"], s["logged_news_with_text"]) == (22592, 838)
    assert data.cleaning["news ids: in the logs without a news.tsv row"] == 21754
    assert data.n_items == 2000 + 21754 and sum(1 for t in data.item_text if t) == 2000
    assert data.mentions.shape == (2391, 4)
    # the last day (2019-11-14) is test, the day before valid
    assert imp_dm.sizes() == {"train": 3058, "valid": 974, "test": 968, "train_clicks": 4562}
    assert int(log.days()[imp_dm.split["test"]].min()) > int(log.days()[imp_dm.split["valid"]].max())


def test_the_kg_of_the_news_is_cleaned_and_counted(imp_dm):
    s = imp_dm.data.stats()
    assert (s["relations"], s["triples"], s["linked_items"]) == (3, 8925, 1736)
    assert imp_dm.data.cleaning["triples: duplicate"] == 3201


def _trainer(**kw) -> L.Trainer:
    return L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, num_sanity_val_steps=0, **kw)


@pytest.mark.parametrize("name, overrides", [("nrms", {}), ("nrms-plm", {}), ("dkn", {"kge_epochs": 2}),
                                             ("news-plm-mean", {}), ("pop", {}), ("kgplm-news", {"kge_epochs": 2})])
def test_news_models_train_a_few_epochs_on_mind_sample(name, overrides, imp_dm, text_home):
    base = kgzoo.create_datamodule("mind-sample")
    model = kgzoo.create_model(name, base if name != "pop" else imp_dm, **overrides)
    dm = create_datamodule_for(model, base) if name != "pop" else imp_dm
    assert isinstance(dm, ImpressionDataModule) and model.task == "impression"
    before = {k: v.clone() for k, v in model.state_dict().items()}
    t = _trainer(max_epochs=2, limit_train_batches=8, limit_val_batches=3, limit_test_batches=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t.fit(model, datamodule=dm)
        loss = t.callback_metrics.get("train/loss")
        out = t.test(model, datamodule=dm, verbose=False)[0]
    assert set(out) == {"test/auc", "test/mrr", "test/ndcg@5", "test/ndcg@10"}
    assert all(0.0 <= v <= 1.0 for v in out.values()), out
    if name not in ("pop", "news-plm-mean"):  # nothing to train in these two
        assert loss is not None and torch.isfinite(loss)
        after = model.state_dict()
        assert any(not torch.equal(before[k], after[k]) for k in before if k in after and before[k].is_floating_point())


def planted(U: int = 40, I: int = 60, n_imp: int = 240, seed: int = 0) -> tuple[KGRecData, ImpressionLog]:
    """News of three topics (the topic's words first, naming the topic's entity); each user has a
    topic, clicks 4 news of it in the history, and is shown 1 news of it (clicked) and 4 of the
    others (not clicked). Impressions spread over 3 days."""
    g = torch.Generator().manual_seed(seed)
    topics = ["football match goal", "election vote senate", "recipe cooking dinner"]
    topic_of = torch.arange(I) % 3
    texts = [f"{topics[int(topic_of[i])]} story {i}" for i in range(I)]
    hist, cand, hp, cp, user = [], [], [0], [0], []
    for _ in range(n_imp):
        u = int(torch.randint(U, (1,), generator=g))
        same, other = torch.nonzero(topic_of == u % 3).flatten(), torch.nonzero(topic_of != u % 3).flatten()
        hist += same[torch.randperm(same.numel(), generator=g)[:4]].tolist()
        cand += [int(same[torch.randint(same.numel(), (1,), generator=g)])]
        cand += other[torch.randperm(other.numel(), generator=g)[:4]].tolist()
        hp.append(len(hist)), cp.append(len(cand)), user.append(u)
    k = torch.arange(n_imp)
    log = ImpressionLog([str(i) for i in range(n_imp)], torch.tensor(user), k * 3 // n_imp * 86_400 + k,
                        torch.tensor(hp), torch.tensor(hist), torch.tensor(cp), torch.tensor(cand),
                        torch.tensor([1, 0, 0, 0, 0] * n_imp))
    ent = I + topic_of
    first = torch.tensor([len(t.split()[0]) for t in texts])
    data = KGRecData(name="planted", n_users=U, n_items=I, n_entities=I + 3, interactions=torch.tensor([[0, 0]]),
                     triples=torch.stack([torch.arange(I), torch.zeros(I, dtype=torch.long), ent], 1),
                     relation_names=["about"], item_text=texts,
                     mentions=torch.stack([torch.arange(I), ent, torch.zeros(I, dtype=torch.long), first], 1))
    return data, log


@pytest.mark.parametrize("name, overrides", [("nrms", {}), ("dkn", {"kge_epochs": 2, "scorer": "inner"}),
                                             ("news-plm-mean", {})])
def test_news_models_learn_a_planted_topic_signal(name, overrides, text_home):
    dm = ImpressionDataModule.from_data(*planted(), batch_size=16, eval_batch_size=32)
    model = kgzoo.create_model(name, dm, **({"lr": 1e-3} if name != "news-plm-mean" else {}), **overrides)
    t = _trainer(max_epochs=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t.fit(model, datamodule=dm)
        out = t.test(model, datamodule=dm, verbose=False)[0]
    assert out["test/auc"] > 0.95 and out["test/mrr"] > 0.9, out  # random ranking: AUC 0.5, MRR about 0.46


@pytest.fixture(scope="module")
def dkn_dm():
    dm = kgzoo.create_datamodule("dkn-news", batch_size=128, eval_batch_size=256, max_history=30)
    dm.setup()
    return dm


def test_dkn_news_is_a_ctr_set_with_train_click_histories(dkn_dm):
    # the given split: DKN's test file; valid carved from its train file by title (valid_split=
    # "cold_item", 0.1 / 0.9 of the titles with all their rows), so that no valid title occurs in
    # train, as no test title does
    assert dkn_dm.split.sizes() == {"train": 9067, "valid": 1171, "test": 458}
    items = dkn_dm.data.interactions[:, 1]
    train_items = set(items[dkn_dm.split.train].tolist())
    assert not train_items & set(items[dkn_dm.split.valid].tolist())
    assert not train_items & set(items[dkn_dm.split.test].tolist())
    assert cell_task("nrms", "dkn-news").name == "ctr"
    assert cell_task("nrms", "mind-sample").name == "impression"
    # the linked entities are named in the item texts, mostly among the title words (DKN's alignment)
    m = dkn_dm.data.mentions
    assert m.shape == (10273, 4) and bool((m[:, 1] >= dkn_dm.n_items).all())
    text = dkn_dm.data.item_text
    first = m[0].tolist()
    assert text[first[0]][first[2]:first[3]].lower() == "tautog"


@pytest.mark.parametrize("dataset, task", [("mind-sample", "impression"), ("dkn-news", "ctr")])
def test_every_news_table_model_lands_in_one_table(dataset, task):
    """The bench cells of the news tables' models, Pop included, share the task and the data and
    protocol fingerprints (one leaderboard table per dataset: every model beside Pop), each built
    with its zoo config's ``data`` as a run builds it. The history cap is the dataset's (DKN's 30
    on dkn-news), so Pop, whose config names none, reads the one its table's models read (its
    dkn-news rows were archived under another fingerprint while the cap came from the configs)."""
    models = ("pop", "news-plm-mean", "nrms", "nrms-plm", "dkn", "kgplm-news")
    assert {cell_task(m, dataset).name for m in models} == {task}
    assert len({cell_fingerprint(Cell(m, dataset, 0)) for m in models}) == 1
    assert kgzoo.create_datamodule(dataset).max_history == {"dkn-news": 30, "mind-sample": 50}[dataset]


@pytest.mark.parametrize("name, overrides", [
    ("nrms", {"heads": 4, "head_dim": 8}),
    ("dkn", {"kge_epochs": 2, "title_length": 12, "windows": [1, 2], "n_filters": 16}),  # small: every news encoded per pass
    ("kgplm-news", {"kge_epochs": 2, "use_text": False}),  # its text tower: the contract test
    ("pop", {})])
def test_news_models_train_on_dkn_news_as_ctr(name, overrides, dkn_dm):
    model = kgzoo.create_model(name, dkn_dm, **overrides)
    assert model.task == "ctr" and create_datamodule_for(model, dkn_dm) is dkn_dm
    assert dkn_dm.serves_history or name == "pop"  # the news models get the users' train clicks
    t = _trainer(max_epochs=1, limit_train_batches=4, limit_val_batches=1, limit_test_batches=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t.fit(model, datamodule=dkn_dm)
        out = t.test(model, datamodule=dkn_dm, verbose=False)[0]
    assert set(out) == {"test/auc", "test/acc", "test/f1", "test/gauc"}
    assert all(0.0 <= v <= 1.0 for v in out.values()), out
