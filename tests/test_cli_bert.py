"""The first `plm` commands end to end: info, embed, attention, pretrain, fill-mask, bad input."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from plmkit.cli import main

CORPUS = """The river flows past the old mill every spring.
Farmers bring their grain to the mill in autumn.
The miller grinds the grain into fine flour.

Birds build their nests in the tall oak tree.
The oak tree stands at the edge of the field.
Children climb the oak tree in the summer.
Its branches give shade to the sheep below.

The library opens at nine in the morning.
Students read books and write essays there.
The librarian helps them find old maps.

A small boat sails across the quiet lake.
The fisherman casts his net at dawn.
He sells the fish at the market in town.
"""


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A tiny BERT pre-trained for a few steps by `plm pretrain`, on MiniLM's vocabulary."""
    folder = tmp_path_factory.mktemp("pretrain")
    corpus = folder / "corpus.txt"
    corpus.write_text(CORPUS * 3)
    output = folder / "run"
    code = main(["pretrain", "--corpus", str(corpus), "--model-size", "tiny", "--max-steps", "6",
                 "--batch-size", "8", "--max-seq-length", "32", "--eval-every", "3",
                 "--save-every", "3", "--dupe-factor", "2", "--output", str(output),
                 "--no-progress"])
    assert code == 0
    return output, corpus


def test_info_reports_minilm(minilm_dir, capsys):
    assert main(["info", str(minilm_dir)]) == 0
    out = capsys.readouterr().out
    assert "22.7M" in out and "num_hidden_layers=6" in out and "hidden_size=384" in out


def test_embed_ranks_paraphrases_above_unrelated(minilm_dir, tmp_path, capsys):
    output = tmp_path / "vectors.jsonl"
    code = main(["embed", "--model", str(minilm_dir), "--output", str(output),
                 "A man is playing a guitar.", "Someone plays an instrument.",
                 "The stock market fell today."])
    assert code == 0
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == 3 and len(rows[0]["embedding"]) == 384
    vectors = [r["embedding"] for r in rows]
    dot = lambda a, b: sum(x * y for x, y in zip(a, b))  # noqa: E731 - normalised vectors
    assert dot(vectors[0], vectors[1]) > dot(vectors[0], vectors[2]) + 0.2
    assert "cosine similarity" in capsys.readouterr().out


def test_attention_png_and_bad_layer(minilm_dir, tmp_path, capsys):
    png = tmp_path / "att.png"
    assert main(["attention", str(minilm_dir), "The cat sat on the mat.", "--layer", "1",
                 "-o", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = tmp_path / "bad.png"
    assert main(["attention", str(minilm_dir), "text", "--layer", "9", "-o", str(bad)]) == 2
    assert "layer 9 out of range" in capsys.readouterr().err
    assert not bad.exists()


def test_pretrain_writes_a_checkpoint_hugging_face_loads(pretrained):
    transformers = pytest.importorskip("transformers")
    output, _ = pretrained
    for name in ("config.json", "model.safetensors", "vocab.txt", "metrics.jsonl", "curves.png"):
        assert (output / name).exists(), name
    model = transformers.BertForPreTraining.from_pretrained(output)
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 128
    records = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    assert any("eval_mlm_accuracy" in r and "eval_nsp_accuracy" in r for r in records)


def test_fill_mask_prints_top_k(pretrained, capsys):
    output, _ = pretrained
    assert main(["fill-mask", str(output), "the [MASK] grinds the grain .", "-k", "3",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    predictions = result["masks"][0]
    assert len(predictions) == 3
    scores = [p["score"] for p in predictions]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0 + 1e-6
    assert main(["fill-mask", str(output), "no mask here"]) == 2
    assert "no [MASK]" in capsys.readouterr().err


def test_pretrain_refuses_to_overwrite_and_to_resume_with_another_recipe(pretrained, capsys):
    output, corpus = pretrained
    base = ["pretrain", "--corpus", str(corpus), "--model-size", "tiny", "--batch-size", "8",
            "--max-seq-length", "32", "--dupe-factor", "2", "--output", str(output),
            "--no-progress"]
    assert main(base + ["--max-steps", "8"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(base + ["--max-steps", "8", "--resume", "--lr", "0.5"]) == 2
    assert "learning_rate" in capsys.readouterr().err
    assert main(base[:4] + ["mini"] + base[5:] + ["--max-steps", "8", "--resume"]) == 2
    assert "hidden_size" in capsys.readouterr().err


def test_pretrain_bad_inputs(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    assert main(["pretrain", "--corpus", str(empty), "--output", str(tmp_path / "o"),
                 "--no-progress"]) == 2
    assert "empty.txt" in capsys.readouterr().err
    config = tmp_path / "c.toml"
    config.write_text("[model]\nhiden_size = 3\n")
    assert main(["pretrain", "--config", str(config), "--output", str(tmp_path / "o")]) == 2
    assert "hiden_size" in capsys.readouterr().err
    assert main(["pretrain", "--corpus", str(tmp_path / "missing"),
                 "--output", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").glob("checkpoint-*"))


def test_pretrain_seed_reproduces_the_weights_bit_for_bit(tmp_path):
    """--seed fixes everything random, the initial weights included: two runs with one seed
    write identical weights, another seed other ones (issue 16, class 5)."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS * 2)

    def weights(seed: int, name: str) -> dict:
        output = tmp_path / name
        assert main(["pretrain", "--corpus", str(corpus), "--model-size", "tiny", "--hidden",
                     "64", "--heads", "2", "--intermediate", "128", "--max-steps", "3",
                     "--batch-size", "4", "--max-seq-length", "32", "--dupe-factor", "1",
                     "--eval-every", "0", "--save-every", "0", "--seed", str(seed),
                     "--output", str(output), "--no-progress"]) == 0
        return load_file(str(output / "model.safetensors"))

    first, again, other = weights(7, "a"), weights(7, "b"), weights(8, "c")
    assert first.keys() == again.keys() == other.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)
