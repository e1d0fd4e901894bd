"""Fine-tuning BERT on the seeds' four downstream families, as tasks of the one Trainer.

The four families differ only in how text becomes input and which one layer sits on top:

==========  =====================================  ==================================  =========
family      input                                  head (``plmkit.models.bert``)       dev metric
==========  =====================================  ==================================  =========
classify    ``[CLS] text [SEP]``                   pooled [CLS] → linear (softmax/MSE)  accuracy
pair        ``[CLS] A [SEP] B [SEP]``, segments    pooled [CLS] → linear               accuracy
tag         ``[CLS] w1 … wn [SEP]``, first pieces  every token → linear                entity F1
qa          ``[CLS] question [SEP] passage [SEP]`` every token → (start, end)          SQuAD F1
==========  =====================================  ==================================  =========

Each family is a task object (``step`` for training, ``evaluate`` for the dev set) run by
:class:`plmkit.training.Trainer` — there is no other loop. Around them, :func:`finetune` reads the
files, fixes the label set, builds the model from any BERT checkpoint (ours, MiniLM, a Hugging Face
folder), trains with early stopping on the dev metric and scores the best model on the test set.

A fine-tuned checkpoint describes itself: its ``config.json`` holds the label set
(``id2label``/``label2id``) and ``task.json`` the family and how its inputs are read (columns, tag
scheme, window sizes), so ``evaluate`` and ``predict`` need nothing but the folder.

(The scoring functions come from :mod:`plmkit.evaluation`: pure functions of lists, no torch,
imported here so a task's ``evaluate`` reports the official numbers.)
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from plmkit._io import write_text_atomic
from plmkit.config import config_from_dict
from plmkit.data.collate import Batches
from plmkit.data.tasks import (TaggedSentence, TaskCollator, encode_tagged_sentences,
                               encode_text_examples, label_list, read_conll, read_text_examples,
                               resolve_data)
from plmkit.data.tasks_qa import (QAExample, QAFeature, make_qa_features, postprocess_qa,
                                  read_qa_examples)
from plmkit.errors import PlmError
from plmkit.evaluation.metrics import classification_metrics, regression_metrics
from plmkit.evaluation.squad import squad_scores
from plmkit.evaluation.tagging import (SCHEMES, convert_tags, detect_scheme, entity_scores,
                                       is_entity_tag, split_tag)
from plmkit.models.bert import (BertForQuestionAnswering, BertForSequenceClassification,
                                BertForTokenClassification)
from plmkit.models.pretrained import load_state_dict

TASKS = ("classify", "pair", "tag", "qa")
TASK_ALIASES = {"classification": "classify", "sentence": "classify", "sentence-pair": "pair",
                "ner": "tag", "tagging": "tag", "token": "tag", "squad": "qa"}
ARCHITECTURES: dict[str, type] = {
    "classify": BertForSequenceClassification, "pair": BertForSequenceClassification,
    "tag": BertForTokenClassification, "qa": BertForQuestionAnswering,
}
HEAD_PREFIXES = ("classifier.", "qa_outputs.")
TASK_FILE = "task.json"


def canonical_task(name: str) -> str:
    task = TASK_ALIASES.get(name, name)
    if task not in TASKS:
        raise PlmError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}", field="task")
    return task


# ------------------------------------------------------------------------------- settings
@dataclass
class TaskSettings:
    """How a checkpoint's inputs are read and decoded; saved as ``task.json`` beside it."""

    task: str = "classify"
    text_column: str | None = None        # classify: "text"; pair: "text_a"
    text_pair_column: str | None = None   # pair: "text_b"
    label_column: str = "label"
    regression: bool = False
    scheme: str = "bio"                   # tag: bio | iobes | none (tags used as they are)
    token_column: int = 0
    tag_column: int = -1
    max_length: int = 0                   # 0: 128 (384 for qa), capped by the model's positions
    doc_stride: int = 128
    max_query_length: int = 64
    max_answer_length: int = 30
    n_best_size: int = 20
    version_2_with_negative: bool = False
    null_score_diff_threshold: float = 0.0
    question_column: str = "question"
    context_column: str = "context"

    def resolved(self, max_positions: int | None = None) -> TaskSettings:
        """Fill the task-dependent defaults."""
        settings = dataclasses.replace(self, task=canonical_task(self.task))
        if settings.task == "pair":
            settings.text_column = settings.text_column or "text_a"
            settings.text_pair_column = settings.text_pair_column or "text_b"
        elif settings.task == "classify":
            settings.text_column = settings.text_column or "text"
        if not settings.max_length:
            settings.max_length = 384 if settings.task == "qa" else 128
        if max_positions:
            settings.max_length = min(settings.max_length, max_positions)
        if settings.scheme not in (*SCHEMES, "none"):
            raise PlmError(f"scheme must be bio, iobes or none, not {settings.scheme!r}",
                           field="scheme")
        return settings

    def save(self, folder: Path) -> None:
        write_text_atomic(folder / TASK_FILE, json.dumps(dataclasses.asdict(self), indent=2) + "\n")


def load_settings(folder: str | Path, **overrides: Any) -> TaskSettings:
    """``task.json`` of a fine-tuned checkpoint, or settings inferred from its architecture."""
    folder = Path(folder)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    path = folder / TASK_FILE
    if path.exists():
        values = json.loads(path.read_text(encoding="utf-8"))
        return config_from_dict(TaskSettings, {**values, **overrides}, source=path)
    config_path = folder / "config.json"
    if not config_path.exists():
        raise PlmError("no config.json: not a checkpoint folder", path=folder)
    config = json.loads(config_path.read_text(encoding="utf-8"))
    architecture = (config.get("architectures") or [""])[0]
    inferred = {"BertForSequenceClassification": "classify",
                "BertForTokenClassification": "tag",
                "BertForQuestionAnswering": "qa"}.get(architecture)
    values = {"task": inferred} if inferred else {}
    if inferred == "classify" and config.get("problem_type") == "regression":
        values["regression"] = True
    if inferred == "tag":
        labels = list((config.get("id2label") or {}).values())
        values["scheme"] = detect_scheme([labels]) if all(map(is_entity_tag, labels)) else "none"
    values.update(overrides)
    if "task" not in values:
        raise PlmError(f"cannot tell the task of a {architecture or 'plain'} checkpoint; "
                       "give --task", path=config_path, field="architectures")
    return config_from_dict(TaskSettings, values, source=config_path)


class CheckpointFiles:
    """What the Trainer saves beside the weights: the tokenizer's files and ``task.json``."""

    def __init__(self, tokenizer: Any, settings: TaskSettings) -> None:
        self.tokenizer = tokenizer
        self.settings = settings

    def save_pretrained(self, folder: str | Path) -> None:
        self.tokenizer.save_pretrained(folder)
        self.settings.save(Path(folder))


# ------------------------------------------------------------------------------- data
def load_tokenizer(folder: str | Path) -> Any:
    from plmkit.tokenization import WordPieceTokenizer

    folder = Path(folder)
    if not (folder / "vocab.txt").exists():
        raise PlmError("no vocab.txt beside the model: cannot tokenise", path=folder)
    return WordPieceTokenizer.from_pretrained(folder)


def read_examples(settings: TaskSettings, path: str | Path, *, labelled: bool = True) -> list:
    """The examples of one file for the settings' family (labels required when ``labelled``)."""
    path = resolve_data(path)
    if settings.task in ("classify", "pair"):
        return read_text_examples(path, text_column=settings.text_column or "text",
                                  text_pair_column=settings.text_pair_column,
                                  label_column=settings.label_column if labelled else None,
                                  regression=settings.regression, require_label=labelled)
    if settings.task == "tag":
        return read_conll(path, token_column=settings.token_column,
                          tag_column=settings.tag_column if labelled else None)
    return read_qa_examples(path, question_column=settings.question_column,
                            context_column=settings.context_column)


def tag_label_set(sentences: Sequence[TaggedSentence], scheme: str) -> list[str]:
    """Every tag the scheme can write for the entity types seen (so an I-X unseen in training is
    still a class), "O" first; with scheme "none" the tags seen, as they are."""
    tags = [tag for s in sentences for tag in (s.tags or [])]
    if scheme == "none":
        return label_list(tags)
    types = sorted({split_tag(tag)[1] for tag in tags if tag != "O"})
    prefixes = ("B", "I") if scheme == "bio" else ("B", "I", "E", "S")
    return ["O"] + [f"{p}-{t}" for t in types for p in prefixes]


def prepare_tags(sentences: Sequence[TaggedSentence], scheme: str) -> list[TaggedSentence]:
    """Re-write BIO or IOBES tags in the model's scheme; a tag that is neither is an error
    (unless the scheme is "none", e.g. for part-of-speech tags)."""
    if scheme == "none":
        return list(sentences)
    out = []
    for sentence in sentences:
        if sentence.tags is None:
            out.append(sentence)
            continue
        for number, tag in enumerate(sentence.tags):
            if not is_entity_tag(tag):
                raise PlmError(f"tag {tag!r} is not O or B-/I-/E-/S-TYPE; use --scheme none for "
                               "tags that are not entity tags", path=sentence.source,
                               line=sentence.line + number, field="tag")
        out.append(dataclasses.replace(sentence, tags=convert_tags(sentence.tags, scheme)))
    return out


@dataclass
class TaskData:
    """Examples of one split and their model features (QA keeps its windows too)."""

    examples: list
    features: list[dict[str, Any]]
    qa_features: list[QAFeature] | None = None
    references: list[list[str]] | None = None  # gold tags per sentence (tagging)

    def lengths(self) -> list[int]:
        return [len(f["input_ids"]) for f in self.features]


def featurize(settings: TaskSettings, tokenizer: Any, examples: list,
              label2id: dict[str, int] | None, *, training: bool) -> TaskData:
    if settings.task in ("classify", "pair"):
        features = encode_text_examples(tokenizer, examples, settings.max_length,
                                        None if settings.regression else label2id,
                                        settings.regression)
        return TaskData(examples, features)
    if settings.task == "tag":
        sentences = prepare_tags(examples, settings.scheme)
        features = encode_tagged_sentences(tokenizer, sentences, settings.max_length, label2id)
        references = [s.tags for s in sentences] if all(s.tags for s in sentences) else None
        return TaskData(sentences, features, references=references)
    windows = make_qa_features(tokenizer, examples, max_length=settings.max_length,
                               doc_stride=settings.doc_stride,
                               max_query_length=settings.max_query_length, training=training)
    return TaskData(examples, [w.as_dict(i, training) for i, w in enumerate(windows)], windows)


def eval_batches(data: TaskData, batch_size: int, pad_token_id: int) -> Batches:
    """Unshuffled batches, longest first (less padding); results are keyed by index."""
    order = sorted(range(len(data.features)), key=lambda i: -len(data.features[i]["input_ids"]))
    return Batches([data.features[i] for i in order], batch_size, TaskCollator(pad_token_id),
                   shuffle=False)


# ------------------------------------------------------------------------------- task objects
def _forward(model: nn.Module, batch: dict[str, Tensor], **labels: Tensor | None) -> Any:
    return model(batch["input_ids"], attention_mask=batch.get("attention_mask"),
                 token_type_ids=batch.get("token_type_ids"), **labels)


class ClassificationTask:
    """Single sentences and sentence pairs: cross-entropy over the label set, or MSE."""

    def __init__(self, id2label: dict[int, str] | None = None, regression: bool = False) -> None:
        self.id2label = id2label or {}
        self.regression = regression

    def step(self, model: nn.Module, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        out = _forward(model, batch, labels=batch["labels"])
        metrics = {}
        if not self.regression:
            with torch.no_grad():
                metrics["accuracy"] = float((out.logits.argmax(-1) == batch["labels"])
                                            .float().mean())
        return out.loss, metrics

    def predict(self, model: nn.Module, batches: Iterable[dict[str, Any]],
                ) -> dict[int, np.ndarray]:
        """example index → logits (class scores, or the regression value)."""
        logits: dict[int, np.ndarray] = {}
        for batch in batches:
            out = _forward(model, batch)
            values = out.logits.float().cpu().numpy()
            for index, row in zip(batch["example_index"].tolist(), values):
                logits[index] = row
        return logits

    def evaluate(self, model: nn.Module, batches: Iterable[dict[str, Any]]) -> dict[str, float]:
        gold: dict[int, float] = {}
        logits: dict[int, np.ndarray] = {}
        losses = []
        for batch in batches:
            out = _forward(model, batch, labels=batch["labels"])
            losses.append((float(out.loss), len(batch["labels"])))
            for index, row, label in zip(batch["example_index"].tolist(),
                                         out.logits.float().cpu().numpy(),
                                         batch["labels"].tolist()):
                logits[index], gold[index] = row, label
        order = sorted(gold)
        metrics: dict[str, float] = {"loss": _mean_loss(losses)}
        if self.regression:
            metrics.update(regression_metrics([float(logits[i][0]) for i in order],
                                              [gold[i] for i in order]))
        else:
            predicted = [int(np.argmax(logits[i])) for i in order]
            labels = sorted(self.id2label) if self.id2label else None
            metrics.update(classification_metrics(predicted, [int(gold[i]) for i in order],
                                                  labels))
        return metrics


def _mean_loss(losses: Sequence[tuple[float, int]]) -> float:
    total = sum(n for _, n in losses)
    return sum(loss * n for loss, n in losses) / total if total else 0.0


class TaggingTask:
    """Token tagging: cross-entropy at the first piece of each word; entity-level F1 on dev."""

    def __init__(self, id2label: dict[int, str], references: Sequence[Sequence[str]] | None = None,
                 scheme: str = "bio") -> None:
        self.id2label = id2label
        self.references = references
        self.scheme = scheme

    def step(self, model: nn.Module, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        out = _forward(model, batch, labels=batch["labels"])
        with torch.no_grad():
            keep = batch["labels"] != -100
            correct = (out.logits.argmax(-1)[keep] == batch["labels"][keep]).float()
            metrics = {"accuracy": float(correct.mean()) if correct.numel() else 0.0}
        return out.loss, metrics

    @staticmethod
    def _collect(logits: Tensor, batch: dict[str, Any],
                 found: dict[int, dict[int, tuple[int, float]]]) -> None:
        probabilities = logits.float().softmax(-1)
        best, ids = probabilities.max(-1)
        best, ids, word_ids = best.cpu(), ids.cpu(), batch["word_ids"].cpu()
        for row, index in enumerate(batch["example_index"].tolist()):
            words = word_ids[row]
            for position in torch.nonzero(words >= 0).flatten().tolist():
                found.setdefault(index, {})[int(words[position])] = (
                    int(ids[row, position]), float(best[row, position]))

    def predict(self, model: nn.Module, batches: Iterable[dict[str, Any]],
                ) -> dict[int, dict[int, tuple[int, float]]]:
        """sentence index → {word index: (label id, probability)}."""
        found: dict[int, dict[int, tuple[int, float]]] = {}
        for batch in batches:
            self._collect(_forward(model, batch).logits, batch, found)
        return found

    def decode(self, found: dict[int, dict[int, tuple[int, float]]], index: int,
               length: int) -> list[str]:
        words = found.get(index, {})
        return [self.id2label[words[w][0]] if w in words else "O" for w in range(length)]

    def evaluate(self, model: nn.Module, batches: Iterable[dict[str, Any]]) -> dict[str, float]:
        losses = []
        found: dict[int, dict[int, tuple[int, float]]] = {}
        for batch in batches:
            labels = batch.get("labels")
            out = _forward(model, batch, labels=labels)
            if labels is not None:
                losses.append((float(out.loss), int((labels != -100).sum())))
            self._collect(out.logits, batch, found)
        metrics: dict[str, float] = {"loss": _mean_loss(losses)}
        if self.references is None:
            return metrics
        predicted = [self.decode(found, i, len(tags)) for i, tags in enumerate(self.references)]
        if self.scheme == "none":
            correct = sum(p == g for ps, gs in zip(predicted, self.references)
                          for p, g in zip(ps, gs))
            metrics["accuracy"] = correct / max(1, sum(map(len, self.references)))
            return metrics
        scores = entity_scores(self.references, predicted)
        metrics.update({key: scores[key] for key in ("precision", "recall", "f1", "accuracy")})
        return metrics


class QuestionAnsweringTask:
    """Span QA: mean of the start and end cross-entropies; SQuAD EM/F1 on dev."""

    def __init__(self, settings: TaskSettings, examples: Sequence[QAExample] = (),
                 windows: Sequence[QAFeature] = ()) -> None:
        self.settings = settings
        self.examples = list(examples)
        self.windows = list(windows)

    def step(self, model: nn.Module, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        out = _forward(model, batch, start_positions=batch["start_positions"],
                       end_positions=batch["end_positions"])
        return out.loss, {}

    def logits(self, model: nn.Module, batches: Iterable[dict[str, Any]],
               ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        starts: list[Any] = [None] * len(self.windows)
        ends: list[Any] = [None] * len(self.windows)
        for batch in batches:
            out = _forward(model, batch)
            start = out.start_logits.float().cpu().numpy()
            end = out.end_logits.float().cpu().numpy()
            for row, index in enumerate(batch["feature_index"].tolist()):
                size = len(self.windows[index].input_ids)
                starts[index], ends[index] = start[row, :size], end[row, :size]
        return starts, ends

    def predictions(self, model: nn.Module, batches: Iterable[dict[str, Any]]) -> list:
        starts, ends = self.logits(model, batches)
        s = self.settings
        return postprocess_qa(self.examples, self.windows, starts, ends,
                              n_best_size=s.n_best_size, max_answer_length=s.max_answer_length,
                              version_2_with_negative=s.version_2_with_negative,
                              null_score_diff_threshold=s.null_score_diff_threshold)

    def evaluate(self, model: nn.Module, batches: Iterable[dict[str, Any]]) -> dict[str, float]:
        predictions = self.predictions(model, batches)
        return qa_scores(self.examples, predictions, self.settings.version_2_with_negative)


def qa_scores(examples: Sequence[QAExample], predictions: Sequence[Any],
              version_2: bool) -> dict[str, float]:
    """SQuAD EM/F1 (percent); v2.0 adds the HasAns/NoAns split and the best null thresholds."""
    references = {e.id: [a.text for a in e.answers] for e in examples}
    answers = {p.id: p.answer for p in predictions}
    na_probs = {p.id: p.null_odds for p in predictions} if version_2 else None
    scores = squad_scores(answers, references, version="2.0" if version_2 else "1.1",
                          na_probs=na_probs, na_prob_threshold=math.inf if version_2 else 1.0)
    return {k: float(v) for k, v in scores.items()}


def make_task(settings: TaskSettings, model: nn.Module, data: TaskData | None = None) -> Any:
    config = model.config
    if settings.task in ("classify", "pair"):
        return ClassificationTask(config.id2label, settings.regression)
    if settings.task == "tag":
        return TaggingTask(config.id2label, data.references if data else None, settings.scheme)
    return QuestionAnsweringTask(settings, data.examples if data else (),
                                 data.qa_features if data else ())


def default_metric(settings: TaskSettings) -> str:
    if settings.task in ("classify", "pair"):
        return "corr" if settings.regression else "accuracy"
    if settings.task == "tag":
        return "accuracy" if settings.scheme == "none" else "f1"
    return "f1"


# ------------------------------------------------------------------------------- models
def _checkpoint_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.exists():
        raise PlmError("no config.json: not a checkpoint folder", path=folder)
    return json.loads(path.read_text(encoding="utf-8"))


def build_model(settings: TaskSettings, folder: str | Path, labels: Sequence[str] | None,
                ) -> nn.Module:
    """The family's BERT head on the encoder of ``folder``.

    The checkpoint's own head is kept only when it is the same kind of head with the same label
    set (continuing a fine-tuning run); otherwise the head starts fresh (N(0, 0.02)).
    """
    folder = Path(folder)
    cls = ARCHITECTURES[settings.task]
    saved = _checkpoint_config(folder)
    overrides: dict[str, Any] = {}
    if settings.task in ("classify", "pair") and settings.regression:
        overrides = {"num_labels": 1, "problem_type": "regression", "id2label": None,
                     "label2id": None}
    elif labels is not None:
        overrides = {"id2label": dict(enumerate(labels)),
                     "label2id": {label: i for i, label in enumerate(labels)},
                     "problem_type": "single_label_classification"
                     if settings.task != "tag" else None}
    config = cls.load_config(folder, **overrides)
    model = cls(config)
    state = load_state_dict(folder)
    same_head = ((saved.get("architectures") or [""])[0] == cls.hf_architecture
                 and _same_labels(saved.get("id2label"), overrides.get("id2label"),
                                  settings.regression))
    if not same_head:
        state = {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIXES)}
    model.load_checkpoint_state(state, source=folder)
    return model


def _same_labels(saved: dict | None, wanted: dict | None, regression: bool) -> bool:
    if regression or wanted is None:
        return True
    if not saved:
        return False
    return {int(k): v for k, v in saved.items()} == {int(k): v for k, v in wanted.items()}


def load_finetuned(folder: str | Path, settings: TaskSettings) -> nn.Module:
    """A fine-tuned model for prediction: every weight, the head included, must be there."""
    cls = ARCHITECTURES[settings.task]
    try:
        return cls.from_pretrained(folder, strict_head=True)
    except PlmError as exc:
        raise PlmError(f"{exc.message} (is this a fine-tuned {settings.task} checkpoint?)",
                       path=exc.path or folder) from None


# ------------------------------------------------------------------------------- the recipe
@dataclass
class FinetuneConfig:
    """``plm finetune``'s flags, field for field; task-reading fields go into ``task.json``."""

    task: str = "classify"
    model: str = ""
    train: str = ""
    dev: str | None = None
    test: str | None = None
    output_dir: str = "runs/finetune"
    epochs: float = 3.0
    max_steps: int = 0
    batch_size: int = 32
    eval_batch_size: int = 64
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    schedule: str = "linear"
    max_grad_norm: float = 1.0
    seed: int = 42
    device: str = "auto"
    precision: str = "auto"
    log_every: int = 10
    eval_every: int = 0                 # 0: at the end of every epoch
    metric_for_best: str | None = None  # default: accuracy / f1 / corr
    early_stopping_patience: int = 0
    keep_last: int = 1
    train_fraction: float = 1.0         # learning curves: a fixed random share of train
    progress: bool = True
    plot: bool = True
    settings: TaskSettings = field(default_factory=TaskSettings)


@dataclass
class FinetuneResult:
    output_dir: Path
    dev_metrics: dict[str, float]
    test_metrics: dict[str, float]
    best_checkpoint: Path | None
    global_step: int
    train_examples: int
    seconds: float


def subsample(examples: list, fraction: float, seed: int) -> list:
    if fraction >= 1.0:
        return examples
    if fraction <= 0:
        raise PlmError("train_fraction must be in (0, 1]", field="train_fraction")
    count = max(1, round(len(examples) * fraction))
    keep = np.sort(np.random.default_rng(seed).permutation(len(examples))[:count])
    return [examples[i] for i in keep]


def training_labels(settings: TaskSettings, examples: list,
                    dev_examples: list | None = None) -> list[str] | None:
    """The model's label set. Classes come from the training file alone (a dev label never seen
    in training is an error, usually a typo); entity types come from train and dev, since a
    small training sample may simply lack a rare type (ORG) that dev has."""
    if settings.task in ("classify", "pair"):
        return None if settings.regression else label_list(str(e.label) for e in examples)
    if settings.task == "tag":
        sentences = list(examples) + list(dev_examples or [])
        return tag_label_set(prepare_tags(sentences, settings.scheme), settings.scheme)
    return None


def finetune(config: FinetuneConfig) -> FinetuneResult:
    """Read, featurise, train through the Trainer (early stopping on the dev metric), test."""
    import time

    from plmkit.training.trainer import Trainer, TrainingConfig, seed_everything

    started = time.perf_counter()
    if not config.model:
        raise PlmError("give the checkpoint to start from (--model)", field="model")
    if not config.train:
        raise PlmError("give the training data (--train)", field="train")
    folder = Path(config.model)
    _check_fresh_output(Path(config.output_dir))
    saved = _checkpoint_config(folder)
    settings = config.settings.resolved(saved.get("max_position_embeddings"))
    tokenizer = load_tokenizer(folder)
    train_examples = subsample(read_examples(settings, config.train), config.train_fraction,
                               config.seed)
    if settings.task == "tag" and settings.scheme != "none":
        tags = [t for s in train_examples for t in (s.tags or [])]
        if not all(map(is_entity_tag, tags)):
            settings.scheme = "none"
            print("plmkit: the tags are not BIO/IOBES entity tags: scoring token accuracy",
                  file=sys.stderr)
    if settings.task == "qa":
        settings.version_2_with_negative = settings.version_2_with_negative or any(
            e.is_impossible for e in train_examples)
    dev_examples = read_examples(settings, config.dev) if config.dev else None
    labels = training_labels(settings, train_examples, dev_examples)
    # The fresh head is drawn here, before the Trainer seeds itself: without this, its initial
    # weights (and so the result) depended on whatever the process had drawn before.
    seed_everything(config.seed)
    model = build_model(settings, folder, labels)
    label2id = model.config.label2id if labels is not None else None
    train = featurize(settings, tokenizer, train_examples, label2id, training=True)
    dev = None
    if dev_examples is not None:
        if settings.task == "qa" and any(e.is_impossible for e in dev_examples):
            settings.version_2_with_negative = True
        dev = featurize(settings, tokenizer, dev_examples, label2id, training=False)
    pad_id = tokenizer.pad_token_id
    train_batches = Batches(train.features, config.batch_size, TaskCollator(pad_id),
                            shuffle=True, seed=config.seed, lengths=train.lengths())
    dev_batches = eval_batches(dev, config.eval_batch_size, pad_id) if dev else None
    metric = config.metric_for_best or default_metric(settings)
    steps_per_epoch = train_batches.num_batches()
    training = TrainingConfig(
        output_dir=config.output_dir, max_steps=config.max_steps, num_epochs=config.epochs,
        learning_rate=config.learning_rate, weight_decay=config.weight_decay,
        schedule=config.schedule, warmup_ratio=config.warmup_ratio,
        max_grad_norm=config.max_grad_norm, precision=config.precision, device=config.device,
        seed=config.seed, log_every=config.log_every,
        eval_every=(config.eval_every or steps_per_epoch) if dev else 0,
        save_every=0, keep_last=config.keep_last,
        metric_for_best=f"eval_{metric}" if dev else None,
        greater_is_better=metric not in ("loss", "mse"),
        early_stopping_patience=config.early_stopping_patience if dev else 0,
        progress=config.progress, plot=config.plot,
        plot_metrics=("loss", metric) if metric != "loss" else ("loss",))
    task = make_task(settings, model, dev)
    trainer = Trainer(model, task, train_batches, training, eval_data=dev_batches,
                      tokenizer=CheckpointFiles(tokenizer, settings))
    result = trainer.train()
    output = Path(config.output_dir)
    dev_metrics = _best_eval(output, result.best_checkpoint)
    test_metrics: dict[str, float] = {}
    if config.test:
        test_metrics = evaluate_checkpoint(output, config.test,
                                           batch_size=config.eval_batch_size,
                                           device=config.device)
    seconds = time.perf_counter() - started
    summary = {"task": settings.task, "model": str(folder), "train_examples": len(train_examples),
               "global_step": result.global_step, "best_checkpoint":
               str(result.best_checkpoint) if result.best_checkpoint else None,
               "dev": dev_metrics, "test": test_metrics, "seconds": seconds}
    write_text_atomic(output / "results.json", json.dumps(summary, indent=2) + "\n")
    return FinetuneResult(output, dev_metrics, test_metrics, result.best_checkpoint,
                          result.global_step, len(train_examples), seconds)


def _check_fresh_output(output: Path) -> None:
    """Refuse a folder that holds another run: its metrics.jsonl would be appended to (mixing
    two runs in the curves and in the choice of the best evaluation) and its checkpoints
    mistaken for ours."""
    if (output / "metrics.jsonl").exists() or any(output.glob("checkpoint-*")):
        raise PlmError("the output folder already holds a training run; choose another "
                       "--output or remove this one", path=output)


def _best_eval(output: Path, best: Path | None) -> dict[str, float]:
    """The dev metrics of the kept model (the best evaluation, else the last one)."""
    from plmkit.training.reporting import read_metrics

    path = output / "metrics.jsonl"
    if not path.exists():
        return {}
    evals = [r for r in read_metrics(path) if any(k.startswith("eval_") for k in r)]
    if not evals:
        return {}
    chosen = evals[-1]
    if best is not None:
        step = int(best.name.rsplit("-", 1)[-1])
        chosen = next((r for r in reversed(evals) if r.get("step") == step), chosen)
    return {k[len("eval_"):]: v for k, v in chosen.items() if k.startswith("eval_")}


# ------------------------------------------------------------------------------- evaluate
def evaluate_checkpoint(folder: str | Path, data: str | Path, *, task: str | None = None,
                        batch_size: int = 64, device: str = "auto",
                        **overrides: Any) -> dict[str, float]:
    """Score a fine-tuned checkpoint on a labelled file with the checkpoint's own label set."""
    from plmkit.training.trainer import move_to, resolve_device

    folder = Path(folder)
    if task is not None:
        overrides["task"] = canonical_task(task)
    settings = load_settings(folder, **overrides)
    model = load_finetuned(folder, settings)
    settings = settings.resolved(model.config.max_position_embeddings)
    tokenizer = load_tokenizer(folder)
    examples = read_examples(settings, data)
    if settings.task == "qa" and any(e.is_impossible for e in examples):
        settings.version_2_with_negative = True
    label2id = model.config.label2id if settings.task in ("classify", "pair", "tag") else None
    if settings.task == "tag" and not label2id:
        raise PlmError("the checkpoint has no label set (id2label)", path=folder / "config.json")
    prepared = featurize(settings, tokenizer, examples, label2id, training=False)
    task_object = make_task(settings, model, prepared)
    target = resolve_device(device)
    model.to(target).eval()
    batches = (move_to(b, target) for b in
               eval_batches(prepared, batch_size, tokenizer.pad_token_id).batches(0))
    with torch.no_grad():
        return task_object.evaluate(model, batches)


__all__ = [
    "ARCHITECTURES", "CheckpointFiles", "ClassificationTask", "FinetuneConfig", "FinetuneResult",
    "QuestionAnsweringTask", "TASKS", "TaggingTask", "TaskData", "TaskSettings", "build_model",
    "canonical_task", "default_metric", "eval_batches", "evaluate_checkpoint", "featurize",
    "finetune", "load_finetuned", "load_settings", "load_tokenizer", "make_task", "prepare_tags",
    "qa_scores", "read_examples", "tag_label_set", "training_labels",
]
