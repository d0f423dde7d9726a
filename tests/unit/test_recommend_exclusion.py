"""One parameter for which items a recommendation leaves out: ``exclude`` with the values
``seen``/``train``/``none`` and the default ``seen`` in ``Pretrained.recommend``, ``export`` and the
``kgzoo recommend``/``kgzoo export`` commands. Before, ``kgzoo recommend`` left out every seen item
and ``kgzoo export`` only the train items, so one user got two different lists."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

import kgzoo
from kgzoo.cli import main
from kgzoo.hub import Pretrained, PretrainedSpec, export
from kgzoo.hub.pretrained import DEFAULT_EXCLUDE, EXCLUDE


@pytest.fixture(scope="module")
def pre(tmp_path_factory) -> Pretrained:
    """BPR on 12 users x 30 items, 10 interactions per user (so valid and test hold items too)."""
    torch.manual_seed(0)
    rows = [(f"u{u}", f"i{(u * 7 + 3 * k) % 30}") for u in range(12) for k in range(10)]
    ds = kgzoo.from_frames(pd.DataFrame(rows, columns=["user", "item"]), name="exclusion-shop")
    dm = kgzoo.create_datamodule(ds.name, batch_size=16)
    dm.setup()
    model = kgzoo.create_model("bpr", datamodule=dm, config=False, embedding_dim=4)
    spec = PretrainedSpec(name="bpr/exclusion-shop", model="bpr", dataset=ds.name, protocol=dm.protocol.to_dict(),
                          fingerprint=dm.fingerprint, metrics={}, hparams={"embedding_dim": 4}, sha256="", size=0,
                          licence="", base_dir=tmp_path_factory.mktemp("w"))
    return Pretrained(spec, model.eval(), dm)


def pairs(csr) -> set[tuple[int, int]]:
    indptr, indices = csr
    users = torch.repeat_interleave(torch.arange(indptr.numel() - 1), indptr.diff())
    return set(zip(users.tolist(), indices.tolist()))


def test_one_set_of_values_and_the_seen_default():
    assert EXCLUDE == ("seen", "train", "none") and DEFAULT_EXCLUDE == "seen"


def test_recommend_and_export_give_the_same_lists_by_default(pre, tmp_path):
    users = pre.user_ids
    seen = pairs(pre.seen())
    train = pairs(pre.datamodule.csr["train"])
    assert len(seen) > len(train)  # valid and test hold interactions: the policies differ here
    lists = pre.recommend(users, k=5)
    got = {(pre.user_index([u]).item(), pre.item_ids.index(i)) for u, recs in zip(users, lists) for i, _, _ in recs}
    assert not got & seen
    summary = export(pre, tmp_path / "out", k=5)
    assert summary["exclude"] == "seen"
    top = pd.read_parquet(tmp_path / "out" / "topk.parquet")
    assert [list(g["item_id"]) for _, g in top.groupby("user", sort=True)] == [[i for i, _, _ in r] for r in lists]

    # "train" leaves the valid and test items in, in both
    by_train = pre.recommend(users, k=5, exclude="train")
    assert {(pre.user_index([u]).item(), pre.item_ids.index(i)) for u, r in zip(users, by_train)
            for i, _, _ in r} & (seen - train)
    export(pre, tmp_path / "train", k=5, exclude="train")
    top = pd.read_parquet(tmp_path / "train" / "topk.parquet")
    assert [list(g["item_id"]) for _, g in top.groupby("user", sort=True)] == [[i for i, _, _ in r] for r in by_train]
    for bad in (lambda: pre.recommend("u1", exclude="valid"), lambda: export(pre, tmp_path / "bad", exclude=True)):
        with pytest.raises(ValueError, match="exclude=.*expected one of 'seen', 'train', 'none'"):
            bad()


def test_the_old_keyword_still_works_with_a_deprecation_warning(pre):
    with pytest.warns(DeprecationWarning, match="exclude_seen"):
        assert pre.recommend("u1", k=5, exclude_seen=False) == pre.recommend("u1", k=5, exclude="none")
    with pytest.warns(DeprecationWarning, match="exclude_seen"):
        assert pre.recommend("u1", k=5, exclude_seen=True) == pre.recommend("u1", k=5)
    with pytest.warns(DeprecationWarning, match="exclude_seen"):  # its old place: the third positional argument
        assert pre.recommend("u1", 5, False) == pre.recommend("u1", k=5, exclude="none")


def test_the_commands_share_the_parameter_and_the_default(pre, tmp_path, capsys):
    folder = tmp_path / "saved"
    pre.save_pretrained(folder)
    assert main(["recommend", "--model", str(folder), "--user", "u3", "-k", "3"]) == 0
    printed = capsys.readouterr().out
    want = [i for i, _, _ in pre.recommend("u3", k=3)]
    assert "top-3 unseen items for user u3" in " ".join(printed.split())  # the title wraps at the table's width
    assert [line.split()[3] for line in printed.splitlines() if line.split()[:2] in (["│", "1"], ["│", "2"],
                                                                                     ["│", "3"])] == want
    assert main(["export", "--model", str(folder), "--top-k", "3", "--out", str(tmp_path / "e"), "--users", "u3"]) == 0
    assert json.loads((tmp_path / "e" / "export.json").read_text())["exclude"] == "seen"
    assert list(pd.read_parquet(tmp_path / "e" / "topk.parquet")["item_id"]) == want
    assert main(["recommend", "--model", str(folder), "--user", "u3", "-k", "3", "--exclude", "none"]) == 0
    assert "top-3 items for user u3" in " ".join(capsys.readouterr().out.split())
    assert main(["recommend", "--model", str(folder), "--user", "u3", "-k", "3", "--include-seen"]) == 0
    out = capsys.readouterr()
    assert "--include-seen is deprecated, use --exclude none" in out.err and "top-3 items for user u3" in " ".join(out.out.split())


def test_recommend_takes_a_checkpoint_as_export_does(pre, tmp_path, capsys):
    """kgzoo recommend --model best.ckpt said "invalid pretrained name" where kgzoo export took
    the same checkpoint: a model just trained by kgzoo bench or fit could not be asked."""
    import lightning as L

    model = kgzoo.create_model("bpr", datamodule=pre.datamodule, config=False, embedding_dim=4)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(model, datamodule=pre.datamodule)
    ckpt = tmp_path / "best.ckpt"
    trainer.save_checkpoint(ckpt)
    assert main(["recommend", "--model", str(ckpt), "--user", "u3", "-k", "3"]) == 0
    printed = capsys.readouterr().out
    want = [i for i, _, _ in kgzoo.load_checkpoint(ckpt).recommend("u3", k=3)]
    assert [line.split()[3] for line in printed.splitlines() if line.split()[:2] in (["│", "1"], ["│", "2"],
                                                                                     ["│", "3"])] == want


def test_a_list_longer_than_the_unseen_items_stops_at_them(pre):
    """recommend(user, k) with k above the user's unseen items filled the list with seen items at
    score -inf: a user of ml-100k-kg with 737 ratings got 737 of them back at k=1682."""
    user, n_items = "u0", len(pre.item_ids)
    indptr, indices = pre.seen()
    u = int(pre.user_index([user]))
    seen = {pre.item_ids[i] for i in indices[indptr[u]:indptr[u + 1]].tolist()}
    recs = pre.recommend(user, k=n_items)
    assert len(recs) == n_items - len(seen) and not {i for i, _, _ in recs} & seen
    assert all(s > float("-inf") for _, _, s in recs)
    assert len(pre.recommend(user, k=n_items, exclude="none")) == n_items  # nothing left out: the whole ranking
    assert [len(r) for r in pre.recommend([user, "u1"], k=n_items - 5)] == [n_items - len(seen)] * 2  # 10 seen each
