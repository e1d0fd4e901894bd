"""``plm finetune / evaluate / predict`` and the interactive ``plm classify / ner / qa``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from plmkit.commands._common import (add_run_arguments, check_output_file, resume_from,
                                     run_options)
from plmkit.downstream.settings import TASK_NAMES, canonical_task
from plmkit.errors import PlmError
from plmkit.commands._types import (any_float, any_int, fraction, non_negative_float,
                                    non_negative_int, positive_float, positive_int, probability)
from plmkit.pipelines import finetuned_pipeline


def register(subparsers) -> None:
    _register_finetune(subparsers)
    _register_evaluate(subparsers)
    _register_predict(subparsers)
    _register_interactive(subparsers)


# ------------------------------------------------------------------------------- parsers
def _add_reading_flags(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """Flags that say how input files are read (defaults come from the checkpoint's task.json
    when ``defaults`` is False)."""
    parser.add_argument("--text-column", default=None,
                        help="classify: text column (default text); pair: first text (text_a)")
    parser.add_argument("--text-pair-column", default=None,
                        help="pair: second text column (default text_b)")
    parser.add_argument("--label-column", default="label" if defaults else None,
                        help="label column (default label)")
    parser.add_argument("--token-column", type=any_int, default=0 if defaults else None,
                        help="tag: CoNLL column of the tokens (default 0)")
    parser.add_argument("--tag-column", type=any_int, default=-1 if defaults else None,
                        help="tag: CoNLL column of the tags (default -1, the last)")
    parser.add_argument("--question-column", default="question" if defaults else None,
                        help="qa tables: question column")
    parser.add_argument("--context-column", default="context" if defaults else None,
                        help="qa tables: context column")
    parser.add_argument("--max-length", type=non_negative_int, default=0 if defaults else None,
                        help="pieces per input (default 128, qa 384; longer inputs are "
                             "truncated, tagged in windows, or read in QA windows)")
    parser.add_argument("--doc-stride", type=positive_int, default=128 if defaults else None,
                        help="qa: pieces between the starts of two windows (default 128)")
    parser.add_argument("--max-query-length", type=positive_int, default=64 if defaults else None)
    parser.add_argument("--max-answer-length", type=positive_int, default=30 if defaults else None)
    parser.add_argument("--n-best-size", type=positive_int, default=20 if defaults else None)
    parser.add_argument("--null-score-diff-threshold", type=any_float,
                        default=0.0 if defaults else None,
                        help="qa v2.0: answer nothing when null score − best span > this")


def _register_finetune(subparsers) -> None:
    parser = subparsers.add_parser(
        "finetune", help="fine-tune a BERT checkpoint on classify / pair / qa / tag data",
        description="Fine-tune BERT (ours, MiniLM or any Hugging Face BERT folder) on one of the "
                    "four downstream families with the one Trainer: dynamic padding, "
                    "length-grouped batches, evaluation on --dev every epoch, the best model "
                    "kept (early stopping with --patience), test scores in results.json. Data "
                    "may be files or built-in datasets: polarity:train, wic:dev, "
                    "wordnet_qa:test, people_daily_ner:train.")
    parser.add_argument("--task", required=True, choices=TASK_NAMES, metavar="TASK",
                        help="classify (text,label), pair (text_a,text_b,label), qa (SQuAD "
                             "JSON), tag / ner (CoNLL)")
    parser.add_argument("--model", required=True, help="checkpoint folder to start from")
    parser.add_argument("--train", required=True, help="training file or NAME:SPLIT")
    parser.add_argument("--dev", default=None, help="development file (best model, early stop)")
    parser.add_argument("--test", default=None, help="test file, scored once at the end")
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument("--epochs", type=positive_float, default=3.0)
    parser.add_argument("--max-steps", type=non_negative_int, default=0, help="overrides --epochs when > 0")
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--eval-batch-size", type=positive_int, default=64)
    parser.add_argument("--lr", "--learning-rate", dest="learning_rate", type=positive_float, default=5e-5)
    parser.add_argument("--weight-decay", type=non_negative_float, default=0.01)
    parser.add_argument("--warmup-ratio", type=probability, default=0.1)
    parser.add_argument("--eval-every", type=non_negative_int, default=0,
                        help="evaluate every N steps (default: every epoch)")
    parser.add_argument("--metric", dest="metric_for_best", default=None,
                        help="dev metric that picks the best model (default: accuracy; tag and "
                             "qa: f1; regression: corr)")
    parser.add_argument("--patience", "--early-stopping-patience",
                        dest="early_stopping_patience", type=non_negative_int, default=0,
                        help="stop after this many evaluations without improvement (0 = off)")
    parser.add_argument("--train-fraction", type=fraction, default=1.0,
                        help="train on a fixed random share of the training set")
    parser.add_argument("--dropout", type=probability, default=None,
                        help="the encoder's dropout (default: the checkpoint's; 0.1 when it was "
                             "pre-trained without dropout, as --recipe budget does)")
    parser.add_argument("--scheme", choices=("bio", "iobes", "none"), default="bio",
                        help="tag: scheme the model predicts (input files may use either)")
    parser.add_argument("--regression", action="store_true",
                        help="classify/pair: numeric labels, MSE loss, Pearson/Spearman")
    parser.add_argument("--device", default="auto")
    _add_reading_flags(parser, defaults=True)
    add_run_arguments(parser)
    parser.set_defaults(func=run_finetune)


def _register_evaluate(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="score a fine-tuned checkpoint on labelled data",
        description="Accuracy/F1/MCC (classify, pair), Pearson/Spearman (regression), entity "
                    "P/R/F1 as conlleval (tag), SQuAD EM/F1 (qa). The task and label set are "
                    "read from the checkpoint.")
    parser.add_argument("--model", required=True, help="fine-tuned checkpoint folder")
    parser.add_argument("--data", required=True, help="labelled file or NAME:SPLIT")
    parser.add_argument("--task", choices=TASK_NAMES, metavar="TASK", default=None,
                        help="only for checkpoints without task.json")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--output", default=None, help="also write the metrics to this JSON")
    _add_runtime_flag(parser)
    _add_reading_flags(parser, defaults=False)
    parser.set_defaults(func=run_evaluate)


def _add_runtime_flag(parser) -> None:
    parser.add_argument("--runtime", choices=("torch", "torch-int8", "onnx"), default="torch",
                        help="torch (default); torch-int8: the encoder's linears in PyTorch's "
                             "dynamic int8 (CPU); onnx: a folder written by plm export --format "
                             "onnx, run by ONNX Runtime (same outputs)")


def _register_predict(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict", help="predict every row of a file into JSONL",
        description="One JSON object per input row, in input order: {label, score} "
                    "(classify/pair), {answer, score} (qa; --details adds id and the character "
                    "span start/end), {tokens, tags, entities} (tag). Tagging writes CoNLL "
                    "(token<TAB>tag) instead when --output ends in .conll, .txt, .bio, .iob or "
                    ".iobes. Written atomically: on any error no file is left.")
    parser.add_argument("--model", required=True, help="fine-tuned checkpoint folder")
    parser.add_argument("--input", required=True, help="input file or NAME:SPLIT")
    parser.add_argument("--output", required=True, help="output .jsonl")
    parser.add_argument("--task", choices=TASK_NAMES, metavar="TASK", default=None)
    parser.add_argument("--input-format", choices=("conll", "text", "table"), default=None,
                        help="tag: how to read --input (default: from the suffix and content)")
    parser.add_argument("--output-scheme", choices=("bio", "iobes"), default=None,
                        help="tag: write the tags in this scheme (default: the model's)")
    parser.add_argument("--details", action="store_true",
                        help="qa: also write each question's id and the answer's character span")
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--device", default="cpu")
    _add_runtime_flag(parser)
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar (there is none either when stderr is not a terminal)")
    _add_reading_flags(parser, defaults=False)
    parser.set_defaults(func=run_predict)


def _register_interactive(subparsers) -> None:
    classify = subparsers.add_parser(
        "classify", help="classify texts with a fine-tuned checkpoint",
        description="Print label and probability for each TEXT (or each stdin line).")
    classify.add_argument("--model", required=True)
    classify.add_argument("texts", nargs="*", help="texts (default: read lines from stdin)")
    classify.add_argument("--pair", default=None, help="second sentence (pair checkpoints)")
    classify.add_argument("--json", action="store_true", help="print JSON lines")
    classify.set_defaults(func=run_classify)

    ner = subparsers.add_parser(
        "ner", help="tag entities in texts with a fine-tuned checkpoint",
        description="Print the entities of each TEXT (or each stdin line).")
    ner.add_argument("--model", required=True)
    ner.add_argument("texts", nargs="*", help="texts (default: read lines from stdin)")
    ner.add_argument("--json", action="store_true", help="print JSON lines")
    ner.set_defaults(func=run_ner)

    qa = subparsers.add_parser(
        "qa", help="answer a question from a context with a fine-tuned checkpoint")
    qa.add_argument("--model", required=True)
    qa.add_argument("--context", required=True, help="passage text, or @FILE to read it")
    qa.add_argument("--question", action="append", default=[],
                    help="question (repeatable; default: read lines from stdin)")
    qa.add_argument("--json", action="store_true", help="print JSON lines")
    qa.set_defaults(func=run_qa)


# ------------------------------------------------------------------------------- actions
_READING_FIELDS = ("text_column", "text_pair_column", "label_column", "token_column",
                   "tag_column", "question_column", "context_column", "max_length", "doc_stride",
                   "max_query_length", "max_answer_length", "n_best_size",
                   "null_score_diff_threshold")


def _reading_overrides(args: argparse.Namespace) -> dict:
    values = {name: getattr(args, name) for name in _READING_FIELDS}
    return {k: v for k, v in values.items() if v is not None}


def _task_name(name: str | None) -> str | None:
    return canonical_task(name) if name else None


def run_finetune(args: argparse.Namespace) -> int:
    from plmkit.downstream import TaskSettings
    from plmkit.training.finetune import FinetuneConfig, finetune

    if args.batch_size < 1 or args.epochs <= 0 and args.max_steps <= 0:
        raise PlmError("--batch-size and --epochs (or --max-steps) must be positive")
    resume = resume_from(args)
    settings = TaskSettings(task=_task_name(args.task), scheme=args.scheme,
                            regression=args.regression, **_reading_overrides(args))
    config = FinetuneConfig(
        task=settings.task, model=args.model, train=args.train, dev=args.dev, test=args.test,
        output_dir=args.output, epochs=args.epochs, max_steps=args.max_steps,
        batch_size=args.batch_size, eval_batch_size=args.eval_batch_size,
        learning_rate=args.learning_rate, weight_decay=args.weight_decay,
        warmup_ratio=args.warmup_ratio, eval_every=args.eval_every,
        metric_for_best=args.metric_for_best,
        early_stopping_patience=args.early_stopping_patience,
        train_fraction=args.train_fraction, dropout=args.dropout, device=args.device,
        settings=settings,
        **run_options(args))
    result = finetune(config, resume=resume)
    print(f"fine-tuned {settings.task} on {result.train_examples} examples, "
          f"{result.global_step} steps, {result.seconds:.0f}s → {result.output_dir}")
    if result.dev_metrics:
        print("dev:  " + _format_metrics(result.dev_metrics))
    if result.test_metrics:
        print("test: " + _format_metrics(result.test_metrics))
    return 0


def _format_metrics(metrics: dict) -> str:
    keys = [k for k in ("accuracy", "f1", "exact_match", "precision", "recall", "macro_f1",
                        "mcc", "pearson", "spearman", "loss") if k in metrics]
    return "  ".join(f"{k}={metrics[k]:.4f}" for k in keys)


def run_evaluate(args: argparse.Namespace) -> int:
    from plmkit._io import write_text_atomic
    from plmkit.downstream import evaluate_checkpoint

    check_output_file(args.output)

    metrics = evaluate_checkpoint(args.model, args.data, task=_task_name(args.task),
                                  batch_size=args.batch_size, device=args.device,
                                  runtime=args.runtime,
                                  **_reading_overrides(args))
    for key, value in metrics.items():
        print(f"{key:24s} {value:.4f}" if isinstance(value, float) else f"{key:24s} {value}")
    if args.output:
        write_text_atomic(args.output, json.dumps(metrics, indent=2) + "\n")
    return 0


CONLL_SUFFIXES = (".conll", ".txt", ".bio", ".iob", ".iobes")


def run_predict(args: argparse.Namespace) -> int:
    from plmkit.data.tasks import write_conll, write_jsonl

    check_output_file(args.output)
    progress = not args.no_progress and sys.stderr.isatty()
    pipe = finetuned_pipeline(args.model, _task_name(args.task), batch_size=args.batch_size,
                          device=args.device, progress=progress, runtime=args.runtime,
                          **_reading_overrides(args))
    if pipe.settings.task != "tag":
        records = pipe.predict_file(args.input)
        if pipe.settings.task == "qa" and not args.details:
            records = [{"answer": r["answer"], "score": r["score"]} for r in records]
        write_jsonl(args.output, records)
        print(f"wrote {len(records)} predictions → {args.output}")
        return 0
    records = pipe.predict_file(args.input, args.input_format)
    if args.output_scheme:
        from plmkit.evaluation.tagging import convert_tags

        if pipe.settings.scheme == "none":
            raise PlmError("this checkpoint's tags are not entity tags; drop --output-scheme",
                           field="output_scheme")
        for record in records:
            record["tags"] = convert_tags(record["tags"], args.output_scheme)
    if Path(args.output).suffix.lower() in CONLL_SUFFIXES:
        write_conll(args.output, [(r["tokens"], r["tags"]) for r in records])
    else:
        write_jsonl(args.output, records)
    print(f"wrote {len(records)} predictions → {args.output}")
    return 0


def _lines(texts: list[str]) -> list[str]:
    if texts:
        return texts
    return [line.rstrip("\n") for line in sys.stdin if line.strip()]


def run_classify(args: argparse.Namespace) -> int:
    pipe = finetuned_pipeline(args.model, None)
    texts = _lines(args.texts)
    inputs = [(t, args.pair) for t in texts] if args.pair is not None else texts
    for text, result in zip(texts, pipe(inputs)):
        shown = {"text": text} if args.pair is None else {"text": text, "text_pair": args.pair}
        if args.json:
            print(json.dumps({**shown, **result}, ensure_ascii=False))
        else:
            score = result["score"]
            print(f"{result['label']}\t{score:.4f}\t" + "\t".join(shown.values()))
    return 0


def run_ner(args: argparse.Namespace) -> int:
    pipe = finetuned_pipeline(args.model, None)
    for result in pipe(_lines(args.texts)):
        if args.json:
            print(json.dumps(result, ensure_ascii=False))
            continue
        print(" ".join(f"{token}/{tag}" if tag != "O" else token
                       for token, tag in zip(result["tokens"], result["tags"])))
        for entity in result["entities"]:
            print(f"  {entity['type']}\t{entity['text']}\t{entity['score']:.3f}")
    return 0


def run_qa(args: argparse.Namespace) -> int:
    from plmkit._io import read_text_file

    context = args.context
    if context.startswith("@"):
        context = read_text_file(context[1:])
    pipe = finetuned_pipeline(args.model, None)
    questions = _lines(args.question)
    results = pipe(inputs=[{"question": q, "context": context} for q in questions])
    for question, result in zip(questions, results):
        if args.json:
            print(json.dumps({"question": question, **result}, ensure_ascii=False))
        else:
            answer = result["answer"] or "(no answer)"
            print(f"{answer}\t{result['score']:.4f}\t{question}")
    return 0


__all__ = ["register"]
