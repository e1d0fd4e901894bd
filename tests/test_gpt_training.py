"""GPT data, tasks and commands: blocks, tokenizers, pre-training and fine-tuning (Trainer)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from plmkit.cli import main
from plmkit.data import text_lm
from plmkit.errors import PlmError
from plmkit.models.gpt import GPTForSequenceClassification, GPTLMHeadModel, gpt_config
from plmkit.training import Trainer, TrainingConfig
from plmkit.training.causal_lm import CausalLMTask, GPTClassificationTask, evaluate_lm

TEXT = "\n".join(["the cat sat on the mat .", "the dog sat on the log .",
                  "a cat and a dog ran .", "the mat was red ."] * 40) + "\n"


@pytest.fixture
def corpus_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT)
    return path


# ------------------------------------------------------------------------------ blocks
def test_evaluation_blocks_make_every_token_a_target_once():
    ids = np.arange(23)
    batches = text_lm.lm_batches(ids, block_size=5, batch_size=2, train=False)
    targets = torch.cat([b["targets"][b["targets"] != -100] for b in batches.batches(0)])
    assert targets.tolist() == list(range(1, 23))
    first = next(iter(batches.batches(0)))
    assert first["input_ids"][0].tolist() == [0, 1, 2, 3, 4]
    assert first["targets"][0].tolist() == [1, 2, 3, 4, 5]


def test_training_blocks_shift_their_cut_points_per_epoch_deterministically():
    blocks = text_lm.TokenBlocks(np.arange(1000), 16, random_offset=True, seed=3)
    starts = []
    for epoch in range(4):
        blocks.set_epoch(epoch)
        assert all(len(blocks[i]) == 17 for i in range(len(blocks)))
        starts.append(int(blocks[0][0]))
    assert len(set(starts)) > 1 and all(0 <= s < 16 for s in starts)
    blocks.set_epoch(2)
    assert int(blocks[0][0]) == starts[2]
    assert int(blocks[1][0]) == int(blocks[0][-1])  # neighbours share one id


def test_too_short_text_is_a_plm_error():
    with pytest.raises(PlmError, match="block"):
        text_lm.TokenBlocks(np.arange(5), 16)


# ------------------------------------------------------------------------------ tokenizers
def test_char_tokenizer_round_trip_and_files(tmp_path):
    tokenizer = text_lm.CharTokenizer.build([TEXT])
    text = "the cat\nran ."
    ids = tokenizer.encode(text)
    assert len(ids) == len(text) and tokenizer.decode(ids) == text
    assert tokenizer.decode(tokenizer.encode("the zebra")) == "the <unk>e<unk>ra"
    tokenizer.save_pretrained(tmp_path)
    loaded = text_lm.load_text_tokenizer(tmp_path)
    assert isinstance(loaded, text_lm.CharTokenizer) and loaded.encode(text) == ids


def test_word_tokenizer_streams_lines_with_eos():
    tokenizer = text_lm.WordTokenizer.build([TEXT])
    stream = tokenizer.encode_lines("the cat sat .\nthe zebra .\n")
    words = tokenizer.vocab.decode(stream)
    assert words == ["the", "cat", "sat", ".", "</s>", "the", "<unk>", ".", "</s>"]
    assert tokenizer.decode(tokenizer.encode("the cat\nthe dog")) == "the cat\nthe dog"


def test_read_corpus_from_a_file_and_a_folder(corpus_file, tmp_path):
    texts, level = text_lm.read_corpus(corpus_file)
    assert level == "word" and set(texts) == {"train", "valid", "test"}
    assert sum(t.count("\n") for t in texts.values()) == TEXT.count("\n")
    folder = tmp_path / "split"
    folder.mkdir()
    (folder / "train.txt").write_text(TEXT)
    with pytest.raises(PlmError, match="valid.txt"):
        text_lm.read_corpus(folder)
    (folder / "dev.txt").write_text("the cat .\n")
    assert text_lm.read_corpus(folder)[0]["valid"] == "the cat .\n"
    with pytest.raises(PlmError, match="unknown corpus"):
        text_lm.read_corpus(tmp_path / "missing.txt")


# ------------------------------------------------------------------------------ pre-training
def test_causal_lm_task_lowers_held_out_loss_through_the_trainer(corpus_file, tmp_path):
    data = text_lm.load_lm_data(corpus_file, "char")
    torch.manual_seed(0)
    model = GPTLMHeadModel(gpt_config("nano", vocab_size=len(data.tokenizer), n_positions=32,
                                      resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))
    before = evaluate_lm(model, data.splits["valid"], 32, 16)
    train = text_lm.lm_batches(data.splits["train"], 32, 8, train=True)
    valid = text_lm.lm_batches(data.splits["valid"], 32, 16, train=False)
    config = TrainingConfig(output_dir=str(tmp_path / "run"), max_steps=40, learning_rate=1e-2,
                            warmup_steps=5, schedule="cosine", progress=False, plot=False,
                            log_every=20)
    result = Trainer(model, CausalLMTask(), train, config, eval_data=valid,
                     tokenizer=data.tokenizer).train()
    after = evaluate_lm(model, data.splits["valid"], 32, 16)
    assert result.global_step == 40
    assert after["loss"] < before["loss"] - 1.0
    assert after["perplexity"] == pytest.approx(np.exp(after["loss"]))
    assert after["tokens"] == len(data.splits["valid"]) - 1
    assert isinstance(text_lm.load_text_tokenizer(tmp_path / "run"), text_lm.CharTokenizer)


def test_train_gpt_and_generate_commands(corpus_file, tmp_path, capsys):
    output = tmp_path / "gpt"
    code = main(["train-gpt", "--corpus", str(corpus_file), "--level", "char", "--size", "nano",
                 "--block-size", "32", "--batch-size", "8", "--max-steps", "12",
                 "--warmup-steps", "2", "--no-progress", "--output", str(output)])
    assert code == 0
    results = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert results["steps"] == 12 and results["valid_perplexity"] > 1
    assert json.loads((output / "lm_results.json").read_text())["steps"] == 12
    assert (output / "model.safetensors").exists() and (output / "vocab.txt").exists()

    code = main(["generate", str(output), "the cat", "--max-new-tokens", "15", "--seed", "0",
                 "--top-k", "5"])
    printed = capsys.readouterr().out
    assert code == 0 and printed.startswith("the cat") and printed.endswith("\n")
    assert len(printed) > len("the cat\n")

    code = main(["generate", str(output), "the", "--top-p", "0"])
    assert code == 2 and "top_p" in capsys.readouterr().err

    code = main(["train-gpt", "--corpus", str(corpus_file), "--level", "char", "--max-steps", "14",
                 "--block-size", "32", "--batch-size", "8", "--warmup-steps", "2",
                 "--no-progress", "--output", str(output), "--resume"])
    captured = capsys.readouterr()
    assert code == 0 and "resumed" in captured.out + captured.err
    assert json.loads(captured.out.strip().splitlines()[-1])["steps"] == 14


def test_generate_command_on_a_missing_checkpoint_is_exit_2(tmp_path, capsys):
    assert main(["generate", str(tmp_path / "nothing"), "hi"]) == 2
    assert "not found" in capsys.readouterr().err


# ------------------------------------------------------------------------------ fine-tuning
def test_gpt_task_input_has_start_delim_extract():
    tokenizer = text_lm.WordTokenizer.build([TEXT]).with_tokens(text_lm.GPT_TASK_TOKENS)
    start, delim, extract = (tokenizer.token_to_id(t) for t in text_lm.GPT_TASK_TOKENS)
    single = text_lm.gpt_task_input(tokenizer, "the cat sat", max_length=4)
    assert single == [start, tokenizer.token_to_id("the"), tokenizer.token_to_id("cat"), extract]
    pair = text_lm.gpt_task_input(tokenizer, "the cat sat on", "a dog", max_length=7)
    assert pair[0] == start and pair[-1] == extract and len(pair) == 7
    assert pair[pair.index(delim) + 1:-1] == [tokenizer.token_to_id("a"),
                                              tokenizer.token_to_id("dog")]


def test_gpt_classification_learns_a_separable_task(tmp_path):
    rows = [(f"{w} film {x}", "pos" if w == "good" else "neg")
            for w in ("good", "bad") for x in ("indeed", "really", "truly", "today")] * 6
    csv_path = tmp_path / "train.csv"
    csv_path.write_text("text,label\n" + "".join(f'"{t}",{label}\n' for t, label in rows))
    rows = text_lm.read_text_label_csv(csv_path)
    tokenizer = text_lm.WordTokenizer.build([t for t, _ in rows]).with_tokens(
        text_lm.GPT_TASK_TOKENS)
    data = text_lm.encode_classification(
        rows, lambda text: text_lm.gpt_task_input(tokenizer, text, max_length=16))
    assert data.labels == ["neg", "pos"]
    torch.manual_seed(0)
    model = GPTForSequenceClassification(gpt_config(
        "nano", vocab_size=len(tokenizer), n_positions=16, num_labels=2,
        pad_token_id=tokenizer.pad_id))
    batches = text_lm.classification_batches(data, 8, tokenizer.pad_id, train=True)
    config = TrainingConfig(output_dir=str(tmp_path / "cls"), max_steps=30, learning_rate=3e-3,
                            progress=False, plot=False, save_final=False)
    trainer = Trainer(model, GPTClassificationTask(lm_weight=0.5), batches, config,
                      eval_data=text_lm.classification_batches(data, 16, tokenizer.pad_id,
                                                               train=False))
    trainer.train()
    assert trainer.evaluate()["eval_accuracy"] == 1.0


def test_csv_without_text_label_header_is_a_plm_error(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("sentence,y\nhello,1\n")
    with pytest.raises(PlmError) as error:
        text_lm.read_text_label_csv(path)
    assert error.value.line == 1 and str(path) in str(error.value)


def test_finetune_gpt_command_from_a_pretrained_checkpoint(corpus_file, tmp_path, capsys):
    """GPT-1's two stages end to end: train-gpt, then finetune-gpt adds the task tokens, a fresh
    head, and learns a task the words separate; a label unseen in training names its line."""
    lm = tmp_path / "lm"
    assert main(["train-gpt", "--corpus", str(corpus_file), "--size", "nano", "--block-size",
                 "16", "--batch-size", "8", "--max-steps", "5", "--warmup-steps", "1",
                 "--no-progress", "--output", str(lm)]) == 0
    capsys.readouterr()
    rows = [(f"the {w} cat {x}", "pos" if w == "red" else "neg")
            for w in ("red", "dog") for x in ("sat", "ran", "mat", "log")] * 6
    train = tmp_path / "train.csv"
    train.write_text("text,label\n" + "".join(f'"{t}",{label}\n' for t, label in rows))
    output = tmp_path / "cls"
    code = main(["finetune-gpt", str(lm), "--train", str(train), "--dev", str(train), "--test",
                 str(train), "--max-steps", "40", "--lr", "3e-3", "--batch-size", "8",
                 "--warmup-ratio", "0.1", "--no-progress", "--output", str(output)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    results = json.loads(captured.out.strip().splitlines()[-1])
    assert results["test_accuracy"] == 1.0 and results["dev_accuracy"] == 1.0
    assert json.loads((output / "results.json").read_text())["steps"] == 40
    config = json.loads((output / "config.json").read_text())
    assert config["id2label"] == {"0": "neg", "1": "pos"}
    model = GPTForSequenceClassification.from_pretrained(output, strict_head=True)
    tokenizer = text_lm.load_text_tokenizer(output)
    assert model.config.vocab_size == len(tokenizer) == len(text_lm.load_text_tokenizer(lm)) + 3
    assert tokenizer.token_to_id(text_lm.GPT_EXTRACT) == len(tokenizer) - 1

    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nthe cat,pos\nthe dog,maybe\n")
    code = main(["finetune-gpt", str(lm), "--train", str(train), "--test", str(bad),
                 "--max-steps", "1", "--no-progress", "--output", str(tmp_path / "bad")])
    err = capsys.readouterr().err
    assert code == 2 and "maybe" in err and "bad.csv" in err and "3" in err
    assert not (tmp_path / "bad").exists()


def test_training_commands_share_the_run_flags_and_check_the_budget(corpus_file, tmp_path, capsys):
    """train-gpt, train-translation and train-lm take the same run flags; a negative budget is
    one clear error, before any output folder is written."""
    for command in (["train-gpt", "--corpus", str(corpus_file)],
                    ["train-lm", "--arch", "nnlm", "--corpus", str(corpus_file)],
                    ["train-translation", "--train", "en_de"]):
        output = tmp_path / command[0]
        code = main(command + ["--max-minutes", "-1", "--precision", "bf16", "--no-progress",
                               "--output", str(output)])
        assert code == 2 and "max-minutes" in capsys.readouterr().err
        assert not output.exists()
