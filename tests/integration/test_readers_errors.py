"""Every reader on malformed input: a DataFormatError naming the file, the line and the field.

Each test copies a small slice of the real files (../shared/data) into ``tmp_path``, checks
that the clean slice reads, then breaks one line (truncated, a non-integer id, a misnamed
or missing header column, an empty file) and checks the error.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from kgzoo.data.readers import DataFormatError
from kgzoo.data.readers.dkn import read_dkn
from kgzoo.data.readers.hin import read_amazon_hin, read_lastfm_social, read_yelp_social
from kgzoo.data.readers.kgin import read_kgin
from kgzoo.data.readers.mind import read_mind
from kgzoo.data.readers.ml1m import read_colakg_ml1m
from kgzoo.data.readers.ripplenet import build_kgcn_ratings, read_ripplenet


# --------------------------------------------------------------------------- helpers
def lines_of(path: Path, n: int | None = None) -> list[str]:
    if n is None:
        return path.read_text(encoding="utf-8").splitlines()
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in itertools.islice(f, n)]


def write(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def slice_folder(src: Path, dst: Path, heads: dict[str, int | None]) -> Path:
    """Copy the first ``n`` lines (all when ``None``) of each file of ``src`` into ``dst``."""
    dst.mkdir(parents=True, exist_ok=True)
    for name, n in heads.items():
        write(dst / name, lines_of(src / name, n))
    return dst


def edit(path: Path, line: int, fn: Callable[[str], str]) -> None:
    """Replace 1-based ``line`` of ``path`` by ``fn(line)``."""
    lines = lines_of(path)
    lines[line - 1] = fn(lines[line - 1])
    write(path, lines)


def set_field(j: int, value: str, sep: str | None = None) -> Callable[[str], str]:
    def fn(line: str) -> str:
        parts = line.split(sep)
        parts[j] = value
        return (sep or " ").join(parts)
    return fn


def truncate(sep: str | None = None) -> Callable[[str], str]:
    """Drop the last field of a line."""
    return lambda line: line.rsplit(sep, 1)[0]


def expect(read: Callable[[], object], path: Path, line: int, field: str) -> DataFormatError:
    with pytest.raises(DataFormatError) as info:
        read()
    e = info.value
    msg = str(e)
    assert (e.path, e.line, e.field) == (str(path), line, field), msg
    assert (f"{path}, line {line}" in msg if line else ", line" not in msg and msg.startswith(str(path))), msg
    assert repr(field) in msg, msg
    return e


# --------------------------------------------------------------------------- KGIN
@pytest.fixture
def kgin_dir(data_dir: Path, tmp_path: Path) -> Path:
    d = slice_folder(data_dir / "alibaba-ifashion-kg", tmp_path / "kgin",
                     {"kg_final.txt": 30, "entity_list.txt": 10, "item_list.txt": 10, "relation_list.txt": 10})
    write(d / "train.txt", lines_of(data_dir / "alibaba-ifashion-kg" / "valid.txt", 5))
    write(d / "test.txt", lines_of(data_dir / "alibaba-ifashion-kg" / "test.txt", 5))
    write(d / "user_list.txt", lines_of(data_dir / "mind-kg" / "user_list.txt", 10))
    # the first 30 triples touch none of the slice's items: a 31st links one (a KG must reach an item)
    item, tail = lines_of(d / "train.txt", 1)[0].split()[1], lines_of(d / "kg_final.txt", 1)[0].split()[2]
    write(d / "kg_final.txt", lines_of(d / "kg_final.txt") + [f"{item} 0 {tail}"])
    return d


def test_kgin_slice_reads(kgin_dir):
    data = read_kgin(kgin_dir, "slice")
    assert data.n_interactions > 0 and data.n_triples == 31 and data.given_split is not None


@pytest.mark.parametrize("fname,line,change,field", [
    ("kg_final.txt", 3, truncate(), "tail"),
    ("kg_final.txt", 2, set_field(0, "h1"), "head"),
    ("kg_final.txt", 4, set_field(1, "1.5"), "relation"),
    ("train.txt", 2, set_field(2, "2x"), "item 2"),
    ("test.txt", 3, set_field(0, "u2"), "user"),
    ("entity_list.txt", 1, lambda _: "org_id remap", "remap_id"),           # misnamed column
    ("item_list.txt", 1, lambda _: "org_id remap_id", "freebase_id"),        # missing column
    ("relation_list.txt", 1, lambda _: "name remap_id", "org_id"),           # misnamed first column
    ("entity_list.txt", 4, lambda line: line.split()[0], "remap_id"),        # truncated line
    ("relation_list.txt", 3, set_field(1, "x"), "remap_id"),                 # non-integer id
    ("user_list.txt", 5, set_field(1, "2"), "remap_id"),                     # repeated id
])
def test_kgin_malformed(kgin_dir, fname, line, change, field):
    edit(kgin_dir / fname, line, change)
    expect(lambda: read_kgin(kgin_dir, "slice"), kgin_dir / fname, line, field)


@pytest.mark.parametrize("fname,field", [("train.txt", "user"), ("kg_final.txt", "head"),
                                         ("user_list.txt", "org_id"), ("item_list.txt", "org_id")])
def test_kgin_empty_file(kgin_dir, fname, field):
    write(kgin_dir / fname, [])
    expect(lambda: read_kgin(kgin_dir, "slice"), kgin_dir / fname, 1, field)


# --------------------------------------------------------------------------- RippleNet / KGCN
@pytest.fixture
def ripple_dir(data_dir: Path, tmp_path: Path) -> Path:
    return slice_folder(data_dir / "lastfm-kg", tmp_path / "ripple",
                        {"ratings_final.txt": 50, "kg_final.txt": 30, "kg.txt": 30, "item_index2entity_id.txt": None,
                         "user_artists.dat": 100})


def test_ripplenet_slice_reads(ripple_dir):
    data = read_ripplenet(ripple_dir, "slice")
    assert data.n_interactions == 50 and data.n_triples == 30 and data.relation_names[0] == "music.artist.origin"
    raw = build_kgcn_ratings(ripple_dir)
    assert int(raw.label.sum()) * 2 == raw.n_interactions


@pytest.mark.parametrize("fname,line,change,field", [
    ("ratings_final.txt", 5, truncate("\t"), "label"),
    ("ratings_final.txt", 2, set_field(1, "x", "\t"), "item"),
    ("ratings_final.txt", 4, set_field(2, "2", "\t"), "label"),
    ("ratings_final.txt", 7, set_field(0, "-1", "\t"), "user"),
    ("kg_final.txt", 6, truncate("\t"), "tail"),
    ("kg_final.txt", 3, set_field(2, "t", "\t"), "tail"),
    ("item_index2entity_id.txt", 2, truncate("\t"), "entity"),
    ("kg.txt", 3, set_field(1, "not.the.same.relation", "\t"), "relation"),
])
def test_ripplenet_malformed(ripple_dir, fname, line, change, field):
    edit(ripple_dir / fname, line, change)
    expect(lambda: read_ripplenet(ripple_dir, "slice"), ripple_dir / fname, line, field)


def test_ripplenet_empty_file(ripple_dir):
    write(ripple_dir / "ratings_final.txt", [])
    expect(lambda: read_ripplenet(ripple_dir, "slice"), ripple_dir / "ratings_final.txt", 1, "user")


@pytest.fixture
def npy_dir(data_dir: Path, tmp_path: Path) -> Path:
    d = slice_folder(data_dir / "book-crossing-kg", tmp_path / "npy",
                     {"kg_final.txt": 30, "item_index2entity_id_rehashed.txt": None})
    np.save(d / "ratings_final.npy", np.load(data_dir / "book-crossing-kg" / "ratings_final.npy")[:50])
    return d


def _read_npy(d: Path):
    return read_ripplenet(d, "slice", ratings="ratings_final.npy", item_map="item_index2entity_id_rehashed.txt",
                          raw_kg=None)


def test_ripplenet_npy(npy_dir):
    p = npy_dir / "ratings_final.npy"
    assert _read_npy(npy_dir).n_interactions == 50
    a = np.load(p)
    a[3, 2] = 7
    np.save(p, a)
    expect(lambda: _read_npy(npy_dir), p, 4, "label")             # row 4: a label that is not 0/1
    np.save(p, a[:, :2])
    expect(lambda: _read_npy(npy_dir), p, 0, "array")             # a missing column
    np.save(p, a.astype(np.float32))
    expect(lambda: _read_npy(npy_dir), p, 0, "array")             # not integer ids
    np.save(p, a[:0])
    expect(lambda: _read_npy(npy_dir), p, 1, "user")              # empty
    np.save(p, a)
    p.write_bytes(p.read_bytes()[:150])
    expect(lambda: _read_npy(npy_dir), p, 0, "array")             # truncated file


@pytest.mark.parametrize("line,change,field", [
    (1, lambda _: "userID\tartist\tweight", "artistID"),    # misnamed column
    (1, lambda _: "userID\tartistID", "weight"),            # missing column
    (3, truncate("\t"), "weight"),
    (4, set_field(0, "u2", "\t"), "userID"),
    (5, set_field(2, "many", "\t"), "weight"),
])
def test_kgcn_raw_malformed(ripple_dir, line, change, field):
    p = ripple_dir / "user_artists.dat"
    edit(p, line, change)
    expect(lambda: build_kgcn_ratings(ripple_dir), p, line, field)


def test_kgcn_raw_empty(ripple_dir):
    p = ripple_dir / "user_artists.dat"
    write(p, [])
    expect(lambda: build_kgcn_ratings(ripple_dir), p, 1, "userID")


# --------------------------------------------------------------------------- MIND
@pytest.fixture
def mind_dir(data_dir: Path, tmp_path: Path) -> Path:
    return slice_folder(data_dir / "mind-sample", tmp_path / "mind", {"news.tsv": 20, "behaviors.tsv": 20})


def test_mind_slice_reads(mind_dir):
    data = read_mind(mind_dir, "slice")
    assert data.n_items == 20 and data.n_users > 0 and data.cleaning["news ids: in the logs without a news.tsv row"] > 0


@pytest.mark.parametrize("fname,line,change,field", [
    ("news.tsv", 3, lambda line: "\t".join(line.split("\t")[:4]), "abstract"),      # truncated
    ("news.tsv", 2, set_field(6, '[{"Label": "x", "Type"', "\t"), "title_entities"),  # broken JSON
    ("news.tsv", 4, set_field(7, '[{"Label": "x", "Type": "P"}]', "\t"), "abstract_entities"),  # no WikidataId
    ("news.tsv", 5, set_field(0, "", "\t"), "news_id"),
    ("behaviors.tsv", 2, set_field(2, "yesterday", "\t"), "time"),
    ("behaviors.tsv", 3, set_field(4, "N55689-1 N35729-x", "\t"), "impressions"),
    ("behaviors.tsv", 4, truncate("\t"), "impressions"),
    ("behaviors.tsv", 6, set_field(1, "", "\t"), "user_id"),
])
def test_mind_malformed(mind_dir, fname, line, change, field):
    edit(mind_dir / fname, line, change)
    expect(lambda: read_mind(mind_dir, "slice"), mind_dir / fname, line, field)


@pytest.mark.parametrize("fname,field", [("news.tsv", "news_id"), ("behaviors.tsv", "impression_id")])
def test_mind_empty_file(mind_dir, fname, field):
    write(mind_dir / fname, [])
    expect(lambda: read_mind(mind_dir, "slice"), mind_dir / fname, 1, field)


# --------------------------------------------------------------------------- DKN
@pytest.fixture
def dkn_dir(data_dir: Path, tmp_path: Path) -> Path:
    return slice_folder(data_dir / "dkn-news", tmp_path / "dkn", {"raw_train.txt": 30, "raw_test.txt": 10})


def test_dkn_slice_reads(dkn_dir):
    data = read_dkn(dkn_dir, "slice")
    assert data.n_interactions == 40 and data.n_triples >= 40 and data.item_text[0].startswith("tautog")


@pytest.mark.parametrize("fname,line,change,field", [
    ("raw_train.txt", 3, truncate("\t"), "entities"),
    ("raw_train.txt", 2, set_field(0, "u12", "\t"), "user"),
    ("raw_train.txt", 4, set_field(2, "2", "\t"), "label"),
    ("raw_test.txt", 5, set_field(3, "Finsbury Park Mosque", "\t"), "entities"),     # no "id:"
    ("raw_test.txt", 2, set_field(3, "x26608:David Adjaye", "\t"), "entities"),      # non-integer entity id
    ("raw_test.txt", 6, set_field(1, "", "\t"), "title"),
])
def test_dkn_malformed(dkn_dir, fname, line, change, field):
    edit(dkn_dir / fname, line, change)
    expect(lambda: read_dkn(dkn_dir, "slice"), dkn_dir / fname, line, field)


def test_dkn_empty_file(dkn_dir):
    write(dkn_dir / "raw_test.txt", [])
    expect(lambda: read_dkn(dkn_dir, "slice"), dkn_dir / "raw_test.txt", 1, "user")


# --------------------------------------------------------------------------- HIN
@pytest.fixture
def hin_dirs(data_dir: Path, tmp_path: Path) -> dict[str, Path]:
    return {
        "amazon": slice_folder(data_dir / "amazon-hin", tmp_path / "amazon",
                               {f: 40 for f in ("user_item.dat", "item_brand.dat", "item_category.dat", "item_view.dat")}),
        "lastfm": slice_folder(data_dir / "lastfm-social", tmp_path / "lastfm",
                               {f: 40 for f in ("user_artist.dat", "user_user(original).dat", "artist_tag.dat")}),
        "yelp": slice_folder(data_dir / "yelp-social", tmp_path / "yelp",
                             {f: 40 for f in ("user_business.dat", "user_user.dat", "business_category.dat",
                                              "business_city.dat")}),
    }


HIN_READERS = {"amazon": read_amazon_hin, "lastfm": read_lastfm_social, "yelp": read_yelp_social}


def test_hin_slices_read(hin_dirs):
    for key, read in HIN_READERS.items():
        data = read(hin_dirs[key])
        assert data.n_interactions == 40 and data.n_triples > 0
    assert read_yelp_social(hin_dirs["yelp"]).social.shape[0] == 40


@pytest.mark.parametrize("key,fname,line,change,field", [
    ("amazon", "user_item.dat", 3, truncate("\t"), "timestamp"),
    ("amazon", "user_item.dat", 2, set_field(1, "x", "\t"), "item"),
    ("amazon", "user_item.dat", 6, set_field(0, "-3", "\t"), "user"),
    ("amazon", "item_brand.dat", 2, set_field(1, "b", ","), "brand"),
    ("amazon", "item_view.dat", 5, truncate(","), "view"),
    ("lastfm", "user_user(original).dat", 3, set_field(1, "f", "\t"), "friend"),
    ("lastfm", "artist_tag.dat", 7, set_field(0, "1.5", "\t"), "artist"),
    ("yelp", "user_user.dat", 4, truncate("\t"), "weight"),
    ("yelp", "user_business.dat", 9, set_field(2, "five", "\t"), "rating"),
])
def test_hin_malformed(hin_dirs, key, fname, line, change, field):
    d = hin_dirs[key]
    edit(d / fname, line, change)
    expect(lambda: HIN_READERS[key](d), d / fname, line, field)


def test_hin_empty_file(hin_dirs):
    d = hin_dirs["yelp"]
    write(d / "business_city.dat", [])
    expect(lambda: read_yelp_social(d), d / "business_city.dat", 1, "business")


# --------------------------------------------------------------------------- ml-1m-kg
@pytest.fixture
def ml1m_dir(data_dir: Path, tmp_path: Path) -> Path:
    src = data_dir / "ml-1m-kg"
    d = slice_folder(src, tmp_path / "ml1m", {"user_map.txt": None, "item_map.txt": None, "train.txt": 3,
                                              "test.txt": 3, "kg.txt": 30, "item_index2entity_id.txt": None})
    desc = json.loads((src / "llm_response_item.json").read_text(encoding="utf-8"))
    small = {k: desc[k] for k in list(desc)[:5]}
    (d / "llm_response_item.json").write_text(json.dumps(small, indent=4), encoding="utf-8")
    return d


def test_ml1m_slice_reads(ml1m_dir):
    # 5 descriptions for 3,260 items: an error unless accepted explicitly
    e = expect(lambda: read_colakg_ml1m(ml1m_dir), ml1m_dir / "llm_response_item.json", 0, "description")
    assert "match 5 of 3,260 items" in str(e)
    data = read_colakg_ml1m(ml1m_dir, min_text_match=0)
    assert data.n_items == 3260 and data.n_triples == 30 and data.item_text[data.item_ids.index("1")].startswith('"Toy Story')


@pytest.mark.parametrize("fname,line,change,field", [
    ("item_map.txt", 2, truncate(), "index"),
    ("user_map.txt", 3, set_field(0, "u3"), "raw_id"),
    ("train.txt", 2, set_field(1, "x"), "item 1"),
    ("kg.txt", 4, truncate("\t"), "tail"),
    ("kg.txt", 5, set_field(0, "h", "\t"), "head"),
    ("item_index2entity_id.txt", 2, set_field(1, "e", "\t"), "entity"),
    ("llm_response_item.json", 3, lambda line: line[:30], "description"),         # invalid JSON
    ("llm_response_item.json", 4, lambda _: '    "3": 17,', "description"),         # not a string
])
def test_ml1m_malformed(ml1m_dir, fname, line, change, field):
    edit(ml1m_dir / fname, line, change)
    expect(lambda: read_colakg_ml1m(ml1m_dir, min_text_match=0), ml1m_dir / fname, line, field)


@pytest.mark.parametrize("fname,field", [("train.txt", "user"), ("item_map.txt", "raw_id"),
                                         ("kg.txt", "head"), ("llm_response_item.json", "description")])
def test_ml1m_empty_file(ml1m_dir, fname, field):
    write(ml1m_dir / fname, [])
    expect(lambda: read_colakg_ml1m(ml1m_dir, min_text_match=0), ml1m_dir / fname, 1, field)


def test_read_columns_rejects_a_short_last_numeric_field(tmp_path):
    from kgzoo.data.readers._io import read_columns

    p = tmp_path / "w.txt"
    p.write_text("1\t2\t3.5\n4\t5\n")
    with pytest.raises(DataFormatError) as e:
        read_columns(p, [("user", "int"), ("item", "int"), ("weight", "float")], sep="\t")
    assert "line 2" in str(e.value) and "weight" in str(e.value) and str(p) in str(e.value)
