"""``plm pretrain``: BERT's first stage (masked LM + next sentence prediction) on a corpus.

A corpus goes in, a checkpoint that Hugging Face can load comes out::

    plm pretrain --corpus prose --model-size mini --max-steps 2000 --output runs/mini

This module only turns flags and a TOML file into configs; the recipe is
:func:`plmkit.training.bert_pretraining.pretrain_bert`: resolve the corpus (a path, or a built-in
name: ``prose``, ``ptb``), pick the vocabulary (MiniLM's uncased 30,522 by default, or
``--train-tokenizer N`` to learn one from the corpus), split off held-out documents, prepare the
instances once into memmap shards (reused while the settings and tokenizer match), then run the
one Trainer with the pre-training task. A TOML file (``--config``) maps onto the same fields:
``[model]`` → BertConfig, ``[training]`` → TrainingConfig, ``[data]`` →
:class:`PretrainDataConfig`; flags given on the command line win.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from plmkit.commands._common import add_run_arguments, resume_from
from plmkit.commands._types import (non_negative_int, open_probability, positive_float,
                                    positive_int, probability)
from plmkit.config import config_from_dict, load_toml
from plmkit.errors import PlmError
from plmkit.models.bert import BERT_SIZES, BertConfig
from plmkit.models.pretrained import check_model_size
from plmkit.training import TrainingConfig
# build_tokenizer: imported here for callers of this module's old API (it lived here)
from plmkit.training.bert_pretraining import (RECIPES, PretrainDataConfig, build_tokenizer,
                                              pretrain_bert, recipe)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pretrain", help="pre-train BERT (MLM + NSP) on a text corpus",
        description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", help="text file/folder (one sentence per line, blank line "
                        "between documents; or paragraphs), or a built-in name: prose, general, "
                        "movie_reviews, ptb; several joined by commas (general,movie_reviews)")
    parser.add_argument("--output", required=True, help="output folder (checkpoints, curves)")
    parser.add_argument("--config", help="TOML with [model], [training], [data] tables")
    parser.add_argument("--recipe", choices=list(RECIPES), default="bert",
                        # argparse %-formats help: a recipe's "10%" must reach it as "10%%"
                        help="; ".join(f"{r.name}: {r.summary}" for r in RECIPES.values())
                        .replace("%", "%%") + " (the TOML file and flags override its values)")
    parser.add_argument("--init", metavar="CHECKPOINT",
                        help="start from this BERT checkpoint's weights, architecture and "
                             "vocabulary: continued (domain- or task-adaptive) pre-training on "
                             "--corpus, with a fresh optimiser and schedule")
    parser.add_argument("--model-size", default=None,
                        help="tiny (2/128), mini (4/256), small (4/512), medium (8/512), base (12/768)")
    parser.add_argument("--layers", type=positive_int, dest="num_hidden_layers")
    parser.add_argument("--hidden", type=positive_int, dest="hidden_size")
    parser.add_argument("--heads", type=positive_int, dest="num_attention_heads")
    parser.add_argument("--intermediate", type=positive_int, dest="intermediate_size")
    parser.add_argument("--tokenizer", help="vocab.txt or folder (default: MiniLM's uncased vocab)")
    parser.add_argument("--train-tokenizer", type=non_negative_int, metavar="VOCAB_SIZE",
                        help="learn a WordPiece vocabulary of this size from the corpus instead")
    parser.add_argument("--cased", action="store_true", help="with --train-tokenizer: keep case")
    parser.add_argument("--max-seq-length", type=positive_int)
    parser.add_argument("--dupe-factor", type=positive_int)
    parser.add_argument("--whole-word-mask", action="store_true", default=None)
    parser.add_argument("--dynamic-masking", action="store_true", default=None)
    parser.add_argument("--batch-size", type=positive_int)
    parser.add_argument("--max-steps", type=non_negative_int)
    parser.add_argument("--lr", type=positive_float, dest="learning_rate")
    parser.add_argument("--warmup-steps", type=non_negative_int)
    parser.add_argument("--schedule", choices=["linear", "triangular", "cosine", "constant"])
    parser.add_argument("--accumulation", type=positive_int, dest="gradient_accumulation_steps")
    parser.add_argument("--eval-every", type=non_negative_int)
    parser.add_argument("--objective", choices=["mlm_nsp", "mlm"],
                        help="mlm_nsp (default): BERT's sentence pairs with next sentence "
                             "prediction; mlm: rows packed full of whole sentences, masked LM "
                             "alone (RoBERTa's FULL-SENTENCES)")
    parser.add_argument("--masked-lm-prob", type=open_probability,
                        help="share of tokens to predict (default 0.15; Wettig et al. 2022 found "
                             "up to 0.4 pays for large models)")
    parser.add_argument("--warmup-ratio", type=probability,
                        help="warm-up as a share of the run (of the minutes, on the time clock)")
    parser.add_argument("--errors", choices=["strict", "replace"],
                        help="invalid UTF-8 in the corpus: stop (default) or replace")
    add_run_arguments(parser, unset=True)
    parser.set_defaults(func=run)


def load_settings(args: argparse.Namespace):
    """TOML file, then command-line flags, onto the three config dataclasses."""
    table: dict[str, Any] = load_toml(args.config) if args.config else {}
    unknown = set(table) - {"model", "training", "data"}
    if unknown:
        raise PlmError(f"unknown table(s) {sorted(unknown)}; use [model], [training], [data]",
                       path=args.config)
    model_values = dict(table.get("model", {}))
    if args.init:
        _check_init(args, model_values)
    size = args.model_size or model_values.pop("size", "mini")
    if size not in BERT_SIZES:
        raise PlmError(f"unknown model size {size!r}; choose one of {', '.join(BERT_SIZES)}",
                       field="model_size")
    chosen = recipe(args.recipe)
    model_values = {**BERT_SIZES[size], **chosen.model, **model_values}
    for name in ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size"):
        if getattr(args, name) is not None:
            model_values[name] = getattr(args, name)
    data = config_from_dict(PretrainDataConfig, {**chosen.data, **table.get("data", {})},
                            source=args.config)
    flags = {"corpus": args.corpus, "tokenizer": args.tokenizer,
             "train_tokenizer": args.train_tokenizer, "max_seq_length": args.max_seq_length,
             "dupe_factor": args.dupe_factor, "whole_word_mask": args.whole_word_mask,
             "dynamic_masking": args.dynamic_masking, "batch_size": args.batch_size,
             "errors": args.errors, "objective": args.objective,
             "masked_lm_prob": args.masked_lm_prob}
    data = dataclasses.replace(data, **{k: v for k, v in flags.items() if v is not None})
    if args.cased:
        data.lowercase = False
    training_values = {"learning_rate": 1e-4, "warmup_steps": 100, "max_steps": 1000,
                       "log_every": 10, "eval_every": 200, "save_every": 200,
                       "plot_metrics": ["loss", "mlm_accuracy", "nsp_accuracy"],
                       **chosen.training, **table.get("training", {}),
                       "output_dir": args.output, "recipe": chosen.name,
                       "init_from": str(Path(args.init).resolve()) if args.init else ""}
    if chosen.needs_budget and not (args.max_minutes or training_values.get("max_minutes")):
        raise PlmError(f"--recipe {chosen.name} plans its schedule over a time budget: give "
                       "--max-minutes (e.g. 60)", field="max_minutes")
    if args.max_minutes is not None:  # the recipe's time clock is only valid with a budget
        training_values["max_minutes"] = args.max_minutes
    training = config_from_dict(TrainingConfig, training_values, source=args.config)
    overrides = {k: getattr(args, k) for k in ("max_steps", "max_minutes", "learning_rate",
                                               "warmup_steps",
                                               "schedule", "gradient_accumulation_steps",
                                               "precision", "compile", "eval_every",
                                               "save_every", "seed", "schedule_clock",
                                               "min_lr_ratio", "warmup_ratio")}
    given = {k: v for k, v in overrides.items() if v is not None}
    if given.get("schedule_clock") == "time" and "max_steps" not in given \
            and "max_steps" not in table.get("training", {}):
        given["max_steps"] = 0  # the budget ends the run, not the 1000-step default
    training = dataclasses.replace(training, **given)
    if args.no_progress:
        training.progress = False
    try:
        model = BertConfig(**model_values)
    except (TypeError, ValueError) as exc:
        raise PlmError(f"invalid model settings: {exc}", path=args.config, field="model") from None
    except PlmError as exc:
        if exc.path is None and args.config:  # a [model] value from the TOML file: name it
            raise PlmError(exc.message, path=args.config, field=exc.field) from None
        raise
    check_model_size(model, source=args.config)  # --layers/--hidden typed by hand: before any work
    if args.init:
        model, data = _init_settings(args.init, chosen, data)
    return model, training, data


# Flags that would describe another network or vocabulary than the --init checkpoint's.
_ARCHITECTURE_FLAGS = ("model_size", "num_hidden_layers", "hidden_size", "num_attention_heads",
                       "intermediate_size", "tokenizer", "train_tokenizer")


def _check_init(args: argparse.Namespace, model_values: dict[str, Any]) -> None:
    """--init takes the network and vocabulary from the checkpoint: a flag or [model] table
    that would set them too is a conflict, said before any work."""
    given = [f"--{name.replace('_', '-')}" for name in _ARCHITECTURE_FLAGS
             if getattr(args, name) not in (None, 0)]
    if args.cased:
        given.append("--cased")
    if model_values:
        given.append("[model] in --config")
    if given:
        raise PlmError(f"--init takes the architecture and vocabulary from the checkpoint; "
                       f"drop {', '.join(given)}", path=args.init, field="init")


def _init_settings(folder: str, chosen: Any, data: PretrainDataConfig
                   ) -> tuple[BertConfig, PretrainDataConfig]:
    """The checkpoint's config (the recipe's dropout applied: the budget recipe trains without
    it) and its vocabulary; sequences no longer than its position table."""
    from plmkit.models.bert import BertModel

    path = Path(folder)
    if not path.is_dir():
        raise PlmError("not a checkpoint folder", path=path, field="init")
    dropout = {k: v for k, v in chosen.model.items() if k.endswith("dropout_prob")}
    config = BertModel.load_config(path, **dropout)
    if not (path / "vocab.txt").is_file():
        raise PlmError("the checkpoint has no vocab.txt", path=path, field="init")
    if data.max_seq_length > config.max_position_embeddings:
        raise PlmError(f"--max-seq-length {data.max_seq_length} is longer than the checkpoint's "
                       f"{config.max_position_embeddings} positions", path=path,
                       field="max_seq_length")
    return config, dataclasses.replace(data, tokenizer=str(path), train_tokenizer=0)


def run(args: argparse.Namespace) -> int:
    model, training, data = load_settings(args)
    pretrain_bert(model, data, training, resume=resume_from(args), init=args.init,
                  log=lambda message: print(f"plmkit: {message}"))
    return 0


__all__ = ["PretrainDataConfig", "build_tokenizer", "load_settings", "register", "run"]
