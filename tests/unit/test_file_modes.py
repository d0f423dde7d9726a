"""Files kgzoo writes get the usual mode (0666 less the umask), like every other file: safetensors'
``save_file`` created its files 0600 (``kgzoo export``'s ``embeddings.safetensors`` was 0600)."""
from __future__ import annotations

import os
import stat

import numpy as np
import pandas as pd
import torch

import kgzoo
from kgzoo.hub import export
from kgzoo.hub.pretrained import Pretrained
from kgzoo.hub.manifest import PretrainedSpec
from kgzoo.pretrain.kg_vectors import _cached_tables
from kgzoo.pretrain.text_vectors import _write_shard


def umask_mode() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_exported_files_and_vector_caches_get_the_umask_mode(tmp_path):
    old = os.umask(0o022)  # a umask that gives others read access: 0600 would show
    try:
        rows = [(f"u{u}", f"i{(u * 3 + k) % 30}") for u in range(12) for k in range(8)]
        ds = kgzoo.from_frames(pd.DataFrame(rows, columns=["user", "item"]), name="modes-shop")
        dm = kgzoo.create_datamodule(ds.name, batch_size=16)
        model = kgzoo.create_model("bpr", datamodule=dm, config=False, embedding_dim=4)
        spec = PretrainedSpec(name="bpr/modes-shop", model="bpr", dataset=ds.name, protocol=dm.protocol.to_dict(),
                              fingerprint=dm.fingerprint, metrics={}, hparams={}, sha256="", size=0, licence="",
                              base_dir=tmp_path)
        summary = export(Pretrained(spec, model.eval(), dm), tmp_path / "out", k=3)
        assert "embeddings.safetensors" in summary["files"]
        for f in summary["files"]:
            assert mode(tmp_path / "out" / f) == 0o644, (f, oct(mode(tmp_path / "out" / f)))
        _cached_tables(tmp_path / "kg.safetensors", 3, False, lambda: {"entity": torch.zeros(3, 2)}, {})
        assert mode(tmp_path / "kg.safetensors") == 0o644
        _write_shard(tmp_path / "text", np.zeros((2, 32), dtype=np.uint8), torch.zeros(2, 4), {})
        (shard,) = (tmp_path / "text").iterdir()
        assert mode(shard) == 0o644 == umask_mode()
    finally:
        os.umask(old)
