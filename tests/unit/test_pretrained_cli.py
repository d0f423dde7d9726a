"""``kgzoo fit --pretrained`` and ``load_pretrained`` name what does not match when weights meet
other data: the dataset, the KG ablation or the protocol, not only a tensor's shape or a hash."""
from __future__ import annotations

import uuid

import pandas as pd
import pytest
import torch

import kgzoo
from kgzoo.cli.lightning import run_lightning
from kgzoo.hub import FingerprintError, Pretrained, PretrainedError, PretrainedSpec


def shop(n_users: int, n_items: int) -> str:
    """A from_frames dataset of ``n_users`` x 8 interactions over ``n_items`` items, with a KG; its name."""
    rows = [(f"u{u}", f"i{(u * 7 + 3 * k) % n_items}") for u in range(n_users) for k in range(8)]
    kg = pd.DataFrame({"head": [f"i{k}" for k in range(n_items)], "relation": "genre",
                       "tail": [f"g{k % 3}" for k in range(n_items)]})
    return kgzoo.from_frames(pd.DataFrame(rows, columns=["user", "item"]), triples=kg,
                             name=f"shop-{uuid.uuid4().hex[:6]}").name


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """BPR weights of a 12 x 30 shop saved with save_pretrained: ``(folder, spec)``."""
    torch.manual_seed(0)
    dm = kgzoo.create_datamodule(shop(12, 30), batch_size=16)
    dm.setup()
    model = kgzoo.create_model("bpr", datamodule=dm, config=False, embedding_dim=4)
    spec = PretrainedSpec(name=f"bpr/{dm.dataset}", model="bpr", dataset=dm.dataset, protocol=dm.protocol.to_dict(),
                          fingerprint=dm.fingerprint, metrics={}, hparams={"embedding_dim": 4}, sha256="", size=0,
                          licence="", base_dir=tmp_path_factory.mktemp("w"))
    folder = tmp_path_factory.mktemp("weights")
    Pretrained(spec, model.eval(), dm).save_pretrained(folder)
    return folder, spec


def test_fit_pretrained_on_another_dataset_names_both(weights, tmp_path):
    """It said only "size mismatch for user_emb.weight: ... [12, 4] ... [20, 4]"."""
    folder, spec = weights
    other = shop(20, 40)
    with pytest.raises(PretrainedError, match=rf"trained on dataset '{spec.dataset}', "
                                              rf"--data.dataset '{other}' has 20 users, 40 items"):
        run_lightning("fit", ["--pretrained", str(folder), "--data.dataset", other, "--trainer.max_epochs", "1",
                              "--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path)])


def test_load_pretrained_on_other_data_names_the_field_that_differs(weights):
    """It said only "the data fingerprint X differs from the manifest's Y (other data files, protocol
    {...}, or metric code)", the manifest's protocol beside a hash, for a DataModule built with
    another KG ablation or split."""
    folder, spec = weights
    shuffled = kgzoo.create_datamodule(spec.dataset, kg_ablation="shuffled", batch_size=16)
    with pytest.raises(FingerprintError, match=r"kg_ablation: the weights' 'real', the DataModule's 'shuffled'"):
        kgzoo.load_pretrained(folder, datamodule=shuffled)
    other_split = kgzoo.create_datamodule(spec.dataset, protocol=kgzoo.EvalProtocol(ratios=(0.6, 0.2, 0.2)),
                                          batch_size=16)
    with pytest.raises(FingerprintError, match=r"protocol: the weights' .*0\.8.*, the DataModule's .*0\.6"):
        kgzoo.load_pretrained(folder, datamodule=other_split)
    assert kgzoo.load_pretrained(folder).recommend("u1", k=3)  # its own data loads


def test_kgzoo_test_pretrained_gives_the_metrics_of_evaluate(weights, tmp_path):
    """`kgzoo pretrained` lists each weights' test metric; `kgzoo test --pretrained NAME` was refused
    ("--pretrained ...: once, with kgzoo fit"), so the command line had no way to check it."""
    from kgzoo.hub import evaluate

    folder, _ = weights
    pre = kgzoo.load_pretrained(folder)
    want = evaluate(pre.model, pre.datamodule)
    cli = run_lightning("test", ["--pretrained", str(folder), "--trainer.logger", "false",
                                 "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path)])
    got = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
    assert set(got) == set(want) and all(abs(got[k] - want[k]) < 1e-6 for k in want), (got, want)
    assert not cli.model.training
    with pytest.raises(ValueError, match="--pretrained .* or --ckpt_path"):  # one source of weights
        run_lightning("test", ["--pretrained", str(folder), "--ckpt_path", str(tmp_path / "x.ckpt")])


def test_every_packaged_weight_is_its_published_lines_seed():
    """The packaged weights (kgzoo/pretrained/manifest.json) come from the run of their published
    line: the latest converged row of the model, dataset and seed they name (the leaderboard's
    rule, ``latest_ok_rows``) holds their float32 test metrics. KGPLM's and KGIN's ml-100k-kg weights
    were the runs that later reruns replaced in the table (0.3062 and 0.2908 against 0.2737 and
    0.2990 shipped until session 17)."""
    import json

    from kgzoo.bench.leaderboard import latest_ok_rows
    from kgzoo.bench.rows import read_folder
    from kgzoo.hub import MANIFEST_PATH
    from kgzoo.paths import checkout_dir

    if checkout_dir() is None:
        pytest.skip("an installed kgzoo has no committed rows")
    rows = [r for r in latest_ok_rows(read_folder(checkout_dir() / "benchmarks" / "results"))
            if r.variant == "base" and r.kg_ablation == "real" and (r.schedule or {}).get("kind") == "converged"]
    entries = json.loads(MANIFEST_PATH.read_text())["entries"]
    checked = 0
    for name, e in entries.items():
        if "from_rows" not in e.get("training", {}):
            continue
        t = e["training"]
        row = [r for r in rows if r.model == e["model"] and r.dataset == e["dataset"] and r.seed == t["seed"]
               and r.fingerprint == e["fingerprint"]]
        assert len(row) == 1, (name, len(row))
        for k, v in e["metrics_float32"].items():
            assert row[0].metrics[k] == pytest.approx(v, rel=1e-4), (name, k)
        checked += 1
    assert checked >= 13
