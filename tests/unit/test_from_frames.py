"""kgzoo.from_frames (issue 15, part 1): pandas frames with raw ids of any type become a dataset
usable wherever a catalogue name is; a bad frame is an error naming the frame, row and column."""
from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pytest

import kgzoo
from kgzoo.data import DataFormatError, dataset_spec, load_data
from kgzoo.data.frames import build_from_frames

USERS = ["ann", "bob", "cy", "dee", "eve", "fay"]
ITEMS = [f"sku-{k}" for k in range(30)]


def interactions(rating: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [(u, ITEMS[j]) for k, u in enumerate(USERS) for j in range(30) if (j + k) % 2 == 0]
    df = pd.DataFrame(rows, columns=["user", "item"])
    if rating:
        df["rating"] = rng.integers(1, 6, len(df)).astype(float)
        df["timestamp"] = pd.to_datetime(1_600_000_000 + np.arange(len(df)), unit="s")
    return df


def fingerprint(dataset) -> str:
    dm = kgzoo.create_datamodule(dataset)
    dm.setup()
    return dm.fingerprint


KG = pd.DataFrame({"head": ["sku-1", "sku-2", "sku-3", "brand:a"], "relation": ["brand", "brand", "brand", "country"],
                   "tail": ["brand:a", "brand:a", "brand:b", "FR"]})


def test_string_ids_to_a_datamodule_and_a_model():
    ds = kgzoo.from_frames(interactions(), triples=KG, name=f"shop-{uuid.uuid4().hex[:6]}")
    dm = kgzoo.create_datamodule(ds)  # the spec, or its name, works where a catalogue name does
    dm.setup()
    d = dm.data
    assert (d.n_users, d.n_items, d.n_triples, d.n_relations) == (6, 30, 4, 2)
    assert d.user_ids[:2] == ["ann", "bob"] and d.entity_ids[30:] == ["brand:a", "brand:b", "FR"]
    assert d.timestamp.tolist()[:2] == [1_600_000_000, 1_600_000_001]  # datetimes -> seconds
    assert fingerprint(ds.name) == dm.fingerprint
    model = kgzoo.create_model("bpr", dm, ks=[5])
    assert model.n_items == 30
    assert ds.name in kgzoo.list_datasets()
    # print(dm) works (Lightning's DataModule __str__ raised AttributeError on kgzoo's loaders)
    assert str(dm) == repr(dm) == f"KGRecDataModule({ds.name!r}, protocol=topk/random)"
    from kgzoo.data.link import KGLinkDataModule
    assert str(KGLinkDataModule(dm, seed=0)) == f"KGLinkDataModule({ds.name!r}, ratios=[0.9, 0.05, 0.05], seed=0)"


def test_missing_optional_columns_and_integer_ids():
    x = interactions(rating=False)
    x["user"] = x["user"].map({u: 100 + k for k, u in enumerate(USERS)})  # integer raw ids
    d = build_from_frames(x)
    assert d.rating is None and d.timestamp is None and d.n_triples == 0
    assert d.user_ids[0] == "100"


def test_same_name_other_contents_is_an_error_same_contents_the_same_dataset():
    name = f"shop-{uuid.uuid4().hex[:6]}"
    a = kgzoo.from_frames(interactions(), name=name)
    assert kgzoo.from_frames(interactions(), name=name) is a
    with pytest.raises(ValueError, match="already registered"):
        kgzoo.from_frames(interactions().iloc[:-3], name=name)
    other = kgzoo.from_frames(interactions().iloc[:-3])  # no name: named by its contents
    fps = {fingerprint(n) for n in (name, other.name)}
    assert len(fps) == 2


@pytest.mark.parametrize("change, frame, line, field, match", [
    (lambda x: x.drop(columns="item"), "interactions", 0, "item", "missing column"),
    (lambda x: x.assign(user=x["user"].where(x.index != 4)), "interactions", 5, "user", "missing value"),
    (lambda x: x.assign(rating=x["rating"].where(x.index != 2)), "interactions", 3, "rating",
     "expected a finite number, got a missing value \\(an empty field, or a row with fewer fields"),
    (lambda x: x.assign(timestamp=x["timestamp"].where(x.index != 7)), "interactions", 8, "timestamp", "missing"),
    (lambda x: x.assign(label=2), "interactions", 1, "label", "not 0 or 1"),
    # a rating named otherwise was dropped without a word (every row an implicit positive)
    (lambda x: x.rename(columns={"rating": "score"}), "interactions", 0, "score",
     "unknown column 'score'; its columns are user, item and optionally rating, timestamp, label"),
])
def test_bad_interactions_frame(change, frame, line, field, match):
    with pytest.raises(DataFormatError, match=match) as e:
        build_from_frames(change(interactions()))
    assert (e.value.path, e.value.line, e.value.field) == (f"<{frame} frame>", line, field)


def test_bad_side_frames():
    x = interactions()
    with pytest.raises(DataFormatError, match="expected a pandas DataFrame"):
        build_from_frames(x.to_dict())
    with pytest.raises(DataFormatError, match="links without triples"):
        build_from_frames(x, links=pd.DataFrame({"item": ["sku-1"], "entity": ["e1"]}))
    with pytest.raises(DataFormatError, match="reaches no item") as e:
        build_from_frames(x, triples=pd.DataFrame({"head": ["e1"], "relation": ["r"], "tail": ["e2"]}))
    # the raw tokens of the frame and the raw item ids, never kgzoo's internal entity ids
    assert "(the first: head 'e1', tail 'e2'; items are named like 'sku-0', 'sku-2'" in str(e.value)
    assert "entity id" not in str(e.value) and str(e.value).startswith("<triples frame>, field 'head': none of")
    text = pd.DataFrame({"item": ["sku-1"] + [f"other-{k}" for k in range(20)], "text": ["a shoe"] * 21})
    with pytest.raises(DataFormatError, match=r"match 1 of 30 items \(3.3%\)") as e:
        build_from_frames(x, item_text=text)
    assert e.value.field == "item"
    d = build_from_frames(x, item_text=text, min_text_match=0)  # accepted explicitly
    assert d.item_text[d.item_ids.index("sku-1")] == "a shoe"
    assert d.cleaning["item_text: rows of an item without interactions"] == 20


def test_unknown_columns_of_side_frames_are_errors_attributes_are_not(tmp_path):
    x = interactions()
    with pytest.raises(DataFormatError, match="triples: unknown column 'weight'") as e:
        build_from_frames(x, triples=KG.assign(weight=1.0))
    assert (e.value.path, e.value.line, e.value.field) == ("<triples frame>", 0, "weight")
    text = pd.DataFrame({"item": ITEMS, "text": ["a shoe"] * 30, "lang": ["en"] * 30})
    with pytest.raises(DataFormatError, match="item_text: unknown column 'lang'"):
        build_from_frames(x, item_text=text)
    # features: every other column is an attribute
    feats = pd.DataFrame({"item": ITEMS, "colour": ["red", "blue"] * 15, "size": ["s"] * 30})
    assert sorted(build_from_frames(x, item_features=feats).feature_vocab) == ["colour", "size"]
    # a folder: the file, its header line and the column; a short row: a missing value, not 'nan'
    (tmp_path / "shop").mkdir()
    x.assign(comment="nice").to_csv(tmp_path / "shop" / "interactions.csv", index=False)
    with pytest.raises(DataFormatError, match="unknown column 'comment'") as e:
        kgzoo.create_datamodule(tmp_path / "shop").setup()
    assert (e.value.path, e.value.line, e.value.field) == (str(tmp_path / "shop" / "interactions.csv"), 1, "comment")
    lines = x.to_csv(index=False).splitlines()
    lines[3] = "ann,sku-4"  # two of four fields
    (tmp_path / "shop" / "interactions.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match="got a missing value") as e:
        kgzoo.create_datamodule(tmp_path / "shop").setup()
    assert (e.value.line, e.value.field) == (4, "rating")


def test_an_integer_id_written_as_a_float_is_an_error(tmp_path):
    """``5.0`` among integer ids was another item than ``5`` (ids are compared as text): the
    README's "`5.0` as an id" error held for the KGIN/RippleNet/HIN readers only, not for tables."""
    x = interactions(rating=False)
    x["item"] = x["item"].str.removeprefix("sku-")
    with pytest.raises(DataFormatError, match="interactions: id '4.0' is an integer written as a float") as e:
        build_from_frames(x.assign(item=x["item"].where(x.index != 2, "4.0")))
    assert (e.value.line, e.value.field) == (3, "item")
    kg = pd.DataFrame({"head": ["1", "2.0"], "relation": ["r", "r"], "tail": ["g", "g"]})
    with pytest.raises(DataFormatError, match="triples: id '2.0'") as e:
        build_from_frames(x, triples=kg)
    assert (e.value.line, e.value.field) == (2, "head")
    # ids that are all written one way are ids
    assert build_from_frames(x.assign(item=x["item"] + ".0")).item_ids[0] == "0.0"
    assert build_from_frames(x.assign(user=x["user"].map({u: str(k) for k, u in enumerate(USERS)}))).n_users == 6


def test_links_map_items_to_kg_entities():
    links = pd.DataFrame({"item": ["sku-1", "sku-2"], "entity": ["m.01", "m.02"]})
    kg = pd.DataFrame({"head": ["m.01", "m.02"], "relation": ["genre", "genre"], "tail": ["g.1", "g.1"]})
    d = build_from_frames(interactions(), triples=kg, links=links)
    i1, i2 = d.item_ids.index("sku-1"), d.item_ids.index("sku-2")
    assert d.triples[:, 0].tolist() == [i1, i2] and d.n_entities == 31
    ds = kgzoo.from_frames(interactions(), triples=kg, links=links)
    assert load_data(ds.name).n_triples == 2 and dataset_spec(ds.name).protocol.task == "topk"


def test_protocol_of_a_frames_dataset():
    clicks = interactions(rating=False).assign(label=lambda x: (x.index % 2).astype(int))
    assert kgzoo.from_frames(clicks).protocol.task == "ctr"  # labelled rows: ctr 6:2:2
    ds = kgzoo.from_frames(interactions(), protocol={"split": "temporal"})
    dm = kgzoo.create_datamodule(ds)
    dm.setup()
    assert dm.protocol.split == "temporal" and dm.split.sizes()["test"] > 0


def test_features_and_social():
    uf = pd.DataFrame({"user": USERS + ["ghost"], "gender": ["f", "m", "m", "f", None, "f", "m"]})
    itf = pd.DataFrame({"item": ITEMS[:3], "colour": ["red", "blue", "red"]})
    soc = pd.DataFrame({"user": ["ann", "bob", "ann"], "friend": ["bob", "ann", "zed"]})
    d = build_from_frames(interactions(), user_features=uf, item_features=itf, social=soc)
    assert d.feature_vocab["gender"] == ["[UNK]", "f", "m"]
    assert d.user_features["gender"].tolist() == [1, 2, 2, 1, 0, 1]  # None: unknown (code 0)
    colour = dict(zip(d.item_ids, d.item_features["colour"].tolist()))
    assert [colour[i] for i in ITEMS[:4]] == [2, 1, 2, 0]  # sku-3 has no row: unknown
    assert d.social.tolist() == [[0, 1], [1, 0]]
    assert d.cleaning["user_features: rows of a user without interactions"] == 1
    assert d.cleaning["social: rows of a user without interactions"] == 1


def test_a_side_rows_repeat_is_counted_a_conflicting_one_names_both_lines(tmp_path):
    """An item on two text rows (or a user on two feature rows) kept the last one silently: a row
    repeated whole is dropped and counted, a second row of other values is an error naming its
    file, line and field, with the line it repeats."""
    x = interactions()
    text = pd.DataFrame({"item": ["sku-0", "sku-1", "sku-0", "sku-2"], "text": ["a", "b", "a", "c"]})
    d = build_from_frames(x, item_text=text, min_text_match=0)
    assert d.cleaning["item_text: a row repeating an earlier one"] == 1
    assert d.item_text[d.item_ids.index("sku-0")] == "a"
    text.loc[2, "text"] = "another"
    with pytest.raises(DataFormatError, match=r"item 'sku-0' repeats line 1 with another text \('a', then 'another'\)") as e:
        build_from_frames(x, item_text=text, min_text_match=0)
    assert (e.value.line, e.value.field) == (3, "text")
    uf = pd.DataFrame({"user": ["ann", "bob", "ann"], "gender": ["f", "m", None], "age": ["20", "30", "20"]})
    with pytest.raises(DataFormatError, match=r"user 'ann' repeats line 1 with another gender \('f', then ''\)"):
        build_from_frames(x, user_features=uf)
    assert build_from_frames(x, user_features=uf.iloc[:2]).cleaning["user_features: a row repeating an earlier one"] == 0
    # a folder of tables: the file and its line (a header above the rows)
    x.drop(columns="timestamp").to_csv(tmp_path / "ratings.csv", index=False)
    text.to_csv(tmp_path / "text.csv", index=False)
    with pytest.raises(DataFormatError, match=r"text\.csv, line 4, field 'text': item_text: item 'sku-0' repeats line 2"):
        load_data(tmp_path)
