"""Masked LM alone on packed sequences (RoBERTa's FULL-SENTENCES): full rows of whole sentences,
[SEP] at document boundaries, every token kept, no NSP."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from plmkit.data.pretraining import TokenizedCorpus, iter_packed_instances
from plmkit.errors import PlmError

CLS, SEP = 101, 102


def _corpus(documents):
    return TokenizedCorpus.from_documents(documents)


def _packed(documents, max_seq_length=12, dupe_factor=1, seed=0):
    return list(iter_packed_instances(_corpus(documents), max_seq_length=max_seq_length,
                                      dupe_factor=dupe_factor, rng=random.Random(seed),
                                      cls_token_id=CLS, sep_token_id=SEP))


def _content(instance):
    ids = instance.input_ids.tolist()
    assert ids[0] == CLS and ids[-1] == SEP
    return ids[1:-1]


def test_sequences_are_full_of_whole_sentences_and_keep_every_token():
    rng = random.Random(1)
    documents = [[[rng.randrange(1000, 2000) for _ in range(rng.randint(1, 6))]
                  for _ in range(rng.randint(1, 5))] for _ in range(30)]
    instances = _packed(documents, max_seq_length=12)
    budget = 10
    for instance in instances:
        assert len(instance.input_ids) <= 12 and not instance.is_random_next
        assert instance.token_type_ids.tolist() == [0] * len(instance.input_ids)
    # Every token of the corpus appears once per pass, in some order of documents.
    seen = [t for inst in instances for t in _content(inst) if t != SEP]
    assert sorted(seen) == sorted(t for d in documents for s in d for t in s)
    # A sentence is never split when it fits a fresh sequence (sentences are ≤ 6 tokens here).
    sentences = {tuple(s) for d in documents for s in d}
    for inst in instances:
        content = _content(inst)
        assert content[0] != SEP
    # All but the last sequence are nearly full: what is left is less than the next sentence.
    fill = [len(_content(i)) for i in instances[:-1]]
    assert min(fill) >= budget - 6 + 1 and np.mean(fill) > 0.75 * budget
    assert sentences  # the corpus was not empty


def test_document_boundaries_are_separators_inside_a_sequence():
    instances = _packed([[[1, 2, 3]], [[4, 5]]], max_seq_length=12)
    assert len(instances) == 1
    content = _content(instances[0])
    assert sorted(content) == [1, 2, 3, 4, 5, SEP]
    assert content.index(SEP) in (2, 3)  # between the two documents, whichever came first


def test_a_sentence_longer_than_a_sequence_is_cut_into_pieces():
    long = list(range(1000, 1025))
    instances = _packed([[long]], max_seq_length=12)
    assert [_content(i) for i in instances] == [long[0:10], long[10:20], long[20:25]]


def test_each_pass_shuffles_documents_and_dupe_factor_repeats_the_corpus():
    documents = [[[i * 10 + j for j in range(3)]] for i in range(1, 9)]
    one = _packed(documents, dupe_factor=1)
    two = _packed(documents, dupe_factor=2)
    tokens = lambda xs: sorted(t for x in xs for t in _content(x) if t != SEP)  # noqa: E731
    assert tokens(two) == sorted(tokens(one) * 2)
    assert [_content(i) for i in _packed(documents, seed=0)] != \
        [_content(i) for i in _packed(documents, seed=5)]


def test_word_starts_mark_every_piece_start():
    corpus = TokenizedCorpus.from_documents([[[1, 2, 3], [4, 5]]],
                                            word_starts=[[[True, False, True], [True, False]]])
    (instance,) = iter_packed_instances(corpus, max_seq_length=12, dupe_factor=1,
                                        rng=random.Random(0), cls_token_id=CLS, sep_token_id=SEP)
    assert instance.word_starts.tolist() == [True, True, False, True, True, False, True]


def test_prepare_pretraining_writes_a_packed_manifest(tmp_path):
    from plmkit.data.shards import Manifest, PretrainingDataset, prepare_pretraining
    from plmkit.tokenization import WordPieceTokenizer

    words = "the cat sat on a mat dog ran far away".split()
    tokenizer = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"the cat sat on a mat.\nthe dog ran far away.\n\n" for _ in range(20)))
    manifest = prepare_pretraining(corpus, tokenizer, tmp_path / "shards", max_seq_length=16,
                                   dupe_factor=1, progress=False, objective="mlm")
    assert manifest.objective == "mlm" and manifest.num_not_next == 0
    assert Manifest.load(tmp_path / "shards").objective == "mlm"
    dataset = PretrainingDataset(tmp_path / "shards", tokenizer)
    lengths = [len(dataset[i]["input_ids"]) for i in range(len(dataset))]
    # Full sequences: 7 + 6 tokens of one document, the boundary, then the next sentence (7)
    # would not fit; the trailing boundary is dropped, so 15 of 16 positions hold text.
    assert min(lengths[:-1]) == 15 and max(lengths) <= 16
    assert all("next_sentence_label" not in dataset[i] for i in range(len(dataset)))  # no NSP
    with pytest.raises(PlmError, match="objective"):
        prepare_pretraining(corpus, tokenizer, tmp_path / "other", objective="nsp_only",
                            progress=False)


def test_plm_pretrain_masked_lm_alone_on_the_clock(tmp_path, capsys):
    """--objective mlm --schedule-clock time: packed rows, no NSP loss, the rate at its floor
    when the budget ends; a mask rate of 1 and a clock without a budget are one line."""
    import json

    from plmkit.cli import main

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"The cat number {i} sat on the mat.\nIt was warm there.\n\n"
                              for i in range(60)))
    output = tmp_path / "run"
    base = ["pretrain", "--corpus", str(corpus), "--model-size", "tiny", "--batch-size", "4",
            "--max-seq-length", "32", "--dupe-factor", "1", "--no-progress", "--objective", "mlm"]
    assert main([*base, "--output", str(output), "--schedule-clock", "time", "--max-minutes",
                 "0.03", "--schedule", "triangular", "--min-lr-ratio", "0.1",
                 "--precision", "fp32"]) == 0
    records = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    trained = [r for r in records if "loss" in r and "lr" in r]
    assert trained and all("nsp_loss" not in r for r in records)
    assert trained[-1]["lr"] == pytest.approx(1e-5, rel=0.05)  # 0.1 × the 1e-4 default
    manifest = json.loads((output / "data" / "train" / "manifest.json").read_text())
    assert manifest["objective"] == "mlm" and manifest["num_not_next"] == 0
    assert "the schedule ended at its floor" in capsys.readouterr().out

    assert main([*base, "--output", str(tmp_path / "a"), "--masked-lm-prob", "1"]) == 2
    assert "--masked-lm-prob" in capsys.readouterr().err
    assert main([*base, "--output", str(tmp_path / "b"), "--schedule-clock", "time"]) == 2
    assert "max_minutes" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_plm_pretrain_init_continues_from_a_checkpoint(tmp_path, capsys):
    """--init: the second run starts from the first one's weights (one step at a vanishing rate
    leaves them where they were), with its architecture and vocabulary; flags that would set
    another architecture or vocabulary, a longer sequence than its positions, or a folder that
    is no checkpoint are one line, exit 2, nothing written."""
    import torch
    from safetensors.torch import load_file

    from plmkit.cli import main

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"The cat number {i} sat on the mat.\nIt was warm there.\n\n"
                              for i in range(40)))
    reviews = tmp_path / "reviews.txt"
    reviews.write_text("".join(f"The mat was warm and the cat number {i} sat.\n\n"
                               for i in range(40)))
    first = tmp_path / "first"
    base = ["--batch-size", "4", "--max-seq-length", "32", "--dupe-factor", "1", "--no-progress",
            "--objective", "mlm", "--precision", "fp32"]
    assert main(["pretrain", "--corpus", str(corpus), "--model-size", "tiny",
                 "--train-tokenizer", "60", "--max-steps", "3", *base,
                 "--output", str(first)]) == 0
    second = tmp_path / "second"
    assert main(["pretrain", "--corpus", str(reviews), "--init", str(first), "--max-steps", "1",
                 "--lr", "1e-12", "--warmup-steps", "0", *base, "--output", str(second)]) == 0
    assert f"weights from {first}" in capsys.readouterr().out
    assert (second / "vocab.txt").read_text() == (first / "vocab.txt").read_text()
    configs = sorted(second.rglob("training_config.json"))
    assert configs, "the run records how it was made"
    assert json.loads(configs[-1].read_text())["init_from"] == str(first.resolve())
    before, after = load_file(str(first / "model.safetensors")), load_file(
        str(second / "model.safetensors"))
    assert before.keys() == after.keys()
    assert all(torch.allclose(before[k], after[k], atol=1e-6) for k in before)

    bad = {"--model-size": ["--model-size", "mini"], "--train-tokenizer":
           ["--train-tokenizer", "50"], "max_seq_length": ["--max-seq-length", "4096"]}
    for name, extra in bad.items():
        output = tmp_path / f"bad{len(name)}"
        argv = ["pretrain", "--corpus", str(reviews), "--init", str(first), "--max-steps", "1",
                *base, *extra, "--output", str(output)]
        assert main(argv) == 2, name
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and name in err, err
        assert not output.exists()
    assert main(["pretrain", "--corpus", str(reviews), "--init", str(corpus), *base,
                 "--output", str(tmp_path / "bad")]) == 2
    assert "init" in capsys.readouterr().err and not (tmp_path / "bad").exists()
