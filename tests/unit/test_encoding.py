import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from collabfilter.data.encoding import Vocabulary
from collabfilter.errors import DataError, UnknownIdError

int_ids = st.lists(st.integers(min_value=-(2**40), max_value=2**40), min_size=1, max_size=200)
text_ids = st.lists(st.text(min_size=0, max_size=8), min_size=1, max_size=200)


@given(st.one_of(int_ids, text_ids))
def test_encode_round_trips_every_value(values):
    vocab, codes = Vocabulary.encode(values, kind="user")
    assert codes.dtype == np.int32
    assert len(vocab) == len(set(values))
    assert vocab.id_of(codes).tolist() == list(values)
    assert np.array_equal(vocab.index(values), codes)
    assert vocab.contains(values).all()


@given(st.one_of(int_ids, text_ids))
def test_dict_round_trip_keeps_ids_and_types(values):
    vocab, _ = Vocabulary.encode(values)
    assert Vocabulary.from_dict(vocab.to_dict()) == vocab


def test_codes_follow_sorted_ids():
    vocab, codes = Vocabulary.encode([30, 10, 20, 10])
    assert vocab.ids.tolist() == [10, 20, 30]
    assert codes.tolist() == [2, 0, 1, 0]


def test_unknown_ids_raise_and_name_examples():
    vocab = Vocabulary([1, 2, 3], kind="item")
    with pytest.raises(UnknownIdError, match=r"2 unknown item id\(s\), e.g. \[7, 9\]"):
        vocab.index([1, 7, 9])
    with pytest.raises(KeyError):  # generic handlers still catch it
        vocab.index_of(99)
    assert vocab.contains([1, 7]).tolist() == [True, False]


def test_lookup_coerces_between_text_and_numbers():
    numeric = Vocabulary([1, 2, 3])
    assert numeric.index(["2", 3]).tolist() == [1, 2]
    assert not numeric.contains(["x", 2.5]).any()
    textual = Vocabulary(["1", "b"])
    assert textual.index([1, "b"]).tolist() == [0, 1]


def test_titles_and_labels():
    vocab = Vocabulary([5, 6, 7]).with_titles({5: "Five", 7: "Seven", 8: "unused"})
    assert vocab.titles.tolist() == ["Five", None, "Seven"]
    assert vocab.labels().tolist() == ["Five", "6", "Seven"]
    assert Vocabulary.from_dict(vocab.to_dict()) == vocab


def test_rejects_repeated_ids_and_misaligned_titles():
    with pytest.raises(DataError, match="unique"):
        Vocabulary([1, 1, 2])
    with pytest.raises(DataError, match="align"):
        Vocabulary([1, 2], titles=["a"])
    with pytest.raises(DataError, match="id_type"):
        Vocabulary.from_dict({"ids": [1], "id_type": "float"})


def test_id_of_checks_bounds():
    vocab = Vocabulary([1, 2])
    with pytest.raises(IndexError):
        vocab.id_of([2])


def test_ids_that_differ_after_a_nul_stay_apart():
    """pandas hashes object strings as C strings; the vocabulary must not merge them."""
    vocab, codes = Vocabulary.encode(["", "\x00", "a", "a\x00b", "a"], kind="user")
    assert vocab.ids.tolist() == ["", "\x00", "a", "a\x00b"] and codes.tolist() == [0, 1, 2, 3, 2]
    assert vocab.index(["a\x00b", "\x00"]).tolist() == [3, 1]
