"""plmkit.datasets on hand-written fixtures: fetch mechanics, converters, splitters (no network)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from plmkit.datasets import _build, ner, rst, sources, translation, wordnet
from plmkit.datasets.sources import MARKER, Source
from plmkit.errors import PlmError

# ---------------------------------------------------------------------------- fetch mechanics


def _wheel(path: Path, members: dict[str, str]) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, text in sorted(members.items()):
            zf.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), text)
    path.write_bytes(buffer.getvalue())
    return hashlib.sha256(buffer.getvalue()).hexdigest()


@pytest.fixture
def fake_source(tmp_path, monkeypatch):
    """A pinned PyPI-style source whose archive is a local wheel given via PLMKIT_SOURCE_FAKE."""
    monkeypatch.setenv("PLMKIT_HOME", str(tmp_path / "home"))
    archive = tmp_path / "fake-1.0-py3-none-any.whl"
    digest = _wheel(archive, {"fake/data.txt": "hello\n", "fake/more.txt": "world\n"})
    source = Source("fake", "pypi", "fake", "1.0", digest, "MIT", "a test archive")
    monkeypatch.setitem(sources.SOURCES, "fake", source)
    monkeypatch.setenv(source.env_var, str(archive))
    return source, archive


def test_fetch_verifies_unpacks_once_and_marks_complete(fake_source, monkeypatch):
    source, _ = fake_source
    folder = sources.fetch("fake")
    assert (folder / "fake" / "data.txt").read_text() == "hello\n"
    assert json.loads((folder / MARKER).read_text())["sha256"] == source.sha256
    assert sources.is_fetched("fake")

    def no_second_unpack(*args, **kwargs):
        raise AssertionError("a complete source must not be unpacked again")

    monkeypatch.setattr(sources, "unpack", no_second_unpack)
    assert sources.fetch("fake") == folder


def test_sha256_mismatch_is_a_plm_error_naming_source_and_command(fake_source, monkeypatch):
    source, _ = fake_source
    wrong = Source(**{**source.__dict__, "sha256": "0" * 64})
    monkeypatch.setitem(sources.SOURCES, "fake", wrong)
    with pytest.raises(PlmError, match="sha256 mismatch for source 'fake'") as info:
        sources.fetch("fake")
    assert "pip download --no-deps fake==1.0" in str(info.value)
    assert not sources.source_dir("fake").exists()


def test_a_folder_without_its_marker_is_not_taken_as_complete(fake_source):
    target = sources.source_dir("fake")
    (target / "fake").mkdir(parents=True)
    (target / "fake" / "data.txt").write_text("half")  # what a killed unpack could leave
    assert not sources.is_fetched("fake")
    folder = sources.fetch("fake")
    assert (folder / "fake" / "data.txt").read_text() == "hello\n"


def test_a_marker_for_another_archive_is_not_complete(fake_source):
    target = sources.source_dir("fake")
    target.mkdir(parents=True)
    (target / MARKER).write_text(json.dumps({"sha256": "1" * 64}))
    assert not sources.is_fetched("fake")


def test_an_interrupted_unpack_leaves_nothing_that_looks_complete(fake_source, monkeypatch):
    real_unpack = sources.unpack

    def dies_halfway(source, archive, destination):
        (destination / "partial.txt").write_text("x")
        raise KeyboardInterrupt

    monkeypatch.setattr(sources, "unpack", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        sources.fetch("fake")
    assert not sources.is_fetched("fake")
    assert not sources.source_dir("fake").exists()
    monkeypatch.setattr(sources, "unpack", real_unpack)
    assert (sources.fetch("fake") / "fake" / "more.txt").exists()


def test_a_killed_fetch_process_is_redone_by_the_next(fake_source, tmp_path):
    """SIGKILL during the unpack: the next process sees no complete source and fetches it."""
    code = (
        "import os, signal\n"
        "from plmkit.datasets import sources\n"
        "sources.SOURCES['fake'] = sources.Source('fake', 'pypi', 'fake', '1.0', %r, 'MIT', 'x')\n"
        "def unpack(source, archive, destination):\n"
        "    (destination / 'partial.txt').write_text('x')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "sources.unpack = unpack\n"
        "sources.fetch('fake')\n" % fake_source[0].sha256
    )
    result = subprocess.run([os.sys.executable, "-c", code], env=os.environ.copy(), check=False)
    assert result.returncode != 0
    assert not sources.is_fetched("fake")
    assert (sources.fetch("fake") / "fake" / "data.txt").read_text() == "hello\n"


def test_a_local_folder_override_needs_a_marker_or_the_explicit_opt_out(fake_source, tmp_path, monkeypatch):
    source, _ = fake_source
    local = tmp_path / "unpacked"
    local.mkdir()
    monkeypatch.setenv(source.env_var, str(local))
    with pytest.raises(PlmError, match="cannot be verified.*PLMKIT_ALLOW_UNPINNED=1"):
        sources.fetch("fake")
    monkeypatch.setenv(sources.ALLOW_UNPINNED, "1")
    assert sources.fetch("fake") == local


def test_a_folder_unpacked_by_plmkit_elsewhere_is_checked_by_its_marker(fake_source, tmp_path, monkeypatch):
    source, _ = fake_source
    copy = tmp_path / "copy"
    shutil.copytree(sources.fetch("fake"), copy)
    monkeypatch.setenv(source.env_var, str(copy))
    assert sources.fetch("fake") == copy
    (copy / "fake" / "data.txt").write_text("HELLO\n")  # same size, new bytes
    with pytest.raises(PlmError, match="sha256 is not the recorded one.*unset PLMKIT_SOURCE_FAKE"):
        sources.fetch("fake")


def test_a_failed_download_names_the_manual_command_and_the_variable(fake_source, monkeypatch):
    source, _ = fake_source
    monkeypatch.delenv(source.env_var)
    monkeypatch.setattr(sources, "_run", lambda command, cwd: subprocess.CompletedProcess(
        command, 1, "", "ERROR: No matching distribution found for fake==1.0"))
    with pytest.raises(PlmError) as info:
        sources.fetch("fake")
    message = str(info.value)
    assert "could not fetch source 'fake'" in message
    assert "pip download --no-deps fake==1.0 -d" in message
    assert "PLMKIT_SOURCE_FAKE" in message


def _fake_apt(monkeypatch, refuse, archive: str, content: bytes = b"!<arch>\n") -> list[list[str]]:
    """apt-get replaced: ``refuse(command, number)`` gives the stderr of a call that fails (or
    None); a download that succeeds writes ``archive``. Returns the commands run, in order."""
    monkeypatch.setattr(sources.shutil, "which", lambda name: "/usr/bin/" + name)
    calls: list[list[str]] = []

    def run(command, cwd):
        calls.append(command)
        why = refuse(command, len(calls))
        if why:
            return subprocess.CompletedProcess(command, 100, "", why)
        if command[1] == "download":
            (Path(cwd) / archive).write_bytes(content)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(sources, "_run", run)
    return calls


def test_debian_download_runs_apt_get_update_once_when_lists_are_missing(fake_source, monkeypatch, tmp_path):
    debian = Source("fakedeb", "debian", "fakedeb", "1.0-1", "0" * 64, "MIT", "x")
    calls = _fake_apt(monkeypatch, lambda command, number: "E: Unable to locate package fakedeb"
                      if command[1] == "download" and number == 1 else None,
                      "fakedeb_1.0-1_all.deb")
    (tmp_path / "dl").mkdir()
    archive = sources.download(debian, tmp_path / "dl")
    assert archive.name == "fakedeb_1.0-1_all.deb"
    assert [c[:2] for c in calls] == [["apt-get", "download"], ["apt-get", "update"],
                                      ["apt-get", "download"]]


def test_unknown_source_is_a_plm_error():
    with pytest.raises(PlmError, match="unknown source"):
        sources.fetch("no-such-source")


def test_every_pinned_source_has_a_real_looking_sha256_and_env_var():
    for source in sources.SOURCES.values():
        assert len(source.sha256) == 64 and int(source.sha256, 16) >= 0
        assert source.kind in ("pypi", "debian")
        assert source.env_var.startswith("PLMKIT_SOURCE_") and source.env_var.isupper()


# ---------------------------------------------------------------------------- NER converter

SNIPPET = (
    "19980101-01-001-002/m  [中国/ns 政府/n]nt  总理/n  李/nr  鹏/nr  在/p  北京/ns  说/v  ：/w  "
    "“/w  好/a  。/w  ”/w  他/r  [走/v 了/u]l  。/w"
)


def test_people_daily_line_to_bio_and_iobes():
    units = ner.parse_line(SNIPPET)
    sentences = ner.split_units(units)
    assert ["".join(text for text, _ in s) for s in sentences] == ["中国政府总理李鹏在北京说：“好。”", "他走了。"]
    bio = ner.units_to_bio(sentences[0])
    assert [tag for _, tag in bio] == [
        "B-ORG", "I-ORG", "I-ORG", "I-ORG", "O", "O", "B-PER", "I-PER", "O", "B-LOC", "I-LOC",
        "O", "O", "O", "O", "O", "O",
    ]
    assert ner.bio_to_iobes([tag for _, tag in bio]) == [
        "B-ORG", "I-ORG", "I-ORG", "E-ORG", "O", "O", "B-PER", "E-PER", "O", "B-LOC", "E-LOC",
        "O", "O", "O", "O", "O", "O",
    ]
    assert [tag for _, tag in ner.units_to_bio(sentences[1])] == ["O", "O", "O", "O"]


def test_people_daily_persons_and_single_character_entities():
    units = ner.parse_line("（/w  马/nr  文/nr  田/nr  楚涛/nr  ）/w  赴/v  京/ns  [新华/nz 社/n]nt")
    assert units == [("（", None), ("马文", "PER"), ("田楚涛", "PER"), ("）", None), ("赴", None),
                     ("京", "LOC"), ("新华社", "ORG")]
    tags = [tag for _, tag in ner.units_to_bio(units)]
    assert ner.bio_to_iobes(tags) == ["O", "B-PER", "E-PER", "B-PER", "I-PER", "E-PER", "O", "O",
                                      "S-LOC", "B-ORG", "I-ORG", "E-ORG"]


def test_bio_to_iobes_reads_a_stray_inside_tag_as_a_begin():
    assert ner.bio_to_iobes(["I-PER", "I-PER", "O", "I-LOC", "B-LOC"]) == ["B-PER", "E-PER", "O", "S-LOC", "S-LOC"]
    with pytest.raises(PlmError):
        ner.bio_to_iobes(["X-PER"])


def test_unclosed_bracket_names_file_and_line():
    with pytest.raises(PlmError, match="unclosed") as info:
        ner.parse_line("[中国/ns 政府/n", path="corpus.txt", line_number=7)
    assert info.value.line == 7 and info.value.path == "corpus.txt"


def test_long_sentences_are_capped_without_cutting_entities():
    units = [("北京市", "LOC"), ("，", None)] * 40 + [("。", None)]
    pieces = ner.split_units(units, max_chars=20)
    assert all(ner._length(p) <= 20 for p in pieces)
    assert [u for p in pieces for u in p] == units


def test_conll_round_trip_and_iobes_rewrite(tmp_path):
    bio = tmp_path / "bio.txt"
    ner.write_conll(bio, [[("李", "B-PER"), ("鹏", "I-PER")], [("京", "B-LOC"), ("。", "O")]])
    assert bio.read_text(encoding="utf-8") == "李\tB-PER\n鹏\tI-PER\n\n京\tB-LOC\n。\tO\n\n"
    assert ner.conll_to_iobes(bio, tmp_path / "iobes.txt") == 2
    assert ner.read_conll(tmp_path / "iobes.txt") == [[("李", "B-PER"), ("鹏", "E-PER")],
                                                      [("京", "S-LOC"), ("。", "O")]]


# ---------------------------------------------------------------------------- reStructuredText

RST = """\
:mod:`json` --- JSON encoder
============================

.. module:: json
   :synopsis: Encode JSON.

.. index:: single: json

`JSON <https://json.org>`_ is specified by :rfc:`7159`. It is a **lightweight** format [#f]_.
See :func:`~json.dumps` and :ref:`the tutorial <tut-json>` for more, e.g. the examples.

Encoding basic objects::

    >>> import json
    >>> json.dumps([1, 2])

.. function:: dumps(obj, *, skipkeys=False, \\
                    indent=None)

   Serialize *obj* to a ``str`` using this table.

   .. versionchanged:: 3.6
      All optional parameters are now keyword-only.

+------+-------+
| a    | b     |
+------+-------+

.. code-block:: python

   print("code is not prose")

* A bullet item that is a
  full sentence on two lines.

.. [#f] A footnote we drop.
"""


def test_rst_markup_code_tables_and_titles_are_stripped():
    assert rst.rst_sentences(RST) == [
        "JSON is specified by RFC 7159.",
        "It is a lightweight format.",
        "See dumps and the tutorial for more, e.g. the examples.",
        "Encoding basic objects:",
        "Serialize obj to a str using this table.",
        "All optional parameters are now keyword-only.",
        "A bullet item that is a full sentence on two lines.",
    ]


def test_sentence_splitter_respects_abbreviations_and_initials():
    text = "Use os.path, i.e. the module. It works! Does it? J. Smith said so. Version 3.11 is out."
    assert rst.split_sentences(text) == [
        "Use os.path, i.e. the module.", "It works!", "Does it?", "J. Smith said so.", "Version 3.11 is out.",
    ]


# ---------------------------------------------------------------------------- WordNet helpers

DATA_LINE = ('00042173 29 v 02 powder 0 dust 1 001 @ 00040928 v 0000 01 + 08 00 | apply powder to; '
             '"She powdered her nose"; "The King wears a powdered wig"; "dust the cake"  ')


def test_wordnet_data_line_and_inflected_spans():
    synset = wordnet.parse_data_line(DATA_LINE, "v")
    assert synset.id == "v.00042173" and synset.lemmas == ("powder", "dust")
    assert synset.definition == "apply powder to"
    assert synset.examples == ("She powdered her nose", "The King wears a powdered wig", "dust the cake")
    exceptions = {("go", "v"): {"went"}}
    assert wordnet.find_lemma("She powdered her nose", "powder", "v", exceptions) == (4, 12)
    assert wordnet.find_lemma("they went home", "go", "v", exceptions) == (5, 9)
    assert wordnet.find_lemma("a well-known fact", "known", "a", {}) is None
    assert wordnet.find_lemma("it is well known", "well-known", "a", {}) == (6, 16)
    assert wordnet.find_lemma("`bosky' is a literary term", "bosky", "a", {}) == (1, 6)


def test_wordnet_qa_answers_point_at_their_text():
    synset = wordnet.parse_data_line(DATA_LINE, "v")
    records = wordnet.qa_records([synset], {})
    data = wordnet.squad_json(records)
    assert wordnet.check_squad(data) == 3
    answers = [qa["answers"][0] for p in data["data"][0]["paragraphs"] for qa in p["qas"]]
    assert [a["text"] for a in answers] == ["powdered", "powdered", "dust"]
    assert data["data"][0]["paragraphs"][0]["qas"][0]["question"] == "What word means: apply powder to?"
    data["data"][0]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] += 1
    with pytest.raises(PlmError, match="answer_start"):
        wordnet.check_squad(data)


def test_wic_pairs_are_balanced_per_lemma_and_deterministic():
    uses = [wordnet.Use("bank", "n", f"n.{s}", f"sentence {s}{i} about the bank", (0, 1))
            for s in ("1", "2", "3") for i in range(3)]
    pairs = wordnet.wic_pairs(uses)
    assert pairs == wordnet.wic_pairs(uses)
    labels = [p[2] for p in pairs]
    assert labels.count(1) == labels.count(0) == wordnet.MAX_PAIRS_PER_LEMMA
    for a, b, label, lemma in pairs:
        assert a != b and lemma == "bank.n"
        assert (a.split()[1][0] == b.split()[1][0]) == (label == 1)


# ---------------------------------------------------------------------------- dictionary, splits


def test_dictd_entry_gives_example_and_sentence_pairs():
    entry = ('Please refrain from smoking! /plˈiːz/\nEs wird ersucht, das Rauchen zu unterlassen!, Bitte nicht rauchen!\n'
             ' see: {refrain from sth.}\n')
    assert translation.entry_pairs(entry) == [
        ("Please refrain from smoking!", "Es wird ersucht, das Rauchen zu unterlassen!", "headword")]
    entry = ('Eel /ˈiːl/\nAal <masc> [cook.]\n      "Eel au bleu"  - Aal blau, blauer Aal\n')
    assert translation.entry_pairs(entry) == [("Eel au bleu", "Aal blau", "example")]
    assert translation.dictd_number("B8") == 64 + 60 and translation.dictd_number("BAA") == 64 * 64


def test_splits_are_deterministic_grouped_and_stratified():
    items = [(f"g{i % 37}", i) for i in range(1000)]
    first = _build.split_groups(items, key=lambda x: x[0])
    assert first == _build.split_groups(items, key=lambda x: x[0])
    groups = {split: {x[0] for x in rows} for split, rows in first.items()}
    assert not (groups["train"] & groups["test"]) and not (groups["train"] & groups["dev"])
    assert sum(len(rows) for rows in first.values()) == 1000
    labelled = [(i, "pos" if i % 2 else "neg") for i in range(100)]
    strat = _build.split_stratified(labelled, label=lambda x: x[1])
    assert {s: len(r) for s, r in strat.items()} == {"train": 80, "dev": 10, "test": 10}
    assert _build.label_counts(strat, lambda x: x[1])["dev"] == {"neg": 5, "pos": 5}


def test_fortune_entries_lose_even_nested_colour_codes():
    from plmkit.datasets.corpora import read_fortunes

    text = "\x1b[32m《静夜思》\x1b[m\n床前明月光，\x1b[;\x1b[34;1mm疑是地上霜。\n%\n\n第二\n%\n"
    assert read_fortunes(text) == ["《静夜思》\n床前明月光，疑是地上霜。", "第二"]


GCIDE_SAMPLE = """
Plmkit \\Plm*kit"\\, n. [From plm + kit; cf. F. trousse.]
   1. A small box of tools for language models. --Bailey.
      [1913 Webster]

   2. (Comp. & Zool.) A toolkit of any kind; as, a sewing plmkit.
      "He carried his plmkit through the rain." --Shak.
      [1913 Webster]

   3. A set of programs that train networks of words.
      [WordNet 1.5]

   Syn: See {Toolbox}.
        [1913 Webster]

Plmkits \\Plm*kits"\\, n. pl.
   Plural of {plmkit}; as, many plmkits were sold.
   [1913 Webster]
"""


def test_gcide_keeps_webster_senses_and_drops_wordnet_glosses_and_markup():
    from plmkit.datasets.general import gcide_entries

    entries = list(gcide_entries(GCIDE_SAMPLE))
    assert entries == [
        ["A small box of tools for language models.",
         'A toolkit of any kind; as, a sewing plmkit. "He carried his plmkit through the rain."'],
        ["Plural of plmkit; as, many plmkits were sold."],
    ]
    assert not any("networks of words" in block for entry in entries for block in entry)


def test_fortune_documents_drop_attributions_and_skipped_files(tmp_path):
    from plmkit.datasets.general import FORTUNES_DIR, fortune_documents

    folder = tmp_path / FORTUNES_DIR
    folder.mkdir(parents=True)
    (folder / "wisdom.u8").write_text(
        "A dream will always triumph over reality. Once it is given\nthe chance, it wins.\n"
        "\t\t-- Stanislaw Lem\n%\nok\n%\n", encoding="utf-8")
    (folder / "ascii-art.u8").write_text("a picture of a cat drawn here\n%\n", encoding="utf-8")
    (folder / "wisdom").write_text("latin-1 copy that must not be read twice\n%\n", encoding="latin-1")
    assert list(fortune_documents(tmp_path)) == [
        ["A dream will always triumph over reality.", "Once it is given the chance, it wins."]]


def test_a_superseded_debian_build_gives_way_to_the_next_known_build(monkeypatch, tmp_path):
    """Debian security updates delete the pinned build: the next known build (by sha256) is
    downloaded and accepted; when none is left, the error names every build tried."""
    newer_bytes = b"!<arch>\nnewer"
    newer_sha = hashlib.sha256(newer_bytes).hexdigest()
    doc = Source("fakedoc", "debian", "fakedoc", "1:1.0-1", "0" * 64, "MIT", "x",
                 other_builds=(("1:1.0-2", newer_sha),))
    gone = lambda command, number: ("E: Version '1:1.0-1' for 'fakedoc' was not found"
                                    if command[-1] == "fakedoc=1:1.0-1" else None)
    calls = _fake_apt(monkeypatch, gone, "fakedoc_1%3a1.0-2_all.deb", newer_bytes)
    (tmp_path / "dl").mkdir()
    archive = sources.download(doc, tmp_path / "dl")
    assert archive.name == "fakedoc_1%3a1.0-2_all.deb"
    assert [c[-1] for c in calls] == ["fakedoc=1:1.0-1", "-q", "fakedoc=1:1.0-1", "fakedoc=1:1.0-2"]
    assert sources.verify(doc, archive) == newer_sha

    folder = tmp_path / "unpacked"
    folder.mkdir()
    (folder / MARKER).write_text(json.dumps({"sha256": newer_sha}))
    assert sources.read_marker(folder, doc) is not None
    only_pinned = Source(**{**doc.__dict__, "other_builds": ()})
    assert sources.read_marker(folder, only_pinned) is None

    _fake_apt(monkeypatch, lambda command, number: "E: Version was not found"
              if command[1] == "download" else None, "never.deb")
    with pytest.raises(PlmError, match=r"none of the known builds of fakedoc \(1:1.0-1, 1:1.0-2\)"
                       r".*snapshot.debian.org/binary/fakedoc/.*PLMKIT_ALLOW_UNPINNED=1"):
        sources.download(doc, tmp_path / "dl")


def test_an_unknown_archive_is_refused_even_by_name_unless_the_user_opts_out(monkeypatch, tmp_path):
    """Any ``fakedoc_*.deb`` used to pass with a warning; now only a known sha256 does."""
    doc = Source("fakedoc", "debian", "fakedoc", "1:1.0-1", "0" * 64, "MIT", "x",
                 other_builds=(("1:1.0-2", "1" * 64),))
    other = tmp_path / "fakedoc_1%3a1.0-3_all.deb"
    other.write_bytes(b"!<arch>\nsomething else")
    monkeypatch.delenv(sources.ALLOW_UNPINNED, raising=False)
    with pytest.raises(PlmError, match="sha256 mismatch.*none of the known builds") as info:
        sources.verify(doc, other)
    assert "\n" not in str(info.value) and "PLMKIT_ALLOW_UNPINNED=1" in str(info.value)
    monkeypatch.setenv(sources.ALLOW_UNPINNED, "1")
    assert sources.verify(doc, other) == hashlib.sha256(other.read_bytes()).hexdigest()


def test_the_archives_current_build_is_taken_only_with_the_opt_out(monkeypatch, tmp_path):
    doc = Source("fakedoc", "debian", "fakedoc", "1:1.0-1", "0" * 64, "MIT", "x")
    calls = _fake_apt(monkeypatch, lambda command, number: "E: Version was not found"
                      if "=" in command[-1] else None, "fakedoc_1%3a1.0-9_all.deb")
    (tmp_path / "dl").mkdir()
    monkeypatch.setenv(sources.ALLOW_UNPINNED, "1")
    assert sources.download(doc, tmp_path / "dl").name == "fakedoc_1%3a1.0-9_all.deb"
    assert calls[-1][2:] == ["-q", "fakedoc"]


