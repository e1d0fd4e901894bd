"""Inference stands on its own: pipelines import no training module, a fine-tuned folder's
task.json is checked as untrusted input, long predictions show progress, and word vectors holding
NaN are refused with the reason.

The fine-tuned checkpoint here is a tiny randomly initialised classifier saved with a vocabulary
and a task.json: loading, reading and predicting need no training.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import plmkit.pipelines
from plmkit.cli import main
from plmkit.models.bert import BertConfig, BertForSequenceClassification

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "good", "bad", "film", "plot", "."]


def _pipeline_modules() -> list[str]:
    """Every module of plmkit.pipelines, so a pipeline added later is checked too."""
    return ["plmkit.pipelines"] + [f"plmkit.pipelines.{m.name}"
                                   for m in pkgutil.iter_modules(plmkit.pipelines.__path__)]


def test_pipelines_import_no_training_module():
    modules = _pipeline_modules()
    assert {"plmkit.pipelines.base", "plmkit.pipelines.classify",
            "plmkit.pipelines.translate"} <= set(modules)
    code = ("import importlib, json, sys\n"
            f"for name in {modules!r}: importlib.import_module(name)\n"
            "import plmkit.downstream\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('plmkit.'))))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    loaded = json.loads(result.stdout)
    assert "plmkit.pipelines.base" in loaded and "plmkit.downstream.predictors" in loaded
    assert [m for m in loaded if m.startswith("plmkit.training")] == []


@pytest.fixture
def classifier(tmp_path) -> Path:
    """A 'fine-tuned' classify checkpoint: random weights, labels, vocabulary and task.json."""
    folder = tmp_path / "classifier"
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=32,
                        id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1})
    BertForSequenceClassification(config).save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    (folder / "task.json").write_text(json.dumps({"task": "classify"}), encoding="utf-8")
    return folder


def _inputs(tmp_path: Path, rows: int = 3) -> Path:
    path = tmp_path / "inputs.csv"
    path.write_text("text,label\n" + "a good film,pos\n" * rows, encoding="utf-8")
    return path


def _commands(folder: Path, tmp_path: Path) -> dict[str, list[str]]:
    """Every command that opens a fine-tuned folder (each reads task.json first)."""
    data = str(_inputs(tmp_path))
    return {
        "classify": ["classify", "--model", str(folder), "a good film"],
        "ner": ["ner", "--model", str(folder), "a good film"],
        "qa": ["qa", "--model", str(folder), "--context", "a film", "--question", "a ?"],
        "predict": ["predict", "--model", str(folder), "--input", data, "--output",
                    str(tmp_path / "out.jsonl")],
        "evaluate": ["evaluate", "--model", str(folder), "--data", data],
    }


BAD_TASK_FILES = {
    "unknown task": ('{"task": "summarise"}', "unknown task 'summarise'", "[task]"),
    "a JSON list": ('["classify"]', "expected a JSON object", "task.json"),
    "not JSON": ('{"task": "classify",', "invalid JSON", "task.json"),
    "a number for the task": ('{"task": 3}', "expected str", "[task]"),
    "a negative length": ('{"task": "classify", "max_length": -4}', "≥ 0", "[max_length]"),
    "a stride of zero": ('{"task": "qa", "doc_stride": 0}', "≥ 1", "[doc_stride]"),
}


@pytest.mark.parametrize("case", list(BAD_TASK_FILES))
def test_a_bad_task_json_is_one_line_naming_file_and_field(classifier, tmp_path, capsys, case):
    content, message, where = BAD_TASK_FILES[case]
    (classifier / "task.json").write_text(content, encoding="utf-8")
    for name, argv in _commands(classifier, tmp_path).items():
        assert main(argv) == 2, name
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, (name, err)
        assert "task.json" in err and message in err and where in err, (name, err)
    assert not (tmp_path / "out.jsonl").exists()


def test_a_bad_task_json_through_the_installed_command_has_no_traceback(classifier):
    (classifier / "task.json").write_text('{"task": "summarise"}', encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "plmkit.cli", "classify", "--model",
                             str(classifier), "a good film"], capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "task.json [task]" in result.stderr


def test_task_names_and_aliases_come_from_one_table(classifier, tmp_path, capsys):
    from plmkit.downstream.settings import TASK_ALIASES, TASKS
    from plmkit.pipelines import pipeline_class
    from plmkit.pipelines.classify import ClassificationPipeline
    from plmkit.pipelines.qa import QuestionAnsweringPipeline
    from plmkit.pipelines.tagging import TaggingPipeline

    classes = {"classify": ClassificationPipeline, "pair": ClassificationPipeline,
               "tag": TaggingPipeline, "qa": QuestionAnsweringPipeline}
    for name in (*TASKS, *TASK_ALIASES):
        assert pipeline_class(name) is classes[TASK_ALIASES.get(name, name)], name
    # a folder without task.json, its task given by an alias on the command line
    (classifier / "task.json").unlink()
    assert main(["classify", "--model", str(classifier), "a good film"]) == 0  # from its head
    data = _inputs(tmp_path)
    code = main(["evaluate", "--model", str(classifier), "--data", str(data),
                 "--task", "text-classification"])
    assert code == 0 and "accuracy" in capsys.readouterr().out


def test_predict_shows_a_progress_bar_on_a_terminal_only(classifier, tmp_path, capsys,
                                                         monkeypatch):
    data = _inputs(tmp_path, rows=40)
    output = tmp_path / "out.jsonl"
    argv = ["predict", "--model", str(classifier), "--input", str(data), "--output", str(output),
            "--batch-size", "8"]
    assert main(argv) == 0  # stderr is not a terminal here: no bar
    assert "predict" not in capsys.readouterr().err
    assert len(output.read_text().splitlines()) == 40

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "predict" in err and "40/40" in err and "input" in err

    assert main(argv + ["--no-progress"]) == 0
    assert "predict" not in capsys.readouterr().err


def test_similar_on_vectors_holding_nan_says_why(tmp_path, capsys):
    vectors = tmp_path / "vectors.txt"
    vectors.write_text("3 2\ncat 0.1 0.2\ndog nan 0.3\nmat 0.4 0.1\n", encoding="utf-8")
    for argv in (["similar", str(vectors), "cat"], ["analogy", str(vectors), "cat", "dog", "mat"]):
        assert main(argv) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.count("\n") == 1
        assert "NaN" in captured.err and "'dog'" in captured.err and "vectors.txt" in captured.err
    vectors.write_text("3 2\ncat 0.1 0.2\ndog 0.2 0.3\nmat 0.4 0.1\n", encoding="utf-8")
    assert main(["similar", str(vectors), "cat", "-k", "2"]) == 0
    assert "dog" in capsys.readouterr().out


# Commands whose --output is a file, with arguments naming inputs that do not exist: the
# output is checked first, so the error must be about the output, before any input is read.
FILE_OUTPUTS = {
    "predict": ["predict", "--model", "missing", "--input", "missing.csv", "--output"],
    "evaluate": ["evaluate", "--model", "missing", "--data", "missing.csv", "--output"],
    "translate": ["translate", "missing", "--input", "missing.txt", "--output"],
    "ngram": ["ngram", "--corpus", "missing.txt", "-o"],
    "word2vec": ["word2vec", "--corpus", "missing.txt", "-o"],
    "embed": ["embed", "--model", "missing", "a sentence", "--output"],
    "attention": ["attention", "missing", "a sentence", "-o"],
}
# Commands whose --output is a folder they fill (checked by their own tests).
FOLDER_OUTPUTS = {"train-tokenizer", "pretrain", "finetune", "train-translation", "train-gpt",
                  "finetune-gpt", "train-lm", "ladder", "demo", "export"}


def test_an_output_file_that_names_a_folder_is_refused_before_any_work(tmp_path, capsys):
    from plmkit.cli import build_parser

    subparsers = next(a for a in build_parser()._actions if hasattr(a, "choices")
                      and isinstance(a.choices, dict))
    with_output = {name for name, parser in subparsers.choices.items()
                   if any("--output" in a.option_strings for a in parser._actions)}
    assert with_output == set(FILE_OUTPUTS) | FOLDER_OUTPUTS  # a new command must say which
    folder = tmp_path / "a-folder"
    folder.mkdir()
    for name, argv in FILE_OUTPUTS.items():
        assert main([*argv, str(folder)]) == 2, name
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is a folder" in err and str(folder) in err, (name, err)
        assert list(folder.iterdir()) == []
