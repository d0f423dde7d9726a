"""The ``"kgzoo"`` entry of a checkpoint (issue 15, part 4): reading it and naming its model."""
from __future__ import annotations

import pytest
import torch

from kgzoo.hub import PretrainedError, checkpoint_meta
from kgzoo.hub.checkpoint import model_name


def test_model_name_from_registry_or_class_path():
    assert model_name({"model": "bpr", "class_path": "nowhere.Nothing"}) == "bpr"
    # a name this process does not know: the class is imported from its path (a plugin's model)
    assert model_name({"model": "renamed", "class_path": "kgzoo.models.lightgcn.LightGCN"}) == "lightgcn"
    with pytest.raises(PretrainedError, match="cannot be imported"):
        model_name({"model": "mine", "class_path": "no_such_module_xyz.Model"})
    with pytest.raises(PretrainedError, match="not a registered model"):
        model_name({"model": None, "class_path": "kgzoo.models.base.Recommender"})


def test_checkpoint_meta_refuses_newer_formats_and_other_files(tmp_path):
    path = tmp_path / "x.ckpt"
    torch.save({"state_dict": {}, "kgzoo": {"format": 99, "kgzoo": "9.0"}}, path)
    with pytest.raises(PretrainedError, match="format 99 is newer"):
        checkpoint_meta(path)
    (tmp_path / "junk.ckpt").write_text("not a checkpoint")
    with pytest.raises(PretrainedError, match="not a checkpoint torch can read"):
        checkpoint_meta(tmp_path / "junk.ckpt")
    torch.save({"state_dict": {}, "kgzoo": {"format": 1, "model": "bpr"}}, path)
    ckpt, meta = checkpoint_meta(path)
    assert meta["model"] == "bpr" and "state_dict" in ckpt


def test_fp16_rule_allows_one_user_on_a_hit_rate_only():
    from kgzoo.hub import fp16_within

    m32 = {"test/ndcg@10": 0.3, "test/hit@10": 0.5}
    assert fp16_within({"test/ndcg@10": 0.3009, "test/hit@10": 0.5}, m32, 1e-3, 943)
    assert fp16_within({"test/ndcg@10": 0.3, "test/hit@10": 0.5 + 1 / 943}, m32, 1e-3, 943)  # one user flips
    assert not fp16_within({"test/ndcg@10": 0.3, "test/hit@10": 0.5 + 2 / 943}, m32, 1e-3, 943)  # two users
    assert not fp16_within({"test/ndcg@10": 0.3011, "test/hit@10": 0.5}, m32, 1e-3, 943)  # ndcg: no resolution rule
    assert not fp16_within({"test/ndcg@10": 0.3, "test/hit@10": 0.5 + 1 / 943}, m32, 1e-3, None)  # users unknown


def test_pretrained_training_label_says_whether_the_weights_converged():
    from kgzoo.hub import list_pretrained

    labels = {e["name"]: e["training"] for e in list_pretrained("*/ml-100k-kg")}
    assert labels["pop/ml-100k-kg"] == "closed form"
    # the seed of the row the weights are: the listing's 0.2972 beside the leaderboard's 0.2947 ± 0.0050
    # (the mean of seeds 0-2) read as a mismatch without it
    assert labels["bpr/ml-100k-kg"] == "converged (epoch 106, seed 0), tuned (10 trials)"
    assert all(v == "closed form" or v.startswith(("converged (epoch ", "short schedule")) for v in labels.values())
