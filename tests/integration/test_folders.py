"""A folder of one's own files as a dataset (issue 15, part 1): its layout detected by
``create_datamodule(PATH)``, ``kgzoo data stats PATH``, ``kgzoo bench --datasets PATH`` and
``kgzoo fit --data.dataset PATH``; ``kgzoo data import PATH --name N`` for later runs. Small
slices of the real files (../shared/data) copied into ``tmp_path``."""
from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

import kgzoo
from kgzoo.bench.cells import resolve_grid
from kgzoo.cli import main
from kgzoo.data import DataFormatError, dataset_spec, resolve_dataset
from kgzoo.data.folders import detect_layout
from kgzoo.data.impressions import ImpressionDataModule


def head(src: Path, dst: Path, n: int | None = None) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(src, encoding="utf-8") as f:
        dst.write_text("".join(itertools.islice(f, n)), encoding="utf-8")


@pytest.fixture
def recbole_dir(data_dir, tmp_path) -> Path:
    src, d = data_dir / "ml-100k-kg", tmp_path / "my-movies"
    for ext, n in (("inter", 3001), ("item", None), ("link", None), ("kg", 3001)):
        head(src / f"ml-100k.{ext}", d / f"movies.{ext}", n)
    return d


def datamodule(path) -> kgzoo.data.datamodule.KGRecDataModule:
    dm = kgzoo.create_datamodule(path)
    dm.setup()
    return dm


def test_recbole_folder(recbole_dir):
    assert detect_layout(recbole_dir)[0].name == "recbole"
    dm = datamodule(str(recbole_dir))
    assert dm.dataset == "my-movies" and dm.data.n_interactions == 3000 and dm.data.n_triples > 0
    assert sorted(dm.data.source_checksums) == ["movies.inter", "movies.item", "movies.kg", "movies.link"]
    assert datamodule(recbole_dir).fingerprint == dm.fingerprint  # a Path, or the name, is the same dataset
    assert kgzoo.create_model("bpr", dm).n_items == dm.n_items


def test_kgin_ripplenet_and_hin_folders(data_dir, tmp_path):
    kg = tmp_path / "kgin-only"  # interactions only: no kg_final.txt
    for f in ("valid.txt", "test.txt"):
        head(data_dir / "alibaba-ifashion-kg" / f, kg / f, 40)
    rn = tmp_path / "ripple"
    head(data_dir / "lastfm-kg" / "ratings_final.txt", rn / "ratings_final.txt", 400)
    head(data_dir / "lastfm-kg" / "kg_final.txt", rn / "kg_final.txt", 2000)
    hin = tmp_path / "shop-hin"
    head(data_dir / "amazon-hin" / "user_item.dat", hin / "user_item.dat", 2000)
    head(data_dir / "amazon-hin" / "item_brand.dat", hin / "item_brand.dat")
    got = {}
    for d in (kg, rn, hin):
        layout = detect_layout(d)[0].name
        data = kgzoo.load_data(str(d))
        got[layout] = (data.n_interactions > 0, data.n_triples > 0, data.label is not None, data.timestamp is not None)
    assert got == {"kgin": (True, False, False, False), "ripplenet": (True, True, True, False),
                   "hin": (True, True, False, True)}
    assert dataset_spec("ripple").protocol.task == "ctr"


def test_tables_folder_csv_tsv_parquet(data_dir, tmp_path):
    inter = pd.read_csv(data_dir / "ml-100k-kg" / "ml-100k.inter", sep="\t", nrows=2000)
    inter.columns = ["user", "item", "rating", "timestamp"]
    inter["user"] = "u" + inter["user"].astype(str)  # string ids
    d = tmp_path / "tables"
    d.mkdir()
    inter.to_parquet(d / "ratings.parquet")
    item = pd.read_csv(data_dir / "ml-100k-kg" / "ml-100k.item", sep="\t", usecols=[0, 1])
    item.columns = ["item", "text"]
    item.to_csv(d / "movies.csv", index=False)
    link = pd.read_csv(data_dir / "ml-100k-kg" / "ml-100k.link", sep="\t")
    link.columns = ["item", "entity"]
    link = link[link["item"].isin(inter["item"])]
    link.to_csv(d / "links.csv", index=False)
    kg = pd.read_csv(data_dir / "ml-100k-kg" / "ml-100k.kg", sep="\t", nrows=5000)
    kg.columns = ["head", "relation", "tail"]
    kg.to_csv(d / "kg.tsv", sep="\t", index=False)
    assert detect_layout(d)[0].name == "tables"
    data = kgzoo.load_data(str(d))
    assert data.n_interactions == 2000 and data.user_ids[0].startswith("u") and data.n_triples > 0
    assert data.stats()["text_coverage"] == 1.0 and data.rating is not None
    (d / "notes.csv").write_text("a,b\n1,2\n")  # a table of no role is not ignored without a word
    with pytest.raises(DataFormatError, match="match no table role") as e:
        detect_layout(d)
    assert (Path(e.value.path).name, e.value.line) == ("notes.csv", 1)
    # a damaged CSV: the error names the file, its line and the column
    bad = tmp_path / "bad"
    bad.mkdir()
    inter.head(10).assign(rating=lambda x: x["rating"].where(x.index != 3)).to_csv(bad / "r.csv", index=False)
    with pytest.raises(DataFormatError) as e:
        kgzoo.load_data(str(bad))
    assert (Path(e.value.path).name, e.value.line, e.value.field) == ("r.csv", 5, "rating")


def test_folder_of_no_layout_lists_what_was_looked_for(tmp_path):
    (tmp_path / "notes.txt").write_text("hello\n")
    with pytest.raises(DataFormatError, match="matches no dataset layout") as e:
        kgzoo.create_datamodule(str(tmp_path))
    for name in ("mind", "recbole", "ripplenet", "kgin", "hin", "tables", "notes.txt"):
        assert name in str(e.value)
    # a table's header says why it is no interactions table (a user had to open the files to see it)
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating\n1,2,4\n")
    (tmp_path / "semi.csv").write_text("user;item\n1;2\n")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataFormatError, match="matches no dataset layout") as e:
        kgzoo.create_datamodule(str(tmp_path))
    assert ("Files there: empty.csv, notes.txt, ratings.csv (columns userId, movieId, rating), "
            "semi.csv (columns user;item)") in str(e.value)


def test_cli_stats_bench_fit_and_import(recbole_dir, tmp_path, capsys, monkeypatch):
    assert main(["data", "stats", str(recbole_dir)]) == 0
    assert "3,000" in capsys.readouterr().out
    name = resolve_dataset(str(recbole_dir))  # "my-movies", or with its path's hash where another folder has it
    assert name.startswith("my-movies") and [c.dataset for c in resolve_grid("pop", [str(recbole_dir)])] == [name]
    assert main(["bench", "--models", "pop", "--datasets", str(recbole_dir), "--epochs", "1", "--results",
                 str(tmp_path / "res"), "--runs", str(tmp_path / "runs")]) == 0
    assert f"pop / {name} / seed 0" in capsys.readouterr().out
    assert main(["fit", "--model", "kgzoo.models.mf.BPRMF", "--data.dataset", str(recbole_dir),
                 "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "1",
                 "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
                 "--trainer.default_root_dir", str(tmp_path / "fit")]) == 0
    # import: registered in the user config dir, seen by a later process
    cfg = tmp_path / "config"
    monkeypatch.setenv("KGZOO_USER_CONFIG", str(cfg))
    assert main(["data", "import", str(recbole_dir), "--name", "movies-imported"]) == 0
    assert (cfg / "datasets" / "movies-imported.json").is_file()
    exe = Path(sys.executable).with_name("kgzoo")
    p = subprocess.run([str(exe), "data", "stats", "movies-imported"], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "COLUMNS": "200", "PYTHONPATH": str(Path(kgzoo.__file__).parents[1])})
    assert p.returncode == 0, p.stderr
    assert "movies-imported" in p.stdout and "3,000" in p.stdout


def test_reimport_under_one_name_with_other_contents_changes_the_fingerprint(data_dir, tmp_path, monkeypatch):
    """The issue's case: two folders (3,000 and 1,500 interactions) imported under one name in
    turn; the fingerprint follows the files, so --resume and the leaderboard keep them apart."""
    src = data_dir / "ml-100k-kg"
    for folder, n in (("a", 3001), ("b", 1501)):
        for ext in ("inter", "item"):
            head(src / f"ml-100k.{ext}", tmp_path / folder / "data" / f"m.{ext}", n if ext == "inter" else None)
    monkeypatch.setenv("KGZOO_USER_CONFIG", str(tmp_path / "config"))
    code = ("import sys, kgzoo; from kgzoo.data.folders import import_folder; import_folder(sys.argv[1], 'shop'); "
            "dm = kgzoo.create_datamodule('shop'); dm.setup(); print(dm.data.n_interactions, dm.fingerprint)")
    env = {**os.environ, "PYTHONPATH": str(Path(kgzoo.__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    out = []
    for folder in ("a", "b"):  # (the same contents, the same fingerprint: test_data_fingerprint.py)
        p = subprocess.run([sys.executable, "-c", code, str(tmp_path / folder / "data")], capture_output=True,
                           text=True, timeout=300, env=env)
        assert p.returncode == 0, p.stderr
        out.append(p.stdout.split())
    assert [o[0] for o in out] == ["3000", "1500"]
    assert out[0][1] != out[1][1]


@pytest.mark.parametrize("name, layout", [("ml-100k-kg", "recbole"), ("lastfm-kg", "ripplenet")])
def test_a_catalogue_folder_read_by_its_detected_layout_gives_the_catalogue(data_dir, name, layout):
    assert detect_layout(data_dir / name)[0].name == layout
    a, b = kgzoo.load_data(data_dir / name), kgzoo.load_data(name)
    assert a.stats() == b.stats()
    # the files read have the catalogue's pinned sha256 (it pins one more for lastfm-kg: the raw
    # user_artists.dat its reader does not read)
    assert a.source_checksums and a.source_checksums.items() <= b.source_checksums.items()


def tiny_mind(d: Path) -> Path:
    """A folder in MIND's layout: 4 news (N3 without a news.tsv row), 6 impressions over 3 days."""
    d.mkdir(parents=True, exist_ok=True)
    ent = '[{"Label": "Paris", "Type": "G", "WikidataId": "Q90", "Confidence": 1.0, "OccurrenceOffsets": [0], ' \
          '"SurfaceForms": ["Paris"]}]'
    news = [("N1", "news", "world", "Paris votes today", "The city votes.", ent),
            ("N2", "sports", "soccer", "A late goal wins it", "Football report.", "[]"),
            ("N4", "food", "recipes", "Soup for winter", "A recipe.", "[]")]
    (d / "news.tsv").write_text("".join(f"{i}\t{c}\t{sc}\t{t}\t{a}\thttps://x/{i}\t{e}\t[]\n"
                                        for i, c, sc, t, a, e in news), encoding="utf-8")
    rows = [(1, "U1", "11/11/2019 9:00:00 AM", "N1", "N2-1 N4-0"), (2, "U2", "11/11/2019 10:00:00 AM", "N2", "N1-0 N3-1"),
            (3, "U1", "11/12/2019 9:00:00 AM", "N1 N2", "N4-1 N3-0"), (4, "U3", "11/12/2019 1:00:00 PM", "", "N1-1 N2-0"),
            (5, "U2", "11/13/2019 9:00:00 AM", "N2 N3", "N4-0 N1-1"), (6, "U1", "11/13/2019 9:30:00 AM", "N1 N2 N4", "N3-1 N2-0")]
    (d / "behaviors.tsv").write_text("".join(f"{i}\t{u}\t{t}\t{h}\t{c}\n" for i, u, t, h, c in rows),
                                     encoding="utf-8")
    return d


def test_a_mind_folder_gives_impressions(tmp_path, capsys):
    d = tiny_mind(tmp_path / "my-mind")
    assert detect_layout(d)[0].name == "mind"
    dm = kgzoo.create_datamodule(str(d))
    assert isinstance(dm, ImpressionDataModule) and dm.protocol.task == "impression"
    dm.setup()
    assert dm.sizes() == {"train": 2, "valid": 2, "test": 2, "train_clicks": 2}
    assert dm.n_items == 4 and sum(1 for t in dm.data.item_text if t) == 3  # N3 kept without text
    assert next(iter(dm.test_dataloader()))["candidates"].shape == (2, 2)
    # the CTR view of the same folder, where asked for
    ctr = kgzoo.create_datamodule(str(d), protocol={"task": "ctr", "split": "random"})
    assert not isinstance(ctr, ImpressionDataModule)
    assert main(["data", "stats", str(d)]) == 0
    out = capsys.readouterr().out
    assert "impressions" in out and "candidates_with_text" in out
    # the default protocol in words (before: "impression/temporal [0.8, 0.1, 0.1]", ratios the split ignores)
    assert "default protocol: impressions by day (last day test, the day before valid)" in " ".join(out.split())
    # the news the impression task keeps, beside the labelled rows' statistics (news.tsv's news only)
    assert "the impression task's news: 4, news.tsv's 3 and the 1 logged news without a news.tsv row" in " ".join(
        out.split())


def test_the_mind_sample_folder_gives_the_catalogue_impressions(data_dir):
    dm = kgzoo.create_datamodule(str(data_dir / "mind-sample"))
    assert isinstance(dm, ImpressionDataModule)
    dm.setup()
    cat = kgzoo.create_datamodule("mind-sample", protocol={"task": "impression", "split": "temporal"})
    cat.setup()
    assert dm.sizes() == cat.sizes() == {"train": 3058, "valid": 974, "test": 968, "train_clicks": 4562}
    assert dm.n_items == cat.n_items and torch.equal(dm.log.candidates, cat.log.candidates)
    # the same files: the fingerprint's data part is the catalogue's pinned checksums
    assert dm.data.source_checksums == cat.data.source_checksums


def test_a_path_that_is_no_folder_is_named_as_such(tmp_path):
    """A string that looks like a path and is no folder says so, not 'unknown dataset'."""
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_dataset(str(tmp_path / "no-such-folder"))
    (tmp_path / "a.csv").write_text("user,item\n1,2\n")
    with pytest.raises(FileNotFoundError, match="is a file, not a folder"):
        resolve_dataset(str(tmp_path / "a.csv"))
    with pytest.raises(KeyError, match="unknown dataset"):
        resolve_dataset("ml100k")  # a misspelt name still gets the suggestions
    # kgzoo bench --datasets PATH says the same, not "dataset pattern ... matches no dataset"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_grid("pop", str(tmp_path / "no-such-folder"), [0])
    with pytest.raises(FileNotFoundError, match="is a file, not a folder"):
        resolve_grid("pop", str(tmp_path / "a.csv"), [0])
    with pytest.raises(ValueError, match="matches no dataset"):
        resolve_grid("pop", "ml-100k-x*", [0])  # a pattern stays a pattern
