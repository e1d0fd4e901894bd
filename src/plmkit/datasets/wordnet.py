"""WordNet 3.0 as labelled data: Word-in-Context pairs and gloss→span question answering.

WordNet's synsets carry a gloss — a definition, then quoted example sentences
(``| a lively and joyful; "a bubbly personality"``). Two tasks fall out of that:

* ``wic`` (sentence-pair classification, after Pilehvar & Camacho-Collados 2019): two example
  sentences that use the same lemma; label 1 if both uses belong to the same synset (same sense),
  else 0. Balanced per lemma, so the lemma alone says nothing about the label.
* ``wordnet_qa`` (extractive QA in SQuAD v1.1 JSON): the context is an example sentence, the
  question asks which word has the synset's definition, the answer is the span where one of the
  synset's lemmas — or an inflection of it — occurs in the sentence.

Splits are by lemma (WiC) or synset (QA), so no test question is a near-copy of a training one.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from plmkit._io import write_text_atomic
from plmkit.datasets._build import SEED, Dataset, build, paths, split_groups, write_csv
from plmkit.datasets.raw import wordnet_dir
from plmkit.datasets.sources import progress
from plmkit.errors import PlmError

POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
_EXAMPLE = re.compile(r'"([^"]+)"')
_MARKER = re.compile(r"\([a-z]+\)$")  # adjective position markers: beautiful(a), (p), (ip)
VOWELS = frozenset("aeiou")


@dataclass(frozen=True)
class Synset:
    """One synset: ``id`` is ``"<pos>.<offset>"`` (e.g. ``n.02084071``); lemmas use spaces."""

    id: str
    pos: str
    lemmas: tuple[str, ...]
    definition: str
    examples: tuple[str, ...]


def parse_data_line(line: str, pos: str, path: Path | None = None, number: int | None = None) -> Synset:
    """One line of ``data.<pos>`` → :class:`Synset` (satellite adjectives count as ``a``)."""
    head, bar, gloss = line.partition(" | ")
    fields = head.split()
    try:
        offset, count = fields[0], int(fields[3], 16)
        words = fields[4:4 + 2 * count:2]
    except (IndexError, ValueError):
        raise PlmError("not a WordNet data line", path=path, line=number) from None
    lemmas = tuple(dict.fromkeys(_MARKER.sub("", w).replace("_", " ") for w in words))
    examples = tuple(_clean_example(e) for e in _EXAMPLE.findall(gloss))
    definition = gloss.split('"', 1)[0].strip().rstrip(";").strip()
    return Synset(f"{pos}.{offset}", pos, lemmas, definition, tuple(e for e in examples if e))


def _clean_example(example: str) -> str:
    return " ".join(example.split())


def read_synsets(folder: Path) -> list[Synset]:
    """All synsets of the four data files, in file order (nouns, verbs, adjectives, adverbs)."""
    synsets = []
    for pos, name in POS_FILES.items():
        path = folder / f"data.{name}"
        with open(path, encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                if line.startswith("  ") or not line.strip():
                    continue  # licence header
                synsets.append(parse_data_line(line.rstrip("\n"), pos, path, number))
    return synsets


def read_exceptions(folder: Path) -> dict[tuple[str, str], set[str]]:
    """Irregular forms, inverted: ``(base, pos) → {inflected...}`` (``went`` for ``go``)."""
    forms: dict[tuple[str, str], set[str]] = {}
    for pos, name in POS_FILES.items():
        path = folder / f"{name}.exc"
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            parts = line.split()
            for base in parts[1:]:
                forms.setdefault((base.replace("_", " "), pos), set()).add(parts[0].replace("_", " "))
    return forms


def regular_inflections(word: str, pos: str) -> set[str]:
    """English regular inflections of one word (over-generating is harmless: we only search)."""
    forms = {word}
    if not word.isalpha():
        return forms
    stem_y = word[:-1] if word.endswith("y") and len(word) > 2 and word[-2] not in VOWELS else None
    cvc = len(word) >= 3 and word[-1] not in VOWELS | {"w", "x", "y"} and word[-2] in VOWELS \
        and word[-3] not in VOWELS
    if pos in ("n", "v"):
        forms |= {word + "s", word + "es"}
        if stem_y:
            forms.add(stem_y + "ies")
    if pos == "v":
        forms |= {word + "ed", word + "ing"}
        if word.endswith("e"):
            forms |= {word + "d", word[:-1] + "ing"}
        if stem_y:
            forms.add(stem_y + "ied")
        if cvc:
            forms |= {word + word[-1] + "ed", word + word[-1] + "ing"}
    if pos in ("a", "r"):
        forms |= {word + "er", word + "est"}
        if word.endswith("e"):
            forms |= {word + "r", word + "st"}
        if stem_y:
            forms |= {stem_y + "ier", stem_y + "iest"}
        if cvc:
            forms |= {word + word[-1] + "er", word + word[-1] + "est"}
    return forms


def inflections(lemma: str, pos: str, exceptions: dict[tuple[str, str], set[str]]) -> set[str]:
    """All forms of ``lemma`` to look for: verbs inflect their first word, others their last."""
    words = lemma.split()
    head = 0 if pos == "v" else len(words) - 1
    heads = regular_inflections(words[head], pos) | exceptions.get((words[head], pos), set())
    forms = {" ".join(words[:head] + [h] + words[head + 1:]) for h in heads}
    return forms | exceptions.get((lemma, pos), set())


_TOKEN = re.compile(r"[\w'’]+")
_QUOTES = "'’"


def sentence_words(sentence: str) -> list[tuple[str, int, int, str]]:
    """``(lowercased word, start, end, link)``; ``link`` says what joins it to the word before:
    ``" "`` (space), ``"-"`` (hyphen) or ``"|"`` (anything else, or the sentence start).

    Quotes around a word (WordNet writes ```bosky'``) are not part of it; inner ones are (o'clock).
    """
    words: list[tuple[str, int, int, str]] = []
    previous_end = None
    for match in _TOKEN.finditer(sentence):
        start, end = match.span()
        while start < end and sentence[start] in _QUOTES:
            start += 1
        while end > start and sentence[end - 1] in _QUOTES:
            end -= 1
        if start == end:
            continue
        gap = None if previous_end is None else sentence[previous_end:start]
        link = "-" if gap == "-" else (" " if gap and not gap.strip() else "|")
        words.append((sentence[start:end].lower(), start, end, link))
        previous_end = end
    return words


FormIndex = dict[str, list[list[str]]]


def form_index(forms: set[str]) -> FormIndex:
    """Forms split into words (at spaces and hyphens), keyed by their first word."""
    index: FormIndex = {}
    for form in sorted(forms):
        parts = [p for p in re.split(r"[\s-]+", form) if p]
        if parts:
            index.setdefault(parts[0], []).append(parts)
    return index


def find_form(words: list[tuple[str, int, int, str]], first_words: FormIndex) -> tuple[int, int] | None:
    """Earliest (then longest) span where one of the indexed forms occurs as whole words.

    The words of a form may be joined by spaces or hyphens (``sanctum sanctorum``, ``well-known``);
    a match may not be glued by a hyphen to a word outside it (no ``known`` in ``well-known``).
    """
    best: tuple[int, int] | None = None
    for i, (word, start, _, link) in enumerate(words):
        if word not in first_words or link == "-":
            continue
        for parts in first_words[word]:
            k = len(parts)
            if i + k > len(words):
                continue
            if any(words[i + j][0] != parts[j] or words[i + j][3] == "|" for j in range(1, k)):
                continue
            if i + k < len(words) and words[i + k][3] == "-":
                continue
            span = (start, words[i + k - 1][2])
            if best is None or span[0] < best[0] or (span[0] == best[0] and span[1] > best[1]):
                best = span
        if best is not None:
            return best
    return best


def find_lemma(sentence: str, lemma: str, pos: str,
               exceptions: dict[tuple[str, str], set[str]]) -> tuple[int, int] | None:
    """``(start, end)`` of the first occurrence of ``lemma`` or an inflection in ``sentence``."""
    return find_form(sentence_words(sentence), form_index(inflections(lemma.lower(), pos, exceptions)))


class _FormCache:
    """``inflections`` memoised per (lemma, pos): a lemma recurs across many synsets."""

    def __init__(self, exceptions: dict[tuple[str, str], set[str]]) -> None:
        self.exceptions = exceptions
        self.cache: dict[tuple[str, str], FormIndex] = {}

    def __call__(self, lemma: str, pos: str) -> FormIndex:
        key = (lemma.lower(), pos)
        if key not in self.cache:
            self.cache[key] = form_index(inflections(key[0], pos, self.exceptions))
        return self.cache[key]


@dataclass(frozen=True)
class Use:
    """An example sentence that uses ``lemma`` in the sense of ``synset`` at ``span``."""

    lemma: str
    pos: str
    synset: str
    sentence: str
    span: tuple[int, int]


def lemma_uses(synsets: list[Synset], exceptions) -> list[Use]:
    """Every (synset, example, lemma) where the example really contains the lemma."""
    uses = []
    forms = _FormCache(exceptions)
    for synset in progress(synsets, "WordNet senses", len(synsets)):
        for example in synset.examples:
            words = sentence_words(example)
            for lemma in synset.lemmas:
                span = find_form(words, forms(lemma, synset.pos))
                if span is not None:
                    uses.append(Use(lemma.lower(), synset.pos, synset.id, example, span))
    return uses


# ---- Word-in-Context -------------------------------------------------------------------------

MAX_PAIRS_PER_LEMMA = 4  # per label; keeps frequent words ("make", "take") from dominating


def wic_pairs(uses: list[Use], seed: int = SEED) -> list[tuple[str, str, int, str]]:
    """``(text_a, text_b, label, lemma)``: as many 1s as 0s for every lemma used.

    Only single-word lemmas are used (two senses of a phrase are rare); a pair never repeats
    a sentence, and the order of the two sentences is random.
    """
    rng = random.Random(seed)
    by_lemma: dict[tuple[str, str], dict[str, list[str]]] = {}
    for use in uses:
        if " " in use.lemma or "-" in use.lemma:
            continue
        senses = by_lemma.setdefault((use.lemma, use.pos), {})
        sentences = senses.setdefault(use.synset, [])
        if use.sentence not in sentences:
            sentences.append(use.sentence)
    pairs = []
    for (lemma, pos), senses in sorted(by_lemma.items()):
        if len(senses) < 2:
            continue
        ids = sorted(senses)
        same = [(a, b) for s in ids for i, a in enumerate(senses[s]) for b in senses[s][i + 1:]]
        different = [(a, b) for i, s in enumerate(ids) for t in ids[i + 1:]
                     for a in senses[s] for b in senses[t] if a != b]
        same = [p for p in same if p[0] != p[1]]
        n = min(len(same), len(different), MAX_PAIRS_PER_LEMMA)
        if n == 0:
            continue
        for label, candidates in ((1, same), (0, different)):
            for a, b in rng.sample(candidates, n):
                if rng.random() < 0.5:
                    a, b = b, a
                pairs.append((a, b, label, f"{lemma}.{pos}"))
    return pairs


def write_wic(out_dir: Path) -> dict:
    folder = wordnet_dir()
    pairs = wic_pairs(lemma_uses(read_synsets(folder), read_exceptions(folder)))
    splits = split_groups(pairs, key=lambda pair: pair[3])
    files, sizes, labels, lemmas = {}, {}, {}, {}
    for split, items in splits.items():
        random.Random(SEED).shuffle(items)
        write_csv(out_dir / f"{split}.csv", ("text_a", "text_b", "label"), (p[:3] for p in items))
        files[split] = f"{split}.csv"
        sizes[split] = len(items)
        labels[split] = {str(k): v for k, v in sorted(Counter(p[2] for p in items).items())}
        lemmas[split] = len({p[3] for p in items})
    return {"files": files, "format": "CSV with header text_a,text_b,label; label 1 = same sense, 0 = not",
            "pairs": len(pairs), "sizes": sizes, "labels": labels, "lemmas": lemmas}


WIC = Dataset("wic", ("wordnet",), "Word-in-Context pairs from WordNet examples, text_a,text_b,label CSV",
              write_wic)


def wic(force: bool = False) -> dict[str, Path]:
    """``{"train"|"dev"|"test": Path}`` to CSV ``text_a,text_b,label`` (label 0/1, balanced)."""
    return paths(build(WIC, force=force))


# ---- gloss → span question answering ---------------------------------------------------------


def question_for(definition: str) -> str:
    return f"What word means: {definition}?"


def qa_records(synsets: list[Synset], exceptions) -> list[dict]:
    """One SQuAD question per (synset, example) whose example contains one of the lemmas."""
    records = []
    forms = _FormCache(exceptions)
    for synset in progress(synsets, "WordNet questions", len(synsets)):
        if not synset.definition:
            continue
        for number, example in enumerate(synset.examples):
            found, found_lemma = None, ""
            words = sentence_words(example)
            for lemma in sorted(synset.lemmas, key=lambda l: (-len(l), l)):  # longest lemma first
                span = find_form(words, forms(lemma, synset.pos))
                if span is not None and (found is None or span[0] < found[0]):
                    found, found_lemma = span, lemma
            if found is None:
                continue
            start, end = found
            records.append({
                "synset": synset.id,
                "lemma": found_lemma,
                "context": example,
                "id": f"{synset.id}.{number}",
                "question": question_for(synset.definition),
                "answer": {"text": example[start:end], "answer_start": start},
            })
    return records


def squad_json(records: list[dict]) -> dict:
    """SQuAD v1.1 layout: one article per synset, one paragraph (and question) per example."""
    articles: dict[str, dict] = {}
    for record in records:
        article = articles.setdefault(record["synset"], {"title": record["synset"], "paragraphs": []})
        article["paragraphs"].append({
            "context": record["context"],
            "qas": [{"id": record["id"], "question": record["question"], "answers": [record["answer"]]}],
        })
    return {"version": "1.1", "data": list(articles.values())}


def check_squad(data: dict, path: Path | None = None) -> int:
    """Every ``answer_start`` must point at its ``text`` in the context; returns the question count."""
    count = 0
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            for qa in paragraph["qas"]:
                for answer in qa["answers"]:
                    start = answer["answer_start"]
                    if context[start:start + len(answer["text"])] != answer["text"]:
                        raise PlmError(f"answer_start {start} does not match {answer['text']!r}",
                                       path=path, field=qa["id"])
                count += 1
    return count


def write_wordnet_qa(out_dir: Path) -> dict:
    folder = wordnet_dir()
    records = qa_records(read_synsets(folder), read_exceptions(folder))
    splits = split_groups(records, key=lambda record: record["synset"])
    files, sizes = {}, {}
    for split, items in splits.items():
        data = squad_json(items)
        sizes[split] = check_squad(data)
        write_text_atomic(out_dir / f"{split}.json", json.dumps(data, ensure_ascii=False) + "\n")
        files[split] = f"{split}.json"
    inflected = sum(r["answer"]["text"].lower() != r["lemma"].lower() for r in records)
    return {"files": files, "format": "SQuAD v1.1 JSON (one answer per question)",
            "questions": len(records), "sizes": sizes,
            "synsets": len({r["synset"] for r in records}), "inflected_answers": inflected}


WORDNET_QA = Dataset("wordnet-qa", ("wordnet",),
                     "span QA from WordNet: gloss question, example context, SQuAD v1.1 JSON",
                     write_wordnet_qa)


def wordnet_qa(force: bool = False) -> dict[str, Path]:
    """``{"train"|"dev"|"test": Path}`` to SQuAD v1.1 JSON files."""
    return paths(build(WORDNET_QA, force=force))
