"""The data every generation shares, read once: the pre-training text (English words, Chinese
characters) and the two downstream tasks, cut to the plan's sizes by fixed seeded draws."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from plmkit.data.lm import read_sentences
from plmkit.data.tasks import read_conll, read_text_examples
from plmkit.datasets import people_daily_ner, polarity, ptb
from plmkit.errors import PlmError
from plmkit.evaluation.tagging import is_entity_tag
from plmkit.ladder.plan import MAX_CHARS, MAX_WORDS, LadderConfig, Plan


@dataclass
class LadderData:
    """Everything the generations share, read once."""

    lm_train: list[list[str]]
    lm_test: list[list[str]]
    zh_train: list[list[str]]
    polarity_train: list[tuple[str, str]]          # (text, label)
    polarity_dev: list[tuple[str, str]]
    ner_train: list[tuple[list[str], list[str]]]   # (characters, BIO tags)
    ner_dev: list[tuple[list[str], list[str]]]
    polarity_labels: list[str] = field(default_factory=list)
    ner_labels: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.polarity_labels = sorted({label for _, label in self.polarity_train})
        self.ner_labels = sorted({t for _, tags in self.ner_train + self.ner_dev for t in tags})
        if len(self.polarity_labels) < 2:
            raise PlmError("the polarity training data needs at least two labels",
                           field="polarity_train")


_PTB_TOKENS = re.compile(r"[a-z]+(?=n't)|n't"                # does n't, wo n't, ca n't
                         r"|'(?:s|re|ve|ll|m|d)(?![a-z])"     # it 's, they 're, i 'd
                         r"|[a-z]+|\d[\d.,]*")


def words_of(text: str) -> list[str]:
    """English text → PTB-style tokens: lower case, words only, numbers as ``N``, clitics split
    the Treebank's way (``doesn't`` → ``does n't``, ``it's`` → ``it 's``, ``won't`` →
    ``wo n't``); other apostrophes (quotes) are dropped.

    The split matters: kept whole, ``it's`` or ``doesn't`` are words PTB never wrote, so every
    pre-trained generation would read them as ``<unk>``.
    """
    words = _PTB_TOKENS.findall(text.lower())
    return ["N" if w[0].isdigit() else w for w in words][:MAX_WORDS]


def pick(items: Sequence, subset: Sequence[int] | None) -> list:
    """``items`` at the ``subset`` positions (all of them for None)."""
    return list(items) if subset is None else [items[i] for i in subset]


def _take(items: list, count: int, seed: int) -> list:
    """A fixed random subset of ``count`` items (all of them when fewer), in corpus order."""
    if count >= len(items):
        return list(items)
    keep = np.sort(np.random.default_rng(seed).permutation(len(items))[:count])
    return [items[i] for i in keep]


def load_data(config: LadderConfig, plan: Plan) -> LadderData:
    """The built-in corpora and tasks (or the files ``config`` names), cut to ``plan``'s sizes by
    seeded draws; NER files must carry BIO tags."""
    if config.corpus == "ptb":
        splits = ptb()
        train_path, test_path = splits["train"], Path(config.test_corpus or splits["test"])
    else:
        train_path, test_path = Path(config.corpus), Path(str(config.test_corpus))
    for path in (train_path, test_path):
        if not Path(path).is_file():
            raise PlmError("corpus file not found", path=path)
    lm_train = _take(read_sentences(train_path), plan.lm_sentences, config.seed)
    lm_test = read_sentences(test_path)
    if config.polarity_train is None:
        pol = polarity()
        pol_train, pol_dev = pol["train"], pol["dev"]
    else:
        pol_train, pol_dev = config.polarity_train, str(config.polarity_dev)
    if config.ner_train is None:
        ner = people_daily_ner()
        ner_train_path, ner_dev_path = ner["train"], ner["dev"]
    else:
        ner_train_path, ner_dev_path = config.ner_train, str(config.ner_dev)

    def polarity_rows(path) -> list[tuple[str, str]]:
        return [(e.text, str(e.label)) for e in read_text_examples(path)]

    def ner_rows(path) -> list[tuple[list[str], list[str]]]:
        rows = []
        for sentence in read_conll(path):
            wrong = [t for t in sentence.tags or [None] if t is None or not is_entity_tag(t)]
            if wrong:
                raise PlmError(f"NER data needs a BIO tag column (O, B-X, I-X); found "
                               f"{wrong[0]!r}", path=path, line=sentence.line)
            rows.append((sentence.tokens[:MAX_CHARS], sentence.tags[:MAX_CHARS]))
        return rows

    ner_all = ner_rows(ner_train_path)
    if not ner_all:
        raise PlmError("no sentence in the NER training data", path=ner_train_path)
    return LadderData(
        lm_train=lm_train, lm_test=lm_test,
        zh_train=[chars for chars, _ in _take(ner_all, plan.zh_sentences, config.seed)],
        polarity_train=_take(polarity_rows(pol_train), plan.polarity_train, config.seed),
        polarity_dev=polarity_rows(pol_dev),
        ner_train=_take(ner_all, plan.ner_train, config.seed + 1),
        ner_dev=_take(ner_rows(ner_dev_path), plan.ner_dev, config.seed))
