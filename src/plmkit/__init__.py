"""plmkit: pre-trained language models, from n-grams to BERT, written from scratch.

Layers (a layer imports only layers below it)::

    cli.py, commands/             the plm command: parse, lock the output, call one function
    ladder/                       every generation on the same data
    pipelines/                    inference faces (never import training/)
    training/                     the one Trainer and one recipe per model family
    downstream/                   a fine-tuned folder's task settings, features, predictions
    evaluation/                   metrics, decoding
    models/                       attention core, BERT, GPT, Transformer, older generations
    data/                         corpora, pre-training instances, task datasets, collators
    tokenization/, datasets/      text -> ids; named real sources fetched into a verified cache
    errors.py, _io.py, config.py, precision.py, runtime.py   the floor everything stands on
"""

from __future__ import annotations

from typing import Any

from plmkit.errors import PlmError

__version__ = "0.1.0"


def pipeline(name: str, model: Any, **options: Any) -> Any:
    """``plmkit.pipeline("ner", model="runs/ner")``: see :mod:`plmkit.pipelines`."""
    from plmkit.pipelines import pipeline as build

    return build(name, model, **options)


__all__ = ["PlmError", "__version__", "pipeline"]
