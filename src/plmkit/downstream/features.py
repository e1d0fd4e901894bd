"""Examples in, model features out: the same reading and featurising for training and prediction.

Training and inference must read a file and cut it into pieces identically — a checkpoint scored
on inputs featurised differently from the ones it learnt on is silently worse — so both go
through :func:`read_examples` and :func:`featurize` here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plmkit.data.collate import Batches
from plmkit.data.tasks import (TaggedSentence, TaskCollator, encode_tagged_sentences,
                               encode_text_examples, label_list, read_conll, read_text_examples,
                               resolve_data)
from plmkit.data.tasks_qa import QAFeature, make_qa_features, read_qa_examples
from plmkit.downstream.settings import TaskSettings
from plmkit.errors import PlmError
from plmkit.evaluation.tagging import convert_tags, is_entity_tag, split_tag


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
    """Model inputs for ``examples`` (labels as ids when ``label2id`` is given)."""
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


__all__ = ["TaskData", "eval_batches", "featurize", "prepare_tags", "read_examples",
           "tag_label_set"]
