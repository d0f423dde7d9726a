"""The CTR task with a click history (DKN's protocol on labelled rows): the histories a
:class:`~kgzoo.data.datamodule.KGRecDataModule` serves a news model, and the task a model runs
(:func:`kgzoo.tasks.model_task`)."""
from __future__ import annotations

import pytest
import torch

import kgzoo
from kgzoo.api import create_datamodule_for
from kgzoo.data.datamodule import KGRecDataModule
from kgzoo.data.kgdata import KGRecData
from kgzoo.models.news import NewsRecommender
from kgzoo.models.pop import Pop
from kgzoo.tasks import model_task


def labelled(U: int = 6, I: int = 30, given: bool = True) -> KGRecData:
    """Each user 10 rows over distinct items (labels 1,1,0,1,0,...); with ``given``, rows 0-7 of
    each user the source's train part, 8-9 its test part (DKN's two files)."""
    g = torch.Generator().manual_seed(0)
    rows, labels, parts = [], [], []
    for u in range(U):
        items = torch.randperm(I, generator=g)[:10].tolist()
        rows += [(u, i) for i in items]
        labels += [1, 1, 0, 1, 0, 1, 1, 0, 1, 0]
        parts += [0] * 8 + [2] * 2
    return KGRecData(name="tiny-ctr-news", n_users=U, n_items=I, n_entities=I, interactions=torch.tensor(rows),
                     triples=torch.zeros(0, 3, dtype=torch.long), relation_names=[],
                     label=torch.tensor(labels), given_split=torch.tensor(parts) if given else None,
                     item_text=[f"news {i}" for i in range(I)])


def dm_for_news(**kw) -> KGRecDataModule:
    dm = KGRecDataModule.from_data(labelled(), protocol=kgzoo.EvalProtocol(task="ctr", split="given",
                                                                         ratios=(0.8, 0.1, 0.1)),
                                   batch_size=7, eval_batch_size=4, **kw)

    class Reader:  # a model that scores from the user's clicks (duck-typed, as the DataModule reads it)
        uses_history = True
        trains_on_labels = True
    dm.adapt_to(Reader())
    dm.setup()
    return dm


def test_histories_are_the_users_train_clicks_only():
    dm = dm_for_news()
    x, y = dm.data.interactions, dm.data.label
    train = set(dm.split.train.tolist())
    for stage in ("val_dataloader", "test_dataloader"):
        for b in getattr(dm, stage)():
            for u, h, m in zip(b["user"].tolist(), b["history"], b["history_mask"]):
                clicked = {int(x[r, 1]) for r in train if int(x[r, 0]) == u and int(y[r]) == 1}
                assert set(h[m].tolist()) == clicked  # never a valid or test row, never a non-click
    # valid rows are carved from the source's train part per user (the "given" protocol)
    assert dm.split.valid.numel() > 0 and set(dm.split.valid.tolist()).isdisjoint(dm.split.test.tolist())


def test_a_training_row_never_sees_its_own_item_in_its_history():
    dm = dm_for_news()
    seen = 0
    for b in dm.train_dataloader():
        own = (b["history"] == b["item"].unsqueeze(1)) & b["history_mask"]
        assert not bool(own.any())
        clicked = dm.histories(b["user"])["history_mask"].sum(1)
        # a clicked row loses exactly its own item; a non-click keeps every click
        assert torch.equal(b["history_mask"].sum(1), clicked - b["label"])
        seen += b["user"].numel()
    assert seen == dm.split.train.numel()


def test_max_history_keeps_the_last_clicks_and_enters_the_fingerprint():
    full, short = dm_for_news(), dm_for_news(max_history=2)
    u = torch.arange(6)
    h, m = full.histories(u)["history"], full.histories(u)["history_mask"]
    hs, ms = short.histories(u)["history"], short.histories(u)["history_mask"]
    assert hs.shape[1] == 2 and bool((ms.sum(1) == m.sum(1).clamp(max=2)).all())
    for i in range(6):
        assert hs[i][ms[i]].tolist() == h[i][m[i]].tolist()[-2:]
    assert full.fingerprint != short.fingerprint
    assert short.state_dict()["max_history"] == 2


def test_history_only_for_models_that_ask():
    dm = KGRecDataModule.from_data(labelled(), protocol=kgzoo.EvalProtocol(task="ctr", split="given"), batch_size=7)
    dm.adapt_to(object())
    assert "history" not in next(iter(dm.train_dataloader()))


def test_model_task_of_news_models_follows_their_data():
    assert model_task(NewsRecommender, "ctr", has_impressions=True) == "impression"  # MIND: impressions first
    assert model_task(NewsRecommender, "ctr", has_impressions=False) == "ctr"  # DKN's rows
    assert model_task(NewsRecommender, "impression", has_impressions=True) == "impression"
    with pytest.raises(ValueError, match="topk"):
        model_task(NewsRecommender, "topk", has_impressions=False)
    plain = type("Plain", (), {})
    assert model_task(plain, "topk", has_impressions=True) == "topk"  # no tasks: the data's
    # Pop: impressions where the dataset has a log (the news tables' floor), else the data's task
    assert model_task(Pop, "ctr", has_impressions=True) == "impression"
    assert model_task(Pop, "topk", has_impressions=False) == "topk"
    assert model_task(Pop, "ctr", has_impressions=False) == "ctr"
    link = type("Link", (), {"task": "link"})
    assert model_task(link, "ctr", has_impressions=True) == "link"


def test_a_news_model_runs_ctr_on_labelled_rows(text_home):
    dm = KGRecDataModule.from_data(labelled(), protocol=kgzoo.EvalProtocol(task="ctr", split="given"),
                                   batch_size=7, eval_batch_size=4)
    model = kgzoo.create_model("nrms", dm, heads=2, head_dim=4, query_dim=8, title_length=4)
    assert model.task == "ctr" and create_datamodule_for(model, dm) is dm and dm.serves_history
    batch = next(iter(dm.test_dataloader()))
    s = model.ctr_scores(batch)
    assert s.shape == (4,) and s.dtype == torch.float32
    # the score of a row is its item as the one candidate of an impression with the row's history
    one = {**batch, "candidates": batch["item"].unsqueeze(1), "candidate_mask": torch.ones(4, 1, dtype=torch.bool)}
    model.eval()
    assert torch.allclose(model.ctr_scores(batch), model.impression_scores(one).squeeze(1))
    with pytest.raises(ValueError, match="topk"):
        type(model)(n_users=6, n_items=30, task="topk")


def test_a_pairwise_model_trains_on_bpr_triples_of_the_positive_train_rows():
    """BPR-MF on a CTR set (issue 16, part 3): its loss needs (user, pos_item, neg_item), so the
    DataModule serves BPR triples of the train split's label-1 rows, negatives outside the user's
    train positives; evaluation stays on the labelled rows. A model that trains on labels (KGCN,
    RippleNet, the news models) keeps the labelled rows."""
    dm = KGRecDataModule.from_data(labelled(), protocol=kgzoo.EvalProtocol(task="ctr", split="given"),
                                   batch_size=7, eval_batch_size=4)
    model = kgzoo.create_model("bpr", dm, embedding_dim=8)
    assert model.task == "ctr" and dm.ctr_pairs
    x, y = dm.data.interactions, dm.data.label
    train = dm.split.train
    pos = {(int(u), int(i)) for (u, i), lab in zip(x[train].tolist(), y[train].tolist()) if lab == 1}
    seen = []
    for b in dm.train_dataloader():
        assert set(b) == {"user", "pos_item", "neg_item"}
        for u, p, n in zip(b["user"].tolist(), b["pos_item"].tolist(), b["neg_item"].tolist()):
            assert (u, p) in pos and (u, n) not in pos
            seen.append((u, p))
    assert sorted(seen) == sorted(pos)  # each positive train row once per epoch, no label-0 row
    assert len(dm.train_dataloader()) == -(-len(pos) // 7)
    assert float(model.training_step(next(iter(dm.train_dataloader())), 0)) > 0
    batch = next(iter(dm.test_dataloader()))
    assert set(batch) == {"user", "item", "label"}
    model.eval()
    with torch.no_grad():  # predict's pairwise e_u^T e_i equals the row of the full score it gathers from
        full = model.score(batch["user"]).gather(1, batch["item"].view(-1, 1)).squeeze(1)
        assert torch.allclose(model.ctr_scores(batch), full, atol=1e-6)
    dm.adapt_to(type("Labelled", (), {"trains_on_labels": True})())
    assert not dm.ctr_pairs and "label" in next(iter(dm.train_dataloader()))
