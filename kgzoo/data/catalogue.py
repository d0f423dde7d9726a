"""The eleven datasets of kgzoo's catalogue (sources and counts: ``../shared/data/README.md``)."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from .spec import DatasetSpec, gh, register_dataset
from .download import SourceFile, WheelSource
from .protocol import EvalProtocol
from .readers.dkn import read_dkn
from .readers.hin import read_amazon_hin, read_lastfm_social, read_yelp_social
from .readers.kgin import read_kgin
from .readers.mind import read_mind, read_mind_impressions
from .readers.ml1m import read_colakg_ml1m
from .readers.recbole import read_recbole_kg
from .readers.ripplenet import read_ripplenet

_RECBOLE = ("RUCAIBox/RecBole", "7b02be5ec80a88310f2d04a27a82adfcbb5dc211")
_ML100K_SHA = {
    "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
    "ml-100k.kg": "200a0636fa07c218119a42e5bac7aa3e26e3665a6f919c1b22909bd412b14779",
    "ml-100k.link": "524dca2c3d62619688ab99b3ec53ea2acb9b64d38eafec3e02bdd0dc6bb7d948",
    "ml-100k.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
}

#: the models of a published table (``DatasetSpec.grid``, issue 16 part 3 and issue 17): every
#: top-K baseline, with KGPLM (without text where the set has none); the text-only PLMRec where
#: the items have text; on the CTR sets Pop and BPR-MF beside KGCN and RippleNet; the news models
TOPK_GRID = ("pop", "bpr", "lightgcn", "gcn", "gat", "cfkg", "cke", "kgat", "kgcn", "ripplenet", "kgin", "kgplm")
TEXT_GRID = ("plmrec",)
CTR_GRID = ("pop", "bpr", "kgcn", "ripplenet")
NEWS_GRID = ("pop", "news-plm-mean", "dkn", "nrms", "nrms-plm", "kgplm-news")

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
    grid=TOPK_GRID + TEXT_GRID,
))


# --------------------------------------------------------------------------- helpers
def _files(repo: tuple[str, str], folder: str, sums: dict[str, str]) -> tuple[SourceFile, ...]:
    """SourceFiles of ``folder`` in ``repo`` at its commit (``(owner/name, commit)``); file names
    are URL-encoded (``user_user(original).dat`` -> ``user_user%28original%29.dat``)."""
    return tuple(SourceFile(f, gh(*repo, quote(f"{folder}/{f}")), s) for f, s in sums.items())


_RESEARCH = "Research only (non-commercial); not redistributed by kgzoo, fetched from the source at a pinned commit."
_COLAKG = ("ziqiangcui/CoLaKG", "7e1ce44945b2cfcb99ba36daf4b143e7a9704b84")
_MKR = ("hwwang55/MKR", "d6bb77c426960bc04f5d88c39f09d87a844776b4")
_KGCN = ("hwwang55/KGCN", "2363ca2ddc66a79860629b2e0ec6ad23c57697c8")
_MCCLK = ("CCIIPLab/MCCLK", "4b0d2843b73adbe816a7a5bb1788b4f4bcd777f4")
_RIPPLENET = ("hwwang55/RippleNet", "46a364d6aa4e346111043924a4741a21d2ff09b6")
_HIN = ("librahu/HIN-Datasets-for-Recommendation-and-Network-Embedding", "cc05c484b628b08237f0a876fcebf99d736ccbea")
_SHGD = ("xiangmli/SHGD", "81f115ea2c6de1deb1ae6772f052424f99d53859")
_MINDSAMPLE = ("Farabi667/AI-Term-Project", "c83c37b18c1820abbd8ba6955912ac1e61e62fa1")
_DKN = ("hwwang55/DKN", "90a188021a82ddaadffc44f6d87e1e72b1c3db9a")
_MOVIELENS_LICENCE = "MovieLens: GroupLens research licence (no redistribution, non-commercial)."
_KGCN_CITE = "Wang et al., Knowledge Graph Convolutional Networks for Recommender Systems (KGCN), WWW 2019"
_KGIN_CITE = "Wang et al., Learning Intents behind Interactions with Knowledge Graph for Recommendation (KGIN), WWW 2021"
_HERec_CITE = ("Shi et al., Heterogeneous Information Network Embedding for Recommendation (HERec), IEEE TKDE 2019 "
               "(librahu/HIN-Datasets-for-Recommendation-and-Network-Embedding)")
_MIND_CITE = "Wu et al., MIND: A Large-scale Dataset for News Recommendation, ACL 2020"
#: on the large sets of the fair-baselines tables a model whose converged run takes longer than this
#: on 2 cores runs one seed (minutes; issue 16, part 3)
ONE_SEED_MINUTES = 40


# --------------------------------------------------------------------------- video
ML1M = register_dataset(DatasetSpec(
    name="ml-1m-kg",
    domain="video",
    description=(
        "MovieLens 1M as split by CoLaKG (6,040 users, 3,260 movies, 998,539 implicit interactions: "
        "801,218 train / 197,321 test, the source's split) with MKR's Satori KG (20,782 triples, 7,008 "
        "entities, 7 relations such as film.film.genre and film.film.director; 2,077 movies linked) and an "
        "LLM-written description per movie (title, year, genres, cast) as item text. MKR movies that "
        "are not CoLaKG items stay plain KG entities."
    ),
    files=_files(_COLAKG, "data/ml-1m", {
        "train.txt": "573597130772d14eaa4e3119e79bfcd784a227ef59bc7511cb94376ef73fdda0",
        "test.txt": "2270d90d15e28f575e462e956beb9ef87b71176232c188fb038460409d22bca6",
        "user_map.txt": "df8752d1425692fd14a76d5ba3ca2b6a28b7ade61a7764fc8575c2807c504f6b",
        "item_map.txt": "f9656ffd46465058dbad4cbd160dbeb6844a70fb20399834409fd686d22fea98",
        "llm_response_item.json": "b47eb5d8b2ca1754e994daa93736dcc027dc8cc03da0ea28115a552eb6158724",
    }) + _files(_MKR, "data/movie", {
        "kg.txt": "60d0a28e8646423654b47a36b4438dcd70a87ac90a7d1512ef0cf59f19c869a9",
        "item_index2entity_id.txt": "ba88da11d2fffdcea4fc0d73f1fd16f5478d8fcfb362e16331dc30cceea81f60",
    }),
    builder=lambda folder: read_colakg_ml1m(folder, name="ml-1m-kg"),
    licence=(f"{_RESEARCH} {_MOVIELENS_LICENCE} KG: derived from Microsoft Satori by MKR's authors "
             "(research use). Descriptions: machine-written by CoLaKG's authors (research use)."),
    citation=("Harper & Konstan, The MovieLens Datasets: History and Context, ACM TiiS 2015; Wang et al., "
              "Multi-Task Feature Learning for Knowledge Graph Enhanced Recommendation (MKR), WWW 2019; Cui et al., "
              "Comprehending Knowledge Graphs with Large Language Models for Recommender Systems (CoLaKG), SIGIR 2025."),
    protocol=EvalProtocol(task="topk", split="given", ratios=(0.8, 0.1, 0.1)),
    expected={"users": 6040, "items": 3260, "interactions": 998539, "kg_entities": 7008, "relations": 7,
              "triples": 20782, "linked_items": 2077, "text_coverage": 1.0},
    one_seed_minutes=ONE_SEED_MINUTES,
    tune_from="ml-100k-kg",
    grid=TOPK_GRID + TEXT_GRID,
))


# --------------------------------------------------------------------------- music
LASTFM_KG = register_dataset(DatasetSpec(
    name="lastfm-kg",
    domain="music",
    description=(
        "Last.FM (HetRec 2011) in the RippleNet/KGCN CTR protocol: 1,872 users, 3,846 artists linked to "
        "Microsoft Satori, 42,346 labelled rows (21,173 listened artists + as many sampled negatives) and "
        "a KG of 15,518 triples, 9,366 entities, 60 relations (ratings_final.txt / kg_final.txt as "
        "published). The raw files (user_artists.dat, kg.txt, item_index2entity_id.txt) are pinned too: "
        "kgzoo.data.readers.ripplenet.build_kgcn_ratings re-runs KGCN's preprocessing (same positives and "
        "KG, own seeded negatives). Cleaning drops 49 self-loop triples (type.object.key), leaving "
        "15,469 triples and 58 relations."
    ),
    files=_files(_KGCN, "data/music", {
        "user_artists.dat": "254272fa721c3935e8be286d28c051b206844307128698ab4eaa41d483379416",
        "kg.txt": "f62bbc8f717c9f68e66dff6faeaa71025092acc11a0f1b4878b953eb05f946a9",
        "item_index2entity_id.txt": "f9693bdde538f755d09b9931b0be662a98965e538658a00c2050912c0adf487b",
    }) + _files(_MCCLK, "data/music", {
        "ratings_final.txt": "a1589f7ff2f36ea25c946900e38c941eb6d8fae27422b32c73dc571d731e1c70",
        "kg_final.txt": "ff58147005e774652ebf435e9a8c3f0c3e2ffe9a54087eab00fd9c5413040bc8",
    }),
    builder=lambda folder: read_ripplenet(folder, name="lastfm-kg"),
    licence=(f"{_RESEARCH} HetRec 2011 Last.FM data: non-commercial research use, Last.fm terms of use. "
             "KG: Microsoft Satori links by KGCN's authors (research use)."),
    citation=("Cantador et al., 2nd Workshop on Information Heterogeneity and Fusion in Recommender Systems "
              f"(HetRec 2011), RecSys 2011; {_KGCN_CITE}; Zou et al., Multi-level Cross-view Contrastive Learning "
              "for Knowledge-aware Recommender System (MCCLK), SIGIR 2022."),
    protocol=EvalProtocol(task="ctr", split="random", ratios=(0.6, 0.2, 0.2)),
    expected={"users": 1872, "items": 3846, "interactions": 42346, "positives": 21173, "kg_entities": 9364,
              "relations": 58, "triples": 15469, "linked_items": 3844},
    grid=CTR_GRID,
))


# --------------------------------------------------------------------------- e-commerce
BOOK_CROSSING = register_dataset(DatasetSpec(
    name="book-crossing-kg",
    domain="e-commerce",
    description=(
        "Book-Crossing in the RippleNet/KGCN CTR protocol: 17,860 users, 14,967 books, 139,746 labelled "
        "rows (69,873 positive, as many sampled negatives; ratings_final.npy) and a Satori KG of 151,500 "
        "triples, 77,903 entities, 25 relations (kg_final.txt). Books carry their ISBN as raw id "
        "(RippleNet's item_index2entity_id_rehashed.txt)."
    ),
    files=_files(_MCCLK, "data/book", {
        "ratings_final.npy": "d223b814c1a2c313eb030767d8b828ffad6f6341111b1911e485e008885071ba",
        "kg_final.txt": "60a4a2c2e6f101fbbd5763c72be3ed4f565498e7f6c8660eb19fe598dc7158b2",
    }) + _files(_RIPPLENET, "data/book", {
        "item_index2entity_id_rehashed.txt": "e2eaaad7999135ce025489a08625dda95b75067064523e83d2d7f97eb1861f79",
    }),
    builder=lambda folder: read_ripplenet(folder, name="book-crossing-kg", ratings="ratings_final.npy",
                                          item_map="item_index2entity_id_rehashed.txt", raw_kg=None),
    licence=(f"{_RESEARCH} Book-Crossing (Ziegler et al.): free for research use. KG: Microsoft Satori links "
             "by RippleNet's authors (research use)."),
    citation=("Ziegler et al., Improving Recommendation Lists Through Topic Diversification, WWW 2005; Wang et al., "
              "RippleNet: Propagating User Preferences on the Knowledge Graph for Recommender Systems, CIKM 2018; "
              f"{_KGCN_CITE}."),
    protocol=EvalProtocol(task="ctr", split="random", ratios=(0.6, 0.2, 0.2)),
    caveat=("Pop ranks first on the default protocol (random 6:2:2 of rows): a book's count of train positives alone scores test AUC 0.748 (0.751 among "
            "the 98.9% of test rows whose book has a train row; benchmarks/scripts/popularity_signal.py "
            "--dataset book-crossing-kg --ctr), and BPR-MF, KGCN and RippleNet score by user-item inner products "
            "with no item bias term; the KGCN and RippleNet papers report no popularity baseline on this set"),
    expected={"users": 17860, "items": 14967, "interactions": 139746, "positives": 69873, "kg_entities": 77903,
              "relations": 25, "triples": 151500, "linked_items": 14967},
    grid=CTR_GRID,
))

AMAZON_HIN = register_dataset(DatasetSpec(
    name="amazon-hin",
    domain="e-commerce",
    description=(
        "Amazon product ratings as a heterogeneous information network (HERec's set): 6,170 users, 2,753 "
        "items, 195,791 ratings 1-5 with timestamps; the KG holds item -[brand]-> brand (334), "
        "-[category]-> category (22) and -[view]-> view node (3,857 'also viewed' nodes, their own node "
        "type, not items): 13,955 triples."
    ),
    files=_files(_HIN, "Amazon", {
        "user_item.dat": "d14fcc5b04f0d701d326149bc4f18d471156f189ff1f4d0fefa14511c4cb42c8",
        "item_brand.dat": "65f4eaddff343a365ad474a6841bbaf541af1b2d96081c4adaeeeb8a7a8a313b",
        "item_category.dat": "17b9158f777fbb0b8b035a9b675c2f7d2e9f7ad81f34919d3e6db4289c9dc6bf",
        "item_view.dat": "42b1aec0a0eb9d71a265efb491dd951b523723637bb18f80f87c72d4fa6819da",
    }),
    builder=lambda folder: read_amazon_hin(folder, name="amazon-hin"),
    licence=(f"{_RESEARCH} Amazon review data (McAuley et al.): for research purposes only; the HIN "
             "repository states no other licence."),
    citation=("McAuley et al., Image-based Recommendations on Styles and Substitutes, SIGIR 2015; "
              f"{_HERec_CITE}."),
    protocol=EvalProtocol(task="topk", split="random", ratios=(0.8, 0.1, 0.1)),
    expected={"users": 6170, "items": 2753, "interactions": 195791, "kg_entities": 6966, "relations": 3,
              "triples": 13955, "linked_items": 2753},
    grid=TOPK_GRID,
))

ALIBABA_IFASHION = register_dataset(DatasetSpec(
    name="alibaba-ifashion-kg",
    domain="e-commerce",
    description=(
        "Alibaba-iFashion in the KGIN format (outfits as items, their fashion staff and categories as "
        "KG): 114,737 users, 29,708 items with interactions, 752,275 interactions and a KG of 279,155 "
        "triples, 89,196 entities, 51 relations. The train.txt of KGIN's split is not published at this "
        "source: the interactions are valid.txt + test.txt pooled and re-split (default random 8:1:1 "
        "per user), so results are NOT comparable with published KGIN numbers. Items of item_list.txt "
        "without interactions stay plain KG entities. Ids are hashes (no text)."
    ),
    files=_files(_SHGD, "data/alibaba-fashion", {
        "valid.txt": "9883e5e7092bc7d127c1392668f10b9470b1dde69121b6f7e4fe45307fd32643",
        "test.txt": "ea8f4b01fd23fecfd4a8d8632ce0aa30e08d1a80a73e85e815ddd27a2f7cfb95",
        "kg_final.txt": "8a44700fd76efe438ac3d8f6ae9a3ee1e117c70d82c1d8a2d20766fa6686489e",
        "item_list.txt": "392853bd8ad4f969c84892c70d8aa1974bdbc34e069ad616580040cd0ddeb97b",
        "entity_list.txt": "2b250ccbdfb851390584c9fbff079784b7d071f433051189eb0e1bc1cc0e653b",
        "relation_list.txt": "3cdeea2b8c2d60aeacdd2f194b4646818b0e169dc140c8698979837785febfea",
    }),
    builder=lambda folder: read_kgin(folder, name="alibaba-ifashion-kg"),
    licence=(f"{_RESEARCH} Alibaba iFashion (POG) data: released by Alibaba for research; KG files as "
             "published with KGIN and redistributed by the SHGD repository (no licence stated)."),
    citation=("Chen et al., POG: Personalized Outfit Generation for Fashion Recommendation at Alibaba iFashion, "
              f"KDD 2019; {_KGIN_CITE}."),
    caveat="re-split (valid.txt + test.txt pooled; the source has no train.txt): NOT comparable with published KGIN numbers",
    protocol=EvalProtocol(task="topk", split="random", ratios=(0.8, 0.1, 0.1)),
    expected={"users": 114737, "items": 29708, "interactions": 752275, "kg_entities": 89196, "relations": 51,
              "triples": 279155, "linked_items": 29708},
    one_seed_minutes=ONE_SEED_MINUTES,
    tune_from="amazon-hin",
    grid=TOPK_GRID,
))


# --------------------------------------------------------------------------- news
MIND_KG = register_dataset(DatasetSpec(
    name="mind-kg",
    domain="news",
    description=(
        "MIND (Microsoft News) in the KGIN format as used by KGRec: 100,000 users (38 without "
        "interactions), 26,252 news with interactions, 1,227,943 interactions and a Wikidata KG of "
        "148,568 triples over 512 relations (39 duplicates removed by cleaning). No train.txt is "
        "published at this source: valid.txt + test.txt are pooled and re-split (default random 8:1:1 "
        "per user), so results are NOT comparable with published KGIN/KGRec numbers. Item text: the "
        "news' main Wikidata entity label (item_list.txt); news of item_list.txt without interactions "
        "stay plain entities. user_list.txt maps 84,855 distinct MIND user ids to the 100,000 user "
        "indices (12,330 MIND users hold several indices); the indices are kept as users."
    ),
    files=_files(_SHGD, "data/mind-f", {
        "valid.txt": "e066b9b9073f7233c5480c9d5bce510fc3283ca24819fe7afbda428bd341c7e4",
        "test.txt": "540265c51b74ea9291c4b006bb11cbe8a2c912fa1fa72ef38fa42a5fab20d4be",
        "kg_final.txt": "ea0a42faa420855749e6176f1bf14c31c821e8b5ee571ceb72c28ae2cba7f0e6",
        "item_list.txt": "cf22faa40cd38a834a3f024762c8b6948a1e65e9917c8a72901710f93b6ce246",
        "entity_list.txt": "46589db16b38eeb7753bc4e692a71bfad22b3cb5a931279af9d9ba0cb5db910e",
        "relation_list.txt": "b859e11e96438550f95da616510c3cb1660908ebacdc332aae37bf2f0483dcb3",
        "user_list.txt": "585217723cd665a92dddad07ae1017cf3c78b035e5a0e81c157120e7a96f8cc7",
    }),
    builder=lambda folder: read_kgin(folder, name="mind-kg", text_column="freebase_id"),
    licence=(f"{_RESEARCH} MIND: Microsoft Research License Terms (non-commercial research only); Wikidata "
             "facts: CC0."),
    citation=(f"{_MIND_CITE}; Yang et al., Knowledge Graph Self-Supervised Rationalization for Recommendation "
              f"(KGRec), KDD 2023; {_KGIN_CITE}."),
    caveat="re-split (valid.txt + test.txt pooled; the source has no train.txt): NOT comparable with published KGIN/KGRec numbers",
    protocol=EvalProtocol(task="topk", split="random", ratios=(0.8, 0.1, 0.1)),
    expected={"users": 100000, "items": 26252, "interactions": 1227943, "kg_entities": 20640, "relations": 512,
              "triples": 148529, "linked_items": 14088, "text_coverage": 1.0},
))

MIND_SAMPLE = register_dataset(DatasetSpec(
    name="mind-sample",
    domain="news",
    description=(
        "A small sample in the official MIND format: 2,000 news (news.tsv: category, title, abstract, "
        "Wikidata entities) and 5,000 impressions of 4,637 users (behaviors.tsv). Rows: clicked history "
        "(label 1) and shown news (label 1 clicked / 0 not). Only 838 news ids of the logs have a "
        "news.tsv row: rows of the other 21,754 ids (337,690 rows) are dropped and counted in the "
        "cleaning report, leaving 10,529 labelled rows after duplicate removal. KG: news -[title_entity]/"
        "[abstract_entity]-> Wikidata entity -[entity_type]-> type; item text: title and abstract. As "
        "impressions (the impression task): every logged news is an item (23,754; 21,754 without text, "
        "kept with an id representation), split by day: 3,058 train, 974 valid (11/13/2019), 968 test "
        "(11/14/2019) impressions; 2.8% of the test candidates have text."
    ),
    files=_files(_MINDSAMPLE, "MINDsmall_train", {
        "news.tsv": "317a322c7b70518fb91ca08d937d1ec77a8b12fb9e28db5fc90374af16b354bf",
        "behaviors.tsv": "2a101e15ce197ba488abffb91d337bd069823011838de14dacc46a26c91484a5",
    }),
    builder=lambda folder: read_mind(folder, name="mind-sample"),
    impressions=lambda folder: read_mind_impressions(folder, name="mind-sample"),
    # its valid day is no guide to its test day (51% of the valid candidates seen in train, 15% of
    # the test candidates: benchmarks/studies/news_mind_sample.md): the news tables' values come from
    # dkn-news's studies
    tune_from="dkn-news",
    caveat=("a 5,000-impression sample, not the MIND benchmark (only 838 logged news have text); not comparable "
            "with published MIND numbers (for orientation only: NRMS, the MIND competition's baseline, AUC 0.6817 "
            "on MIND-large's test set; Microsoft Recommenders' NRMS on MINDdemo, group AUC 0.6127; sources and "
            "why the sample differs: benchmarks/studies/news_mind_sample.md)"),
    licence=f"{_RESEARCH} MIND: Microsoft Research License Terms (non-commercial research only).",
    citation=f"{_MIND_CITE}.",
    protocol=EvalProtocol(task="ctr", split="random", ratios=(0.8, 0.1, 0.1)),
    expected={"users": 4637, "items": 2000, "interactions": 10529, "positives": 5446, "kg_entities": 4618,
              "relations": 3, "triples": 8925, "linked_items": 1736, "text_coverage": 1.0},
    grid=NEWS_GRID,
))

DKN_NEWS = register_dataset(DatasetSpec(
    name="dkn-news",
    domain="news",
    description=(
        "DKN's Bing News click sample: 469 users, 9,075 distinct titles (the items), 10,401 train + 462 "
        "test labelled rows (the given split; 167 repeated (user, title) rows removed by cleaning, "
        "10,696 left). KG: title -[mentions]-> linked entity (3,776 entities; DKN's own KG file is not "
        "public). Item text: lower-cased title words and the linked entity names."
    ),
    files=_files(_DKN, "data/news", {
        "raw_train.txt": "9a699aac3bc2e95437ea943f36771764e45dc2b16ff86db6aee54e38010fd839",
        "raw_test.txt": "5698c122c7643b0f5937e109fb2fc9a7716147fb3e15ab10c70eb4f76f2eefc9",
    }),
    builder=lambda folder: read_dkn(folder, name="dkn-news"),
    caveat=("DKN's own KG file is not public: the KG here is title -[mentions]-> entity links only; not "
            "comparable with DKN's published numbers. No test title occurs in train, so Pop ties every "
            "test row (AUC 0.5): the floor is news-plm-mean"),
    licence=f"{_RESEARCH} Bing News logs released with DKN for research; no other licence stated.",
    citation="Wang et al., DKN: Deep Knowledge-Aware Network for News Recommendation, WWW 2018.",
    # valid carved by title (valid_split="cold_item"): no test title occurs in train, so a valid split
    # carved per user (22.3% of its rows' titles seen in train) rewarded what a model learns of seen
    # titles, which test never asks for (benchmarks/studies/dkn_news_valid_split.md)
    protocol=EvalProtocol(task="ctr", split="given", ratios=(0.8, 0.1, 0.1), valid_split="cold_item"),
    retired_protocols=((EvalProtocol(task="ctr", split="given", ratios=(0.8, 0.1, 0.1)),
                        "dkn-news's protocol until 2026-12-07 (commit 35ddd8b), its validation rows carved per user: 22.3% of them "
                        "had a title seen in train, none of the test rows, so selection rewarded what a model "
                        "learns of seen titles (benchmarks/studies/dkn_news_valid_split.md)"),),
    max_history=30,  # DKN's code: max_click_history (github.com/hwwang55/DKN, src/main.py)
    expected={"users": 469, "items": 9075, "interactions": 10696, "kg_entities": 12851, "relations": 1,
              "triples": 10274, "linked_items": 9075, "text_coverage": 1.0},
    grid=NEWS_GRID,
))


# --------------------------------------------------------------------------- social
LASTFM_SOCIAL = register_dataset(DatasetSpec(
    name="lastfm-social",
    domain="music",
    description=(
        "HetRec 2011 Last.FM as a HIN: 1,892 users, 17,632 artists, 92,834 user-artist pairs (the "
        "listening count kept as rating), 25,434 friendship rows (both directions listed) and artist "
        "tags (184,941 artist-tag rows, one per tagging user: 108,437 distinct pairs over 9,718 tags "
        "used; tag ids run to 11,945) as item -[tag]-> tag triples."
    ),
    files=_files(_HIN, "LastFM", {
        "user_artist.dat": "4303d1dccfd3b8b03c1e34f99710c4d99539c9fa9b54f654e34299efeefbff16",
        "user_user(original).dat": "eb2f3eb5dbee61161923d0231874cce574c33cea8b9f331d912b1642a1cd29ba",
        "artist_tag.dat": "263e61b0a2a5c06c3994540a2cb732dd2c9d8fafcbe44e7a51a6f18e59f618de",
    }),
    builder=lambda folder: read_lastfm_social(folder, name="lastfm-social"),
    licence=(f"{_RESEARCH} HetRec 2011 Last.FM data: non-commercial research use, Last.fm terms of use."),
    citation=("Cantador et al., 2nd Workshop on Information Heterogeneity and Fusion in Recommender Systems "
              f"(HetRec 2011), RecSys 2011; {_HERec_CITE}."),
    protocol=EvalProtocol(task="topk", split="random", ratios=(0.8, 0.1, 0.1)),
    expected={"users": 1892, "items": 17632, "interactions": 92834, "kg_entities": 21851, "relations": 1,
              "triples": 108437, "linked_items": 12133, "social": 25434},
    min_epochs=100,
    tune_from="ml-100k-kg",
    min_epochs_reason=(
        "converged runs and tuning trials: early stopping armed from epoch 100 (a warm-up, the same for every "
        "model; the quick smoke schedule has none): with the values tuned on "
        "ml-100k-kg, CKE's and CFKG's validation NDCG@10 sits at the popularity level (0.05-0.065) for "
        "25-60 epochs before it climbs (CKE 0.114 and CFKG 0.067 at epoch 80, still rising), and patience "
        "10 alone ended their runs on that plateau at epochs 12-19 (benchmarks/studies/other_datasets_plan.md)"),
    grid=TOPK_GRID,
))

YELP_SOCIAL = register_dataset(DatasetSpec(
    name="yelp-social",
    domain="local business",
    description=(
        "Yelp as a HIN (HERec's set): 16,239 users, 14,284 businesses, 198,397 ratings 1-5, 158,590 "
        "friendship rows (both directions listed), business -[category]-> category (40,009 rows, 511 "
        "categories) and -[city]-> city (14,267 rows, 47 cities): 54,276 triples."
    ),
    files=_files(_HIN, "Yelp", {
        "user_business.dat": "d57853e95c3f49f0060f31ee9365ab3fffe1010999c76863c3cd9628b91e994d",
        "user_user.dat": "d360f88f66b7ba9a1fd460b8c414dba1bec6489773283083a614a77925bcaaed",
        "business_category.dat": "d3c1499e406c0a842b3c08c478ffe7bf26a8758b630e0b056d0f4bcf18c01a5b",
        "business_city.dat": "09c009dfa16709aff52de4831b9cb30f45a16dcfce1db06858d54af6ef5f7d1e",
    }),
    builder=lambda folder: read_yelp_social(folder, name="yelp-social"),
    licence=f"{_RESEARCH} Yelp Dataset Challenge data: Yelp Dataset Terms of Use (non-commercial, academic).",
    citation=f"Yelp Dataset Challenge; {_HERec_CITE}.",
    protocol=EvalProtocol(task="topk", split="random", ratios=(0.8, 0.1, 0.1)),
    expected={"users": 16239, "items": 14284, "interactions": 198397, "kg_entities": 14842, "relations": 2,
              "triples": 54276, "linked_items": 14284, "social": 158590},
    tune_from="amazon-hin",
    grid=TOPK_GRID,
))
