"""The activation functions a config may name, under Hugging Face's names.

One table for every model (BERT's ``hidden_act``, GPT-2's ``activation_function``, the
Transformer's ``activation``), so a name means the same function everywhere and a config naming
anything else is refused when it is read, not when the layer first runs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def gelu_tanh(x: Tensor) -> Tensor:
    """GELU's tanh approximation: GPT-2's ``gelu_new`` (and HF's ``gelu_pytorch_tanh``)."""
    return F.gelu(x, approximate="tanh")


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "gelu": F.gelu, "relu": F.relu, "gelu_new": gelu_tanh, "gelu_pytorch_tanh": gelu_tanh,
    "silu": F.silu, "swish": F.silu, "tanh": torch.tanh,
}

# The same functions overwriting their input: for a freshly computed tensor nothing else holds
# (a linear layer's output at inference), one pass and no new (tokens × 4d) allocation.
IN_PLACE_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "gelu": lambda x: torch.ops.aten.gelu_(x),
    "gelu_new": lambda x: torch.ops.aten.gelu_(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: torch.ops.aten.gelu_(x, approximate="tanh"),
    "relu": torch.relu_, "silu": lambda x: F.silu(x, inplace=True),
    "swish": lambda x: F.silu(x, inplace=True), "tanh": torch.tanh_,
}

__all__ = ["ACTIVATIONS", "IN_PLACE_ACTIVATIONS", "gelu_tanh"]
