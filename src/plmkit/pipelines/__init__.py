"""Pipelines: a checkpoint folder in, predictions out, in one call.

    >>> from plmkit.pipelines import pipeline
    >>> ner = pipeline("ner", model="runs/ner")
    >>> ner("爱因斯坦在柏林发表演讲")["entities"]
    [{'type': 'PER', 'text': '爱因斯坦', ...}, {'type': 'LOC', 'text': '柏林', ...}]

Each name maps to ``"module:Class"``; the class is imported only when asked for, so a pipeline's
heavy imports cost nothing to the others. A new pipeline is one line in :data:`PIPELINES` and a
class whose constructor takes ``(model, **options)``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from plmkit.errors import PlmError

# Fine-tuned BERT checkpoints, by task family; any name or alias of a family finds its class
# (:data:`plmkit.downstream.settings.TASK_ALIASES`: "ner", "question-answering", ...).
TASK_PIPELINES: dict[str, str] = {
    "classify": "plmkit.pipelines.classify:ClassificationPipeline",
    "pair": "plmkit.pipelines.classify:ClassificationPipeline",
    "tag": "plmkit.pipelines.tagging:TaggingPipeline",
    "qa": "plmkit.pipelines.qa:QuestionAnsweringPipeline",
}
# The other pipelines.
PIPELINES: dict[str, str] = {
    "fill-mask": "plmkit.pipelines.fill_mask:FillMaskPipeline",
    "embed": "plmkit.pipelines.embed:EmbeddingPipeline",
    "feature-extraction": "plmkit.pipelines.embed:EmbeddingPipeline",
    "generate": "plmkit.pipelines.generate:TextGenerationPipeline",
    "text-generation": "plmkit.pipelines.generate:TextGenerationPipeline",
    "translate": "plmkit.pipelines.translate:TranslationPipeline",
    "translation": "plmkit.pipelines.translate:TranslationPipeline",
}


def _load(spec: str) -> type:
    module_name, _, class_name = spec.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def pipeline_class(name: str) -> type:
    """The class behind a pipeline name or a task family's name or alias."""
    from plmkit.downstream.settings import TASK_ALIASES, TASK_NAMES

    if name in PIPELINES:
        return _load(PIPELINES[name])
    if name in TASK_NAMES:
        return _load(TASK_PIPELINES[TASK_ALIASES.get(name, name)])
    raise PlmError(f"unknown pipeline {name!r}; choose one of "
                   f"{', '.join(sorted((*PIPELINES, *TASK_NAMES)))}", field="pipeline")


def pipeline(name: str, model: str | Path, **options: Any) -> Any:
    """The pipeline ``name`` over the checkpoint folder ``model`` (options go to its class)."""
    return pipeline_class(name)(model, **options)


def finetuned_pipeline(model: str | Path, task: str | None = None, **options: Any) -> Any:
    """The pipeline for whatever family the fine-tuned checkpoint ``model`` was trained on
    (read from its ``task.json``, or its architecture; ``task`` for folders that say neither)."""
    from plmkit.downstream.settings import load_settings

    folder = Path(model)
    if not folder.is_dir():
        raise PlmError("checkpoint folder not found", path=folder)
    settings = load_settings(folder, task=task)
    return _load(TASK_PIPELINES[settings.task])(folder, task=task, **options)


__all__ = ["PIPELINES", "TASK_PIPELINES", "finetuned_pipeline", "pipeline", "pipeline_class"]
