"""What a ladder run is: its settings (:class:`LadderConfig`), the budget turned into sizes
(:class:`Plan`), one table row (:class:`Row`), and the record a ladder BERT keeps of its
pre-training."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plmkit.config import load_json
from plmkit.errors import PlmError


GENERATIONS = ("ngram", "nnlm", "word2vec", "lstm", "elmo", "gpt", "bert")
DESCRIPTIONS = {
    "ngram": "KN 5-gram; class LMs / HMM",
    "nnlm": "NNLM (Bengio 2003), C fine-tuned",
    "word2vec": "skip-gram NS, vectors fine-tuned",
    "lstm": "2-layer LSTM LM: [words; frozen scalar mix]",
    "elmo": "biLM: [words; frozen scalar mix]",
    "gpt": "GPT (3 layers), fine-tuned",
    "bert": "BERT (2 layers), fine-tuned",
    "gpt-scratch": "GPT, same fine-tuning, no pre-training",
    "bert-scratch": "BERT, same fine-tuning, no pre-training",
}
# ``from_scratch`` controls: the same network and fine-tuning from random weights, after the row
# they control
CONTROLS = {"gpt": "gpt-scratch", "bert": "bert-scratch"}
MAX_WORDS = 64      # polarity sentences are cut to this many words
MAX_CHARS = 100     # NER sentences are cut to this many characters
BLOCK = 128         # GPT/BERT context (NER sentences fit, so positions are all trained)
PRETRAINING_RECORD = "pretraining.json"  # beside a ladder BERT's weights: what made them
REUSABLE_BERTS = (("bert_en", "English"), ("bert_zh", "Chinese"))  # LadderConfig field, language


def pretraining_record(folder: str | Path) -> dict[str, Any]:
    """What a ladder BERT checkpoint records of its pre-training ({} for other checkpoints)."""
    path = Path(folder) / PRETRAINING_RECORD
    return load_json(path) if path.is_file() else {}


def describe_pretraining(record: dict[str, Any]) -> str:
    """A :data:`PRETRAINING_RECORD` in one phrase: how long, and where the masked LM ended
    beside the frequency guess ("" when the record does not say)."""
    if not {"epochs", "sentences", "steps", "batch_size", "seconds"} <= set(record):
        return ""
    text = (f"{record['epochs']:g} passes over {record['sentences']:,} sentences "
            f"({record['steps']:,} updates of {record['batch_size']}), "
            f"{record['seconds'] / 60:.0f} min")
    if {"mlm_loss", "mlm_accuracy", "unigram_loss"} <= set(record):
        text += (f"; its masked LM ended at {record['mlm_loss']:.2f} nats (accuracy "
                 f"{record['mlm_accuracy']:.3f}) against {record['unigram_loss']:.2f} for "
                 "guessing by frequency")
    return text


# ------------------------------------------------------------------------------------- config
@dataclass
class LadderConfig:
    """What ``plm ladder`` runs. Data fields left as None use the built-in datasets."""

    generations: tuple[str, ...] = GENERATIONS
    budget: float = 1.0
    corpus: str = "ptb"                 # 'ptb' or a text file, one sentence per line
    test_corpus: str | None = None      # held-out text (ptb: its test split)
    polarity_train: str | None = None   # CSV text,label (default: Pang & Lee via plmkit.datasets)
    polarity_dev: str | None = None
    ner_train: str | None = None        # CoNLL, one character a line (default: People's Daily)
    ner_dev: str | None = None
    # Pre-train the English generations on the polarity training split's text too (its labels
    # unused), as the Chinese side pre-trains on the NER training split's characters: without
    # it 30% of the movie reviews' words (funny, boring, fun, entertaining…) are <unk> in a
    # vocabulary of Wall Street Journal text, and only the counting generation reads them.
    task_text: bool = True
    # The polarity task again with only this many labelled sentences (0: not measured): where
    # counting has too few examples and pre-trained representations should pay most.
    few_labels: int = 320
    # …averaged over this many different draws of those sentences: one draw of 320 moved a
    # generation's accuracy by 0.07 between budgets, more than the gaps the column is meant
    # to show.
    few_draws: int = 3
    # Add a row after GPT and BERT with the same network fine-tuned from random weights: what
    # pre-training adds at this budget (the seeds' claim), measured rather than assumed.
    from_scratch: bool = False
    # Reuse a pre-trained BERT (a checkpoint folder: config.json, model.safetensors, vocab.txt)
    # instead of pre-training one within the budget: the English one for polarity, the Chinese
    # one for NER. BERT's masked LM needs far more updates than the ladder's minutes give it
    # (see ``pretrain_bert``); its -scratch control then takes the checkpoint's architecture
    # and vocabulary.
    bert_en: str | None = None
    bert_zh: str | None = None
    seed: int = 42
    progress: bool = True

    def reused_berts(self) -> list[tuple[str, str, str]]:
        """(field, language, checkpoint folder) of each BERT given to reuse."""
        return [(name, language, getattr(self, name)) for name, language in REUSABLE_BERTS
                if getattr(self, name) is not None]

    def __post_init__(self) -> None:
        self.generations = tuple(self.generations)
        if not self.generations:
            raise PlmError("choose at least one generation", field="generations")
        unknown = [g for g in self.generations if g not in GENERATIONS]
        if unknown:
            raise PlmError(f"unknown generation(s) {', '.join(map(repr, unknown))}; choose from "
                           f"{', '.join(GENERATIONS)}", field="generations")
        if len(set(self.generations)) != len(self.generations):
            raise PlmError("a generation is listed twice", field="generations")
        if not (isinstance(self.budget, (int, float)) and math.isfinite(self.budget)
                and self.budget > 0):
            raise PlmError(f"budget must be a positive number, not {self.budget!r}",
                           field="budget")
        if not isinstance(self.few_labels, int) or self.few_labels < 0:
            raise PlmError(f"few_labels must be an integer ≥ 0, not {self.few_labels!r}",
                           field="few_labels")
        if not isinstance(self.few_draws, int) or self.few_draws < 1:
            raise PlmError(f"few_draws must be an integer ≥ 1, not {self.few_draws!r}",
                           field="few_draws")
        if self.corpus != "ptb" and self.test_corpus is None:
            raise PlmError("a corpus file needs a held-out file too (test_corpus)",
                           field="test_corpus")
        pairs = (("polarity_train", "polarity_dev"), ("ner_train", "ner_dev"))
        for a, b in pairs:
            if (getattr(self, a) is None) != (getattr(self, b) is None):
                raise PlmError(f"give both {a} and {b}, or neither", field=a)
        for name, _, folder in self.reused_berts():
            if "bert" not in self.generations:
                raise PlmError(f"{name} is given but the bert generation is not run",
                               field=name)
            for needed in ("config.json", "vocab.txt"):
                if not (Path(folder) / needed).is_file():
                    raise PlmError(f"not a BERT checkpoint folder: no {needed}", path=folder,
                                   field=name)


@dataclass
class Plan:
    """The budget turned into sizes. Dev and test sets do not scale: metrics stay comparable."""

    lm_sentences: int
    zh_sentences: int
    polarity_train: int
    ner_train: int
    # People's Daily's dev split has about 4,470 sentences; 300 left one standard error of
    # entity F1 near ±0.025, more than the gaps between generations. 2,000 bring it near ±0.01
    # for about 5% more time at budget 10.
    ner_dev: int = 2000
    task_sentences: int = 0  # polarity training sentences added to the English pre-training text
    few_labels: int = 0      # the few-label polarity run's training sentences (0: not run)
    few_draws: int = 1       # …and how many different draws of them are averaged
    polarity_dev: int = 0    # the dev sentences behind each polarity accuracy
    vocab_size: int = 5000   # the shared word vocabulary (the rest is <unk>): the softmax's cost
    head_epochs: int = 15    # a small head on frozen features: cheap, needs many updates
    finetune_epochs: int = 3
    # Nine characters in ten are tagged O: fine-tuning a whole transformer for 3 epochs leaves it
    # predicting O everywhere (entity F1 0), so taggers get as many passes as the frozen heads.
    tagging_epochs: int = 15
    word2vec_epochs: int = 3
    # Pre-training passes of the transformers (the recurrent LMs make one): one pass left GPT at
    # perplexity 311 where four reach 156, the LSTM's level (budget 3).
    gpt_epochs: float = 4.0
    # BERT at batch 8 and 1e-3: at 2e-3 or more its MLM stays at the unigram stage (accuracy
    # 0.04 after 4 passes over 4,500 Chinese sentences, 0.10 at 1e-3); larger batches, fewer
    # updates, do worse at the same cost.
    bert_epochs: float = 2.0
    bert_batch_size: int = 8
    bert_lr: float = 1e-3
    # Fine-tuning rates from probes at budget 3 (NER F1 / polarity): GPT 0.34 / 0.70 at 2e-3
    # against 0.31 / 0.64 at 5e-4; BERT 0.43 / 0.66 at 1e-3 and batch 16 against 0.33 / 0.66 at
    # 5e-4 and batch 32.
    gpt_finetune_lr: float = 2e-3
    bert_finetune_lr: float = 1e-3
    bert_finetune_batch_size: int = 16

    @classmethod
    def from_budget(cls, budget: float) -> Plan:
        def scaled(base: int, floor: int = 8) -> int:
            return max(floor, int(round(base * budget)))

        return cls(lm_sentences=scaled(4000), zh_sentences=scaled(1500),
                   polarity_train=scaled(1600), ner_train=scaled(1200),
                   word2vec_epochs=max(1, min(10, int(round(3 * budget)))))


@dataclass
class Row:
    """One generation's line of the table (None: not comparable / not measured)."""

    generation: str
    model: str
    perplexity: float | None
    polarity_accuracy: float | None
    ner_f1: float | None
    polarity_few_accuracy: float | None   # the mean over the draws
    parameters: int
    seconds: float
    polarity_few_draws: list[float] = field(default_factory=list)  # each draw's accuracy
