"""Per-sequence attention over packed tokens against the padded, masked kernel, side by side.

    python benchmarks/packed_attention.py [--rounds 20] [--batches 16,64]

MiniLM (real weights) on polarity dev sentences (≤ 128 tokens, each batch padded to its longest),
inference in fp32, bf16 autocast and PyTorch's dynamic int8 (``--runtime torch-int8``), and one
no-dropout training step (forward + backward, bf16 autocast: the budget recipe's setting). Both
sides run the token-wise layers on the packed real tokens; they differ only in attention:
``padded`` scatters Q, K, V into the (batch, length) layout and runs the fused kernel with the
padding mask, ``per sequence`` attends each sequence over its own packed rows
(:func:`plmkit.models.attention.packed_attention`). Interleaved rounds, medians. Run it alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import interleaved, machine, table  # noqa: E402
from inference_runtimes import review_batches  # noqa: E402

from plmkit.export.runtime import dynamic_int8  # noqa: E402
from plmkit.models.attention import MultiHeadAttention  # noqa: E402
from plmkit.models.bert import BertModel  # noqa: E402


def attend_per_sequence(model: torch.nn.Module, on: bool) -> None:
    for module in model.modules():
        if isinstance(module, MultiHeadAttention):
            module.per_sequence = on


def workloads(model: BertModel, int8: torch.nn.Module, inputs: dict) -> dict:
    """name → (model whose attention is switched, call)."""
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    bf16 = torch.autocast("cpu", dtype=torch.bfloat16)

    def infer(m, autocast=False):
        def call():
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16,
                                                          enabled=autocast):
                return m(ids, mask).last_hidden_state
        return call

    def train_step():
        model.train()
        for module in model.modules():  # the budget recipe: no dropout
            if isinstance(module, MultiHeadAttention):
                module.dropout = 0.0
        with bf16:
            states = model(ids, mask).last_hidden_state
        states.float().square().mean().backward()
        model.zero_grad(set_to_none=True)
        model.eval()

    return {"fp32 inference": (model, infer(model)),
            "bf16 inference": (model, infer(model, autocast=True)),
            "int8 inference": (int8, infer(int8)),
            "bf16 train step, no dropout": (model, train_step)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--batches", default="16,64")
    args = parser.parse_args()
    print(machine())
    from plmkit.datasets import minilm_dir
    from plmkit.tokenization import WordPieceTokenizer

    folder = minilm_dir()
    tokenizer = WordPieceTokenizer.from_pretrained(folder)
    model = BertModel.from_pretrained(folder).eval()
    int8 = dynamic_int8(model)
    rows = []
    for batch in (int(b) for b in args.batches.split(",")):
        inputs = review_batches(tokenizer, batch)
        lengths = inputs["attention_mask"].sum(1)
        for name, (target, call) in workloads(model, int8, inputs).items():
            def side(on: bool, target=target, call=call):
                def run():
                    attend_per_sequence(target, on)
                    return call()
                return run
            times = interleaved({"padded": side(False), "per sequence": side(True)},
                                rounds=args.rounds)
            padded, packed = (statistics.median(times[k]) for k in ("padded", "per sequence"))
            rows.append({"batch": f"{batch} × {int(lengths.max())}", "workload": name,
                         "padded ms": 1000 * padded, "per sequence ms": 1000 * packed,
                         "speed-up": padded / packed})
        print(f"batch {batch} ({int(lengths.sum())} real tokens of "
              f"{inputs['attention_mask'].numel()}): done", flush=True)
        attend_per_sequence(model, True)
        attend_per_sequence(int8, True)
    print(table(rows, ["batch", "workload", "padded ms", "per sequence ms", "speed-up"]))


if __name__ == "__main__":
    main()
