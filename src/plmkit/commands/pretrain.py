"""``plm pretrain``: BERT's first stage (masked LM + next sentence prediction) on a corpus.

A corpus goes in, a checkpoint that Hugging Face can load comes out::

    plm pretrain --corpus prose --model-size mini --max-steps 2000 --output runs/mini

Steps: resolve the corpus (a path, or a built-in name: ``prose``, ``ptb``), pick the vocabulary
(MiniLM's uncased 30,522 by default, or ``--train-tokenizer N`` to learn one from the corpus),
split off held-out documents, prepare the instances once into memmap shards (reused while the
settings and tokenizer match), then run the one Trainer with the pre-training task. A TOML file
(``--config``) maps onto the same fields: ``[model]`` → BertConfig, ``[training]`` →
TrainingConfig, ``[data]`` → :class:`PretrainDataConfig`; flags given on the command line win.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plmkit.errors import PlmError
from plmkit.precision import PRECISIONS


@dataclass
class PretrainDataConfig:
    corpus: str = "prose"
    tokenizer: str = "minilm"
    train_tokenizer: int = 0
    lowercase: bool = True
    max_seq_length: int = 128
    short_seq_prob: float = 0.1
    dupe_factor: int = 5
    masked_lm_prob: float = 0.15
    max_predictions_per_seq: int = 20
    whole_word_mask: bool = False
    dynamic_masking: bool = False
    heldout_fraction: float = 0.05
    batch_size: int = 32
    eval_batch_size: int = 64
    max_eval_instances: int = 2000
    seed: int = 12345
    errors: str = "strict"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pretrain", help="pre-train BERT (MLM + NSP) on a text corpus",
        description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", help="text file/folder (one sentence per line, blank line "
                        "between documents; or paragraphs), or a built-in name: prose, general, ptb")
    parser.add_argument("--output", required=True, help="output folder (checkpoints, curves)")
    parser.add_argument("--config", help="TOML with [model], [training], [data] tables")
    parser.add_argument("--model-size", default=None,
                        help="tiny (2/128), mini (4/256), small (4/512), medium (8/512), base (12/768)")
    parser.add_argument("--layers", type=int, dest="num_hidden_layers")
    parser.add_argument("--hidden", type=int, dest="hidden_size")
    parser.add_argument("--heads", type=int, dest="num_attention_heads")
    parser.add_argument("--intermediate", type=int, dest="intermediate_size")
    parser.add_argument("--tokenizer", help="vocab.txt or folder (default: MiniLM's uncased vocab)")
    parser.add_argument("--train-tokenizer", type=int, metavar="VOCAB_SIZE",
                        help="learn a WordPiece vocabulary of this size from the corpus instead")
    parser.add_argument("--cased", action="store_true", help="with --train-tokenizer: keep case")
    parser.add_argument("--max-seq-length", type=int)
    parser.add_argument("--dupe-factor", type=int)
    parser.add_argument("--whole-word-mask", action="store_true", default=None)
    parser.add_argument("--dynamic-masking", action="store_true", default=None)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--max-minutes", type=float,
                        help="wall-clock budget: stop, evaluate and save after this many minutes")
    parser.add_argument("--lr", type=float, dest="learning_rate")
    parser.add_argument("--warmup-steps", type=int)
    parser.add_argument("--schedule", choices=["linear", "cosine", "constant"])
    parser.add_argument("--accumulation", type=int, dest="gradient_accumulation_steps")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="auto (default): bf16 where the hardware computes it natively, else "
                             "fp32")
    parser.add_argument("--compile", action="store_true", default=None)
    parser.add_argument("--eval-every", type=int)
    parser.add_argument("--save-every", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--errors", choices=["strict", "replace"],
                        help="invalid UTF-8 in the corpus: stop (default) or replace")
    parser.add_argument("--resume", nargs="?", const=True, default=False,
                        help="continue from the latest checkpoint in --output (or this one)")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=run)


def load_settings(args: argparse.Namespace):
    """TOML file, then command-line flags, onto the three config dataclasses."""
    from plmkit.config import config_from_dict, load_toml
    from plmkit.models.bert import BERT_SIZES, BertConfig
    from plmkit.training import TrainingConfig

    table: dict[str, Any] = load_toml(args.config) if args.config else {}
    unknown = set(table) - {"model", "training", "data"}
    if unknown:
        raise PlmError(f"unknown table(s) {sorted(unknown)}; use [model], [training], [data]",
                       path=args.config)
    model_values = dict(table.get("model", {}))
    size = args.model_size or model_values.pop("size", "mini")
    if size not in BERT_SIZES:
        raise PlmError(f"unknown model size {size!r}; choose one of {', '.join(BERT_SIZES)}",
                       field="model_size")
    model_values = {**BERT_SIZES[size], **model_values}
    for name in ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size"):
        if getattr(args, name) is not None:
            model_values[name] = getattr(args, name)
    data = config_from_dict(PretrainDataConfig, table.get("data", {}), source=args.config)
    flags = {"corpus": args.corpus, "tokenizer": args.tokenizer,
             "train_tokenizer": args.train_tokenizer, "max_seq_length": args.max_seq_length,
             "dupe_factor": args.dupe_factor, "whole_word_mask": args.whole_word_mask,
             "dynamic_masking": args.dynamic_masking, "batch_size": args.batch_size,
             "errors": args.errors}
    data = dataclasses.replace(data, **{k: v for k, v in flags.items() if v is not None})
    if args.cased:
        data.lowercase = False
    training_values = {"learning_rate": 1e-4, "warmup_steps": 100, "max_steps": 1000,
                       "log_every": 10, "eval_every": 200, "save_every": 200,
                       "plot_metrics": ["loss", "mlm_accuracy", "nsp_accuracy"],
                       **table.get("training", {}), "output_dir": args.output}
    training = config_from_dict(TrainingConfig, training_values, source=args.config)
    overrides = {k: getattr(args, k) for k in ("max_steps", "max_minutes", "learning_rate",
                                               "warmup_steps",
                                               "schedule", "gradient_accumulation_steps",
                                               "precision", "compile", "eval_every",
                                               "save_every", "seed")}
    training = dataclasses.replace(training, **{k: v for k, v in overrides.items()
                                                if v is not None})
    if args.no_progress:
        training.progress = False
    try:
        model = BertConfig(**model_values)
    except (TypeError, ValueError) as exc:
        raise PlmError(f"invalid model settings: {exc}", path=args.config, field="model") from None
    return model, training, data


def resolve_corpus(name: str) -> list[Path]:
    """A path, or a built-in corpus name."""
    from plmkit import datasets

    built_in = {"prose": datasets.prose, "general": datasets.general,
                "ptb": lambda: datasets.ptb()["train"]}
    if name in built_in:
        return [built_in[name]()]
    path = Path(name)
    if not path.exists():
        raise PlmError(f"corpus not found (a file, a folder, or one of: {', '.join(built_in)})",
                       path=path)
    return [path]


def build_tokenizer(data: PretrainDataConfig, corpus: list[Path], output: Path,
                    progress: bool = False):
    from plmkit.tokenization import WordPieceTokenizer

    if data.train_tokenizer:
        from plmkit.tokenization import train_wordpiece

        vocab_folder = output / "data" / f"vocab-{data.train_tokenizer}"
        if (vocab_folder / "vocab.txt").exists():
            return WordPieceTokenizer.from_pretrained(vocab_folder, lowercase=data.lowercase)
        from plmkit.data.corpus import read_documents

        sentences = (s for document in read_documents(corpus, errors=data.errors)
                     for s in document)
        tokenizer = train_wordpiece(sentences, vocab_size=data.train_tokenizer,
                                    lowercase=data.lowercase, show_progress=progress)
        tokenizer.save_pretrained(vocab_folder)
        return tokenizer
    if data.tokenizer == "minilm":
        from plmkit.datasets import minilm_dir

        return WordPieceTokenizer.from_pretrained(minilm_dir())
    return WordPieceTokenizer.from_pretrained(data.tokenizer)


def split_heldout(corpus: list[Path], data: PretrainDataConfig, folder: Path) -> tuple[Path, Path | None]:
    """Every k-th document goes to the held-out file, so no held-out sentence is trained on."""
    from plmkit._io import atomic_write
    from plmkit.data.corpus import read_documents

    train_path, heldout_path = folder / "corpus-train.txt", folder / "corpus-heldout.txt"
    documents = list(read_documents(corpus, errors=data.errors))
    if not documents:
        raise PlmError("the corpus has no sentences", path=", ".join(map(str, corpus)))
    every = max(2, round(1 / data.heldout_fraction)) if data.heldout_fraction > 0 else 0
    if every and len(documents) < 2 * every:  # a small corpus still gets a held-out document
        every = len(documents) // 2 if len(documents) >= 4 else 0
    if every:
        heldout = [d for i, d in enumerate(documents) if i % every == every - 1]
        train = [d for i, d in enumerate(documents) if i % every != every - 1]
    else:
        train, heldout = documents, []
    for path, part in ((train_path, train), (heldout_path, heldout)):
        with atomic_write(path) as handle:
            handle.write("\n\n".join("\n".join(d) for d in part) + "\n")
    return train_path, (heldout_path if heldout else None)


def prepare_data(corpus: list[Path], tokenizer: Any, data: PretrainDataConfig, output: Path,
                 progress: bool) -> tuple[Path, Path | None]:
    """Prepare shards once; reuse them while corpus, settings and tokenizer are unchanged."""
    from plmkit._io import write_text_atomic
    from plmkit.data.shards import prepare_pretraining, tokenizer_hash

    folder = output / "data"
    folder.mkdir(parents=True, exist_ok=True)
    recipe = {k: getattr(data, k) for k in ("max_seq_length", "short_seq_prob", "dupe_factor",
                                            "heldout_fraction", "seed")}
    recipe["tokenizer"] = tokenizer_hash(tokenizer)
    recipe["corpus"] = [_fingerprint(p) for p in corpus]
    stamp = folder / "recipe.json"
    train_dir, heldout_dir = folder / "train", folder / "heldout"
    if stamp.exists() and json.loads(stamp.read_text()) == recipe and train_dir.exists():
        print(f"plmkit: reusing prepared data in {folder}")
        return train_dir, heldout_dir if heldout_dir.exists() else None
    train_text, heldout_text = split_heldout(corpus, data, folder)
    common = dict(max_seq_length=data.max_seq_length, short_seq_prob=data.short_seq_prob,
                  seed=data.seed, errors=data.errors, progress=progress, format="bert")
    prepare_pretraining(train_text, tokenizer, train_dir, dupe_factor=data.dupe_factor, **common)
    if heldout_text is not None:
        prepare_pretraining(heldout_text, tokenizer, heldout_dir, dupe_factor=1, **common)
    write_text_atomic(stamp, json.dumps(recipe, indent=2))
    return train_dir, heldout_dir if heldout_text is not None else None


def _fingerprint(path: Path) -> str:
    """Cheap identity of a corpus path: names, sizes and modification times."""
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for item in files:
        if item.is_file():
            stat = item.stat()
            digest.update(f"{item}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from plmkit.data.collate import Batches
    from plmkit.data.shards import PretrainingDataset, collate_pretraining
    from plmkit.models.bert import BertForPreTraining
    from plmkit.training import Trainer
    from plmkit.training.tasks import PretrainingTask

    model_config, training, data = load_settings(args)
    output = Path(args.output)
    if not args.resume and any(output.glob("checkpoint-*")):
        raise PlmError("output folder already holds checkpoints; pass --resume to continue, or "
                       "choose a new --output", path=output)
    corpus = resolve_corpus(data.corpus)
    # Under torchrun, rank 0 builds the vocabulary and the shards while the other ranks wait.
    from plmkit.training.distributed import barrier, init_distributed
    from plmkit.training.trainer import resolve_device

    context = init_distributed(resolve_device(training.device))
    tokenizer = (build_tokenizer(data, corpus, output, training.progress) if context.is_main
                 else None)
    barrier(context)
    if tokenizer is None:
        tokenizer = build_tokenizer(data, corpus, output)
    model_config.vocab_size = tokenizer.vocab_size
    model_config.pad_token_id = tokenizer.pad_token_id
    model_config.max_position_embeddings = max(model_config.max_position_embeddings,
                                               data.max_seq_length)
    if context.is_main:
        train_dir, heldout_dir = prepare_data(corpus, tokenizer, data, output, training.progress)
    barrier(context)
    if not context.is_main:
        train_dir, heldout_dir = prepare_data(corpus, tokenizer, data, output, False)
    masking = dict(masked_lm_prob=data.masked_lm_prob,
                   max_predictions_per_seq=data.max_predictions_per_seq,
                   whole_word_mask=data.whole_word_mask)
    train_set = PretrainingDataset(train_dir, tokenizer, dynamic_masking=data.dynamic_masking,
                                   **masking)
    pad = tokenizer.pad_token_id

    def collate(examples):
        return collate_pretraining(examples, pad)

    train = Batches(train_set, data.batch_size, collate, seed=training.seed,
                    lengths=train_set.lengths)
    evaluation = None
    if heldout_dir is not None:
        heldout_set = PretrainingDataset(heldout_dir, tokenizer, **masking)
        chosen = np.arange(min(len(heldout_set), data.max_eval_instances))
        evaluation = Batches(_Subset(heldout_set, chosen), data.eval_batch_size, collate,
                             shuffle=False)
    model = BertForPreTraining(model_config)
    say = print if context.is_main else (lambda *a, **k: None)
    say(f"plmkit: BERT {model_config.num_hidden_layers}/{model_config.hidden_size}, "
          f"{model.num_parameters() / 1e6:.1f}M parameters; {len(train_set):,} training "
          f"instances, {0 if evaluation is None else len(evaluation.dataset):,} held-out")
    trainer = Trainer(model, PretrainingTask(), train, training, eval_data=evaluation,
                      tokenizer=tokenizer)
    result = trainer.train(resume=args.resume)
    shown = {k: round(v, 4) for k, v in result.metrics.items() if k.startswith("eval_")}
    say(f"plmkit: {result.global_step} steps; held-out {json.dumps(shown)}")
    say(f"plmkit: model in {output} (HF layout), curves in {output / 'curves.png'}")
    return 0


class _Subset:
    def __init__(self, dataset: Any, indices: Any) -> None:
        self.dataset, self.indices = dataset, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[int(self.indices[index])]


__all__ = ["PretrainDataConfig", "load_settings", "register", "run"]
