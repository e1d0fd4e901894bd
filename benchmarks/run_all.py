"""Run every benchmark once, one after the other, and save their reports under runs/bench/.

    python benchmarks/run_all.py [--only NAME ...]

Each benchmark compares plmkit side by side with its anchor in the same run and prints ratios.
Run on an otherwise idle machine: CPU timings are only comparable within one run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
BENCHMARKS = {
    "tokenizer": ["tokenizer_speed.py"],
    "bert-inference": ["bert_inference.py"],
    "pretrain": ["pretrain.py"],
    "finetune": ["finetune_vs_hf.py"],
    "pretraining-pays": ["pretraining_pays.py", "--quick"],
    "transformer": ["transformer_vs_torch.py"],
    "gpt": ["gpt_vs_nanogpt.py"],
    "kv-cache": ["kv_cache_speed.py"],
    "word2vec": ["word2vec_vs_gensim.py"],
    "ptb": ["ptb_perplexity.py"],
    "allocator": ["allocator.py"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS))
    parser.add_argument("--output", default="runs/bench")
    args = parser.parse_args()
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    failed = []
    for name in args.only or list(BENCHMARKS):
        script, *extra = BENCHMARKS[name]
        if not (HERE / script).exists():
            print(f"== {name}: {script} not present, skipped")
            continue
        print(f"\n== {name}: {script} {' '.join(extra)}", flush=True)
        start = time.perf_counter()
        result = subprocess.run([sys.executable, str(HERE / script), *extra],
                                capture_output=True, text=True)
        report = result.stdout + ("\n" + result.stderr[-3000:] if result.returncode else "")
        (output / f"{name}.txt").write_text(report)
        print(report.rstrip())
        print(f"-- {name}: exit {result.returncode}, {time.perf_counter() - start:.0f} s")
        if result.returncode:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
