"""Every `plm` command that trains, as a tiny run, for the tests that walk all of them.

The tests for untrusted inputs (resume, seeds, output ownership) must cover every training
command, including one added next month. They find the commands by reading the CLI's own parser
(:func:`commands_with`), and take their tiny arguments from :data:`TINY_RUNS`; a command with the
flag but no entry here fails those tests until someone adds it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

TEXT = "\n".join(["the cat sat on the mat .", "the dog sat on the log .",
                  "a cat and a dog ran .", "the mat was red ."] * 40) + "\n"

PROSE = "".join(f"The cat number {i} sat on the mat.\nIt was warm there, and the dog slept.\n\n"
                for i in range(40))

PAIRS = [("the cat sleeps", "die Katze schläft"), ("the dog sleeps", "der Hund schläft"),
         ("the cat eats", "die Katze isst"), ("the dog eats", "der Hund isst")]


def subcommands() -> dict[str, argparse.ArgumentParser]:
    from plmkit.cli import build_parser

    parser = build_parser()
    for action in parser._subparsers._group_actions:  # noqa: SLF001 - argparse has no public walk
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            return dict(action.choices)
    return {}


def commands_with(flag: str) -> set[str]:
    """The commands whose parser accepts ``flag`` (e.g. ``--resume``)."""
    return {name for name, sub in subcommands().items() if flag in sub._option_string_actions}


def _placeholder(action: argparse.Action) -> list[str]:
    """A value argparse accepts for a required argument (the lock is taken before it is used)."""
    if action.choices:
        value = str(next(iter(action.choices)))
    elif action.type in (int, float):
        value = "1"
    else:
        value = "placeholder"
    count = {None: 1, "+": 1, "?": 0, "*": 0}.get(action.nargs, action.nargs)
    return [value] * (count if isinstance(count, int) else 1)


def parsable_argv(command: str, parser: argparse.ArgumentParser,
                  output: Path | None = None) -> list[str]:
    """``command`` with a placeholder for every required argument, so argparse accepts it;
    ``--output`` is set to ``output`` when the command has one."""
    argv = [command]
    for action in parser._actions:  # noqa: SLF001 - walking argparse's own table
        if action.dest in ("help", "output"):
            continue
        if not action.option_strings:
            argv += _placeholder(action)
        elif action.required:
            argv += [action.option_strings[0], *_placeholder(action)]
    if output is not None and "--output" in parser._option_string_actions:  # noqa: SLF001
        argv += ["--output", str(output)]
    return argv


def _pretrain(folder: Path) -> list[str]:
    corpus = folder / "prose.txt"
    corpus.write_text(PROSE)
    return ["pretrain", "--corpus", str(corpus), "--model-size", "tiny", "--batch-size", "4",
            "--max-seq-length", "32", "--dupe-factor", "1"]


def _train_gpt(folder: Path) -> list[str]:
    corpus = folder / "text.txt"
    corpus.write_text(TEXT)
    return ["train-gpt", "--corpus", str(corpus), "--level", "char", "--size", "nano",
            "--block-size", "16", "--batch-size", "4", "--warmup-steps", "1"]


def _finetune_gpt(folder: Path) -> list[str]:
    from plmkit.cli import main

    lm = folder / "gpt-lm"
    if not lm.exists():
        assert main(_train_gpt(folder) + ["--max-steps", "2", "--no-progress",
                                          "--output", str(lm)]) == 0
    rows = [(f"the {w} cat {x}", "pos" if w == "red" else "neg")
            for w in ("red", "dog") for x in ("sat", "ran")] * 3
    train = folder / "gpt-train.csv"
    train.write_text("text,label\n" + "".join(f'"{t}",{label}\n' for t, label in rows))
    return ["finetune-gpt", str(lm), "--train", str(train), "--batch-size", "4"]


def _train_translation(folder: Path) -> list[str]:
    from plmkit.tokenization import WordPieceTokenizer

    train = folder / "pairs.tsv"
    train.write_text("".join(f"{s}\t{t}\n" for s, t in PAIRS * 3), encoding="utf-8")
    words = sorted({w for pair in PAIRS for side in pair for w in side.split()})
    vocab = folder / "mt-vocab"
    WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words],
                       lowercase=False).save_pretrained(vocab)
    return ["train-translation", "--train", str(train), "--tokenizer", str(vocab), "--size",
            "tiny", "--batch-size", "4", "--warmup-steps", "1", "--max-length", "16"]


def _finetune(folder: Path) -> list[str]:
    """A tiny random BERT (written once into ``folder``) fine-tuned to classify sentences."""
    import torch

    from plmkit.models.bert import BertConfig, BertForPreTraining

    words = sorted(set(TEXT.split()))
    base = folder / "bert"
    if not base.exists():
        torch.manual_seed(0)
        vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
        BertForPreTraining(BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1,
                                      num_attention_heads=2, intermediate_size=32,
                                      max_position_embeddings=32)).save_pretrained(base)
        (base / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    train = folder / "bert-train.csv"
    train.write_text("text,label\n" + "".join(f"{line},{'cat' if 'cat' in line else 'other'}\n"
                                               for line in TEXT.splitlines()[:24]))
    return ["finetune", "--task", "classify", "--model", str(base), "--train", str(train),
            "--batch-size", "4"]


def _train_lm(folder: Path) -> list[str]:
    corpus = folder / "lm.txt"
    corpus.write_text(TEXT)
    return ["train-lm", "--arch", "nnlm", "--corpus", str(corpus), "--order", "3",
            "--embedding-size", "8", "--hidden-size", "8", "--batch-size", "8"]


# command -> (folder for its inputs) -> argv without --max-steps, --output and run flags
TINY_RUNS: dict[str, Callable[[Path], list[str]]] = {
    "pretrain": _pretrain,
    "finetune": _finetune,
    "train-gpt": _train_gpt,
    "finetune-gpt": _finetune_gpt,
    "train-translation": _train_translation,
    "train-lm": _train_lm,
}


def tiny_run(command: str, inputs: Path, output: Path, steps: int, *extra: str) -> list[str]:
    """The argv of a tiny run of ``command`` for ``steps`` optimiser steps into ``output``."""
    inputs.mkdir(parents=True, exist_ok=True)
    return [*TINY_RUNS[command](inputs), "--max-steps", str(steps), "--no-progress",
            "--output", str(output), *extra]
