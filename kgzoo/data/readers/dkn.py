"""Reader for DKN's raw news click files.

Format (Wang et al., "DKN: Deep Knowledge-Aware Network for News Recommendation", WWW 2018;
github.com/hwwang55/DKN ``data/news/raw_train.txt``, ``raw_test.txt``), one labelled
impression per line, tab separated, no header::

    user_id \\t lower-cased title words \\t label (0/1) \\t entity_id:entity name;entity_id:entity name

Each distinct title is an item (first appearance, train file first). Rows keep their 0/1
``label`` and ``given_split`` (0 for the train file, 2 for the test file). KG: item
-[mentions]-> entity for every linked entity of its rows (the repository's KG file is not
public, so this is the whole KG). Item text: ``title words. Entities: name, name``; mentions:
where the text names each linked entity (in the title where its lower-cased name occurs there,
else in the list of names), so that DKN aligns title words with entities.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ..kgdata import KGRecData
from ._io import DataFormatError
from .mind import read_tsv

COLUMNS = ("user", "title", "label", "entities")


def read_dkn_file(path: str | Path) -> pd.DataFrame:
    """One DKN raw file as a DataFrame (``user`` and ``label`` int64, ``title`` str, ``entities``
    the list of ``(entity id, name)`` pairs of each row, exploded as ``ent_id`` / ``ent_name``
    columns of a second frame).

    Raises:
        DataFormatError: empty file, a truncated line, an empty title, a non-integer user, a label
        other than 0/1, an entity not written ``id:name`` with an integer id (file, line, field).
    """
    p = Path(path)
    df = read_tsv(p, COLUMNS, required=COLUMNS)
    for c in ("user", "label"):
        ok = df[c].str.fullmatch(r"\d+").to_numpy()
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            raise DataFormatError(p, i + 1, c, f"expected a non-negative integer, got {df[c].iloc[i]!r}")
        df[c] = df[c].astype(np.int64)
    bad = ~df["label"].isin([0, 1]).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataFormatError(p, i + 1, "label", f"label {df['label'].iloc[i]} is not 0 or 1")
    return df


def _entities(p: Path, df: pd.DataFrame) -> pd.DataFrame:
    """Rows ``(row, ent_id, ent_name)`` of the ``entities`` field of each row."""
    tok = df["entities"].str.split(";").explode()
    tok = tok[tok.notna() & (tok != "")]
    pair = tok.str.split(":", n=1, expand=True).reindex(columns=[0, 1])
    ok = pair[0].str.fullmatch(r"\d+").fillna(False).to_numpy() & pair[1].notna().to_numpy()
    ok &= (pair[1].fillna("") != "").to_numpy()
    if not ok.all():
        i = int(tok.index[~ok][0])
        raise DataFormatError(p, i + 1, "entities", f"entity {tok.iloc[int(np.flatnonzero(~ok)[0])]!r} is not <integer id>:<name>")
    return pd.DataFrame({"row": tok.index.to_numpy(np.int64), "ent_id": pair[0].to_numpy(dtype=object),
                         "ent_name": pair[1].to_numpy(dtype=object)})


_SUFFIX = ". Entities: "


def _mentions(names: pd.DataFrame, titles: np.ndarray) -> torch.Tensor:
    """LongTensor ``[Mn, 4]`` (item, entity, start, end): where each linked entity is named in its
    item's text ``title + ". Entities: " + names``: the first occurrence of the lower-cased name
    among the title words (DKN aligns a title's words with the entities they name, Wang et al.,
    WWW 2018, section 4.1), else its place in the appended list of names. ``names``: rows
    ``(item, name, entity)`` sorted by item, in the order the text lists them."""
    item = names["item"].to_numpy(np.int64)
    name = names["name"].to_numpy(dtype=object)
    title = titles[item]
    lengths = np.fromiter((len(n) for n in name), np.int64, len(name))
    # place in the list: after the title and the suffix, the earlier names of the item and ", "
    before = names.assign(w=lengths + 2).groupby("item", sort=False)["w"].cumsum().to_numpy() - (lengths + 2)
    listed = np.fromiter((len(t) for t in title), np.int64, len(title)) + len(_SUFFIX) + before
    found = np.fromiter((t.find(n.lower()) for t, n in zip(title, name)), np.int64, len(name))
    start = np.where(found >= 0, found, listed)
    return torch.from_numpy(np.stack([item, names["entity"].to_numpy(np.int64), start, start + lengths], 1))


def read_dkn(folder: str | Path, name: str = "dkn-news",
             files: Sequence[tuple[str, int]] = (("raw_train.txt", 0), ("raw_test.txt", 2))) -> KGRecData:
    """Read DKN's raw files (``(file name, given_split code)`` pairs) into a :class:`KGRecData`.

    Raises:
        DataFormatError: a malformed line (see :func:`read_dkn_file`).
    """
    folder = Path(folder)
    frames, ents = [], []
    offset = 0
    for fname, code in files:
        p = folder / fname
        df = read_dkn_file(p)
        df["part"] = code
        e = _entities(p, df)
        e["row"] += offset
        offset += len(df)
        frames.append(df)
        ents.append(e)
    df = pd.concat(frames, ignore_index=True)
    ent = pd.concat(ents, ignore_index=True)
    items, titles = pd.factorize(df["title"].to_numpy(dtype=object))
    users, user_uniq = pd.factorize(df["user"].to_numpy())
    I = len(titles)
    ecode, euniq = pd.factorize(ent["ent_id"].to_numpy(dtype=object))
    ent_item = items[ent["row"].to_numpy()]
    triples = np.stack([ent_item.astype(np.int64), np.zeros(len(ent), np.int64), ecode.astype(np.int64) + I], 1)
    # item text: the title, then the distinct entity names of the item's rows
    names = pd.DataFrame({"item": ent_item, "name": ent["ent_name"].to_numpy(dtype=object),
                          "entity": ecode.astype(np.int64) + I}).drop_duplicates(["item", "name"])
    names = names.sort_values("item", kind="stable")
    joined = names.groupby("item", sort=True)["name"].agg(", ".join)
    ent_text = np.full(I, "", dtype=object)
    ent_text[joined.index.to_numpy()] = joined.to_numpy(dtype=object)
    item_text = [f"{t}{_SUFFIX}{e}" if e else t for t, e in zip(titles.tolist(), ent_text.tolist())]
    mentions = _mentions(names, titles)
    entity_ids = [str(t) for t in titles] + [str(x) for x in euniq]
    data = KGRecData(
        name=name, n_users=len(user_uniq), n_items=I, n_entities=len(entity_ids),
        interactions=torch.from_numpy(np.stack([users.astype(np.int64), items.astype(np.int64)], 1)),
        label=torch.from_numpy(df["label"].to_numpy(np.int64, copy=True)),
        given_split=torch.from_numpy(df["part"].to_numpy(np.int64, copy=True)),
        triples=torch.from_numpy(triples), relation_names=["mentions"], item_text=item_text, mentions=mentions,
        user_ids=[str(u) for u in user_uniq], item_ids=entity_ids[:I], entity_ids=entity_ids,
    )
    data.validate()
    return data
