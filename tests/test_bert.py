"""BERT equals Hugging Face's BERT: real MiniLM weights, every head, both checkpoint directions."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from plmkit.errors import PlmError
from plmkit.models import bert as ours

transformers = pytest.importorskip("transformers")


def hf_config(kwargs: dict, **extra):
    return transformers.BertConfig(**kwargs, **extra)


def padded_batch(vocab_size: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, vocab_size, (3, 17), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 11:] = 0
    attention_mask[2, 5:] = 0
    input_ids[attention_mask == 0] = 0
    token_type_ids = torch.zeros_like(input_ids)
    token_type_ids[:, 8:] = 1
    return input_ids, attention_mask, token_type_ids


def test_minilm_matches_hugging_face_on_a_padded_batch(minilm_dir):
    model = ours.BertModel.from_pretrained(minilm_dir)
    reference = transformers.BertModel.from_pretrained(minilm_dir).eval()
    input_ids, attention_mask, token_type_ids = padded_batch(30522)
    with torch.no_grad():
        got = model(input_ids, attention_mask, token_type_ids, output_hidden_states=True)
        want = reference(input_ids=input_ids, attention_mask=attention_mask,
                         token_type_ids=token_type_ids, output_hidden_states=True)
    keep = attention_mask.bool()
    assert (got.last_hidden_state - want.last_hidden_state)[keep].abs().max() < 1e-5
    assert (got.pooler_output - want.pooler_output).abs().max() < 1e-5
    assert len(got.hidden_states) == 7
    for mine, theirs in zip(got.hidden_states, want.hidden_states):
        assert (mine - theirs)[keep].abs().max() < 1e-5


def test_minilm_reproduces_the_published_reference_values(minilm_dir):
    """DATA.md: HF transformers fp32 on 'The quick brown fox jumps over the lazy dog.'"""
    ids = torch.tensor([[101, 1996, 4248, 2829, 4419, 14523, 2058, 1996, 13971, 3899, 1012, 102]])
    model = ours.BertModel.from_pretrained(minilm_dir)
    with torch.no_grad():
        first = model(ids).last_hidden_state[0, 0, :5]
    expected = torch.tensor([0.04644, 0.33806, 0.20821, 0.64680, -0.19571])
    assert torch.allclose(first, expected, atol=1e-4)


def test_attention_probabilities_equal_hf_eager(minilm_dir):
    model = ours.BertModel.from_pretrained(minilm_dir)
    reference = transformers.BertModel.from_pretrained(minilm_dir, attn_implementation="eager")
    input_ids, attention_mask, token_type_ids = padded_batch(30522, seed=1)
    with torch.no_grad():
        got = model(input_ids, attention_mask, token_type_ids, output_attentions=True)
        want = reference.eval()(input_ids=input_ids, attention_mask=attention_mask,
                                token_type_ids=token_type_ids, output_attentions=True)
    assert len(got.attentions) == 6 and got.attentions[0].shape == (3, 12, 17, 17)
    for mine, theirs in zip(got.attentions, want.attentions):
        assert (mine - theirs)[0].abs().max() < 1e-5  # unpadded row
        assert torch.allclose(mine.sum(-1), torch.ones(()), atol=1e-5)
        assert mine[2, :, :, 5:].abs().max() < 1e-6  # padding keys get no weight


def test_our_checkpoint_loads_in_hugging_face_and_back(tmp_path, tiny_bert_kwargs):
    torch.manual_seed(0)
    model = ours.BertForPreTraining(ours.BertConfig(**tiny_bert_kwargs), sparse_mlm=False).eval()
    model.save_pretrained(tmp_path / "ours")
    files = sorted(p.name for p in (tmp_path / "ours").iterdir())
    assert files == ["config.json", "model.safetensors"]
    theirs = transformers.BertForPreTraining.from_pretrained(tmp_path / "ours").eval()
    batch = padded_batch(99)
    with torch.no_grad():
        got = model(*batch)
        want = theirs(input_ids=batch[0], attention_mask=batch[1], token_type_ids=batch[2])
    real = batch[1].bool()  # padding positions carry no meaning (we skip them, HF computes them)
    assert (got.prediction_logits - want.prediction_logits)[real].abs().max() < 1e-5
    assert (got.seq_relationship_logits - want.seq_relationship_logits).abs().max() < 1e-5
    theirs.save_pretrained(tmp_path / "hf")
    again = ours.BertForPreTraining.from_pretrained(tmp_path / "hf", sparse_mlm=False)
    with torch.no_grad():
        assert (again(*batch).prediction_logits - got.prediction_logits).abs().max() < 1e-5
    assert again.cls.predictions.decoder.weight is again.bert.embeddings.word_embeddings.weight


def copy_into(model, reference):
    state = {k: v for k, v in reference.state_dict().items()
             if not k.endswith(("position_ids", "embeddings.token_type_ids"))}
    model.load_checkpoint_state(state, source="hf")
    return model.eval()


def test_pretraining_losses_equal_hf_with_sparse_mlm(tiny_bert_kwargs):
    torch.manual_seed(1)
    reference = transformers.BertForPreTraining(hf_config(tiny_bert_kwargs)).eval()
    model = copy_into(ours.BertForPreTraining(ours.BertConfig(**tiny_bert_kwargs)), reference)
    input_ids, attention_mask, token_type_ids = padded_batch(99)
    labels = torch.full_like(input_ids, -100)
    labels[:, 2] = input_ids[:, 2]
    labels[0, 7] = input_ids[0, 7]
    next_sentence = torch.tensor([0, 1, 0])
    got = model(input_ids, attention_mask, token_type_ids, labels=labels,
                next_sentence_label=next_sentence)
    want = reference(input_ids=input_ids, attention_mask=attention_mask,
                     token_type_ids=token_type_ids, labels=labels,
                     next_sentence_label=next_sentence)
    assert got.prediction_logits.shape == (4, 99)  # sparse: one row per masked position
    assert torch.allclose(got.loss, want.loss, atol=1e-5)
    dense = want.prediction_logits[labels != -100]
    assert (got.prediction_logits - dense).abs().max() < 1e-5
    got.loss.backward()
    want.loss.backward()
    grads = dict(reference.named_parameters())
    for name, parameter in model.named_parameters():
        assert (parameter.grad - grads[name].grad).abs().max() < 1e-5, name


@pytest.mark.parametrize("head,hf_head,kwargs", [
    ("BertForSequenceClassification", "BertForSequenceClassification", {"num_labels": 3}),
    ("BertForTokenClassification", "BertForTokenClassification", {"num_labels": 5}),
    ("BertForQuestionAnswering", "BertForQuestionAnswering", {}),
    ("BertForMaskedLM", "BertForMaskedLM", {}),
])
def test_task_heads_equal_hf(head, hf_head, kwargs, tiny_bert_kwargs):
    torch.manual_seed(2)
    reference = getattr(transformers, hf_head)(hf_config(tiny_bert_kwargs, **kwargs)).eval()
    model = copy_into(getattr(ours, head)(ours.BertConfig(**tiny_bert_kwargs, **kwargs)),
                      reference)
    input_ids, attention_mask, token_type_ids = padded_batch(99)
    extra, hf_extra = {}, {}
    if head == "BertForSequenceClassification":
        extra = hf_extra = {"labels": torch.tensor([0, 2, 1])}
    elif head == "BertForTokenClassification":
        labels = torch.randint(0, 5, input_ids.shape)
        labels[attention_mask == 0] = -100
        extra = hf_extra = {"labels": labels}
    elif head == "BertForQuestionAnswering":
        extra = hf_extra = {"start_positions": torch.tensor([1, 3, 30]),
                            "end_positions": torch.tensor([2, 4, 40])}
    got = model(input_ids, attention_mask, token_type_ids, **extra)
    want = reference(input_ids=input_ids, attention_mask=attention_mask,
                     token_type_ids=token_type_ids, **hf_extra)
    real = attention_mask.bool()  # token-level outputs are compared where tokens are real
    if head == "BertForQuestionAnswering":
        assert (got.start_logits - want.start_logits)[real].abs().max() < 1e-5
        assert (got.end_logits - want.end_logits)[real].abs().max() < 1e-5
    elif head == "BertForMaskedLM":
        assert (got.prediction_logits - want.logits)[real].abs().max() < 1e-5
    elif head == "BertForTokenClassification":
        assert (got.logits - want.logits)[real].abs().max() < 1e-5
    else:
        assert (got.logits - want.logits).abs().max() < 1e-5
    if extra:
        assert torch.allclose(got.loss, want.loss, atol=1e-5)


def test_bert_base_parameter_count_equals_hf():
    config = ours.bert_config("base")
    model = ours.BertModel(config)
    reference = transformers.BertModel(transformers.BertConfig())
    assert model.num_parameters() == reference.num_parameters() == 109_482_240


def test_heads_initialise_fresh_from_an_encoder_checkpoint(minilm_dir, capsys):
    model = ours.BertForSequenceClassification.from_pretrained(minilm_dir, num_labels=3)
    assert model.classifier.out_features == 3
    assert "classifier" in capsys.readouterr().err
    with pytest.raises(PlmError, match="lacks"):
        ours.BertForSequenceClassification.from_pretrained(minilm_dir, strict_head=True)


def test_shape_mismatch_lists_the_offending_tensors(tmp_path, tiny_bert_kwargs):
    ours.BertModel(ours.BertConfig(**tiny_bert_kwargs)).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["intermediate_size"] = 40
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(PlmError) as error:
        ours.BertModel.from_pretrained(tmp_path)
    message = str(error.value)
    assert "encoder.layer.0.intermediate.dense.weight" in message
    assert "encoder.layer.1.output.dense.weight" in message
    assert "(37, 32)" in message and "(40, 32)" in message


def test_unknown_config_key_and_missing_or_damaged_files(tmp_path, tiny_bert_kwargs):
    ours.BertModel(ours.BertConfig(**tiny_bert_kwargs)).save_pretrained(tmp_path / "ok")
    bad = tmp_path / "bad"
    shutil.copytree(tmp_path / "ok", bad)
    config = json.loads((bad / "config.json").read_text())
    config["hiden_size"] = 32
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(PlmError, match="hiden_size"):
        ours.BertModel.from_pretrained(bad)
    with pytest.raises(PlmError, match="config.json"):
        ours.BertModel.from_pretrained(tmp_path / "nowhere")
    damaged = tmp_path / "damaged"
    shutil.copytree(tmp_path / "ok", damaged)
    weights = damaged / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(PlmError, match="corrupted or truncated"):
        ours.BertModel.from_pretrained(damaged)


def test_pytorch_model_bin_is_read_with_weights_only(tmp_path, tiny_bert_kwargs):
    model = ours.BertModel(ours.BertConfig(**tiny_bert_kwargs)).eval()
    model.save_pretrained(tmp_path)
    state = model.state_dict()
    (tmp_path / "model.safetensors").unlink()
    torch.save(state, tmp_path / "pytorch_model.bin")
    loaded = ours.BertModel.from_pretrained(tmp_path)
    batch = padded_batch(99)
    with torch.no_grad():
        assert torch.equal(loaded(*batch).last_hidden_state, model(*batch).last_hidden_state)
    torch.save({"evil": object()}, tmp_path / "pytorch_model.bin")
    with pytest.raises(PlmError):
        ours.BertModel.from_pretrained(tmp_path)


def test_too_long_sequence_is_a_clear_error(tiny_bert_kwargs):
    model = ours.BertModel(ours.BertConfig(**tiny_bert_kwargs))
    with pytest.raises(PlmError, match="max_position_embeddings"):
        model(torch.zeros(1, 65, dtype=torch.long))


def test_save_is_atomic_when_interrupted(tmp_path, tiny_bert_kwargs, monkeypatch):
    model = ours.BertModel(ours.BertConfig(**tiny_bert_kwargs))
    model.save_pretrained(tmp_path / "ckpt")
    before = (tmp_path / "ckpt" / "model.safetensors").read_bytes()

    def explode(*args, **kwargs):
        raise OSError("disk full")

    import safetensors.torch

    monkeypatch.setattr(safetensors.torch, "save_file", explode)
    with torch.no_grad():
        model.embeddings.word_embeddings.weight.add_(1.0)
    with pytest.raises(OSError):
        model.save_pretrained(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_fused_qkv_cache_follows_weight_updates_at_inference():
    """The stacked W_Q/W_K/W_V kept for inference must be rebuilt when a weight changes."""
    from plmkit.models.attention import MultiHeadAttention

    torch.manual_seed(0)
    attention = MultiHeadAttention(16, 2).eval()
    states = torch.randn(2, 5, 16)

    def separate() -> torch.Tensor:
        attention.fuse_qkv = False
        try:
            return attention(states).context
        finally:
            attention.fuse_qkv = True

    with torch.no_grad():
        first = attention(states).context
        assert torch.allclose(first, separate(), atol=1e-6)
        attention.value.weight.mul_(2.0)  # an in-place update, as an optimizer does
        second = attention(states).context
        assert not torch.allclose(first, second)
        assert torch.allclose(second, separate(), atol=1e-6)
    with torch.inference_mode():
        attention.key.bias.add_(1.0)
        assert torch.allclose(attention(states).context, separate(), atol=1e-6)


def test_fused_cross_attention_keys_values_match_separate_projections():
    """Cross-attention projects K and V of the encoder memory in one matrix multiply; forward,
    gradients and the kept inference copy must equal the separate projections."""
    from plmkit.models.attention import MultiHeadAttention

    torch.manual_seed(0)
    attention = MultiHeadAttention(16, 2, key_value_size=12)
    states, memory = torch.randn(2, 5, 16), torch.randn(2, 7, 12)

    def run(fused: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        attention.fuse_qkv = fused
        attention.zero_grad()
        out = attention(states, key_value_states=memory).context
        out.square().sum().backward()
        return out.detach(), [p.grad.clone() for p in attention.parameters()]

    fused_out, fused_grads = run(True)
    plain_out, plain_grads = run(False)
    attention.fuse_qkv = True
    torch.testing.assert_close(fused_out, plain_out, rtol=1e-5, atol=1e-6)
    for a, b in zip(fused_grads, plain_grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        kept = attention.project_keys_values(memory)
        attention.value.weight.mul_(3.0)
        changed = attention.project_keys_values(memory)
        attention.fuse_qkv = False
        expected = attention.project_keys_values(memory)
    assert not torch.allclose(kept[1], changed[1])
    torch.testing.assert_close(changed[0], expected[0])
    torch.testing.assert_close(changed[1], expected[1])


def test_skipping_padding_changes_nothing_at_real_tokens(tiny_bert_kwargs):
    """The packed path (token-wise layers on real tokens only, attention one sequence at a time
    over its own tokens) equals the padded path, forward and backward, and is really taken when
    the batch has padding — also when the padding is not at the end of a row."""
    from plmkit.models import attention as core

    torch.manual_seed(0)
    model = ours.BertModel(ours.BertConfig(**tiny_bert_kwargs)).eval()
    input_ids, attention_mask, token_type_ids = padded_batch(99)
    attention_mask[0, 2] = 0  # a hole inside a row: its tokens are still one packed run
    attention_mask[0, 16] = 0  # 31 real tokens: the packed matrix gets one extra zero row
    real = attention_mask.bool()
    calls = []
    original = core.packed_attention
    core.packed_attention = lambda *a, **k: calls.append(1) or original(*a, **k)
    try:
        results = {}
        for skip in (False, True):
            model.skip_padding = skip
            model.zero_grad()
            out = model(input_ids, attention_mask, token_type_ids, output_hidden_states=True)
            (out.last_hidden_state[real].sum() + out.pooler_output.sum()).backward()
            results[skip] = (out, model.embeddings.word_embeddings.weight.grad.clone())
    finally:
        core.packed_attention = original
    (dense, dense_grad), (packed, packed_grad) = results[False], results[True]
    assert len(calls) == model.config.num_hidden_layers, "the packed path was not used"
    assert (dense.last_hidden_state - packed.last_hidden_state)[real].abs().max() < 1e-5
    assert packed.last_hidden_state[~real].abs().max() == 0
    assert (dense.pooler_output - packed.pooler_output).abs().max() < 1e-5
    for a, b in zip(dense.hidden_states, packed.hidden_states):
        assert (a - b)[real].abs().max() < 1e-5
    assert (dense_grad - packed_grad).abs().max() < 1e-5


def test_packed_attention_equals_masked_attention_row_by_row():
    """One sequence at a time over its own packed rows = the padded, masked kernel at the real
    positions; a row with no real token takes no rows and no call."""
    from plmkit.models import attention as core

    torch.manual_seed(0)
    heads, width = 4, 32
    attention_mask = torch.zeros(3, 6, dtype=torch.long)
    attention_mask[0, :2] = 1
    attention_mask[2, :] = 1
    attention_mask[2, 1] = 0
    queries, keys, values = (torch.randn(3, 6, width) for _ in range(3))
    padded, _ = core.scaled_dot_product_attention(
        *(core.split_heads(t, heads) for t in (queries, keys, values)),
        core.attention_bias(attention_mask, torch.float32))
    padded = core.merge_heads(padded)
    layout = core.PackedTokens.from_mask(attention_mask)
    assert layout.lengths == [2, 0, 5] and layout.height == 8  # 7 tokens, one extra row
    packed = core.packed_attention(*(core.pack(t, layout) for t in (queries, keys, values)),
                                   layout, heads)
    assert packed.shape == (8, width) and packed[7].abs().max() == 0
    real = attention_mask.bool()
    torch.testing.assert_close(core.unpack(packed, layout)[real], padded[real])
    with pytest.raises(ValueError, match="row lengths"):
        core.packed_attention(packed, packed, packed, core.PackedTokens(layout.index, 3, 6),
                              heads)


def test_packed_rows_take_few_heights_and_little_extra_work():
    """oneDNN keeps a kernel per matrix shape: packed heights are rounded to ≤ 32 per doubling,
    never below the real tokens and at most 1/32 (or 7 rows) above them."""
    from plmkit.models.attention import packed_rows

    heights = [packed_rows(tokens) for tokens in range(1, 8193)]
    assert all(h >= t and h <= t + max(7, t // 32) for t, h in enumerate(heights, 1))
    assert heights == sorted(heights)
    assert len(set(heights)) <= 32 * 6 and packed_rows(516) == 528


def test_tied_word_embeddings_get_the_same_dense_gradient(tiny_bert_kwargs):
    """Under a tied decoder the lookup's gradient is taken sparse and added into the decoder's:
    the parameter's .grad is dense and equals the all-dense gradient, over two accumulated
    micro-batches; a bare encoder keeps the dense lookup."""
    torch.manual_seed(0)
    model = ours.BertForPreTraining(ours.BertConfig(**tiny_bert_kwargs))
    assert model.bert.embeddings.tied_to_decoder
    assert not ours.BertModel(ours.BertConfig(**tiny_bert_kwargs)).embeddings.tied_to_decoder
    input_ids, attention_mask, token_type_ids = padded_batch(99)
    labels = torch.full_like(input_ids, -100)
    labels[:, 2] = input_ids[:, 2]
    grads = {}
    for tied in (False, True):
        model.bert.embeddings.tied_to_decoder = tied
        model.zero_grad(set_to_none=True)
        for _ in range(2):
            model(input_ids, attention_mask, token_type_ids, labels=labels,
                  next_sentence_label=torch.tensor([0, 1, 0])).loss.backward()
        grads[tied] = model.bert.embeddings.word_embeddings.weight.grad
    assert not grads[True].is_sparse
    torch.testing.assert_close(grads[True], grads[False], rtol=1e-5, atol=1e-7)
    assert grads[True][input_ids[0, 0]].abs().sum() > 0


def test_shape_buckets_round_rows_and_lengths_up():
    buckets = ours.ShapeBuckets(rows=(1, 2, 4, 6), length_multiple=16)
    assert [buckets.rows_for(n) for n in (1, 2, 3, 5, 6, 7, 13)] == [1, 2, 4, 6, 6, 12, 18]
    assert [buckets.length_for(n, 64) for n in (1, 16, 17, 60)] == [16, 16, 32, 64]
    assert buckets.length_for(70, 64) == 70  # past the limit: left to the model's own error
    for bad in ({"rows": ()}, {"rows": (2, 1)}, {"rows": (0, 1)}, {"length_multiple": 0}):
        with pytest.raises(PlmError):
            ours.ShapeBuckets(**bad)


@pytest.mark.parametrize("rows", [1, 3, 5])
def test_shape_buckets_pad_the_batch_and_cut_the_same_outputs_back(tiny_bert_kwargs, rows):
    """A batch padded to its bucket shape gives the real rows the outputs they get alone
    (hidden states, pooled output, attention probabilities), and the forward really ran at the
    bucket's shape."""
    torch.manual_seed(0)
    model = ours.BertModel(ours.BertConfig(**tiny_bert_kwargs)).eval()
    input_ids, attention_mask, token_type_ids = padded_batch(99)
    input_ids, attention_mask, token_type_ids = (t.repeat(2, 1)[:rows] for t in
                                                 (input_ids, attention_mask, token_type_ids))
    real = attention_mask.bool()
    with torch.no_grad():
        plain = model(input_ids, attention_mask, token_type_ids, output_attentions=True,
                      output_hidden_states=True)
        model.shape_buckets = ours.ShapeBuckets(rows=(1, 2, 4, 8), length_multiple=16)
        seen = []
        hook = model.embeddings.register_forward_hook(lambda m, i, o: seen.append(o.shape))
        bucketed = model(input_ids, attention_mask, token_type_ids, output_attentions=True,
                         output_hidden_states=True)
        hook.remove()
    assert seen == [torch.Size([{1: 1, 3: 4, 5: 8}[rows], 32, 32])]
    assert bucketed.last_hidden_state.shape == plain.last_hidden_state.shape
    assert (bucketed.last_hidden_state - plain.last_hidden_state)[real].abs().max() < 1e-5
    assert (bucketed.pooler_output - plain.pooler_output).abs().max() < 1e-5
    for a, b in zip(bucketed.hidden_states, plain.hidden_states):
        assert a.shape == b.shape and (a - b)[real].abs().max() < 1e-5
    for a, b in zip(bucketed.attentions, plain.attentions):  # at the real queries
        assert a.shape == b.shape
        assert (a - b).abs().amax(dim=(1, 3))[real].max() < 1e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_vocabulary_cross_entropy_equals_torchs_loss_and_gradient(dtype):
    torch.manual_seed(0)
    logits = (torch.randn(37, 1000) * 3).to(dtype).requires_grad_()
    targets = torch.randint(0, 1000, (37,))
    loss = ours.VocabularyCrossEntropy.apply(logits, targets)
    (grad_ours,) = torch.autograd.grad(loss * 2.5, logits)
    reference = torch.nn.functional.cross_entropy(logits.float(), targets)
    (grad_reference,) = torch.autograd.grad(reference * 2.5, logits)
    assert loss.dtype == torch.float32 and grad_ours.dtype == dtype
    torch.testing.assert_close(loss, reference, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad_ours, grad_reference)
