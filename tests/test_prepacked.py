"""Linear layers through a weight packed once at inference (plmkit.models.prepacked)."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from plmkit.models import prepacked
from plmkit.models.activations import ACTIVATIONS

pytestmark = pytest.mark.skipif(not prepacked._AVAILABLE,
                                reason="this PyTorch build has no oneDNN linear kernel")


def _layer(bias: bool = True) -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(48, 80, bias=bias)


def _kept(layer: nn.Linear) -> prepacked.PackedWeights | None:
    return layer.__dict__.get("_packed_weights")


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("activation", [None, "gelu", "gelu_new", "relu", "tanh"])
def test_packed_linear_equals_the_plain_layer_in_fp32(bias, activation):
    layer = _layer(bias)
    inputs = torch.randn(3, 7, 48)
    expected = layer(inputs)
    if activation is not None:
        expected = ACTIVATIONS[activation](expected)
    with torch.inference_mode():
        out = prepacked.linear(layer, inputs, activation)
    assert _kept(layer) is not None and _kept(layer)._kept, "the packed kernel was not used"
    assert out.dtype == torch.float32 and out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not prepacked._bf16_supported(), reason="no bf16 kernels on this CPU")
def test_under_bf16_autocast_the_packed_copy_is_bf16_and_agrees_with_autocast():
    layer = _layer()
    inputs = torch.randn(5, 48)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = layer(inputs)
        out = prepacked.linear(layer, inputs)
    with torch.inference_mode():
        fp32 = prepacked.linear(layer, inputs)
    assert out.dtype == expected.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), expected.float(), rtol=2e-2, atol=2e-2)
    assert set(_kept(layer)._kept) == {torch.bfloat16, torch.float32}
    assert fp32.dtype == torch.float32


def test_a_changed_weight_is_packed_again():
    layer = _layer()
    inputs = torch.randn(4, 48)
    with torch.inference_mode():
        before = prepacked.linear(layer, inputs)
    with torch.no_grad():
        layer.weight.mul_(2)  # an optimiser step, in place: the version counter moves
    with torch.inference_mode():
        after = prepacked.linear(layer, inputs)
    torch.testing.assert_close(after, layer(inputs), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(before, after)
    layer.load_state_dict({"weight": torch.zeros(80, 48), "bias": torch.ones(80)})
    with torch.no_grad():
        assert torch.equal(prepacked.linear(layer, inputs), torch.ones(4, 80))


def test_training_takes_the_plain_path_and_gradients_flow():
    layer = _layer()
    inputs = torch.randn(4, 48, requires_grad=True)
    out = prepacked.linear(layer, inputs, "gelu")
    out.sum().backward()
    assert _kept(layer) is None or not _kept(layer)._kept
    assert layer.weight.grad is not None and inputs.grad is not None


def test_hooks_and_other_modules_get_the_plain_call():
    layer = _layer()
    seen = []
    layer.register_forward_hook(lambda module, args, out: seen.append(out.shape))
    with torch.inference_mode():
        prepacked.linear(layer, torch.randn(2, 48))
    assert seen == [torch.Size([2, 80])]
    assert _kept(layer) is None
    identity = nn.Identity()
    with torch.inference_mode():
        assert prepacked.linear(identity, torch.ones(2, 3), "relu").eq(1).all()


def test_the_kept_copy_is_neither_deep_copied_nor_pickled():
    layer = _layer()
    inputs = torch.randn(2, 48)
    with torch.inference_mode():
        prepacked.linear(layer, inputs)
    twin = copy.deepcopy(layer)
    assert _kept(twin) is not None and not _kept(twin)._kept
    with torch.no_grad():
        twin.weight.zero_()
        assert torch.equal(prepacked.linear(twin, inputs), twin.bias.expand(2, -1))
    restored = pickle.loads(pickle.dumps(layer))
    assert not _kept(restored)._kept
    with torch.inference_mode():
        expected = F.linear(inputs, layer.weight, layer.bias)
        torch.testing.assert_close(prepacked.linear(restored, inputs), expected,
                                   rtol=1e-5, atol=1e-5)


def test_an_encoder_at_inference_uses_packed_weights_and_still_quantizes(tiny_bert_kwargs):
    """The BERT layers route their linears through the kept packed weights at inference, with
    the same outputs; dynamic int8 quantization (which deep-copies the model) still works after."""
    from plmkit.export.runtime import dynamic_int8
    from plmkit.models.bert import BertConfig, BertModel

    torch.manual_seed(0)
    model = BertModel(BertConfig(**tiny_bert_kwargs)).eval()
    input_ids = torch.randint(5, 99, (2, 9))
    expected = model(input_ids).last_hidden_state.detach()  # grad on: the plain path
    with torch.inference_mode():
        out = model(input_ids).last_hidden_state
    dense = model.encoder.layer[0].intermediate.dense
    assert _kept(dense)._kept
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    quantized = dynamic_int8(model)
    with torch.inference_mode():
        assert quantized(input_ids).last_hidden_state.shape == out.shape


def test_a_fused_optimizer_step_after_a_training_forward_is_seen(tiny_bert_kwargs):
    """The fused AdamW kernel updates weights without bumping their version counters; the
    training forward before it drops the packed copies, so evaluation sees the new weights."""
    from plmkit.models.bert import BertConfig, BertModel

    torch.manual_seed(0)
    model = BertModel(BertConfig(**tiny_bert_kwargs))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, fused=True)
    input_ids = torch.randint(5, 99, (2, 9))
    version = model.encoder.layer[0].intermediate.dense.weight._version
    for _ in range(2):
        model.eval()
        with torch.no_grad():
            packed = model(input_ids).last_hidden_state
        model.train()
        model(input_ids).last_hidden_state.square().mean().backward()
        optimizer.step()
        optimizer.zero_grad()
    assert model.encoder.layer[0].intermediate.dense.weight._version == version  # the trap
    model.eval()
    with torch.no_grad():
        packed = model(input_ids).last_hidden_state
    expected = model(input_ids).last_hidden_state.detach()  # grad on: the plain path
    torch.testing.assert_close(packed, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_an_unpacked_linear_at_inference_gets_its_activation_in_place(activation):
    """A dynamic-int8 linear is called as it is; its fresh output takes the activation in place
    (no second (tokens × 4d) tensor), with the same values as the out-of-place function."""
    from plmkit.models.activations import IN_PLACE_ACTIVATIONS

    torch.manual_seed(0)
    quantized = torch.ao.quantization.quantize_dynamic(nn.Sequential(_layer()), {nn.Linear})[0]
    inputs = torch.randn(5, 48)
    outputs = []
    original = IN_PLACE_ACTIVATIONS[activation]
    try:
        IN_PLACE_ACTIVATIONS[activation] = lambda x: outputs.append(x) or original(x)
        with torch.inference_mode():
            got = prepacked.linear(quantized, inputs, activation)
            want = ACTIVATIONS[activation](quantized(inputs))
    finally:
        IN_PLACE_ACTIVATIONS[activation] = original
    assert len(outputs) == 1 and got.data_ptr() == outputs[0].data_ptr()
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def test_no_activation_in_place_where_the_output_is_held_or_needed():
    """Under autograd the pre-activation is kept for the backward pass; a hook may return a
    tensor it holds; any other module may return its input. None of them is overwritten."""
    layer = _layer()
    inputs = torch.randn(3, 48)
    out = prepacked.linear(layer, inputs, "gelu")  # training: autograd needs F.linear's output
    out.sum().backward()
    torch.testing.assert_close(layer.weight.grad,
                               torch.autograd.functional.jacobian(
                                   lambda w: F.gelu(F.linear(inputs, w, layer.bias)).sum(),
                                   layer.weight.detach()))
    held = torch.full((3, 80), -1.0)
    hooked = _layer()
    hooked.register_forward_hook(lambda module, args, result: held)
    identity = nn.Identity()
    negatives = -torch.ones(2, 3)
    with torch.inference_mode():
        assert prepacked.linear(hooked, inputs, "relu").eq(0).all()
        assert prepacked.linear(identity, negatives, "relu").eq(0).all()
    assert held.eq(-1).all() and negatives.eq(-1).all()


def test_a_width_mismatch_gets_the_plain_shape_error():
    layer = _layer()
    with torch.inference_mode(), pytest.raises(RuntimeError, match=r"shapes cannot be multiplied"):
        prepacked.linear(layer, torch.randn(2, 47))


def test_a_model_made_under_inference_mode_runs_and_keeps_its_copies():
    """Inference tensors have no version counter: every kept copy (stacked Q/K/V, packed
    weights) stamps them with one rule (``version_stamp``) instead of reading ``_version``."""
    from plmkit.models.attention import MultiHeadAttention

    torch.manual_seed(0)
    with torch.inference_mode():
        attention = MultiHeadAttention(32, 4).eval()
        inputs = torch.randn(2, 5, 32)
        first = attention(inputs).context
        again = attention(inputs).context
    assert attention._stacked._kept and torch.equal(first, again)
    assert prepacked.version_stamp(attention.query.weight)[0] == -1
