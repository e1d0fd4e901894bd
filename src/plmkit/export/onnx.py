"""A BERT checkpoint → a self-contained ONNX folder that ONNX Runtime runs with our outputs.

What is exported is the network from token ids to what a predictor reads — the logits of a
fine-tuned head, or the encoder's states — with dynamic batch and sequence axes. Two of our
run-time shortcuts are turned off for the export, since a traced graph freezes Python decisions:
running the token-wise layers on real tokens only (``skip_padding``: a data-dependent gather) and
the length check against ``max_position_embeddings`` (the graph would keep the traced length's
answer; the runtime wrapper checks the length itself).

The folder holds ``model.onnx``, ``config.json`` (the checkpoint's, plus an ``export`` entry: format,
opset, task, input and output names, quantization), ``task.json`` when the checkpoint has one,
and the tokenizer files: it is all a user ships.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from plmkit._io import atomic_dir
from plmkit.errors import PlmError
from plmkit.models.pretrained import read_checkpoint_config

ONNX_FILE = "model.onnx"
OPSET = 17
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# What each exported task returns, in order.
OUTPUTS: dict[str, tuple[str, ...]] = {
    "classify": ("logits",), "pair": ("logits",), "tag": ("logits",),
    "qa": ("start_logits", "end_logits"), "encoder": ("last_hidden_state",),
}
ENCODER_ARCHITECTURES = ("BertModel", "BertForMaskedLM", "BertForPreTraining")
TOKENIZER_FILES = ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json",
                   "tokenizer.json", "task.json")


class _Exported(nn.Module):
    """The model with positional tensor inputs and a tuple of tensor outputs (what a graph
    exporter wants), for one task."""

    def __init__(self, model: nn.Module, task: str) -> None:
        super().__init__()
        self.model, self.task = model, task

    def forward(self, input_ids: Tensor, attention_mask: Tensor,
                token_type_ids: Tensor) -> tuple[Tensor, ...]:
        out = self.model(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        if self.task == "encoder":
            return (out.last_hidden_state,)
        if self.task == "qa":
            return out.start_logits, out.end_logits
        return (out.logits,)


def checkpoint_task(folder: Path) -> str:
    """``classify``/``pair``/``tag``/``qa`` for a fine-tuned head, ``encoder`` for a
    pre-trained BERT; anything else is refused, naming the architecture."""
    from plmkit.downstream.settings import ARCHITECTURE_TASKS, load_settings

    config = read_checkpoint_config(folder)
    if config.get("model_type") != "bert":
        raise PlmError(f"only BERT checkpoints export to ONNX here, not model_type "
                       f"{config.get('model_type')!r}", path=folder / "config.json",
                       field="model_type")
    architecture = (config.get("architectures") or ["BertModel"])[0]
    if architecture in ENCODER_ARCHITECTURES:
        return "encoder"
    if architecture not in ARCHITECTURE_TASKS:
        raise PlmError(f"cannot export a {architecture}: no task head this exporter knows "
                       f"(sequence/pair classification, token classification, QA, or the "
                       f"bare encoder)", path=folder / "config.json", field="architectures")
    return load_settings(folder).task


def load_for_export(folder: Path, task: str) -> nn.Module:
    from plmkit.downstream.loading import ARCHITECTURES
    from plmkit.models.bert import BertModel

    if task == "encoder":
        model = BertModel.from_pretrained(folder)
        encoder = model
    else:
        model = ARCHITECTURES[task].from_pretrained(folder, strict_head=True)
        encoder = model.bert
    encoder.skip_padding = False  # a data-dependent gather: not in a traced graph
    return model.eval()


def example_inputs(vocab_size: int, batch: int = 2, length: int = 16) -> tuple[Tensor, ...]:
    ids = torch.randint(5, max(6, vocab_size), (batch, length))
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[-1, length // 2:] = 0  # padding in the trace, so the mask path is the general one
    return ids, mask, torch.zeros(batch, length, dtype=torch.long)


QUANTIZATIONS = ("int8",)


def export_onnx(folder: str | Path, output: str | Path, *, opset: int = OPSET,
                quantize: str | None = None, check: str | Path | None = None) -> Path:
    """Export the checkpoint ``folder`` to ``output`` (a new folder, written whole or not at
    all). ``quantize="int8"``: the linear layers' weights in int8 (:func:`quantize_int8`).
    ``check``: labelled data (a file or ``NAME:SPLIT``) scored with the PyTorch checkpoint and
    with the export, and with int8 also PyTorch's dynamic int8; the metrics and what the export
    costs in points go into ``results.json`` (:func:`accuracy_check`). Returns ``output``."""
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise PlmError(f"quantize must be one of {', '.join(QUANTIZATIONS)}, not {quantize!r}",
                       field="quantize")
    folder, output = Path(folder), Path(output)
    if (folder / ONNX_FILE).exists() and not (folder / "model.safetensors").exists():
        raise PlmError("this folder is already an ONNX export; export the PyTorch checkpoint "
                       "it came from", path=folder)
    task = checkpoint_task(folder)
    if check is not None and task == "encoder":
        raise PlmError("--check scores a fine-tuned head on labelled data; this checkpoint is a "
                       "bare encoder", path=folder, field="check")
    model = load_for_export(folder, task)
    config = read_checkpoint_config(folder)
    outputs = OUTPUTS[task]
    with atomic_dir(output) as staging:
        graph = staging / (ONNX_FILE if quantize is None else "model-fp32.onnx")
        _export_graph(_Exported(model, task), example_inputs(int(config["vocab_size"])),
                      graph, task, opset)
        quantization = None
        if quantize == "int8":
            quantization = quantize_int8(graph, staging / ONNX_FILE)
            graph.unlink()
        for name in TOKENIZER_FILES:
            if (folder / name).is_file():
                shutil.copyfile(folder / name, staging / name)
        config["export"] = {"format": "onnx", "opset": opset, "task": task,
                            "inputs": list(INPUTS), "outputs": list(outputs),
                            "quantization": quantization, "source": str(folder)}
        (staging / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        if check is not None:
            results = accuracy_check(folder, staging, check, quantized=quantize is not None)
            (staging / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return output


def headline_metric(task: str, metrics: dict[str, float]) -> tuple[str, float]:
    """The metric a family is judged by, and its scale to points (0-100)."""
    if task == "qa":
        return "f1", 1.0  # SQuAD's script already reports percent
    if task == "tag":
        return "f1", 100.0
    return ("accuracy", 100.0) if "accuracy" in metrics else ("pearson", 100.0)


def accuracy_check(source: Path, exported: Path, data: str | Path, *,
                   quantized: bool) -> dict[str, Any]:
    """Score the same labelled data with the PyTorch checkpoint (fp32), with the ONNX export and,
    for an int8 export, with PyTorch's dynamic int8 as well, so the cost of each deployment path is
    a number beside the model. ``cost_points`` is fp32 minus the path, in points of the task's
    headline metric (accuracy, entity F1, SQuAD F1)."""
    from plmkit.downstream import evaluate_checkpoint
    from plmkit.downstream.settings import load_settings

    task = load_settings(source).task
    runs = {"torch fp32": evaluate_checkpoint(source, data, device="cpu")}
    runs["onnx int8" if quantized else "onnx fp32"] = evaluate_checkpoint(exported, data,
                                                                        runtime="onnx")
    if quantized:
        runs["torch-int8"] = evaluate_checkpoint(source, data, runtime="torch-int8")
    metric, scale = headline_metric(task, runs["torch fp32"])
    reference = runs["torch fp32"][metric]
    checked = {"data": str(data), "task": task, "metric": metric, "runs": runs,
               "cost_points": {name: round(scale * (reference - values[metric]), 4)
                               for name, values in runs.items() if name != "torch fp32"}}
    if quantized:  # 8 with AVX-512 VNNI, 7 without: the figure depends on the CPU it ran on
        from plmkit.export.runtime import full_range_int8

        checked["torch_int8_activation_bits"] = 8 if full_range_int8() else 7
    return checked


def quantize_int8(source: Path, target: Path) -> dict[str, Any]:
    """ONNX Runtime's dynamic quantization of the matrix multiplies: weights int8 per output
    channel, activations quantized on the fly per batch (uint8). Embeddings (Gather),
    LayerNorm, softmax and GELU stay fp32: they are a small share of the time, and the embedding
    table is where per-token error would enter every layer. Returns the record written into
    ``config.json``."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        raise PlmError("--quantize int8 needs onnxruntime: pip install onnxruntime",
                       field="quantize") from None
    quantize_dynamic(str(source), str(target), op_types_to_quantize=["MatMul"],
                     per_channel=True, reduce_range=False, weight_type=QuantType.QInt8)
    return {"method": "onnxruntime.quantization.quantize_dynamic", "weights": "int8 per channel",
            "activations": "uint8, dynamic per batch", "op_types": ["MatMul"],
            "kept_fp32": ["embeddings (Gather)", "LayerNorm", "softmax", "GELU", "biases"]}


def _export_graph(module: nn.Module, inputs: tuple[Tensor, ...], path: Path, task: str,
                  opset: int) -> None:
    """torch.onnx's TorchScript-based exporter, with dynamic batch and sequence axes."""
    import warnings

    outputs = OUTPUTS[task]
    axes: dict[str, dict[int, str]] = {name: {0: "batch", 1: "sequence"} for name in INPUTS}
    per_sequence = task in ("classify", "pair")  # logits (batch, labels)
    for name in outputs:
        axes[name] = {0: "batch"} if per_sequence else {0: "batch", 1: "sequence"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about frozen Python branches
        torch.onnx.export(module, inputs, str(path), input_names=list(INPUTS),
                          output_names=list(outputs), dynamic_axes=axes, opset_version=opset,
                          do_constant_folding=True, dynamo=False)


def read_export(folder: str | Path) -> dict[str, Any]:
    """The ``export`` entry of an exported folder's ``config.json``; a PyTorch checkpoint (or
    a folder without ``model.onnx``) is refused by name."""
    folder = Path(folder)
    if not (folder / ONNX_FILE).is_file():
        hint = (" (a PyTorch checkpoint: use --runtime torch, or plm export it first)"
                if (folder / "model.safetensors").is_file() else "")
        raise PlmError(f"no {ONNX_FILE} in this folder{hint}", path=folder)
    config = read_checkpoint_config(folder)
    export = config.get("export")
    if not isinstance(export, dict) or export.get("format") != "onnx":
        raise PlmError("config.json has no ONNX export entry: not a plm export folder",
                       path=folder / "config.json", field="export")
    return export


__all__ = ["accuracy_check", "headline_metric", "ONNX_FILE", "OPSET", "OUTPUTS", "QUANTIZATIONS", "quantize_int8", "checkpoint_task", "export_onnx", "read_export"]
