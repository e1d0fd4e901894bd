"""plmkit.datasets.reviews on a fixture in the pattern CSV layout, and ``--corpus a,b``."""

from pathlib import Path

import pytest

from plmkit.datasets.reviews import review_documents
from plmkit.errors import PlmError
from plmkit.training.bert_pretraining import resolve_corpus

FIXTURE = ('\ufeff"1","a fine film , with  a\nsecond sentence .\n\n"\n'
           '"-1","dull .\nvery "" dull "" indeed ."\n')


def test_each_review_is_a_document_of_its_lines(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text(FIXTURE, encoding="utf-8")
    assert list(review_documents(path)) == [["a fine film , with a", "second sentence ."],
                                            ["dull .", 'very " dull " indeed .']]


def test_a_record_without_its_label_names_file_and_line(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text(FIXTURE + '"good movie"\n', encoding="utf-8")
    with pytest.raises(PlmError) as error:
        list(review_documents(path))
    assert "reviews.csv:7:" in str(error.value)  # the bad record's line, not its row


def test_corpus_names_and_paths_join_with_commas(tmp_path):
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("one .\n", encoding="utf-8")
    second.write_text("two .\n", encoding="utf-8")
    assert resolve_corpus(f"{first},{second}") == [first, second]
    odd = tmp_path / "with,comma.txt"
    odd.write_text("three .\n", encoding="utf-8")
    assert resolve_corpus(str(odd)) == [odd]
    with pytest.raises(PlmError) as error:
        resolve_corpus(f"{first},{tmp_path / 'missing.txt'}")
    assert "missing.txt" in str(error.value)
