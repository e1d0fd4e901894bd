"""GPT equals Hugging Face's GPT-2: logits, loss, padding, KV cache, checkpoints both ways."""

from __future__ import annotations

import json

import pytest
import torch

from plmkit.errors import PlmError
from plmkit.models import gpt as ours

transformers = pytest.importorskip("transformers")

TINY = dict(vocab_size=101, n_positions=32, n_embd=48, n_layer=3, n_head=3, bos_token_id=0,
            eos_token_id=0)


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """A randomly initialised HF GPT2LMHeadModel saved to disk (no GPT-2 weights exist here)."""
    torch.manual_seed(0)
    reference = transformers.GPT2LMHeadModel(transformers.GPT2Config(**TINY)).eval()
    folder = tmp_path_factory.mktemp("hf_gpt2")
    reference.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def pair(hf_folder):
    reference = transformers.GPT2LMHeadModel.from_pretrained(hf_folder).eval()
    return reference, ours.GPTLMHeadModel.from_pretrained(hf_folder)


def ids(batch=2, length=12, seed=1):
    return torch.randint(1, TINY["vocab_size"], (batch, length),
                         generator=torch.Generator().manual_seed(seed))


def test_parameter_names_are_hugging_faces(pair):
    reference, model = pair
    theirs = {k for k in reference.state_dict() if not k.endswith((".attn.bias", "masked_bias"))}
    assert set(model.state_dict()) == theirs
    assert model.transformer.h[0].attn.c_attn.weight.shape == (48, 144)  # Conv1D: (in, out)
    assert model.lm_head.weight is model.transformer.wte.weight  # tied


def test_logits_and_loss_equal_hugging_face(pair):
    reference, model = pair
    input_ids = ids()
    labels = input_ids.clone()
    labels[0, 4] = -100
    with torch.no_grad():
        want = reference(input_ids, labels=labels)
        got = model(input_ids, labels=labels)
    torch.testing.assert_close(got.logits, want.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(got.loss, want.loss, atol=1e-6, rtol=0)


def test_shift_labels_is_the_same_loss_without_the_last_position(pair):
    _, model = pair
    block = ids(length=13)
    with torch.no_grad():
        shifted = model(block[:, :-1], shift_labels=block[:, 1:]).loss
        hf_style = model(block, labels=block).loss
    torch.testing.assert_close(shifted, hf_style, atol=1e-6, rtol=0)


def test_padding_right_and_left_match_hugging_face_on_real_tokens(pair):
    reference, model = pair
    input_ids = ids(batch=3)
    right = torch.ones_like(input_ids)
    right[1, 8:] = 0
    left = torch.ones_like(input_ids)
    left[2, :5] = 0
    for mask in (right, left):
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            want = reference(input_ids, attention_mask=mask, position_ids=positions).logits
            got = model(input_ids, attention_mask=mask, position_ids=positions).logits
        real = mask.bool()
        torch.testing.assert_close(got[real], want[real], atol=1e-5, rtol=0)
    # a padded row gives the same logits as the row alone
    with torch.no_grad():
        alone = model(input_ids[1:2, :8]).logits
        padded = model(input_ids, attention_mask=right).logits[1:2, :8]
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=0)


def test_kv_cache_equals_full_forward_and_hugging_faces_cache(pair):
    reference, model = pair
    input_ids = ids(length=11)
    with torch.no_grad():
        full = model(input_ids).logits
        cache = model.new_cache()
        pieces = [model(input_ids[:, :5], past_key_values=cache).logits,
                  model(input_ids[:, 5:8], past_key_values=cache).logits,  # several after a cache
                  model(input_ids[:, 8:9], past_key_values=cache).logits,
                  model(input_ids[:, 9:], past_key_values=cache).logits]
        hf_cache = transformers.DynamicCache(config=reference.config)
        hf_pieces = [reference(input_ids[:, :5], past_key_values=hf_cache, use_cache=True).logits,
                     reference(input_ids[:, 5:], past_key_values=hf_cache, use_cache=True).logits]
    assert cache[0].length == 11
    incremental = torch.cat(pieces, dim=1)
    torch.testing.assert_close(incremental, full, atol=1e-5, rtol=0)
    torch.testing.assert_close(incremental, torch.cat(hf_pieces, dim=1), atol=1e-5, rtol=0)


def test_our_folder_loads_in_hugging_face(pair, tmp_path):
    _, model = pair
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["n_embd"] == 48
    reloaded = transformers.GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    input_ids = ids()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(input_ids).logits, model(input_ids).logits,
                                   atol=1e-5, rtol=0)


def test_sequence_classification_matches_hugging_face(tmp_path):
    torch.manual_seed(0)
    config = transformers.GPT2Config(**TINY, pad_token_id=0, num_labels=3)
    reference = transformers.GPT2ForSequenceClassification(config).eval()
    reference.save_pretrained(tmp_path)
    model = ours.GPTForSequenceClassification.from_pretrained(tmp_path, strict_head=True)
    assert model.score.weight.shape == (3, 48) and model.score.bias is None
    input_ids = ids(batch=3)
    mask = torch.ones_like(input_ids)
    mask[1, 6:] = 0
    input_ids[mask == 0] = 0
    labels = torch.tensor([0, 2, 1])
    with torch.no_grad():
        want = reference(input_ids, attention_mask=mask, labels=labels)
        got = model(input_ids, attention_mask=mask, labels=labels)
    torch.testing.assert_close(got.logits, want.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(got.loss, want.loss, atol=1e-6, rtol=0)


def test_classifier_reads_the_last_real_token_and_gets_a_fresh_head(hf_folder, capsys):
    model = ours.GPTForSequenceClassification.from_pretrained(hf_folder, num_labels=2)
    assert "score" in capsys.readouterr().err  # initialised fresh, and said so
    input_ids = ids(batch=1, length=6)
    with torch.no_grad():
        alone = model(input_ids).logits
        padded = model(torch.cat([input_ids, torch.zeros(1, 3, dtype=torch.long)], 1),
                       attention_mask=torch.tensor([[1] * 6 + [0] * 3])).logits
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=0)


def test_resize_token_embeddings_keeps_rows_and_tie():
    model = ours.GPTLMHeadModel(ours.gpt_config("nano", vocab_size=20, n_positions=8))
    before = model.transformer.wte.weight[:20].detach().clone()
    model.resize_token_embeddings(23)
    assert model.transformer.wte.weight.shape == (23, 48)
    assert model.lm_head.weight is model.transformer.wte.weight
    torch.testing.assert_close(model.transformer.wte.weight[:20], before)
    assert model(torch.tensor([[22, 1]])).logits.shape == (1, 2, 23)


def test_named_sizes_and_gpt2_small_parameter_count():
    assert ours.gpt_config("nano").n_layer == 3
    with torch.device("meta"):
        small = ours.GPTLMHeadModel(ours.gpt_config("small"))
    assert small.num_parameters() == 124_439_808  # GPT-2 124M
    with pytest.raises(PlmError, match="unknown model size"):
        ours.gpt_config("huge")


def test_bad_configs_and_inputs_are_plm_errors(hf_folder, tmp_path):
    with pytest.raises(PlmError, match="multiple of n_head"):
        ours.GPTConfig(n_embd=50, n_head=3)
    model = ours.GPTLMHeadModel(ours.gpt_config("nano", vocab_size=20, n_positions=8))
    with pytest.raises(PlmError, match="context window"):
        model(torch.zeros(1, 9, dtype=torch.long))
    config = json.loads((hf_folder / "config.json").read_text())
    config["n_embd"] = 24
    config["n_head"] = 2
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "model.safetensors").write_bytes((hf_folder / "model.safetensors").read_bytes())
    with pytest.raises(PlmError, match="shapes do not match"):
        ours.GPTLMHeadModel.from_pretrained(tmp_path)
    config["n_embd"], config["n_head"], config["bogus"] = 48, 3, 1
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(PlmError, match="bogus"):
        ours.GPTLMHeadModel.from_pretrained(tmp_path)


def test_classifier_folder_round_trips_its_label_count_both_ways(tmp_path):
    model = ours.GPTForSequenceClassification(ours.gpt_config("nano", vocab_size=30,
                                                              n_positions=8, num_labels=3))
    model.save_pretrained(tmp_path)
    again = ours.GPTForSequenceClassification.from_pretrained(tmp_path, strict_head=True)
    reference = transformers.GPT2ForSequenceClassification.from_pretrained(tmp_path)
    assert again.score.weight.shape == (3, 48) == reference.score.weight.shape


def test_bert_and_gpt_share_the_mixins_initialisation_and_gpt_scales_its_residual_projections():
    from plmkit.models.bert import BertConfig, BertForMaskedLM
    from plmkit.models.gpt import GPTLMHeadModel, gpt_config

    torch.manual_seed(0)
    bert = BertForMaskedLM(BertConfig(vocab_size=500, hidden_size=64, num_hidden_layers=2,
                                      num_attention_heads=2, intermediate_size=256,
                                      pad_token_id=0))
    embeddings = bert.bert.embeddings.word_embeddings.weight
    assert torch.count_nonzero(embeddings[0]) == 0
    assert abs(embeddings[1:].std().item() - 0.02) < 0.002
    dense = bert.bert.encoder.layer[0].intermediate.dense
    assert abs(dense.weight.std().item() - 0.02) < 0.002 and torch.count_nonzero(dense.bias) == 0
    norm = bert.bert.encoder.layer[0].output.LayerNorm
    assert torch.all(norm.weight == 1) and torch.all(norm.bias == 0)
    assert bert.cls.predictions.decoder.weight is embeddings

    gpt = GPTLMHeadModel(gpt_config("micro", vocab_size=300, n_positions=64))
    block = gpt.transformer.h[0]
    expected = 0.02 / (2 * gpt.config.n_layer) ** 0.5
    assert abs(block.mlp.c_proj.weight.std().item() - expected) < 0.1 * expected
    assert abs(block.mlp.c_fc.weight.std().item() - 0.02) < 0.002
    assert torch.count_nonzero(block.attn.c_attn.bias) == 0
    assert gpt.lm_head.weight is gpt.transformer.wte.weight


def test_attention_weights_equal_hugging_faces(hf_folder):
    """``output_attentions`` gives every block's causal attention weights, as GPT-2 in HF does
    (its eager path forms them; so does ours only when asked), with padding on the left."""
    reference = transformers.GPT2LMHeadModel.from_pretrained(
        hf_folder, attn_implementation="eager").eval()
    model = ours.GPTLMHeadModel.from_pretrained(hf_folder).eval()
    tokens = ids(2, 9)
    mask = torch.ones_like(tokens)
    mask[1, :3] = 0
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        theirs = reference(tokens, attention_mask=mask, position_ids=positions,
                           output_attentions=True).attentions
        out = model(tokens, mask, position_ids=positions, output_attentions=True)
        plain = model(tokens, mask, position_ids=positions)
    assert len(out.attentions) == TINY["n_layer"] and plain.attentions is None
    torch.testing.assert_close(out.logits, plain.logits, atol=1e-5, rtol=1e-5)
    for mine, hers in zip(out.attentions, theirs):
        assert mine.shape == (2, TINY["n_head"], 9, 9)
        real = mask.bool()
        for row in range(2):  # padded query rows are never read
            torch.testing.assert_close(mine[row][:, real[row]], hers[row][:, real[row]],
                                       atol=1e-5, rtol=1e-4)
        assert torch.all(mine[0].triu(1) == 0)  # nothing looks ahead
