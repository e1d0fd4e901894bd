"""Reading pre-training corpora: sentence splitting, the two layouts, files, folders, bad input."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from plmkit.data.corpus import corpus_files, detect_format, read_documents, split_sentences
from plmkit.errors import PlmError

# ----------------------------------------------------------------------------- split_sentences


@pytest.mark.parametrize("text, expected", [
    ("Mr. Smith went home. He slept.", ["Mr. Smith went home.", "He slept."]),
    ("Pi is 3.14 exactly. Then e is 2.72.", ["Pi is 3.14 exactly.", "Then e is 2.72."]),
    ("Fruit, e.g. apples, is good. I agree.", ["Fruit, e.g. apples, is good.", "I agree."]),
    ("The U.S. Army won. J. R. R. Tolkien wrote.", ["The U.S. Army won.",
                                                  "J. R. R. Tolkien wrote."]),
    ("See No. 5 here. Go!", ["See No. 5 here.", "Go!"]),
    ("Really?! Yes... It works.", ["Really?!", "Yes...", "It works."]),
    ('"Go home." She left. (Quietly.) End', ['"Go home."', "She left.", "(Quietly.)", "End"]),
    ("apples, pears, etc. and more. Done", ["apples, pears, etc. and more.", "Done"]),
    ("今天天气很糟糕。下午的体育课取消了！他说：“走吧。”真的吗？好",
     ["今天天气很糟糕。", "下午的体育课取消了！", "他说：“走吧。”", "真的吗？", "好"]),
    ("Version 2.0 is out.Next time", ["Version 2.0 is out.Next time"]),
    ("   ", []),
])
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_split_sentences_keeps_all_text() -> None:
    text = "Dr. Who arrived at 5 p.m. today. It rained! Did it? 雨停了。好的"
    assert "".join(split_sentences(text)).replace(" ", "") == text.replace(" ", "")


# ----------------------------------------------------------------------------- layouts

BERT_TEXT = ("The cat sat on the mat.\nIt was happy.\nThen it slept.\n\n"
             "Dogs bark loudly.\nBirds sing.\n\n\nA lone sentence here.\n")


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        text = text.encode("utf-8")
    if path.name.endswith(".gz"):
        text = gzip.compress(text)
    path.write_bytes(text)
    return path


def test_bert_format(tmp_path: Path) -> None:
    path = write(tmp_path / "c.txt", BERT_TEXT)
    assert detect_format(path) == "bert"
    docs = list(read_documents(path))
    assert docs == [["The cat sat on the mat.", "It was happy.", "Then it slept."],
                    ["Dogs bark loudly.", "Birds sing."], ["A lone sentence here."]]
    assert list(read_documents(path, min_sentences=2)) == docs[:2]


def test_paragraph_blocks_hard_wrapped(tmp_path: Path) -> None:
    text = ("The first paragraph is long and\nwraps over lines. It has two sentences.\n\n"
            "Second one. Short! And\nwrapped too?\n")
    path = write(tmp_path / "p.txt", text)
    assert detect_format(path) == "paragraphs"
    assert list(read_documents(path)) == [
        ["The first paragraph is long and wraps over lines.", "It has two sentences."],
        ["Second one.", "Short!", "And wrapped too?"]]


def test_one_paragraph_per_line(tmp_path: Path) -> None:
    text = "One story. It ends here.\nAnother story. Different! Yes.\n"
    path = write(tmp_path / "p.txt", text)
    assert list(read_documents(path)) == [["One story.", "It ends here."],
                                          ["Another story.", "Different!", "Yes."]]
    # Forcing the bert layout reads each line as one sentence of one document.
    assert list(read_documents(path, format="bert")) == [text.strip().split("\n")]


def test_gzip_and_folders_sorted_recursive(tmp_path: Path) -> None:
    write(tmp_path / "corpus" / "b.txt", "Beta one.\nBeta two.\n")
    write(tmp_path / "corpus" / "a" / "z.txt.gz", "Gamma one.\nGamma two.\n")
    write(tmp_path / "corpus" / "a.gz", "Alpha one.\n")
    write(tmp_path / "corpus" / "notes.md", "Not read.\n")
    files = corpus_files(tmp_path / "corpus")
    # Sorted by path components (a folder's files right after the folder's name), then read.
    assert [f.relative_to(tmp_path / "corpus").as_posix() for f in files] == [
        "a/z.txt.gz", "a.gz", "b.txt"]
    assert list(read_documents([tmp_path / "corpus"])) == [
        ["Gamma one.", "Gamma two."], ["Alpha one."], ["Beta one.", "Beta two."]]


def test_windows_newlines_and_bom(tmp_path: Path) -> None:
    path = write(tmp_path / "w.txt", "\ufeffFirst line.\r\nSecond line.\r\n\r\nThird.\r\n")
    assert list(read_documents(path)) == [["First line.", "Second line."], ["Third."]]


# ----------------------------------------------------------------------------- bad input


def test_invalid_utf8_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.txt", b"Good line.\nAnother.\nbad \xff byte.\n")
    with pytest.raises(PlmError) as info:
        list(read_documents(path))
    assert info.value.path == str(path) and info.value.line == 3
    assert f"{path}:3" in str(info.value)
    docs = list(read_documents(path, errors="replace"))
    assert docs == [["Good line.", "Another.", "bad \ufffd byte."]]


def test_invalid_utf8_in_gzip_names_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.txt.gz", b"ok.\n\nfine.\n\xc3\x28 here.\n")
    with pytest.raises(PlmError, match=r"bad\.txt\.gz:4"):
        list(read_documents(path))


def test_corrupt_gzip_is_a_plm_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.gz"
    path.write_bytes(b"this is not gzip data")
    with pytest.raises(PlmError, match="broken.gz"):
        list(read_documents(path))


def test_empty_corpus_names_the_paths(tmp_path: Path) -> None:
    empty = write(tmp_path / "empty.txt", "\n\n   \n")
    folder = tmp_path / "nothing_here"
    folder.mkdir()
    with pytest.raises(PlmError) as info:
        list(read_documents([empty, folder]))
    assert "empty corpus" in str(info.value)
    assert str(empty) in str(info.value) and str(folder) in str(info.value)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(PlmError, match="not found"):
        list(read_documents(tmp_path / "absent.txt"))


def test_bad_format_name(tmp_path: Path) -> None:
    path = write(tmp_path / "c.txt", BERT_TEXT)
    with pytest.raises(PlmError, match="format"):
        list(read_documents(path, format="xml"))


def test_reading_is_streamed(tmp_path: Path) -> None:
    """The first document comes out before the reader reaches a bad byte far down the file."""
    good = "".join(f"Sentence number {i}.\n" + ("\n" if i % 3 == 2 else "")
                   for i in range(900))
    path = write(tmp_path / "big.txt", good.encode() + b"broken \xff\n")
    documents = read_documents(path)
    assert next(documents) == ["Sentence number 0.", "Sentence number 1.", "Sentence number 2."]
    with pytest.raises(PlmError, match=r"big\.txt:\d+"):
        list(documents)
