"""One line, exit code 2, for bad input everywhere (issue: untrusted inputs, classes 6 and 7):
messages that only suggest flags the command has, folders where files were expected, files whose
headers lie, archives with links out, and a tagged file with no tag column."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from _commands import subcommands
from plmkit.cli import build_parser, main
from plmkit.errors import PlmError


def _one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith(f"plm {command}: error: "), err
    assert sum("error:" in line for line in lines) == 1 and "Traceback" not in err
    return lines[-1]


@pytest.mark.parametrize("command", sorted(subcommands()))
def test_a_flag_is_suggested_only_by_commands_that_have_it(command):
    """'pass --errors replace' was printed by ten commands that have no such flag."""
    from plmkit.cli import _suggestion

    parser = build_parser()
    error = PlmError("invalid UTF-8", suggest="--errors replace")
    has_flag = "--errors" in subcommands()[command]._option_string_actions  # noqa: SLF001
    assert (_suggestion(parser, command, error) == "; or pass --errors replace") == has_flag


def test_a_latin1_corpus_gets_the_hint_only_where_it_can_be_taken(tmp_path, capsys):
    corpus = tmp_path / "latin1.txt"
    corpus.write_bytes("café au lait\n".encode("latin-1"))
    assert main(["ngram", "--corpus", str(corpus), "-o", str(tmp_path / "lm.arpa")]) == 2
    line = _one_error_line(capsys, "ngram")
    assert "latin1.txt:1" in line and "--errors" not in line
    assert main(["train-tokenizer", "--corpus", str(corpus), "--output", str(tmp_path / "v"),
                 "--vocab-size", "30", "--quiet"]) == 2
    assert _one_error_line(capsys, "train-tokenizer").endswith("or pass --errors replace")
    assert not (tmp_path / "lm.arpa").exists() and not (tmp_path / "v").exists()


def test_train_tokenizer_reads_a_corpus_folder_like_every_other_command(tmp_path, capsys):
    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("the cat sat on the mat\n" * 20)
    (folder / "sub" / "b.txt").write_text("a dog ran far away\n" * 20)
    assert main(["train-tokenizer", "--corpus", str(folder), "--output", str(tmp_path / "v"),
                 "--vocab-size", "80", "--quiet"]) == 0
    vocab = (tmp_path / "v" / "vocab.txt").read_text().split()
    assert {"cat", "dog"} <= set(vocab)
    (tmp_path / "empty").mkdir()
    assert main(["train-tokenizer", "--corpus", str(tmp_path / "empty"), "--output",
                 str(tmp_path / "w"), "--vocab-size", "40", "--quiet"]) == 2
    assert "no .txt or .gz file" in _one_error_line(capsys, "train-tokenizer")
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("argv", [["similar", "{v}", "the"], ["analogy", "{v}", "a", "b", "c"]])
def test_a_vectors_header_that_promises_a_trillion_words_is_refused_before_allocating(
        argv, tmp_path, capsys):
    vectors = tmp_path / "vectors.txt"
    vectors.write_text("1000000000000 300\nthe " + " ".join(["0.1"] * 300) + "\n")
    assert main([a.format(v=vectors) for a in argv]) == 2
    line = _one_error_line(capsys, argv[0])
    assert "1,000,000,000,000 words" in line and "vectors.txt:1" in line


def test_a_one_column_conll_file_is_not_taken_as_tagged_data(tmp_path, capsys):
    """The words used to become the labels, while `evaluate` rejected the same file."""
    from plmkit.data.tasks import read_conll

    one = tmp_path / "one.conll"
    one.write_text("John\nlives\n\nin\nParis\n")
    with pytest.raises(PlmError, match="token and tag columns are the same"):
        read_conll(one)
    assert len(read_conll(one, tag_column=None)) == 2  # untagged input for prediction is fine


def test_a_tar_member_linking_out_of_the_destination_is_one_line(tmp_path):
    from plmkit.datasets.sources import Source, unpack

    archive = tmp_path / "evil-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        data = b"hello"
        info = tarfile.TarInfo("pkg/readme.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("pkg/passwd")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tf.addfile(link)
    source = Source(name="evil", kind="pypi", package="evil", version="1.0", sha256="0" * 64,
                    license="none", description="a test archive")
    destination = tmp_path / "out"
    destination.mkdir()
    with pytest.raises(PlmError) as error:
        unpack(source, archive, destination)
    assert "pkg/passwd" in str(error.value) and "\n" not in str(error.value)
    assert not (destination / "pkg" / "passwd").exists()


def test_max_parameters_bounds_one_command_and_is_restored(minilm_dir, capsys, monkeypatch):
    import os

    monkeypatch.delenv("PLMKIT_MAX_PARAMETERS", raising=False)
    assert main(["--max-parameters", "1e5", "info", str(minilm_dir)]) == 2
    line = _one_error_line(capsys, "info")
    assert "config.json" in line and "over the limit of 1e+05" in line
    assert "PLMKIT_MAX_PARAMETERS" not in os.environ
    assert main(["info", str(minilm_dir)]) == 0
    assert main(["--max-parameters", "-3", "info", str(minilm_dir)]) == 2
    assert "--max-parameters" in capsys.readouterr().err


@pytest.mark.parametrize("command", sorted(__import__("_commands").commands_with("--save-every")))
def test_a_training_output_that_is_a_file_is_one_line_before_any_work(command, tmp_path, capsys):
    """Every training command writes a folder; `pretrain --output FILE` used to end in a
    NotADirectoryError after preparing its data."""
    from _commands import parsable_argv

    existing = tmp_path / "results.txt"
    existing.write_text("keep me\n")
    assert main(parsable_argv(command, subcommands()[command], existing)) == 2
    line = _one_error_line(capsys, command)
    assert "results.txt" in line and "is a file" in line
    assert existing.read_text() == "keep me\n"


def test_a_bad_value_in_the_toml_file_names_the_file_and_field(tmp_path, capsys):
    config = tmp_path / "big.toml"
    config.write_text('[model]\nhidden_size = "big"\n')
    assert main(["pretrain", "--config", str(config), "--output", str(tmp_path / "run")]) == 2
    line = _one_error_line(capsys, "pretrain")
    assert "big.toml" in line and "[hidden_size]" in line
    assert not (tmp_path / "run").exists()
