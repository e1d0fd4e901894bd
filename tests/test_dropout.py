"""Dropout with the cheaper CPU mask (``plmkit.models.dropout``): the same distribution as
``F.dropout``, the right gradient, reproducible under a seed, and the attention path that uses it
computing softmax(QKᵀ/√d + M)·mask/(1−p)·V."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from plmkit.models.attention import attention_bias, scaled_dot_product_attention
from plmkit.models.dropout import Dropout, cheap_mask_applies, dropout, keep_mask


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_the_mask_keeps_one_minus_p_in_every_lane(p):
    torch.manual_seed(0)
    count = 400_000
    keep, quantised = keep_mask((count,), p)
    assert keep.dtype == torch.bool and keep.shape == (count,)
    assert abs(quantised - p) <= 0.5 / 32768
    sigma = math.sqrt(p * (1 - p) / (count / 4))
    # each of the four 16-bit lanes of a 64-bit draw (the top one has one bit less)
    for lane in keep.view(-1, 4).float().mean(0).tolist():
        assert abs(lane - (1 - quantised)) < 5 * sigma
    # neighbours are independent: P(both kept) = (1 - p)²
    both = (keep[:-1] & keep[1:]).float().mean().item()
    assert abs(both - (1 - quantised) ** 2) < 5 * math.sqrt((1 - p) ** 2 / count) + 1e-3


def test_odd_sizes_and_shapes():
    keep, _ = keep_mask((3, 5, 7), 0.2)
    assert keep.shape == (3, 5, 7)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_survivors_are_scaled_and_the_gradient_is_the_mask(dtype):
    torch.manual_seed(1)
    states = torch.ones(64, 256, dtype=dtype, requires_grad=True)
    out = dropout(states, 0.1)
    assert out.dtype == dtype
    kept = out != 0
    scale = 1 / (1 - round(0.1 * 32768) / 32768)
    assert torch.equal(out[kept], torch.full_like(out[kept], scale))
    assert 0.85 < kept.float().mean().item() < 0.95
    out.sum().backward()
    assert torch.equal(states.grad, out.detach())  # d(x·m·s)/dx = m·s, and x = 1


def test_expectation_is_unchanged():
    torch.manual_seed(2)
    states = torch.randn(1000, 512)
    out = dropout(states, 0.3)
    assert out.mean().item() == pytest.approx(states.mean().item(), abs=0.01)
    assert (out.pow(2).mean() * 0.7).item() == pytest.approx(states.pow(2).mean().item(),
                                                             rel=0.02)


def test_same_seed_same_mask_and_eval_is_identity():
    layer = Dropout(0.1)
    states = torch.randn(32, 128)
    torch.manual_seed(3)
    first = layer(states)
    torch.manual_seed(3)
    assert torch.equal(layer(states), first)
    assert not torch.equal(layer(states), first)
    layer.eval()
    assert layer(states) is states
    assert dropout(states, 0.0) is states
    assert torch.equal(dropout(states, 1.0), torch.zeros_like(states))
    assert isinstance(layer, torch.nn.Dropout) and layer.state_dict() == {}


def test_matches_torch_dropout_in_distribution():
    """Both drop the same share and scale alike: compare the sums over many draws."""
    torch.manual_seed(4)
    states = torch.rand(200_000)
    ours, theirs = dropout(states, 0.25), F.dropout(states, 0.25, True)
    assert ((ours == 0).float().mean() - (theirs == 0).float().mean()).abs() < 0.005
    assert ours.sum().item() == pytest.approx(theirs.sum().item(), rel=0.01)


def test_attention_with_dropout_is_the_formula_with_the_drawn_mask():
    torch.manual_seed(5)
    queries, keys, values = (torch.randn(2, 3, 6, 4) for _ in range(3))
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    bias = attention_bias(mask, torch.float32)
    torch.manual_seed(6)
    context, _ = scaled_dot_product_attention(queries, keys, values, bias, dropout=0.2)
    torch.manual_seed(6)
    keep, quantised = keep_mask((2, 3, 6, 6), 0.2)
    weights = (queries @ keys.transpose(-2, -1) / 2 + bias).softmax(-1)
    expected = (weights * keep / (1 - quantised)) @ values
    torch.testing.assert_close(context, expected)
    # without dropout the written-out path equals PyTorch's fused kernel
    fused, _ = scaled_dot_product_attention(queries, keys, values, bias)
    explicit, _ = scaled_dot_product_attention(queries, keys, values, bias,
                                               return_probabilities=True)
    torch.testing.assert_close(fused, explicit)


def test_the_cheap_mask_is_a_cpu_matter():
    """One predicate decides for dropout layers and attention alike."""
    assert cheap_mask_applies(torch.zeros(2))
    if torch.cuda.is_available():
        assert not cheap_mask_applies(torch.zeros(2, device="cuda"))
