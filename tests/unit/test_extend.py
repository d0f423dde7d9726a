"""extend_data (issue 15, part 7): a dataset extended with new interactions, triples, items and
users keeps every existing id, appends the new ones, counts what cleaning drops and raises on
bad rows naming the frame, line and field."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from kgzoo.data import DataFormatError
from kgzoo.data.extend import extend_data
from kgzoo.data.frames import Origin, build_from_frames
from kgzoo.data.kgdata import content_checksum

BASE_X = pd.DataFrame({"user": ["ann", "ann", "bob", "bob", "cy"], "item": ["a", "b", "b", "c", "a"],
                       "timestamp": [1, 2, 3, 4, 5]})
BASE_KG = pd.DataFrame({"head": ["a", "b", "c", "Paris"], "relation": ["city", "city", "genre", "in"],
                        "tail": ["Paris", "Paris", "jazz", "France"]})


def base():
    data = build_from_frames(BASE_X, triples=BASE_KG, item_text=pd.DataFrame({"item": ["a", "b", "c"],
                                                                              "text": ["A", "B", "C"]}))
    data.source_checksums = {"in-memory": content_checksum(data)}
    return data


def test_new_rows_and_ids_are_appended_and_old_ids_stay():
    b = base()
    new_x = pd.DataFrame({"user": ["dee", "ann", "dee", "ann", "dee"], "item": ["d", "c", "a", "a", "d"],
                          "timestamp": [6, 7, 8, 9, 10]})
    kg = pd.DataFrame({"head": ["d", "d", "jazz", "d", "Moon", "e"],
                       "relation": ["city", "genre", "genre", "city", "x", "city"],
                       "tail": ["Paris", "jazz", "jazz", "Paris", "Mars", "Berlin"]})
    text = pd.DataFrame({"item": ["d", "e"], "text": ["D", "E"]})
    ext, g = extend_data(b, interactions=new_x, triples=kg, item_text=text)
    assert ext.user_ids[:b.n_users] == b.user_ids and ext.user_ids[b.n_users:] == ["dee"]
    assert ext.item_ids[:b.n_items] == b.item_ids and ext.item_ids[b.n_items:] == ["d", "e"]  # e: cold (text, KG)
    assert torch.equal(ext.interactions[:b.n_interactions], b.interactions)
    assert torch.equal(ext.timestamp[:b.n_interactions], b.timestamp)
    # every base entity keeps its token under its new id; other entities moved past the 2 new items
    assert [ext.entity_ids[j] for j in g.entity_map.tolist()] == b.entity_ids
    assert g.entity_map[: b.n_items].tolist() == list(range(b.n_items))
    assert bool((g.entity_map[b.n_items:] >= ext.n_items).all())
    old = g.entity_map[b.triples[:, [0, 2]]]
    assert torch.equal(ext.triples[: b.n_triples, [0, 2]], old)
    assert ext.relation_names == b.relation_names and g.counts["new relations"] == 0  # "x": dangling only
    # cleaning: (ann, a) is a base row, (dee, d) twice; jazz-genre-jazz a self-loop, d-city-Paris twice,
    # Moon-x-Mars reaches no item
    c = g.counts
    assert c["update interactions: duplicate"] == 2 and c["new interactions"] == 3
    assert c["update triples: self-loop"] == 1 and c["update triples: duplicate"] == 1
    assert c["update triples: dangling (reach no item)"] == 1 and c["new triples"] == 3
    assert ext.cleaning["update triples: dangling (reach no item)"] == 1
    assert "Moon" not in ext.entity_ids and "Berlin" in ext.entity_ids
    assert g.new_interactions.tolist() == [5, 6, 7]
    assert ext.item_text[-2:] == ["D", "E"] and ext.item_text[:3] == ["A", "B", "C"]
    assert ext.source_checksums != b.source_checksums and ext.name.startswith(b.name + "+update-")


def test_a_new_item_linked_to_a_base_entity_becomes_that_entity():
    b = base()
    jazz = b.entity_ids.index("jazz")
    ext, g = extend_data(b, interactions=pd.DataFrame({"user": ["bob"], "item": ["album"], "timestamp": [9]}),
                         triples=pd.DataFrame({"head": ["jazz-record"], "relation": ["genre"], "tail": ["jazz"]}),
                         links=pd.DataFrame({"item": ["album"], "entity": ["jazz-record"]}))
    assert ext.n_items == b.n_items + 1
    # the link token names the new item: the triple is (album, genre, jazz)
    assert ext.triples[-1].tolist() == [b.n_items, b.relation_names.index("genre"), int(g.entity_map[jazz])]
    b2 = base()
    ext2, g2 = extend_data(b2, interactions=pd.DataFrame({"user": ["bob"], "item": ["fan"], "timestamp": [9]}),
                           triples=pd.DataFrame({"head": ["x"], "relation": ["genre"], "tail": ["jazz"]}),
                           links=pd.DataFrame({"item": ["fan"], "entity": ["jazz"]}))
    assert int(g2.entity_map[jazz]) == b2.n_items  # base entity "jazz" is now the new item
    assert g2.counts["base entities that became new items"] == 1


@pytest.mark.parametrize("frame, bad, field", [
    ("interactions", pd.DataFrame({"user": ["dee"], "item": ["a"]}), "timestamp"),
    ("interactions", pd.DataFrame({"user": ["dee", None], "item": ["a", "b"], "timestamp": [1, 2]}), "user"),
    ("interactions", pd.DataFrame({"user": ["dee"], "item": ["a"], "timestamp": ["soon"]}), "timestamp"),
    ("interactions", pd.DataFrame({"user": ["dee"], "item": ["a"], "timestamp": [1], "rating": [3.0]}), "rating"),
    ("triples", pd.DataFrame({"head": ["a"], "relation": ["city"]}), "tail"),
])
def test_bad_rows_raise_naming_frame_line_and_field(frame, bad, field):
    with pytest.raises(DataFormatError) as e:
        extend_data(base(), **{frame: bad}, origins={frame: Origin("new.csv", 1)})
    assert e.value.field == field and "new.csv" in str(e.value)


def test_relinking_a_base_item_or_changing_its_text_is_refused():
    with pytest.raises(DataFormatError, match="base item"):
        extend_data(base(), triples=BASE_KG, links=pd.DataFrame({"item": ["a"], "entity": ["Paris"]}))
    with pytest.raises(DataFormatError, match="other text"):
        extend_data(base(), item_text=pd.DataFrame({"item": ["a"], "text": ["not A"]}))
    with pytest.raises(ValueError, match="nothing to add"):
        extend_data(base())


def test_a_new_items_second_text_row_is_one_text_or_an_error():
    """A new item on two ``item_text`` rows took the last one's text silently (``build_from_frames``
    refuses it the same way): the same text twice is one row, counted; another is an error naming
    the line, its field and the line it repeats."""
    x = pd.DataFrame({"user": ["dee", "dee"], "item": ["d", "a"], "timestamp": [6, 7]})
    same = pd.DataFrame({"item": ["d", "d"], "text": ["D", "D"]})
    ext, _ = extend_data(base(), interactions=x, item_text=same)
    assert ext.item_text[-1] == "D" and ext.cleaning["update item_text: a new item's row repeating an earlier one"] == 1
    with pytest.raises(DataFormatError, match=r"item 'd' repeats line 1 with another text \('D', then 'D2'\)") as e:
        extend_data(base(), interactions=x, item_text=pd.DataFrame({"item": ["d", "d"], "text": ["D", "D2"]}))
    assert (e.value.line, e.value.field) == (2, "text")


def social_base():
    feats = pd.DataFrame({"user": ["ann", "bob", "cy"], "age": ["20s", "30s", "20s"]})
    friends = pd.DataFrame({"user": ["ann", "bob"], "friend": ["bob", "ann"]})
    data = build_from_frames(BASE_X, triples=BASE_KG, user_features=feats, social=friends,
                             item_features=pd.DataFrame({"item": ["a", "b", "c"], "shelf": ["x", "y", "x"]}))
    data.source_checksums = {"in-memory": content_checksum(data)}
    return data


def test_attributes_and_social_ties_of_new_users_are_added_and_counted():
    b = social_base()
    new_x = pd.DataFrame({"user": ["dee", "eve"], "item": ["a", "d"], "timestamp": [6, 7]})
    feats = pd.DataFrame({"user": ["dee", "eve", "ann", "zed"], "age": ["30s", "90s", "20s", "20s"]})
    items = pd.DataFrame({"item": ["d"], "shelf": ["y"]})
    friends = pd.DataFrame({"user": ["dee", "dee", "ann", "eve", "dee", "zed"],
                            "friend": ["ann", "ann", "bob", "eve", "eve", "ann"]})
    ext, g = extend_data(b, interactions=new_x, user_features=feats, item_features=items, social=friends)
    vocab = ext.feature_vocab["age"]
    assert ext.user_features["age"][:3].tolist() == b.user_features["age"].tolist()
    assert ext.user_features["age"][3].item() == vocab.index("30s")
    assert ext.user_features["age"][4].item() == 0                     # "90s" is no base value: unknown
    assert ext.item_features["shelf"][3].item() == ext.feature_vocab["shelf"].index("y")
    assert vocab == b.feature_vocab["age"]
    c = g.counts
    assert c["update user_features: rows of a user without interactions"] == 1      # zed
    assert c["update user_features: values outside the base vocabulary (coded unknown)"] == 1
    assert c["new users with attributes"] == 2 and c["new items with attributes"] == 1
    # ties: (dee, ann) twice, (ann, bob) is a base tie, (eve, eve) a self-tie, zed unknown
    assert c["update social: duplicate"] == 2 and c["update social: self-tie"] == 1
    assert c["update social: rows of a user without interactions"] == 1 and c["new social ties"] == 2
    assert torch.equal(ext.social[: b.social.shape[0]], b.social)
    assert ext.social[b.social.shape[0]:].tolist() == [[3, 0], [3, 4]]
    assert ext.cleaning["update social: self-tie"] == 1


@pytest.mark.parametrize("feats, field, match", [
    (pd.DataFrame({"user": ["dee"], "height": ["tall"]}), "height", "not one of the base's"),
    (pd.DataFrame({"user": ["ann"], "age": ["30s"]}), "age", "base user"),
    (pd.DataFrame({"user": ["dee", "dee"], "age": ["30s", "20s"]}), "user", "twice"),
])
def test_bad_attribute_rows_raise_naming_line_and_field(feats, field, match):
    new_x = pd.DataFrame({"user": ["dee"], "item": ["a"], "timestamp": [6]})
    with pytest.raises(DataFormatError, match=match) as e:
        extend_data(social_base(), interactions=new_x, user_features=feats,
                    origins={"user_features": Origin("feats.csv", header=1)})
    assert e.value.field == field and "feats.csv" in str(e.value)


def test_an_integer_id_written_as_a_float_against_integer_base_ids_is_an_error():
    """An update file's "5.0" where the base's ids are integers ("5") was a new user beside "5"
    (ids are compared as text), though the base's file refuses the mixture: refused, naming file,
    line and field; an update of ids written one way as the base's is read."""
    x = pd.DataFrame({"user": ["1", "1", "2", "3"], "item": ["10", "11", "11", "12"], "timestamp": [1, 2, 3, 4]})
    b = build_from_frames(x)
    b.source_checksums = {"in-memory": content_checksum(b)}
    new = pd.DataFrame({"user": ["2.0", "2.0"], "item": ["10", "12"], "timestamp": [5, 6]})  # one form in the file
    with pytest.raises(DataFormatError, match="interactions: id '2.0' is an integer written as a float") as e:
        extend_data(b, interactions=new, origins={"interactions": Origin("new.csv", 1)})
    assert (e.value.path, e.value.line, e.value.field) == ("new.csv", 2, "user")
    data, growth = extend_data(b, interactions=new.assign(user=["4", "2"]))
    assert data.n_users == 4 and growth.counts["new users"] == 1
