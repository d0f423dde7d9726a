"""Strict validation in every reader (issue 15, part 3): each damage of the issue's list is a
DataFormatError naming the file, the line and the field. Tiny files written in ``tmp_path``."""
from __future__ import annotations

from pathlib import Path

import pytest

from kgzoo.data.readers import DataFormatError
from kgzoo.data.readers.hin import EdgeFile, read_hin
from kgzoo.data.readers.kgin import read_kgin
from kgzoo.data.readers.recbole import read_recbole_kg
from kgzoo.data.readers.ripplenet import read_ripplenet

INTER_HEAD = "user_id:token\titem_id:token\trating:float\ttimestamp:float"
INTER_ROWS = ["u1\tm1\t4\t100", "u1\tm2\t3\t101", "u2\tm1\t5\t102", "u2\tm3\t2\t103"]


def write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(x + "\n" for x in lines))
    return path


def recbole(tmp_path: Path, inter: list[str] | None = None, kg: list[str] | None = None,
            link: list[str] | None = None, item: list[str] | None = None) -> Path:
    write(tmp_path / "s.inter", [INTER_HEAD] + (INTER_ROWS if inter is None else inter))
    if kg is not None:
        write(tmp_path / "s.kg", ["head_id:token\trelation_id:token\ttail_id:token"] + kg)
    if link is not None:
        write(tmp_path / "s.link", ["item_id:token\tentity_id:token"] + link)
    if item is not None:
        write(tmp_path / "s.item", ["item_id:token\tmovie_title:token_seq"] + item)
    return tmp_path


def raises(fn, file: str, line: int, field: str | None, match: str = "") -> DataFormatError:
    """The error of ``fn``: its file, line and field, and a message that names the line, or no
    line at all for a fault of the whole file (``line`` 0: it said "line 0")."""
    with pytest.raises(DataFormatError, match=match) as e:
        fn()
    assert Path(e.value.path).name == file and e.value.line == line and e.value.field == field, str(e.value)
    msg = str(e.value)
    assert (f"{e.value.path}, line {line}" in msg) if line else (", line" not in msg and msg.startswith(e.value.path))
    return e.value


KG = ["e1\tgenre\tg1", "e2\tgenre\tg1", "e3\tdirector\tp1"]
LINK = ["m1\te1", "m2\te2", "m3\te3"]


def test_clean_recbole_reads(tmp_path):
    d = read_recbole_kg(recbole(tmp_path, kg=KG, link=LINK, item=["m1\tA", "m2\tB", "m3\tC"]), "s")
    assert (d.n_users, d.n_items, d.n_triples) == (2, 3, 3)
    assert d.timestamp.tolist() == [100, 101, 102, 103]


@pytest.mark.parametrize("row, field, match", [
    ("u2\tm3\t2", "timestamp", "truncated"),            # a row missing its last column
    ("u2\tm3\t2\t", "timestamp", "finite number"),      # a missing timestamp
    ("u2\tm3\tnan\t103", "rating", "finite number"),    # NaN where a rating is required
    ("u2\t\t2\t103", "item_id", "empty token"),
])
def test_recbole_damaged_row(tmp_path, row, field, match):
    folder = recbole(tmp_path, inter=INTER_ROWS[:3] + [row])
    raises(lambda: read_recbole_kg(folder, "s"), "s.inter", 5, field, match)


def test_recbole_link_without_kg_and_kg_without_link(tmp_path):
    raises(lambda: read_recbole_kg(recbole(tmp_path / "a", link=LINK), "s"), "s.link", 0, None, "without s.kg")
    raises(lambda: read_recbole_kg(recbole(tmp_path / "b", kg=KG), "s"), "s.kg", 0, None, "without s.link")


def test_recbole_kg_that_reaches_no_item(tmp_path):
    folder = recbole(tmp_path, kg=KG, link=["m1\tx1", "m2\tx2"])  # links to entities the KG lacks
    e = raises(lambda: read_recbole_kg(folder, "s"), "s.kg", 0, "head", "reaches no item")
    # string tokens: the message names the file's tokens and the items' raw ids, not kgzoo's entity ids
    assert "head 'e1', tail 'g1'; items are named like 'm1', 'm2', 'm3'" in str(e) and "entity id" not in str(e)


def test_item_text_of_another_id_space(tmp_path):
    folder = recbole(tmp_path, item=["m1\tA", "9001\tB", "9002\tC", "9003\tD"])  # 1 of 3 items matched
    e = raises(lambda: read_recbole_kg(folder, "s"), "s.item", 0, "item_id", "match 1 of 3 items")
    assert "min_text_match" in str(e)
    d = read_recbole_kg(folder, "s", min_text_match=0.3)  # accepted explicitly
    text = dict(zip(d.item_ids, d.item_text))
    assert [text[m] for m in ("m1", "m2", "m3")] == ["A", "", ""]


def kgin(tmp_path: Path, kg: list[str] | None) -> Path:
    write(tmp_path / "train.txt", ["0 0 1", "1 1 2"])
    if kg is not None:
        write(tmp_path / "kg_final.txt", kg)
    return tmp_path


def test_kgin_non_integer_id_and_truncated_triple(tmp_path):
    raises(lambda: read_kgin(kgin(tmp_path / "a", ["0 0 3", "5.0 0 4"])), "kg_final.txt", 2, "head", "integer")
    raises(lambda: read_kgin(kgin(tmp_path / "b", ["0 0 3", "1 0"])), "kg_final.txt", 2, "tail", "truncated")
    e = raises(lambda: read_kgin(kgin(tmp_path / "c", ["7 0 3", "8 0 4"])), "kg_final.txt", 0, "head",
               "reaches no item")
    assert "entity id < 3" in str(e)  # integer ids: the file's own, whose items are 0..I-1


def test_kgin_interactions_only(tmp_path):
    d = read_kgin(kgin(tmp_path, None))
    assert (d.n_users, d.n_items, d.n_triples) == (2, 3, 0)
    write(tmp_path / "relation_list.txt", ["org_id remap_id", "r 0"])
    raises(lambda: read_kgin(tmp_path), "relation_list.txt", 0, None, "without kg_final.txt")


def test_ripplenet_kg_of_another_id_space_and_float_id(tmp_path):
    write(tmp_path / "ratings_final.txt", ["0\t0\t1", "0\t1\t0", "1\t1\t1"])
    write(tmp_path / "kg_final.txt", ["5\t0\t6", "6\t0\t7"])
    raises(lambda: read_ripplenet(tmp_path), "kg_final.txt", 0, "head", "reaches no item")
    write(tmp_path / "ratings_final.txt", ["0\t0\t1", "0\t1.0\t0"])
    raises(lambda: read_ripplenet(tmp_path), "ratings_final.txt", 2, "item", "integer")


def test_hin_nan_rating_and_float_id(tmp_path):
    spec = EdgeFile("ui.dat", "\t", (("user", "int"), ("item", "int"), ("rating", "float")))
    write(tmp_path / "ui.dat", ["1\t2\t3", "1\t3\tnan"])
    raises(lambda: read_hin(tmp_path, "h", spec), "ui.dat", 2, "rating", "finite number")
    write(tmp_path / "ui.dat", ["1\t2\t3", "1.5\t3\t4"])
    raises(lambda: read_hin(tmp_path, "h", spec), "ui.dat", 2, "user", "integer")
