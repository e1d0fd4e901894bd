"""The budget recipe's options, one by one, and ``plm pretrain --recipe budget`` end to end.

Pre-LN (with a final LayerNorm), bias-free encoder linears, no NSP head for the ``mlm``
objective, the recipe's values reaching the configs and the run's records, the schedule on the
time clock ending at its floor, the conversion to Hugging Face's RoBERTa-PreLayerNorm with equal
logits, and the one-line refusals of bad flags.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from plmkit.cli import main
from plmkit.errors import PlmError
from plmkit.models.bert import BertConfig, BertForMaskedLM, BertForPreTraining, BertModel
from plmkit.models.convert import to_hugging_face
from plmkit.training.bert_pretraining import RECIPES, PretrainingTask, build_bert, recipe

from _commands import PROSE


def tiny(**overrides) -> BertConfig:
    values = dict(vocab_size=90, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=64, max_position_embeddings=24, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0)
    return BertConfig(**{**values, **overrides})


def perturbed(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial LayerNorm and bias values, so a misplaced norm or a dropped bias shows."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    return model.eval()


def batch(vocab: int = 90, length: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(5, vocab, (3, length), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, 15:] = 0
    ids[1, 15:] = 0
    return ids, mask


# ----------------------------------------------------------------------------- pre-LN
def test_pre_ln_places_the_norms_before_each_sub_layer_and_after_the_last():
    model = perturbed(BertModel(tiny(layer_norm_position="pre"), add_pooling_layer=False))
    names = {name for name, _ in model.named_parameters()}
    assert "encoder.layer.0.attention.LayerNorm.weight" in names
    assert "encoder.layer.0.intermediate.LayerNorm.weight" in names
    assert "LayerNorm.weight" in names  # the final norm
    assert not any(n.endswith("attention.output.LayerNorm.weight") or
                   n.endswith(".output.LayerNorm.weight") and "attention" not in n
                   for n in names)
    ids, _ = batch()
    # the paper's equations, written out: h = x + Attn(LN1 x); y = h + FFN(LN2 h); out = LN_f(y)
    x = model.embeddings(ids)
    for layer in model.encoder.layer:
        attention = layer.attention
        normed = attention.LayerNorm(x)
        q, k, v = (p(normed).view(3, 24, 2, 16).transpose(1, 2)
                   for p in (attention.self.query, attention.self.key, attention.self.value))
        heads = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(3, 24, 32)
        h = x + attention.output.dense(heads)
        inner = layer.intermediate.dense(layer.intermediate.LayerNorm(h))
        x = h + layer.output.dense(F.gelu(inner))
    expected = model.LayerNorm(x)
    with torch.no_grad():
        got = model(ids).last_hidden_state
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_post_ln_is_unchanged_and_has_no_pre_ln_modules():
    model = BertModel(tiny())
    names = {name for name, _ in model.named_parameters()}
    assert "encoder.layer.0.attention.output.LayerNorm.weight" in names
    assert "encoder.layer.0.output.LayerNorm.weight" in names
    assert "LayerNorm.weight" not in names
    assert not any(".attention.LayerNorm" in n or "intermediate.LayerNorm" in n for n in names)


def test_padding_stays_zero_after_the_final_norm():
    model = perturbed(BertModel(tiny(layer_norm_position="pre")))
    ids, mask = batch()
    with torch.no_grad():
        states = model(ids, mask).last_hidden_state
    assert states[1, 15:].abs().max() == 0  # packed path: padding never reaches the final norm
    with torch.no_grad():
        alone = model(ids[1:2, :15]).last_hidden_state
    torch.testing.assert_close(states[1:2, :15], alone, atol=1e-5, rtol=1e-4)


def test_bias_free_drops_the_encoder_biases_only():
    model = BertForMaskedLM(tiny(use_bias=False))
    names = {name for name, _ in model.named_parameters()}
    assert not any(n.startswith("bert.encoder") and n.endswith("dense.bias") for n in names)
    assert not any(n.endswith(("query.bias", "key.bias", "value.bias")) for n in names)
    assert "cls.predictions.transform.dense.bias" in names  # the head keeps its own
    assert "bert.encoder.layer.0.attention.output.LayerNorm.bias" in names  # norms keep theirs
    with_bias = BertForMaskedLM(tiny())
    assert with_bias.num_parameters() - model.num_parameters() == 2 * (4 * 32 + 64 + 32)


@pytest.mark.parametrize("options", [dict(layer_norm_position="pre", use_bias=False),
                                     dict(layer_norm_position="pre"), dict(use_bias=False)])
def test_recipe_options_round_trip_through_save_and_load(tmp_path, options):
    model = perturbed(BertForMaskedLM(tiny(**options)))
    model.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    for key, value in options.items():
        assert config[key] == value
    loaded = BertForMaskedLM.from_pretrained(tmp_path / "m").eval()
    ids, mask = batch()
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids, mask).prediction_logits,
                                   model(ids, mask).prediction_logits)
    # a fine-tuning model built from the folder is the same encoder
    encoder = BertModel.from_pretrained(tmp_path / "m").eval()
    with torch.no_grad():
        torch.testing.assert_close(encoder(ids, mask).last_hidden_state,
                                   model.bert(ids, mask).last_hidden_state)


def test_an_unknown_norm_position_is_refused():
    with pytest.raises(PlmError, match="layer_norm_position"):
        tiny(layer_norm_position="middle")


# ----------------------------------------------------------------------------- Hugging Face
@pytest.mark.parametrize("options,architecture", [
    (dict(layer_norm_position="pre", use_bias=False), "RobertaPreLayerNormForMaskedLM"),
    (dict(layer_norm_position="pre"), "RobertaPreLayerNormForMaskedLM"),
    (dict(use_bias=False), "BertForMaskedLM"),
    ({}, "BertForMaskedLM"),
])
def test_hugging_face_loads_the_converted_folder_with_equal_logits(tmp_path, options,
                                                                   architecture):
    transformers = pytest.importorskip("transformers")
    model = perturbed(BertForMaskedLM(tiny(**options)))
    model.save_pretrained(tmp_path / "ours")
    to_hugging_face(tmp_path / "ours", tmp_path / "hf")
    theirs = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path / "hf").eval()
    assert type(theirs).__name__ == architecture
    ids, mask = batch()
    with torch.no_grad():
        ours = model(ids, mask).prediction_logits
        hf = theirs(input_ids=ids, attention_mask=mask).logits
    real = mask.bool()
    assert (ours[real] - hf[real]).abs().max() < 1e-4


def test_conversion_refuses_what_it_cannot_map(tmp_path):
    BertForMaskedLM(tiny(layer_norm_position="pre", hidden_act="relu")).save_pretrained(
        tmp_path / "relu")
    with pytest.raises(PlmError, match="GELU"):
        to_hugging_face(tmp_path / "relu", tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- objective
def test_mlm_objective_builds_no_nsp_head_and_no_nsp_loss():
    model = build_bert(tiny(), seed=3, objective="mlm")
    assert isinstance(model, BertForMaskedLM) and model.sparse_mlm
    names = {name for name, _ in model.named_parameters()}
    assert not any("seq_relationship" in n or "pooler" in n for n in names)
    ids, mask = batch()
    labels = torch.full_like(ids, -100)
    labels[:, 3] = ids[:, 3]
    loss, metrics = PretrainingTask().step(model, {"input_ids": ids, "attention_mask": mask,
                                                   "labels": labels})
    assert "nsp_loss" not in metrics and torch.isfinite(loss)
    assert float(loss.detach()) == pytest.approx(metrics["mlm_loss"])
    assert isinstance(build_bert(tiny(), seed=3), BertForPreTraining)


def test_the_budget_recipe_names_every_option_and_an_unknown_one_is_refused():
    budget = recipe("budget")
    assert budget.model == dict(layer_norm_position="pre", use_bias=False,
                                hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    assert budget.data["objective"] == "mlm" and budget.training["schedule_clock"] == "time"
    assert budget.needs_budget and not RECIPES["bert"].needs_budget
    with pytest.raises(PlmError, match="unknown recipe"):
        recipe("fast")


# ----------------------------------------------------------------------------- the command
def _corpus(tmp_path: Path) -> Path:
    corpus = tmp_path / "prose.txt"
    corpus.write_text(PROSE)
    return corpus


def test_plm_pretrain_recipe_budget_end_to_end(tmp_path, capsys):
    output = tmp_path / "run"
    code = main(["pretrain", "--corpus", str(_corpus(tmp_path)), "--model-size", "tiny",
                 "--train-tokenizer", "200", "--max-seq-length", "32", "--recipe", "budget",
                 "--max-minutes", "0.05", "--save-every", "2", "--no-progress",
                 "--output", str(output)])
    assert code == 0
    config = json.loads((output / "config.json").read_text())
    assert config["layer_norm_position"] == "pre" and config["use_bias"] is False
    assert config["hidden_dropout_prob"] == 0.0
    assert config["architectures"] == ["BertForMaskedLM"]
    from safetensors import safe_open

    with safe_open(output / "model.safetensors", "pt") as weights:
        assert not any("seq_relationship" in k or "pooler" in k for k in weights.keys())
    records = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    start = next(r for r in records if r.get("event") == "start")
    assert start["recipe"] == "budget"
    steps = [r for r in records if "lr" in r]
    assert steps and max(r["lr"] for r in steps) <= 1e-3 + 1e-12
    assert not any("nsp_loss" in r for r in records)
    checkpoint = max(output.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    training = json.loads((checkpoint / "training_config.json").read_text())
    assert training["recipe"] == "budget" and training["schedule_clock"] == "time"
    assert training["learning_rate"] == 1e-3 and training["max_minutes"] == 0.05
    # the model loads for fill-mask and fine-tuning as it was trained
    assert BertForMaskedLM.from_pretrained(output).config.layer_norm_position == "pre"


def test_flags_and_toml_still_win_over_the_recipe(tmp_path):
    from plmkit.cli import build_parser
    from plmkit.commands.pretrain import load_settings

    toml = tmp_path / "c.toml"
    toml.write_text("[training]\nlearning_rate = 3e-4\n[model]\nuse_bias = true\n")
    args = build_parser().parse_args(["pretrain", "--corpus", "x", "--output", str(tmp_path / "o"),
                                      "--recipe", "budget", "--max-minutes", "5", "--config",
                                      str(toml), "--batch-size", "16"])
    model, training, data = load_settings(args)
    assert training.learning_rate == 3e-4 and model.use_bias is True
    assert data.batch_size == 16 and data.objective == "mlm"
    assert model.layer_norm_position == "pre" and training.recipe == "budget"
    args = build_parser().parse_args(["pretrain", "--corpus", "x", "--output", str(tmp_path / "o")])
    model, training, data = load_settings(args)  # the default recipe is BERT's, as before
    assert model.layer_norm_position == "post" and data.objective == "mlm_nsp"
    assert training.schedule_clock == "steps" and training.recipe == "bert"


@pytest.mark.parametrize("argv,flag", [
    (["--recipe", "budget"], "--max-minutes"),
    (["--recipe", "budget", "--max-minutes", "0"], "--max-minutes"),
    (["--recipe", "fast", "--max-minutes", "5"], "--recipe"),
    (["--masked-lm-prob", "1"], "--masked-lm-prob"),
    (["--masked-lm-prob", "0"], "--masked-lm-prob"),
    (["--max-minutes", "-1"], "--max-minutes"),
])
def test_bad_recipe_flags_are_one_line_errors_and_write_nothing(tmp_path, capsys, argv, flag):
    output = tmp_path / "run"
    code = main(["pretrain", "--corpus", str(_corpus(tmp_path)), "--model-size", "tiny",
                 "--output", str(output), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and flag in err
    assert not output.exists()


def test_plm_export_hf_writes_a_folder_and_refuses_to_overwrite(tmp_path, capsys):
    transformers = pytest.importorskip("transformers")
    model = perturbed(BertForMaskedLM(tiny(layer_norm_position="pre", use_bias=False)))
    model.save_pretrained(tmp_path / "ours")
    assert main(["export", str(tmp_path / "ours"), "--format", "hf",
                 "--output", str(tmp_path / "hf")]) == 0
    theirs = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path / "hf")
    assert type(theirs).__name__ == "RobertaPreLayerNormForMaskedLM"
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert main(["export", str(tmp_path / "ours"), "--format", "hf", "--output", str(busy)]) == 2
    assert "already holds files" in capsys.readouterr().err
    assert (busy / "notes.txt").read_text() == "mine"
    assert main(["export", str(tmp_path / "nowhere"), "--format", "hf",
                 "--output", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------- fine-tuning
@pytest.mark.parametrize("saved, given, expected", [
    (0.0, None, 0.1),   # pre-trained without dropout (--recipe budget): BERT's 0.1 back
    (0.2, None, 0.2),   # the checkpoint's own dropout is kept
    (0.0, 0.0, 0.0),    # --dropout 0 is obeyed
    (0.1, 0.3, 0.3),
])
def test_fine_tuning_restores_dropout_a_budget_checkpoint_trained_without(tmp_path, saved, given,
                                                                          expected):
    from plmkit.downstream.loading import build_model
    from plmkit.downstream.settings import TaskSettings

    BertForMaskedLM(tiny(hidden_dropout_prob=saved, attention_probs_dropout_prob=saved,
                         layer_norm_position="pre")).save_pretrained(tmp_path / "m")
    model = build_model(TaskSettings(task="classify"), tmp_path / "m", ["neg", "pos"],
                        dropout=given)
    assert model.config.hidden_dropout_prob == expected
    assert model.config.attention_probs_dropout_prob == expected
    ids, mask = batch()
    model.train()
    torch.manual_seed(0)
    first = model(ids, mask).logits
    second = model(ids, mask).logits
    assert torch.equal(first, second) == (expected == 0.0)  # dropout on iff it is > 0


def test_plm_finetune_dropout_flag_reaches_the_saved_config(tmp_path):
    from _commands import tiny_run

    code = main(tiny_run("finetune", tmp_path / "in", tmp_path / "out", 2, "--dropout", "0.25"))
    assert code == 0
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["hidden_dropout_prob"] == config["attention_probs_dropout_prob"] == 0.25
