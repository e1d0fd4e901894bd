"""Inference runtimes side by side: Hugging Face, plmkit (fp32, bf16, compiled, dynamic int8) and
ONNX Runtime (fp32, int8), same real sentences, same batches, interleaved.

    python benchmarks/inference_runtimes.py [--rounds 20] [--skip-base] [--batches 1,16]

MiniLM (real weights) and a BERT-base-shaped encoder (random weights: speed does not depend on
them), batch 1 and batch 16 of movie-review sentences (the polarity dev set, cut at 128 tokens,
each batch padded to its longest). Every variant runs the same inputs in turn, round after round
(``common.interleaved``), and the table gives the median seq/s, the p50/p99 latency (batch 1),
the ratio to HF fp32, the achieved GFLOP/s and the share of the measured peak of the precision the
variant computes in (fp32, bf16 or int8 GEMM peaks measured here first), and the largest
difference from plmkit fp32's output over real tokens. Run it alone on an idle machine.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import interleaved, machine, matmul_peak, percentile, table  # noqa: E402

from plmkit.export.runtime import dynamic_int8  # noqa: E402
from plmkit.models.bert import BertConfig, BertModel  # noqa: E402


def forward_flops(config: BertConfig, mask: torch.Tensor) -> float:
    """Multiply-adds × 2 of an encoder forward over the real tokens: the linear maps (Q, K, V,
    W^O, the two FFN layers) per token, plus the attention scores and context per pair."""
    h, inner, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    tokens = float(mask.sum())
    pairs = float((mask.sum(1) ** 2).sum())
    return 2 * layers * (tokens * (4 * h * h + 2 * h * inner) + 2 * pairs * h)


# ----------------------------------------------------------------------------- inputs
def review_batches(tokenizer, batch: int, max_length: int = 128, longest: bool = False
                   ) -> dict[str, torch.Tensor]:
    """The first ``batch`` polarity dev reviews (``longest``: the longest ``batch`` of them), cut at
    ``max_length`` tokens and padded to the longest of the batch."""
    from plmkit.datasets import polarity

    with open(polarity()["dev"], encoding="utf-8") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)]
    if longest:
        encoded = sorted((tokenizer.encode(text, max_length=max_length).ids for text in texts),
                         key=len, reverse=True)[:batch]
    else:
        encoded = [tokenizer.encode(text, max_length=max_length).ids for text in texts[:batch]]
    length = max(map(len, encoded))
    ids = torch.zeros(batch, length, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, pieces in enumerate(encoded):
        ids[row, :len(pieces)] = torch.tensor(pieces)
        mask[row, :len(pieces)] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


# ----------------------------------------------------------------------------- variants
def variants(ours: BertModel, hf, onnx_fp32, onnx_int8, inputs: dict[str, torch.Tensor],
             compile_: bool) -> dict[str, tuple]:
    """name → (function returning the last hidden state, precision it computes in)."""
    ids, mask, types = inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"]
    bf16 = torch.autocast("cpu", dtype=torch.bfloat16)
    dynamic = dynamic_int8(ours)  # what `--runtime torch-int8` runs

    def hf_call():
        return hf(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state

    def hf_bf16():
        with bf16:
            return hf_call()

    def plm_bf16():
        with bf16:
            return ours(ids, mask, types).last_hidden_state

    table_ = {
        "HF fp32 (sdpa)": (hf_call, "fp32"),
        "HF bf16": (hf_bf16, "bf16"),
        "plmkit fp32": (lambda: ours(ids, mask, types).last_hidden_state, "fp32"),
        "plmkit bf16": (plm_bf16, "bf16"),
        "PyTorch dynamic int8": (lambda: dynamic(ids, mask, types).last_hidden_state, "int8"),
        "ORT fp32": (lambda: onnx_fp32(ids, mask, types).last_hidden_state, "fp32"),
        "ORT int8": (lambda: onnx_int8(ids, mask, types).last_hidden_state, "int8"),
    }
    if compile_:
        fast = torch.compile(ours, dynamic=False)
        table_["plmkit compiled fp32"] = (lambda: fast(ids, mask, types).last_hidden_state,
                                          "fp32")
    return table_


def measure(name: str, ours: BertModel, hf, folder: Path, inputs, rounds: int, peaks: dict,
            compile_: bool) -> list[dict]:
    from plmkit.export.runtime import OnnxModel

    onnx_fp32, onnx_int8 = OnnxModel(folder / "fp32"), OnnxModel(folder / "int8")
    table_ = variants(ours, hf, onnx_fp32, onnx_int8, inputs, compile_)
    mask = inputs["attention_mask"]
    with torch.inference_mode():
        reference = table_["plmkit fp32"][0]().float()
        keep = mask.bool()
        difference = {k: float((f().float() - reference)[keep].abs().max())
                      for k, (f, _) in table_.items()}
        times = interleaved({k: f for k, (f, _) in table_.items()}, rounds=rounds)
    batch = mask.shape[0]
    flops = forward_flops(ours.config, mask)
    hf_median = statistics.median(times["HF fp32 (sdpa)"])
    rows = []
    for label, (_, precision) in table_.items():
        median = statistics.median(times[label])
        peak = peaks.get(precision)
        rows.append({"model": name, "batch": batch, "variant": label, "seq/s": batch / median,
                     "× HF fp32": hf_median / median,
                     "p50 ms": 1000 * percentile(times[label], 0.5) if batch == 1 else None,
                     "p99 ms": 1000 * percentile(times[label], 0.99) if batch == 1 else None,
                     "GFLOP/s": flops / median / 1e9,
                     "% of peak": 100 * flops / median / 1e9 / peak if peak else None,
                     "max |Δ|": difference[label]})
    return rows


def prepare(ours: BertModel, folder: Path, tokenizer_folder: Path | None) -> None:
    """Our encoder exported twice: ONNX fp32 and ONNX int8."""
    from plmkit.export.onnx import export_onnx

    source = folder / "model"
    ours.save_pretrained(source)
    if tokenizer_folder is not None:
        (source / "vocab.txt").write_bytes((tokenizer_folder / "vocab.txt").read_bytes())
    export_onnx(source, folder / "fp32")
    export_onnx(source, folder / "int8", quantize="int8")


def hf_encoder(folder_or_config):
    import transformers

    if isinstance(folder_or_config, BertConfig):
        config = transformers.BertConfig(**{k: v for k, v in vars(folder_or_config).items()
                                            if k not in ("id2label", "label2id",
                                                         "layer_norm_position", "use_bias")})
        config._attn_implementation = "sdpa"
        return transformers.BertModel(config).eval()
    return transformers.BertModel.from_pretrained(folder_or_config,
                                                  attn_implementation="sdpa").eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--skip-base", action="store_true")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--batches", default="1,16", help="sentences a batch, comma-separated")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's malloc as it is (default: keep freed memory, as "
                             "the plm command does, for every variant alike)")
    args = parser.parse_args()
    if not args.default_malloc:
        from plmkit.runtime import keep_freed_memory

        keep_freed_memory()
    print(machine() + (", glibc malloc as it is" if args.default_malloc else ""))
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16),
             "int8": matmul_peak(torch.int8)}
    print("measured peaks (GFLOP/s, one 1024² matmul): " + ", ".join(
        f"{k} {v:.0f}" if v else f"{k} n/a" for k, v in peaks.items()))
    from plmkit.datasets import minilm_dir
    from plmkit.tokenization import WordPieceTokenizer

    minilm = minilm_dir()
    tokenizer = WordPieceTokenizer.from_pretrained(minilm)
    models = [("MiniLM", BertModel.from_pretrained(minilm).eval(), hf_encoder(minilm))]
    if not args.skip_base:
        config = BertConfig(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        torch.manual_seed(0)
        base = BertModel(config).eval()
        hf = hf_encoder(config)
        hf.load_state_dict(base.state_dict(), strict=False)
        models.append(("BERT-base shape", base, hf))
    rows = []
    for name, ours, hf in models:
        with tempfile.TemporaryDirectory() as scratch:
            prepare(ours, Path(scratch), minilm)
            for batch in (int(b) for b in args.batches.split(",")):
                inputs = review_batches(tokenizer, batch)
                rows += measure(name, ours, hf, Path(scratch), inputs, args.rounds, peaks,
                                args.compile)
                print(f"{name}, batch {batch}: done", flush=True)
    print(table(rows, ["model", "batch", "variant", "seq/s", "× HF fp32", "p50 ms", "p99 ms",
                       "GFLOP/s", "% of peak", "max |Δ|"]))


if __name__ == "__main__":
    main()
