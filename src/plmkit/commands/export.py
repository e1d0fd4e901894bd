"""``plm export``: a checkpoint folder in a form another runtime loads.

    plm export runs/budget --format hf --output runs/budget-hf

``--format hf`` writes a folder a *standard* Hugging Face class loads with equal outputs
(:func:`plmkit.models.convert.to_hugging_face`): a post-LN BERT as BERT (zero biases where the
recipe dropped them), a pre-LN BERT (``plm pretrain --recipe budget``) as RoBERTa-PreLayerNorm.
A plain post-LN BERT folder needs no export: Hugging Face reads it as it is.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from plmkit.errors import PlmError

FORMATS = ("hf",)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="write a checkpoint for another runtime "
                                   "(hf: a standard Hugging Face class)",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="checkpoint folder (config.json, model.safetensors)")
    parser.add_argument("--format", choices=FORMATS, required=True,
                        help="hf: a folder Hugging Face's Auto classes load with equal outputs")
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
    to_hugging_face(model, output)
    print(f"plmkit: {output} written for Hugging Face (format {args.format})")
    return 0
