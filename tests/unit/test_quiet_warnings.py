"""kgzoo silences the library notices it triggers knowingly, at their source and only there:
torch's "Sparse CSR tensor support is in beta state" and "Sparse invariant checks are implicitly
disabled" on the first CSR tensor of a process (``kgzoo.ops.csr.sparse_csr``); a real warning
still shows and the process's warning filters are left as they were."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import warnings
import torch
from kgzoo.models.layers.propagation import SparsePattern
from kgzoo.ops.csr import sparse_csr, to_csr

before = list(warnings.filters)
rows, cols = torch.tensor([0, 0, 1, 2]), torch.tensor([1, 2, 0, 2])
pattern = SparsePattern(rows, cols, 3, 3)
a, at = pattern.matrices(torch.ones(4))
a2, _ = pattern.matrices(torch.ones(4), keep=torch.tensor([True, False, True, True]))
indptr, indices = to_csr(rows, cols, 3)
m = sparse_csr(indptr, indices, torch.ones(4), (3, 3))
assert torch.equal(a.to_dense(), m.to_dense()) and torch.equal(at.to_dense(), m.to_dense().T)
assert a2.to_dense().sum() == 3
assert warnings.filters == before, "the filters of the process changed"
warnings.warn("a real warning of the caller")
print("done")
"""


def test_first_csr_tensor_prints_no_torch_notice_and_real_warnings_show():
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-W", "always", "-c", SCRIPT], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "done", proc.stderr[-3000:]
    assert "beta state" not in proc.stderr and "invariant checks" not in proc.stderr, proc.stderr
    assert "UserWarning: a real warning of the caller" in proc.stderr


def test_kg_vector_pretraining_drops_the_no_validation_notice_and_nothing_else(tmp_path):
    """The KG vectors' Trainer skips validation on purpose (limit_val_batches=0): Lightning's
    "validation_step but no val_dataloader" notice said nothing, once per cell, in every lane's log."""
    import warnings

    import pandas as pd

    import kgzoo
    from kgzoo.pretrain.kg_vectors import KGVectors
    from kgzoo.registry import MODELS

    rows = [(f"u{u}", f"i{(u * 3 + k) % 10}") for u in range(8) for k in range(5)]
    triples = [(f"i{i}", "genre", f"g{i % 3}") for i in range(10)]
    ds = kgzoo.from_frames(pd.DataFrame(rows, columns=["user", "item"]),
                           triples=pd.DataFrame(triples, columns=["head", "relation", "tail"]), name="quiet-kg")
    dm = kgzoo.create_datamodule(ds.name, batch_size=16)
    kv = KGVectors(dm, "transe", MODELS.get("transe"), {"embedding_dim": 4}, epochs=1, batch_size=8,
                   accelerator="cpu", cache_dir=tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vec = kv.train()["entity"]
        warnings.warn("a real warning still shows")
    assert vec.shape[0] == dm.n_entities
    shown = [str(w.message) for w in caught]
    assert not [m for m in shown if "val_dataloader" in m or "LeafSpec" in m], shown
    assert shown[-1] == "a real warning still shows"


BANNERS = """
import pandas as pd
import lightning as L
from lightning.pytorch.utilities.rank_zero import rank_zero_info

import kgzoo
from kgzoo.hub import evaluate
from kgzoo.quiet import lightning_quiet

rows = [(f"u{u}", f"i{(u * 7 + k) % 30}") for u in range(12) for k in range(10)]
ds = kgzoo.from_frames(pd.DataFrame(rows, columns=["user", "item"]), name="banner-shop")
dm = kgzoo.create_datamodule(ds.name, batch_size=16)
dm.setup()
model = kgzoo.create_model("bpr", datamodule=dm, config=False, embedding_dim=4)
print("metrics", sorted(evaluate(model, dm))[:1], flush=True)
with lightning_quiet():
    rank_zero_info("another INFO line of Lightning's")
L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False)  # outside the block: as Lightning has it
print("done", flush=True)
"""


def test_evaluation_prints_no_lightning_banner_and_the_filter_is_scoped():
    """`kgzoo.hub.evaluate` (scripts/publish_pretrained.py evaluates three times per model) and
    `kgzoo test` printed Lightning's "GPU available", "TPU available" and litlogger/litmodels tips
    on every Trainer: they are dropped inside `lightning_quiet` (the Trainer built inside it), its
    other INFO lines still show, and outside the block Lightning prints as before."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", BANNERS], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, env=env, cwd=REPO, timeout=300)  # one stream, in the order printed
    out = proc.stdout
    assert proc.returncode == 0 and "done" in out, out[-3000:]
    before, _, after = out.partition("metrics [")
    assert "available:" not in before and "Tip:" not in before, before  # evaluate: quiet
    assert "another INFO line of Lightning's" in after  # the block drops the banners only
    assert after.count("GPU available: ") == 1 and after.count("TPU available: ") == 1  # the filter left


def test_closed_form_fit_drops_the_no_optimizer_notice_and_nothing_else():
    """Pop trains nothing (``configure_optimizers`` returns None): Lightning's
    "`LightningModule.configure_optimizers` returned `None`" notice printed once per Pop cell in
    every ``kgzoo bench`` log, because the pattern of :data:`kgzoo.quiet.LIGHTNING_NOTICES` wanted
    a backtick right before ``configure_optimizers`` where Lightning writes ``LightningModule.``."""
    import warnings

    import lightning as L
    import pandas as pd

    import kgzoo
    from kgzoo.quiet import lightning_quiet

    rows = [(f"u{u}", f"i{(u * 5 + k) % 30}") for u in range(12) for k in range(10)]
    ds = kgzoo.from_frames(pd.DataFrame(rows, columns=["user", "item"]), name="quiet-pop")
    dm = kgzoo.create_datamodule(ds.name, batch_size=16)
    model = kgzoo.create_model("pop", datamodule=dm, config=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with lightning_quiet():
            trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                                enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
            trainer.fit(model, datamodule=dm)
        warnings.warn("a real warning still shows")
    shown = [str(w.message) for w in caught]
    assert not [m for m in shown if "configure_optimizers" in m], shown
    assert shown[-1] == "a real warning still shows"


FIT_STOPPED_SCRIPT = """
import pandas as pd
import lightning as L

import kgzoo
from kgzoo.hub.update import update_model
from kgzoo.pretrain.kg_vectors import KGVectors
from kgzoo.registry import MODELS

rows = [(f"u{u}", f"i{(u * 7 + 3 * k) % 30}") for u in range(12) for k in range(8)]
triples = [(f"i{i}", "genre", f"g{i % 3}") for i in range(30)]
ds = kgzoo.from_frames(pd.DataFrame(rows, columns=["user", "item"]),
                       triples=pd.DataFrame(triples, columns=["head", "relation", "tail"]), name="quiet-fit")
dm = kgzoo.create_datamodule(ds.name, batch_size=16)
KGVectors(dm, "transe", MODELS.get("transe"), {"embedding_dim": 4}, epochs=1, batch_size=8, accelerator="cpu",
          cache_dir=TMP).train()
print("vectors", flush=True)
model = kgzoo.create_model("bpr", datamodule=dm, config=False, embedding_dim=4)
new = pd.DataFrame({"user": ["new", "new"], "item": ["i1", "i2"]})
update_model(model, dm, interactions=new, epochs=1)
print("updated", flush=True)
other = kgzoo.create_model("bpr", datamodule=dm, config=False, embedding_dim=4)
L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
          enable_model_summary=False, limit_val_batches=0).fit(other, datamodule=dm)  # a user's own: as Lightning has it
print("done", flush=True)
"""


def test_library_trainers_do_not_say_that_fit_stopped(tmp_path):
    """``kgzoo.load_pretrained("kgplm/ml-100k-kg")`` on an empty cache printed "`Trainer.fit`
    stopped: `max_epochs=50` reached." (its TransE vectors' Trainer), and the README's
    ``update_model(..., epochs=1)`` "`max_epochs=1` reached." (the fine-tune's): Trainers the caller
    never built. A user's own Trainer still says it."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    script = FIT_STOPPED_SCRIPT.replace("TMP", repr(str(tmp_path)))
    proc = subprocess.run([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, env=env, cwd=REPO, timeout=300)
    out = proc.stdout
    assert proc.returncode == 0 and "done" in out, out[-3000:]
    library, _, own = out.partition("updated")
    assert "vectors" in library and "stopped" not in library, library
    assert own.count("`Trainer.fit` stopped: `max_epochs=1` reached.") == 1, own
