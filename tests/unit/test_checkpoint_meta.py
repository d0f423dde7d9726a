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
