"""Token tagging (NER) with a fine-tuned checkpoint: tags per word, entities with their text."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from plmkit._io import read_text_file
from plmkit.data.tasks import (TABLE_SUFFIXES, Row, TaggedSentence, read_conll, read_table,
                               resolve_data, sentences_from_text)
from plmkit.evaluation.tagging import get_entities
from plmkit.errors import PlmError
from plmkit.pipelines.base import FinetunedPipeline

_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0xF900, 0xFAFF),
               (0x3040, 0x30FF), (0xAC00, 0xD7AF))


def _is_cjk(token: str) -> bool:
    return len(token) == 1 and any(a <= ord(token) <= b for a, b in _CJK_RANGES)


def looks_like_conll(path: Path, sample: int = 50) -> bool:
    """Most of the first lines are ``token<TAB>tag``-style columns (a .txt may be either)."""
    lines = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.strip():
                lines.append(line)
            if len(lines) >= sample:
                break
    if not lines:
        return False
    return sum("\t" in line for line in lines) >= 0.9 * len(lines)


class TaggingPipeline(FinetunedPipeline):
    """``pipe("John lives in Paris")`` → ``{"tokens", "tags", "entities"}``.

    A string is split into the words the tokenizer sees (whitespace, punctuation, each CJK
    character); :meth:`tag_words` takes words already split. Entities carry their type, word span
    ``[start, end)``, text, mean tag probability and, for raw text, character span.
    """

    tasks = ("tag",)

    def __call__(self, texts: str | Sequence[str]) -> dict[str, Any] | list[dict[str, Any]]:
        single = isinstance(texts, str)
        items = [texts] if single else list(texts)
        results = self.predict_sentences(sentences_from_text(self.tokenizer, items))
        return results[0] if single else results

    def tag_words(self, words: Sequence[str] | Sequence[Sequence[str]],
                  ) -> dict[str, Any] | list[dict[str, Any]]:
        single = bool(words) and isinstance(words[0], str)
        batch = [list(words)] if single else [list(w) for w in words]
        results = self.predict_sentences([TaggedSentence(w) for w in batch])
        return results[0] if single else results

    def predict_sentences(self, sentences: list[TaggedSentence]) -> list[dict[str, Any]]:
        if not sentences:
            return []
        data = self.features(sentences)
        with self.no_grad():
            found = self.task.predict(self.model, self.batches(data))
        return [self._result(sentence, found.get(i, {})) for i, sentence in enumerate(sentences)]

    def _result(self, sentence: TaggedSentence, words: dict[int, tuple[int, float]],
                ) -> dict[str, Any]:
        tags = [self.id2label[words[w][0]] if w in words else "O"
                for w in range(len(sentence.tokens))]
        scores = [words[w][1] if w in words else 1.0 for w in range(len(sentence.tokens))]
        entities = []
        if self.settings.scheme != "none":
            for entity in get_entities(tags):
                item: dict[str, Any] = {"type": entity.type, "start": entity.start,
                                        "end": entity.end}
                if sentence.spans is not None and sentence.text is not None:
                    begin = sentence.spans[entity.start][0]
                    finish = sentence.spans[entity.end - 1][1]
                    item["text"] = sentence.text[begin:finish]
                    item["char_start"], item["char_end"] = begin, finish
                else:
                    pieces = sentence.tokens[entity.start:entity.end]
                    joiner = "" if all(map(_is_cjk, pieces)) else " "
                    item["text"] = joiner.join(pieces)
                item["score"] = sum(scores[entity.start:entity.end]) / (entity.end - entity.start)
                entities.append(item)
        return {"tokens": list(sentence.tokens), "tags": tags, "entities": entities}

    def read_inputs(self, path: str | Path, input_format: str | None = None,
                    ) -> list[TaggedSentence]:
        """CoNLL (token column; any tags ignored), a table with a text column, or raw lines."""
        path = resolve_data(path)
        fmt = input_format or self._guess_format(path)
        if fmt == "conll":
            return read_conll(path, token_column=self.settings.token_column, tag_column=None)
        column = self.settings.text_column or "text"
        if fmt == "text":  # one sentence a line, whatever the suffix
            text = read_text_file(path)
            rows = [Row({column: line.rstrip("\r")}, number)
                    for number, line in enumerate(text.lstrip("\ufeff").split("\n"), start=1)
                    if line.strip()]
            if not rows:
                raise PlmError("the file has no text", path=path)
        else:
            rows = read_table(path, [column], text_column=column)
        texts = [str(row.values[column]) for row in rows]
        return sentences_from_text(self.tokenizer, texts, str(path), [row.line for row in rows])

    @staticmethod
    def _guess_format(path: Path) -> str:
        suffix = path.suffix.lower()
        if suffix == ".txt":
            return "conll" if looks_like_conll(path) else "text"
        if suffix in TABLE_SUFFIXES:
            return "table"
        return "conll"

    def predict_file(self, path: str | Path, input_format: str | None = None,
                     ) -> list[dict[str, Any]]:
        return self.predict_sentences(self.read_inputs(path, input_format))


__all__ = ["TaggingPipeline", "looks_like_conll"]
