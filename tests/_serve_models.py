"""Small real checkpoints for the server tests: built here (tiny BERT heads, a 2-step GPT and
translation model), plus MiniLM from the cache. Each is a folder like ``plm``'s own output."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from _commands import TINY_RUNS

WORDS = ["the", "cat", "dog", "sat", "ran", "on", "mat", "log", "a", "red", "good", "bad", "film",
         "was", ".", "paris", "is", "capital", "of", "france", "张", "三", "住", "在", "北", "京",
         "who", "where", "?"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]


def _bert(folder: Path, cls_name: str, **config) -> Path:
    from plmkit.models import bert

    torch.manual_seed(0)
    model = getattr(bert, cls_name)(bert.BertConfig(
        vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, **config)).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    model.save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return folder


def build_models(root: Path) -> dict[str, Path]:
    """name → folder for every kind the server serves."""
    from plmkit.cli import main

    root.mkdir(parents=True, exist_ok=True)
    folders = {
        "mlm": _bert(root / "mlm", "BertForMaskedLM"),
        "encoder": _bert(root / "encoder", "BertModel"),
        "sentiment": _bert(root / "sentiment", "BertForSequenceClassification",
                           id2label={0: "neg", 1: "pos"}),
        "ner": _bert(root / "ner", "BertForTokenClassification",
                     id2label={0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}),
        "qa": _bert(root / "qa", "BertForQuestionAnswering"),
    }
    (folders["sentiment"] / "task.json").write_text(json.dumps({"task": "classify"}))
    gpt, mt = root / "gpt", root / "mt"
    assert main(TINY_RUNS["train-gpt"](root) + ["--max-steps", "2", "--no-progress",
                                                "--output", str(gpt)]) == 0
    assert main(TINY_RUNS["train-translation"](root) + ["--max-steps", "2", "--no-progress",
                                                        "--output", str(mt)]) == 0
    folders.update(gpt=gpt, mt=mt)
    return folders


__all__ = ["VOCAB", "build_models"]
