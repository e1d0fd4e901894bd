"""A checkpoint folder in, a model and tokenizer out: the family's head on an encoder, or a
fine-tuned model with every weight.

:func:`load_tokenizer` is the one loader of the WordPiece vocabulary saved beside any checkpoint
(pre-trained, fine-tuned or translation), so every command says the same thing when it is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from plmkit.downstream.settings import TaskSettings
from plmkit.errors import PlmError
from plmkit.models.bert import (BertForQuestionAnswering, BertForSequenceClassification,
                                BertForTokenClassification)
from plmkit.models.pretrained import load_state_dict, read_checkpoint_config

ARCHITECTURES: dict[str, type] = {
    "classify": BertForSequenceClassification, "pair": BertForSequenceClassification,
    "tag": BertForTokenClassification, "qa": BertForQuestionAnswering,
}
HEAD_PREFIXES = ("classifier.", "qa_outputs.")


def load_tokenizer(folder: str | Path) -> Any:
    """The WordPiece tokenizer saved in a checkpoint folder (``vocab.txt``, or Hugging Face's
    ``tokenizer.json``), with its ``tokenizer_config.json`` options."""
    from plmkit.tokenization import WordPieceTokenizer

    folder = Path(folder)
    if not folder.is_dir():
        raise PlmError("checkpoint or vocabulary folder not found", path=folder)
    if not (folder / "vocab.txt").exists() and not (folder / "tokenizer.json").exists():
        raise PlmError("no vocab.txt beside the model: cannot tokenise", path=folder)
    return WordPieceTokenizer.from_pretrained(folder)


FINE_TUNING_DROPOUT = 0.1  # BERT's, in pre-training and fine-tuning alike


def fine_tuning_dropout(saved: dict, dropout: float | None) -> float | None:
    """The dropout to fine-tune with: ``dropout`` when given; else the checkpoint's own, unless
    the checkpoint has none at all. A checkpoint pre-trained without dropout (``--recipe budget``,
    as *Cramming* does: dropout only slows a model that sees each token about once) gets BERT's
    0.1 back for fine-tuning, where a few thousand labelled examples are seen many times and
    dropout is what keeps the head from memorising them. ``None``: keep the checkpoint's."""
    if dropout is not None:
        return dropout
    hidden = saved.get("hidden_dropout_prob")
    attention = saved.get("attention_probs_dropout_prob")
    if hidden == 0 and (attention or 0) == 0:
        return FINE_TUNING_DROPOUT
    return None


def build_model(settings: TaskSettings, folder: str | Path, labels: Sequence[str] | None,
                dropout: float | None = None) -> nn.Module:
    """The family's BERT head on the encoder of ``folder``.

    The checkpoint's own head is kept only when it is the same kind of head with the same label
    set (continuing a fine-tuning run); otherwise the head starts fresh (N(0, 0.02)). ``dropout``
    sets the encoder's dropout (see :func:`fine_tuning_dropout` for the default).
    """
    folder = Path(folder)
    cls = ARCHITECTURES[settings.task]
    saved = read_checkpoint_config(folder)
    overrides: dict[str, Any] = {}
    chosen = fine_tuning_dropout(saved, dropout)
    if chosen is not None:
        overrides.update(hidden_dropout_prob=chosen, attention_probs_dropout_prob=chosen)
    if settings.task in ("classify", "pair") and settings.regression:
        overrides |= {"num_labels": 1, "problem_type": "regression", "id2label": None,
                     "label2id": None}
    elif labels is not None:
        overrides |= {"id2label": dict(enumerate(labels)),
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


def load_finetuned(folder: str | Path, settings: TaskSettings, runtime: str = "torch"
                   ) -> nn.Module:
    """A fine-tuned model for prediction: every weight, the head included, must be there.
    ``runtime="onnx"``: the folder is a ``plm export --format onnx`` folder, run by ONNX Runtime
    behind the same call (:class:`plmkit.export.runtime.OnnxModel`). ``runtime="torch-int8"``:
    the PyTorch checkpoint with its encoder's linears in dynamic int8
    (:func:`plmkit.export.runtime.dynamic_int8`), for CPU inference."""
    from plmkit.export.runtime import OnnxModel, check_runtime, dynamic_int8

    check_runtime(folder, runtime)
    if runtime == "onnx":
        model = OnnxModel(folder)
        if model.task != settings.task and {model.task, settings.task} != {"classify", "pair"}:
            raise PlmError(f"the export holds a {model.task!r} model, not {settings.task!r}",
                           path=Path(folder) / "config.json", field="export")
        return model  # type: ignore[return-value]
    cls = ARCHITECTURES[settings.task]
    try:
        model = cls.from_pretrained(folder, strict_head=True)
    except PlmError as exc:
        raise PlmError(f"{exc.message} (is this a fine-tuned {settings.task} checkpoint?)",
                       path=exc.path or folder, line=exc.line,
                       field=exc.field) from None
    return dynamic_int8(model) if runtime == "torch-int8" else model


__all__ = ["ARCHITECTURES", "FINE_TUNING_DROPOUT", "HEAD_PREFIXES", "build_model",
           "fine_tuning_dropout", "load_finetuned", "load_tokenizer"]
