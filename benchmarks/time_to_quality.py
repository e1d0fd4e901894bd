"""Time to quality: held-out masked-LM loss against wall-clock minutes, for three recipes on the
same corpus, vocabulary, model size, machine and thread count, one after the other.

    python benchmarks/time_to_quality.py --minutes 60 --sides hf,previous,budget
    python benchmarks/time_to_quality.py --minutes 15 --sides budget --work runs/ttq   # reuses data
    python benchmarks/time_to_quality.py --quick                                       # smoke run

Sides:
  hf        Hugging Face's standard recipe, as ``run_mlm.py`` does it: ``BertForMaskedLM``,
            ``transformers.Trainer``, ``DataCollatorForLanguageModeling`` (15%, 80/10/10) over
            text grouped into 128-token blocks, AdamW with linear decay and its defaults (lr 5e-5,
            no warm-up), in the precision ``--precision auto`` picks here. Its decay is planned
            over the steps a short calibration says the budget holds, so it ends on time too.
  previous  ``plm pretrain`` with today's defaults (MLM + NSP, lr 1e-4, 100 warm-up steps, linear
            over the calibrated step count).
  budget    ``plm pretrain --recipe budget`` (the budget-aware recipe, planned over the clock).

Minutes count from each command's start, data preparation included (both sides tokenise their
text). Every side saves a checkpoint every ``--save-minutes`` (converted to steps by the calibration);
after all runs, one evaluator (plmkit's BertForMaskedLM, so pre-LN checkpoints load too) scores
each checkpoint on the same held-out documents with the same fixed masks: masked-LM loss,
accuracy and top-5 accuracy, beside the frequency guess (the unigram loss, and top-5 of always
guessing the 5 most frequent training tokens). Whole-word fill-mask top-5 on held-out sentences is
``benchmarks/pretrain_quality.py CHECKPOINT``. Output: ``time_to_quality.json``, ``.md`` and ``.png`` in ``--work``. Run it alone on an
idle machine; the header prints the CPU capability and the load.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, table  # noqa: E402

SIZES = {"mini": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                      intermediate_size=1024),
         "small": dict(hidden_size=512, num_hidden_layers=4, num_attention_heads=8,
                       intermediate_size=2048)}
SEQ = 128
HF_BATCH = 32
HELDOUT_EVERY = 50          # every 50th document of the corpus is held out
EVAL_ROWS = 512             # packed 128-token rows of held-out text, masked once with a fixed seed


# ----------------------------------------------------------------------------- shared data
def prepare(work: Path, corpus_name: str, vocab_size: int) -> dict[str, Path]:
    """Train/held-out split by document, one WordPiece vocabulary, the fixed evaluation rows."""
    from plmkit import datasets
    from plmkit.data.corpus import read_documents
    from plmkit.tokenization import WordPieceTokenizer, train_wordpiece

    paths = {"train": work / "train.txt", "heldout": work / "heldout.txt",
             "vocab": work / "vocab", "eval": work / "eval.pt"}
    if all(p.exists() for p in paths.values()):
        return paths
    work.mkdir(parents=True, exist_ok=True)
    source = {"general": datasets.general, "prose": datasets.prose}[corpus_name]()
    documents = list(read_documents([source]))
    train = [d for i, d in enumerate(documents) if i % HELDOUT_EVERY]
    heldout = [d for i, d in enumerate(documents) if not i % HELDOUT_EVERY]
    for name, docs in (("train", train), ("heldout", heldout)):
        paths[name].write_text("".join("\n".join(d) + "\n\n" for d in docs), encoding="utf-8")
    tokenizer = train_wordpiece((s for d in train for s in d), vocab_size=vocab_size,
                                lowercase=True)
    tokenizer.save_pretrained(paths["vocab"])
    tokenizer = WordPieceTokenizer.from_pretrained(paths["vocab"])
    torch.save(evaluation_rows(tokenizer, heldout), paths["eval"])
    print(f"data: {len(train):,} training and {len(heldout):,} held-out documents, "
          f"vocabulary {len(tokenizer.vocab):,}")
    return paths


def evaluation_rows(tokenizer, documents: list[list[str]]) -> dict[str, torch.Tensor]:
    """Packed held-out rows with fixed 15% masks (80/10/10): every side is scored on these."""
    from plmkit.data.pretraining import TokenizedCorpus, iter_packed_instances, mask_tokens
    from plmkit.data.shards import special_token_ids

    corpus = TokenizedCorpus.from_documents([tokenizer.encode_ids(d) for d in documents])
    rows = [r.input_ids for _, r in zip(range(EVAL_ROWS), iter_packed_instances(
        corpus, max_seq_length=SEQ, dupe_factor=1, rng=random.Random(0),
        cls_token_id=tokenizer.cls_token_id, sep_token_id=tokenizer.sep_token_id))]
    rng = np.random.default_rng(0)
    input_ids = torch.full((len(rows), SEQ), tokenizer.pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), SEQ), -100, dtype=torch.long)
    for i, row in enumerate(rows):
        masked, target = mask_tokens(row, vocab_size=len(tokenizer.vocab),
                                     mask_token_id=tokenizer.mask_token_id,
                                     special_ids=special_token_ids(tokenizer), rng=rng,
                                     masked_lm_prob=0.15, max_predictions_per_seq=20)
        input_ids[i, :len(row)] = torch.as_tensor(masked)
        labels[i, :len(row)] = torch.as_tensor(target)
    return {"input_ids": input_ids, "attention_mask": (input_ids != tokenizer.pad_token_id).long(),
            "labels": labels}


# ----------------------------------------------------------------------------- the sides
def run_side(side: str, args: argparse.Namespace, paths: dict[str, Path], steps: int,
             save_every: int) -> dict:
    # one folder per side and budget, so a 60-minute run keeps the 15-minute one's checkpoints
    output = args.work / f"{side}-{args.minutes:g}min"
    if output.exists():
        import shutil

        shutil.rmtree(output)
    started = time.time()
    if side == "hf":
        command = [sys.executable, __file__, "--worker", str(output), "--work", str(args.work),
                   "--size", args.size, "--minutes", str(args.minutes), "--steps", str(steps),
                   "--save-every", str(save_every)]
    else:
        recipe = ["--recipe", "budget"] if side == "budget" else ["--max-steps", str(steps)]
        keep = args.work / "keep-all.toml"
        # every checkpoint kept for the scoring; no evaluation inside the run (the benchmark
        # scores every side's checkpoints itself, and HF's run_mlm evaluates nothing meanwhile)
        keep.write_text("[training]\nkeep_last = 100000\neval_every = 0\n")
        command = [sys.executable, "-m", "plmkit.cli", "pretrain", "--corpus",
                   str(paths["train"]), "--tokenizer", str(paths["vocab"]), "--model-size",
                   args.size, "--max-minutes", str(args.minutes), "--save-every",
                   str(save_every), "--config", str(keep), "--output", str(output),
                   "--no-progress", *recipe]
    print(f"[{side}] {' '.join(command[1:])}", flush=True)
    result = subprocess.run(command, env=os.environ)
    if result.returncode:
        return {"side": side, "failed": result.returncode}
    checkpoints = sorted((p for p in output.glob("checkpoint-*") if p.is_dir()),
                         key=lambda p: int(p.name.split("-")[1]))
    return {"side": side, "seconds": time.time() - started,
            "checkpoints": [{"path": str(p), "step": int(p.name.split("-")[1]),
                             "minutes": (p.stat().st_mtime - started) / 60} for p in checkpoints]}


def hf_worker(output: Path, work: Path, size: str, minutes: float, steps: int,
              save_every: int) -> None:
    """transformers' standard MLM recipe, stopped by a callback when the budget ends."""
    import transformers
    from transformers import (BertConfig, BertForMaskedLM, BertTokenizerFast,
                              DataCollatorForLanguageModeling, Trainer, TrainerCallback,
                              TrainingArguments)

    from plmkit.precision import resolve_precision

    tokenizer = BertTokenizerFast(str(work / "vocab" / "vocab.txt"), do_lower_case=True)
    text = (work / "train.txt").read_text(encoding="utf-8").split()
    ids = tokenizer(" ".join(text), add_special_tokens=False)["input_ids"]  # run_mlm's group_texts
    block = SEQ - 2
    blocks = [[tokenizer.cls_token_id, *ids[i:i + block], tokenizer.sep_token_id]
              for i in range(0, len(ids) - block, block)]
    config = BertConfig(vocab_size=len(tokenizer), max_position_embeddings=512, **SIZES[size])
    model = BertForMaskedLM(config)
    deadline = time.monotonic() + 60 * minutes

    class Budget(TrainerCallback):
        def on_step_end(self, arguments, state, control, **kwargs):
            if time.monotonic() >= deadline:
                control.should_training_stop = True
                control.should_save = True
            return control

    bf16 = resolve_precision("auto", "cpu").precision == "bf16"
    arguments = TrainingArguments(
        output_dir=str(output), max_steps=steps, per_device_train_batch_size=HF_BATCH,
        learning_rate=5e-5, lr_scheduler_type="linear", save_steps=save_every,
        save_total_limit=None, logging_steps=50, report_to=[], use_cpu=True, bf16=bf16,
        dataloader_num_workers=0, seed=42, disable_tqdm=True)
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    trainer = Trainer(model=model, args=arguments, train_dataset=[{"input_ids": b} for b in blocks],
                      data_collator=collator, callbacks=[Budget()])
    trainer.train()
    print(f"transformers {transformers.__version__}: {trainer.state.global_step} steps")


def calibrate(side: str, args: argparse.Namespace, paths: dict[str, Path]) -> float:
    """Optimiser steps per second of ``side``'s own model here (batch 32 × 128, the precision
    ``auto`` picks, median of 10 steps after 5), to plan its step-based schedule and its
    checkpoint spacing over the budget. Each side is calibrated on its own code: Hugging Face's
    dense MLM decoder is several times slower per step than our sparse one, so planning its
    decay over our step count would leave it at two thirds of its learning rate at the end."""
    from plmkit.precision import resolve_precision

    vocab = len((paths["vocab"] / "vocab.txt").read_text(encoding="utf-8").splitlines())
    torch.manual_seed(0)
    batch = HF_BATCH
    if side == "hf":
        import transformers

        model = transformers.BertForMaskedLM(transformers.BertConfig(
            vocab_size=vocab, max_position_embeddings=512, **SIZES[args.size]))
    else:
        from plmkit.models.bert import BertConfig
        from plmkit.training.bert_pretraining import RECIPES, build_bert

        recipe = RECIPES["budget" if side == "budget" else "bert"]
        batch = recipe.data.get("batch_size", HF_BATCH)
        model = build_bert(BertConfig(vocab_size=vocab, **SIZES[args.size], **recipe.model),
                           0, recipe.data.get("objective", "mlm_nsp"))
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(5, vocab, (batch, SEQ))
    labels = torch.where(torch.rand(batch, SEQ) < 0.15, ids, torch.full_like(ids, -100))
    extra = ({"next_sentence_label": torch.zeros(batch, dtype=torch.long)}
             if side == "previous" else {})
    bf16 = resolve_precision("auto", "cpu").precision == "bf16"
    times = []
    for _ in range(15):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, labels=labels, **extra).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - start)
    return 1 / float(np.median(times[5:]))


# ----------------------------------------------------------------------------- evaluation
@torch.no_grad()
def score(checkpoint: Path, rows: dict[str, torch.Tensor]) -> dict[str, float]:
    from plmkit.models.bert import BertForMaskedLM

    model = BertForMaskedLM.from_pretrained(checkpoint).eval()
    losses, correct, top5, count = [], 0, 0, 0
    for start in range(0, len(rows["input_ids"]), 64):
        batch = {k: v[start:start + 64] for k, v in rows.items()}
        out = model(batch["input_ids"], batch["attention_mask"], labels=batch["labels"])
        picked = batch["labels"] != -100
        n = int(picked.sum())
        losses.append(float(out.loss) * n)
        logits = out.prediction_logits  # dense: (batch, length, vocab)
        if logits is not None:
            gold = batch["labels"][picked]
            best = logits[picked].topk(5, dim=-1).indices
            correct += int((best[:, 0] == gold).sum())
            top5 += int((best == gold[:, None]).any(-1).sum())
        count += n
    return {"mlm_loss": sum(losses) / count, "mlm_accuracy": correct / count,
            "mlm_top5": top5 / count}


def frequency_guess(rows: dict[str, torch.Tensor], train_ids: collections.Counter
                    ) -> dict[str, float]:
    """What a model gets for free: the cross-entropy of guessing each masked token by its
    training frequency, and the top-5 accuracy of always guessing the 5 most frequent tokens."""
    total = sum(train_ids.values())
    labels = rows["labels"][rows["labels"] != -100].tolist()
    vocabulary = int(rows["vocab_size"]) if "vocab_size" in rows else len(train_ids)
    # add-one over the whole vocabulary: every id has a probability, and they sum to one
    loss = float(np.mean([-np.log((train_ids[t] + 1) / (total + vocabulary)) for t in labels]))
    frequent = {t for t, _ in train_ids.most_common(5)}
    return {"mlm_loss": loss, "mlm_top5": float(np.mean([t in frequent for t in labels]))}


def report(results: list[dict], guess: dict[str, float], work: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    lines = []
    for result in results:
        points = [(c["minutes"], c["mlm_loss"], c["mlm_accuracy"])
                  for c in result.get("checkpoints", []) if "mlm_loss" in c]
        if not points:
            continue
        minutes, loss, accuracy = zip(*points)
        label = result.get("label", result["side"])
        left.plot(minutes, loss, "o-", label=label, markersize=3)
        right.plot(minutes, accuracy, "o-", label=label, markersize=3)
        lines.append({"side": label, "checkpoints": len(points),
                      "final minutes": minutes[-1], "held-out MLM loss": loss[-1],
                      "MLM accuracy": accuracy[-1], "best loss": min(loss),
                      "top-5": result["checkpoints"][-1]["mlm_top5"]})
    hf = [line for line in lines if line["side"].startswith("hf")]
    reference = hf[0]["final minutes"] if hf else None
    hf_loss = hf[0]["held-out MLM loss"] if hf else None
    for result, line in zip([r for r in results if r.get("checkpoints")], lines):
        reached = [c["minutes"] for c in result["checkpoints"]
                   if hf_loss is not None and c.get("mlm_loss", 1e9) <= hf_loss]
        line["minutes to HF's final loss"] = reached[0] if reached else None
        if reached and reference:
            line["× time to quality"] = reference / reached[0]
    left.axhline(guess["mlm_loss"], color="grey", linestyle="--", label="frequency guess")
    left.set(xlabel="wall-clock minutes", ylabel="held-out masked-LM loss")
    right.set(xlabel="wall-clock minutes", ylabel="held-out masked-LM accuracy")
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(machine(), fontsize=7)
    figure.tight_layout()
    figure.savefig(work / "time_to_quality.png", dpi=120)
    lines.append({"side": "frequency guess", "held-out MLM loss": guess["mlm_loss"],
                  "top-5": guess["mlm_top5"]})
    text = table(lines, ["side", "checkpoints", "final minutes", "held-out MLM loss",
                         "MLM accuracy", "top-5", "best loss", "minutes to HF's final loss",
                         "× time to quality"])
    (work / "time_to_quality.md").write_text(machine() + "\n\n" + text + "\n")
    (work / "time_to_quality.json").write_text(json.dumps(results, indent=2))
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--sides", default="hf,previous,budget")
    parser.add_argument("--size", choices=list(SIZES), default="mini")
    parser.add_argument("--corpus", choices=["general", "prose"], default="general")
    parser.add_argument("--vocab-size", type=int, default=12000)
    parser.add_argument("--save-minutes", type=float, default=3.0)
    parser.add_argument("--work", type=Path, default=Path("runs/time-to-quality"))
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: prose, 0.5 minutes a side, a checkpoint every 0.1 min")
    parser.add_argument("--report-only", action="store_true",
                        help="run no side: redraw the table and PNG from the result-*.json files "
                             "in --work (e.g. results committed from earlier sessions)")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--save-every", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        hf_worker(args.worker, args.work, args.size, args.minutes, args.steps, args.save_every)
        return
    if args.quick:
        args.corpus, args.minutes, args.save_minutes, args.vocab_size = "prose", 0.5, 0.1, 3000
    print(machine())
    paths = prepare(args.work, args.corpus, args.vocab_size)
    rows = torch.load(paths["eval"], weights_only=True)
    for side in ([] if args.report_only else args.sides.split(",")):
        rate = calibrate(side, args, paths)
        steps = max(10, int(rate * 60 * args.minutes))
        save_every = max(1, int(rate * 60 * args.save_minutes))
        print(f"[{side}] calibration: {rate:.3f} steps/s -> {steps:,} steps in "
              f"{args.minutes:g} min, a checkpoint every {save_every} steps", flush=True)
        result = run_side(side, args, paths, steps, save_every)
        result.update(minutes_budget=args.minutes, machine=machine_facts(),
                      calibrated_steps_per_second=rate)
        for checkpoint in result.get("checkpoints", []):
            checkpoint.update(score(Path(checkpoint["path"]), rows))
        (args.work / f"result-{side}-{args.minutes:g}min.json").write_text(
            json.dumps(result, indent=2))
    from plmkit.tokenization import WordPieceTokenizer

    tokenizer = WordPieceTokenizer.from_pretrained(paths["vocab"])
    lines = [line for line in paths["train"].read_text(encoding="utf-8").splitlines() if line]
    train_ids = collections.Counter(i for ids in tokenizer.encode_ids(lines) for i in ids)
    guess = frequency_guess({**rows, "vocab_size": torch.tensor(len(tokenizer.vocab))},
                            train_ids)
    print(f"frequency guess: held-out loss {guess['mlm_loss']:.3f}, top-5 {guess['mlm_top5']:.3f}")
    report(collect_results(args.work), guess, args.work)


def machine_facts() -> dict:
    from plmkit.precision import _cpu_model, cpu_capability, native_cpu_bf16

    return {"cpu": _cpu_model() or "", "capability": cpu_capability(),
            "native_bf16": native_cpu_bf16(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "line": machine()}


def collect_results(work: Path) -> list[dict]:
    """Every side run so far in ``work`` (sides may be run in separate invocations, e.g. one per
    session), on the same processor kind as this run: a side measured on another CPU model or
    capability is left out and named, since minutes on two machines do not compare."""
    here = machine_facts()
    results = []
    for path in sorted(work.glob("result-*.json")):
        result = json.loads(path.read_text())
        facts = result.get("machine", {})
        if (facts.get("cpu"), facts.get("capability")) != (here["cpu"], here["capability"]):
            print(f"left out {path.name}: measured on {facts.get('line')}")
            continue
        result["label"] = f"{result['side']} ({result['minutes_budget']:g} min)"
        results.append(result)
    order = {"hf": 0, "previous": 1, "budget": 2}
    return sorted(results, key=lambda r: (order.get(r["side"], 9), -r["minutes_budget"]))

if __name__ == "__main__":
    main()
