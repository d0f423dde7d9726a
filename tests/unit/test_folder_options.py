"""register_folder keys a registration by the folder and its options (found by the new-user
trial of issue 15: a second registration with another ``min_text_match`` returned the first)."""
from __future__ import annotations

import pandas as pd
import pytest

from kgzoo.data import DataFormatError, load_data
from kgzoo.data.folders import register_folder
from kgzoo.data.protocol import EvalProtocol


@pytest.fixture()
def shop(tmp_path):
    """A CSV folder whose item text names 14 of its 30 items (46.7%, below the default 50%)."""
    d = tmp_path / "shop-opts"
    d.mkdir()
    rows = [(f"u{u}", f"i{i}") for u in range(10) for i in range(30) if (u + i) % 3]
    pd.DataFrame(rows, columns=["user", "item"]).to_csv(d / "interactions.csv", index=False)
    keys = [f"i{i}" for i in range(14)] + [f"x{i}" for i in range(16)]
    pd.DataFrame({"item": keys, "text": "t"}).to_csv(d / "item_text.csv", index=False)
    return d


def test_other_options_are_another_registration_the_same_ones_the_same(shop):
    strict = register_folder(shop)
    with pytest.raises(DataFormatError, match="14 of 30 items"):
        load_data(strict.name)
    loose = register_folder(shop, min_text_match=0.4)
    assert loose.name != strict.name and loose.origin != strict.origin
    assert load_data(loose.name).n_items == 30  # the new threshold is the one read with
    assert register_folder(shop, min_text_match=0.4) is loose and register_folder(shop) is strict
    other = register_folder(shop, min_text_match=0.4, protocol=EvalProtocol(split="random", ratios=(0.6, 0.2, 0.2)))
    assert other.name not in (loose.name, strict.name) and other.protocol.ratios == (0.6, 0.2, 0.2)


def test_a_name_taken_by_the_folder_with_other_options_is_refused_naming_both(shop):
    register_folder(shop, name="shop-named")
    with pytest.raises(ValueError, match=r"'shop-named' is already registered \(folder:.*\); this one is "
                                         r"folder:.*;min_text_match=0\.4"):
        register_folder(shop, name="shop-named", min_text_match=0.4)


def test_a_bom_or_spaces_in_a_tables_header_are_no_part_of_the_column_names(tmp_path):
    """A CSV saved by Excel as "CSV UTF-8" starts with a byte order mark: the folder matched no
    layout, its columns listed as '\\ufeffuser' (which prints as 'user'). A header ``user, item``
    had its role found (the names stripped) and then failed reading: "missing column 'item'
    (columns: user,  item)". Both read as the plain names."""
    rows = [(f"u{u}", f"i{i}", 1 + (u + i) % 5) for u in range(10) for i in range(30) if (u + i) % 3]
    text = "user,item,rating\n" + "".join(f"{u},{i},{r}\n" for u, i, r in rows)
    bom, spaced = tmp_path / "bom", tmp_path / "spaced"
    for d in (bom, spaced):
        d.mkdir()
        pd.DataFrame({"item": [f"i{i}" for i in range(30)], "text": "t"}).to_csv(d / "item_text.csv", index=False)
    (bom / "ratings.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    (spaced / "ratings.csv").write_text(text.replace("user,item,rating", "user, item ,rating"))
    for d in (bom, spaced):
        data = load_data(register_folder(d).name)
        assert (data.n_users, data.n_items, data.user_ids[0]) == (10, 30, "u0") and data.rating is not None
