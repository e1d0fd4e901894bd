"""Dropout (Srivastava et al., 2014) with a cheaper random mask on the CPU.

Dropout zeroes each activation with probability p during training and scales the survivors by
1 / (1 − p), so the expected activation is unchanged and nothing needs rescaling at inference.

Why not just ``nn.Dropout``: on the CPU, PyTorch draws one random number per element
(``bernoulli_``), and a BERT step drops about 15 M elements (the attention probabilities alone are
batch × heads × length²). That draw was 11% of a pre-training step of BERT-mini on 2 cores, more
than all the attention matrix multiplies. Here one 64-bit draw yields four 16-bit lanes, of which 15
bits decide: a quarter of the generator's work, and the same Bernoulli mask up to the
quantisation of p to 1/32,768 (p = 0.1 becomes 0.100006; the scale uses that exact p, so the
expected activation is still unchanged). The draws come from PyTorch's default generator, so
``torch.manual_seed`` (``--seed``) reproduces them. On other devices (and inside
``torch.compile``, which fuses its own) this is ``F.dropout``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LANE_LEVELS = 1 << 15  # 15 random bits per element decide keep or drop


def keep_mask(shape: torch.Size | tuple[int, ...], p: float, device: torch.device | str = "cpu"
              ) -> tuple[Tensor, float]:
    """A bool mask of ``shape`` that keeps each element with probability 1 − p (p quantised
    to 1/32,768), and that quantised p."""
    count = 1
    for size in shape:
        count *= size
    draws = torch.empty((count + 3) // 4, dtype=torch.int64, device=device).random_()
    # random_() fills an int64 with 63 uniform bits, so the top lane's sign bit is 0: keep the low 15.
    lanes = draws.view(torch.int16)[:count].bitwise_and_(LANE_LEVELS - 1)
    threshold = round(p * LANE_LEVELS)
    return lanes.ge(threshold).view(shape), threshold / LANE_LEVELS


def cheap_mask_applies(states: Tensor) -> bool:
    """Where :func:`dropout` draws the cheaper mask: CPU tensors, outside ``torch.compile``.
    Attention asks too (:func:`~plmkit.models.attention.scaled_dot_product_attention` writes
    attention out instead of calling the fused kernel only where this holds)."""
    return states.device.type == "cpu" and not torch.compiler.is_compiling()


def dropout(states: Tensor, p: float, training: bool = True) -> Tensor:
    """``F.dropout(states, p, training)``, with the cheaper mask on the CPU."""
    if not training or p == 0.0:
        return states
    if not cheap_mask_applies(states) or p >= 1.0:
        return F.dropout(states, p, training)
    keep, quantised = keep_mask(states.shape, p, states.device)
    if quantised >= 1.0:
        return states * 0.0
    scale = 1.0 / (1.0 - quantised)
    if states.dtype == torch.float32:
        # one scaled 0/1 mask, multiplied in: autograd keeps it for the backward pass
        return states * keep.to(states.dtype).mul_(scale)
    # bf16/fp16 would round the scale itself (1/0.9 → 1.109 in bf16, a bias at every layer):
    # mask, then scale each value (computed in fp32, rounded once)
    return states.mul(keep).mul_(scale)


class Dropout(nn.Dropout):
    """``nn.Dropout`` (same attribute, same ``p``, nothing in the checkpoint), computed by
    :func:`dropout`."""

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002 - nn.Dropout's signature
        if self.inplace:
            return super().forward(input)
        return dropout(input, self.p, self.training)


__all__ = ["Dropout", "cheap_mask_applies", "dropout", "keep_mask"]
