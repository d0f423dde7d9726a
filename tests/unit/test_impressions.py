"""Tests for kgzoo.data.impressions and MIND's impression reader, on tiny in-memory logs."""
from __future__ import annotations

import json

import pytest
import torch

import kgzoo
from kgzoo.data.impression_log import ImpressionLog, split_by_day
from kgzoo.data.impressions import ImpressionDataModule
from kgzoo.data.kgdata import DataValidationError, KGRecData
from kgzoo.data.readers._io import DataFormatError
from kgzoo.data.readers.mind import read_mind_impressions
from kgzoo.ops.csr import csr_padded

DAY = 86_400


def tiny(n_imp: int = 12, U: int = 5, I: int = 20, seed: int = 0) -> tuple[KGRecData, ImpressionLog]:
    """``n_imp`` impressions over 4 days (3 per day), 2-6 candidates each, at least one click;
    impression 5 has no non-click, impression 2 an empty history."""
    g = torch.Generator().manual_seed(seed)
    hist, cand, lab, hptr, cptr = [], [], [], [0], [0]
    for i in range(n_imp):
        h = [] if i == 2 else torch.randint(I, (int(torch.randint(1, 6, (1,), generator=g)),), generator=g).tolist()
        c = torch.randperm(I, generator=g)[: int(torch.randint(2, 7, (1,), generator=g))].tolist()
        y = [1] * len(c) if i == 5 else [1] + [int(torch.rand(1, generator=g) < 0.3) for _ in c[1:]]
        hist += h; cand += c; lab += y
        hptr.append(len(hist)); cptr.append(len(cand))
    log = ImpressionLog([f"imp{i}" for i in range(n_imp)], torch.arange(n_imp) % U,
                        torch.arange(n_imp) // 3 * DAY + 3600 * (torch.arange(n_imp) % 3), torch.tensor(hptr),
                        torch.tensor(hist, dtype=torch.long), torch.tensor(cptr), torch.tensor(cand), torch.tensor(lab))
    data = KGRecData(name="tiny-news", n_users=U, n_items=I, n_entities=I + 3,
                     interactions=torch.stack([log.user[:4], log.candidates[:4]], 1), label=torch.ones(4, dtype=torch.long),
                     triples=torch.tensor([[0, 0, I], [1, 0, I + 1], [2, 0, I + 2]]), relation_names=["title_entity"],
                     item_text=[f"news {i}" if i % 3 else "" for i in range(I)])
    return data, log


def test_csr_padded_keeps_the_last_values_left_aligned():
    ptr, vals = torch.tensor([0, 3, 3, 7]), torch.tensor([1, 2, 3, 4, 5, 6, 7])
    out, mask = csr_padded(ptr, vals, torch.tensor([2, 1, 0]), width=2, last=True)
    assert out.tolist() == [[6, 7], [0, 0], [2, 3]] and mask.tolist() == [[True, True], [False, False], [True, True]]
    out, mask = csr_padded(ptr, vals, torch.tensor([0, 2]))
    assert out.tolist() == [[1, 2, 3, 0], [4, 5, 6, 7]] and mask.sum().item() == 7


def test_split_by_day_last_day_test_day_before_valid():
    _, log = tiny()
    s = split_by_day(log)
    assert s["test"].tolist() == [9, 10, 11] and s["valid"].tolist() == [6, 7, 8] and s["train"].tolist() == list(range(6))
    short = ImpressionLog(log.impression_ids[:6], log.user[:6], log.time[:6], log.history_indptr[:7], log.history,
                          log.candidate_indptr[:7], log.candidates, log.label)
    with pytest.raises(ValueError, match="spans 2 days"):
        split_by_day(short)


def test_train_batches_pair_each_click_with_non_clicks_of_its_impression():
    data, log = tiny()
    dm = ImpressionDataModule.from_data(data, log, batch_size=4, npratio=3)
    batches = list(dm.train_dataloader())
    n_clicks = int(sum(log.label[log.candidate_indptr[i]:log.candidate_indptr[i + 1]].sum() for i in range(6)))
    assert sum(b["user"].numel() for b in batches) == n_clicks == dm.sizes()["train_clicks"]
    for b in batches:
        assert b["candidates"].shape[1] == 4 and b["label"][:, 0].eq(1).all() and b["label"][:, 1:].eq(0).all()
        for row in range(b["user"].numel()):
            # the impression of this sample: the one whose user, history and click match
            cands = b["candidates"][row][b["candidate_mask"][row]].tolist()
            imps = [i for i in range(6) if log.user[i] == b["user"][row]
                    and cands[0] in log.candidates[log.candidate_indptr[i]:log.candidate_indptr[i + 1]].tolist()]
            assert imps
            i = imps[0]
            shown = log.candidates[log.candidate_indptr[i]:log.candidate_indptr[i + 1]]
            lab = log.label[log.candidate_indptr[i]:log.candidate_indptr[i + 1]]
            assert set(cands[1:]) <= set(shown[lab == 0].tolist())
            if i == 5:  # all clicked: negatives masked
                assert not b["candidate_mask"][row, 1:].any()


def test_eval_batches_cover_each_impression_once_also_over_two_ranks(monkeypatch):
    data, log = tiny()
    dm = ImpressionDataModule.from_data(data, log, eval_batch_size=2)
    seen = torch.cat([b["impression"] for b in dm.test_dataloader()])
    assert seen.tolist() == [9, 10, 11]
    b = next(iter(dm.test_dataloader()))
    assert b["label"].shape == b["candidates"].shape == b["candidate_mask"].shape
    i = int(b["impression"][0])
    lo, hi = int(log.candidate_indptr[i]), int(log.candidate_indptr[i + 1])
    assert b["candidates"][0][b["candidate_mask"][0]].tolist() == log.candidates[lo:hi].tolist()
    import kgzoo.data.datamodule as mod  # where the evaluation batches take their rank (StageBatches)
    shards = []
    loader = dm.val_dataloader()  # one loader over both ranks: its kept batches follow the rank
    for r in (0, 1):
        monkeypatch.setattr(mod, "rank_world", lambda r=r: (r, 2))
        shards.append(torch.cat([b["impression"] for b in loader]))
    assert sorted(torch.cat(shards).tolist()) == [6, 7, 8] and not set(shards[0].tolist()) & set(shards[1].tolist())


def test_impression_loaders_are_the_top_k_mechanism_built_once_without_a_dataloader():
    """As KGRecDataModule's: the evaluation loader is a StageBatches kept per loader (a later pass
    yields the very batches of the first, each impression's candidates and labels as in the log),
    the training loader the iterable itself."""
    from torch.utils.data import DataLoader

    from kgzoo.data.datamodule import StageBatches

    data, log = tiny()
    dm = ImpressionDataModule.from_data(data, log, eval_batch_size=2, batch_size=2)
    assert not isinstance(dm.train_dataloader(), DataLoader) and len(dm.train_dataloader()) > 0
    for loader, stage in ((dm.val_dataloader(), "valid"), (dm.test_dataloader(), "test")):
        assert isinstance(loader, StageBatches) and not isinstance(loader, DataLoader)
        batches = list(loader)
        assert [id(b) for b in loader] == [id(b) for b in batches]
        assert torch.cat([b["impression"] for b in batches]).tolist() == dm.split[stage].tolist()
        for b in batches:
            for row, i in enumerate(b["impression"].tolist()):
                lo, hi = int(log.candidate_indptr[i]), int(log.candidate_indptr[i + 1])
                keep = b["candidate_mask"][row]
                assert b["candidates"][row][keep].tolist() == log.candidates[lo:hi].tolist()
                assert b["label"][row][keep].tolist() == log.label[lo:hi].tolist()


def test_graphs_hold_the_train_clicks_and_fingerprint_follows_the_data():
    data, log = tiny()
    dm = ImpressionDataModule.from_data(data, log)
    g = dm.graphs()
    assert g.task == "impression" and dm.model_kwargs()["task"] == "impression"
    assert g.item_counts().sum().item() == torch.unique(dm.train_interactions, dim=0).shape[0]
    data2, log2 = tiny(seed=1)
    assert ImpressionDataModule.from_data(data2, log2).fingerprint != dm.fingerprint
    assert ImpressionDataModule.from_data(data, log, max_history=3).fingerprint != dm.fingerprint


def test_bad_logs_and_protocols_are_errors():
    data, log = tiny()
    bad = ImpressionLog(log.impression_ids, log.user, log.time, log.history_indptr, log.history,
                        log.candidate_indptr, log.candidates + 100, log.label)
    with pytest.raises(DataValidationError, match="candidates holds item ids"):
        ImpressionDataModule.from_data(data, bad)
    with pytest.raises(ValueError, match="impression/temporal"):
        ImpressionDataModule.from_data(data, log, protocol=kgzoo.EvalProtocol(task="ctr"))
    with pytest.raises(ValueError, match="splits by day"):
        kgzoo.EvalProtocol(task="impression", split="random")
    with pytest.raises(ValueError, match="npratio"):
        ImpressionDataModule.from_data(data, log, npratio=0)


def _write_mind(folder, behaviors: list[str]) -> None:
    ent = json.dumps([{"Label": "Paris", "Type": "G", "WikidataId": "Q90", "Confidence": 1.0,
                       "OccurrenceOffsets": [0], "SurfaceForms": ["Paris"]}])
    (folder / "news.tsv").write_text(f"N1\tnews\tworld\tParis votes\tA vote.\turl\t{ent}\t[]\n"
                                     "N2\tsports\tball\tA match\t\turl\t[]\t[]\n")
    (folder / "behaviors.tsv").write_text("\n".join(behaviors) + "\n")


def test_read_mind_impressions_keeps_news_without_text_as_items(tmp_path):
    _write_mind(tmp_path, ["1\tU1\t11/9/2019 8:00:00 AM\tN1 N9\tN2-1 N7-0 N1-0",
                           "2\tU2\t11/10/2019 9:30:00 PM\t\tN7-1 N2-0"])
    data, log = read_mind_impressions(tmp_path, name="t")
    assert data.item_ids == ["N1", "N2", "N9", "N7"] and data.item_text[2:] == ["", ""]
    assert data.cleaning["news ids: in the logs without a news.tsv row"] == 2
    assert log.history.tolist() == [0, 2] and log.history_indptr.tolist() == [0, 2, 2]
    assert log.candidates.tolist() == [1, 3, 0, 3, 1] and log.label.tolist() == [1, 0, 0, 1, 0]
    assert log.user.tolist() == [0, 1] and (log.time[1] - log.time[0]).item() == DAY + 13 * 3600 + 1800
    assert log.stats(data.item_text)["logged_news_with_text"] == 2
    # the title entity "Paris" at characters 0-5 of N1's text, in entity ids after the unknown news
    assert data.mentions.tolist() == [[0, 4, 0, 5]] and data.entity_ids[4] == "Q90"
    assert data.item_text[0][0:5] == "Paris"


def test_read_mind_impressions_names_the_bad_line(tmp_path):
    _write_mind(tmp_path, ["1\tU1\t11/9/2019 8:00:00 AM\tN1\tN2-1", "2\tU2\t11/10/2019 9:30:00 PM\t\tN7-x"])
    with pytest.raises(DataFormatError, match=r"behaviors.tsv.*line 2.*impressions"):
        read_mind_impressions(tmp_path)


def test_read_mind_impressions_names_the_bad_token_and_an_empty_line(tmp_path):
    # the third token of the impression is the bad one: the error quotes it, not the first token
    _write_mind(tmp_path, ["1\tU1\t11/9/2019 8:00:00 AM\tN1\tN2-1 N7-0 N1-2 N2-0"])
    with pytest.raises(DataFormatError, match=r"line 1, field 'impressions': token 'N1-2' is not"):
        read_mind_impressions(tmp_path)
    _write_mind(tmp_path, ["1\tU1\t11/9/2019 8:00:00 AM\tN1\tN2-1", "", "2\tU2\t11/10/2019 8:00:00 AM\t\tN1-1"])
    with pytest.raises(DataFormatError, match=r"line 2, field 'impression_id': empty line"):
        read_mind_impressions(tmp_path)
    # a column missing from every line (a file of another layout): the message lists MIND's columns
    _write_mind(tmp_path, ["U1\t11/9/2019 8:00:00 AM\tN1\tN2-1"])
    with pytest.raises(DataFormatError, match=r"line 1, field 'impressions': truncated line: 4 fields, expected 5 "
                                              r"\(impression_id, user_id, time, history, impressions\)"):
        read_mind_impressions(tmp_path)


def test_mind_train_and_dev_concatenated_read_as_one_log(tmp_path):
    # MIND's train and dev news.tsv share most lines: a line repeated whole is dropped and counted
    _write_mind(tmp_path, ["1\tU1\t11/9/2019 8:00:00 AM\tN1\tN2-1 N7-0", "1\tU2\t11/10/2019 9:00:00 AM\tN2\tN1-1"])
    news = (tmp_path / "news.tsv").read_text()
    (tmp_path / "news.tsv").write_text(news + news.splitlines(keepends=True)[1])
    data, log = read_mind_impressions(tmp_path)
    assert data.item_ids == ["N1", "N2", "N7"] and data.cleaning["news.tsv: a line repeating an earlier one"] == 1
    assert log.n_impressions == 2  # impression ids may repeat (dev's restart at 1): nothing keys on them
    # the same id with other fields is an error naming both lines; later lines keep their numbers
    (tmp_path / "news.tsv").write_text(news + news.splitlines(keepends=True)[1] + news.replace("A match", "A game"))
    with pytest.raises(DataFormatError, match=r"line 5, field 'news_id': news id 'N2' repeats line 2 with other"):
        read_mind_impressions(tmp_path)
    (tmp_path / "news.tsv").write_text(news + news.splitlines(keepends=True)[1] + "N3\tx\ty\tT\t\turl\t[{\t[]\n")
    with pytest.raises(DataFormatError, match=r"line 4, field 'title_entities': invalid JSON"):
        read_mind_impressions(tmp_path)


def test_an_impression_without_news_is_named_by_its_row():
    # ids may repeat (MIND's train and dev each count from 1): the error names the row first
    _, log = tiny()
    log.impression_ids[3] = log.impression_ids[1]
    ptr = log.candidate_indptr.clone()
    keep = torch.ones(log.candidates.numel(), dtype=torch.bool)
    keep[ptr[3]:ptr[4]] = False
    log.candidates, log.label = log.candidates[keep], log.label[keep]
    log.candidate_indptr = torch.cat([ptr[:4], ptr[4:] - int(ptr[4] - ptr[3])])
    with pytest.raises(DataValidationError, match=r"t: impression 3 \(the log's row; id 'imp1', which may repeat\) "
                                                  r"shows no news"):
        log.validate(5, 20, "t")


def test_a_header_line_is_named_as_one(tmp_path):
    # MIND's files have no header; one written by a user's own export fails on its first line with a hint
    _write_mind(tmp_path, ["1\tU1\t11/9/2019 8:00:00 AM\tN1\tN2-1 N7-0"])
    news = (tmp_path / "news.tsv").read_text()
    header = "news_id\tcategory\tsubcategory\ttitle\tabstract\turl\ttitle_entities\tabstract_entities\n"
    (tmp_path / "news.tsv").write_text(header + news)
    with pytest.raises(DataFormatError, match=r"news.tsv, line 1, field 'title_entities': invalid JSON.*a header line\?"):
        read_mind_impressions(tmp_path)
    (tmp_path / "news.tsv").write_text(news + "N3\tx\ty\tT\t\turl\t[{\t[]\n")  # a later line: no hint
    with pytest.raises(DataFormatError, match=r"invalid JSON: [^(]*$"):
        read_mind_impressions(tmp_path)
    (tmp_path / "news.tsv").write_text(news)
    behaviors = (tmp_path / "behaviors.tsv").read_text()
    (tmp_path / "behaviors.tsv").write_text("impression_id\tuser_id\ttime\thistory\timpressions\n" + behaviors)
    with pytest.raises(DataFormatError, match=r"behaviors.tsv, line 1, field 'time'.*a header line\?"):
        read_mind_impressions(tmp_path)


def test_a_mind_folder_checkpoint_entry_names_its_folder(tmp_path):
    # another process registers the folder again from the checkpoint's data entry
    from kgzoo.hub.checkpoint import datamodule_arguments

    folder = tmp_path / "my-mind"
    folder.mkdir()
    _write_mind(folder, ["1\tU1\t11/9/2019 8:00:00 AM\tN1\tN2-1 N7-0", "2\tU2\t11/10/2019 9:00:00 AM\tN2\tN1-1 N7-0",
                         "3\tU1\t11/11/2019 9:00:00 AM\tN1 N2\tN7-1 N2-0"])
    state = kgzoo.create_datamodule(str(folder)).state_dict()
    assert state["folder"] == str(folder.resolve())
    assert datamodule_arguments({**state, "dataset": "not-registered-here"})["dataset"] == str(folder.resolve())
    data, log = tiny()
    assert ImpressionDataModule.from_data(data, log).state_dict()["folder"] is None


def test_word_pieces_align_with_entity_mentions():
    from kgzoo.models.layers.news import align_mentions

    # news 0: pieces at characters [0,5) [6,11) [12,15); news 1: [0,3) [4,9)
    offsets = torch.tensor([[[0, 5], [6, 11], [12, 15]], [[0, 3], [4, 9], [0, 0]]])
    real = torch.tensor([[True, True, True], [True, True, False]])
    mentions = torch.tensor([[1, 7, 4, 9], [0, 3, 6, 15], [0, 2, 0, 2]])  # (item, entity, start, end)
    out = align_mentions(offsets, real, torch.tensor([0, 1]), mentions, n_items=2)
    assert out.tolist() == [[3, 4, 4], [0, 8, 0]]  # entity + 1; news 0's first piece overlaps entity 2


def test_cleaning_remaps_mentions_with_the_entities():
    from kgzoo.data.cleaning import drop_unreachable, k_core

    data, _ = tiny()
    I = data.n_items
    # an island entity I+3 (unreachable) shifts nothing before it; mention entity I+2 stays
    data = data.replace(n_entities=I + 5, triples=torch.tensor([[0, 0, I], [1, 0, I + 1], [2, 0, I + 4], [I + 3, 0, I + 3]]),
                        mentions=torch.tensor([[2, I + 4, 0, 3], [1, I + 1, 0, 2], [4, I + 3, 0, 1]]))
    out = drop_unreachable(data)
    assert out.mentions.tolist() == [[2, I + 2, 0, 3], [1, I + 1, 0, 2]]
    assert out.cleaning["mentions: entity unreachable or unused"] == 1
    cored = k_core(out.replace(interactions=torch.tensor([[0, 1], [1, 1], [0, 2]]), label=None), 1, 2)
    assert cored.n_items == 1 and cored.mentions.tolist() == [[0, 2, 0, 2]]  # entities: item, I, I+1, ...


def test_any_mind_folder_as_impressions(tmp_path):
    _write_mind(tmp_path, ["1\tU1\t11/9/2019 8:00:00 AM\tN1\tN2-1 N7-0", "2\tU2\t11/10/2019 9:00:00 AM\tN2\tN1-1 N7-0",
                           "3\tU1\t11/11/2019 9:00:00 AM\tN1 N2\tN7-1 N2-0"])
    dm = ImpressionDataModule.from_mind_folder(tmp_path, name="my-mind")
    assert dm.dataset == "my-mind" and dm.sizes() == {"train": 1, "valid": 1, "test": 1, "train_clicks": 1}
    assert set(dm.data.source_checksums) == {"news.tsv", "behaviors.tsv"} and "triples: duplicate" in dm.data.cleaning
    fp = dm.fingerprint
    (tmp_path / "behaviors.tsv").write_text((tmp_path / "behaviors.tsv").read_text().replace("N7-1", "N7-0 N1-1"))
    assert ImpressionDataModule.from_mind_folder(tmp_path, name="my-mind").fingerprint != fp


@pytest.mark.slow  # two spawned processes
def test_two_ddp_ranks_score_each_impression_once_and_give_the_single_process_metrics(tmp_path):
    """The loaders without a DataLoader under real DDP (gloo, ``ddp_spawn``): rank ``r`` of 2 scores
    impressions ``r::2``, each once, and the reduced metrics are the single process's."""
    import lightning as L

    import kgzoo

    data, log = tiny(n_imp=30)
    dm = ImpressionDataModule.from_data(data, log, eval_batch_size=2)
    model = kgzoo.create_model("pop", datamodule=dm, config=False)
    kw = dict(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
              default_root_dir=str(tmp_path))
    one = L.Trainer(devices=1, **kw).test(model, datamodule=dm, verbose=False)[0]
    two = L.Trainer(devices=2, strategy="ddp_spawn", **kw).test(model, datamodule=dm, verbose=False)[0]
    assert one.keys() == two.keys() and "test/auc" in one
    assert all(abs(one[k] - two[k]) < 1e-6 for k in one), (one, two)


def test_fewer_training_batches_than_ranks_is_an_error_as_on_top_k(monkeypatch):
    # the top-K/CTR training set said so; the impression set gave each of 2 ranks 0 batches and the fit
    # trained nothing (the triple set of KG link prediction alike: tests/unit/test_ddp_launch.py)
    import kgzoo.data.datamodule as datamodule

    data, log = tiny(n_imp=24)
    dm = ImpressionDataModule.from_data(data, log, batch_size=10_000)
    dm.setup()
    assert len(dm.train_dataloader()) == 1
    monkeypatch.setattr(datamodule, "rank_world", lambda: (0, 2))
    with pytest.raises(ValueError, match="batch_size=10000 gives 1 training batches per epoch, fewer than the 2 ranks"):
        len(dm.train_dataloader())
