"""glibc's default malloc against freed memory kept (`plmkit.runtime.keep_freed_memory`).

    python benchmarks/allocator.py [--pairs 3] [--rounds 8]

The setting is process-wide, so each side runs in its own process: a child process per side, the
two taking turns ``--pairs`` times, each timing MiniLM (real weights) on polarity dev reviews —
inference in fp32, bf16 autocast and PyTorch's dynamic int8 (``--runtime torch-int8``) at 16 and
64 sentences, the 64 longest reviews (40–73 tokens), and a training step (forward, backward,
fused AdamW) of 32 sentences in fp32 and bf16. Per call: median milliseconds and the minor page
faults it caused (each a 4 KB page the kernel handed over and zeroed); per side: peak resident
memory. Medians over the pairs; the ratio is default / kept. Run it alone.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, table  # noqa: E402
from inference_runtimes import review_batches  # noqa: E402


def child(side: str, rounds: int) -> dict:
    """One side's timings, in this process: ``side`` is ``default`` or ``kept``."""
    import warnings

    from plmkit.datasets import minilm_dir
    from plmkit.export.runtime import dynamic_int8
    from plmkit.models.bert import BertModel
    from plmkit.runtime import keep_freed_memory
    from plmkit.tokenization import WordPieceTokenizer

    warnings.simplefilter("ignore")
    applied = keep_freed_memory() if side == "kept" else False
    folder = minilm_dir()
    tokenizer = WordPieceTokenizer.from_pretrained(folder)
    model = BertModel.from_pretrained(folder).eval()
    int8 = dynamic_int8(model)
    inputs = {"16 sentences": review_batches(tokenizer, 16),
              "64 sentences": review_batches(tokenizer, 64),
              "64 longest (40–73 tokens)": review_batches(tokenizer, 64, longest=True)}
    work = {}
    for name, batch in inputs.items():
        def fp32(batch=batch):
            return model(**batch)

        def bf16(batch=batch):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return model(**batch)

        def dynamic(batch=batch):
            return int8(**batch)
        work.update({f"{name}, fp32": fp32, f"{name}, bf16": bf16, f"{name}, int8": dynamic})
    trained = BertModel.from_pretrained(folder).train()
    optimizer = torch.optim.AdamW(trained.parameters(), lr=1e-6, fused=True)
    step_batch = review_batches(tokenizer, 32)

    def step(precision: str) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = trained(**step_batch).last_hidden_state.float().square().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    results = {}
    with torch.inference_mode():
        results.update(_measure(work, rounds))
    results.update(_measure({"training step, 32 sentences, fp32": lambda: step("fp32"),
                             "training step, 32 sentences, bf16": lambda: step("bf16")},
                            max(3, rounds // 2)))
    return {"applied": applied, "results": results,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _measure(functions: dict, rounds: int) -> dict[str, tuple[float, float]]:
    """name → (median ms, median page faults) over ``rounds`` calls after two warm-up calls."""
    out = {}
    for name, function in functions.items():
        for _ in range(2):
            function()
        times, faults = [], []
        for _ in range(rounds):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            begin = time.perf_counter()
            function()
            times.append(time.perf_counter() - begin)
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        out[name] = (1000 * statistics.median(times), statistics.median(faults))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--child", choices=("default", "kept"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.rounds)))
        return 0
    print(machine())
    runs: dict[str, list[dict]] = {"default": [], "kept": []}
    for pair in range(args.pairs):
        for side in (("default", "kept") if pair % 2 == 0 else ("kept", "default")):
            done = subprocess.run([sys.executable, __file__, "--child", side,
                                   "--rounds", str(args.rounds)],
                                  capture_output=True, text=True, check=True)
            runs[side].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"pair {pair + 1}, {side}: done", flush=True)
    if not all(run["applied"] for run in runs["kept"]):
        print("keep_freed_memory() did not apply here (not glibc, or MALLOC_* set)")
        return 1
    rows = []
    for name in runs["default"][0]["results"]:
        sides = {side: [run["results"][name] for run in runs[side]] for side in runs}
        ms = {side: statistics.median(r[0] for r in sides[side]) for side in sides}
        faults = {side: statistics.median(r[1] for r in sides[side]) for side in sides}
        rows.append({"workload": name, "default ms": ms["default"],
                     "default faults": int(faults["default"]), "kept ms": ms["kept"],
                     "kept faults": int(faults["kept"]),
                     "speed-up": f"{ms['default'] / ms['kept']:.2f}×"})
    print(table(rows, ["workload", "default ms", "default faults", "kept ms", "kept faults",
                       "speed-up"]))
    peak = {side: statistics.median(run["peak_mb"] for run in runs[side]) for side in runs}
    print(f"peak resident memory: default {peak['default']:.0f} MB, kept {peak['kept']:.0f} MB")
    print(f"end: load {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
