"""Builder of ml-1m-kg: CoLaKG's MovieLens-1M split and text joined with MKR's Satori KG.

Sources:

* CoLaKG (Cui et al., "Comprehending Knowledge Graphs with Large Language Models for
  Recommender Systems", SIGIR 2025), ``data/ml-1m/``: ``train.txt`` / ``test.txt`` (KGIN-style
  lines ``user item item ...`` in CoLaKG's indices), ``user_map.txt`` / ``item_map.txt``
  (``MovieLens id  index``, space separated), ``llm_response_item.json`` (MovieLens movie id ->
  an LLM-written description);
* MKR (Wang et al., "Multi-Task Feature Learning for Knowledge Graph Enhanced
  Recommendation", WWW 2019), ``data/movie/``: ``item_index2entity_id.txt`` (``MovieLens id \\t
  KG entity``) and ``kg.txt`` (``head entity \\t relation name \\t tail entity``).

Items are CoLaKG's item indices; a movie whose MovieLens id is in MKR's item map is linked to
its KG entity (it *is* that entity). MKR's movies that are not CoLaKG items stay plain
entities, so the KG keeps all its triples. Other entities follow the items in increasing MKR
entity id (raw id ``"entity:<MKR id>"``; items keep their MovieLens id).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..kgdata import KGRecData
from ._io import MIN_TEXT_MATCH, DataFormatError, check_kg_reaches_items, check_text_match, read_id_lists, read_text
from .kgin import fast_columns, field_on_empty

MAP_FIELDS = (("raw_id", "int"), ("index", "int"))
LINK_FIELDS = (("item", "int"), ("entity", "int"))
KG_FIELDS = (("head", "int"), ("relation", "str"), ("tail", "int"))


def read_index_map(path: str | Path, n: int | None = None) -> np.ndarray:
    """A ``raw_id index`` map (CoLaKG's ``user_map.txt`` / ``item_map.txt``) as raw ids by index.

    Raises:
        DataFormatError: malformed line; indices that are not ``0..n-1`` each once (file, line,
        field ``index``).
    """
    p = Path(path)
    m = fast_columns(p, MAP_FIELDS, sep=None)
    idx = m["index"]
    size = len(idx) if n is None else n
    bad = (idx < 0) | (idx >= size) | pd.Series(idx).duplicated().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataFormatError(p, i + 1, "index", f"index {idx[i]} out of 0..{size - 1} or repeated")
    out = np.full(size, -1, dtype=np.int64)
    out[idx] = m["raw_id"]
    return out


def read_json_text(path: str | Path, field: str = "description") -> dict[str, str]:
    """A JSON object ``id -> text`` (CoLaKG's ``llm_response_item.json``).

    Raises:
        DataFormatError: empty file, invalid JSON (its line), not an object (line 1), a value that
        is not a string (the key's line, ``field``).
    """
    p = Path(path)
    with field_on_empty(field):
        text = read_text(p)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataFormatError(p, e.lineno, field, f"invalid JSON: {e.msg}") from None
    if not isinstance(obj, dict):
        raise DataFormatError(p, 1, field, f"expected a JSON object id -> text, got {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(v, str)]
    if bad:
        pos = text.find(json.dumps(bad[0]))
        raise DataFormatError(p, text.count("\n", 0, max(pos, 0)) + 1, field,
                              f"value of {bad[0]!r} is a {type(obj[bad[0]]).__name__}, expected a string")
    return obj


def read_colakg_ml1m(folder: str | Path, name: str = "ml-1m-kg", min_text_match: float = MIN_TEXT_MATCH) -> KGRecData:
    """Read ml-1m-kg (see the module docstring) into a :class:`KGRecData`.

    ``given_split`` is 0 for ``train.txt`` rows and 2 for ``test.txt`` rows; ``item_text`` is
    the movie's description (``""`` where the JSON has none); raw ids are MovieLens ids.

    Raises:
        DataFormatError: a malformed file (file, line, field); an interaction whose user or item
        index is not in the maps (file, line 0, field); descriptions for fewer than
        ``min_text_match`` of the items (:func:`~._io.check_text_match`); a KG that reaches no item.
    """
    folder = Path(folder)
    user_raw = read_index_map(folder / "user_map.txt")
    item_raw = read_index_map(folder / "item_map.txt")
    U, I = len(user_raw), len(item_raw)
    us, its, parts = [], [], []
    for fname, code in (("train.txt", 0), ("test.txt", 2)):
        with field_on_empty("user"):
            u, i = read_id_lists(folder / fname, "user", "item")
        for what, a, n in (("user", u, U), ("item", i, I)):
            if a.size and a.max() >= n:
                raise DataFormatError(folder / fname, 0, what, f"{what} index {a.max()} is not in {what}_map.txt ({n} entries)")
        us.append(u), its.append(i), parts.append(np.full(len(u), code, dtype=np.int64))

    link = fast_columns(folder / "item_index2entity_id.txt", LINK_FIELDS, sep="\t")
    kg = fast_columns(folder / "kg.txt", KG_FIELDS, sep="\t")
    h, t = kg["head"], kg["tail"]
    E_src = int(max(h.max(), t.max(), link["entity"].max())) + 1
    # an MKR entity that is a CoLaKG item becomes that item; the rest follow the items
    item_of_raw = pd.Index(item_raw)
    link_item = item_of_raw.get_indexer(link["item"])
    new_of_src = np.full(E_src, -1, dtype=np.int64)
    linked = link_item >= 0
    new_of_src[link["entity"][linked]] = link_item[linked]
    used = np.zeros(E_src, dtype=bool)
    used[h], used[t] = True, True
    others = np.flatnonzero(used & (new_of_src < 0))
    new_of_src[others] = I + np.arange(len(others))
    rel, rel_names = pd.factorize(kg["relation"])

    check_kg_reaches_items(folder / "kg.txt", new_of_src[h], new_of_src[t], I)
    desc = read_json_text(folder / "llm_response_item.json")
    item_text = [desc.get(str(m), "") for m in item_raw.tolist()]
    check_text_match(folder / "llm_response_item.json", "description", sum(str(m) in desc for m in item_raw.tolist()),
                     I, min_text_match)
    entity_ids = [str(m) for m in item_raw.tolist()] + [f"entity:{x}" for x in others.tolist()]
    data = KGRecData(
        name=name, n_users=U, n_items=I, n_entities=I + len(others),
        interactions=torch.from_numpy(np.stack([np.concatenate(us), np.concatenate(its)], 1)),
        given_split=torch.from_numpy(np.concatenate(parts)),
        triples=torch.from_numpy(np.stack([new_of_src[h], rel.astype(np.int64), new_of_src[t]], 1)),
        relation_names=[str(x) for x in rel_names], item_text=item_text,
        user_ids=[str(x) for x in user_raw.tolist()], item_ids=entity_ids[:I], entity_ids=entity_ids,
    )
    data.validate()
    return data
