"""Pretrained weights by name (kgzoo.hub: manifest, store, pretrained): shipped entries reload and re-evaluate to the
manifest's numbers; checksums, names and manifests that are wrong fail loudly."""
from __future__ import annotations

import hashlib
import json
import pathlib
import shutil

import pytest
import torch

from conftest import REPO

import kgzoo
from kgzoo import hub
from kgzoo.cli import main as cli_main
from kgzoo.data.download import sha256_bytes, sha256_file
from kgzoo.hub import store
from kgzoo.hub.manifest import MANIFEST_FORMAT, PACKAGE_DIR

SHIPPED = {n: s for n, s in hub.read_manifest(hub.MANIFEST_PATH).items() if s.file}
QUICK = ("pop/ml-100k-kg", "bpr/ml-100k-kg", "lightgcn/ml-100k-kg")


@pytest.fixture(scope="module")
def dm(data_dir):
    d = kgzoo.create_datamodule("ml-100k-kg")
    d.setup()
    return d


def _copy_manifest(tmp_path: pathlib.Path, name: str, **changes) -> tuple[pathlib.Path, dict]:
    """A manifest in tmp_path holding a copy of ``name``'s entry (and file), with ``changes``."""
    raw = json.loads(hub.MANIFEST_PATH.read_text())
    entry = dict(raw["entries"][name])
    shutil.copyfile(PACKAGE_DIR / entry["file"], tmp_path / entry["file"])
    new_name = changes.pop("_name", name)
    entry.update(changes)
    entry = {k: v for k, v in entry.items() if v is not None}
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"format": MANIFEST_FORMAT, "entries": {new_name: entry}}))
    return path, entry


# ------------------------------------------------------------------ manifest and listing
def test_quick_models_are_shipped_and_listed():
    assert set(QUICK) <= set(SHIPPED)
    assert sum(s.size for s in SHIPPED.values()) < 40 * 2**20
    names = [e["name"] for e in kgzoo.list_pretrained()]
    assert set(QUICK) <= set(names) and names == sorted(names)
    light = kgzoo.list_pretrained("light*")
    assert [e["name"] for e in light] == ["lightgcn/ml-100k-kg"]
    e = light[0]
    assert e["dataset"] == "ml-100k-kg" and e["size"] == (PACKAGE_DIR / SHIPPED[e["name"]].file).stat().st_size
    assert 0 < e["metrics"]["test/ndcg@10"] < 1 and e["main_metric"] == "ndcg@10"
    assert kgzoo.list_pretrained("nothing*") == []
    assert {x["name"] for x in kgzoo.list_pretrained(dataset="ml-100k-kg")} >= set(QUICK)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_entry_is_complete(name, dm):
    s = SHIPPED[name]
    assert sha256_file(s.base_dir / s.file) == s.sha256
    assert s.licence and s.fingerprint and s.protocol["task"] in ("topk", "ctr")
    assert s.dtype in ("float16", "float32")
    if s.dtype == "float16":  # half precision only where the test metrics move by < 0.001 (hit@K: one user)
        users = int(dm.eval_users("test").numel()) if s.dataset == dm.dataset else None
        assert hub.fp16_within(s.metrics, s.extra["metrics_float32"], 1e-3, users)
    # the safetensors header names these weights
    assert store._header_metadata((s.base_dir / s.file).read_bytes())["name"] == name


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_weights_reevaluate_to_manifest(name, dm, monkeypatch):
    """Load every shipped entry, re-evaluate on the test split, compare with the manifest (1e-6 relative).
    Nothing the weights carry is computed again on the way: KGPLM's first load on an empty cache
    trained TransE for 50 epochs and encoded every item text with the PLM (18.7 s of CPU against
    0.5 s), only for the weights to overwrite both."""
    from kgzoo.pretrain.kg_vectors import GrownKGVectors, KGVectors
    from kgzoo.pretrain.text_vectors import TextVectors

    spec = SHIPPED[name]
    if spec.dataset != dm.dataset:
        pytest.skip("re-evaluated in the slow run")  # only ml-100k-kg entries are shipped today

    def computed(*args, **kwargs):
        raise AssertionError(f"{name}: a pre-computation its weights carry was computed again")

    for cls, method in ((KGVectors, "load"), (KGVectors, "load_tables"), (GrownKGVectors, "load_tables"),
                        (TextVectors, "load")):
        monkeypatch.setattr(cls, method, computed)
    pre = kgzoo.load_pretrained(name, datamodule=dm)
    assert not pre.model.training
    assert all(p.dtype == torch.float32 for p in pre.model.parameters())
    got = hub.evaluate(pre.model, dm)
    assert hub.metrics_close(got, spec.metrics, rel=1e-6) == [], (got, spec.metrics)


def test_kgzoo_fit_and_test_pretrained_compute_nothing_the_weights_carry(monkeypatch, tmp_path, data_dir):
    """``kgzoo test --pretrained kgplm/ml-100k-kg`` gives the manifest's test metrics and ``kgzoo
    fit --pretrained kgplm/ml-100k-kg`` trains on from the weights, both without computing what the
    weights carry, as ``load_pretrained`` does: on an empty cache they trained TransE for 50 epochs
    and encoded every item text before the weights overwrote both (a one-epoch fine-tune took
    25 s of wall time, most of it those pre-computations)."""
    from kgzoo.cli.lightning import run_lightning
    from kgzoo.pretrain.kg_vectors import GrownKGVectors, KGVectors
    from kgzoo.pretrain.text_vectors import TextVectors

    def computed(*args, **kwargs):
        raise AssertionError("a pre-computation the weights carry was computed again")

    for cls, method in ((KGVectors, "load"), (KGVectors, "load_tables"), (GrownKGVectors, "load_tables"),
                        (TextVectors, "load")):
        monkeypatch.setattr(cls, method, computed)
    quiet = ["--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
             "--trainer.default_root_dir", str(tmp_path)]
    cli = run_lightning("test", ["--pretrained", "kgplm/ml-100k-kg", *quiet])
    got = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
    assert hub.metrics_close(got, SHIPPED["kgplm/ml-100k-kg"].metrics, rel=1e-6) == [], got
    cli = run_lightning("fit", ["--pretrained", "kgplm/ml-100k-kg", "--trainer.max_epochs", "1",
                                "--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "1", *quiet])
    assert cli.trainer.current_epoch == 1
    ckpt, = tmp_path.rglob("*.ckpt")  # and its checkpoint, tested from the path alone
    cli = run_lightning("test", ["--ckpt_path", str(ckpt), *quiet])
    assert cli.trainer.callback_metrics["test/ndcg@10"] > 0


# ------------------------------------------------------------------ recommend
def test_recommend_raw_ids(dm):
    pre = kgzoo.load_pretrained("lightgcn/ml-100k-kg", datamodule=dm)
    recs = pre.recommend("196", k=10)
    assert len(recs) == 10
    items = [r[0] for r in recs]
    scores = [r[2] for r in recs]
    assert scores == sorted(scores, reverse=True) and len(set(items)) == 10
    assert all(isinstance(i, str) and t for i, t, _ in recs)
    # raw ids in, raw ids out: no item the user rated (in any split) is recommended
    data = dm.data
    u = data.user_ids.index("196")
    seen = {data.item_ids[i] for i in data.interactions[data.interactions[:, 0] == u, 1].tolist()}
    assert not seen & set(items)
    assert recs[0][1] == data.item_text[data.item_ids.index(recs[0][0])]
    assert pre.recommend(196, k=10) == recs
    both = pre.recommend(["196", "1"], k=5)
    assert len(both) == 2 and [r[0] for r in both[0]] == items[:5]
    with pytest.raises(KeyError, match="99999"):
        pre.recommend("99999")
    with pytest.raises(ValueError, match="k="):
        pre.recommend("196", k=0)


def test_cli_recommend_prints_titles(dm, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    pre = kgzoo.load_pretrained("lightgcn/ml-100k-kg", datamodule=dm)
    expected = pre.recommend("196", k=10)
    assert cli_main(["recommend", "--model", "lightgcn/ml-100k-kg", "--user", "196", "-k", "10"]) == 0
    out = capsys.readouterr().out
    assert "user 196" in out
    for item, title, _ in expected:
        assert title in out
    assert cli_main(["pretrained", "light*"]) == 0
    assert "lightgcn/ml-100k-kg" in capsys.readouterr().out
    assert cli_main(["recommend", "--model", "lightgcm/ml-100k-kg", "--user", "196"]) == 2
    assert "lightgcn/ml-100k-kg" in capsys.readouterr().err  # the nearest name is suggested


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("bad", ["../lightgcn/ml-100k-kg", "lightgcn/../ml-100k-kg", "lightgcn/ml-100k-kg/x",
                                 "lightgcn\\ml-100k-kg", "/etc/passwd", "lightgcn", ".lightgcn/ml-100k-kg",
                                 "lightgcn/ml..100k", ""])
def test_bad_names(bad):
    with pytest.raises(hub.PretrainedError, match="invalid pretrained name"):
        kgzoo.load_pretrained(bad)


def test_unknown_name_suggests():
    with pytest.raises(KeyError, match="did you mean 'lightgcn/ml-100k-kg'"):
        kgzoo.load_pretrained("lightgcm/ml-100k-kg")
    with pytest.raises(KeyError, match="did you mean 'lightgcn/ml-100k-kg'"):
        hub.weights_spec("lightgcm/ml-100k-kg")


def test_one_name_one_meaning():
    """One checksum error for datasets and weights; the dataset spec and the weights spec have
    distinct names (``dataset_spec``, ``weights_spec``), and ``get_spec`` is gone."""
    import kgzoo.data as data
    import kgzoo.data.download as download

    assert hub.ChecksumError is download.ChecksumError and issubclass(hub.ChecksumError, ValueError)
    assert hub.weights_spec("bpr/ml-100k-kg").model == "bpr" and data.dataset_spec("ml-100k-kg").name == "ml-100k-kg"
    assert not any(hasattr(m, "get_spec") for m in (hub, data, kgzoo.data.datasets, kgzoo))
    assert sha256_bytes(b"kgzoo") == hashlib.sha256(b"kgzoo").hexdigest()


def test_tampered_file_is_rejected_before_parsing(tmp_path, monkeypatch):
    manifest, entry = _copy_manifest(tmp_path, "bpr/ml-100k-kg")
    path = tmp_path / entry["file"]
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    path.write_bytes(bytes(blob))
    import safetensors.torch

    def no_parse(*a, **k):
        raise AssertionError("a file with a bad checksum was parsed")

    monkeypatch.setattr(safetensors.torch, "load", no_parse)
    with pytest.raises(hub.ChecksumError, match=r"bpr__ml-100k-kg\.safetensors: sha256"):
        kgzoo.load_pretrained("bpr/ml-100k-kg", manifest=manifest)
    path.write_bytes(bytes(blob[:-100]))  # truncated
    with pytest.raises(hub.ChecksumError, match="size"):
        kgzoo.load_pretrained("bpr/ml-100k-kg", manifest=manifest)


class _Marker:
    """Pickles to a call that creates a file: proof of execution if anything unpickles it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def test_pickle_with_matching_checksum_is_not_executed(tmp_path):
    manifest, entry = _copy_manifest(tmp_path, "bpr/ml-100k-kg")
    marker = tmp_path / "executed"
    evil = tmp_path / entry["file"]
    torch.save({"user_emb.weight": _Marker(str(marker))}, evil)
    data = evil.read_bytes()
    manifest, _ = _copy_manifest(tmp_path, "bpr/ml-100k-kg", sha256=sha256_bytes(data), size=len(data))
    evil.write_bytes(data)  # _copy_manifest restored the real file
    with pytest.raises(hub.PretrainedError, match="not a valid safetensors"):
        kgzoo.load_pretrained("bpr/ml-100k-kg", manifest=manifest)
    assert not marker.exists()


def test_bad_manifest_entries(tmp_path, dm):
    m, _ = _copy_manifest(tmp_path, "bpr/ml-100k-kg", _name="nosuchmodel/ml-100k-kg", model="nosuchmodel")
    with pytest.raises(hub.PretrainedError, match="'nosuchmodel', which is not registered"):
        kgzoo.load_pretrained("nosuchmodel/ml-100k-kg", manifest=m)
    m, _ = _copy_manifest(tmp_path, "bpr/ml-100k-kg", file="../bpr__ml-100k-kg.safetensors")
    with pytest.raises(hub.PretrainedError, match="bare"):
        kgzoo.load_pretrained("bpr/ml-100k-kg", manifest=m)
    m, _ = _copy_manifest(tmp_path, "bpr/ml-100k-kg", _name="lightgcn/ml-100k-kg")
    with pytest.raises(hub.PretrainedError, match="says model 'bpr'"):
        kgzoo.load_pretrained("lightgcn/ml-100k-kg", manifest=m)
    m, _ = _copy_manifest(tmp_path, "bpr/ml-100k-kg", fingerprint="0" * 64)
    with pytest.raises(hub.FingerprintError, match="fingerprint"):
        kgzoo.load_pretrained("bpr/ml-100k-kg", manifest=m, datamodule=dm)
    m, _ = _copy_manifest(tmp_path, "bpr/ml-100k-kg", hparams={"embedding_dim": 32})
    with pytest.raises(hub.PretrainedError, match="do not fit"):
        kgzoo.load_pretrained("bpr/ml-100k-kg", manifest=m, datamodule=dm)
    with pytest.raises(KeyError, match="did you mean 'bpr/ml-100k-kg'"):
        kgzoo.load_pretrained("bpr/ml-100k", manifest=m)


# ------------------------------------------------------------------ downloads and cache
def test_url_download_is_verified_and_cached(tmp_path, monkeypatch, dm):
    src = tmp_path / "remote"
    src.mkdir()
    manifest, entry = _copy_manifest(src, "bpr/ml-100k-kg")
    url = (src / entry["file"]).as_uri()
    manifest, entry = _copy_manifest(tmp_path, "bpr/ml-100k-kg", file=None, url=url)
    monkeypatch.setenv("KGZOO_HOME", str(tmp_path / "home"))
    pre = kgzoo.load_pretrained("bpr/ml-100k-kg", manifest=manifest, datamodule=dm)
    cached = list((tmp_path / "home" / "hub").glob("*.safetensors"))
    assert len(cached) == 1 and sha256_file(cached[0]) == entry["sha256"]
    shipped = kgzoo.load_pretrained("bpr/ml-100k-kg", datamodule=dm)
    assert torch.equal(pre.model.user_emb.weight, shipped.model.user_emb.weight)

    def offline(url, dest):
        raise AssertionError("downloaded again although cached")

    monkeypatch.setattr(store, "_download_url", offline)
    kgzoo.load_pretrained("bpr/ml-100k-kg", manifest=manifest, datamodule=dm)
    # a corrupted cache entry is an error naming the file
    blob = bytearray(cached[0].read_bytes())
    blob[100] ^= 0xFF
    cached[0].write_bytes(bytes(blob))
    with pytest.raises(hub.ChecksumError, match=cached[0].name):
        kgzoo.load_pretrained("bpr/ml-100k-kg", manifest=manifest, datamodule=dm)
    # a download whose bytes differ from the manifest never enters the cache
    cached[0].unlink()
    monkeypatch.setattr(store, "_download_url", lambda url, dest: pathlib.Path(dest).write_bytes(bytes(blob)))
    with pytest.raises(hub.ChecksumError, match="sha256"):
        kgzoo.load_pretrained("bpr/ml-100k-kg", manifest=manifest, datamodule=dm)
    assert list((tmp_path / "home" / "hub").glob("*")) == []


def test_hf_hub_source(tmp_path, monkeypatch, dm):
    import huggingface_hub

    manifest, entry = _copy_manifest(tmp_path, "bpr/ml-100k-kg", file=None,
                                     hf={"repo_id": "kgzoo/bpr-ml-100k-kg", "filename": "bpr__ml-100k-kg.safetensors",
                                         "revision": "v1"})
    calls = []

    def fake_download(repo_id, filename, revision=None, cache_dir=None):
        calls.append((repo_id, filename, revision))
        return str(PACKAGE_DIR / "bpr__ml-100k-kg.safetensors")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    pre = kgzoo.load_pretrained("bpr/ml-100k-kg", manifest=manifest, datamodule=dm, cache_dir=tmp_path / "cache")
    assert calls == [("kgzoo/bpr-ml-100k-kg", "bpr__ml-100k-kg.safetensors", "v1")]
    assert pre.recommend("196", 3)
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 1


# ------------------------------------------------------------------ the publish script
def test_publish_script_pop(tmp_path):
    """scripts/publish_pretrained.py trains Pop (one pass), exports, writes the entry and verifies it by reload."""
    import importlib.util

    script = REPO / "scripts" / "publish_pretrained.py"
    spec = importlib.util.spec_from_file_location("publish_pretrained", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    manifest = tmp_path / "manifest.json"
    rc = mod.main(["pop", "--out-dir", str(tmp_path), "--manifest", str(manifest), "--runs", str(tmp_path / "runs"),
                   "--fp16-tolerance", "0"])
    assert rc == 0
    entry = hub.read_manifest(manifest)["pop/ml-100k-kg"]
    assert entry.dtype == "float32"  # a tolerance of 0 keeps float32
    assert sha256_file(tmp_path / entry.file) == entry.sha256
    shipped = SHIPPED["pop/ml-100k-kg"]
    assert entry.fingerprint == shipped.fingerprint
    assert hub.metrics_close(entry.metrics, shipped.metrics, rel=1e-6) == []
    assert mod.main(["nosuchmodel", "--out-dir", str(tmp_path), "--manifest", str(manifest),
                     "--runs", str(tmp_path / "runs")]) == 1


def test_cli_pretrained_names_are_whole_in_a_narrow_terminal(capsys, monkeypatch):
    """At 80 columns the table squeezes its columns: the names (what a user copies into
    ``--model``) must stay whole, not end in an ellipsis."""
    monkeypatch.setenv("COLUMNS", "80")
    assert cli_main(["pretrained"]) == 0
    out = capsys.readouterr().out
    for e in hub.list_pretrained():
        assert e["name"] in out, e["name"]
