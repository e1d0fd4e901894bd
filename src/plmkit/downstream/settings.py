"""The four task families, their names, and ``task.json``: how a checkpoint's inputs are read.

A fine-tuned checkpoint describes itself: ``config.json`` holds the label set
(``id2label``/``label2id``) and ``task.json`` the family and how its inputs are read (columns, tag
scheme, window sizes), so ``evaluate`` and ``predict`` need nothing but the folder. Both files
are input, not truth: a folder may come from anyone, so each is checked here and a bad value is
one :class:`PlmError` naming the file and the field.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plmkit._io import write_text_atomic
from plmkit.config import config_from_dict, load_json_object
from plmkit.errors import PlmError
from plmkit.evaluation.tagging import SCHEMES, detect_scheme, is_entity_tag
from plmkit.models.pretrained import read_checkpoint_config

TASKS = ("classify", "pair", "tag", "qa")
# Every other name a user may give a family: the CLI's --task, ``pipeline(NAME)`` (Hugging
# Face's pipeline names included), task.json. The one table of them.
TASK_ALIASES = {"classification": "classify", "sentence": "classify",
                "text-classification": "classify", "sentence-pair": "pair", "ner": "tag",
                "tagging": "tag", "token": "tag", "token-classification": "tag", "squad": "qa",
                "question-answering": "qa"}
TASK_NAMES = TASKS + tuple(TASK_ALIASES)
TASK_FILE = "task.json"
# A head's Hugging Face architecture → the family it serves (for folders without task.json).
ARCHITECTURE_TASKS = {"BertForSequenceClassification": "classify",
                      "BertForTokenClassification": "tag",
                      "BertForQuestionAnswering": "qa"}


def canonical_task(name: str, *, path: str | Path | None = None) -> str:
    """The family a task name or alias means; an unknown name is an error listing the choices."""
    task = TASK_ALIASES.get(name, name) if isinstance(name, str) else name
    if task not in TASKS:
        raise PlmError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}", path=path,
                       field="task")
    return task


# Numeric settings and the least each may be (max_length 0 means "the family's default").
_MINIMUMS = {"max_length": 0, "doc_stride": 1, "max_query_length": 1, "max_answer_length": 1,
             "n_best_size": 1}


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

    def check(self, source: str | Path | None = None) -> None:
        """Refuse values no reader or decoder can use, naming the field (and the file)."""
        canonical_task(self.task, path=source)
        if self.scheme not in (*SCHEMES, "none"):
            raise PlmError(f"scheme must be bio, iobes or none, not {self.scheme!r}",
                           path=source, field="scheme")
        for name, least in _MINIMUMS.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise PlmError(f"must be an integer ≥ {least}, not {value!r}", path=source,
                               field=name)

    def resolved(self, max_positions: int | None = None) -> TaskSettings:
        """Fill the task-dependent defaults."""
        self.check()
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
        return settings

    def save(self, folder: Path) -> None:
        write_text_atomic(folder / TASK_FILE, json.dumps(dataclasses.asdict(self), indent=2) + "\n")


def load_settings(folder: str | Path, **overrides: Any) -> TaskSettings:
    """``task.json`` of a fine-tuned checkpoint, or settings inferred from its architecture."""
    folder = Path(folder)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if "task" in overrides:
        overrides["task"] = canonical_task(overrides["task"])
    path = folder / TASK_FILE
    if path.exists():
        values = load_json_object(path)
        config_from_dict(TaskSettings, values, source=path).check(path)  # the file on its own
        settings = config_from_dict(TaskSettings, {**values, **overrides}, source=path)
        settings.task = canonical_task(settings.task)
        return settings
    config = read_checkpoint_config(folder)
    config_path = folder / "config.json"
    architecture = (config.get("architectures") or [""])[0]
    inferred = ARCHITECTURE_TASKS.get(architecture)
    values: dict[str, Any] = {"task": inferred} if inferred else {}
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


__all__ = ["ARCHITECTURE_TASKS", "TASKS", "TASK_ALIASES", "TASK_FILE", "TASK_NAMES", "TaskSettings",
           "canonical_task", "load_settings"]
