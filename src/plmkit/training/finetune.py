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

This module is the *training* half. Everything a fine-tuned checkpoint needs to be used — task
settings (``task.json``), reading and featurising examples, loading the model, predictions and
scores — lives in :mod:`plmkit.downstream`, below training, so inference never imports the
Trainer. Here each family's predictor gains a training ``step`` and becomes a task of
:class:`plmkit.training.Trainer` (there is no other loop), and :func:`finetune` reads the
files, fixes the label set, builds the model from any BERT checkpoint (ours, MiniLM, a Hugging Face
folder), trains with early stopping on the dev metric (resuming exactly from a checkpoint when
asked) and scores the best model on the test set.

The names that moved keep working from here (``from plmkit.training.finetune import
TaskSettings``), but new code should import them from :mod:`plmkit.downstream`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from plmkit._io import write_text_atomic
from plmkit.data.collate import Batches
from plmkit.data.tasks import TaskCollator, label_list
from plmkit.downstream.features import (TaskData, eval_batches, featurize, prepare_tags,
                                        read_examples, tag_label_set)
from plmkit.downstream.loading import (ARCHITECTURES, HEAD_PREFIXES, build_model,
                                       load_finetuned, load_tokenizer)
from plmkit.downstream.predictors import (ClassificationPredictor, QuestionAnsweringPredictor,
                                          TaggingPredictor, evaluate_checkpoint, forward,
                                          qa_scores)
from plmkit.downstream.settings import (TASK_ALIASES, TASK_FILE, TASKS, TaskSettings,
                                        canonical_task, load_settings)
from plmkit.errors import PlmError
from plmkit.evaluation.tagging import is_entity_tag
from plmkit.models.pretrained import read_checkpoint_config
from plmkit.training.checkpoint import refuse_existing_run


class CheckpointFiles:
    """What the Trainer saves beside the weights: the tokenizer's files and ``task.json``."""

    def __init__(self, tokenizer: Any, settings: TaskSettings) -> None:
        self.tokenizer = tokenizer
        self.settings = settings

    def save_pretrained(self, folder: str | Path) -> None:
        self.tokenizer.save_pretrained(folder)
        self.settings.save(Path(folder))


# ------------------------------------------------------------------------------- task objects
class ClassificationTask(ClassificationPredictor):
    """Single sentences and sentence pairs: cross-entropy over the label set, or MSE."""

    def step(self, model: nn.Module, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        out = forward(model, batch, labels=batch["labels"])
        metrics = {}
        if not self.regression:
            with torch.no_grad():
                metrics["accuracy"] = float((out.logits.argmax(-1) == batch["labels"])
                                            .float().mean())
        return out.loss, metrics


class TaggingTask(TaggingPredictor):
    """Token tagging: cross-entropy at the first piece of each word; entity-level F1 on dev."""

    def step(self, model: nn.Module, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        out = forward(model, batch, labels=batch["labels"])
        with torch.no_grad():
            keep = batch["labels"] != -100
            correct = (out.logits.argmax(-1)[keep] == batch["labels"][keep]).float()
            metrics = {"accuracy": float(correct.mean()) if correct.numel() else 0.0}
        return out.loss, metrics


class QuestionAnsweringTask(QuestionAnsweringPredictor):
    """Span QA: mean of the start and end cross-entropies; SQuAD EM/F1 on dev."""

    def step(self, model: nn.Module, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        out = forward(model, batch, start_positions=batch["start_positions"],
                      end_positions=batch["end_positions"])
        return out.loss, {}


def make_task(settings: TaskSettings, model: nn.Module, data: TaskData | None = None) -> Any:
    """The family's Trainer task for ``model`` (``data`` brings gold tags and QA windows)."""
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
    compile: bool = False
    max_minutes: float = 0.0            # wall-clock budget: stop, evaluate and save (0 = none)
    schedule_clock: str = "steps"       # "time": warm-up and decay planned over max_minutes
    min_lr_ratio: float = 0.0           # the decay's floor, as a share of the peak rate
    save_every: int = 0                 # also checkpoint every N steps (0: evaluations only)
    log_every: int = 10
    eval_every: int = 0                 # 0: at the end of every epoch
    metric_for_best: str | None = None  # default: accuracy / f1 / corr
    early_stopping_patience: int = 0
    keep_last: int = 1
    train_fraction: float = 1.0         # learning curves: a fixed random share of train
    dropout: float | None = None        # None: the checkpoint's (0.1 if it was pre-trained with none)
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


def finetune(config: FinetuneConfig, *, resume: bool | str | Path = False) -> FinetuneResult:
    """Read, featurise, train through the Trainer (early stopping on the dev metric), test.

    ``resume``: continue from the last checkpoint in ``output_dir`` (True) or from the given
    checkpoint folder; the run then ends exactly as if it had never stopped.
    """
    import time

    from plmkit.training.trainer import Trainer, TrainingConfig, seed_everything

    started = time.perf_counter()
    if not config.model:
        raise PlmError("give the checkpoint to start from (--model)", field="model")
    if not config.train:
        raise PlmError("give the training data (--train)", field="train")
    folder = Path(config.model)
    if not resume:
        refuse_existing_run(Path(config.output_dir))  # before reading any data
    saved = read_checkpoint_config(folder)
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
    model = build_model(settings, folder, labels, dropout=config.dropout)
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
        compile=config.compile, max_minutes=config.max_minutes,
        schedule_clock=config.schedule_clock, min_lr_ratio=config.min_lr_ratio,
        seed=config.seed, log_every=config.log_every,
        eval_every=(config.eval_every or steps_per_epoch) if dev else 0,
        save_every=config.save_every, keep_last=config.keep_last,
        metric_for_best=f"eval_{metric}" if dev else None,
        greater_is_better=metric not in ("loss", "mse"),
        early_stopping_patience=config.early_stopping_patience if dev else 0,
        progress=config.progress, plot=config.plot,
        plot_metrics=("loss", metric) if metric != "loss" else ("loss",))
    task = make_task(settings, model, dev)
    trainer = Trainer(model, task, train_batches, training, eval_data=dev_batches,
                      tokenizer=CheckpointFiles(tokenizer, settings))
    result = trainer.train(resume=resume)
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


__all__ = [
    "ARCHITECTURES", "CheckpointFiles", "ClassificationTask", "FinetuneConfig", "FinetuneResult",
    "HEAD_PREFIXES", "QuestionAnsweringTask", "TASKS", "TASK_ALIASES", "TASK_FILE", "TaggingTask",
    "TaskData", "TaskSettings", "build_model", "canonical_task", "default_metric", "eval_batches",
    "evaluate_checkpoint", "featurize", "finetune", "load_finetuned", "load_settings",
    "load_tokenizer", "make_task", "prepare_tags", "qa_scores", "read_examples", "tag_label_set",
    "training_labels",
]
