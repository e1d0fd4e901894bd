"""Fine-tuned pipelines on checkpoints we did not write: folders saved by Hugging Face's
``save_pretrained`` (tiny random BERTs with a head), the real MiniLM weights, and our own
pre-training output.

For the HF folders, the reference is the HF model itself run on the HF tokenizer's ids: our
pipeline must give the same label and probability (classification), the same first-piece tags
(tagging) and the same best span, cut from the context by character offsets (QA).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "film", "was", "good", "bad",
         "john", "lives", "in", "paris", "rome", "where", "does", "live", "?", ".", ",", "and",
         "mary", "works", "at", "acme", "un", "##believ", "##able", "##s", "##ed", "very",
         "张", "三", "住", "北", "京"]
TEXTS = ["the film was good", "the film was unbelievable and bad", "john lives in paris ."]


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def _hf_folder(folder: Path, cls_name: str, **config) -> Path:
    """A tiny random HF BERT with a head, saved with its tokenizer the way HF saves them."""
    torch.manual_seed(0)
    hf_config = transformers.BertConfig(
        vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=48, max_position_embeddings=64, **config)
    model = getattr(transformers, cls_name)(hf_config).eval()
    with torch.no_grad():  # spread the head's outputs so the argmax is not a coin toss
        for name, parameter in model.named_parameters():
            if name.startswith(("classifier", "qa_outputs")):
                parameter.normal_(0.0, 1.0)
    model.save_pretrained(folder)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    transformers.BertTokenizerFast(vocab=str(vocab), do_lower_case=True).save_pretrained(
        folder)
    assert not (folder / "task.json").exists()
    return folder


def _hf_tokenizer(folder: Path):
    return transformers.BertTokenizerFast.from_pretrained(folder)


def _cli(*argv: str) -> int:
    from plmkit.cli import main

    return main(list(argv))


# ----------------------------------------------------------------------------- classification
@pytest.fixture(scope="module")
def hf_classifier(tmp_path_factory) -> Path:
    return _hf_folder(tmp_path_factory.mktemp("hf-cls"), "BertForSequenceClassification",
                      id2label={0: "neg", 1: "neutral", 2: "pos"},
                      label2id={"neg": 0, "neutral": 1, "pos": 2})


def test_classification_pipeline_on_an_hf_folder_matches_hf(hf_classifier):
    import plmkit

    pipe = plmkit.pipeline("classify", model=hf_classifier)
    assert pipe.settings.task == "classify"  # read from config.json's architectures
    model = transformers.BertForSequenceClassification.from_pretrained(hf_classifier).eval()
    tokenizer = _hf_tokenizer(hf_classifier)
    ours = pipe(TEXTS)
    for text, result in zip(TEXTS, ours):
        with torch.no_grad():
            probabilities = model(**tokenizer(text, return_tensors="pt")).logits[0].softmax(-1)
        best = int(probabilities.argmax())
        assert result["label"] == model.config.id2label[best]
        assert result["score"] == pytest.approx(float(probabilities[best]), abs=1e-5)
    pair = pipe(("the film was good", "john lives in paris ."))
    with torch.no_grad():
        encoded = tokenizer("the film was good", "john lives in paris .", return_tensors="pt")
        assert encoded["token_type_ids"].sum() > 0  # segment 1 for the second sentence
        probabilities = model(**encoded).logits[0].softmax(-1)
    assert pair["score"] == pytest.approx(float(probabilities.max()), abs=1e-5)


def test_predict_and_finetune_from_an_hf_folder(hf_classifier, tmp_path):
    rows = [[text, label] for text, label in zip(TEXTS * 4, ["pos", "neg", "neutral"] * 4)]
    data = tmp_path / "data.csv"
    with open(data, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["text", "label"], *rows])
    out = tmp_path / "pred.jsonl"
    assert _cli("predict", "--model", str(hf_classifier), "--input", str(data),
                "--output", str(out)) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == len(rows) and all(list(r) == ["label", "score"] for r in records)

    from plmkit.training.finetune import FinetuneConfig, TaskSettings, finetune

    result = finetune(FinetuneConfig(
        task="classify", model=str(hf_classifier), train=str(data), dev=str(data),
        output_dir=str(tmp_path / "run"), max_steps=2, batch_size=4, progress=False, plot=False,
        settings=TaskSettings(task="classify")))
    assert result.global_step == 2 and "accuracy" in result.dev_metrics
    # Same label set as the HF head: its weights were kept, not re-drawn.
    from safetensors.torch import load_file

    before = load_file(str(hf_classifier / "model.safetensors"))["classifier.bias"]
    after = load_file(str(tmp_path / "run" / "model.safetensors"))["classifier.bias"]
    assert torch.allclose(before, after, atol=1e-2) and not torch.equal(before, after)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["label2id"] == {"neg": 0, "neutral": 1, "pos": 2}


# ----------------------------------------------------------------------------- tagging
def test_tagging_pipeline_on_an_hf_folder_labels_first_pieces(tmp_path):
    import plmkit

    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    folder = _hf_folder(tmp_path / "hf-tag", "BertForTokenClassification",
                        id2label=dict(enumerate(labels)),
                        label2id={label: i for i, label in enumerate(labels)})
    pipe = plmkit.pipeline("ner", model=folder)
    assert pipe.settings.task == "tag" and pipe.settings.scheme == "bio"
    model = transformers.BertForTokenClassification.from_pretrained(folder).eval()
    tokenizer = _hf_tokenizer(folder)
    words = ["john", "lives", "unbelievable", "in", "paris", "张", "三"]
    ours = pipe.tag_words(words)
    encoded = tokenizer(words, is_split_into_words=True, return_tensors="pt")
    with torch.no_grad():
        predicted = model(**encoded).logits[0].argmax(-1).tolist()
    expected, seen = [], set()
    for position, word in enumerate(encoded.word_ids()):
        if word is not None and word not in seen:  # the first piece of each word decides
            seen.add(word)
            expected.append(labels[predicted[position]])
    assert len(encoded.word_ids()) > len(words) + 2  # "unbelievable" is three pieces
    assert ours["tags"] == expected and ours["tokens"] == words


# ----------------------------------------------------------------------------- QA
def _reference_span(start: np.ndarray, end: np.ndarray, allowed: list[bool],
                    max_answer_length: int) -> tuple[int, int]:
    """Brute force: the allowed (i, j), i ≤ j < i + max_answer_length, maximising s_i + e_j."""
    best, span = -np.inf, (0, 0)
    for i in range(len(start)):
        for j in range(i, min(len(end), i + max_answer_length)):
            if allowed[i] and allowed[j] and start[i] + end[j] > best:
                best, span = start[i] + end[j], (i, j)
    return span


def test_qa_pipeline_on_an_hf_folder_finds_hf_best_span(tmp_path):
    import plmkit

    folder = _hf_folder(tmp_path / "hf-qa", "BertForQuestionAnswering")
    pipe = plmkit.pipeline("qa", model=folder, max_answer_length=5)
    assert pipe.settings.task == "qa"
    model = transformers.BertForQuestionAnswering.from_pretrained(folder).eval()
    tokenizer = _hf_tokenizer(folder)
    contexts = ["Mary works at Acme, and John lives in Paris.",
                "The film was good; Mary  lives   in Rome.", "张三住北京 and john works at acme"]
    for context in contexts:
        question = "where does john live ?"
        ours = pipe(question=question, context=context)
        encoded = tokenizer(question, context, return_offsets_mapping=True, return_tensors="pt")
        offsets = encoded.pop("offset_mapping")[0].tolist()
        with torch.no_grad():
            out = model(**encoded)
        allowed = [s == 1 for s in encoded.sequence_ids(0)]
        i, j = _reference_span(out.start_logits[0].numpy(), out.end_logits[0].numpy(), allowed, 5)
        assert (ours["start"], ours["end"]) == (offsets[i][0], offsets[j][1])
        assert ours["answer"] == context[offsets[i][0]:offsets[j][1]]


# ----------------------------------------------------------------------------- MiniLM, ours
def test_finetune_from_real_minilm_and_predict(minilm_dir, tmp_path):
    from plmkit.training.finetune import FinetuneConfig, TaskSettings, finetune

    rows = [["a moving , beautiful film", "pos"], ["dull and lifeless", "neg"]] * 4
    data = tmp_path / "train.csv"
    with open(data, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["text", "label"], *rows])
    result = finetune(FinetuneConfig(
        task="classify", model=str(minilm_dir), train=str(data), dev=str(data),
        output_dir=str(tmp_path / "run"), max_steps=2, batch_size=8, progress=False, plot=False,
        settings=TaskSettings(task="classify", max_length=16)))
    assert result.global_step == 2
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["hidden_size"] == 384 and saved["num_hidden_layers"] == 6
    assert saved["id2label"] == {"0": "neg", "1": "pos"}
    import plmkit

    answer = plmkit.pipeline("classify", model=tmp_path / "run")("a beautiful film")
    assert answer["label"] in ("pos", "neg") and 0.5 <= answer["score"] <= 1.0
