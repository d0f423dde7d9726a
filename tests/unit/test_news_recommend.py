"""Recommendations of a news model: ``Pretrained.recommend``, ``export`` and ``rank_news`` rank
every news for a click history (the news models have no per-user score). Before, ``kgzoo
recommend``/``export`` of a news checkpoint ended in ``NotImplementedError: NRMS scores
impressions``, and a history of one's own could not be ranked at all."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

import kgzoo
from kgzoo.data.impressions import ImpressionDataModule
from kgzoo.hub import Pretrained, PretrainedSpec, export

from test_impressions import tiny


@pytest.fixture(scope="module")
def pre(text_home, tmp_path_factory) -> Pretrained:
    """NRMS (tiny) on 12 impressions of 5 users over 20 news, a third of them without text."""
    torch.manual_seed(0)
    data, log = tiny()
    data = data.replace(user_ids=[f"u{u}" for u in range(data.n_users)], item_ids=[f"N{i}" for i in range(data.n_items)])
    dm = ImpressionDataModule.from_data(data, log, max_history=3)
    model = kgzoo.create_model("nrms", dm, config=False, heads=2, head_dim=4, query_dim=8, title_length=4)
    spec = PretrainedSpec(name="nrms/tiny-news", model="nrms", dataset=dm.dataset, protocol=dm.protocol.to_dict(),
                          fingerprint=dm.fingerprint, metrics={}, hparams={}, sha256="", size=0, licence="",
                          base_dir=tmp_path_factory.mktemp("w"))
    return Pretrained(spec, model.eval(), dm)


def scores_for(pre: Pretrained, history: list[int]) -> torch.Tensor:
    """Every news's score as a candidate of one impression with ``history`` (the evaluation's score)."""
    I = pre.model.n_items
    batch = {"user": torch.zeros(1, dtype=torch.long), "history": torch.tensor([history]),
             "history_mask": torch.ones(1, len(history), dtype=torch.bool),
             "candidates": torch.arange(I).view(1, -1), "candidate_mask": torch.ones(1, I, dtype=torch.bool)}
    with torch.no_grad():
        return pre.model.impression_scores(batch)[0]


def test_a_users_history_is_that_of_their_last_impression(pre):
    log = pre.datamodule.log
    out = pre.datamodule.user_histories(torch.tensor([1, 0]))
    for row, u in enumerate((1, 0)):
        last = int(torch.nonzero(log.user == u).flatten()[torch.argmax(log.time[log.user == u])])
        want = log.history[log.history_indptr[last]:log.history_indptr[last + 1]][-3:]
        assert out["history"][row][out["history_mask"][row]].tolist() == want.tolist()
    assert out["user"].tolist() == [1, 0]


def test_recommend_ranks_every_unseen_news_for_the_users_history(pre):
    recs = pre.recommend("u1", k=4)
    hist = pre.datamodule.user_histories(torch.tensor([1]))
    s = scores_for(pre, hist["history"][0][hist["history_mask"][0]].tolist())
    indptr, seen = pre.seen()
    s[seen[indptr[1]:indptr[2]]] = float("-inf")
    assert [r[0] for r in recs] == [f"N{i}" for i in torch.topk(s, 4).indices.tolist()]
    assert torch.allclose(torch.tensor([r[2] for r in recs]), torch.topk(s, 4).values)
    assert pre.recommend(["u1"], k=4, exclude="train")[0][0][0].startswith("N")  # the train clicks' CSR


def test_export_of_a_news_model_writes_its_lists(pre, tmp_path):
    summary = export(pre, tmp_path, k=3)
    table = pd.read_parquet(tmp_path / "topk.parquet")
    assert summary["users"] == 5 and len(table) == 15 and summary["files"] == ["topk.parquet"]
    assert table[table.user_id == "u1"].item_id.tolist() == [r[0] for r in pre.recommend("u1", k=3)]


def test_rank_news_for_a_history_of_raw_ids(pre):
    s = scores_for(pre, [2, 5])
    s[[2, 5]] = float("-inf")  # the history's own news are not offered again
    got = pre.rank_news(["N2", "N5"], k=3)
    assert [g[0] for g in got] == [f"N{i}" for i in torch.topk(s, 3).indices.tolist()]
    among = pre.rank_news(["N2", "N5"], k=2, candidates=["N7", "N1", "N9"])
    ranked = sorted((7, 1, 9), key=lambda i: -float(scores_for(pre, [2, 5])[i]))[:2]
    assert [g[0] for g in among] == [f"N{i}" for i in ranked]
    with pytest.raises(KeyError, match="N99"):
        pre.rank_news(["N99"])
    with pytest.raises(ValueError, match=r"k=4 must be in 1..2 \(the news ranked\)"):
        pre.rank_news(["N2"], k=4, candidates=["N1", "N3"])


def test_kgzoo_recommend_a_history_or_a_user(pre, monkeypatch, capsys):
    import kgzoo.cli.hub as hub
    from kgzoo.cli import main

    monkeypatch.setattr(hub, "open_model", lambda *args, **kwargs: pre)
    assert main(["recommend", "--model", "nrms/tiny-news", "--history", "N2", "N5", "-k", "3"]) == 0
    out = capsys.readouterr().out
    assert "top-3 other items for the history N2 N5" in " ".join(out.split())
    assert all(f" {news} " in out for news, _, _ in pre.rank_news(["N2", "N5"], k=3))
    assert main(["recommend", "--model", "nrms/tiny-news", "--user", "u1", "-k", "2"]) == 0
    out = capsys.readouterr().out
    assert all(f" {news} " in out for news, _, _ in pre.recommend("u1", k=2))


def test_weights_saved_from_a_folder_dataset_load_where_the_name_is_unknown(text_home, tmp_path, monkeypatch):
    # the manifest entry names the folder (as a checkpoint's data entry does): before, load_pretrained
    # in a fresh process failed with "unknown dataset 'my-news'"
    import kgzoo.data.datasets as datasets
    from test_impressions import _write_mind

    folder = tmp_path / "my-news"
    folder.mkdir()
    _write_mind(folder, ["1\tU1\t11/9/2019 8:00:00 AM\tN1\tN2-1 N7-0", "2\tU2\t11/10/2019 9:00:00 AM\tN2\tN1-1 N7-0",
                         "3\tU1\t11/11/2019 9:00:00 AM\tN1 N2\tN7-1 N2-0"])
    dm = kgzoo.create_datamodule(str(folder))
    model = kgzoo.create_model("nrms", dm, config=False, heads=2, head_dim=4, query_dim=8, title_length=4)
    hp = {"heads": 2, "head_dim": 4, "query_dim": 8, "title_length": 4}
    spec = PretrainedSpec(name=f"nrms/{dm.dataset}", model="nrms", dataset=dm.dataset, protocol=dm.protocol.to_dict(),
                          fingerprint=dm.fingerprint, metrics={}, hparams=hp, sha256="", size=0, licence="",
                          base_dir=tmp_path)
    manifest = Pretrained(spec, model.eval(), dm).save_pretrained(tmp_path / "weights")
    assert json.loads(manifest.read_text())["entries"][spec.name]["folder"] == str(folder.resolve())
    known = datasets.list_datasets()
    monkeypatch.setattr(datasets, "list_datasets", lambda *a, **k: [n for n in known if n != dm.dataset])
    back = kgzoo.load_pretrained(tmp_path / "weights")
    assert back.recommend("U1", k=2) == Pretrained(spec, model.eval(), dm).recommend("U1", k=2)


def test_rank_news_of_kgplm_news_takes_the_users_own_vector(text_home, tmp_path):
    # kgplm-news fuses the user's KGPLM vector with the history: a history alone is not enough
    data, log = tiny()
    data = data.replace(user_ids=[f"u{u}" for u in range(data.n_users)], item_ids=[f"N{i}" for i in range(data.n_items)])
    dm = ImpressionDataModule.from_data(data, log, max_history=3)
    model = kgzoo.create_model("kgplm-news", dm, config=False, embedding_dim=8, kge_epochs=1)
    spec = PretrainedSpec(name="kgplm-news/tiny-news", model="kgplm-news", dataset=dm.dataset,
                          protocol=dm.protocol.to_dict(), fingerprint=dm.fingerprint, metrics={}, hparams={},
                          sha256="", size=0, licence="", base_dir=tmp_path)
    pre = Pretrained(spec, model.eval(), dm)
    with pytest.raises(ValueError, match="give user="):
        pre.rank_news(["N2"])
    got = pre.rank_news(["N2", "N5"], k=3, user="u1")
    I = model.n_items
    batch = {"user": torch.tensor([1]), "history": torch.tensor([[2, 5]]), "history_mask": torch.ones(1, 2, dtype=torch.bool),
             "candidates": torch.arange(I).view(1, -1), "candidate_mask": torch.ones(1, I, dtype=torch.bool)}
    with torch.no_grad():
        s = model.impression_scores(batch)[0]
    s[[2, 5]] = float("-inf")
    assert [g[0] for g in got] == [f"N{i}" for i in torch.topk(s, 3).indices.tolist()]
    assert len(pre.recommend("u1", k=2)) == 2
