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

PIPELINES: dict[str, str] = {
    "classify": "plmkit.pipelines.classify:ClassificationPipeline",
    "text-classification": "plmkit.pipelines.classify:ClassificationPipeline",
    "ner": "plmkit.pipelines.tagging:TaggingPipeline",
    "tag": "plmkit.pipelines.tagging:TaggingPipeline",
    "token-classification": "plmkit.pipelines.tagging:TaggingPipeline",
    "qa": "plmkit.pipelines.qa:QuestionAnsweringPipeline",
    "question-answering": "plmkit.pipelines.qa:QuestionAnsweringPipeline",
    "fill-mask": "plmkit.pipelines.fill_mask:FillMaskPipeline",
    "embed": "plmkit.pipelines.embed:EmbeddingPipeline",
    "feature-extraction": "plmkit.pipelines.embed:EmbeddingPipeline",
    "generate": "plmkit.pipelines.generate:TextGenerationPipeline",
    "text-generation": "plmkit.pipelines.generate:TextGenerationPipeline",
    "translate": "plmkit.pipelines.translate:TranslationPipeline",
    "translation": "plmkit.pipelines.translate:TranslationPipeline",
}


def pipeline_class(name: str) -> type:
    if name not in PIPELINES:
        raise PlmError(f"unknown pipeline {name!r}; choose one of {', '.join(sorted(PIPELINES))}",
                       field="pipeline")
    module_name, _, class_name = PIPELINES[name].partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def pipeline(name: str, model: str | Path, **options: Any) -> Any:
    """The pipeline ``name`` over the checkpoint folder ``model`` (options go to its class)."""
    return pipeline_class(name)(model, **options)


__all__ = ["PIPELINES", "pipeline", "pipeline_class"]
