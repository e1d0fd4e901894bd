"""BERT pre-training throughput: plmkit vs Hugging Face ``BertForPreTraining``, same batches.

Config (issue 3): mini — L4 H256 A4 I1024, vocab 30522, seq 128, batch 32. Every variant runs on
the same pre-generated batches (real prose through the MiniLM tokenizer when available, 15% masked,
80/10/10), from the same initial weights, for the same number of AdamW steps. By default the variants run in one process, one step each in turn (the
order rotating), and the median step is reported — one-shot figures on these machines vary by
±15%; ``--separate`` runs each in its own process instead (peak RSS per variant). Prints
tokens/s, ratio to HF, model-FLOPs utilisation against a measured matmul peak, and first/last
loss (same curve shape).

    python benchmarks/pretrain.py [--steps 30] [--batch 32] [--seq 128] [--variants ...] [--separate]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, matmul_peak, table  # noqa: E402

MINI = dict(vocab_size=30522, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
            intermediate_size=1024, max_position_embeddings=512)
VARIANTS = {
    "hf-sdpa": "Hugging Face BertForPreTraining, sdpa, fp32",
    "plmkit-dense": "plmkit, MLM decoder on every position (as HF), fp32",
    "plmkit": "plmkit, MLM decoder at masked positions only, fused QKV, fp32",
    "plmkit-bf16": "plmkit as above under bf16 autocast",
    "plmkit-auto": "plmkit as above in what --precision auto chooses on this machine",
    "plmkit-compile": "plmkit as above + torch.compile, fp32",
    "plmkit-torch-dropout": "plmkit as 'plmkit' but with PyTorch's dropout (F.dropout, and "
                            "attention dropout inside SDPA): the loss curve to compare with",
    "plmkit-dense-lookup": "plmkit as 'plmkit' but the tied word embedding's lookup gets a dense "
                           "gradient (vocabulary x hidden zeros, then summed into the decoder's)",
}


def make_batches(count: int, batch: int, seq: int, path: Path) -> None:
    """Masked batches from real text when the prose corpus and tokenizer exist, else random ids."""
    generator = torch.Generator().manual_seed(0)
    ids_source = None
    try:
        from plmkit.datasets import minilm_dir, prose
        from plmkit.tokenization import WordPieceTokenizer

        tokenizer = WordPieceTokenizer.from_pretrained(minilm_dir())
        lines = [l for l in prose().read_text(encoding="utf-8").splitlines() if l.strip()]
        stream = [i for ids in tokenizer.encode_ids(lines[:20000]) for i in ids]
        ids_source = torch.tensor(stream)
    except Exception as exc:  # noqa: BLE001 - a benchmark falls back to synthetic data
        print(f"(random token ids: {exc})")
    batches = []
    for b in range(count):
        if ids_source is not None:
            starts = torch.randint(0, len(ids_source) - seq, (batch,), generator=generator)
            input_ids = torch.stack([ids_source[s: s + seq] for s in starts])
        else:
            input_ids = torch.randint(1000, 30522, (batch, seq), generator=generator)
        input_ids[:, 0], input_ids[:, -1] = 101, 102
        lengths = torch.randint(seq // 2, seq + 1, (batch,), generator=generator)
        lengths[0] = seq
        attention_mask = (torch.arange(seq)[None] < lengths[:, None]).long()
        input_ids = input_ids * attention_mask
        labels = torch.full_like(input_ids, -100)
        chosen = (torch.rand(batch, seq, generator=generator) < 0.15) & attention_mask.bool()
        chosen[:, 0] = False
        labels[chosen] = input_ids[chosen]
        roll = torch.rand(batch, seq, generator=generator)
        masked = input_ids.clone()
        masked[chosen & (roll < 0.8)] = 103
        randoms = torch.randint(1000, 30522, (batch, seq), generator=generator)
        swap = chosen & (roll >= 0.8) & (roll < 0.9)
        masked[swap] = randoms[swap]
        token_type_ids = (torch.arange(seq)[None] >= (lengths[:, None] // 2)).long() * attention_mask
        batches.append({"input_ids": masked, "attention_mask": attention_mask,
                        "token_type_ids": token_type_ids, "labels": labels,
                        "next_sentence_label": torch.randint(0, 2, (batch,), generator=generator)})
    torch.save(batches, path)


def build_step(variant: str):
    """The variant's model, optimiser and one training step (a function of a batch returning
    the loss), and the precision it computes in."""
    torch.manual_seed(0)
    if variant == "hf-sdpa":
        import transformers

        config = transformers.BertConfig(**MINI)
        config._attn_implementation = "sdpa"
        model = transformers.BertForPreTraining(config)
    else:
        from plmkit.models.bert import BertConfig, BertForPreTraining

        import transformers

        reference = transformers.BertForPreTraining(transformers.BertConfig(**MINI))
        model = BertForPreTraining(BertConfig(**MINI), sparse_mlm=variant != "plmkit-dense")
        model.load_checkpoint_state({k: v for k, v in reference.state_dict().items()
                                     if "position_ids" not in k and "token_type_ids" not in k},
                                    source="hf")
        del reference
        if variant == "plmkit-dense-lookup":
            model.bert.embeddings.tied_to_decoder = False
    model.train()
    # fused AdamW on both sides: what each trainer runs by default (plm's build_optimizer, and
    # transformers' Trainer with torch >= 2.8: optim "adamw_torch_fused")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, fused=True)
    run = torch.compile(model) if variant == "plmkit-compile" else model
    precision = "bf16" if variant == "plmkit-bf16" else "fp32"
    if variant == "plmkit-auto":
        from plmkit.precision import resolve_precision

        precision = resolve_precision("auto", "cpu").precision
    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16"
                else contextlib.nullcontext())

    def step(batch):
        with autocast, torch_dropout(variant == "plmkit-torch-dropout"):
            out = run(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                      token_type_ids=batch["token_type_ids"], labels=batch["labels"],
                      next_sentence_label=batch["next_sentence_label"])
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(out.loss.detach())

    return step, precision


@contextlib.contextmanager
def torch_dropout(active: bool):
    """For one step, plmkit's model with PyTorch's own dropout (``F.dropout``, and attention
    dropout inside SDPA): the cheaper CPU mask is switched off where it is decided; the steps of
    other variants, interleaved in this process, keep it."""
    if not active:
        yield
        return
    from plmkit.models import dropout

    cheap = dropout.cheap_mask_applies
    dropout.cheap_mask_applies = lambda states: False
    try:
        yield
    finally:
        dropout.cheap_mask_applies = cheap


def worker(variant: str, batches_path: Path, steps: int) -> dict:
    """One variant in this process: build, train ``steps`` steps, report (with peak RSS)."""
    batches = torch.load(batches_path, weights_only=True)
    step, precision = build_step(variant)
    losses = [step(batches[i % len(batches)]) for i in range(2)]  # warm-up (and compile)
    tokens = 0
    start = time.perf_counter()
    for i in range(steps):
        batch = batches[(i + 2) % len(batches)]
        losses.append(step(batch))
        tokens += int(batch["attention_mask"].sum())
    elapsed = time.perf_counter() - start
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"tokens_per_s": tokens / elapsed, "first_loss": losses[0], "last_loss": losses[-1],
            "mean loss, last 10": sum(losses[-10:]) / len(losses[-10:]), "peak_rss_mb": peak_rss,
            "seconds_per_step": elapsed / steps, "precision": precision}


def interleaved_steps(variants: list[str], batches_path: Path, steps: int) -> dict[str, dict]:
    """Every variant in this process, one training step each in turn (the order rotating each
    round), on the same batch sequence: a slow minute of the machine slows all sides alike. The
    figure is the median step; peak RSS is not per variant here (``--separate`` measures it)."""
    import statistics

    batches = torch.load(batches_path, weights_only=True)
    built = {v: build_step(v) for v in variants}
    losses: dict[str, list[float]] = {v: [] for v in variants}
    for v, (step, _) in built.items():  # warm-up (and compile)
        for i in range(2):
            losses[v].append(step(batches[i % len(batches)]))
    times: dict[str, list[float]] = {v: [] for v in variants}
    for i in range(steps):
        batch = batches[(i + 2) % len(batches)]
        order = variants[i % len(variants):] + variants[:i % len(variants)]
        for v in order:
            begin = time.perf_counter()
            losses[v].append(built[v][0](batch))
            times[v].append(time.perf_counter() - begin)
    tokens = statistics.mean(int(b["attention_mask"].sum()) for b in batches)
    return {v: {"tokens_per_s": tokens / statistics.median(times[v]),
                "seconds_per_step": statistics.median(times[v]),
                "spread (p90/p10)": sorted(times[v])[int(0.9 * (steps - 1))]
                / sorted(times[v])[int(0.1 * (steps - 1))],
                "first_loss": losses[v][0], "last_loss": losses[v][-1],
                "mean loss, last 10": statistics.mean(losses[v][-10:]), "peak_rss_mb": None,
                "precision": built[v][1]} for v in variants}


def profile(variants: list[str], batches_path: Path, steps: int, top: int = 14) -> None:
    """Where a training step spends its time: torch.profiler over ``steps`` steps of each variant
    (after two warm-up steps), the operators with the most self CPU time, side by side. Run it
    with ``ATEN_CPU_CAPABILITY=avx2`` on an AVX-512 machine to see the AVX2 kernels' share."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    batches = torch.load(batches_path, weights_only=True)
    shares: dict[str, dict[str, float]] = {}
    totals: dict[str, float] = {}
    for variant in variants:
        step, _ = build_step(variant)
        for i in range(2):
            step(batches[i % len(batches)])
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            for i in range(steps):
                step(batches[(i + 2) % len(batches)])
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events)
        totals[variant] = total / steps / 1e3
        shares[variant] = {e.key: e.self_cpu_time_total / steps / 1e3 for e in events}
    names = sorted({k for v in shares.values() for k in v},
                   key=lambda k: -max(v.get(k, 0.0) for v in shares.values()))[:top]
    rows = [{"operator": name, **{f"{v} ms/step": shares[v].get(name, 0.0) for v in variants}}
            for name in names]
    rows.append({"operator": "(all, self CPU)", **{f"{v} ms/step": totals[v]
                                                   for v in variants}})
    print(table(rows, ["operator", *(f"{v} ms/step" for v in variants)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30,
                        help="timed steps per variant (the median is reported; default 30)")
    parser.add_argument("--separate", action="store_true",
                        help="each variant in its own process, one after another (peak RSS per "
                             "variant; one-shot figures vary by ±15%% here)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=128)
    # bf16 runs by default only where it is native: on CPUs without AVX512-BF16/AMX (AVX2
    # laptops and cloud CPUs) bf16 matmuls are emulated and a step takes ~40x longer. There the
    # auto row (fp32) is the one a user gets; ask for plmkit-bf16 to see the emulated figure.
    from plmkit.precision import native_cpu_bf16

    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS),
                        default=[v for v in VARIANTS if v != "plmkit-bf16" or native_cpu_bf16()])
    parser.add_argument("--profile", action="store_true",
                        help="instead of timing: torch.profiler's top operators per variant")
    parser.add_argument("--worker", nargs=2, metavar=("VARIANT", "BATCHES"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], Path(args.worker[1]), args.steps)))
        return
    print(machine())
    from plmkit.models.bert import BertConfig, flops_per_token

    precisions = ["fp32"] + (["bf16"] if {"plmkit-bf16", "plmkit-auto"} & set(args.variants)
                             else [])
    peaks = {p: 1e9 * matmul_peak(torch.bfloat16 if p == "bf16" else torch.float32)
             for p in precisions}
    print("measured matmul peak: " + ", ".join(f"{p} {v / 1e9:.1f} GFLOP/s"
                                               for p, v in peaks.items()))
    with tempfile.TemporaryDirectory() as tmp:
        batches_path = Path(tmp) / "batches.pt"
        make_batches(8, args.batch, args.seq, batches_path)
        if args.profile:
            profile(args.variants, batches_path, min(args.steps, 5))
            return
        rows = []
        results: dict[str, dict] = {}
        if not args.separate:
            print(f"interleaved: {args.steps} steps of each variant in turn; median step")
            results = interleaved_steps(args.variants, batches_path, args.steps)
        for variant in args.variants:
            if args.separate:
                result = subprocess.run([sys.executable, __file__, "--steps", str(args.steps),
                                         "--worker", variant, str(batches_path)],
                                        capture_output=True, text=True, env=os.environ)
                if result.returncode:
                    print(f"{variant} failed:\n{result.stderr[-2000:]}")
                    continue
                results[variant] = json.loads(result.stdout.strip().splitlines()[-1])
            data = results[variant]
            sparse = variant not in ("hf-sdpa", "plmkit-dense")
            flops = flops_per_token(BertConfig(**MINI), args.seq, sparse_mlm=sparse)
            dense_flops = flops_per_token(BertConfig(**MINI), args.seq, sparse_mlm=False)
            peak = peaks[data["precision"]] if data["precision"] in peaks else peaks["fp32"]
            rows.append({"variant": variant, **data,
                         "MFU (own FLOPs)": data["tokens_per_s"] * flops / peak,
                         "useful FLOP/s ÷ peak": data["tokens_per_s"] * dense_flops / peak})
    hf = next((r["tokens_per_s"] for r in rows if r["variant"] == "hf-sdpa"), None)
    for row in rows:
        row["× HF"] = row["tokens_per_s"] / hf if hf else None
    fastest = max((r["tokens_per_s"] for r in rows
                   if r["variant"] in ("plmkit", "plmkit-bf16")), default=None)
    for row in rows:
        row["÷ faster of fp32/bf16"] = row["tokens_per_s"] / fastest if fastest else None
    print(table(rows, ["variant", "precision", "tokens_per_s", "× HF", "÷ faster of fp32/bf16",
                       "seconds_per_step", "spread (p90/p10)", "MFU (own FLOPs)",
                       "useful FLOP/s ÷ peak", "peak_rss_mb", "first_loss", "last_loss",
                       "mean loss, last 10"]))
    for name, text in VARIANTS.items():
        print(f"  {name}: {text}")


if __name__ == "__main__":
    main()
