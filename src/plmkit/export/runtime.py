"""An exported ONNX folder behind the call our PyTorch models answer.

Predictors call ``model(input_ids, attention_mask=…, token_type_ids=…)`` and read ``.logits``
(or ``.start_logits``/``.end_logits``, or ``.last_hidden_state``) and ``model.config``;
:class:`OnnxModel` answers the same, computing with an ONNX Runtime session, so a pipeline or
``plm predict`` switches runtime with one flag and writes the same outputs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from plmkit.errors import PlmError
from plmkit.export.onnx import ONNX_FILE, read_export
from plmkit.models.bert import BertConfig, BertModelOutput, TaskOutput

RUNTIMES = ("torch", "torch-int8", "onnx")


def _session(path: Path, threads: int | None) -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise PlmError("the onnx runtime needs onnxruntime: pip install onnxruntime",
                       field="runtime") from None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    # ONNX Runtime's pool threads spin after each run, waiting for the next: measured, a
    # PyTorch forward started right after one took 3× its time (1.9 → 6.2 ms, MiniLM int8,
    # batch 1, 2 cores). Between calls a pipeline tokenizes and a server parses, so they sleep.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return onnxruntime.InferenceSession(str(path), options,
                                            providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for damaged files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PlmError(f"ONNX Runtime cannot load the model: {first}", path=path) from None


class OnnxModel:
    """An exported folder (:func:`plmkit.export.onnx.export_onnx`) run by ONNX Runtime."""

    def __init__(self, folder: str | Path, *, threads: int | None = None) -> None:
        from plmkit.models.pretrained import read_checkpoint_config

        self.folder = Path(folder)
        self.export = read_export(self.folder)
        self.task: str = self.export["task"]
        values = read_checkpoint_config(self.folder)
        known = {f for f in BertConfig.__dataclass_fields__}
        self.config = BertConfig(**{k: v for k, v in values.items() if k in known})
        self.session = _session(self.folder / ONNX_FILE, threads)
        self.input_names = {i.name for i in self.session.get_inputs()}

    # the nn.Module calls a predictor makes
    def to(self, *args: Any, **kwargs: Any) -> "OnnxModel":
        return self

    def eval(self) -> "OnnxModel":
        return self

    def __call__(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                 token_type_ids: Tensor | None = None, **ignored: Any) -> Any:
        length = input_ids.shape[1]
        if length > self.config.max_position_embeddings:
            raise PlmError(f"sequence of {length} tokens is longer than the model's "
                           f"max_position_embeddings ({self.config.max_position_embeddings})",
                           field="max_position_embeddings")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        feed = {"input_ids": input_ids, "attention_mask": attention_mask,
                "token_type_ids": token_type_ids}
        arrays = {k: np.ascontiguousarray(v.cpu().numpy().astype(np.int64))
                  for k, v in feed.items() if k in self.input_names}
        values = [torch.from_numpy(np.asarray(v)) for v in self.session.run(None, arrays)]
        if self.task == "encoder":
            return BertModelOutput(values[0])
        if self.task == "qa":
            return TaskOutput(None, start_logits=values[0], end_logits=values[1])
        return TaskOutput(None, logits=values[0])


def full_range_int8() -> bool:
    """Whether this CPU's int8 kernels can take activations at their full 8 bits.

    Without AVX-512 VNNI, fbgemm multiplies uint8 activations by int8 weights with
    ``vpmaddubsw``, which sums each pair of products into a *saturating* int16: 255 · 127 · 2
    overflows it. PyTorch's dynamic linear therefore quantizes activations to 7 bits
    (``reduce_range=True``) everywhere. VNNI's ``vpdpbusd`` accumulates in int32, so there the
    8th bit is free, and it is the bit the accuracy was missing: half the activation steps cost
    MiniLM about a point on polarity and NER, the full range nothing (README, int8 section)."""
    if os.environ.get("FBGEMM_ENABLE_INSTRUCTIONS", "").strip().upper() == "AVX2":
        return False  # fbgemm told to use its AVX2 kernels: vpmaddubsw, whatever the CPU has
    probe = getattr(torch.cpu, "_is_vnni_supported", None)
    try:
        return bool(probe()) if probe is not None else False
    except Exception:  # a private probe: if it is missing or fails, take the safe 7 bits
        return False


class Int8Linear(torch.ao.nn.quantized.dynamic.Linear):
    """PyTorch's dynamic int8 linear (int8 weights per output channel, uint8 activations
    quantized per batch as they come), with the activation range chosen for the CPU
    (:func:`full_range_int8`) instead of always 7 bits."""

    reduce_range: bool = True

    def forward(self, x: Tensor) -> Tensor:  # as torch.ao's, with reduce_range ours to choose
        return torch.ops.quantized.linear_dynamic(x, self._packed_params._packed_params,
                                                  reduce_range=self.reduce_range).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, activation_bits={7 if self.reduce_range else 8}"


def dynamic_int8(model: nn.Module, *, full_range: bool | None = None) -> nn.Module:
    """``model`` with dynamic int8 quantization of the encoder's linear layers
    (:class:`Int8Linear`): int8 weights per output channel, activations quantized per batch as
    they come (fbgemm's kernels), at 8 bits where the CPU has VNNI and 7 elsewhere
    (``full_range``: None = ask the CPU). The task head (classifier, span or tag projection)
    stays fp32: it is a sliver of the time and the last layer before the decision, where
    rounding would show first. Returns a new module; ``model`` is left as it is."""
    import copy
    import warnings

    if full_range is None:
        full_range = full_range_int8()
    quantized = copy.deepcopy(model).eval()
    encoder = getattr(quantized, "bert", quantized)
    _stack_self_attention(encoder)
    with warnings.catch_warnings():  # torch.ao's notice that the API is moving to torchao
        warnings.simplefilter("ignore")
        # Per output channel: one scale per row of W, as ONNX Runtime's export does, at the
        # same speed as one per tensor.
        qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
        torch.ao.quantization.quantize_dynamic(encoder, {nn.Linear: qconfig},
                                               mapping={nn.Linear: Int8Linear}, inplace=True)
    for module in encoder.modules():
        if isinstance(module, Int8Linear):
            module.reduce_range = not full_range
        stacked = getattr(module, "_stacked", None)  # stacked-projection copies of fp32 weights
        if stacked is not None and hasattr(stacked, "clear"):
            stacked.clear()
    return quantized


def _stack_self_attention(encoder: nn.Module) -> None:
    """Give each self-attention one linear over [W^Q; W^K; W^V] (``MultiHeadAttention.qkv``)
    before quantization: the float model stacks its weights on the fly, which a quantized
    module's packed weights cannot do. One int8 call then quantizes the layer's input once, not
    three times (MiniLM, batch 16: 5% of the forward); rows are scaled one by one, so the
    outputs equal the three separate linears' exactly."""
    from plmkit.models.attention import MultiHeadAttention, StackedProjection

    for module in encoder.modules():
        if (isinstance(module, MultiHeadAttention) and module.fuse_qkv
                and module._stackable() and module.qkv is None):
            with torch.no_grad():
                weight, bias = StackedProjection.stack((module.query, module.key, module.value))
            stacked = nn.Linear(weight.size(1), weight.size(0), bias=bias is not None)
            stacked.weight = nn.Parameter(weight)
            stacked.bias = None if bias is None else nn.Parameter(bias)
            module.qkv = stacked


def check_runtime(folder: str | Path, runtime: str) -> None:
    """A PyTorch folder for ``--runtime onnx`` or an ONNX folder for ``--runtime torch`` (or
    ``torch-int8``): one line naming the folder and what it holds."""
    folder = Path(folder)
    if runtime not in RUNTIMES:
        raise PlmError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}",
                       field="runtime")
    if runtime == "onnx":
        read_export(folder)
    elif (folder / ONNX_FILE).is_file() and not (folder / "model.safetensors").is_file():
        raise PlmError(f"this folder is an ONNX export (model.onnx, no model.safetensors): "
                       f"use --runtime onnx, not {runtime}", path=folder)


__all__ = ["Int8Linear", "OnnxModel", "RUNTIMES", "check_runtime", "dynamic_int8",
           "full_range_int8"]
