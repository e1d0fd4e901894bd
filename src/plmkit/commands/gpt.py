"""``plm train-gpt`` (causal-LM pre-training), ``plm finetune-gpt`` (GPT-1 classification) and
``plm generate`` (streamed sampling)."""

from __future__ import annotations

import argparse
import json
import sys

from plmkit.commands._common import (CLOCK_WARMUP_RATIO, add_run_arguments, budget_steps,
                                     resume_from, run_options)
from plmkit.errors import PlmError
from plmkit.commands._types import (any_int, non_negative_float, non_negative_int, positive_float,
                                    positive_int, probability)


def register(subparsers) -> None:
    from plmkit.models.gpt import GPT_SIZES

    train = subparsers.add_parser(
        "train-gpt", help="pre-train a GPT language model on a corpus",
        description="Pre-train a GPT (decoder-only causal LM) with the one Trainer; writes a "
                    "Hugging Face-layout checkpoint with its tokenizer and the held-out "
                    "perplexity (lm_results.json).")
    train.add_argument("--corpus", default="ptb",
                       help="ptb, ptb-char, prose, chinese-poems, a text file, or a folder with "
                            "train.txt/valid.txt[/test.txt] (default: ptb)")
    train.add_argument("--level", choices=("word", "char"), default=None,
                       help="tokens are words or characters (default: the corpus's own)")
    train.add_argument("--size", choices=tuple(GPT_SIZES), default="nano",
                       help="named model size (default: nano)")
    train.add_argument("--block-size", type=positive_int, default=128, help="context length (default 128)")
    train.add_argument("--batch-size", type=positive_int, default=32)
    train.add_argument("--max-steps", type=non_negative_int, default=None,
                       help="default 1000; with --schedule-clock time, none (the budget ends "
                            "the run)")
    train.add_argument("--learning-rate", "--lr", type=positive_float, default=1e-3)
    train.add_argument("--warmup-steps", type=non_negative_int, default=100)
    train.add_argument("--schedule", default="cosine",
                       choices=("cosine", "linear", "constant"))
    train.add_argument("--weight-decay", type=non_negative_float, default=0.1)
    train.add_argument("--dropout", type=probability, default=0.0)
    train.add_argument("--min-count", type=non_negative_int, default=1,
                       help="word level: rarer words become <unk>")
    train.add_argument("--lowercase", action="store_true",
                       help="lowercase the text (the saved tokenizer lowercases what it reads "
                            "later, e.g. fine-tuning data)")
    train.add_argument("--eval-every", type=non_negative_int, default=0)
    train.add_argument("--eval-tokens", type=positive_int, default=None,
                       help="evaluate on the first N held-out tokens only")
    train.add_argument("--output", required=True, help="output folder")
    add_run_arguments(train)
    train.set_defaults(func=run_train)

    tune = subparsers.add_parser(
        "finetune-gpt", help="fine-tune a train-gpt checkpoint as a classifier (GPT-1 style)",
        description="GPT-1's fine-tuning: each example becomes '<start> text [<delim> pair] "
                    "<extract>' (three new tokens), a fresh linear head reads the last token, and "
                    "the LM loss is kept as an auxiliary objective (--lm-weight, 0.5 in the "
                    "paper). Data: CSV/TSV/JSONL with text[,text_pair],label columns, or built-in "
                    "NAME:SPLIT such as polarity:train. Writes the classifier and results.json "
                    "(dev/test accuracy) to --output.")
    tune.add_argument("checkpoint", help="a plm train-gpt checkpoint folder")
    tune.add_argument("--train", required=True, help="training file or NAME:SPLIT")
    tune.add_argument("--dev", help="development file (evaluated during training)")
    tune.add_argument("--test", help="test file, scored once at the end")
    tune.add_argument("--text-column", default="text")
    tune.add_argument("--text-pair-column", default=None,
                      help="second text of a pair task (joined with <delim>)")
    tune.add_argument("--label-column", default="label")
    tune.add_argument("--max-length", type=positive_int, default=128,
                      help="tokens per example, task tokens included (cut to the context window)")
    tune.add_argument("--batch-size", type=positive_int, default=32)
    tune.add_argument("--max-steps", type=non_negative_int, default=0, help="0: --epochs decides")
    tune.add_argument("--epochs", type=positive_float, default=3.0)
    tune.add_argument("--learning-rate", "--lr", type=positive_float, default=6.25e-5,
                      help="GPT-1's fine-tuning rate (default 6.25e-5)")
    tune.add_argument("--warmup-ratio", type=probability, default=0.002)
    tune.add_argument("--lm-weight", type=non_negative_float, default=0.5,
                      help="λ of the auxiliary language-model loss (0 = off)")
    tune.add_argument("--eval-every", type=non_negative_int, default=0)
    tune.add_argument("--output", required=True, help="output folder")
    add_run_arguments(tune)
    tune.set_defaults(func=run_finetune)

    gen = subparsers.add_parser(
        "generate", help="continue a prompt with a GPT checkpoint, printing tokens as they come",
        description="Sample a continuation of PROMPT from a GPT checkpoint (plm train-gpt or a "
                    "Hugging Face GPT-2 folder). --temperature 0 is greedy decoding.")
    gen.add_argument("checkpoint", help="checkpoint folder")
    gen.add_argument("prompt", help="text to continue")
    gen.add_argument("--max-new-tokens", type=positive_int, default=100)
    gen.add_argument("--temperature", type=non_negative_float, default=1.0)
    gen.add_argument("--top-k", type=non_negative_int, default=0, help="0 = off")
    gen.add_argument("--top-p", type=probability, default=1.0, help="1 = off")
    gen.add_argument("--repetition-penalty", type=positive_float, default=1.0, help="1 = off")
    gen.add_argument("--stop", action="append", default=[], metavar="TEXT",
                     help="stop when this one-token text is generated (repeatable), e.g. '\\n'")
    gen.add_argument("--seed", type=any_int, default=None)
    gen.add_argument("--no-cache", action="store_true",
                     help="recompute the whole prefix at every step (slow; for checking)")
    gen.add_argument("--device", default="cpu")
    gen.set_defaults(func=run_generate)


def run_train(args: argparse.Namespace) -> int:
    from plmkit.training import TrainingConfig
    from plmkit.training.causal_lm import GPTPretrainingConfig, pretrain_gpt

    args.max_steps = budget_steps(args, 1000)
    if args.max_steps < 1 and args.schedule_clock != "time":
        raise PlmError("--max-steps must be ≥ 1", field="max_steps")
    resume = resume_from(args)
    setup = GPTPretrainingConfig(
        corpus=args.corpus, level=args.level, size=args.size, block_size=args.block_size,
        batch_size=args.batch_size, dropout=args.dropout, min_count=args.min_count,
        eval_tokens=args.eval_tokens, lowercase=args.lowercase)
    if args.batch_size < 1:
        raise PlmError("--batch-size must be ≥ 1", field="batch_size")
    training = TrainingConfig(
        output_dir=args.output, max_steps=args.max_steps, learning_rate=args.learning_rate,
        weight_decay=args.weight_decay, schedule=args.schedule, warmup_steps=args.warmup_steps,
        warmup_ratio=CLOCK_WARMUP_RATIO if args.schedule_clock == "time" else 0.0,
        adam_betas=(0.9, 0.95), eval_every=args.eval_every,
        plot_metrics=("loss", "eval_loss"), **run_options(args))
    _, results = pretrain_gpt(setup, training, resume=resume,
                              log=lambda m: print(m, file=sys.stderr))
    print(json.dumps({k: round(v, 4) for k, v in results.items()}))
    return 0


def run_finetune(args: argparse.Namespace) -> int:
    from plmkit.training import TrainingConfig
    from plmkit.training.causal_lm import GPTFinetuneConfig, finetune_gpt

    for name in ("batch_size", "max_length"):
        if getattr(args, name) < 1:
            raise PlmError(f"--{name.replace('_', '-')} must be ≥ 1", field=name)
    if args.max_length < 3:
        raise PlmError("--max-length must be ≥ 3 (<start>, a token, <extract>)",
                       field="max_length")
    resume = resume_from(args)
    setup = GPTFinetuneConfig(
        train=args.train, dev=args.dev, test=args.test, text_column=args.text_column,
        text_pair_column=args.text_pair_column, label_column=args.label_column,
        max_length=args.max_length, batch_size=args.batch_size, lm_weight=args.lm_weight)
    training = TrainingConfig(
        output_dir=args.output, max_steps=args.max_steps, num_epochs=args.epochs,
        learning_rate=args.learning_rate, warmup_ratio=args.warmup_ratio, schedule="linear",
        eval_every=args.eval_every, plot_metrics=("loss", "eval_accuracy"),
        **run_options(args))
    results = finetune_gpt(args.checkpoint, setup, training, resume=resume,
                           log=lambda m: print(f"plmkit: {m}", file=sys.stderr))
    print(json.dumps({k: round(v, 4) for k, v in results.items()}))
    return 0


def run_generate(args: argparse.Namespace) -> int:
    from plmkit.pipelines.generate import TextGenerationPipeline

    pipe = TextGenerationPipeline(args.checkpoint, device=args.device)
    prompt = args.prompt.replace("\\n", "\n")
    stop = [s.replace("\\n", "\n") for s in args.stop]
    pieces = pipe.stream(prompt, stop=stop, max_new_tokens=args.max_new_tokens,
                         temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                         repetition_penalty=args.repetition_penalty, seed=args.seed,
                         use_cache=not args.no_cache)
    out = sys.stdout
    out.write(pipe.tokenizer.decode(pipe.tokenizer.encode(prompt)))
    out.flush()
    for piece in pieces:
        out.write(piece)
        out.flush()
    out.write("\n")
    return 0
