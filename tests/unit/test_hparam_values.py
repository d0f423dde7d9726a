"""A hyper-parameter value of the wrong type is refused where it is given, naming the key, the
value and the type (:func:`kgzoo.api.check_hparams`): ``kgzoo bench --variants lr=abc``
failed its cell inside torch's Adam with "'<=' not supported between instances of 'float' and
'str'", and ``embedding_dim=12.5`` inside ``torch.empty`` ("type must be tuple of ints")."""
from __future__ import annotations

import pytest

import kgzoo
from kgzoo.api import check_hparams
from kgzoo.registry import MODELS

SIZES = {"n_users": 5, "n_items": 30}


@pytest.mark.parametrize("key, value, message", [
    ("lr", "abc", "hyper-parameter 'lr' takes float, got 'abc' \\(str\\)"),
    ("embedding_dim", 12.5, "hyper-parameter 'embedding_dim' takes int, got 12.5 \\(float\\)"),
    ("embedding_dim", True, "hyper-parameter 'embedding_dim' takes int, got True \\(bool\\)"),
    ("reg_weight", None, "hyper-parameter 'reg_weight' takes float, got None"),
])
def test_create_model_refuses_a_value_of_another_type(key, value, message):
    with pytest.raises(ValueError, match=f"^model 'bpr': {message}"):
        kgzoo.create_model("bpr", sizes=SIZES, config=False, **{key: value})


def test_values_the_annotations_admit_pass():
    bpr = MODELS.get("bpr")
    # an int where a float is wanted, None where the annotation allows it, a str, a bool
    check_hparams("bpr", bpr, {"lr": 1, "reg_weight": 0.5, "embedding_dim": 8, "main_metric": None})
    check_hparams("kgplm", MODELS.get("kgplm"), {"fusion": "mean", "use_kg": False, "fusion_hidden": None})
    # annotations other than the simple ones are left to the model; a key it does not take is refused, naming it
    check_hparams("bpr", bpr, {"ks": "10"})
    with pytest.raises(ValueError, match="^variant 'nonsense=x': model 'bpr' takes no hyper-parameter 'nonsense'; known: "):
        check_hparams("bpr", bpr, {"nonsense": "x", "ks": "10"}, where="variant 'nonsense=x': ")
    m = kgzoo.create_model("bpr", sizes=SIZES, config=False, lr=1, embedding_dim=4)
    assert m.lr == 1 and m.user_emb.weight.shape == (5, 4)
    with pytest.raises(ValueError, match="^variant 'use_kg=1': model 'kgplm': hyper-parameter 'use_kg' takes bool"):
        check_hparams("kgplm", MODELS.get("kgplm"), {"use_kg": 1}, where="variant 'use_kg=1': ")


def test_a_number_yaml_read_as_text_says_how_to_write_it():
    """PyYAML reads ``lr: 1e-3`` (no dot) as the text '1e-3': the error says to write 0.001."""
    with pytest.raises(ValueError, match=r"got '1e-3' \(str\); YAML reads 1e-3 without a dot as text: write it 0.001"):
        kgzoo.create_model("bpr", sizes=SIZES, config=False, lr="1e-3")
