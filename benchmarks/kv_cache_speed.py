"""KV-cache speed-up of GPT generation on CPU, and plmkit vs Hugging Face generate, one run.

For each model size: greedy generation of N new tokens from a prompt of P tokens,
(a) plmkit with the KV cache, (b) plmkit recomputing the whole prefix each step (no cache),
(c) Hugging Face ``GPT2LMHeadModel.generate`` (with its cache) on the same weights.
Checks the three produce the same tokens; prints tokens/s and the ratios.

    python benchmarks/kv_cache_speed.py [--sizes nano,mini,small] [--prompt 32] [--new 128]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, table  # noqa: E402

from plmkit.evaluation.generation import generate  # noqa: E402
from plmkit.models.gpt import GPTLMHeadModel, gpt_config  # noqa: E402


def best_of(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def run_size(size: str, prompt_length: int, new_tokens: int, repeat: int) -> dict:
    import transformers

    torch.manual_seed(0)
    model = GPTLMHeadModel(gpt_config(size, vocab_size=50257, n_positions=1024,
                                      bos_token_id=50256, eos_token_id=50256)).eval()
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        reference = transformers.GPT2LMHeadModel.from_pretrained(folder).eval()
    prompt = torch.randint(0, 50257, (1, prompt_length), generator=torch.Generator().manual_seed(1))

    def ours(use_cache: bool):
        return generate(model, prompt, temperature=0, max_new_tokens=new_tokens,
                        use_cache=use_cache, notify=None)

    def theirs():
        with torch.no_grad():
            return reference.generate(prompt, attention_mask=torch.ones_like(prompt),
                                      max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                      do_sample=False, use_cache=True, pad_token_id=0)

    same = (ours(True).tolist() == ours(False).tolist() == theirs().tolist())
    cached = best_of(lambda: ours(True), repeat)
    uncached = best_of(lambda: ours(False), repeat)
    hf = best_of(theirs, repeat)
    return {"size": size, "params_M": model.num_parameters() / 1e6,
            "cache_tok_s": new_tokens / cached, "no_cache_tok_s": new_tokens / uncached,
            "cache_speedup": uncached / cached, "hf_tok_s": new_tokens / hf,
            "ours_vs_hf": hf / cached, "same_tokens": same}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="nano,mini,small")
    parser.add_argument("--prompt", type=int, default=32)
    parser.add_argument("--new", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# KV cache, greedy, prompt {args.prompt} + {args.new} new tokens; {machine()}")
    rows = [run_size(size, args.prompt, args.new, args.repeat) for size in args.sizes.split(",")]
    print(table(rows, ["size", "params_M", "cache_tok_s", "no_cache_tok_s", "cache_speedup",
                       "hf_tok_s", "ours_vs_hf", "same_tokens"]))


if __name__ == "__main__":
    main()
