"""What a pre-trained BERT has learnt: held-out MLM/NSP accuracy and fill-mask top-k on held-out text.

    python benchmarks/pretrain_quality.py runs/quality/mini-bert [--sentences 500]

Reads the checkpoint folder written by ``plm pretrain`` (its ``metrics.jsonl`` for the held-out
evaluation, ``data/corpus-heldout.txt`` for documents the model never trained on). For each
sampled held-out sentence one whole word (a single word-piece, letters only) is replaced by
``[MASK]``; we count how often the true word is the top-1 / in the top-5 predictions. Two baselines
say what "above chance" means: uniform guessing (k / vocabulary size) and always guessing the k most
frequent words of the training corpus (the unigram baseline a model gets for free).
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, table  # noqa: E402

from plmkit.pipelines.fill_mask import FillMaskPipeline  # noqa: E402


def candidate_positions(tokens: list[str]) -> list[int]:
    """Whole words that are one piece: alphabetic, not followed by a ``##`` continuation."""
    return [i for i, token in enumerate(tokens)
            if token.isalpha() and not token.startswith("##")
            and (i + 1 == len(tokens) or not tokens[i + 1].startswith("##"))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--sentences", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    folder = Path(args.checkpoint)
    print(machine())
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if "eval_mlm_accuracy" in r]
    if evals:
        last = evals[-1]
        nsp = (f", NSP accuracy {last['eval_nsp_accuracy']:.3f}"
               if "eval_nsp_accuracy" in last else "")  # --objective mlm has no NSP
        print(f"held-out after {last['step']} steps: MLM accuracy {last['eval_mlm_accuracy']:.3f}, "
              f"MLM perplexity {last['eval_mlm_perplexity']:.1f}{nsp}")

    pipeline = FillMaskPipeline(folder, top_k=5)
    tokenizer = pipeline.tokenizer
    heldout = folder / "data" / "corpus-heldout.txt"
    train = folder / "data" / "corpus-train.txt"
    sentences = [s.strip() for s in heldout.read_text(encoding="utf-8").splitlines()
                 if len(s.split()) >= 6]
    counts: collections.Counter[str] = collections.Counter()
    for line in train.read_text(encoding="utf-8").splitlines():
        counts.update(t for t in tokenizer.tokenize(line) if t.isalpha())
    frequent = [word for word, _ in counts.most_common(5)]
    rng = random.Random(args.seed)
    rng.shuffle(sentences)
    hits1 = hits5 = freq1 = freq5 = tried = 0
    start = time.perf_counter()
    for sentence in sentences:
        if tried == args.sentences:
            break
        tokens = tokenizer.tokenize(sentence)[:100]
        positions = candidate_positions(tokens)
        if not positions:
            continue
        position = rng.choice(positions)
        truth = tokens[position]
        masked = tokens[:position] + ["[MASK]"] + tokens[position + 1:]
        text = " ".join(masked).replace(" ##", "")
        predictions = [p.token for p in pipeline(text)[0]]
        tried += 1
        hits1 += predictions[0] == truth
        hits5 += truth in predictions
        freq1 += frequent[0] == truth
        freq5 += truth in frequent
    seconds = time.perf_counter() - start
    vocab = tokenizer.vocab_size
    rows = [
        {"predictor": "plmkit checkpoint", "top-1": hits1 / tried, "top-5": hits5 / tried},
        {"predictor": f"5 most frequent words ({', '.join(frequent)})", "top-1": freq1 / tried,
         "top-5": freq5 / tried},
        {"predictor": "uniform guess", "top-1": 1 / vocab, "top-5": 5 / vocab},
    ]
    print(f"fill-mask on {tried} held-out sentences (one whole word masked each), "
          f"{seconds:.0f} s")
    print(table(rows, ["predictor", "top-1", "top-5"]))
    return 0


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    sys.exit(main())
