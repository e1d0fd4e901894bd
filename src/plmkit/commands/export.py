"""``plm export``: a checkpoint folder in a form another runtime loads.

    plm export runs/budget --format hf --output runs/budget-hf

``--format onnx`` writes ``model.onnx`` (dynamic batch and sequence axes) beside the tokenizer
files and config, for a fine-tuned head (classify, pair, tag, QA) or the bare encoder; ONNX
Runtime runs it with our outputs, and ``plm predict --runtime onnx`` reads it
(:mod:`plmkit.export`).

``--format hf`` writes a folder a *standard* Hugging Face class loads with equal outputs
(:func:`plmkit.models.convert.to_hugging_face`): a post-LN BERT as BERT (zero biases where the
recipe dropped them), a pre-LN BERT (``plm pretrain --recipe budget``) as RoBERTa-PreLayerNorm.
A plain post-LN BERT folder needs no export: Hugging Face reads it as it is.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from plmkit.commands._types import positive_int
from plmkit.errors import PlmError

FORMATS = ("onnx", "hf")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="write a checkpoint for another runtime "
                                   "(hf: a standard Hugging Face class)",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="checkpoint folder (config.json, model.safetensors)")
    parser.add_argument("--format", choices=FORMATS, required=True,
                        help="onnx: model.onnx (dynamic batch and sequence) with the tokenizer "
                             "and config, for ONNX Runtime and plm predict --runtime onnx; hf: a "
                             "folder Hugging Face's Auto classes load with equal outputs")
    parser.add_argument("--opset", type=positive_int, default=None,
                        help="ONNX opset (default 17)")
    parser.add_argument("--quantize", choices=("int8",), default=None,
                        help="onnx: int8 weights for the linear layers (ONNX Runtime's dynamic "
                             "quantization; embeddings and norms stay fp32)")
    parser.add_argument("--check", default=None, metavar="DATA",
                        help="onnx: labelled data (a file or NAME:SPLIT, e.g. polarity:dev) "
                             "scored with the checkpoint and with the export (and, with "
                             "--quantize int8, PyTorch's dynamic int8); metrics and the cost in "
                             "points go into the export's results.json")
    parser.add_argument("--output", required=True, help="new folder to write")
    parser.set_defaults(func=run, output_kind="folder")


def run(args: argparse.Namespace) -> int:
    from plmkit.models.convert import to_hugging_face

    model, output = Path(args.model), Path(args.output)
    if not (model / "config.json").is_file():
        raise PlmError("not a checkpoint folder (no config.json)", path=model, field="model")
    if output.resolve() == model.resolve():
        raise PlmError("--output must be a new folder, not the checkpoint itself", path=output,
                       field="output")
    if output.is_dir() and any(p for p in output.iterdir() if not p.name.startswith(".")):
        raise PlmError("already holds files; give a new or empty folder", path=output,
                       field="output")
    if args.format == "onnx":
        from plmkit.export.onnx import OPSET, export_onnx

        export_onnx(model, output, opset=args.opset or OPSET, quantize=args.quantize,
                    check=args.check)
        print(f"plmkit: {output / 'model.onnx'} written (ONNX opset {args.opset or OPSET}); run "
              f"it with plm predict --runtime onnx --model {output}")
        if args.check:
            _print_check(output / "results.json")
        return 0
    for flag in ("opset", "quantize", "check"):
        if getattr(args, flag) is not None:
            raise PlmError("--opset, --quantize and --check apply to --format onnx only",
                           field=flag)
    to_hugging_face(model, output)
    print(f"plmkit: {output} written for Hugging Face (format {args.format})")
    return 0


def _print_check(path: Path) -> None:
    import json

    results = json.loads(path.read_text())
    metric = results["metric"]
    for name, values in results["runs"].items():
        cost = results["cost_points"].get(name)
        tail = "" if cost is None else f"  ({cost:+.2f} points lost)"
        print(f"  {name:12s} {metric} {values[metric]:.4f}{tail}")
    print(f"plmkit: scores on {results['data']} written to {path}")
