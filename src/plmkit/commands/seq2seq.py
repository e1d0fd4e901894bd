"""``plm train-translation`` (the encoder–decoder Transformer) and ``plm translate``."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

from plmkit.commands._common import (CLOCK_WARMUP_RATIO, add_run_arguments, budget_steps,
                                     check_output_file, resume_from, run_options)
from plmkit.errors import PlmError
from plmkit.commands._types import (non_negative_float, non_negative_int, positive_float,
                                    positive_int, probability)


def register(subparsers) -> None:
    from plmkit.models.transformer import TRANSFORMER_SIZES

    train = subparsers.add_parser(
        "train-translation", help="train an encoder–decoder Transformer for translation",
        description="Train the original Transformer (Vaswani et al., 2017) on parallel text with "
                    "the one Trainer: joint WordPiece vocabulary, label smoothing, the paper's "
                    "warm-up schedule. Files: one TSV of 'source<TAB>target' lines, two aligned "
                    "files, or a prefix with .SRC/.TGT files; 'en_de' is the built-in "
                    "English–German corpus. Pairs with an empty side are skipped and counted. "
                    "Writes the model, its vocabulary and translation_results.json (test BLEU, "
                    "greedy and beam) to --output.")
    train.add_argument("--train", nargs="+", required=True, metavar="FILE",
                       help="training pairs: TSV, two aligned files, a prefix, or en_de")
    train.add_argument("--dev", nargs="+", metavar="FILE", help="held-out pairs (dev loss/BLEU)")
    train.add_argument("--test", nargs="+", metavar="FILE",
                       help="test pairs: BLEU after training (default: dev)")
    train.add_argument("--src-lang", default="en", help="source language code (default en)")
    train.add_argument("--tgt-lang", default="de", help="target language code (default de)")
    train.add_argument("--size", choices=tuple(TRANSFORMER_SIZES), default="small",
                       help="named model size; base is the paper's (default: small)")
    train.add_argument("--vocab-size", type=positive_int, default=8000,
                       help="joint WordPiece vocabulary size (default 8000)")
    train.add_argument("--tokenizer", metavar="FOLDER", help="use this vocabulary folder")
    train.add_argument("--lowercase", action="store_true", help="uncased vocabulary")
    train.add_argument("--max-length", type=positive_int, default=64,
                       help="longest sentence in tokens; longer ones are cut (default 64)")
    train.add_argument("--batch-size", type=positive_int, default=64, help="sentence pairs per step")
    train.add_argument("--max-steps", type=non_negative_int, default=None,
                       help="default 2000; with --schedule-clock time, none (the budget ends "
                            "the run)")
    train.add_argument("--learning-rate", "--lr", type=positive_float, default=None,
                       help="noam: the factor of d^-0.5·min(step^-0.5, step·warmup^-1.5) "
                            "(default 1.0); other schedules: the peak rate (default 5e-4)")
    train.add_argument("--schedule", default=None,
                       choices=("noam", "linear", "cosine", "constant"),
                       help="default: noam planned over the steps; with --max-minutes and no "
                            "--max-steps (or with --schedule-clock time), linear decay planned "
                            "over the time budget, which doubled an hour's BLEU (README)")
    train.add_argument("--warmup-steps", type=non_negative_int, default=None,
                       help="warm-up steps (default: the paper's 4000, or max_steps/10 if that "
                            "is smaller)")
    train.add_argument("--label-smoothing", type=probability, default=0.1)
    train.add_argument("--dropout", type=probability, default=None, help="default: the size's (0.1)")
    train.add_argument("--norm-first", action="store_true", help="pre-LN instead of post-LN")
    train.add_argument("--learned-positions", action="store_true",
                       help="learned position embeddings instead of sinusoids")
    train.add_argument("--no-share-embeddings", action="store_true",
                       help="separate source and target embedding matrices")
    train.add_argument("--no-tie-output", action="store_true",
                       help="an output projection of its own (not the target embeddings)")
    train.add_argument("--eval-every", type=non_negative_int, default=0, help="dev evaluation every N steps")
    train.add_argument("--bleu-sentences", type=non_negative_int, default=500,
                       help="dev sentences decoded (greedy) for BLEU at each evaluation; 0 = all")
    train.add_argument("--beam", type=positive_int, default=4, help="beam size for the final test BLEU")
    train.add_argument("--test-sentences", type=non_negative_int, default=0,
                       help="final BLEU on the first N test pairs only (0 = all)")
    train.add_argument("--length-penalty", type=non_negative_float, default=0.6, help="GNMT α (0 = off)")
    train.add_argument("--output", required=True, help="output folder")
    add_run_arguments(train)
    # None = not typed, so resolve_schedule can tell a typed `--schedule-clock steps` from none
    train.set_defaults(func=run_train, schedule_clock=None)

    translate = subparsers.add_parser(
        "translate", help="translate sentences with a train-translation checkpoint",
        description="Translate SENTENCE(s), the lines of --input, or standard input. With "
                    "--input/--output the i-th output line translates the i-th input line "
                    "(blank lines stay blank) and the output file is written atomically.")
    translate.add_argument("checkpoint", help="checkpoint folder")
    translate.add_argument("sentences", nargs="*", metavar="SENTENCE")
    translate.add_argument("--input", metavar="FILE", help="one sentence per line")
    translate.add_argument("--output", metavar="FILE", help="write translations here")
    translate.add_argument("--beam", type=positive_int, default=4, help="beam size (1 = greedy)")
    translate.add_argument("--length-penalty", type=non_negative_float, default=0.6, help="GNMT α (0 = off)")
    translate.add_argument("--batch-size", type=positive_int, default=32)
    translate.add_argument("--max-length", type=positive_int, default=None,
                           help="most tokens to generate (default: source length + 50)")
    translate.add_argument("--device", default="cpu")
    translate.set_defaults(func=run_translate)


def _log(message: str) -> None:
    print(f"plmkit: {message}", file=sys.stderr)


def run_train(args: argparse.Namespace) -> int:
    from plmkit._io import write_text_atomic
    from plmkit.evaluation.decoding import LengthPenalty, evaluate_bleu, translate_batch
    from plmkit.training.seq2seq import TranslationSetup, train_translation

    resolve_schedule(args)
    args.max_steps = budget_steps(args, 2000)
    for name in ("max_steps", "batch_size", "vocab_size", "beam"):
        if getattr(args, name) < 1 and not (name == "max_steps" and args.schedule_clock == "time"):
            raise PlmError(f"--{name.replace('_', '-')} must be ≥ 1", field=name)
    if not 0 <= args.label_smoothing < 1:
        raise PlmError("--label-smoothing must be in [0, 1)", field="label_smoothing")
    resume = resume_from(args)
    setup = TranslationSetup(
        train=args.train, dev=args.dev, test=args.test, source_lang=args.src_lang,
        target_lang=args.tgt_lang, size=args.size, vocab_size=args.vocab_size,
        tokenizer=args.tokenizer, lowercase=args.lowercase, max_length=args.max_length,
        batch_size=args.batch_size, label_smoothing=args.label_smoothing, dropout=args.dropout,
        norm_first=args.norm_first,
        positional_encoding="learned" if args.learned_positions else "sinusoidal",
        share_embeddings=not args.no_share_embeddings, tie_output=not args.no_tie_output,
        bleu_sentences=args.bleu_sentences)
    training = translation_training_config(args)
    decode = functools.partial(translate_batch, beam_size=1)
    model, data, result = train_translation(setup, training, decode=decode,
                                            resume=resume, log=_log)
    results: dict = {"global_step": result.global_step,
                     **{k: v for k, v in result.metrics.items() if k.startswith("eval_")}}
    test = data.test or data.dev
    if test is not None:
        split = "test" if data.test is not None else "dev"
        penalty = LengthPenalty(args.length_penalty)
        pairs = test.pairs[: args.test_sentences or None]
        for name, beam in (("greedy", 1), (f"beam{args.beam}", args.beam)):
            scores = evaluate_bleu(model, data.tokenizer, pairs, beam_size=beam,
                                   length_penalty=penalty, tokenize=setup.bleu_tokenize)
            results[f"{split}_bleu_{name}"] = scores["bleu"]
            results[f"{split}_exact_match_{name}"] = scores["exact_match"]
            _log(f"{split} BLEU ({name}): {scores['bleu']:.2f}  [{scores['bleu_signature']}]")
        results[f"{split}_sentences"] = len(pairs)
    write_text_atomic(Path(args.output) / "translation_results.json",
                      json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in results.items()}))
    return 0


def resolve_schedule(args: argparse.Namespace) -> None:
    """``--schedule`` not given: the paper's Noam schedule over the steps, unless the run is
    bounded by time alone (``--max-minutes`` without ``--max-steps``, or ``--schedule-clock
    time``). Then linear decay planned over the budget: Noam would either stop at the default
    2,000 steps long before the budget or, planned over an hour's 10,000 steps, spend most of it at
    a rate too high to settle (EN→DE small, one hour: test BLEU 5.0 against 9.9). A typed
    ``--schedule-clock steps`` keeps the steps' clock (and Noam) even with a budget alone."""
    typed_clock = args.schedule_clock
    args.schedule_clock = typed_clock or "steps"
    if args.schedule is not None:
        return
    on_clock = typed_clock == "time" or (typed_clock is None and args.max_minutes > 0
                                         and args.max_steps is None)
    args.schedule = "linear" if on_clock else "noam"
    if on_clock:
        args.schedule_clock = "time"


def translation_training_config(args: argparse.Namespace):
    """The paper's optimiser (Adam β₂ 0.98, ε 1e-9, Noam warm-up) unless told otherwise."""
    from plmkit.models.transformer import TRANSFORMER_SIZES
    from plmkit.training.trainer import TrainingConfig

    noam = args.schedule == "noam"
    warmup = args.warmup_steps
    if warmup is None:
        warmup = min(4000, max(1, args.max_steps // 10)) if noam else args.max_steps // 20
    rate = args.learning_rate if args.learning_rate is not None else (1.0 if noam else 5e-4)
    return TrainingConfig(
        output_dir=args.output, max_steps=args.max_steps, learning_rate=rate,
        optimizer="adam", adam_betas=(0.9, 0.98), adam_epsilon=1e-9, weight_decay=0.0,
        schedule=args.schedule, warmup_steps=warmup,
        warmup_ratio=CLOCK_WARMUP_RATIO if args.schedule_clock == "time" else 0.0,
        noam_d_model=TRANSFORMER_SIZES[args.size]["d_model"], max_grad_norm=1.0,
        eval_every=args.eval_every, plot_metrics=("loss", "eval_loss", "eval_bleu"),
        **run_options(args))


def run_translate(args: argparse.Namespace) -> int:
    from plmkit._io import atomic_write, read_text_file
    from plmkit.pipelines.translate import TranslationPipeline

    if args.input and args.sentences:
        raise PlmError("give sentences or --input, not both", field="input")
    check_output_file(args.output)
    if args.input:
        text = read_text_file(args.input)
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        lines = [line.rstrip("\r") for line in lines]
        if not any(line.strip() for line in lines):
            raise PlmError("no sentence to translate (the file is empty)", path=args.input)
    elif args.sentences:
        lines = list(args.sentences)
    else:
        lines = [line.rstrip("\r\n") for line in sys.stdin]
        if not any(line.strip() for line in lines):
            raise PlmError("no sentence to translate (standard input is empty)", field="input")
    pipe = TranslationPipeline(args.checkpoint, beam_size=args.beam,
                               length_penalty=args.length_penalty, batch_size=args.batch_size,
                               max_length=args.max_length, device=args.device)
    outputs = pipe.translate(lines, warn=False)
    if pipe.last_report.warning():
        _log(pipe.last_report.warning())
    if args.output:
        with atomic_write(args.output) as handle:
            for line in outputs:
                handle.write(line + "\n")
        _log(f"{len(outputs):,} lines translated → {args.output}")
    else:
        for line in outputs:
            print(line)
    return 0
