"""``plm tokenize`` and ``plm train-tokenizer``: look at BERT's input, learn a vocabulary."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from plmkit._io import corpus_files
from plmkit.errors import PlmError
from plmkit.commands._types import non_negative_int, positive_int


def register(subparsers) -> None:
    show = subparsers.add_parser(
        "tokenize", help="show how BERT's tokenizer cuts a text (tokens, ids, offsets)",
        description="Tokenize a text (or stdin) with a WordPiece vocabulary and show tokens, ids, "
                    "type ids, offsets and word ids.")
    show.add_argument("text", nargs="?", help="the text (default: read stdin)")
    show.add_argument("--pair", help="a second text (sentence B)")
    show.add_argument("--model", help="model folder or vocab.txt (default: all-MiniLM-L6-v2's "
                                      "uncased BERT vocabulary)")
    show.add_argument("--max-length", type=non_negative_int, help="truncate to this many tokens (with "
                                                     "[CLS]/[SEP])")
    show.add_argument("--cased", action="store_true", help="do not lower-case (overrides the "
                                                          "model's tokenizer_config.json)")
    show.add_argument("--json", action="store_true", help="print JSON instead of a table")
    show.set_defaults(func=run_tokenize)

    train = subparsers.add_parser(
        "train-tokenizer", help="learn a WordPiece vocabulary from text files",
        description="Learn a WordPiece vocabulary (vocab.txt + tokenizer_config.json) from "
                    "UTF-8 text files.")
    train.add_argument("--corpus", nargs="+", required=True, type=Path, metavar="FILE",
                       help="UTF-8 text files (.gz allowed)")
    train.add_argument("--output", required=True, type=Path, metavar="DIR",
                       help="folder to write vocab.txt and tokenizer_config.json into")
    train.add_argument("--vocab-size", type=positive_int, default=30522)
    train.add_argument("--min-frequency", type=non_negative_int, default=2,
                       help="never merge a pair seen fewer times (default 2)")
    train.add_argument("--limit-alphabet", type=non_negative_int, default=1000,
                       help="keep the N most frequent characters (default 1000; 0 = all)")
    train.add_argument("--cased", action="store_true", help="keep case and accents")
    train.add_argument("--special-tokens", nargs="+", metavar="TOKEN",
                       default=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    train.add_argument("--errors", choices=("strict", "replace"), default="strict",
                       help="invalid UTF-8: stop with file and line (strict) or replace it")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.set_defaults(func=run_train)


# ----------------------------------------------------------------------------- plm tokenize
def _load(model: str | None, cased: bool):
    from plmkit.tokenization import WordPieceTokenizer

    if model is None:
        from plmkit.datasets import minilm_dir

        model = minilm_dir()
    return WordPieceTokenizer.from_pretrained(model, lowercase=False if cased else None)


def _input_text(args: argparse.Namespace) -> str:
    text = args.text
    if text is None or text == "-":
        text = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    if not text.strip():
        raise PlmError("nothing to tokenize: give a text argument or pipe text on stdin",
                       field="text")
    return text


def run_tokenize(args: argparse.Namespace) -> int:
    text = _input_text(args)
    if args.max_length is not None and args.max_length < 1:
        raise PlmError("--max-length must be positive", field="max_length")
    tokenizer = _load(args.model, args.cased)
    encoding = tokenizer.encode(text, args.pair, max_length=args.max_length)
    texts = {0: text, 1: args.pair}
    rows = []
    for i in range(len(encoding)):
        start, end = encoding.offsets[i]
        sequence = encoding.sequence_ids[i]
        rows.append({"token": encoding.tokens[i], "id": encoding.ids[i],
                     "type_id": encoding.type_ids[i], "offsets": [start, end],
                     "word_id": encoding.word_ids[i], "special": encoding.special_tokens_mask[i],
                     "text": texts[sequence][start:end] if sequence is not None else ""})
    if args.json:
        print(json.dumps({"tokens": encoding.tokens, "ids": encoding.ids,
                          "type_ids": encoding.type_ids, "offsets": encoding.offsets,
                          "word_ids": encoding.word_ids,
                          "special_tokens_mask": encoding.special_tokens_mask,
                          "rows": rows}, ensure_ascii=False))
        return 0
    _print_table(rows)
    print(f"{len(rows)} tokens; lowercase={tokenizer.lowercase}; vocabulary "
          f"{tokenizer.vocab_size:,}")
    return 0


def _print_table(rows: list[dict]) -> None:
    header = ["#", "token", "id", "type", "offsets", "word", "text"]
    table = [[str(i), r["token"], str(r["id"]), str(r["type_id"]),
              f"{r['offsets'][0]}:{r['offsets'][1]}",
              "-" if r["word_id"] is None else str(r["word_id"]), repr(r["text"])[1:-1]]
             for i, r in enumerate(rows)]
    widths = [max(len(line[c]) for line in [header, *table]) for c in range(len(header))]
    for line in [header, *table]:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())


# ----------------------------------------------------------------------------- train-tokenizer
def run_train(args: argparse.Namespace) -> int:
    from plmkit.tokenization import train_wordpiece

    files = corpus_files(args.corpus)  # a folder stands for its .txt/.gz files
    if not files:
        raise PlmError("no .txt or .gz file in the corpus folder", path=args.corpus[0])
    if args.output.exists() and not args.output.is_dir():
        raise PlmError("--output exists and is not a folder", path=args.output)
    started = time.perf_counter()
    tokenizer = train_wordpiece(files, vocab_size=args.vocab_size,
                                min_frequency=args.min_frequency,
                                special_tokens=args.special_tokens,
                                limit_alphabet=args.limit_alphabet or None,
                                lowercase=not args.cased, show_progress=not args.quiet,
                                errors=args.errors, output_dir=args.output)
    seconds = time.perf_counter() - started
    size = sum(p.stat().st_size for p in files)
    print(f"wrote {args.output / 'vocab.txt'}: {tokenizer.vocab_size:,} tokens "
          f"(lowercase={tokenizer.lowercase}) from {size / 1e6:.1f} MB in {seconds:.1f} s")
    if tokenizer.vocab_size < args.vocab_size:
        print(f"note: fewer than --vocab-size {args.vocab_size:,}: no pair left that occurs "
              f"at least --min-frequency {args.min_frequency} times", file=sys.stderr)
    return 0
