"""Intrinsic evaluation of word vectors: analogies and word-pair similarity.

* **Analogies** (Mikolov et al. 2013, ``questions-words.txt``): for "a b c d" (Athens Greece Oslo
  Norway), is d the nearest word to b − a + c (3CosAdd) — or by 3CosMul — among the
  ``restrict_vocab`` most frequent words, a, b and c excluded? Questions with a word outside those
  words are skipped and counted. Accuracy is reported per ``: section`` and in total, as gensim's
  ``evaluate_word_analogies`` does (case-insensitive by default: the most frequent spelling of a
  word stands for all its spellings). All questions of a section are answered in one matrix
  product.
* **Similarity** (WordSim-353, SimLex-999): Spearman's ρ (and Pearson's r) between human scores
  and cosine similarities, over the pairs whose words are both known.

A malformed line (an analogy line without four words, a question before any ``: section``, a
pair line without two words and a number) is a :class:`PlmError` naming the file and line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from plmkit._io import read_text_file
from plmkit.errors import PlmError
from plmkit.evaluation.metrics import pearson, spearman
from plmkit.models.word2vec import KeyedVectors


@dataclass
class AnalogySection:
    name: str
    correct: int = 0
    incorrect: int = 0
    skipped: int = 0

    @property
    def accuracy(self) -> float:
        total = self.correct + self.incorrect
        return self.correct / total if total else 0.0


@dataclass
class AnalogyResult:
    sections: list[AnalogySection] = field(default_factory=list)

    @property
    def correct(self) -> int:
        return sum(s.correct for s in self.sections)

    @property
    def answered(self) -> int:
        return sum(s.correct + s.incorrect for s in self.sections)

    @property
    def skipped(self) -> int:
        return sum(s.skipped for s in self.sections)

    @property
    def accuracy(self) -> float:
        return self.correct / self.answered if self.answered else 0.0

    def subset_accuracy(self, syntactic: bool) -> float:
        """Mikolov's split: sections named ``gram…`` are syntactic, the others semantic."""
        chosen = [s for s in self.sections if s.name.startswith("gram") == syntactic]
        total = sum(s.correct + s.incorrect for s in chosen)
        return sum(s.correct for s in chosen) / total if total else 0.0


@dataclass
class PairsResult:
    pearson: float
    spearman: float
    pairs: int
    skipped: int

    @property
    def oov_ratio(self) -> float:
        return self.skipped / max(1, self.pairs + self.skipped)


def read_analogies(path: str | Path) -> list[tuple[str, list[tuple[int, list[str]]]]]:
    """[(section, [(line number, [a, b, c, d]), …]), …] from a questions-words file."""
    sections: list[tuple[str, list[tuple[int, list[str]]]]] = []
    for number, line in enumerate(read_text_file(path).splitlines(), 1):
        text = line.strip()
        if not text:
            continue
        if text.startswith(":"):
            name = text[1:].strip()
            if not name:
                raise PlmError("a section line needs a name after ':'", path=path, line=number)
            sections.append((name, []))
            continue
        words = text.split()
        if len(words) != 4:
            raise PlmError(f"an analogy line needs four words, found {len(words)}", path=path,
                           line=number)
        if not sections:
            raise PlmError("a question before the first ': section' line", path=path,
                           line=number)
        sections[-1][1].append((number, words))
    if not any(questions for _, questions in sections):
        raise PlmError("no analogy question in the file", path=path)
    return sections


def _restricted_lookup(vectors: KeyedVectors, restrict_vocab: int,
                       case_insensitive: bool) -> dict[str, int]:
    """Word → index among the first ``restrict_vocab`` words (the most frequent spelling wins)."""
    words = vectors.index_to_key[:restrict_vocab]
    if not case_insensitive:
        return {w: i for i, w in enumerate(words)}
    lookup: dict[str, int] = {}
    for index, word in enumerate(words):
        lookup.setdefault(word.upper(), index)
    return lookup


def evaluate_analogies(vectors: KeyedVectors, path: str | Path, *, restrict_vocab: int = 300_000,
                       case_insensitive: bool = True, method: str = "add",
                       batch_size: int = 512) -> AnalogyResult:
    """Accuracy on an analogy file (gensim's ``evaluate_word_analogies`` protocol)."""
    if method not in ("add", "mul"):
        raise PlmError(f"analogy method must be 'add' or 'mul', not {method!r}", field="method")
    lookup = _restricted_lookup(vectors, restrict_vocab, case_insensitive)
    normed = vectors.normed_vectors()[:restrict_vocab]
    spelling = [w.upper() if case_insensitive else w for w in vectors.index_to_key[:restrict_vocab]]
    variants: dict[str, list[int]] = {}
    for index, word in enumerate(spelling):
        variants.setdefault(word, []).append(index)
    result = AnalogyResult()
    for name, questions in read_analogies(path):
        section = AnalogySection(name)
        result.sections.append(section)
        usable = []
        for _, words in questions:
            keys = [w.upper() if case_insensitive else w for w in words]
            if all(k in lookup for k in keys):
                usable.append(keys)
            else:
                section.skipped += 1
        for begin in range(0, len(usable), batch_size):
            batch = usable[begin: begin + batch_size]
            ids = np.asarray([[lookup[k] for k in keys] for keys in batch])
            a, b, c = normed[ids[:, 0]], normed[ids[:, 1]], normed[ids[:, 2]]
            if method == "add":
                query = b - a + c
                scores = query @ normed.T
            else:  # 3CosMul: similarities shifted to [0, 1]
                shift = lambda x: (1 + x @ normed.T) / 2  # noqa: E731
                scores = shift(b) * shift(c) / (shift(a) + 1e-6)
            for row, keys in enumerate(batch):
                for key in keys[:3]:
                    scores[row, variants[key]] = -np.inf
            predicted = scores.argmax(axis=1)
            hits = sum(spelling[p] == keys[3] for p, keys in zip(predicted, batch))
            section.correct += int(hits)
            section.incorrect += len(batch) - int(hits)
    return result


def read_word_pairs(path: str | Path, delimiter: str | None = "\t"
                    ) -> list[tuple[int, str, str, float]]:
    """[(line number, word1, word2, human score), …]; ``#`` lines are comments."""
    pairs = []
    for number, line in enumerate(read_text_file(path).splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        fields = text.split(delimiter) if delimiter else text.split()
        fields = [f.strip() for f in fields]
        if len(fields) != 3:
            raise PlmError(f"a pair line needs two words and a score, found {len(fields)} "
                           "fields", path=path, line=number)
        try:
            score = float(fields[2])
        except ValueError:
            raise PlmError(f"the score {fields[2]!r} is not a number", path=path,
                           line=number) from None
        pairs.append((number, fields[0], fields[1], score))
    if not pairs:
        raise PlmError("no word pair in the file", path=path)
    return pairs


def evaluate_word_pairs(vectors: KeyedVectors, path: str | Path, *, delimiter: str | None = "\t",
                        restrict_vocab: int = 300_000,
                        case_insensitive: bool = True) -> PairsResult:
    """Spearman's ρ and Pearson's r between human scores and cosine similarities."""
    lookup = _restricted_lookup(vectors, restrict_vocab, case_insensitive)
    normed = vectors.normed_vectors()
    human, model, skipped = [], [], 0
    for _, first, second, score in read_word_pairs(path, delimiter):
        keys = [w.upper() if case_insensitive else w for w in (first, second)]
        if not all(k in lookup for k in keys):
            skipped += 1
            continue
        human.append(score)
        model.append(float(normed[lookup[keys[0]]] @ normed[lookup[keys[1]]]))
    if len(human) < 2:
        return PairsResult(float("nan"), float("nan"), len(human), skipped)
    return PairsResult(pearson(model, human), spearman(model, human), len(human), skipped)


__all__ = ["AnalogySection", "AnalogyResult", "PairsResult", "read_analogies",
           "evaluate_analogies", "read_word_pairs", "evaluate_word_pairs"]
