"""``kgzoo export`` (issue 15, part 5): every user's top-K with raw ids as Parquet, embeddings
with raw-id maps for inner-product models, batched scoring for the others, the HNSW index's recall."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

import kgzoo
from kgzoo.cli import main
from kgzoo.hub import export, open_model


def test_export_all_943_users_from_a_checkpoint(bench_runs, tmp_path, capsys):
    runs, rows = bench_runs
    ckpt = str(runs / rows["lightgcn"].checkpoint)
    out = tmp_path / "out"
    assert main(["export", "--model", ckpt, "--top-k", "10", "--out", str(out), "--ann"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "export.json").read_text())
    assert summary["users"] == 943 and summary["k"] == 10 and summary["exclude"] == "seen"
    assert sorted(summary["files"]) == sorted(["topk.parquet", "embeddings.safetensors", "users.parquet",
                                               "items.parquet", "items.faiss"])
    top = pd.read_parquet(out / "topk.parquet")
    assert len(top) == 943 * 10 and list(top.columns) == ["user", "user_id", "rank", "item", "item_id", "score"]

    # the Parquet lists are the model's own top-K, every seen item masked (the default everywhere)
    pre = kgzoo.load_checkpoint(ckpt)
    assert pre.user_ids[0] == "1" and len(pre.user_ids) == 943 and len(pre.item_ids) == 1682
    users = torch.arange(943)
    scores, items = pre.model.recommend(users, 10, exclude=pre.seen())
    assert torch.equal(torch.tensor(top["item"].to_numpy()).view(943, 10), items)
    assert torch.allclose(torch.tensor(top["score"].to_numpy()).view(943, 10), scores)
    assert (top["rank"].to_numpy() == list(range(1, 11)) * 943).all()
    assert top["user_id"].tolist() == [pre.user_ids[u] for u in top["user"]]
    assert top["item_id"].tolist() == [pre.item_ids[i] for i in top["item"]]
    indptr, indices = pre.seen()
    seen = set(zip(torch.repeat_interleave(users, indptr.diff()).tolist(), indices.tolist()))
    assert not seen & set(zip(top["user"], top["item"]))

    # embeddings and their id maps score as the model does
    emb = load_file(str(out / "embeddings.safetensors"))
    assert emb["user"].shape == (943, 64) and emb["item"].shape == (1682, 64)
    assert torch.allclose(emb["user"][:5] @ emb["item"].T, pre.model.score(torch.arange(5)), atol=1e-5)
    ids = pd.read_parquet(out / "users.parquet")
    assert ids["user_id"].tolist() == pre.user_ids and ids["user"].tolist() == list(range(943))
    assert pd.read_parquet(out / "items.parquet")["item_id"].tolist() == pre.item_ids

    recall = summary["ann"]["recall@10"]
    assert 0.9 <= recall <= 1.0 and f"recall@10 against exact search: {recall:.4f}" in printed
    import faiss

    index = faiss.read_index(str(out / "items.faiss"))
    assert index.ntotal == 1682


def test_a_model_without_embeddings_exports_by_batched_scoring(tmp_path):
    pre = open_model("kgcn/ml-100k-kg")  # a pretrained name
    assert not pre.model.has_final_embeddings()
    with pytest.raises(NotImplementedError, match="KGCN scores each .user, item. pair itself"):
        pre.model.final_embeddings()
    with pytest.raises(ValueError, match="has no embeddings to index"):
        export(pre, tmp_path / "ann", k=5, ann=True)
    summary = export(pre, tmp_path / "out", k=5, users=["196", "1"], exclude="seen", batch_size=1)
    assert summary["files"] == ["topk.parquet"] and summary["users"] == 2
    top = pd.read_parquet(tmp_path / "out" / "topk.parquet")
    want = pre.recommend(["196", "1"], k=5, exclude="seen")
    assert [list(g["item_id"]) for _, g in top.groupby("user_id", sort=False)] == [[i for i, _, _ in w] for w in want]
    with pytest.raises(KeyError, match="unknown user"):
        export(pre, tmp_path / "bad", k=5, users=["no-such-user"])
    with pytest.raises(ValueError, match="exclude="):
        export(pre, tmp_path / "bad", k=5, exclude="valid")


def test_a_mistyped_path_is_named_as_a_path_not_as_a_bad_pretrained_name(tmp_path):
    """Found by the new-user trial of issue 16: `kgzoo export --model ./nonexist` said "invalid pretrained name"."""
    for source in ["./nonexist", str(tmp_path / "runs" / "best.ckpt"), "best.ckpt", "runs/ml-100k-kg/bpr/best.ckpt"]:
        with pytest.raises(FileNotFoundError, match="does not exist: no checkpoint file"):
            open_model(source)
    with pytest.raises(KeyError, match="did you mean 'bpr/ml-100k-kg'"):
        open_model("bprr/ml-100k-kg")  # a name stays a name

