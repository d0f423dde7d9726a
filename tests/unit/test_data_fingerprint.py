"""A dataset's fingerprint follows the contents of its files, not its name (issue 15, part 2).

Tiny RecBole folders written in ``tmp_path``, registered under one name with no pinned files:
other contents give another fingerprint, the same contents (in another folder) the same one.
"""
from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest

from kgzoo.data.datamodule import KGRecDataModule
from kgzoo.data.datasets import content_checksums, load_data
from kgzoo.data.download import ChecksumError
from kgzoo.data.readers._io import read_text, recording_reads
from kgzoo.data.readers.recbole import read_recbole_kg
from kgzoo.data.spec import DatasetSpec, register_dataset


def write_inter(folder: Path, rows: list[tuple[str, str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["user_id:token\titem_id:token"] + [f"{u}\t{i}" for u, i in rows]
    (folder / "shop.inter").write_text("\n".join(lines) + "\n")
    return folder


ROWS = [(f"u{u}", f"i{(u * 3 + k) % 7}") for u in range(6) for k in range(4)]


@pytest.fixture()
def user_dataset():
    """A user's catalogue entry without pinned files, read from ``<root>/<name>/shop.inter``."""
    name = f"shop-{uuid.uuid4().hex[:8]}"
    register_dataset(DatasetSpec(name=name, domain="e-commerce", description="test", files=(),
                                 builder=lambda folder: read_recbole_kg(folder, "shop"), licence="-", citation="-"))
    return name


def fingerprint(name: str, root: Path) -> str:
    dm = KGRecDataModule(name, root=str(root))
    dm.setup()
    return dm.fingerprint


def test_other_contents_under_one_name_get_another_fingerprint(tmp_path, user_dataset):
    write_inter(tmp_path / "a" / user_dataset, ROWS)
    write_inter(tmp_path / "b" / user_dataset, ROWS[:-4])  # one user fewer
    write_inter(tmp_path / "c" / user_dataset, ROWS)  # the same bytes in another folder
    fa, fb, fc = (fingerprint(user_dataset, tmp_path / x) for x in "abc")
    assert fa != fb
    assert fa == fc
    data = load_data(user_dataset, tmp_path / "a")
    assert list(data.source_checksums) == ["shop.inter"]  # named by the file, valued by its bytes


def test_recording_reads_records_the_bytes_read(tmp_path):
    f = tmp_path / "x.txt"
    f.write_text("1 2 3\n")
    with recording_reads() as outer:
        with recording_reads() as inner:
            read_text(f)
    assert inner == outer == {f.resolve(): hashlib.sha256(b"1 2 3\n").hexdigest()}
    read_text(f)  # outside a block nothing is recorded (and nothing fails)


def test_pinned_checksum_is_kept_and_a_changed_pinned_file_is_an_error(tmp_path):
    f = tmp_path / "x.txt"
    f.write_text("1 2 3\n")
    with recording_reads() as reads:
        read_text(f)
    sha = reads[f.resolve()]
    assert content_checksums(tmp_path, reads, {"x.txt": sha}) == {"x.txt": sha}
    with pytest.raises(ChecksumError, match="x.txt"):
        content_checksums(tmp_path, reads, {"x.txt": "0" * 64})


def test_loading_never_changes_the_builders_object_nor_renames_its_identity():
    """A builder that hands out one in-memory object with an identity of its own (an update's
    ``{"extended": sha}``): loading keeps that identity and leaves the object as it was (it was
    renamed ``in-memory`` and the object changed in place)."""
    from kgzoo.data.frames import build_from_frames
    import pandas as pd

    raw = build_from_frames(pd.DataFrame({"user": ["a", "a", "b", "b", "c"], "item": ["x", "y", "x", "z", "y"]}),
                            name="built")
    raw.source_checksums = {"extended": "f" * 64}
    name = f"ext-{uuid.uuid4().hex[:8]}"
    register_dataset(DatasetSpec(name=name, domain="user", description="test", files=(), builder=lambda folder: raw,
                                 licence="-", citation="-", origin=f"test:{name}"))
    loaded = load_data(name)
    assert loaded.source_checksums == {"extended": "f" * 64} and loaded.name == name
    assert raw.name == "built" and raw.source_checksums == {"extended": "f" * 64}
