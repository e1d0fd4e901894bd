"""``plm info``, ``plm embed``, ``plm attention``, ``plm fill-mask``: using a BERT checkpoint."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from plmkit.commands._common import check_output_file
from plmkit.errors import PlmError
from plmkit.commands._types import non_negative_int, positive_int


def resolve_checkpoint(name: str) -> Path:
    """A folder, or the name of a built-in checkpoint (``minilm``)."""
    if name == "minilm":
        from plmkit.datasets import minilm_dir

        return minilm_dir()
    path = Path(name)
    if not path.is_dir():
        raise PlmError("checkpoint folder not found (give a folder with config.json, or 'minilm')",
                       path=path)
    return path


def register(subparsers: argparse._SubParsersAction) -> None:
    info = subparsers.add_parser("info", help="show a checkpoint's config and parameter count")
    info.add_argument("checkpoint", help="checkpoint folder or 'minilm'")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=run_info)

    embed = subparsers.add_parser("embed", help="sentence embeddings (mean pooling) and their "
                                                "cosine-similarity matrix")
    embed.add_argument("sentences", nargs="*", help="sentences (or --input FILE, one per line)")
    embed.add_argument("--model", default="minilm")
    embed.add_argument("--input", help="file with one sentence per line")
    embed.add_argument("--output", help="write embeddings as JSONL (one vector per sentence)")
    embed.set_defaults(func=run_embed)

    attention = subparsers.add_parser("attention", help="attention heatmaps as a PNG")
    attention.add_argument("checkpoint")
    attention.add_argument("text")
    attention.add_argument("--pair", help="second sentence (segment B)")
    attention.add_argument("--layer", type=non_negative_int, help="only this layer (0-based)")
    attention.add_argument("--head", type=non_negative_int, help="only this head (0-based; needs --layer)")
    attention.add_argument("-o", "--output", required=True, help="PNG file to write")
    attention.set_defaults(func=run_attention)

    fill = subparsers.add_parser("fill-mask", help="top-k predictions for each [MASK]")
    fill.add_argument("checkpoint")
    fill.add_argument("text", nargs="+", help="text(s) containing [MASK]")
    fill.add_argument("-k", "--top-k", type=positive_int, default=5)
    fill.add_argument("--json", action="store_true")
    fill.set_defaults(func=run_fill_mask)


def run_info(args: argparse.Namespace) -> int:
    from plmkit.models.bert import BertModel
    from plmkit.models.pretrained import read_checkpoint_config

    folder = resolve_checkpoint(args.checkpoint)
    raw = read_checkpoint_config(folder)
    model_type = raw.get("model_type", "bert")
    if model_type == "bert":
        model = BertModel.from_pretrained(folder)
        parameters = model.num_parameters()
    else:
        from plmkit.models.pretrained import load_state_dict

        parameters = sum(t.numel() for t in load_state_dict(folder).values())
    files = sorted(p.name for p in folder.iterdir())
    summary = {"path": str(folder), "model_type": model_type,
               "architectures": raw.get("architectures"), "parameters": parameters,
               "files": files, "config": raw}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{folder}\n  type: {model_type}  architectures: {', '.join(raw.get('architectures') or [])}")
    print(f"  parameters: {parameters:,} ({parameters / 1e6:.1f}M)")
    keys = ["num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size",
            "vocab_size", "max_position_embeddings", "n_layer", "n_embd", "n_head", "d_model"]
    print("  " + "  ".join(f"{k}={raw[k]}" for k in keys if k in raw))
    print(f"  files: {', '.join(files)}")
    return 0


def _read_sentences(args: argparse.Namespace) -> list[str]:
    sentences = list(args.sentences)
    if args.input:
        from plmkit._io import read_text_file

        sentences += [line.strip() for line in read_text_file(args.input).splitlines()
                      if line.strip()]
    if not sentences:
        raise PlmError("no sentences given (pass them as arguments or --input FILE)",
                       field="sentences")
    return sentences


def run_embed(args: argparse.Namespace) -> int:
    from plmkit.pipelines.embed import EmbeddingPipeline, cosine_matrix

    check_output_file(args.output)
    sentences = _read_sentences(args)
    embedder = EmbeddingPipeline(resolve_checkpoint(args.model))
    vectors = embedder(sentences)
    if args.output:
        from plmkit._io import atomic_write

        with atomic_write(args.output) as handle:
            for sentence, vector in zip(sentences, vectors.tolist()):
                handle.write(json.dumps({"text": sentence, "embedding": vector}) + "\n")
        print(f"wrote {len(sentences)} embeddings of size {vectors.size(1)} to {args.output}")
    print(format_similarity(sentences, cosine_matrix(vectors).tolist()))
    return 0


def format_similarity(sentences: list[str], matrix: list[list[float]]) -> str:
    labels = [f"[{i}]" for i in range(len(sentences))]
    lines = ["cosine similarity"]
    lines += [f"  {label} {sentence}" for label, sentence in zip(labels, sentences)]
    lines.append("       " + " ".join(f"{label:>6}" for label in labels))
    for label, row in zip(labels, matrix):
        lines.append(f"  {label:>4} " + " ".join(f"{value:6.3f}" for value in row))
    return "\n".join(lines)


def run_attention(args: argparse.Namespace) -> int:
    import torch

    from plmkit.downstream import load_tokenizer
    from plmkit.models.bert import BertModel

    check_output_file(args.output)
    folder = resolve_checkpoint(args.checkpoint)
    if not args.text.strip():
        raise PlmError("empty text", field="text")
    if args.head is not None and args.layer is None:
        raise PlmError("--head needs --layer", field="head")
    tokenizer = load_tokenizer(folder)
    model = BertModel.from_pretrained(folder)
    encoding = tokenizer.encode(args.text, text_pair=args.pair,
                                max_length=min(64, model.config.max_position_embeddings))
    with torch.no_grad():
        out = model(torch.tensor([encoding.ids]), token_type_ids=torch.tensor([encoding.type_ids]),
                    output_attentions=True)
    attentions = torch.stack([a[0] for a in out.attentions])  # (layers, heads, L, L)
    layers = range(attentions.size(0)) if args.layer is None else [args.layer]
    for layer in layers:
        if not 0 <= layer < attentions.size(0):
            raise PlmError(f"layer {layer} out of range 0..{attentions.size(0) - 1}", field="layer")
    heads = range(attentions.size(1)) if args.head is None else [args.head]
    for head in heads:
        if not 0 <= head < attentions.size(1):
            raise PlmError(f"head {head} out of range 0..{attentions.size(1) - 1}", field="head")
    path = plot_attention(attentions, encoding.tokens, list(layers), list(heads), Path(args.output))
    print(f"wrote {path} ({len(list(layers))} layer(s) × {len(list(heads))} head(s), "
          f"{len(encoding.tokens)} tokens)")
    return 0


def plot_attention(attentions, tokens: list[str], layers: list[int], heads: list[int],
                   output: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from plmkit._io import atomic_write

    _use_cjk_font_if_any()
    rows, cols = len(layers), len(heads)
    single = rows * cols == 1
    size = max(4.0, 0.32 * len(tokens)) if single else 2.0
    figure, axes = plt.subplots(rows, cols, figsize=(size * cols + 1, size * rows + 1),
                                squeeze=False)
    for r, layer in enumerate(layers):
        for c, head in enumerate(heads):
            axis = axes[r][c]
            axis.imshow(attentions[layer, head].numpy(), cmap="viridis", vmin=0.0, vmax=1.0)
            axis.set_xticks([])
            axis.set_yticks([])
            if single or r == rows - 1 and rows * cols <= 16:
                axis.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=7)
            if single or c == 0 and rows * cols <= 16:
                axis.set_yticks(range(len(tokens)), tokens, fontsize=7)
            if r == 0 or single:
                axis.set_title(f"head {head}", fontsize=8)
            if c == 0:
                axis.set_ylabel(f"layer {layer}", fontsize=8)
    figure.suptitle("attention (rows: queries, columns: keys)  " + " ".join(tokens)[:150],
                    fontsize=9)
    figure.tight_layout()
    with atomic_write(output, "wb") as handle:
        figure.savefig(handle, format="png", dpi=100)
    plt.close(figure)
    return output


def _use_cjk_font_if_any() -> None:
    """Chinese tokens need a CJK font; use one when the system has it."""
    import matplotlib
    from matplotlib import font_manager

    names = {font.name for font in font_manager.fontManager.ttflist}
    for candidate in ("Noto Sans CJK SC", "WenQuanYi Zen Hei", "AR PL UMing CN", "Droid Sans Fallback"):
        if candidate in names:
            matplotlib.rcParams["font.sans-serif"] = [candidate, "DejaVu Sans"]
            return


def run_fill_mask(args: argparse.Namespace) -> int:
    from plmkit.pipelines.fill_mask import FillMaskPipeline

    if args.top_k < 1:
        raise PlmError("--top-k must be at least 1", field="top_k")
    pipeline = FillMaskPipeline(resolve_checkpoint(args.checkpoint), top_k=args.top_k)
    for text in args.text:
        results = pipeline(text)
        if args.json:
            print(json.dumps({"text": text, "masks": [[vars(p) for p in preds]
                                                      for preds in results]}, ensure_ascii=False))
            continue
        print(text)
        for index, predictions in enumerate(results):
            shown = "  ".join(f"{p.token} ({p.score:.3f})" for p in predictions)
            print(f"  [MASK]#{index + 1}: {shown}")
    sys.stdout.flush()
    return 0
