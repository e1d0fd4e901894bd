"""A checkpoint's config is input, not truth (issue 16, class 2).

Every model config (BERT, GPT, the Transformer and the lineage models) is checked before anything
is built: types, positive sizes, probabilities, known names, heads dividing the width, and the
size of the model it describes. The bad values are generated from each class's own
``FieldRules``, so a field or a config class added later is covered too; a guard test fails if a
numeric field is left without a rule. The CLI half edits one field of a tiny saved BERT and runs
``info``, ``fill-mask``, ``classify`` and ``finetune --model`` on it in one memory-capped
subprocess: each must exit 2 with one line on stderr, no traceback, within seconds.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import torch

from plmkit.config import FieldRules, config_from_dict
from plmkit.errors import PlmError
from plmkit.models.bert import (BertConfig, BertForPreTraining, BertForSequenceClassification,
                                BertModel)
from plmkit.models.elmo import ElmoBiLM, ElmoConfig, ElmoForTask, ElmoHeadConfig
from plmkit.models.gpt import GPTConfig, GPTLMHeadModel
from plmkit.models.nnlm import NNLM, NNLMConfig
from plmkit.models.pretrained import (MAX_PARAMETERS_ENV, PretrainedMixin, check_model_size,
                                      parameter_limit)
from plmkit.models.rnn import RNNLanguageModel, RNNLMConfig
from plmkit.models.transformer import TransformerConfig, TransformerModel
from plmkit.models.word2vec import Word2VecConfig, Word2VecModel

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

# A small valid config of every class; each bad case changes one field of it.
GOOD: dict[type, dict[str, typing.Any]] = {
    BertConfig: dict(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=32, max_position_embeddings=32),
    GPTConfig: dict(vocab_size=40, n_positions=16, n_embd=16, n_layer=2, n_head=4,
                    bos_token_id=None, eos_token_id=None),
    TransformerConfig: dict(vocab_size=40, d_model=16, num_heads=4, d_ff=32,
                            num_encoder_layers=1, num_decoder_layers=1),
    NNLMConfig: dict(vocab_size=40, context_size=3, embedding_size=8, hidden_size=16),
    RNNLMConfig: dict(vocab_size=40, embedding_size=8, hidden_size=16, num_layers=2),
    ElmoConfig: dict(vocab_size=40, embedding_size=8, hidden_size=16, num_layers=2),
    ElmoHeadConfig: dict(num_labels=3, bilm=dict(vocab_size=40, embedding_size=8, hidden_size=16,
                                                 num_layers=1)),
    Word2VecConfig: dict(vocab_size=40, vector_size=8),
}
# Numeric fields that may hold any finite number (no range to check), with the reason.
FREE_NUMBERS = {
    (Word2VecConfig, "ns_exponent"),  # the noise distribution's exponent: negative is legal
    (Word2VecConfig, "seed"),
}


def _numeric_fields(cls: type) -> list[str]:
    hints = typing.get_type_hints(cls)
    numeric = []
    for f in dataclasses.fields(cls):
        args = set(typing.get_args(hints[f.name])) or {hints[f.name]}
        if args & {int, float}:
            numeric.append(f.name)
    return numeric


def _is_int(cls: type, name: str) -> bool:
    hint = typing.get_type_hints(cls)[name]
    return int in (set(typing.get_args(hint)) or {hint})


def _bad_values(cls: type) -> list[tuple[str, typing.Any, str]]:
    """(field, bad value, words the message must hold), derived from the class's rules."""
    rules: FieldRules = cls.rules
    cases = []
    for name in rules.positive:
        cases += [(name, 0, "> 0"), (name, -128, "> 0")]
    for name in rules.non_negative:
        cases.append((name, -1, "≥ 0"))
    for name in rules.probabilities:
        cases += [(name, -1.0, "[0, 1]"), (name, 1.5, "[0, 1]"), (name, math.nan, "finite")]
    for name in rules.choices:
        cases.append((name, "bogus", "not one of"))
    for width, heads in rules.multiples:
        cases.append((heads, GOOD[cls][width] + 1, "multiple"))
    for name in rules.token_ids:
        cases += [(name, GOOD[cls]["vocab_size"], "token id"), (name, -1, "token id")]
    for name, bound in rules.at_most.items():
        cases += [(name, bound + 1, "at most"), (name, 100000, "at most")]
    for name in _numeric_fields(cls):  # wrong types: a word, a bool, a float where an int goes
        cases += [(name, "big", "expected"), (name, True, "expected")]
        if _is_int(cls, name):
            cases.append((name, 1e12, "expected int"))
    return cases


CONFIG_CASES = [pytest.param(cls, name, value, words, id=f"{cls.__name__}-{name}={value!r}")
                for cls in GOOD for name, value, words in _bad_values(cls)]


@pytest.mark.parametrize("cls, name, value, words", CONFIG_CASES)
def test_every_bad_field_is_one_line_naming_file_and_field(cls, name, value, words):
    with pytest.raises(PlmError) as error:
        config_from_dict(cls, {**GOOD[cls], name: value}, source="ckpt/config.json")
    message = str(error.value)
    assert message.startswith(f"ckpt/config.json [{name}]: "), message
    assert words in message and "\n" not in message
    with pytest.raises(PlmError):  # built directly (flags, Python), the same checks hold
        cls(**{**GOOD[cls], name: value})


@pytest.mark.parametrize("cls", list(GOOD))
def test_good_configs_pass_and_not_an_object_is_refused(cls):
    config = config_from_dict(cls, GOOD[cls])
    assert sum(config.parameter_estimate().values()) > 0
    for values in ([GOOD[cls]], "config", 12, None):
        with pytest.raises(PlmError, match="must be a JSON object"):
            config_from_dict(cls, values, source="ckpt/config.json")


def test_every_model_config_declares_rules_for_each_number():
    """A config class added to models/ next month must declare its rules and a parameter
    estimate, and say what each of its numeric fields may hold."""

    classes = {m.config_class for m in _subclasses(PretrainedMixin)
               if m.__module__.startswith("plmkit.models.")}
    assert classes == set(GOOD), "add the new config to GOOD"
    for cls in classes:
        assert isinstance(cls.rules, FieldRules) and callable(cls.parameter_estimate)
        rules = cls.rules
        ruled = {*rules.positive, *rules.non_negative, *rules.probabilities, *rules.token_ids,
                 *(heads for _, heads in rules.multiples), *rules.at_most}
        names = {f.name for f in dataclasses.fields(cls)}
        assert ruled | set(rules.choices) <= names, f"{cls.__name__}: a rule names no field"
        layers = [n for n in names if n in ("n_layer", "num_layers") or n.endswith("_layers")]
        assert all(n in rules.at_most for n in layers), f"{cls.__name__}: unbounded {layers}"
        unruled = [n for n in _numeric_fields(cls) if n not in ruled
                   and (cls, n) not in FREE_NUMBERS]
        assert not unruled, f"{cls.__name__}: no rule for {unruled}"


def _subclasses(cls: type) -> set[type]:
    from plmkit.models import bert, elmo, gpt, nnlm, rnn, transformer, word2vec  # noqa: F401

    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | _subclasses(sub)
    return {c for c in found if getattr(c, "config_class", None) is not None}


# ----------------------------------------------------------------------------- the size bound
MODELS = [
    (BertForPreTraining, BertConfig, {}),
    (GPTLMHeadModel, GPTConfig, {}),
    (TransformerModel, TransformerConfig, {}),
    (TransformerModel, TransformerConfig, dict(share_embeddings=False, tie_output=False,
                                               positional_encoding="learned", norm_first=True)),
    (NNLM, NNLMConfig, {}),
    (NNLM, NNLMConfig, dict(direct_connection=False)),
    (RNNLanguageModel, RNNLMConfig, {}),
    (RNNLanguageModel, RNNLMConfig, dict(cell="rnn", embedding_size=16, tie_weights=True)),
    (ElmoBiLM, ElmoConfig, {}),
    (ElmoForTask, ElmoHeadConfig, {}),
    (Word2VecModel, Word2VecConfig, {}),
]


@pytest.mark.parametrize("model_class, config_class, changes", MODELS,
                         ids=[f"{m.__name__}{'+' if c else ''}" for m, _, c in MODELS])
def test_parameter_estimate_matches_the_built_model(model_class, config_class, changes):
    config = config_class(**{**GOOD[config_class], **changes})
    estimate = sum(config.parameter_estimate().values())
    actual = model_class(config).num_parameters()
    assert abs(estimate - actual) <= 0.02 * actual, (estimate, actual)


@pytest.mark.parametrize("changes, field", [
    (dict(vocab_size=10**12), "vocab_size"),
    (dict(hidden_size=4096, intermediate_size=16384, num_hidden_layers=1000), "num_hidden_layers"),
    (dict(hidden_size=2**20, num_attention_heads=1), "hidden_size"),
    (dict(max_position_embeddings=10**12), "max_position_embeddings"),
])
def test_a_config_too_big_to_build_is_refused_before_allocating(changes, field):
    config = BertConfig(**{**GOOD[BertConfig], **changes})  # each number valid, the model not
    with pytest.raises(PlmError) as error:
        check_model_size(config, source="ckpt/config.json")
    message = str(error.value)
    assert message.startswith("ckpt/config.json [") and "parameters" in message
    assert MAX_PARAMETERS_ENV in message and "\n" not in message
    if field != "hidden_size":  # a huge width shows up in the layers' term
        assert message.startswith(f"ckpt/config.json [{field}]")


def test_the_bound_is_overridable(monkeypatch):
    config = BertConfig(**GOOD[BertConfig])
    size = check_model_size(config)
    with pytest.raises(PlmError, match="max_parameters"):
        check_model_size(config, max_parameters=size - 1)
    assert check_model_size(config, max_parameters=size) == size
    monkeypatch.setenv(MAX_PARAMETERS_ENV, f"{size - 1}")
    with pytest.raises(PlmError, match=MAX_PARAMETERS_ENV):
        check_model_size(config)
    monkeypatch.setenv(MAX_PARAMETERS_ENV, "1e13")
    assert parameter_limit() == (10**13, f"{MAX_PARAMETERS_ENV}=1e13")
    assert check_model_size(BertConfig(**{**GOOD[BertConfig], "vocab_size": 10**10})) > 10**11
    for text in ("lots", "-5", "0", "inf", "nan"):
        monkeypatch.setenv(MAX_PARAMETERS_ENV, text)
        with pytest.raises(PlmError, match=f"\\[{MAX_PARAMETERS_ENV}\\]"):
            parameter_limit()
    monkeypatch.delenv(MAX_PARAMETERS_ENV)
    limit, why = parameter_limit()
    assert 0 < limit <= 4_000_000_000 and why


# ----------------------------------------------------------------------------- folders
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c", "the", "cat", "sat", "on",
         "mat", "good", "bad", "film", "was", "very", ".", ","]


def _save_bert(folder: Path, cls: type = BertForPreTraining, **changes) -> Path:
    torch.manual_seed(0)
    values = {**GOOD[BertConfig], "vocab_size": len(VOCAB), **changes}
    cls(BertConfig(**values)).save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return folder


def _edit_config(folder: Path, **changes) -> None:
    path = folder / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _nan_row(folder: Path) -> None:
    from safetensors.torch import load_file, save_file

    path = folder / "model.safetensors"
    state = load_file(str(path))
    name = next(k for k in state if k.endswith("word_embeddings.weight"))
    state[name][7] = float("nan")
    save_file(state, str(path), metadata={"format": "pt"})


def test_vocabulary_must_fit_the_embedding(tmp_path):
    folder = _save_bert(tmp_path / "bert")
    assert BertModel.from_pretrained(folder).config.vocab_size == len(VOCAB)
    (folder / "vocab.txt").write_text("\n".join(VOCAB + ["extra"]) + "\n", encoding="utf-8")
    with pytest.raises(PlmError, match=r"config.json \[vocab_size\]: vocab.txt lists 21 tokens"):
        BertModel.from_pretrained(folder)
    padded = _save_bert(tmp_path / "padded", vocab_size=len(VOCAB) + 108)  # rounded up to 128
    assert BertModel.from_pretrained(padded).config.vocab_size == 128
    unrelated = _save_bert(tmp_path / "unrelated", vocab_size=len(VOCAB) + 128)
    with pytest.raises(PlmError, match=r"\[vocab_size\]: vocab_size is 148 but vocab.txt"):
        BertModel.from_pretrained(unrelated)
    no_trailing_newline = _save_bert(tmp_path / "bare")
    (no_trailing_newline / "vocab.txt").write_text("\n".join(VOCAB), encoding="utf-8")
    assert BertModel.from_pretrained(no_trailing_newline).config.vocab_size == len(VOCAB)


def test_weights_must_be_finite_and_floating(tmp_path):
    from safetensors.torch import load_file, save_file

    folder = _save_bert(tmp_path / "nan")
    _nan_row(folder)
    with pytest.raises(PlmError) as error:
        BertModel.from_pretrained(folder)
    message = str(error.value)
    assert "[embeddings.word_embeddings.weight]" in message and "NaN" in message
    assert "model.safetensors" in message or str(folder) in message
    folder = _save_bert(tmp_path / "int")
    path = folder / "model.safetensors"
    state = load_file(str(path))
    name = "bert.encoder.layer.0.output.dense.weight"
    state[name] = state[name].to(torch.int32)
    save_file(state, str(path), metadata={"format": "pt"})
    with pytest.raises(PlmError, match=r"\[encoder.layer.0.output.dense.weight\].*torch.int32"):
        BertModel.from_pretrained(folder)


def test_from_pretrained_takes_the_bound(tmp_path):
    folder = _save_bert(tmp_path / "bert")
    with pytest.raises(PlmError, match="max_parameters"):
        BertModel.from_pretrained(folder, max_parameters=1000)
    assert BertModel.from_pretrained(folder, max_parameters=10**6).num_parameters() < 10**6


FOLDER_MODELS = [(m, c) for m, c, changes in MODELS if not changes] + [
    (BertModel, BertConfig), (BertForSequenceClassification, BertConfig)]


@pytest.mark.parametrize("model_class, config_class", FOLDER_MODELS,
                         ids=[m.__name__ for m, _ in FOLDER_MODELS])
def test_every_model_folder_is_checked_on_loading(tmp_path, model_class, config_class):
    """Each model's saved folder, with one thing broken: the config (a list, a bad size), the
    vocabulary (one token too many) or a weight (NaN)."""
    from safetensors.torch import load_file, save_file

    config = config_class(**GOOD[config_class])
    rows = model_class.embedding_rows(config)
    good = tmp_path / "good"
    model_class(config).save_pretrained(good)
    (good / "vocab.txt").write_text("".join(f"w{i}\n" for i in range(rows)), encoding="utf-8")
    assert model_class.from_pretrained(good).num_parameters() > 0

    def broken(name: str) -> Path:
        folder = tmp_path / name
        shutil.copytree(good, folder)
        return folder

    folder = broken("list")
    (folder / "config.json").write_text("[]")
    with pytest.raises(PlmError, match="config.json: expected a JSON object"):
        model_class.from_pretrained(folder)
    folder = broken("size")
    size_field = config_class.rules.positive[0]
    _edit_config(folder, **{size_field: -1})
    with pytest.raises(PlmError, match=f"config.json \\[{size_field}\\]: must be > 0"):
        model_class.from_pretrained(folder)
    folder = broken("vocab")
    with open(folder / "vocab.txt", "a", encoding="utf-8") as handle:
        handle.write("one-too-many\n")
    with pytest.raises(PlmError, match="\\[vocab_size\\]: vocab.txt lists"):
        model_class.from_pretrained(folder)
    folder = broken("nan")
    state = load_file(str(folder / "model.safetensors"))
    name = max(state, key=lambda k: state[k].numel())
    state[name].view(-1)[0] = float("inf")
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(PlmError, match="model.safetensors \\[.*\\]: weights hold NaN or inf"):
        model_class.from_pretrained(folder)


def test_read_checkpoint_config_refuses_what_is_not_a_config(tmp_path):
    from plmkit.models.pretrained import read_checkpoint_config

    with pytest.raises(PlmError, match="no config.json"):
        read_checkpoint_config(tmp_path)
    for text, words in (("[1, 2]", "found a JSON list"), ("{", "invalid JSON"),
                        ("7", "found int 7")):
        (tmp_path / "config.json").write_text(text)
        with pytest.raises(PlmError, match=words):
            read_checkpoint_config(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    assert read_checkpoint_config(tmp_path) == {"model_type": "bert"}


# ----------------------------------------------------------------------------- through the CLI
def _heads_zero(folder):
    _edit_config(folder, num_attention_heads=0)


def _hidden_negative(folder):
    _edit_config(folder, hidden_size=-128)


def _dropout_negative(folder):
    _edit_config(folder, hidden_dropout_prob=-1)


def _json_list(folder):
    path = folder / "config.json"
    path.write_text(json.dumps([json.loads(path.read_text())]))


def _vocab_float(folder):
    path = folder / "config.json"  # JSON's 1e12 is a float: refused as a type
    path.write_text(path.read_text().replace('"vocab_size": 20', '"vocab_size": 1e12'))


def _vocab_huge(folder):
    _edit_config(folder, vocab_size=10**12)


def _layers_huge(folder):
    _edit_config(folder, num_hidden_layers=100000)


def _vocab_too_long(folder):
    with open(folder / "vocab.txt", "a", encoding="utf-8") as handle:
        handle.write("extra\n")


def _unknown_activation(folder):
    _edit_config(folder, hidden_act="sigmoid-ish")


def _not_json(folder):
    (folder / "config.json").write_text('{"vocab_size": 20,')


# (case, edit, words stderr must hold: the file and the field or tensor)
EDITS = [
    ("heads-0", _heads_zero, "[num_attention_heads]"),
    ("hidden--128", _hidden_negative, "[hidden_size]"),
    ("dropout--1", _dropout_negative, "[hidden_dropout_prob]"),
    ("config-is-a-list", _json_list, "config.json"),
    ("vocab-1e12-float", _vocab_float, "[vocab_size]"),
    ("vocab-10^12", _vocab_huge, "[vocab_size]"),
    ("layers-100000", _layers_huge, "[num_hidden_layers]"),
    ("nan-weight", _nan_row, "word_embeddings.weight]"),
    ("vocab.txt-too-long", _vocab_too_long, "[vocab_size]"),
    ("unknown-activation", _unknown_activation, "[hidden_act]"),
    ("not-json", _not_json, "config.json:1"),
]
COMMANDS = ("info", "fill-mask", "classify", "finetune")
# Call sites outside models/ that read config.json themselves before the model loads it, or
# re-raise the model's error without its field (the lead routes the first through
# models.pretrained.read_checkpoint_config and keeps field= and line= in the second). Strict, so
# each entry fails the suite the day it is fixed and must be removed.
RAW_READS: dict[tuple[str, str], str] = {}
NOT_YET_ONE_LINE = RAW_READS
NOT_YET_NAMED = RAW_READS

RUNNER = r"""
import contextlib, io, json, resource, sys, time, traceback
limit = 6 * 2**30  # a regression must fail here, not take the machine down
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from plmkit.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except BaseException:
            code, err = "exception", io.StringIO(traceback.format_exc())
    results.append({"rc": code, "stderr": err.getvalue(), "seconds": time.perf_counter() - started})
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory):
    """Every (command, edit) pair run through ``plm`` in one memory-capped subprocess."""
    root = tmp_path_factory.mktemp("untrusted")
    pretrained = _save_bert(root / "pretrained")
    classifier = _save_bert(root / "classifier", cls=BertForSequenceClassification)
    _edit_config(classifier, id2label={"0": "bad", "1": "good"},
                 label2id={"bad": 0, "good": 1})
    (classifier / "task.json").write_text(json.dumps({"task": "classify"}))
    train = root / "train.csv"
    train.write_text("text,label\n" + "the film was good,good\nthe film was bad,bad\n" * 4)
    runs, keys = [], []
    for case, edit, _ in EDITS:
        for command in COMMANDS:
            folder = root / case / command
            shutil.copytree(classifier if command == "classify" else pretrained, folder)
            edit(folder)
            argv = {"info": ["info", str(folder)],
                    "fill-mask": ["fill-mask", str(folder), "a [MASK] b"],
                    "classify": ["classify", "--model", str(folder), "the film was good"],
                    "finetune": ["finetune", "--task", "classify", "--model", str(folder),
                                 "--train", str(train), "--output", str(root / case / "run"),
                                 "--epochs", "1", "--no-progress"]}[command]
            runs.append(argv)
            keys.append((command, case))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop(MAX_PARAMETERS_ENV, None)
    done = subprocess.run([sys.executable, "-c", RUNNER, json.dumps(runs)], capture_output=True,
                          text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(zip(keys, json.loads(done.stdout.splitlines()[-1]))), root


def _cli_params(pending: dict):
    for case, _, words in EDITS:
        for command in COMMANDS:
            marks = ()
            if (command, case) in pending:
                marks = pytest.mark.xfail(strict=True, reason=pending[command, case])
            yield pytest.param(command, case, words, id=f"{command}-{case}", marks=marks)


@pytest.mark.parametrize("command, case, words", list(_cli_params(NOT_YET_ONE_LINE)))
def test_an_edited_checkpoint_is_one_line_rc_2_within_seconds(cli_results, command, case,
                                                              words):
    results, root = cli_results
    result = results[command, case]
    stderr = result["stderr"]
    assert "Traceback" not in stderr, stderr[-2000:]
    assert result["rc"] == 2, stderr
    assert len([line for line in stderr.splitlines() if line.strip()]) == 1, stderr
    assert result["seconds"] < 10, result
    assert not (root / case / "run").exists()  # finetune wrote nothing


@pytest.mark.parametrize("command, case, words", list(_cli_params(NOT_YET_NAMED)))
def test_the_error_names_the_file_and_the_field(cli_results, command, case, words):
    results, root = cli_results
    line = results[command, case]["stderr"].strip()
    assert words in line and str(root / case / command) in line, line


def test_the_unedited_checkpoints_work(tmp_path, capsys):
    from plmkit.cli import main

    folder = _save_bert(tmp_path / "bert")
    assert main(["info", str(folder)]) == 0
    assert main(["fill-mask", str(folder), "a [MASK] b"]) == 0
    assert "[MASK]" not in capsys.readouterr().err
