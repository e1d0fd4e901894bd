"""``tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")``.

Our ``WordPieceTokenizer.__call__`` against Hugging Face's ``BertTokenizerFast.__call__`` on the
real MiniLM vocabulary, key by key, for every input shape (one text, a pair, a batch of texts, a
batch of pairs given either way) and every padding × truncation × max_length × return_tensors
combination; where transformers refuses a combination, so must we. Then ``model(**inputs)``
feeds our BERT and Hugging Face's alike.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from plmkit.errors import PlmError
from plmkit.tokenization import ModelInputs

transformers = pytest.importorskip("transformers")
# the same two tokenizers on MiniLM's vocabulary as the encode() parity tests
from test_tokenization_parity import ours, reference  # noqa: E402,F401  (fixtures)
# transformers warns on its own side about some of the combinations walked here
pytestmark = pytest.mark.filterwarnings("ignore:`max_length` is ignored:UserWarning")

TEXTS = ["The quick brown fox jumps over the lazy dog.", "北京是中国的首都。",
         "café naïve résumé", "a", "Punctuation runs!!! ... ?!?! ((nested))"]
PAIRS = ["How old are you?", "I am six years old and I live in a small house by the sea.",
         "", "x y", "Short."]
INPUTS = {
    "single": ((TEXTS[0],), {}),
    "pair": ((TEXTS[0], PAIRS[1]), {}),
    "empty pair": ((TEXTS[2], ""), {}),
    "batch": ((TEXTS,), {}),
    "batch of pairs": ((TEXTS, PAIRS), {}),
    "batch of tuples": ((list(zip(TEXTS, PAIRS)),), {}),
    "words": ((["Hello", "wonderful", "world"],), {"is_split_into_words": True}),
    "batch of words": (([["Hello", "world"], ["naïve", "résumé", "x"]],),
                       {"is_split_into_words": True}),
}
PADDING = (False, True, "longest", "max_length")
TRUNCATION = (None, False, True, "longest_first", "only_first", "only_second")
MAX_LENGTH = (None, 9, 128)
TENSORS = (None, "pt", "np")


def _plain(value):
    """Tensors and arrays as nested lists (their type checked separately), tuples as lists."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _compare(ours, reference, args, kwargs) -> str:
    """'same' or 'both refuse'; fails on any difference."""
    try:
        expected = reference(*args, **kwargs)
    except Exception:  # transformers refuses this combination: so must we
        with pytest.raises(PlmError):
            ours(*args, **kwargs)
        return "both refuse"
    if any(getattr(value, "dtype", None) == object for value in expected.values()):
        with pytest.raises(PlmError, match="padding=True"):  # ragged rows: an array of objects
            ours(*args, **kwargs)
        return "both refuse"
    got = ours(*args, **kwargs)
    assert isinstance(got, ModelInputs) and isinstance(got, dict)
    assert list(got) == list(expected.keys()), kwargs
    for key in got:
        tensors = kwargs.get("return_tensors")
        if tensors == "pt":
            assert isinstance(got[key], torch.Tensor) and got[key].dtype == expected[key].dtype
        elif tensors == "np":
            assert isinstance(got[key], np.ndarray) and got[key].dtype == expected[key].dtype
        if tensors:
            assert tuple(got[key].shape) == tuple(expected[key].shape), (key, kwargs)
        assert _plain(got[key]) == _plain(expected[key]), (key, args, kwargs)
    return "same"


@pytest.mark.parametrize("shape", list(INPUTS))
def test_every_padding_truncation_and_tensor_option_matches_transformers(ours, reference, shape):
    args, base = INPUTS[shape]
    outcomes = []
    for padding, truncation, max_length, tensors in itertools.product(
            PADDING, TRUNCATION, MAX_LENGTH, TENSORS):
        kwargs = dict(base, padding=padding, max_length=max_length, return_tensors=tensors)
        if truncation is not None:
            kwargs["truncation"] = truncation
        outcomes.append(_compare(ours, reference, args, kwargs))
    assert outcomes.count("same") >= len(outcomes) // 3  # the comparison did compare


@pytest.mark.parametrize("shape", list(INPUTS))
def test_optional_fields_match_transformers(ours, reference, shape):
    args, base = INPUTS[shape]
    for offsets, types, mask, special, tensors in itertools.product(
            (False, True), (None, True, False), (None, True, False), (False, True),
            (None, "pt", "np")):
        kwargs = dict(base, padding=True, return_offsets_mapping=offsets,
                      return_token_type_ids=types, return_attention_mask=mask,
                      return_special_tokens_mask=special, return_tensors=tensors)
        assert _compare(ours, reference, args, kwargs) == "same"


def test_the_line_users_type_first_feeds_both_models(ours, reference, minilm_dir):
    from plmkit.models import bert

    ours_model = bert.BertModel.from_pretrained(minilm_dir).eval()
    hf_model = transformers.BertModel.from_pretrained(str(minilm_dir)).eval()
    inputs = ours(TEXTS, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        got = ours_model(**inputs).last_hidden_state
        expected = hf_model(**inputs).last_hidden_state
        again = hf_model(**reference(TEXTS, padding=True, truncation=True, max_length=128,
                                     return_tensors="pt")).last_hidden_state
    mask = inputs["attention_mask"].bool()
    torch.testing.assert_close(got[mask], expected[mask], atol=1e-4, rtol=1e-4)
    assert torch.equal(expected, again)


def test_model_inputs_read_as_attributes_move_and_keep_their_encodings(ours):
    inputs = ours(["Hello world", "Hi"], padding=True, return_tensors="pt")
    assert inputs.input_ids is inputs["input_ids"]
    assert inputs.to("cpu").attention_mask.tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert inputs.tokens(1) == ["[CLS]", "hi", "[SEP]", "[PAD]"]
    assert inputs.word_ids(0) == [None, 0, 1, None]
    with pytest.raises(AttributeError):
        inputs.no_such_key


def test_bad_arguments_are_one_line_plm_errors(ours):
    with pytest.raises(PlmError, match="return_tensors"):
        ours("x", return_tensors="tf")
    with pytest.raises(PlmError, match="padding=True"):
        ours(["a", "a b c"], return_tensors="pt")
    with pytest.raises(PlmError, match="text pairs"):
        ours(["a", "b"], ["c"])
    with pytest.raises(PlmError, match="must be a string"):
        ours(42)
    with pytest.raises(PlmError, match="max_length"):
        ours("x", max_length=-1)
