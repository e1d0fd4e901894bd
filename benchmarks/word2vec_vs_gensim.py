"""plmkit word2vec vs gensim 4.4: same corpus, same settings, one run, side by side.

    python benchmarks/word2vec_vs_gensim.py [--corpus ptb|prose|FILE] [--arch sg cbow]
                                            [--epochs 5] [--workers 2] [--repeats 1]

Prints, per architecture: raw words/s of both (training only: vocabulary building excluded on
both sides; plmkit's time is the whole Trainer run, one-off imports and JIT warmed up first),
their ratio, Google-analogy accuracy (3CosAdd), WordSim-353 and SimLex-999 Spearman ρ. Timings
on a shared machine are noisy: use --repeats to take the best of several alternating runs.
Needs ``pip install gensim==4.4.0``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def load_corpus(name: str) -> list[list[str]]:
    from plmkit import datasets
    from plmkit.data.lm import read_sentences

    if name == "ptb":
        return read_sentences(datasets.ptb()["train"])
    if name == "prose":
        return read_sentences(datasets.prose(), lowercase=True)
    return read_sentences(Path(name))


def evaluate(vectors, files) -> dict[str, float]:
    from plmkit.evaluation.wordvectors import evaluate_analogies, evaluate_word_pairs

    analogies = evaluate_analogies(vectors, files["analogies"])
    return {"analogy": analogies.accuracy, "analogy_answered": analogies.answered,
            "wordsim353": evaluate_word_pairs(vectors, files["wordsim353"]).spearman,
            "simlex999": evaluate_word_pairs(vectors, files["simlex999"]).spearman}


def run_gensim(sentences, arch: str, args) -> tuple[float, object]:
    from gensim.models import Word2Vec

    from plmkit.models.word2vec import KeyedVectors

    model = Word2Vec(vector_size=args.dim, window=args.window, min_count=args.min_count,
                     workers=args.workers, sg=int(arch == "sg"), negative=args.negative,
                     sample=args.sample, alpha=0.025, min_alpha=0.0001, epochs=args.epochs,
                     seed=1)
    model.build_vocab(sentences)
    started = time.perf_counter()
    model.train(sentences, total_examples=model.corpus_count, epochs=args.epochs)
    seconds = time.perf_counter() - started
    raw = model.corpus_total_words * args.epochs
    vectors = KeyedVectors(list(model.wv.index_to_key), model.wv.vectors)
    return raw / seconds, vectors


def run_plmkit(sentences, arch: str, args) -> tuple[float, object]:
    from plmkit.models.word2vec import Word2VecConfig
    from plmkit.training.tasks_lm import train_word2vec

    config = Word2VecConfig(arch=arch, vector_size=args.dim, window=args.window,
                            min_count=args.min_count, workers=args.workers,
                            negative=args.negative, sample=args.sample, epochs=args.epochs)
    run = train_word2vec(sentences, config, progress=False)
    return run.raw_words_per_second, run.vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="ptb")
    parser.add_argument("--arch", nargs="+", default=["sg", "cbow"], choices=["sg", "cbow"])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--negative", type=int, default=5)
    parser.add_argument("--sample", type=float, default=1e-3)
    parser.add_argument("--min-count", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    from plmkit import datasets
    from plmkit.models.word2vec import Word2VecConfig
    from plmkit.training.tasks_lm import train_word2vec

    sentences = load_corpus(args.corpus)
    words = sum(len(s) for s in sentences)
    print(f"corpus {args.corpus}: {len(sentences):,} sentences, {words:,} words; "
          f"dim {args.dim} window {args.window} negative {args.negative} sample {args.sample} "
          f"min_count {args.min_count} epochs {args.epochs} workers {args.workers}")
    files = datasets.gensim_eval()
    for arch in ("sg", "cbow"):  # warm up: numba JIT (cached), torch optimiser imports
        train_word2vec(sentences[:500], Word2VecConfig(arch=arch, epochs=1, min_count=1),
                       progress=False)
    header = f"{'':8}{'words/s':>12}{'analogy':>10}{'answered':>10}{'ws353 ρ':>10}{'sl999 ρ':>10}"
    for arch in args.arch:
        best = {"gensim": (0.0, None), "plmkit": (0.0, None)}
        for _ in range(args.repeats):
            for name, runner in (("gensim", run_gensim), ("plmkit", run_plmkit)):
                speed, vectors = runner(sentences, arch, args)
                if speed > best[name][0]:
                    best[name] = (speed, vectors)
        print(f"\n== {arch} ==\n{header}")
        for name, (speed, vectors) in best.items():
            scores = evaluate(vectors, files)
            print(f"{name:8}{speed:12,.0f}{scores['analogy']:10.3f}{scores['analogy_answered']:10d}"
                  f"{scores['wordsim353']:10.3f}{scores['simlex999']:10.3f}")
        ratio = best["plmkit"][0] / best["gensim"][0]
        print(f"ratio plmkit/gensim words/s: {ratio:.2f} (goal ≥ 0.5)")


if __name__ == "__main__":
    main()
