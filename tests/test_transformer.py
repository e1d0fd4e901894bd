"""The encoder–decoder Transformer: model, decoding searches, parallel data, task, CLI, pipeline."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from plmkit.cli import main as cli_main
from plmkit.data.parallel import (build_dataset, collate_translation, encode_parallel,
                                  read_parallel, special_tokens, translation_batches)
from plmkit.errors import PlmError
from plmkit.evaluation.decoding import (EncoderDecoderStepper, LengthPenalty, beam_search,
                                        corpus_bleu, greedy_search, translate_batch)
from plmkit.models.transformer import (TransformerModel, label_smoothed_loss,
                                       sinusoidal_positions, transformer_config)
from plmkit.training.seq2seq import TranslationTask

VOCAB = 20


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def tiny_model(**overrides) -> TransformerModel:
    torch.manual_seed(0)
    values = dict(vocab_size=VOCAB, dropout=0.0, max_position_embeddings=32)
    values.update(overrides)
    return TransformerModel(transformer_config("tiny", **values)).eval()


def source_batch() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    input_ids = torch.randint(4, VOCAB, (3, 7))
    attention_mask = torch.ones_like(input_ids)
    input_ids[1, 5:], attention_mask[1, 5:] = 0, 0
    input_ids[2, 3:], attention_mask[2, 3:] = 0, 0
    return input_ids, attention_mask


# ------------------------------------------------------------------------------------ model
def test_named_sizes_include_the_papers_base():
    base = transformer_config("base")
    assert (base.d_model, base.num_heads, base.d_ff, base.num_encoder_layers,
            base.num_decoder_layers, base.dropout) == (512, 8, 2048, 6, 6, 0.1)
    with pytest.raises(PlmError, match="unknown model size"):
        transformer_config("huge")
    with pytest.raises(PlmError, match="multiple"):
        transformer_config("tiny", num_heads=3)


def test_sinusoidal_encoding_is_the_papers_formula():
    table = sinusoidal_positions(50, 16)
    for pos, i in [(0, 0), (3, 2), (49, 7)]:
        angle = pos / 10000 ** (2 * i / 16)
        assert table[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-5)
        assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-5)


def test_embeddings_are_scaled_by_sqrt_d_model():
    model = tiny_model()
    ids = torch.tensor([[5, 6, 7]])
    out = model.source_positions(ids, model.embeddings)
    expected = model.embeddings(ids) * 8.0 + sinusoidal_positions(3, 64)
    assert torch.allclose(out, expected, atol=1e-6)


@pytest.mark.parametrize("options", [{}, {"norm_first": True}, {"positional_encoding": "learned"},
                                     {"share_embeddings": False, "tie_output": False}])
def test_decoder_is_causal_and_source_padding_is_ignored(options):
    model = tiny_model(**options)
    input_ids, attention_mask = source_batch()
    targets = torch.randint(4, VOCAB, (3, 6))
    logits = model(input_ids, attention_mask, targets).logits
    changed = targets.clone()
    changed[:, 4:] = 4  # a different future must not change earlier predictions
    assert torch.allclose(model(input_ids, attention_mask, changed).logits[:, :4], logits[:, :4],
                          atol=1e-5)
    # Extra padding after a source changes nothing either.
    padded_ids = torch.cat([input_ids, torch.full((3, 3), 9)], dim=1)
    padded_mask = torch.cat([attention_mask, torch.zeros(3, 3, dtype=torch.long)], dim=1)
    assert torch.allclose(model(padded_ids, padded_mask, targets).logits, logits, atol=1e-5)


def test_sharing_and_tying_options():
    shared = tiny_model()
    assert shared.lm_head.weight is shared.embeddings.weight
    assert shared.decoder_embeddings is shared.embeddings
    separate = tiny_model(share_embeddings=False, tie_output=False)
    assert separate.decoder_embeddings is not separate.embeddings
    assert separate.lm_head.weight is not separate.decoder_embeddings.weight
    assert separate.num_parameters() - shared.num_parameters() == 2 * VOCAB * 64


def test_label_smoothed_loss_matches_torch():
    torch.manual_seed(0)
    logits, targets = torch.randn(10, VOCAB), torch.randint(0, VOCAB, (10,))
    loss, nll = label_smoothed_loss(logits, targets, 0.1)
    assert loss.item() == pytest.approx(
        F.cross_entropy(logits, targets, label_smoothing=0.1).item(), rel=1e-5)
    assert nll.item() == pytest.approx(F.cross_entropy(logits, targets).item(), rel=1e-5)


def test_forward_loss_only_on_labelled_positions_and_shift_right():
    model = tiny_model()
    input_ids, attention_mask = source_batch()
    labels = torch.tensor([[5, 6, 3, -100], [7, 3, -100, -100], [8, 9, 10, 3]])
    out = model(input_ids, attention_mask, labels=labels, label_smoothing=0.1)
    assert out.logits.shape == (9, VOCAB)  # one row per labelled position
    shifted = model.shift_right(labels)
    assert shifted.tolist()[1] == [2, 7, 3, 0]
    full = model(input_ids, attention_mask, shifted).logits
    keep = labels != -100
    assert torch.allclose(full[keep], out.logits, atol=1e-5)
    expected, _ = label_smoothed_loss(full[keep], labels[keep], 0.1)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_save_and_load_round_trip(tmp_path):
    model = tiny_model(share_embeddings=False)
    model.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["model_type"] == "plmkit_transformer" and config["share_embeddings"] is False
    from safetensors.torch import load_file

    stored = load_file(str(tmp_path / "m" / "model.safetensors"))
    assert "lm_head.weight" not in stored  # tied to the target embeddings, stored once
    assert not any("positional_encoding" in key for key in stored)  # a formula, not a weight
    loaded = TransformerModel.from_pretrained(tmp_path / "m")
    input_ids, attention_mask = source_batch()
    targets = torch.randint(4, VOCAB, (3, 5))
    assert torch.equal(loaded(input_ids, attention_mask, targets).logits,
                       model(input_ids, attention_mask, targets).logits)


# ------------------------------------------------------------------------------------ decoding
@pytest.mark.parametrize("norm_first", [False, True])
def test_cached_decoding_equals_uncached(norm_first):
    model = tiny_model(norm_first=norm_first)
    input_ids, attention_mask = source_batch()
    with torch.no_grad():
        cached = EncoderDecoderStepper(model, input_ids, attention_mask, use_cache=True)
        plain = EncoderDecoderStepper(model, input_ids, attention_mask, use_cache=False)
        tokens = torch.full((3, 1), model.config.bos_token_id)
        for _ in range(6):
            a, b = cached.step(tokens), plain.step(tokens)
            assert torch.allclose(a, b, atol=1e-5)
            tokens = torch.cat([tokens, a.argmax(-1, keepdim=True)], dim=1)
        # Several new tokens at once on top of a cache (the causal mask offset by the past).
        chunked = EncoderDecoderStepper(model, input_ids, attention_mask, use_cache=True)
        chunked.step(tokens[:, :3])
        assert torch.allclose(chunked.step(tokens[:, :6]), plain.step(tokens[:, :6]), atol=1e-5)
    for beam in (1, 3):
        assert (translate_batch(model, input_ids, attention_mask, beam_size=beam, max_length=12)
                == translate_batch(model, input_ids, attention_mask, beam_size=beam,
                                   max_length=12, use_cache=False))


def test_beam_of_one_is_greedy():
    model = tiny_model()
    input_ids, attention_mask = source_batch()
    stepper = EncoderDecoderStepper(model, input_ids, attention_mask)
    greedy = greedy_search(stepper, 3, bos_token_id=2, eos_token_id=3, max_length=10)
    stepper = EncoderDecoderStepper(model, input_ids, attention_mask)
    beams = beam_search(stepper, 3, bos_token_id=2, eos_token_id=3, max_length=10, beam_size=1)
    assert [h[0].tokens for h in beams] == greedy


class MarkovStepper:
    """A toy 'model': the next-token distribution depends on the last token only; rows follow
    ``reorder`` like a real decoder's state would."""

    def __init__(self, table: torch.Tensor, rows: int) -> None:
        self.table = table.log_softmax(-1)
        self.reorders = 0
        self.rows = rows

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        assert tokens.size(0) == self.rows
        return self.table[tokens[:, -1]]

    def reorder(self, rows: torch.Tensor, source_side: bool) -> None:
        self.rows = rows.numel()
        self.reorders += 1


def brute_force_best(table: torch.Tensor, bos: int, eos: int, limit: int,
                     penalty: LengthPenalty) -> tuple[list[int], float]:
    log_p = table.log_softmax(-1)
    best: tuple[list[int], float] = ([], -math.inf)
    vocab = table.size(0)
    for length in range(1, limit + 1):
        for body in itertools.product([t for t in range(vocab) if t != eos], repeat=length - 1):
            sequence = [*body, eos]  # the search ends every output with EOS
            previous, total = bos, 0.0
            for token in sequence:
                total += float(log_p[previous, token])
                previous = token
            score = total / penalty(len(sequence))
            if score > best[1]:
                best = (list(body), score)
    return best


@pytest.mark.parametrize("style,alpha", [("gnmt", 0.6), ("simple", 1.0), ("gnmt", 0.0)])
def test_exhaustive_beam_search_finds_the_best_sequence(style, alpha):
    """With a beam wider than the number of sequences, beam search is exhaustive."""
    torch.manual_seed(3)
    vocab, bos, eos, limit = 4, 0, 1, 4
    table = torch.randn(vocab, vocab) * 2
    penalty = LengthPenalty(alpha, style)
    tokens, score = brute_force_best(table, bos, eos, limit, penalty)
    stepper = MarkovStepper(table, rows=1)
    found = beam_search(stepper, 1, bos_token_id=bos, eos_token_id=eos, max_length=limit,
                        beam_size=40, length_penalty=penalty)[0][0]
    assert found.tokens == tokens
    assert found.score == pytest.approx(score, rel=1e-5)


def test_beam_search_beats_greedy_when_the_first_step_misleads():
    # From BOS (0): token 2 is likelier than 3, but after 2 everything is uncertain while after
    # 3 EOS is near-certain. Greedy takes 2; beam search keeps 3 and wins.
    neg = -20.0
    table = torch.full((5, 5), neg)
    table[0, 2], table[0, 3] = math.log(0.55), math.log(0.45)
    table[2, 1] = table[2, 4] = table[2, 2] = math.log(1 / 3)
    table[3, 1] = 0.0
    table[4, 1] = 0.0
    greedy = greedy_search(MarkovStepper(table, 2), 2, bos_token_id=0, eos_token_id=1,
                           max_length=5)
    beams = beam_search(MarkovStepper(table, 2), 2, bos_token_id=0, eos_token_id=1, max_length=5,
                        beam_size=2, length_penalty=LengthPenalty(0.0), num_return=2)
    assert greedy == [[2], [2]]
    assert [h[0].tokens for h in beams] == [[3], [3]]
    assert beams[0][0].log_probability == pytest.approx(math.log(0.45), rel=1e-4)
    assert beams[0][0].score > beams[0][1].score


def test_max_length_is_respected_per_sentence():
    table = torch.zeros(5, 5)
    table[:, 1] = -30.0  # EOS never wins on its own
    out = greedy_search(MarkovStepper(table, 2), 2, bos_token_id=0, eos_token_id=1,
                        max_length=[3, 5])
    assert [len(x) for x in out] == [2, 4]  # the last allowed token would have to be EOS
    beams = beam_search(MarkovStepper(table, 2), 2, bos_token_id=0, eos_token_id=1,
                        max_length=[3, 5], beam_size=2)
    assert [len(h[0].tokens) for h in beams] == [2, 4]


def test_length_penalty_formulas():
    assert LengthPenalty(0.6)(1) == pytest.approx(1.0)
    assert LengthPenalty(0.6)(10) == pytest.approx((15 / 6) ** 0.6)
    assert LengthPenalty(1.0, "simple")(7) == 7.0
    assert LengthPenalty(0.0)(99) == 1.0
    with pytest.raises(ValueError):
        LengthPenalty(1.0, "fancy")


# ------------------------------------------------------------------------------------ data
def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_read_tsv_and_aligned_files(tmp_path):
    tsv = write(tmp_path / "a.tsv",
                "Hello world.\tHallo Welt.\n\nThe cat.\t\nA dog.\tEin Hund.\r\n")
    corpus = read_parallel(tsv)
    assert corpus.pairs == [("Hello world.", "Hallo Welt."), ("A dog.", "Ein Hund.")]
    assert corpus.skipped_empty == 2
    assert read_parallel(tsv, reverse=True).pairs[0] == ("Hallo Welt.", "Hello world.")
    en = write(tmp_path / "a.en", "one\ntwo\n\nfour\n")
    de = write(tmp_path / "a.de", "eins\nzwei\ndrei\nvier\n")
    aligned = read_parallel([en, de])
    assert aligned.pairs == [("one", "eins"), ("two", "zwei"), ("four", "vier")]
    assert aligned.skipped_empty == 1


def test_parallel_input_errors_name_files_and_lines(tmp_path):
    en = write(tmp_path / "x.en", "one\ntwo\nthree\n")
    de = write(tmp_path / "x.de", "eins\nzwei\n")
    with pytest.raises(PlmError) as error:
        read_parallel([en, de])
    assert "x.en has 3 lines" in str(error.value) and "x.de has 2" in str(error.value)
    bad = write(tmp_path / "bad.tsv", "a\tb\nno tab here\n")
    with pytest.raises(PlmError) as error:
        read_parallel(bad)
    assert error.value.line == 2 and "bad.tsv" in str(error.value)
    with pytest.raises(PlmError, match="empty"):
        read_parallel(write(tmp_path / "empty.tsv", ""))
    with pytest.raises(PlmError, match="empty side"):
        read_parallel(write(tmp_path / "blank.tsv", "\n\t\n"))
    with pytest.raises(PlmError, match="not found"):
        read_parallel(tmp_path / "missing.tsv")
    (tmp_path / "latin1.tsv").write_bytes("K\xe4se\tcheese\n".encode("latin-1"))
    with pytest.raises(PlmError, match="UTF-8"):
        read_parallel(tmp_path / "latin1.tsv")


def test_examples_truncation_and_collate():
    dataset, report = build_dataset([[5, 6, 7, 8, 9], [5]], [[10, 11], [12, 13, 14, 15, 16, 17]],
                                    bos=2, eos=3, max_length=5)
    assert dataset[0][0].tolist() == [5, 6, 7, 8, 3]
    assert dataset[1][1].tolist() == [2, 12, 13, 14, 15, 3]
    assert (report.truncated_sources, report.truncated_targets) == (1, 1)
    assert "truncated" in report.warning()
    batch = collate_translation([dataset[0], dataset[1]], pad_token_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 3], [5, 3, 0, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]
    assert batch["decoder_input_ids"].tolist() == [[2, 10, 11, 0, 0], [2, 12, 13, 14, 15]]
    assert batch["labels"].tolist() == [[10, 11, 3, -100, -100], [12, 13, 14, 15, 3]]
    batches = translation_batches(dataset, 1, 0, seed=0)
    assert sum(1 for _ in batches.batches(0)) == 2
    # each side rounded up to a multiple (4 here: 5 → 8; training batches use 8), the padding
    # masked out of attention and of the loss
    rounded = collate_translation([dataset[0], dataset[1]], pad_token_id=0, multiple_of=4)
    assert rounded["input_ids"].shape == rounded["decoder_input_ids"].shape == (2, 8)
    assert rounded["labels"].shape == (2, 8)
    assert rounded["input_ids"][:, :5].tolist() == batch["input_ids"].tolist()
    assert rounded["attention_mask"].sum().item() == batch["attention_mask"].sum().item()
    assert (rounded["labels"][:, 5:] == -100).all() and (rounded["input_ids"][:, 5:] == 0).all()
    for trained in translation_batches(dataset, 2, 0, seed=0).batches(0):
        assert trained["input_ids"].shape[1] % 8 == 0 and trained["labels"].shape[1] % 8 == 0


def test_encoding_with_a_wordpiece_vocabulary(tmp_path):
    tokenizer = make_vocab_folder_tokenizer(tmp_path)
    specials = special_tokens(tokenizer)
    assert (specials.pad, specials.unk, specials.bos, specials.eos) == (0, 1, 2, 3)
    dataset, report = encode_parallel(PAIRS[:2], tokenizer, max_length=4)
    source, target = dataset[0]
    assert source[-1] == 3 and target[0] == 2 and target[-1] == 3
    assert tokenizer.decode(source[:-1].tolist()) == "the cat sleeps"
    assert tokenizer.decode(target[1:-1].tolist()) == "die Katze schläft"
    dataset, report = encode_parallel([("the cat is small", "die Katze ist klein")], tokenizer,
                                      max_length=4)
    assert (report.truncated_sources, report.truncated_targets) == (1, 1)
    assert tokenizer.decode(dataset[0][0][:-1].tolist()) == "the cat is"


def test_translation_task_step_and_evaluate():
    import functools

    model = tiny_model()
    dataset, _ = build_dataset([[5, 6], [7, 8, 9]], [[6, 5], [9, 8, 7]], 2, 3, max_length=8)
    batch = collate_translation([dataset[0], dataset[1]], 0)
    task = TranslationTask(0.1, decode=functools.partial(translate_batch, beam_size=2))
    loss, metrics = task.step(model, batch)
    expected = model(batch["input_ids"], batch["attention_mask"], batch["decoder_input_ids"],
                     batch["labels"], label_smoothing=0.1)
    assert loss.item() == pytest.approx(expected.loss.item())
    assert metrics["nll_loss"] == pytest.approx(expected.nll_loss.item())
    assert 0 <= metrics["token_accuracy"] <= 1
    with torch.no_grad():
        result = task.evaluate(model, [batch])
    assert result["perplexity"] == pytest.approx(math.exp(result["nll_loss"]))
    assert 0.0 <= result["exact_match"] <= 1.0


def test_corpus_bleu_via_sacrebleu():
    assert corpus_bleu(["Die Katze sitzt auf der Matte."], ["Die Katze sitzt auf der Matte."]) \
        == pytest.approx(100.0)
    assert corpus_bleu(["Ein Hund."], ["Die Katze sitzt auf der Matte."]) < 10


# ------------------------------------------------------------------------------------ CLI, pipeline
PAIRS = [("the cat sleeps", "die Katze schläft"), ("the dog sleeps", "der Hund schläft"),
         ("the cat eats", "die Katze isst"), ("the dog eats", "der Hund isst"),
         ("a cat runs", "eine Katze rennt"), ("a dog runs", "ein Hund rennt"),
         ("the house is big", "das Haus ist groß"), ("the cat is small",
                                                         "die Katze ist klein")]


def make_vocab_folder(folder: Path) -> Path:
    from plmkit.tokenization import WordPieceTokenizer

    words = sorted({w for pair in PAIRS for side in pair for w in side.split()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    WordPieceTokenizer(vocab, lowercase=False).save_pretrained(folder)
    return folder


def make_vocab_folder_tokenizer(folder: Path):
    from plmkit.downstream import load_tokenizer

    return load_tokenizer(make_vocab_folder(folder / "vocab"))


def test_cli_train_translate_and_pipeline(tmp_path, capsys):
    train = write(tmp_path / "train.tsv", "".join(f"{s}\t{t}\n" for s, t in PAIRS * 4))
    dev = write(tmp_path / "dev.tsv", "".join(f"{s}\t{t}\n" for s, t in PAIRS[:4]))
    vocab = make_vocab_folder(tmp_path / "vocab")
    out = tmp_path / "run"
    # fp32 and the default seed: the same 60 steps on every machine (auto is bf16 on some only)
    code = cli_main(["train-translation", "--train", str(train), "--dev", str(dev),
                     "--tokenizer", str(vocab), "--size", "tiny", "--max-steps", "60",
                     "--batch-size", "8", "--schedule", "constant", "--lr", "3e-3",
                     "--warmup-steps", "5", "--dropout", "0", "--label-smoothing", "0",
                     "--max-length", "16", "--beam", "2", "--no-progress", "--precision", "fp32",
                     "--output", str(out)])
    assert code == 0
    results = json.loads((out / "translation_results.json").read_text())
    assert results["dev_exact_match_greedy"] >= 0.75 and results["dev_exact_match_beam2"] >= 0.75
    assert "dev_bleu_greedy" in results and results["dev_sentences"] == 4
    assert (out / "vocab.txt").exists() and (out / "config.json").exists()
    capsys.readouterr()

    assert cli_main(["translate", str(out), "the dog eats", "--beam", "2"]) == 0
    assert capsys.readouterr().out.strip() == "der Hund isst"

    source = write(tmp_path / "in.txt", "the cat sleeps\n\nthe dog runs\n")
    target = tmp_path / "out.txt"
    assert cli_main(["translate", str(out), "--input", str(source), "--output",
                     str(target)]) == 0
    lines = target.read_text(encoding="utf-8").split("\n")
    assert lines[0] == "die Katze schläft" and lines[1] == "" and len(lines) == 4

    from plmkit.pipelines.translate import TranslationPipeline

    pipe = TranslationPipeline(out, beam_size=1)
    assert pipe("the cat eats") == "die Katze isst"
    assert pipe(["the cat eats", " "]) == ["die Katze isst", ""]


def test_cli_bad_input_is_one_clear_error(tmp_path, capsys):
    en = write(tmp_path / "t.en", "a\nb\nc\n")
    de = write(tmp_path / "t.de", "x\ny\n")
    out = tmp_path / "run"
    code = cli_main(["train-translation", "--train", str(en), str(de), "--size", "tiny",
                     "--max-steps", "1", "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "t.en has 3 lines" in err and "t.de has 2" in err
    assert not out.exists()
    code = cli_main(["train-translation", "--train", "t", "--src-lang", "en", "--tgt-lang", "de",
                     "--size", "tiny", "--max-steps", "1", "--output", str(out)])
    assert code == 2  # "t" resolves to nothing
    empty = write(tmp_path / "empty.txt", "\n\n")
    model = tiny_model()
    model.save_pretrained(tmp_path / "m", tokenizer=None)
    make_vocab_folder(tmp_path / "m")
    target = tmp_path / "never.txt"
    assert cli_main(["translate", str(tmp_path / "m"), "--input", str(empty), "--output",
                     str(target)]) == 2
    assert "empty" in capsys.readouterr().err and not target.exists()


def test_too_long_sources_are_cut_counted_and_reported(tmp_path, capsys):
    """A sentence longer than the model's positions is translated from its first tokens, and
    the CLI says how many were cut; blank lines stay blank, the rest is untouched."""
    from plmkit.data.parallel import vocabulary_size
    from plmkit.evaluation.decoding import translate_texts

    tokenizer = make_vocab_folder_tokenizer(tmp_path)
    model = tiny_model(vocab_size=vocabulary_size(tokenizer), max_position_embeddings=8)
    long_sentence = " ".join(["the cat sleeps"] * 5)  # 15 tokens > 8 positions
    outputs, report = translate_texts(model, tokenizer, ["the cat", "", long_sentence],
                                      beam_size=2, max_length=6)
    assert len(outputs) == 3 and outputs[1] == ""
    assert (report.sentences, report.empty, report.truncated) == (3, 1, 1)
    assert "1 of 3 source sentences" in report.warning()
    cut, _ = translate_texts(model, tokenizer, [" ".join(long_sentence.split()[:7])],
                             beam_size=2, max_length=6)
    assert cut == [outputs[2]]  # the same as translating its first 7 tokens (+ EOS = 8)

    model.save_pretrained(tmp_path / "m")
    make_vocab_folder(tmp_path / "m")
    source = write(tmp_path / "long.txt", f"the cat\n{long_sentence}\n")
    assert cli_main(["translate", str(tmp_path / "m"), "--input", str(source), "--output",
                     str(tmp_path / "out.txt"), "--beam", "1", "--max-length", "6"]) == 0
    assert "1 of 2 source sentences" in capsys.readouterr().err
    assert len((tmp_path / "out.txt").read_text(encoding="utf-8").split("\n")) == 3


def test_paper_optimiser_is_adam_098_and_noam_warmup():
    from plmkit.training.optim import schedule_function
    from plmkit.training.seq2seq import paper_training_config

    config = paper_training_config("unused", d_model=512)
    assert (config.optimizer, config.adam_betas, config.adam_epsilon) == ("adam", (0.9, 0.98),
                                                                          1e-9)
    assert (config.schedule, config.warmup_steps, config.noam_d_model) == ("noam", 4000, 512)
    rate = schedule_function(config.schedule, 100_000, config.warmup_steps, config.noam_d_model)
    # lr = d^-0.5 · min(step^-0.5, step · warmup^-1.5): linear up to step 4000, then 1/√step.
    assert rate(3999) == pytest.approx(512 ** -0.5 * 4000 ** -0.5)
    assert rate(999) == pytest.approx(rate(3999) / 4)
    assert rate(15999) == pytest.approx(rate(3999) / 2)


def test_output_attentions_gives_each_kind_per_layer_and_changes_nothing():
    model = tiny_model()
    input_ids, attention_mask = source_batch()
    targets = torch.randint(4, VOCAB, (3, 5), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        plain = model(input_ids, attention_mask, decoder_input_ids=targets)
        out = model(input_ids, attention_mask, decoder_input_ids=targets, output_attentions=True)
    torch.testing.assert_close(out.logits, plain.logits, atol=1e-5, rtol=1e-5)
    assert plain.cross_attentions is None
    config = model.config
    heads = config.num_heads
    assert [a.shape for a in out.encoder_attentions] == [(3, heads, 7, 7)] * \
        config.num_encoder_layers
    assert [a.shape for a in out.decoder_attentions] == [(3, heads, 5, 5)] * \
        config.num_decoder_layers
    assert [a.shape for a in out.cross_attentions] == [(3, heads, 5, 7)] * \
        config.num_decoder_layers
    for weights in (*out.encoder_attentions, *out.decoder_attentions, *out.cross_attentions):
        torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))
    padding = ~attention_mask.bool()
    for weights in out.cross_attentions:  # no target token looks at source padding
        assert float(weights.masked_select(padding[:, None, None, :]).abs().max()) < 1e-6
    assert all(torch.all(w.triu(1) == 0) for w in out.decoder_attentions)  # causal
