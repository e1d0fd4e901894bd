"""plmkit fine-tuning vs Hugging Face + a plain PyTorch loop: same weights, data, recipe, seed.

Both sides start from the real all-MiniLM-L6-v2 weights, read the same training and dev rows,
and use the same recipe: AdamW (no decay on biases and LayerNorm), linear warm-up then decay,
gradient clipping at 1.0, dynamic padding, the same batch size, learning rate, epochs, maximum
length and seed, dev evaluation after every epoch and the best epoch reported. What differs is
only the code: plmkit's ``finetune`` (tokenizer, featurisers, the one Trainer with
length-grouped batches, checkpoints of the best epoch) against ``transformers``'
``BertForSequenceClassification`` + ``BertTokenizerFast`` driven by a 30-line loop.

Families: single-sentence classification (polarity) and sentence pairs (WiC). Goal: dev accuracy
within 1 point; the wall-time ratio is printed (plmkit's includes writing its checkpoints).
By default the HF loop walks the training rows in plmkit's own epoch order (``--order same``:
the same seeded, length-grouped batches), so batch order is not a source of difference;
``--order random`` gives it its own permutation instead. Dropout masks and the fresh
classifier's initial weights still come from each side's own random stream.

    python benchmarks/finetune_vs_hf.py                # full polarity + WiC subset
    python benchmarks/finetune_vs_hf.py --quick        # a couple of minutes
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, table  # noqa: E402

FAMILIES = {
    # family: (dataset function, task, text columns)
    "polarity": ("polarity", "classify", ("text",)),
    "wic": ("wic", "pair", ("text_a", "text_b")),
}


def read_rows(path: Path, columns: tuple[str, ...]) -> list[tuple[tuple[str, ...], str]]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return [(tuple(row[c] for c in columns), row["label"]) for row in csv.DictReader(handle)]


def subset(rows: list, limit: int, seed: int) -> list:
    if not limit or limit >= len(rows):
        return rows
    keep = sorted(random.Random(seed).sample(range(len(rows)), limit))
    return [rows[i] for i in keep]


def write_rows(path: Path, rows: list, columns: tuple[str, ...]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*columns, "label"])
        for texts, label in rows:
            writer.writerow([*texts, label])
    return path


# ------------------------------------------------------------------------------- plmkit
def run_plmkit(model_dir: Path, task: str, train: Path, dev: Path, args, work: Path) -> dict:
    from plmkit.training.finetune import FinetuneConfig, TaskSettings, finetune

    torch.manual_seed(args.seed)
    started = time.perf_counter()
    result = finetune(FinetuneConfig(
        task=task, model=str(model_dir), train=str(train), dev=str(dev),
        output_dir=str(work / f"plmkit-{task}"), epochs=args.epochs, batch_size=args.batch_size,
        eval_batch_size=64, learning_rate=args.lr, warmup_ratio=args.warmup_ratio,
        weight_decay=0.01, seed=args.seed, progress=False, plot=False, device="cpu",
        settings=TaskSettings(task=task, max_length=args.max_length)))
    seconds = time.perf_counter() - started
    from plmkit.training.reporting import read_metrics

    curve = [r["eval_accuracy"] for r in read_metrics(work / f"plmkit-{task}" / "metrics.jsonl")
             if "eval_accuracy" in r]
    return {"accuracy": result.dev_metrics["accuracy"], "seconds": seconds,
            "steps": result.global_step, "curve": curve}


# ------------------------------------------------------------------------------- HF + loop
def run_hf(model_dir: Path, train_rows: list, dev_rows: list, args) -> dict:
    import transformers
    from transformers import BertForSequenceClassification, BertTokenizerFast

    transformers.logging.set_verbosity_error()

    torch.manual_seed(args.seed)
    started = time.perf_counter()
    labels = sorted({label for _, label in train_rows}, key=_numeric_first)
    label2id = {label: i for i, label in enumerate(labels)}
    tokenizer = BertTokenizerFast.from_pretrained(model_dir)
    model = BertForSequenceClassification.from_pretrained(
        model_dir, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id)

    def encode(rows):
        texts = [t for t, _ in rows]
        first = [t[0] for t in texts]
        second = [t[1] for t in texts] if len(texts[0]) > 1 else None
        encoded = tokenizer(first, second, truncation=True, max_length=args.max_length)
        return [({k: encoded[k][i] for k in ("input_ids", "token_type_ids", "attention_mask")},
                 label2id[label]) for i, (_, label) in enumerate(rows)]

    train, dev = encode(train_rows), encode(dev_rows)

    def batches(items, size, shuffle, epoch):
        order = list(range(len(items)))
        if shuffle and args.order == "same":
            # plmkit's own epoch order (seeded permutation, length-grouped batches), so both
            # sides see the same examples in the same batches and only the code differs.
            from plmkit.data.collate import Batches

            lengths = [len(f["input_ids"]) for f, _ in items]
            order = Batches(items, size, list, seed=args.seed, lengths=lengths).order(epoch)
            order = order.tolist()
        elif shuffle:
            generator = torch.Generator().manual_seed(args.seed + epoch)
            order = torch.randperm(len(items), generator=generator).tolist()
        for start in range(0, len(order), size):
            chosen = [items[i] for i in order[start:start + size]]
            padded = tokenizer.pad([f for f, _ in chosen], return_tensors="pt")
            yield padded, torch.tensor([label for _, label in chosen])

    no_decay = ("bias", "LayerNorm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)],
         "weight_decay": 0.01},
        {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)],
         "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=args.lr)
    total = math.ceil(len(train) / args.batch_size) * math.ceil(args.epochs)
    warmup = int(args.warmup_ratio * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: step / max(1, warmup) if step < warmup
        else max(0.0, (total - step) / max(1, total - warmup)))
    best = 0.0
    steps = 0
    curve: list[float] = []
    for epoch in range(math.ceil(args.epochs)):
        model.train()
        for inputs, labels_batch in batches(train, args.batch_size, True, epoch):
            loss = model(**inputs, labels=labels_batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            steps += 1
        model.eval()
        correct = 0
        with torch.no_grad():
            for inputs, labels_batch in batches(dev, 64, False, 0):
                correct += int((model(**inputs).logits.argmax(-1) == labels_batch).sum())
        best = max(best, correct / len(dev))
        curve.append(correct / len(dev))
    return {"accuracy": best, "seconds": time.perf_counter() - started, "steps": steps,
            "curve": curve}


def _curve(values: list[float]) -> str:
    return " ".join(f"{100 * v:.2f}" for v in values)


def _numeric_first(label: str):
    try:
        return (0, float(label), "")
    except ValueError:
        return (1, 0.0, label)


# ------------------------------------------------------------------------------- main
def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    names = [r["family"] for r in rows]
    x = np.arange(len(rows))
    left.bar(x - 0.2, [100 * r["plmkit_acc"] for r in rows], 0.4, label="plmkit")
    left.bar(x + 0.2, [100 * r["hf_acc"] for r in rows], 0.4, label="HF + loop")
    left.set_xticks(x, names)
    left.set_ylabel("dev accuracy (%)")
    left.legend()
    right.bar(x - 0.2, [r["plmkit_s"] for r in rows], 0.4, label="plmkit")
    right.bar(x + 0.2, [r["hf_s"] for r in rows], 0.4, label="HF + loop")
    right.set_xticks(x, names)
    right.set_ylabel("wall time (s)")
    right.legend()
    fig.suptitle("Fine-tuning MiniLM: plmkit vs transformers (same recipe)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def warm_up() -> None:
    """Pay the one-off import costs before any clock starts: torch's first optimizer imports
    torch._dynamo (≈10 s on a busy 2-core machine), which would otherwise be charged to
    whichever side runs first."""
    import transformers  # noqa: F401

    torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="polarity,wic")
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--warmup-ratio", type=float, default=0.1)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--max-train", type=int, default=4000, help="0 = all")
    parser.add_argument("--max-dev", type=int, default=0, help="0 = all")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--order", choices=("same", "random"), default="same",
                        help="HF loop's batch order: plmkit's (same examples per batch, the "
                             "default) or its own random permutation")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0 = default; 1 is steadier on a busy machine)")
    parser.add_argument("--quick", action="store_true", help="800 train / 200 dev rows, 1 epoch")
    parser.add_argument("--output", default="runs/benchmarks")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.max_train, args.max_dev, args.epochs = 800, 200, 1
    import plmkit.datasets as datasets

    model_dir = datasets.minilm_dir()
    warm_up()
    print(f"machine: {machine()}")
    print(f"recipe: epochs={args.epochs} batch={args.batch_size} lr={args.lr} "
          f"warmup={args.warmup_ratio} max_length={args.max_length} seed={args.seed}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for family in args.families.split(","):
            dataset, task, columns = FAMILIES[family]
            splits = getattr(datasets, dataset)()
            train_rows = subset(read_rows(splits["train"], columns), args.max_train, args.seed)
            dev_rows = subset(read_rows(splits["dev"], columns), args.max_dev, args.seed)
            train = write_rows(work / f"{family}-train.csv", train_rows, columns)
            dev = write_rows(work / f"{family}-dev.csv", dev_rows, columns)
            print(f"{family}: {len(train_rows)} train / {len(dev_rows)} dev rows", flush=True)
            ours = run_plmkit(model_dir, task, train, dev, args, work)
            print(f"  plmkit   acc={ours['accuracy']:.4f}  {ours['seconds']:.0f}s  "
                  f"per epoch {_curve(ours['curve'])}", flush=True)
            theirs = run_hf(model_dir, train_rows, dev_rows, args)
            print(f"  HF+loop  acc={theirs['accuracy']:.4f}  {theirs['seconds']:.0f}s  "
                  f"per epoch {_curve(theirs['curve'])}", flush=True)
            rows.append({"family": family, "train": len(train_rows), "dev": len(dev_rows),
                         "plmkit_acc": ours["accuracy"], "hf_acc": theirs["accuracy"],
                         "diff_points": 100 * (ours["accuracy"] - theirs["accuracy"]),
                         "plmkit_s": ours["seconds"], "hf_s": theirs["seconds"],
                         "time_ratio": ours["seconds"] / theirs["seconds"],
                         "steps": ours["steps"], "plmkit_curve": ours["curve"],
                         "hf_curve": theirs["curve"]})
    print()
    print(table(rows, ["family", "train", "dev", "plmkit_acc", "hf_acc", "diff_points",
                       "plmkit_s", "hf_s", "time_ratio", "steps"]))
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    plot(rows, output / "finetune_vs_hf.png")
    (output / "finetune_vs_hf.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"\nwrote {output / 'finetune_vs_hf.png'} and finetune_vs_hf.json")


if __name__ == "__main__":
    main()
