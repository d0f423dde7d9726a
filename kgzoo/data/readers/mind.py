"""Reader for the official MIND format (Microsoft News Dataset).

Format (Wu et al., "MIND: A Large-scale Dataset for News Recommendation", ACL 2020;
https://msnews.github.io), two tab-separated files without header:

* ``news.tsv``: ``news_id, category, subcategory, title, abstract, url, title_entities,
  abstract_entities``; the entity fields are JSON lists of objects with ``Label``, ``Type``,
  ``WikidataId``, ``Confidence``, ``OccurrenceOffsets``, ``SurfaceForms`` (``abstract`` may be empty);
* ``behaviors.tsv``: ``impression_id, user_id, time (M/D/YYYY h:mm:ss AM), history (news ids
  clicked before, space separated, may be empty), impressions (``N123-1 N456-0``: shown news
  with click label)``.

Items are the news of ``news.tsv`` (file order; a line that repeats an earlier line whole, as
MIND's train and dev ``news.tsv`` concatenated do, is dropped and counted in ``cleaning``: "news.tsv:
a line repeating an earlier one"; a news id again with other fields is an error). User-item rows: each impression's history
(label 1, timestamp one second before the impression: the history precedes it), then its
shown news (label 1 if clicked, else 0, at the impression's time), impressions in file
order. Log rows whose news has no ``news.tsv`` row have no text and no entities: they are
dropped and counted in ``cleaning`` ("interactions: news id without a news.tsv row" and "news
ids: in the logs without a news.tsv row"). KG: news -[title_entity]-> Wikidata entity,
news -[abstract_entity]-> entity and entity -[entity_type]-> ``type:<T>`` (MIND's one-letter
entity types). Item text: ``title. abstract`` (the title first, so the title entities'
``OccurrenceOffsets`` and ``SurfaceForms`` give their character spans in it: ``mentions``);
item features: category, subcategory.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..impression_log import ImpressionLog
from ..kgdata import KGRecData
from ._io import DataFormatError, read_text
from .features import encode_categorical
from .kgin import field_on_empty

NEWS_COLUMNS = ("news_id", "category", "subcategory", "title", "abstract", "url", "title_entities", "abstract_entities")
BEHAVIOR_COLUMNS = ("impression_id", "user_id", "time", "history", "impressions")
RELATIONS = ("title_entity", "abstract_entity", "entity_type")
TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"


def read_tsv(path: str | Path, columns: tuple[str, ...], required: tuple[str, ...],
             text: str | None = None) -> pd.DataFrame:
    """A header-less tab-separated file of exactly ``columns`` (str, empty values allowed except
    in ``required``), read by pandas' C parser; on trouble a line scan names the bad line.

    Raises:
        DataFormatError: empty file (field ``columns[0]``), a line with fewer fields (the first
        missing field), more fields, or an empty ``required`` value (file, line, field).
    """
    p = Path(path)
    with field_on_empty(columns[0]):
        text = read_text(p) if text is None else text
    lines = text.splitlines()
    df = None
    try:
        df = pd.read_csv(io.StringIO(text), sep="\t", header=None, dtype=str, engine="c", na_filter=False,
                         quoting=3, skip_blank_lines=False)
    except (ValueError, pd.errors.ParserError):
        pass
    # the C parser fills a short line with empty values: every line must hold len(columns) - 1 tabs
    # (none holds more, or the parser would have failed)
    full = text.count("\t") == (len(columns) - 1) * len(lines)
    if df is not None and full and df.shape == (len(lines), len(columns)) and not df.isna().to_numpy().any():
        df.columns = list(columns)
        empty = np.zeros(len(df), dtype=bool)
        for c in required:
            empty |= (df[c] == "").to_numpy()
        if not empty.any():
            return df
    for i, line in enumerate(lines, start=1):
        parts = line.split("\t")
        if not line:
            raise DataFormatError(p, i, columns[0], "empty line")
        if len(parts) < len(columns):
            raise DataFormatError(p, i, columns[len(parts)], f"truncated line: {len(parts)} fields, expected "
                                  f"{len(columns)} ({', '.join(columns)})")
        if len(parts) > len(columns):
            raise DataFormatError(p, i, None, f"{len(parts)} fields, expected {len(columns)}")
        for c, v in zip(columns, parts):
            if c in required and v == "":
                raise DataFormatError(p, i, c, "empty value")
    raise DataFormatError(p, 0, None, "could not be parsed as " + ", ".join(columns))


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def read_behaviors(path: str | Path) -> tuple[pd.DataFrame, np.ndarray, pd.Series, pd.Series, pd.Series]:
    """MIND's ``behaviors.tsv`` parsed and checked.

    Returns:
        ``(frame, seconds, history, shown, clicked)``: the frame of :data:`BEHAVIOR_COLUMNS` (one
        row per impression, file order), int64 seconds of each impression's time (MIND's local
        time read as UTC), and Series exploded to one row per token whose index is the
        impression's row: the history news ids, the shown news ids, their int64 click labels.

    Raises:
        DataFormatError: a missing field, an empty impression or user id, a time not in MIND's
            format, an impression token that is not ``<news id>-<0|1>`` (file, line, field).
    """
    pb = Path(path)
    bd = read_tsv(pb, BEHAVIOR_COLUMNS, required=("impression_id", "user_id", "time"))
    when = pd.to_datetime(bd["time"], format=TIME_FORMAT, errors="coerce")
    if when.isna().any():
        i = _first_bad(when.isna().to_numpy())
        raise DataFormatError(pb, i + 1, "time", f"time {bd['time'].iloc[i]!r} is not in MIND's format M/D/YYYY h:mm:ss AM"
                              + _header_hint(i + 1))
    secs = (when.to_numpy().astype("datetime64[s]").astype(np.int64))
    hist = bd["history"].str.split().explode()
    hist = hist[hist.notna()]
    imp = bd["impressions"].str.split().explode()
    imp_ok = imp.notna() & imp.str.fullmatch(r"[^\s-]+-[01]").fillna(False)
    if not imp_ok.all():
        k = _first_bad(~imp_ok.to_numpy())  # the bad token itself, not its impression's first
        i, got = int(imp.index[k]), imp.iloc[k]
        what = "no shown news" if not isinstance(got, str) else f"token {got!r} is not <news id>-<0|1>"
        raise DataFormatError(pb, i + 1, "impressions", what)
    imp_news = imp.str[:-2]
    imp_label = (imp.str[-1] == "1").astype(np.int64)
    return bd, secs, hist, imp_news, imp_label


def _header_hint(line: int) -> str:
    """A hint for a malformed first line: MIND's files have no header line."""
    return " (a header line? MIND's news.tsv and behaviors.tsv have none: remove it)" if line == 1 else ""


def read_mind(folder: str | Path, name: str = "mind", news: str = "news.tsv", behaviors: str = "behaviors.tsv",
              entity_types: bool = True, keep_unknown_news: bool = False) -> KGRecData:
    """Read a MIND folder into a :class:`KGRecData` (see the module docstring): the labelled
    rows of the CTR view; :func:`read_mind_impressions` reads the same folder as impressions.

    Args:
        entity_types: add the entity -[entity_type]-> type triples.
        keep_unknown_news: keep log rows whose news has no ``news.tsv`` row, making those news
            items after the ``news.tsv`` ones (empty text, no entities, feature code 0) instead
            of dropping them; the ids are still counted in ``cleaning``.

    Raises:
        DataFormatError: a malformed line (file, line, field): missing fields, an empty news or
        user id, a news id repeated with other fields, invalid entity JSON or an entity without ``WikidataId``, a
        time not in MIND's format, an impression token that is not ``<news id>-<0|1>``.
    """
    return _read_mind(Path(folder), name, news, behaviors, entity_types, keep_unknown_news)[0]


def read_mind_impressions(folder: str | Path, name: str = "mind", news: str = "news.tsv",
                          behaviors: str = "behaviors.tsv", entity_types: bool = True) -> tuple[KGRecData, ImpressionLog]:
    """Read a MIND folder as impressions: ``(data, log)``.

    ``data`` is :func:`read_mind` with ``keep_unknown_news=True``: every logged news is an item,
    those without a ``news.tsv`` row after the others with empty text and no entity (counted in
    ``data.cleaning`` as "news ids: in the logs without a news.tsv row", none dropped), so a
    model gives them an id (or entity) representation. ``log`` is a
    :class:`kgzoo.data.impression_log.ImpressionLog` of every impression in file order: user, time,
    clicked history, shown news and their click labels, in ``data``'s user and item ids.

    Raises:
        DataFormatError: as :func:`read_mind`.
    """
    data, (bd, secs, hist, imp_news, imp_label) = _read_mind(Path(folder), name, news, behaviors, entity_types, True)
    item_of = pd.Index(data.item_ids)
    n = len(bd)

    def csr(index: np.ndarray, ids: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        counts = np.bincount(index, minlength=n)
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return torch.from_numpy(indptr), torch.from_numpy(item_of.get_indexer(ids).astype(np.int64))

    h_ptr, h_items = csr(hist.index.to_numpy(np.int64), hist.to_numpy(dtype=object))
    c_ptr, c_items = csr(imp_news.index.to_numpy(np.int64), imp_news.to_numpy(dtype=object))
    users = pd.Index(data.user_ids).get_indexer(bd["user_id"].to_numpy(dtype=object)).astype(np.int64)
    log = ImpressionLog(impression_ids=bd["impression_id"].tolist(), user=torch.from_numpy(users),
                        time=torch.from_numpy(secs.astype(np.int64)), history_indptr=h_ptr, history=h_items,
                        candidate_indptr=c_ptr, candidates=c_items,
                        label=torch.from_numpy(imp_label.to_numpy(np.int64, copy=True)))
    log.validate(data.n_users, data.n_items, name)
    return data, log


def _read_mind(folder: Path, name: str, news: str, behaviors: str, entity_types: bool,
               keep_unknown_news: bool) -> tuple[KGRecData, tuple]:
    """:func:`read_mind`, also returning what :func:`read_behaviors` parsed (the same errors)."""
    pn, pb = folder / news, folder / behaviors
    nd = read_tsv(pn, NEWS_COLUMNS, required=("news_id", "title"))
    same = nd.duplicated().to_numpy()  # a whole line again: MIND's train and dev news.tsv, concatenated
    dup = nd["news_id"].duplicated().to_numpy() & ~same
    if dup.any():
        i = _first_bad(dup)
        first = _first_bad((nd["news_id"] == nd["news_id"].iloc[i]).to_numpy())
        raise DataFormatError(pn, i + 1, "news_id", f"news id {nd['news_id'].iloc[i]!r} repeats line {first + 1} "
                              "with other fields")
    line_of = np.flatnonzero(~same) + 1  # the file line of each kept row
    n_repeated = int(same.sum())
    if n_repeated:
        nd = nd[~same].reset_index(drop=True)
    news_ids = nd["news_id"].to_numpy(dtype=object)
    I = len(news_ids)

    # entities: JSON per row (a Python loop over the rows is unavoidable here)
    heads, rels, ents, types = [], [], [], []
    mentions: list[tuple[int, int, int]] = []  # (index into ents, start, end) of title entities
    for r, col in enumerate(("title_entities", "abstract_entities")):
        for i, s in enumerate(nd[col].tolist()):
            if not s:
                continue
            try:
                lst = json.loads(s)
            except json.JSONDecodeError as e:
                raise DataFormatError(pn, int(line_of[i]), col, f"invalid JSON: {e.msg}{_header_hint(int(line_of[i]))}") from None
            if not isinstance(lst, list):
                raise DataFormatError(pn, int(line_of[i]), col, "expected a JSON list of entities")
            for e in lst:
                if not isinstance(e, dict) or not e.get("WikidataId"):
                    raise DataFormatError(pn, int(line_of[i]), col, f"entity without 'WikidataId': {str(e)[:80]}")
                if r == 0:  # a title entity: where the title names it
                    offsets, forms = e.get("OccurrenceOffsets"), e.get("SurfaceForms")
                    if (not isinstance(offsets, list) or not isinstance(forms, list) or len(offsets) != len(forms)
                            or not all(isinstance(o, int) and o >= 0 for o in offsets)
                            or not all(isinstance(f, str) and f for f in forms)):
                        raise DataFormatError(pn, int(line_of[i]), col, "entity 'OccurrenceOffsets' and 'SurfaceForms' must be "
                                              f"lists of offsets and names of one length: {str(e)[:80]}")
                    for o, f in zip(offsets, forms):
                        mentions.append((len(ents), o, o + len(f)))
                heads.append(i)
                rels.append(r)
                ents.append(str(e["WikidataId"]))
                types.append(str(e.get("Type") or ""))
    heads_a, rels_a = np.array(heads, dtype=np.int64), np.array(rels, dtype=np.int64)
    ent_codes, ent_uniq = pd.factorize(np.array(ents, dtype=object))
    ent_codes = ent_codes.astype(np.int64) + I
    triples = [np.stack([heads_a, rels_a, ent_codes], 1)] if len(heads) else []
    entity_ids = [str(x) for x in news_ids] + [str(x) for x in ent_uniq]
    relation_names = list(RELATIONS[:2])
    if entity_types and len(heads):
        typ = np.array(types, dtype=object)
        has = typ != ""
        tcodes, tuniq = pd.factorize(typ[has])
        base = len(entity_ids)
        triples.append(np.stack([ent_codes[has], np.full(int(has.sum()), 2, np.int64), tcodes.astype(np.int64) + base], 1))
        entity_ids += [f"type:{x}" for x in tuniq]
        relation_names.append(RELATIONS[2])
    tri = np.concatenate(triples) if triples else np.zeros((0, 3), np.int64)
    men = np.array(mentions, dtype=np.int64).reshape(-1, 3)
    # (item, entity, start, end): the title's character span [start, end) naming the entity
    men = np.stack([heads_a[men[:, 0]], ent_codes[men[:, 0]], men[:, 1], men[:, 2]], 1) if len(men) else \
        np.zeros((0, 4), np.int64)

    bd, secs, hist, imp_news, imp_label = read_behaviors(pb)
    # rows: per impression, its history then its shown news
    row_imp = np.concatenate([hist.index.to_numpy(), imp_news.index.to_numpy()]).astype(np.int64)
    row_news = np.concatenate([hist.to_numpy(dtype=object), imp_news.to_numpy(dtype=object)])
    row_label = np.concatenate([np.ones(len(hist), np.int64), imp_label.to_numpy()])
    row_hist = np.concatenate([np.ones(len(hist), bool), np.zeros(len(imp_news), bool)])
    order = np.lexsort((~row_hist, row_imp))  # stable: by impression, history first
    row_imp, row_news, row_label, row_hist = row_imp[order], row_news[order], row_label[order], row_hist[order]

    user_codes, user_uniq = pd.factorize(bd["user_id"].to_numpy(dtype=object))
    item = pd.Index(news_ids).get_indexer(row_news)
    known = item >= 0
    log_ids = pd.unique(row_news)
    unknown_ids = log_ids[pd.Index(news_ids).get_indexer(log_ids) < 0]
    n_missing_ids, n_missing_rows = len(unknown_ids), int((~known).sum())
    n_extra = 0
    if keep_unknown_news:
        n_extra = len(unknown_ids)
        item[~known] = I + pd.Index(unknown_ids).get_indexer(row_news[~known])
        known[:] = True
        n_missing_rows = 0
        new_of_old = np.arange(len(entity_ids), dtype=np.int64)
        new_of_old[I:] += n_extra  # the unknown news become items I..I+n_extra-1
        tri = np.stack([new_of_old[tri[:, 0]], tri[:, 1], new_of_old[tri[:, 2]]], 1) if len(tri) else tri
        men[:, 1] = new_of_old[men[:, 1]]
        entity_ids = entity_ids[:I] + [str(x) for x in unknown_ids] + entity_ids[I:]
        news_ids = np.concatenate([news_ids, unknown_ids.astype(object)])
    ts = secs[row_imp] - row_hist.astype(np.int64)

    title = nd["title"].to_numpy(dtype=object)
    abstract = nd["abstract"].to_numpy(dtype=object)
    item_text = [f"{t}{'' if t.rstrip()[-1:] in '.?!' else '.'} {a}" if a else t for t, a in zip(title.tolist(), abstract.tolist())]
    item_text += [""] * n_extra
    feats, vocab = {}, {}
    for c in ("category", "subcategory"):
        feats[c], vocab[c] = encode_categorical(np.concatenate([nd[c].to_numpy(dtype=object), np.full(n_extra, "", dtype=object)]))
    data = KGRecData(
        name=name, n_users=len(user_uniq), n_items=I + n_extra, n_entities=len(entity_ids),
        interactions=torch.from_numpy(np.stack([user_codes[row_imp].astype(np.int64)[known], item[known]], 1)),
        label=torch.from_numpy(row_label[known]), timestamp=torch.from_numpy(ts[known]),
        triples=torch.from_numpy(tri), relation_names=relation_names, item_text=item_text,
        item_features=feats, feature_vocab=vocab, user_ids=[str(x) for x in user_uniq],
        item_ids=[str(x) for x in news_ids], entity_ids=entity_ids, mentions=torch.from_numpy(men),
        cleaning={"news.tsv: a line repeating an earlier one": n_repeated,
                  "news ids: in the logs without a news.tsv row": n_missing_ids,
                  "interactions: news id without a news.tsv row": n_missing_rows},
    )
    data.validate()
    return data, (bd, secs, hist, imp_news, imp_label)
