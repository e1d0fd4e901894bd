"""BERT inference speed: plmkit vs Hugging Face (eager and sdpa), same inputs, one run.

MiniLM (real weights, when fetched) and a random BERT-base config, sequence length 128,
fp32 and bf16 autocast. Prints sequences/s and the ratio to HF sdpa; checks outputs agree.

    python benchmarks/bert_inference.py [--batch 16] [--seq 128] [--repeat 5]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, table, time_call  # noqa: E402

from plmkit.models.bert import BertConfig, BertModel  # noqa: E402


def hf_model(folder_or_config, attn: str):
    import transformers

    if isinstance(folder_or_config, BertConfig):
        hf_config = transformers.BertConfig(**{k: v for k, v in vars(folder_or_config).items()
                                               if k not in ("id2label", "label2id")})
        hf_config._attn_implementation = attn
        return transformers.BertModel(hf_config, add_pooling_layer=True).eval()
    return transformers.BertModel.from_pretrained(folder_or_config, attn_implementation=attn).eval()


def synthetic_inputs(vocab_size: int, batch: int, seq: int):
    """Random ids; half the batch padded from 3/4 of the length (12.5% padding)."""
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(1000, vocab_size, (batch, seq), generator=generator)
    attention_mask = torch.ones(batch, seq, dtype=torch.long)
    attention_mask[batch // 2:, seq * 3 // 4:] = 0
    return input_ids, attention_mask, torch.zeros_like(input_ids)


def sentence_inputs(batch: int, seq: int):
    """Real prose sentence pairs, tokenised with MiniLM's vocabulary and padded to ``seq`` — the
    way fixed-shape serving (and HF's ``padding="max_length"``) feeds a model."""
    import random

    from plmkit.datasets import minilm_dir, prose
    from plmkit.tokenization import WordPieceTokenizer

    tokenizer = WordPieceTokenizer.from_pretrained(minilm_dir())
    lines = [line.strip() for line in prose().read_text(encoding="utf-8").splitlines()
             if line.strip()]
    rng = random.Random(0)
    input_ids = torch.zeros(batch, seq, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    token_type_ids = torch.zeros_like(input_ids)
    for row in range(batch):
        encoding = tokenizer.encode(rng.choice(lines), rng.choice(lines), max_length=seq)
        length = len(encoding.ids)
        input_ids[row, :length] = torch.tensor(encoding.ids)
        attention_mask[row, :length] = 1
        token_type_ids[row, :length] = torch.tensor(encoding.type_ids)
    return input_ids, attention_mask, token_type_ids


def run(name: str, ours: BertModel, hf_eager, hf_sdpa, inputs, repeat: int,
        compiled: bool) -> list[dict]:
    input_ids, attention_mask, token_type_ids = inputs
    batch = input_ids.size(0)
    padding = 1 - attention_mask.float().mean().item()
    name = f"{name}, {padding:.0%} pad"
    rows = []
    with torch.inference_mode():
        reference = hf_sdpa(input_ids=input_ids, attention_mask=attention_mask,
                            token_type_ids=token_type_ids).last_hidden_state
        mine = ours(input_ids, attention_mask, token_type_ids).last_hidden_state
        keep = attention_mask.bool()
        difference = (reference - mine)[keep].abs().max().item()
        candidates = [("HF eager", lambda: hf_eager(input_ids=input_ids, attention_mask=attention_mask,
                                                    token_type_ids=token_type_ids)),
                      ("HF sdpa", lambda: hf_sdpa(input_ids=input_ids, attention_mask=attention_mask,
                                                  token_type_ids=token_type_ids)),
                      ("plmkit", lambda: ours(input_ids, attention_mask, token_type_ids))]
        if compiled:
            fast = torch.compile(ours, dynamic=False)
            candidates.append(("plmkit compiled", lambda: fast(input_ids, attention_mask,
                                                               token_type_ids)))
        from plmkit.precision import resolve_precision

        auto = resolve_precision("auto", "cpu").precision
        for precision in ("fp32", "bf16", f"auto={auto}"):
            context = (torch.autocast("cpu", dtype=torch.bfloat16)
                       if precision in ("bf16", "auto=bf16") else contextlib.nullcontext())
            times = {}
            for label, function in candidates:
                def call(function=function):
                    with context:
                        function()
                times[label] = time_call(call, repeat=repeat)
            for label, seconds in times.items():
                rows.append({"model": name, "precision": precision, "impl": label,
                             "seq/s": batch / seconds,
                             "× HF sdpa": times["HF sdpa"] / seconds,
                             "max |Δ| vs HF": difference if label.startswith("plmkit") else None})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--skip-base", action="store_true")
    args = parser.parse_args()
    print(machine())
    rows = []
    try:
        import os

        folder = os.environ.get("MINILM_DIR")
        if folder is None:
            from plmkit.datasets import minilm_dir

            folder = minilm_dir()
        ours = BertModel.from_pretrained(folder)
        eager, sdpa = hf_model(folder, "eager"), hf_model(folder, "sdpa")
        for label, inputs in (("MiniLM random ids", synthetic_inputs(30522, args.batch, args.seq)),
                              ("MiniLM prose pairs", sentence_inputs(args.batch, args.seq))):
            rows += run(label, ours, eager, sdpa, inputs, args.repeat, args.compile)
    except ImportError as exc:
        print(f"MiniLM skipped: {exc}")
    if not args.skip_base:
        config = BertConfig(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        torch.manual_seed(0)
        ours = BertModel(config).eval()
        eager, sdpa = hf_model(config, "eager"), hf_model(config, "sdpa")
        state = {k: v for k, v in ours.state_dict().items()}
        eager.load_state_dict(state, strict=False)
        sdpa.load_state_dict(state, strict=False)
        rows += run("BERT-base (random)", ours, eager, sdpa,
                    synthetic_inputs(config.vocab_size, args.batch, args.seq), args.repeat,
                    args.compile)
    print(table(rows, ["model", "precision", "impl", "seq/s", "× HF sdpa", "max |Δ| vs HF"]))


if __name__ == "__main__":
    main()
