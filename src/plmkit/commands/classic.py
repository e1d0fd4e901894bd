"""The generations before the Transformer on the command line.

``plm ngram`` / ``plm perplexity`` (n-gram LMs and ARPA files), ``plm word2vec`` / ``plm similar``
/ ``plm analogy`` / ``plm vectors-eval`` (word vectors), ``plm train-lm`` (NNLM, RNN, LSTM, ELMo
through the Trainer). A corpus is a text file with one sentence per line, or ``ptb`` for the Penn
Treebank language-modelling set (its ``valid`` split is then used for evaluation).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from plmkit.commands._common import (add_run_arguments, check_output_file, resume_from,
                                     run_options)
from plmkit.errors import PlmError
from plmkit.commands._types import (any_int, non_negative_float, non_negative_int, positive_float,
                                    positive_int, probability)


def register(subparsers: argparse._SubParsersAction) -> None:
    ngram = subparsers.add_parser("ngram", help="count and smooth an n-gram LM, write ARPA")
    ngram.add_argument("--corpus", required=True, help="one sentence per line, or 'ptb'")
    ngram.add_argument("--order", type=positive_int, default=3)
    ngram.add_argument("--smoothing", choices=["kn", "addk"], default="kn",
                       help="interpolated (modified) Kneser-Ney, or add-k (formula (6))")
    ngram.add_argument("--k", type=positive_float, default=1.0, help="add-k pseudo-count (1 = Laplace)")
    ngram.add_argument("--plain-kn", action="store_true", help="one KN discount, not three")
    ngram.add_argument("--min-count", type=non_negative_int, default=1, help="rarer words become <unk>")
    ngram.add_argument("--lowercase", action="store_true")
    ngram.add_argument("--eval", help="also report perplexity on this file (ptb: its test split)")
    ngram.add_argument("-o", "--output", required=True, help="ARPA file to write")
    ngram.set_defaults(func=run_ngram)

    perplexity = subparsers.add_parser(
        "perplexity", help="perplexity of a corpus under an ARPA model or a neural LM folder")
    perplexity.add_argument("--model", required=True, help="ARPA file, or a train-lm folder")
    perplexity.add_argument("--corpus", required=True, help="one sentence per line, or 'ptb' "
                                                            "(its test split)")
    perplexity.add_argument("--lowercase", action="store_true")
    perplexity.add_argument("--batch-size", type=positive_int, default=20)
    perplexity.add_argument("--json", action="store_true")
    perplexity.set_defaults(func=run_perplexity)

    w2v = subparsers.add_parser("word2vec", help="train CBOW / skip-gram word vectors")
    w2v.add_argument("--corpus", required=True, help="one sentence per line, or 'ptb'")
    w2v.add_argument("--arch", choices=["sg", "cbow"], default="sg")
    w2v.add_argument("--dim", type=positive_int, default=100)
    w2v.add_argument("--window", type=positive_int, default=5)
    w2v.add_argument("--negative", type=positive_int, default=5)
    w2v.add_argument("--min-count", type=non_negative_int, default=5)
    w2v.add_argument("--sample", type=probability, default=1e-3, help="sub-sampling threshold t")
    w2v.add_argument("--epochs", type=positive_int, default=5)
    w2v.add_argument("--alpha", type=positive_float, default=0.025)
    w2v.add_argument("--workers", type=positive_int, default=2)
    w2v.add_argument("--seed", type=any_int, default=1)
    w2v.add_argument("--lowercase", action="store_true")
    w2v.add_argument("-o", "--output", required=True, help="vectors file (word2vec format)")
    w2v.add_argument("--binary", action="store_true", help="the C tool's binary format")
    w2v.add_argument("--checkpoint-dir", help="also keep the training folder (checkpoint, "
                                              "metrics.jsonl, curves.png) here")
    w2v.set_defaults(func=run_word2vec)

    similar = subparsers.add_parser("similar", help="nearest words by cosine similarity")
    similar.add_argument("vectors", help="word2vec text/binary file or word2vec folder")
    similar.add_argument("word", nargs="+", help="one word (or several: their sum)")
    similar.add_argument("-k", "--top-k", type=positive_int, default=10)
    similar.set_defaults(func=run_similar)

    analogy = subparsers.add_parser("analogy", help="a : b :: c : ?")
    analogy.add_argument("vectors")
    analogy.add_argument("a")
    analogy.add_argument("b")
    analogy.add_argument("c")
    analogy.add_argument("-k", "--top-k", type=positive_int, default=5)
    analogy.add_argument("--method", choices=["add", "mul"], default="add",
                         help="3CosAdd or 3CosMul")
    analogy.set_defaults(func=run_analogy)

    evaluate = subparsers.add_parser(
        "vectors-eval", help="Google analogies, WordSim-353 and SimLex-999 scores of vectors")
    evaluate.add_argument("vectors")
    evaluate.add_argument("--analogies", help="questions-words file (default: gensim's)")
    evaluate.add_argument("--pairs", nargs="*", help="word-pair files (default: WordSim-353 and "
                                                     "SimLex-999)")
    evaluate.add_argument("--restrict-vocab", type=positive_int, default=300_000)
    evaluate.add_argument("--method", choices=["add", "mul"], default="add")
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(func=run_vectors_eval)

    lm = subparsers.add_parser("train-lm", help="train an NNLM, RNN, LSTM or ELMo biLM")
    lm.add_argument("--arch", choices=["nnlm", "rnn", "lstm", "elmo"], required=True)
    lm.add_argument("--corpus", required=True, help="one sentence per line, or 'ptb'")
    lm.add_argument("--valid", help="held-out file (ptb: its valid split)")
    lm.add_argument("-o", "--output", required=True, help="run folder (checkpoints, model)")
    lm.add_argument("--min-count", type=non_negative_int, default=1)
    lm.add_argument("--char-level", action="store_true", help="characters, not words")
    lm.add_argument("--lowercase", action="store_true")
    lm.add_argument("--order", type=positive_int, default=5, help="nnlm: n (window of n-1 words)")
    lm.add_argument("--embedding-size", type=positive_int)
    lm.add_argument("--hidden-size", type=positive_int)
    lm.add_argument("--layers", type=positive_int, help="rnn/lstm/elmo: recurrent layers")
    lm.add_argument("--dropout", type=probability)
    lm.add_argument("--tie", action="store_true", help="rnn/lstm: tie input/output embeddings")
    lm.add_argument("--no-direct", action="store_true", help="nnlm: drop the direct W x term")
    lm.add_argument("--bptt", type=positive_int, default=35)
    lm.add_argument("--batch-size", type=positive_int, default=20)
    lm.add_argument("--epochs", type=positive_float, default=1.0)
    lm.add_argument("--max-steps", type=non_negative_int, default=0)
    lm.add_argument("--lr", type=positive_float, default=None,
                    help="default: 20 with SGD for rnn/lstm/elmo (Zaremba et al.), 1e-3 with "
                         "Adam for nnlm")
    lm.add_argument("--optimizer", choices=["adamw", "adam", "sgd"], default=None,
                    help="default: sgd for rnn/lstm/elmo, adam for nnlm")
    lm.add_argument("--schedule", default="linear",
                    choices=["linear", "cosine", "constant", "linear_to_zero"])
    lm.add_argument("--weight-decay", type=non_negative_float, default=0.0)
    lm.add_argument("--max-grad-norm", type=non_negative_float, default=None,
                    help="default: 0.25 for rnn/lstm/elmo, 5 for nnlm")
    lm.add_argument("--eval-every", type=non_negative_int, default=0)
    add_run_arguments(lm)
    lm.set_defaults(func=run_train_lm)


# ------------------------------------------------------------------------------------- corpora
def _ptb_split(name: str) -> Path:
    from plmkit.datasets import ptb

    return ptb()[name]


def read_corpus(corpus: str, *, split: str = "train", lowercase: bool = False,
                char_level: bool = False) -> list[list[str]]:
    """Sentences of a file, or of a PTB split when ``corpus`` is ``ptb``."""
    from plmkit.data.lm import read_sentences

    path = _ptb_split(split) if corpus == "ptb" else Path(corpus)
    if corpus != "ptb" and not path.is_file():
        raise PlmError("corpus file not found (give a text file or 'ptb')", path=path)
    return read_sentences(path, lowercase=lowercase, char_level=char_level)


# ------------------------------------------------------------------------------------- n-grams
def run_ngram(args: argparse.Namespace) -> int:
    from plmkit.models.ngram import NgramLM

    check_output_file(args.output)
    sentences = read_corpus(args.corpus, lowercase=args.lowercase)
    model = NgramLM.train(sentences, args.order, args.smoothing, k=args.k,
                          min_count=args.min_count, modified=not args.plain_kn)
    counts = ", ".join(f"{k}-grams {n:,}" for k, n in enumerate(model.num_ngrams(), 1))
    print(f"{len(sentences):,} sentences, vocabulary {len(model.vocab):,}; {counts}")
    model.save_arpa(args.output, progress=True)
    print(f"wrote {args.output}")
    if args.eval:
        test = read_corpus(args.eval, split="test", lowercase=args.lowercase)
        _print_ngram_perplexity(model.perplexity(test))
    return 0


def _print_ngram_perplexity(result) -> None:
    print(f"perplexity {result.perplexity:.2f} over {result.tokens:,} tokens "
          f"({result.sentences:,} sentences, {result.oov:,} out-of-vocabulary words scored as "
          f"<unk>); log10 P = {result.log10_prob:.2f}")


def run_perplexity(args: argparse.Namespace) -> int:
    model_path = Path(args.model)
    sentences = read_corpus(args.corpus, split="test", lowercase=args.lowercase)
    if model_path.is_dir():
        metrics = _neural_perplexity(model_path, sentences, args.batch_size)
        if args.json:
            print(json.dumps(metrics))
        else:
            print(f"perplexity {metrics['perplexity']:.2f} (loss {metrics['loss']:.4f} nats "
                  "per token)")
        return 0
    from plmkit.models.ngram import NgramLM

    if not model_path.is_file():
        raise PlmError("model not found (an ARPA file or a train-lm folder)", path=model_path)
    result = NgramLM.load_arpa(model_path).perplexity(sentences)
    if args.json:
        print(json.dumps({"perplexity": result.perplexity, "tokens": result.tokens,
                          "sentences": result.sentences, "oov": result.oov,
                          "log10_prob": result.log10_prob}))
    else:
        _print_ngram_perplexity(result)
    return 0


def _neural_perplexity(folder: Path, sentences, batch_size: int) -> dict[str, float]:
    from plmkit.config import load_json
    from plmkit.data.lm import Vocabulary
    from plmkit.models.elmo import ElmoBiLM
    from plmkit.models.nnlm import NNLM
    from plmkit.models.rnn import RNNLanguageModel
    from plmkit.training.tasks_lm import LMRecipe, evaluate_language_model

    config = load_json(folder / "config.json") if (folder / "config.json").exists() else {}
    kind = config.get("model_type")
    vocab = Vocabulary.load(folder)
    if kind == "nnlm":
        model = NNLM.from_pretrained(folder)
        recipe = LMRecipe("nnlm", batch_size=256, order=model.config.context_size + 1)
    elif kind == "rnn_lm":
        model = RNNLanguageModel.from_pretrained(folder)
        recipe = LMRecipe(model.config.cell, batch_size=batch_size, bptt=35)
    elif kind == "elmo":
        model = ElmoBiLM.from_pretrained(folder)
        recipe = LMRecipe("elmo", batch_size=batch_size)
    else:
        raise PlmError(f"not a language-model folder (model_type {kind!r}; expected nnlm, "
                       "rnn_lm or elmo)", path=folder)
    return evaluate_language_model(recipe, model, sentences, vocab)


# ------------------------------------------------------------------------------------- vectors
def load_vectors(source: str):
    """Word vectors from a file or folder; a vector that is not finite (NaN, ±inf) is an error
    naming the word, since every cosine with it is NaN and the neighbours would be silently
    empty or wrong."""
    import numpy as np

    from plmkit.models.word2vec import KeyedVectors

    path = Path(source)
    vectors = (KeyedVectors.from_pretrained(path) if path.is_dir()
               else KeyedVectors.load_word2vec_format(path))
    bad = np.flatnonzero(~np.isfinite(vectors.vectors).all(axis=1))
    if bad.size:
        words = ", ".join(repr(vectors.index_to_key[i]) for i in bad[:3])
        more = f" and {bad.size - 3:,} more" if bad.size > 3 else ""
        raise PlmError(f"{bad.size:,} vector(s) hold NaN or infinite values ({words}{more}); "
                       "the file is damaged or training diverged", path=path, field="vectors")
    return vectors


def run_word2vec(args: argparse.Namespace) -> int:
    from plmkit.models.word2vec import Word2VecConfig
    from plmkit.training.tasks_lm import train_word2vec

    check_output_file(args.output)
    config = Word2VecConfig(arch=args.arch, vector_size=args.dim, window=args.window,
                            negative=args.negative, min_count=args.min_count, sample=args.sample,
                            epochs=args.epochs, alpha=args.alpha, workers=args.workers,
                            seed=args.seed)
    sentences = read_corpus(args.corpus, lowercase=args.lowercase)
    run = train_word2vec(sentences, config, output_dir=args.checkpoint_dir, progress=True,
                         plot=args.checkpoint_dir is not None)
    run.vectors.save_word2vec_format(args.output, binary=args.binary)
    print(f"{len(run.vectors):,} words × {run.vectors.vector_size} dimensions, "
          f"{run.raw_words_per_second:,.0f} words/s; wrote {args.output}")
    return 0


def _print_neighbours(pairs) -> None:
    for word, score in pairs:
        print(f"{score:8.4f}  {word}")


def run_similar(args: argparse.Namespace) -> int:
    vectors = load_vectors(args.vectors)
    _print_neighbours(vectors.most_similar(args.word, topn=args.top_k))
    return 0


def run_analogy(args: argparse.Namespace) -> int:
    vectors = load_vectors(args.vectors)
    _print_neighbours(vectors.analogy(args.a, args.b, args.c, topn=args.top_k,
                                      method=args.method))
    return 0


def run_vectors_eval(args: argparse.Namespace) -> int:
    from plmkit.evaluation.wordvectors import evaluate_analogies, evaluate_word_pairs

    vectors = load_vectors(args.vectors)
    analogies, pairs = args.analogies, args.pairs
    if analogies is None or pairs is None:
        from plmkit.datasets import gensim_eval

        files = gensim_eval()
        analogies = analogies or files["analogies"]
        pairs = pairs if pairs is not None else [files["wordsim353"], files["simlex999"]]
    result = evaluate_analogies(vectors, analogies, restrict_vocab=args.restrict_vocab,
                                method=args.method)
    report = {"analogy_accuracy": result.accuracy, "analogy_answered": result.answered,
              "analogy_skipped": result.skipped,
              "semantic_accuracy": result.subset_accuracy(syntactic=False),
              "syntactic_accuracy": result.subset_accuracy(syntactic=True)}
    for path in pairs:
        scores = evaluate_word_pairs(vectors, path, restrict_vocab=args.restrict_vocab)
        report[f"{Path(path).stem}_spearman"] = scores.spearman
        report[f"{Path(path).stem}_pairs"] = scores.pairs
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"analogies: {result.accuracy:.3f} ({result.correct:,}/{result.answered:,}; "
          f"{result.skipped:,} skipped with unknown words)")
    for section in result.sections:
        print(f"  {section.name:32} {section.accuracy:.3f} "
              f"({section.correct}/{section.correct + section.incorrect})")
    for path in pairs:
        stem = Path(path).stem
        print(f"{stem}: Spearman {report[stem + '_spearman']:.3f} over "
              f"{report[stem + '_pairs']} pairs")
    return 0


# ------------------------------------------------------------------------------------- neural LMs
def run_train_lm(args: argparse.Namespace) -> int:
    from plmkit.data.lm import Vocabulary
    from plmkit.training import TrainingConfig
    from plmkit.training.tasks_lm import LMRecipe, default_optimization, train_language_model

    resume = resume_from(args)
    options = {"lowercase": args.lowercase, "char_level": args.char_level}
    train = read_corpus(args.corpus, **options)
    valid_source = args.valid or ("ptb" if args.corpus == "ptb" else None)
    valid = (read_corpus(valid_source, split="valid", **options)
             if valid_source else None)
    vocab = Vocabulary.build(train, min_count=args.min_count)
    recipe = LMRecipe(args.arch, batch_size=args.batch_size, bptt=args.bptt, order=args.order)
    sizes = {"embedding_size": args.embedding_size, "hidden_size": args.hidden_size,
             "dropout": args.dropout}
    if args.arch != "nnlm":
        sizes["num_layers"] = args.layers
    if args.arch in ("rnn", "lstm"):
        sizes["tie_weights"] = args.tie or None
    if args.arch == "nnlm" and args.no_direct:
        sizes["direct_connection"] = False
    default = default_optimization(args.arch)
    training = TrainingConfig(
        output_dir=args.output, max_steps=args.max_steps, num_epochs=args.epochs,
        learning_rate=default.learning_rate if args.lr is None else args.lr,
        optimizer=args.optimizer or default.optimizer, schedule=args.schedule,
        weight_decay=args.weight_decay,
        max_grad_norm=default.max_grad_norm if args.max_grad_norm is None else args.max_grad_norm,
        eval_every=args.eval_every if valid else 0, plot_metrics=("loss", "perplexity"),
        **run_options(args))
    print(f"{args.arch}: {len(train):,} training sentences, vocabulary {len(vocab):,}")
    model, result = train_language_model(recipe, train, vocab, training, valid=valid,
                                         resume=resume, **sizes)
    line = f"trained {result.global_step} steps; model in {args.output}"
    if "eval_perplexity" in result.metrics:
        line += f"; valid perplexity {result.metrics['eval_perplexity']:.2f}"
    print(line)
    return 0


__all__ = ["register", "read_corpus", "load_vectors"]
