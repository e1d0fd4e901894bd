"""BERT's pre-training data: NSP instances, MLM masking, shards and the dataset reading them."""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from plmkit.data.pretraining import (
    IGNORE_INDEX,
    IS_NEXT,
    NOT_NEXT,
    create_instances,
    mask_tokens,
    num_to_predict,
    truncate_seq_pair,
    word_starts_from_pieces,
)
from plmkit.errors import PlmError

CLS, SEP, PAD, MASK, UNK = 2, 3, 0, 4, 1
SPECIALS = (PAD, UNK, CLS, SEP, MASK)
VOCAB_SIZE = 30000

# ----------------------------------------------------------------------------- masking


def _sequence(rng: np.random.Generator, length: int) -> np.ndarray:
    """[CLS] A [SEP] B [SEP] with random ordinary ids (>= 100)."""
    a = max(1, length // 2)
    body = rng.integers(100, VOCAB_SIZE, size=length)
    return np.concatenate([[CLS], body[:a], [SEP], body[a:], [SEP]])


def test_masking_rate_and_80_10_10_split() -> None:
    """Over many sequences: 15 % of candidates predicted; 80 % [MASK], 10 % random, 10 % kept."""
    rng = np.random.default_rng(0)
    candidates = picked = as_mask = as_random = kept = 0
    for _ in range(3000):
        ids = _sequence(rng, int(rng.integers(10, 120)))
        masked, labels = mask_tokens(ids, vocab_size=VOCAB_SIZE, mask_token_id=MASK,
                                     special_ids=SPECIALS, rng=rng, max_predictions_per_seq=1000)
        chosen = labels != IGNORE_INDEX
        candidates += int(np.isin(ids, SPECIALS, invert=True).sum())
        picked += int(chosen.sum())
        as_mask += int((masked[chosen] == MASK).sum())
        kept += int((masked[chosen] == ids[chosen]).sum())
        as_random += int(((masked[chosen] != MASK) & (masked[chosen] != ids[chosen])).sum())
        assert np.array_equal(labels[chosen], ids[chosen])
        assert np.array_equal(masked[~chosen], ids[~chosen])  # nothing else changes
    rate = picked / candidates
    assert 0.145 < rate < 0.155, rate
    # ~29k predictions: the standard error of each share is < 0.0025, bounds are > 4 sigma.
    assert abs(as_mask / picked - 0.8) < 0.012, as_mask / picked
    assert abs(as_random / picked - 0.1) < 0.012, as_random / picked
    assert abs(kept / picked - 0.1) < 0.012, kept / picked


def test_special_tokens_never_masked_nor_drawn() -> None:
    rng = np.random.default_rng(1)
    # A sequence with padding and an [UNK] inside; a tiny vocabulary so random draws hit
    # every id, specials included, if they were allowed.
    ids = np.array([CLS, 7, 8, UNK, 9, 10, SEP, 11, 12, 13, SEP, PAD, PAD])
    seen_random: set[int] = set()
    for _ in range(2000):
        masked, labels = mask_tokens(ids, vocab_size=16, mask_token_id=MASK,
                                     special_ids=SPECIALS, rng=rng, masked_lm_prob=0.5)
        special = np.isin(ids, SPECIALS)
        assert (labels[special] == IGNORE_INDEX).all()
        assert np.array_equal(masked[special], ids[special])
        replaced = (labels != IGNORE_INDEX) & (masked != MASK) & (masked != ids)
        seen_random.update(masked[replaced].tolist())
    assert seen_random and not seen_random & set(SPECIALS)
    assert seen_random <= set(range(5, 16))


def test_max_predictions_and_at_least_one() -> None:
    rng = np.random.default_rng(2)
    long = _sequence(rng, 500)
    _, labels = mask_tokens(long, vocab_size=VOCAB_SIZE, mask_token_id=MASK,
                            special_ids=SPECIALS, rng=rng, max_predictions_per_seq=20)
    assert (labels != IGNORE_INDEX).sum() == 20
    short = np.array([CLS, 50, SEP, 60, SEP])
    _, labels = mask_tokens(short, vocab_size=VOCAB_SIZE, mask_token_id=MASK,
                            special_ids=SPECIALS, rng=rng)
    assert (labels != IGNORE_INDEX).sum() == 1
    only_specials = np.array([CLS, SEP, SEP])
    masked, labels = mask_tokens(only_specials, vocab_size=VOCAB_SIZE, mask_token_id=MASK,
                                 special_ids=SPECIALS, rng=rng)
    assert (labels == IGNORE_INDEX).all() and np.array_equal(masked, only_specials)
    assert num_to_predict(100, 0.15, 20) == 15 and num_to_predict(3, 0.15, 20) == 1


def test_masking_is_a_function_of_the_rng_state() -> None:
    ids = _sequence(np.random.default_rng(3), 100)
    runs = [mask_tokens(ids, vocab_size=VOCAB_SIZE, mask_token_id=MASK, special_ids=SPECIALS,
                        rng=np.random.default_rng(seed)) for seed in (7, 7, 8)]
    assert all(np.array_equal(x, y) for x, y in zip(runs[0], runs[1]))
    assert not np.array_equal(runs[0][1], runs[2][1])


def test_whole_word_masking_masks_whole_words_only() -> None:
    rng = np.random.default_rng(4)
    # Vocabulary: ids >= 1000 are "##" continuation pieces.
    is_continuation = np.zeros(2000, dtype=bool)
    is_continuation[1000:] = True
    shortfall = 0
    for _ in range(500):
        pieces = []
        for _ in range(int(rng.integers(5, 40))):  # words of 1 to 4 pieces
            pieces += [int(rng.integers(100, 1000))] + \
                rng.integers(1000, 2000, size=int(rng.integers(0, 4))).tolist()
        cut = len(pieces) // 2
        ids = np.array([CLS, *pieces[:cut], SEP, *pieces[cut:], SEP])
        starts = word_starts_from_pieces(ids, is_continuation)
        masked, labels = mask_tokens(ids, vocab_size=2000, mask_token_id=MASK,
                                     special_ids=SPECIALS, rng=rng, whole_word_mask=True,
                                     word_starts=starts, max_predictions_per_seq=20)
        chosen = labels != IGNORE_INDEX
        budget = num_to_predict(len(pieces), 0.15, 20)
        assert 1 <= chosen.sum() <= budget  # a word that would overshoot is skipped
        shortfall += budget - int(chosen.sum())
        # Every word is all-in or all-out. A word is cut at word starts and special tokens.
        word = np.cumsum(starts | np.isin(ids, SPECIALS))
        for w in np.unique(word[chosen]):
            members = (word == w) & ~np.isin(ids, SPECIALS)
            assert chosen[members].all()
    assert shortfall < 0.05 * 500 * 20  # smaller words fill the budget almost always


def test_chinese_characters_are_words_unless_segmented() -> None:
    # Characters are never "##" pieces, so each is its own word...
    is_continuation = np.zeros(10, dtype=bool)
    ids = np.array([CLS, 5, 6, 7, 8, SEP, 9, 5, SEP])
    assert word_starts_from_pieces(ids, is_continuation).all()
    # ...but a given segmentation (今天|天气 as two 2-character words) keeps words together.
    starts = np.array([1, 1, 0, 1, 0, 1, 1, 1, 1], dtype=bool)
    rng = np.random.default_rng(5)
    for _ in range(300):
        _, labels = mask_tokens(ids, vocab_size=10, mask_token_id=MASK, special_ids=SPECIALS,
                                rng=rng, whole_word_mask=True, word_starts=starts,
                                masked_lm_prob=0.3)
        chosen = labels != IGNORE_INDEX
        assert chosen[1] == chosen[2] and chosen[3] == chosen[4]


# ----------------------------------------------------------------------------- NSP instances


def _numbered_corpus(num_documents: int, sentences: int, length: int) -> list[list[list[int]]]:
    """Token id = 1000 + document*10000 + sentence*100 + position: every token says where it is."""
    return [[[1000 + d * 10000 + s * 100 + p for p in range(length)] for s in range(sentences)]
            for d in range(num_documents)]


def _where(token: int) -> tuple[int, int]:
    return (token - 1000) // 10000, (token - 1000) % 10000 // 100


def _segments(instance) -> tuple[np.ndarray, np.ndarray]:
    ids = instance.input_ids
    a = instance.segment_a_length
    return ids[1:a + 1], ids[a + 2:-1]


def test_nsp_pairs_layout_labels_and_consecutive_next() -> None:
    documents = _numbered_corpus(60, 30, 5)
    instances = create_instances(documents, max_seq_length=64, short_seq_prob=0.1,
                                 dupe_factor=2, rng=random.Random(0), cls_token_id=CLS,
                                 sep_token_id=SEP)
    labels = [inst.next_sentence_label for inst in instances]
    share = labels.count(IS_NEXT) / len(labels)
    # 50 % of the multi-sentence chunks are IsNext; single-sentence chunks are always NotNext.
    assert 0.42 < share < 0.55, share
    for inst in instances:
        ids, a = inst.input_ids, inst.segment_a_length
        assert len(ids) <= 64
        assert ids[0] == CLS and ids[a + 1] == SEP and ids[-1] == SEP
        assert not np.isin(ids[1:a + 1], (CLS, SEP)).any()
        types = inst.token_type_ids
        assert (types[: a + 2] == 0).all() and (types[a + 2:] == 1).all()
        seg_a, seg_b = _segments(inst)
        assert len(seg_a) >= 1 and len(seg_b) >= 1
        docs_a = {_where(t)[0] for t in seg_a}
        docs_b = {_where(t)[0] for t in seg_b}
        assert len(docs_a) == 1 and len(docs_b) == 1
        if inst.next_sentence_label == IS_NEXT:
            assert docs_a == docs_b
            assert _where(seg_b[0])[1] == _where(seg_a[-1])[1] + 1  # B starts where A stops
        else:
            assert inst.next_sentence_label == NOT_NEXT
            assert docs_a != docs_b


def test_all_sentences_used_and_targets_respected() -> None:
    """Unused B sentences are put back: one pass covers (almost) every sentence of a document."""
    documents = _numbered_corpus(20, 25, 6)
    instances = create_instances(documents, max_seq_length=40, short_seq_prob=0.0,
                                 dupe_factor=1, rng=random.Random(1), cls_token_id=CLS,
                                 sep_token_id=SEP)
    covered = set()
    for inst in instances:
        seg_a, seg_b = _segments(inst)
        covered.update(_where(t) for t in seg_a)
        if inst.next_sentence_label == IS_NEXT:
            covered.update(_where(t) for t in seg_b)
    assert len(covered) == 20 * 25


def test_single_sentence_documents_and_overlong_lines() -> None:
    documents = [[list(range(100, 700))],               # one line of 600 tokens
                 [[11, 12, 13]],                         # a one-sentence document
                 [[21, 22], list(range(1000, 2000))],    # short, then far too long
                 [[31], [32], [33]]]
    instances = create_instances(documents, max_seq_length=32, dupe_factor=3,
                                 rng=random.Random(2), cls_token_id=CLS, sep_token_id=SEP)
    assert instances
    for inst in instances:
        seg_a, seg_b = _segments(inst)
        assert len(inst.input_ids) <= 32 and len(seg_a) >= 1 and len(seg_b) >= 1
        if len(seg_a) == 3 and seg_a.tolist() == [11, 12, 13]:
            assert inst.next_sentence_label == NOT_NEXT  # nothing can follow a lone sentence


def test_one_document_corpus_never_labels_a_real_next_pair_notnext() -> None:
    documents = _numbered_corpus(1, 12, 4)
    instances = create_instances(documents, max_seq_length=20, dupe_factor=20,
                                 rng=random.Random(3), cls_token_id=CLS, sep_token_id=SEP)
    assert {inst.next_sentence_label for inst in instances} == {IS_NEXT, NOT_NEXT}
    for inst in instances:
        seg_a, seg_b = _segments(inst)
        if inst.next_sentence_label == NOT_NEXT:
            assert _where(seg_b[0])[1] != _where(seg_a[-1])[1] + 1


def test_too_small_corpus_is_a_plm_error() -> None:
    with pytest.raises(PlmError, match="two"):
        create_instances([[[5, 6, 7]]], rng=random.Random(0), cls_token_id=CLS,
                         sep_token_id=SEP)
    with pytest.raises(PlmError, match="max_seq_length"):
        create_instances(_numbered_corpus(2, 2, 2), max_seq_length=4, rng=random.Random(0),
                         cls_token_id=CLS, sep_token_id=SEP)


def test_truncate_seq_pair_trims_the_longer_from_both_ends() -> None:
    rng = random.Random(4)
    fronts = backs = 0
    for _ in range(200):
        (a0, a1), (b0, b1) = truncate_seq_pair(50, 10, 30, rng)
        assert (a1 - a0) + (b1 - b0) == 30 and (b0, b1) == (0, 10)
        fronts += a0
        backs += 50 - a1
    assert fronts > 0 and backs > 0
    assert truncate_seq_pair(3, 4, 10, rng) == ((0, 3), (0, 4))


def test_instances_are_deterministic_given_the_seed() -> None:
    documents = _numbered_corpus(10, 10, 7)

    def run(seed: int) -> list[tuple]:
        return [(i.input_ids.tolist(), i.segment_a_length, i.is_random_next)
                for i in create_instances(documents, max_seq_length=48, dupe_factor=2,
                                          rng=random.Random(seed), cls_token_id=CLS,
                                          sep_token_id=SEP)]
    assert run(5) == run(5)
    assert run(5) != run(6)


# ----------------------------------------------------------------------------- shards

WORDS = ("the a cat dog bird tree house car red blue green big small sat ran sang on in under "
         "it was happy sad walk jump play run today then").split()
TINY_VOCAB = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "!", "?"] + WORDS
              + ["##s", "##ing", "##ed", "今", "天", "气", "很", "好"])


@pytest.fixture()
def tokenizer(tmp_path: Path):
    from plmkit.tokenization import WordPieceTokenizer

    vocab = tmp_path / "vocab" / "vocab.txt"
    vocab.parent.mkdir()
    vocab.write_text("\n".join(TINY_VOCAB) + "\n", encoding="utf-8")
    return WordPieceTokenizer.from_pretrained(vocab)


def _write_corpus(path: Path, documents: int = 40, seed: int = 0) -> Path:
    """A bert-format corpus of random sentences; some words take ##s / ##ing / ##ed."""
    rng = random.Random(seed)
    lines = []
    for d in range(documents):
        for _ in range(rng.randint(1, 12)):
            words = [rng.choice(WORDS) + rng.choice(["", "", "", "s", "ing", "ed"])
                     for _ in range(rng.randint(2, 14))]
            lines.append(" ".join(words) + rng.choice([".", "!", "?"]))
        if d % 7 == 3:
            lines.append("今天 天气 很 好。")
        lines.append("")
    lines.append(" ".join(rng.choice(WORDS) for _ in range(300)) + ".")  # an over-long line
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _prepare(corpus: Path, tokenizer, out: Path, **overrides):
    from plmkit.data.shards import prepare_pretraining

    options = dict(max_seq_length=32, dupe_factor=2, seed=7, shard_size=50, progress=False,
                   format="bert")
    options.update(overrides)
    return prepare_pretraining([corpus], tokenizer, out, **options)


def test_shard_round_trip_matches_create_instances(tmp_path: Path, tokenizer) -> None:
    from plmkit.data.corpus import read_documents
    from plmkit.data.shards import PretrainingDataset, iter_rows, verify_shards

    corpus = _write_corpus(tmp_path / "corpus.txt")
    manifest = _prepare(corpus, tokenizer, tmp_path / "shards")
    assert len(manifest.shards) > 1 and all(s.rows <= 50 for s in manifest.shards)
    assert manifest.num_instances == sum(s.rows for s in manifest.shards)
    assert manifest.num_is_next + manifest.num_not_next == manifest.num_instances
    verify_shards(tmp_path / "shards")
    saved = json.loads((tmp_path / "shards" / "manifest.json").read_text())
    assert saved["num_documents"] == manifest.num_documents == 41
    assert saved["max_seq_length"] == 32 and saved["seed"] == 7

    # The same corpus tokenised and paired in memory gives exactly the stored rows.
    documents = [[np.asarray(ids) for ids in tokenizer.encode_ids(doc)]
                 for doc in read_documents(corpus, format="bert")]
    documents = [[s for s in doc if len(s)] for doc in documents]
    expected = create_instances([d for d in documents if d], max_seq_length=32, dupe_factor=2,
                                rng=random.Random(7), cls_token_id=tokenizer.cls_token_id,
                                sep_token_id=tokenizer.sep_token_id)
    rows = list(iter_rows(tmp_path / "shards"))
    assert len(rows) == len(expected) == manifest.num_instances
    for row, inst in zip(rows, expected):
        length = int(row["length"])
        assert row["input_ids"][:length].tolist() == inst.input_ids.tolist()
        assert (row["input_ids"][length:] == tokenizer.pad_token_id).all()
        assert int(row["segment_a_length"]) == inst.segment_a_length
        assert int(row["next_sentence_label"]) == inst.next_sentence_label

    dataset = PretrainingDataset(tmp_path / "shards", tokenizer)
    assert len(dataset) == manifest.num_instances
    copy = pickle.loads(pickle.dumps(dataset))  # e.g. a worker process: reopens the memmaps
    assert len(pickle.dumps(dataset)) < 10_000
    assert all(np.array_equal(copy[5][k], dataset[5][k]) for k in ("input_ids", "labels"))
    assert dataset.lengths.tolist() == [len(i.input_ids) for i in expected]
    for index in (0, 17, len(dataset) - 1):
        item, inst = dataset[index], expected[index]
        chosen = item["labels"] != IGNORE_INDEX
        restored = np.where(chosen, item["labels"], item["input_ids"])
        unmasked_same = item["input_ids"][~chosen] == inst.input_ids[~chosen]
        assert restored.tolist() == inst.input_ids.tolist() and unmasked_same.all()
        assert item["token_type_ids"].tolist() == inst.token_type_ids.tolist()
        assert item["next_sentence_label"] == inst.next_sentence_label


def test_prepare_is_deterministic(tmp_path: Path, tokenizer) -> None:
    corpus = _write_corpus(tmp_path / "corpus.txt")
    first = _prepare(corpus, tokenizer, tmp_path / "a")
    second = _prepare(corpus, tokenizer, tmp_path / "b")
    other = _prepare(corpus, tokenizer, tmp_path / "c", seed=8)
    assert [s.sha256 for s in first.shards] == [s.sha256 for s in second.shards]
    for shard in first.shards:
        assert (tmp_path / "a" / shard.file).read_bytes() == \
            (tmp_path / "b" / shard.file).read_bytes()
    assert [s.sha256 for s in first.shards] != [s.sha256 for s in other.shards]


def test_static_and_dynamic_masking(tmp_path: Path, tokenizer) -> None:
    from plmkit.data.shards import PretrainingDataset

    corpus = _write_corpus(tmp_path / "corpus.txt")
    _prepare(corpus, tokenizer, tmp_path / "shards")
    static = PretrainingDataset(tmp_path / "shards", tokenizer, seed=1)
    again = PretrainingDataset(tmp_path / "shards", tokenizer, seed=1)
    dynamic = PretrainingDataset(tmp_path / "shards", tokenizer, seed=1, dynamic_masking=True)
    indices = range(0, len(static), 3)

    def masks(dataset) -> list[list[int]]:
        return [dataset[i]["labels"].tolist() + dataset[i]["input_ids"].tolist()
                for i in indices]

    epoch0 = masks(static)
    assert masks(again) == epoch0          # same seed, same index -> same mask
    static.set_epoch(3)
    assert masks(static) == epoch0         # static: same mask in every epoch
    dynamic_epoch0 = masks(dynamic)
    assert masks(dynamic) == dynamic_epoch0
    dynamic.set_epoch(1)
    changed = sum(a != b for a, b in zip(masks(dynamic), dynamic_epoch0))
    assert changed > 0.8 * len(dynamic_epoch0)  # fresh masks
    other_seed = PretrainingDataset(tmp_path / "shards", tokenizer, seed=2)
    assert masks(other_seed) != epoch0
    # Every instance has a stream of its own (identical rows still get different masks).
    draws = {static.rng(i).integers(1 << 62) for i in range(len(static))}
    assert len(draws) == len(static)


def test_whole_word_masking_from_shards(tmp_path: Path, tokenizer) -> None:
    from plmkit.data.shards import PretrainingDataset

    corpus = _write_corpus(tmp_path / "corpus.txt")
    _prepare(corpus, tokenizer, tmp_path / "shards")
    dataset = PretrainingDataset(tmp_path / "shards", tokenizer, whole_word_mask=True,
                                 masked_lm_prob=0.3)
    continuation = {tokenizer.vocab[p] for p in ("##s", "##ing", "##ed")}
    specials = {tokenizer.cls_token_id, tokenizer.sep_token_id}
    pieces_masked = 0
    for index in range(len(dataset)):
        item = dataset[index]
        labels = item["labels"]
        original = np.where(labels != IGNORE_INDEX, labels, item["input_ids"])
        for position in range(1, len(original)):
            # A "##" piece goes with its head (unless truncation cut the head off the segment).
            if int(original[position]) in continuation and \
                    int(original[position - 1]) not in specials:
                assert (labels[position] != IGNORE_INDEX) == \
                    (labels[position - 1] != IGNORE_INDEX)
                pieces_masked += labels[position] != IGNORE_INDEX
    assert pieces_masked > 0


def test_word_boundaries_from_wordpiece_or_whitespace(tmp_path: Path, tokenizer) -> None:
    """"##" pieces continue a word; with "whitespace", a pre-segmented 今天 is one word."""
    from plmkit.data.shards import iter_rows

    corpus = tmp_path / "seg.txt"
    corpus.write_text("今天 天气 很 好。\nthe cats jumped.\n\nthe dog ran.\nit sang.\n",
                      encoding="utf-8")
    starts_of: dict[str, dict[tuple[int, ...], list[bool]]] = {}
    for mode in ("wordpiece", "whitespace"):
        _prepare(corpus, tokenizer, tmp_path / mode, word_boundaries=mode, dupe_factor=3,
                 short_seq_prob=0.0)
        found = starts_of.setdefault(mode, {})
        for row in iter_rows(tmp_path / mode):
            length = int(row["length"])
            ids = tuple(int(i) for i in row["input_ids"][:length])
            found[ids] = np.unpackbits(row["word_starts"])[:length].astype(bool).tolist()
    vocab = tokenizer.vocab
    chinese = [vocab[c] for c in "今天天气很好"]
    cats = [vocab["cat"], vocab["##s"], vocab["jump"], vocab["##ed"]]
    for mode, expected_chinese in (("wordpiece", [True] * 6),
                                   ("whitespace", [True, False, True, False, True, True])):
        checked = 0
        for ids, starts in starts_of[mode].items():
            for offset in range(len(ids) - 5):
                if list(ids[offset: offset + 6]) == chinese:
                    assert starts[offset: offset + 6] == expected_chinese
                    checked += 1
                if list(ids[offset: offset + 4]) == cats:
                    assert starts[offset: offset + 4] == [True, False, True, False]
                    checked += 1
        assert checked, mode


def test_collate_and_batches(tmp_path: Path, tokenizer) -> None:
    from plmkit.data.collate import Batches
    from plmkit.data.shards import PretrainingDataset, collate_pretraining

    corpus = _write_corpus(tmp_path / "corpus.txt")
    _prepare(corpus, tokenizer, tmp_path / "shards", max_seq_length=48)
    dataset = PretrainingDataset(tmp_path / "shards", tokenizer)
    examples = [dataset[i] for i in range(6)]
    batch = collate_pretraining(examples, tokenizer.pad_token_id)
    longest = max(len(e["input_ids"]) for e in examples)
    assert batch["input_ids"].shape == (6, longest) and batch["input_ids"].dtype == torch.long
    for row, example in enumerate(examples):
        n = len(example["input_ids"])
        assert batch["attention_mask"][row, :n].all() and not batch["attention_mask"][row, n:].any()
        assert (batch["input_ids"][row, n:] == tokenizer.pad_token_id).all()
        assert (batch["labels"][row, n:] == IGNORE_INDEX).all()
        assert (batch["token_type_ids"][row, n:] == 0).all()
    assert batch["next_sentence_label"].tolist() == [e["next_sentence_label"] for e in examples]

    batches = Batches(dataset, 8, dataset.collate, seed=0, lengths=dataset.lengths)
    seen = sum(b["input_ids"].shape[0] for b in batches.batches(epoch=0))
    assert seen == len(dataset)


# ----------------------------------------------------------------------------- bad input


def test_tokenizer_mismatch_is_refused(tmp_path: Path, tokenizer) -> None:
    from plmkit.data.shards import PretrainingDataset
    from plmkit.tokenization import WordPieceTokenizer

    corpus = _write_corpus(tmp_path / "corpus.txt")
    _prepare(corpus, tokenizer, tmp_path / "shards")
    other_vocab = tmp_path / "other" / "vocab.txt"
    other_vocab.parent.mkdir()
    other_vocab.write_text("\n".join(TINY_VOCAB + ["extra"]) + "\n", encoding="utf-8")
    with pytest.raises(PlmError) as info:
        PretrainingDataset(tmp_path / "shards", WordPieceTokenizer.from_pretrained(other_vocab))
    assert str(tmp_path / "shards" / "manifest.json") in str(info.value)
    assert "tokenizer" in str(info.value)


def test_empty_and_undecodable_corpora(tmp_path: Path, tokenizer) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n\n", encoding="utf-8")
    with pytest.raises(PlmError, match="empty corpus.*empty.txt"):
        _prepare(empty, tokenizer, tmp_path / "out")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"the cat sat.\nthe dog ran.\n\nit was \xfe happy.\n")
    with pytest.raises(PlmError) as info:
        _prepare(bad, tokenizer, tmp_path / "out")
    assert f"{bad}:4" in str(info.value)
    assert not (tmp_path / "out").exists()
    manifest = _prepare(bad, tokenizer, tmp_path / "out", errors="replace")
    assert manifest.num_documents == 2


def test_failure_mid_prepare_leaves_nothing_behind(tmp_path: Path, tokenizer,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from plmkit.data import shards

    corpus = _write_corpus(tmp_path / "corpus.txt")
    out = tmp_path / "out" / "shards"
    first = _prepare(corpus, tokenizer, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    real_flush = shards._ShardWriter.flush
    calls = []

    def failing_flush(self) -> None:
        calls.append(1)
        if len(calls) == 2:  # the first shard is on disk, the second one fails
            raise OSError("disk full")
        real_flush(self)

    monkeypatch.setattr(shards._ShardWriter, "flush", failing_flush)
    with pytest.raises(OSError, match="disk full"):
        _prepare(corpus, tokenizer, out, seed=99)
    # The earlier preparation is untouched and no temporary folder is left beside it.
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in out.parent.iterdir()] == ["shards"]
    calls.clear()
    with pytest.raises(OSError):
        _prepare(corpus, tokenizer, tmp_path / "fresh", seed=99)
    assert not (tmp_path / "fresh").exists()
    assert first.num_instances > 0


def test_refuses_to_replace_a_foreign_folder(tmp_path: Path, tokenizer) -> None:
    corpus = _write_corpus(tmp_path / "corpus.txt")
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("do not delete", encoding="utf-8")
    with pytest.raises(PlmError, match="refusing"):
        _prepare(corpus, tokenizer, precious)
    assert (precious / "thesis.tex").read_text(encoding="utf-8") == "do not delete"
