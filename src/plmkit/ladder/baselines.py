"""The counting generation's downstream models: Bayes rule over class-conditional n-gram LMs,
and a bigram HMM tagger decoded with Viterbi."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from plmkit.evaluation.tagging import entity_scores
from plmkit.models.ngram import NgramLM


def ngram_classifier_accuracy(train: Sequence[tuple[list[str], str]],
                              dev: Sequence[tuple[list[str], str]], labels: Sequence[str]) -> float:
    """Bayes rule over class-conditional KN bigram LMs: argmax_c log P(c) + log P(text | c).

    ``train`` and ``dev`` are (words, label) pairs."""
    by_label = {label: [w for w, lab in train if lab == label] for label in labels}
    models = {label: NgramLM.train([s for s in sents if s] or [["<unk>"]], 2, "kn")
              for label, sents in by_label.items()}
    total = sum(len(s) for s in by_label.values())
    prior = {label: math.log10(max(1, len(by_label[label])) / total) for label in labels}
    correct = 0
    for words, gold in dev:
        scores = {label: prior[label] + models[label].sentence_logprob(words) for label in labels}
        correct += max(scores, key=scores.get) == gold
    return correct / max(1, len(dev))


def hmm_tagger_f1(train: Sequence[tuple[list[str], list[str]]],
                  dev: Sequence[tuple[list[str], list[str]]]) -> float:
    """A bigram hidden Markov model from counts (add-one transitions, add-0.1 emissions),
    decoded with Viterbi: the counting generation's tagger."""
    tags = sorted({t for _, ts in train for t in ts} | {"O"})
    index = {t: i for i, t in enumerate(tags)}
    chars = Counter(c for cs, _ in train for c in cs)
    vocab = {c: i for i, c in enumerate(chars)}
    unk = len(vocab)
    transition = np.ones((len(tags) + 1, len(tags)))  # row len(tags) is the start state
    emission = np.full((len(tags), unk + 1), 0.1)
    for cs, ts in train:
        previous = len(tags)
        for c, t in zip(cs, ts):
            transition[previous, index[t]] += 1
            emission[index[t], vocab[c]] += 1
            previous = index[t]
    log_t = np.log(transition / transition.sum(1, keepdims=True))
    log_e = np.log(emission / emission.sum(1, keepdims=True))
    predictions = []
    for cs, _ in dev:
        ids = [vocab.get(c, unk) for c in cs]
        if not ids:
            predictions.append([])
            continue
        score = log_t[len(tags)] + log_e[:, ids[0]]
        back = []
        for i in ids[1:]:
            candidates = score[:, None] + log_t[:len(tags)]
            back.append(candidates.argmax(0))
            score = candidates.max(0) + log_e[:, i]
        best = [int(score.argmax())]
        for pointers in reversed(back):
            best.append(int(pointers[best[-1]]))
        predictions.append([tags[i] for i in reversed(best)])
    return float(entity_scores([ts for _, ts in dev], predictions)["f1"])
