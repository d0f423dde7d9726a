"""The eleven catalogue datasets, loaded from ../shared/data: counts, id spaces, text, social ties.

Each set is loaded once per module (``load_data``: verify sha256, build, ``standard_clean``).
Two sources of truth are checked: ``spec.expected`` (the cleaned data) and the counts of
``../shared/data/README.md`` (the files as published), recovered from the cleaned data plus
the cleaning report, so every difference between the two is explained by a cleaning step.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import torch

from kgzoo.data import EvalProtocol, dataset_spec, list_datasets, load_data
from kgzoo.data.cleaning import standard_clean
from kgzoo.data.readers.ripplenet import build_kgcn_ratings, read_ripplenet

NAMES = ["ml-100k-kg", "ml-1m-kg", "lastfm-kg", "book-crossing-kg", "amazon-hin", "alibaba-ifashion-kg",
         "mind-kg", "mind-sample", "dkn-news", "lastfm-social", "yelp-social"]

# ../shared/data/README.md, in the terms of the published files (before kgzoo's cleaning)
README = {
    "ml-100k-kg": {"users": 943, "items": 1682, "interactions": 100000, "triples": 91631, "kg_entities": 34628,
                   "relations": 24, "linked_items": 1598},
    "ml-1m-kg": {"users": 6040, "items": 3260, "interactions": 998539, "triples": 20782, "kg_entities": 7008,
                 "relations": 7, "linked_items": 2077},
    "lastfm-kg": {"users": 1872, "items": 3846, "interactions": 42346, "triples": 15518, "relations": 60},
    "book-crossing-kg": {"users": 17860, "items": 14967, "interactions": 139746, "positives": 69873,
                         "triples": 151500, "kg_entities": 77903, "relations": 25},
    "amazon-hin": {"users": 6170, "items": 2753, "interactions": 195791},
    "alibaba-ifashion-kg": {"users": 114737, "items": 29708, "interactions": 752275, "triples": 279155,
                            "kg_entities": 89196, "relations": 51},
    "mind-kg": {"users": 100000, "items": 26252, "interactions": 1227943, "triples": 148568, "relations": 512},
    "mind-sample": {"items": 2000},
    "dkn-news": {"users": 469, "interactions": 10401 + 462},
    "lastfm-social": {"users": 1892, "items": 17632, "interactions": 92834, "social": 25434, "triples": 184941},
    "yelp-social": {"users": 16239, "items": 14284, "interactions": 198397, "social": 158590,
                    "triples": 40009 + 14267},
}
TEXT = {"ml-100k-kg": 0.9, "ml-1m-kg": 1.0, "mind-kg": 1.0, "mind-sample": 1.0, "dkn-news": 1.0}
LOAD_SECONDS: dict[str, float] = {}


@pytest.fixture(scope="module")
def loaded(data_dir: Path):
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            t = time.perf_counter()
            cache[name] = load_data(name, download=False)
            LOAD_SECONDS[name] = time.perf_counter() - t
        return cache[name]

    yield get
    print("\nload seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in LOAD_SECONDS.items()))


def published(data) -> dict:
    """Counts of the files as published: the cleaned counts plus what cleaning removed."""
    c, s = data.cleaning, data.stats()
    return {
        **s,
        "interactions": s["interactions"] + c.get("interactions: duplicate (user, item)", 0),
        "triples": s["triples"] + sum(c.get(k, 0) for k in ("triples: duplicate", "triples: self-loop",
                                                             "triples: unreachable from any item")),
        "relations": s["relations"] + c.get("relations: unused", 0),
        "social": s["social"] + c.get("social: duplicate", 0) + c.get("social: self-tie", 0),
    }


def test_catalogue_lists_the_eleven():
    assert sorted(d for d in list_datasets() if not dataset_spec(d).origin) == sorted(NAMES)  # the catalogue


@pytest.mark.parametrize("name", NAMES)
def test_stats_match_expected(loaded, name):
    spec = dataset_spec(name)
    data = loaded(name)
    stats = data.stats()
    assert spec.expected, f"{name}: the catalogue entry has no expected counts"
    got = {k: stats[k] for k in spec.expected}
    assert got == spec.expected


@pytest.mark.parametrize("name", NAMES)
def test_counts_match_readme(loaded, name):
    data = loaded(name)
    pub = published(data)
    assert {k: pub[k] for k in README[name]} == README[name]


@pytest.mark.parametrize("name", NAMES)
def test_id_space(loaded, name):
    data = loaded(name)
    data.validate()
    I = data.n_items
    assert data.n_entities >= I and data.n_users > 0 and I > 0
    assert data.entity_ids is not None and data.item_ids == data.entity_ids[:I]  # items are entities 0..I-1
    assert len(set(data.entity_ids)) == data.n_entities, "raw entity ids must be distinct"
    # mind-kg's user_list.txt gives 12,330 MIND users several indices: 84,855 distinct raw ids
    assert len(set(data.user_ids)) == (84855 if name == "mind-kg" else data.n_users)
    if data.n_triples:
        assert int(data.triples[:, 1].max()) == data.n_relations - 1
        assert len(data.relation_names) == data.n_relations
    # every non-item entity is in a triple after cleaning (unreachable ones are removed)
    used = torch.zeros(data.n_entities, dtype=torch.bool)
    used[data.triples[:, 0]] = True
    used[data.triples[:, 2]] = True
    assert bool(used[I:].all())


@pytest.mark.parametrize("name", NAMES)
def test_protocol_fits_the_data(loaded, name):
    spec = dataset_spec(name)
    data = loaded(name)
    proto: EvalProtocol = spec.protocol
    if proto.task == "ctr":
        assert data.label is not None and 0 < int(data.label.sum()) < data.n_interactions
    if proto.split == "given":
        assert data.given_split is not None
    prepared = proto.prepare(data)
    split = proto.split_data(prepared)
    assert sum(split.sizes().values()) == prepared.n_interactions
    assert min(split.sizes().values()) > 0


@pytest.mark.parametrize("name", NAMES)
def test_catalogue_entry(name, data_dir):
    spec = dataset_spec(name)
    sums = {}
    for line in (data_dir / "SHA256SUMS").read_text().splitlines():
        digest, path = line.split(maxsplit=1)
        folder, fname = path.removeprefix("./").split("/", 1)
        sums.setdefault(folder, {})[fname] = digest
    assert {f.path: f.sha256 for f in spec.files} == sums[name]
    for f in spec.files:
        assert re.fullmatch(r"https://raw\.githubusercontent\.com/[\w.-]+/[\w.-]+/[0-9a-f]{40}/\S+", f.url), f.url
        assert "(" not in f.url and " " not in f.url
    assert "research only" in spec.licence.lower()
    assert spec.citation and spec.description and spec.domain


@pytest.mark.parametrize("name", list(TEXT))
def test_item_text(loaded, name):
    data = loaded(name)
    assert data.item_text is not None and len(data.item_text) == data.n_items
    assert data.stats()["text_coverage"] >= TEXT[name]


@pytest.mark.parametrize("name", ["lastfm-social", "yelp-social"])
def test_social(loaded, name):
    data = loaded(name)
    s = data.social
    assert s is not None and s.shape[0] == README[name]["social"]
    key = s[:, 0] * data.n_users + s[:, 1]
    assert bool(torch.isin(s[:, 1] * data.n_users + s[:, 0], key).all()), "friendships are listed both ways"


def test_readme_details(loaded):
    """Counts the README quotes beyond the stats: per relation, per split, per node type."""
    def per_relation(data):
        n = torch.bincount(data.triples[:, 1], minlength=data.n_relations).tolist()
        return dict(zip(data.relation_names, n))

    def n_nodes(data, prefix):
        return sum(1 for e in data.entity_ids if e.startswith(prefix))

    amazon = loaded("amazon-hin")
    assert per_relation(amazon) == {"brand": 2753, "category": 5508, "view": 5694}
    assert (n_nodes(amazon, "brand:"), n_nodes(amazon, "category:"), n_nodes(amazon, "view:")) == (334, 22, 3857)
    yelp = loaded("yelp-social")
    assert per_relation(yelp) == {"category": 40009, "city": 14267}
    assert (n_nodes(yelp, "category:"), n_nodes(yelp, "city:")) == (511, 47)
    lastfm = loaded("lastfm-social")
    # the README's "11,945 tags" is the largest tag id; 9,718 tag ids are used
    assert max(int(e.split(":")[1]) for e in lastfm.entity_ids if e.startswith("tag:")) == 11945
    assert n_nodes(lastfm, "tag:") == 9718
    ml1m = loaded("ml-1m-kg")
    assert torch.bincount(ml1m.given_split).tolist() == [801218, 0, 197321]
    dkn = loaded("dkn-news")
    assert dkn.cleaning["interactions: duplicate (user, item)"] == 167  # 10,401 + 462 rows as published
    mind = loaded("mind-sample")
    assert mind.cleaning["news ids: in the logs without a news.tsv row"] == 21754
    assert int(torch.unique(mind.interactions[:, 1]).numel()) == 838  # news of the logs with a news.tsv row
    assert mind.label is not None and mind.timestamp is not None
    for name in ("alibaba-ifashion-kg", "mind-kg"):
        assert loaded(name).given_split is None  # no train.txt: a pool to re-split
        assert "not comparable" in dataset_spec(name).description.lower()


def test_ml1m_cold_load_is_fast(data_dir):
    spec = dataset_spec("ml-1m-kg")
    t = time.perf_counter()
    data = standard_clean(spec.builder(data_dir / "ml-1m-kg"))
    seconds = time.perf_counter() - t
    assert data.n_interactions == 998539
    assert seconds < 5.0, f"ml-1m-kg read + clean took {seconds:.1f} s"


def test_kgcn_raw_preprocessing(loaded, data_dir):
    """The raw Last.FM files through KGCN's preprocessing give the published positives and KG."""
    folder = data_dir / "lastfm-kg"
    raw = build_kgcn_ratings(folder, seed=0)
    pub = read_ripplenet(folder, name="lastfm-kg")
    assert (raw.n_users, raw.n_items, raw.n_entities) == (pub.n_users, pub.n_items, pub.n_entities)
    assert torch.equal(raw.triples, pub.triples) and raw.relation_names == pub.relation_names

    def pairs(d, lab):
        x = d.interactions[d.label == lab]
        return set((x[:, 0] * d.n_items + x[:, 1]).tolist())

    assert pairs(raw, 1) == pairs(pub, 1)
    neg = pairs(raw, 0)
    assert not neg & pairs(raw, 1)
    pos_per_user = torch.bincount(raw.interactions[raw.label == 1, 0], minlength=raw.n_users)
    neg_per_user = torch.bincount(raw.interactions[raw.label == 0, 0], minlength=raw.n_users)
    assert torch.equal(pos_per_user, neg_per_user)
    again = build_kgcn_ratings(folder, seed=0)
    assert torch.equal(again.interactions, raw.interactions) and torch.equal(again.label, raw.label)
