"""GPT side by side with nanoGPT, and GPT vs BERT on sentence polarity — one run each, CPU.

**Part ``nanogpt``** (default). nanoGPT's own ``model.py`` is taken from the local mirror of
``karpathy/nanoGPT`` (``git show HEAD:model.py`` into a temporary folder outside the project —
never copied into plmkit) and imported from there. Both models get the same character-level data
(Penn Treebank text, plmkit's CharTokenizer ids), the same shape (n_layer/n_head/n_embd, exact
GELU, no dropout, bias), the same batch (B × block_size), the same step budget, AdamW
(β = 0.9/0.99, weight decay 0.1 on 2-D weights), warm-up + cosine schedule and clipping at 1.0:

* ``nanoGPT``: nanoGPT's model driven by a loop written like its ``train.py`` (random windows
  ``get_batch``, ``get_lr``, clip, step);
* ``plmkit model, same loop``: our GPTLMHeadModel in that very loop (model speed alone);
* ``plmkit Trainer``: our model through the one Trainer with CausalLMTask and TokenBlocks —
  what ``plm train-gpt`` runs (includes the Trainer's logging and its final checkpoint write);
* ``plmkit Trainer, bf16`` (``--precisions fp32,bf16``): the same with ``--precision bf16``
  (bf16 autocast, fp32 master weights). nanoGPT's ``train.py`` has no such path on a CPU — its
  autocast context is ``nullcontext()`` when ``device_type == 'cpu'`` and its fused AdamW is
  CUDA-only — so fp32 with foreach AdamW *is* nanoGPT on this machine; the row shows what the
  toolkit gives on the same hardware, and its loss must match for the speed to count.

Reported: training tokens/s (wall clock of the training loop) and tokens per CPU-second of this
process (less sensitive to other processes on a shared machine, most of all with ``--threads 1``),
their ratios to nanoGPT, and the validation loss of every model after the same number of steps,
all evaluated by the same code on the same held-out blocks. Rounds alternate the order
(A B C, C B A, …) against drift in the machine's load; speeds are medians over rounds. Last, the
two models' forward+backward on one batch, interleaved step by step: the ratio least affected by
a busy machine. On a shared machine, ``--threads 1`` avoids OpenMP threads waiting on each other.

**Part ``polarity``**. GPT (GPT-1 recipe: ``<start> text <extract>``, last-token classifier,
with and without the auxiliary LM loss λ = 0.5) vs BERT (``[CLS] text [SEP]``, pooled [CLS]) on
Pang & Lee polarity (``plmkit.datasets.polarity``), both from scratch at the same size, same
word vocabulary, same steps, batch and learning rate. Prints dev/test accuracy and time.

    python benchmarks/gpt_vs_nanogpt.py [--part both|nanogpt|polarity] [--size micro]
        [--block-size 128] [--batch-size 16] [--steps 300] [--rounds 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, table  # noqa: E402

from plmkit.data.text_lm import (  # noqa: E402
    GPT_TASK_TOKENS, WordTokenizer, classification_batches, encode_classification, gpt_task_input,
    lm_batches, load_lm_data, read_text_label_csv)
from plmkit.models.gpt import (  # noqa: E402
    GPT_SIZES, GPTForSequenceClassification, GPTLMHeadModel, gpt_config)
from plmkit.training import Trainer, TrainingConfig  # noqa: E402
from plmkit.training.causal_lm import CausalLMTask, GPTClassificationTask  # noqa: E402

MIRROR = Path("/work/.mirror/karpathy+nanoGPT/repo")
BETAS = (0.9, 0.99)
WEIGHT_DECAY = 0.1


# --------------------------------------------------------------------------------------------
# nanoGPT, imported from a checkout outside the project
# --------------------------------------------------------------------------------------------
def import_nanogpt(mirror: Path, folder: Path):
    """Write nanoGPT's model.py (HEAD of the mirror) into ``folder`` and import it."""
    if not mirror.exists():
        raise SystemExit(f"no nanoGPT mirror at {mirror}: fetch karpathy/nanoGPT first")
    source = subprocess.run(["git", "--git-dir", str(mirror), "show", "HEAD:model.py"],
                            check=True, capture_output=True, text=True).stdout
    commit = subprocess.run(["git", "--git-dir", str(mirror), "rev-parse", "--short", "HEAD"],
                            check=True, capture_output=True, text=True).stdout.strip()
    path = folder / "nanogpt_model.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("nanogpt_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, commit


def nanogpt_lr(step: int, learning_rate: float, warmup: int, total: int,
               min_lr: float = 0.0) -> float:
    """nanoGPT's get_lr (warm-up, then cosine to min_lr over the run)."""
    if step < warmup:
        return learning_rate * (step + 1) / (warmup + 1)
    ratio = (step - warmup) / max(1, total - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * min(1.0, ratio))) * (learning_rate - min_lr)


def nanogpt_style_loop(model, loss_of, data: np.ndarray, args) -> float:
    """train.py's loop: random windows, lr schedule, clip 1.0, AdamW. Returns seconds."""
    generator = torch.Generator().manual_seed(1337)
    stream = torch.from_numpy(data.astype(np.int64))
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    seen, unique_decay = set(), []
    for p in decay:  # tied weights appear once
        if id(p) not in seen:
            seen.add(id(p))
            unique_decay.append(p)
    optimizer = torch.optim.AdamW([{"params": unique_decay, "weight_decay": WEIGHT_DECAY},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=args.learning_rate, betas=BETAS)

    def get_batch():
        starts = torch.randint(len(stream) - args.block_size, (args.batch_size,),
                               generator=generator)
        x = torch.stack([stream[i: i + args.block_size] for i in starts])
        y = torch.stack([stream[i + 1: i + 1 + args.block_size] for i in starts])
        return x, y

    model.train()
    x, y = get_batch()
    start = time.perf_counter()
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = nanogpt_lr(step, args.learning_rate, args.warmup, args.steps)
        loss = loss_of(model, x, y)
        x, y = get_batch()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        float(loss.detach())  # train.py logs loss.item()
    return time.perf_counter() - start


@torch.no_grad()
def validation_loss(model, loss_of, data: np.ndarray, block_size: int, blocks: int) -> float:
    """Mean loss over the first ``blocks`` non-overlapping blocks of the held-out stream."""
    model.eval()
    stream = torch.from_numpy(data.astype(np.int64))
    count = min(blocks, (len(stream) - 1) // block_size)
    x = torch.stack([stream[i * block_size: (i + 1) * block_size] for i in range(count)])
    y = torch.stack([stream[i * block_size + 1: (i + 1) * block_size + 1] for i in range(count)])
    losses = [float(loss_of(model, x[i: i + 32], y[i: i + 32])) * len(x[i: i + 32])
              for i in range(0, count, 32)]
    model.train()
    return sum(losses) / count


def nano_loss(model, x, y):
    return model(x, y)[1]


def our_loss(model, x, y):
    return model(x, shift_labels=y).loss


def build_nanogpt(module, vocab_size: int, args):
    shape = GPT_SIZES[args.size]
    torch.manual_seed(args.seed)
    config = module.GPTConfig(block_size=args.block_size, vocab_size=vocab_size,
                              n_layer=shape["n_layer"], n_head=shape["n_head"],
                              n_embd=shape["n_embd"], dropout=0.0, bias=True)
    return module.GPT(config)


def build_ours(vocab_size: int, args) -> GPTLMHeadModel:
    torch.manual_seed(args.seed)
    return GPTLMHeadModel(gpt_config(args.size, vocab_size=vocab_size,
                                     n_positions=args.block_size, activation_function="gelu",
                                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))


def run_trainer(model: GPTLMHeadModel, data: np.ndarray, args, output: Path,
                precision: str = "fp32") -> float:
    batches = lm_batches(data, args.block_size, args.batch_size, train=True, seed=args.seed)
    config = TrainingConfig(output_dir=str(output), max_steps=args.steps, precision=precision,
                            learning_rate=args.learning_rate, weight_decay=WEIGHT_DECAY,
                            adam_betas=BETAS, schedule="cosine", warmup_steps=args.warmup,
                            max_grad_norm=1.0, log_every=max(1, args.steps // 5),
                            progress=False, plot=False, seed=args.seed)
    start = time.perf_counter()
    Trainer(model, CausalLMTask(), batches, config).train()
    return time.perf_counter() - start


def part_nanogpt(args) -> None:
    data = load_lm_data("ptb-char", "char")
    train, valid = data.splits["train"], data.splits["valid"]
    vocab = len(data.tokenizer)
    tokens = args.steps * args.batch_size * args.block_size
    with tempfile.TemporaryDirectory(prefix="nanogpt-") as tmp:
        module, commit = import_nanogpt(args.mirror, Path(tmp))
        print(f"# GPT vs nanoGPT ({commit}); PTB characters (vocab {vocab}, "
              f"train {len(train):,} tokens); size {args.size} {GPT_SIZES[args.size]}, "
              f"block {args.block_size}, batch {args.batch_size}, {args.steps} steps, "
              f"lr {args.learning_rate}; {machine()}")
        load = os.getloadavg()[0]
        print(f"# load average at the start: {load:.2f} on {os.cpu_count()} cores"
              + (" — other work is running, timings are noisy" if load > 0.5 else ""),
              flush=True)
        runs = {
            "nanoGPT": lambda: _timed(build_nanogpt(module, vocab, args), nano_loss,
                                      lambda m: nanogpt_style_loop(m, nano_loss, train, args)),
            "plmkit model, same loop": lambda: _timed(
                build_ours(vocab, args), our_loss,
                lambda m: nanogpt_style_loop(m, our_loss, train, args)),
        }
        for precision in args.precisions.split(","):
            name = "plmkit Trainer" + ("" if precision == "fp32" else f", {precision}")
            runs[name] = lambda precision=precision: _timed(
                build_ours(vocab, args), our_loss,
                lambda m: run_trainer(m, train, args, Path(tmp) / "run", precision))
        warm_up(module, vocab, args)
        seconds: dict[str, list[float]] = {name: [] for name in runs}
        cpu_seconds: dict[str, list[float]] = {name: [] for name in runs}
        losses: dict[str, float] = {}
        names = list(runs)
        for round_index in range(args.rounds):
            order = names if round_index % 2 == 0 else names[::-1]
            for name in order:
                model, elapsed, cpu = runs[name]()
                seconds[name].append(elapsed)
                cpu_seconds[name].append(cpu)
                loss = validation_loss(model, nano_loss if name == "nanoGPT" else our_loss,
                                       valid, args.block_size, args.eval_blocks)
                losses.setdefault(name, loss)
                print(f"  round {round_index + 1}: {name}: {tokens / elapsed:,.0f} tokens/s "
                      f"(wall), {tokens / cpu:,.0f} tokens per CPU-second, val loss {loss:.4f}",
                      flush=True)
    reference = statistics.median(seconds["nanoGPT"])
    cpu_reference = statistics.median(cpu_seconds["nanoGPT"])
    rows = []
    for name in names:
        median = statistics.median(seconds[name])
        cpu_median = statistics.median(cpu_seconds[name])
        rows.append({"run": name, "tokens_per_s": tokens / median,
                     "speed_vs_nanoGPT": reference / median,
                     "tokens_per_cpu_s": tokens / cpu_median,
                     "cpu_speed_vs_nanoGPT": cpu_reference / cpu_median,
                     "val_loss": losses[name], "val_bpc": losses[name] / math.log(2)})
    print(table(rows, ["run", "tokens_per_s", "speed_vs_nanoGPT", "tokens_per_cpu_s",
                       "cpu_speed_vs_nanoGPT", "val_loss", "val_bpc"]))
    print("# forward+backward of one batch, the two models interleaved step by step (CPU ms):")
    print(table([interleaved_forward_backward(module, vocab, args)],
                ["nanoGPT_ms", "plmkit_ms", "speed_vs_nanoGPT"]))


def warm_up(module, vocab: int, args) -> None:
    """Pay one-time costs (torch.optim imports torch._dynamo; first-call kernel selection)
    before any clock starts, so the first run timed is not penalised."""
    short = argparse.Namespace(**{**vars(args), "steps": 3})
    stream = np.arange(args.block_size * 4) % vocab
    nanogpt_style_loop(build_nanogpt(module, vocab, args), nano_loss, stream, short)
    nanogpt_style_loop(build_ours(vocab, args), our_loss, stream, short)


def interleaved_forward_backward(module, vocab: int, args, steps: int = 40) -> dict:
    """Model speed alone, robust to load drift: one forward+backward of each model in turn,
    order alternating, timed in CPU seconds; medians of the per-step times."""
    nano, ours = build_nanogpt(module, vocab, args), build_ours(vocab, args)
    batch = torch.randint(0, vocab, (args.batch_size, args.block_size + 1),
                          generator=torch.Generator().manual_seed(0))
    x, y = batch[:, :-1].contiguous(), batch[:, 1:].contiguous()
    pairs = [(nano, nano_loss), (ours, our_loss)]
    times: list[list[float]] = [[], []]
    for step in range(steps + 3):
        order = (0, 1) if step % 2 == 0 else (1, 0)
        for index in order:
            model, loss_of = pairs[index]
            start = time.process_time()
            loss_of(model, x, y).backward()
            if step >= 3:
                times[index].append(time.process_time() - start)
            model.zero_grad(set_to_none=True)
    nano_ms, ours_ms = (statistics.median(t) * 1e3 for t in times)
    return {"nanoGPT_ms": nano_ms, "plmkit_ms": ours_ms, "speed_vs_nanoGPT": nano_ms / ours_ms}


def _timed(model, loss_of, train_call):
    """(model, wall seconds, CPU seconds of this process) of one training run."""
    cpu = time.process_time()
    elapsed = train_call(model)
    return model, elapsed, time.process_time() - cpu


# --------------------------------------------------------------------------------------------
# GPT vs BERT on polarity
# --------------------------------------------------------------------------------------------
def part_polarity(args) -> None:
    from plmkit.datasets.polarity import polarity
    from plmkit.models.bert import BertConfig, BertForSequenceClassification

    files = polarity()
    rows = {split: read_text_label_csv(path) for split, path in files.items()}
    tokenizer = WordTokenizer.build([t for t, _ in rows["train"]], lowercase=True,
                                    min_count=2).with_tokens((*GPT_TASK_TOKENS, "[CLS]", "[SEP]"))
    pad = tokenizer.pad_id
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    max_length = 64

    def gpt_encode(text):
        return gpt_task_input(tokenizer, text, max_length=max_length)

    def bert_encode(text):
        ids = tokenizer.vocab.encode(tokenizer._split(text, True)).tolist()[: max_length - 2]
        return [cls_id, *ids, sep_id]

    shape = dict(layers=4, hidden=128, heads=4)
    print(f"# GPT vs BERT on Pang & Lee polarity (train {len(rows['train'])}, dev "
          f"{len(rows['dev'])}, test {len(rows['test'])}), both from scratch, "
          f"{shape['layers']} layers × {shape['hidden']} hidden × {shape['heads']} heads, "
          f"vocabulary {len(tokenizer):,}, {args.cls_steps} steps × batch 32, lr 5e-4; "
          f"{machine()}")

    def gpt_model():
        return GPTForSequenceClassification(gpt_config(
            "nano", n_layer=shape["layers"], n_embd=shape["hidden"], n_head=shape["heads"],
            vocab_size=len(tokenizer), n_positions=max_length, num_labels=2, pad_token_id=pad,
            activation_function="gelu"))

    def bert_model():
        return BertForSequenceClassification(BertConfig(
            vocab_size=len(tokenizer), hidden_size=shape["hidden"],
            num_hidden_layers=shape["layers"], num_attention_heads=shape["heads"],
            intermediate_size=4 * shape["hidden"], max_position_embeddings=max_length,
            pad_token_id=pad, num_labels=2))

    candidates = [("GPT (last token)", gpt_model, gpt_encode, 0.0),
                  ("GPT + aux LM 0.5", gpt_model, gpt_encode, 0.5),
                  ("BERT ([CLS])", bert_model, bert_encode, 0.0)]
    results = []
    with tempfile.TemporaryDirectory(prefix="polarity-") as tmp:
        for name, build, encode, lm_weight in candidates:
            sets = {split: encode_classification(r, encode, labels=["neg", "pos"])
                    for split, r in rows.items()}
            torch.manual_seed(args.seed)
            model = build()
            config = TrainingConfig(output_dir=str(Path(tmp) / name.split()[0]),
                                    max_steps=args.cls_steps, learning_rate=5e-4,
                                    warmup_ratio=0.1, schedule="linear", progress=False,
                                    plot=False, save_final=False, seed=args.seed)
            evaluations = {}
            start = time.perf_counter()
            trainer = Trainer(model, GPTClassificationTask(lm_weight), classification_batches(
                sets["train"], 32, pad, seed=args.seed), config)
            trainer.train()
            elapsed = time.perf_counter() - start
            task = GPTClassificationTask(0.0)
            model.eval()
            with torch.no_grad():
                for split in ("dev", "test"):
                    evaluations[split] = task.evaluate(model, classification_batches(
                        sets[split], 64, pad, train=False).batches(0))["accuracy"]
            results.append({"model": name, "params_M": model.num_parameters() / 1e6,
                            "dev_acc": evaluations["dev"], "test_acc": evaluations["test"],
                            "train_s": elapsed})
            print(f"  {name}: dev {evaluations['dev']:.3f}, test {evaluations['test']:.3f}, "
                  f"{elapsed:.0f}s", flush=True)
    print(table(results, ["model", "params_M", "dev_acc", "test_acc", "train_s"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("nanogpt", "polarity", "both"), default="both",
                        help="nanoGPT side by side, GPT vs BERT on polarity, or both (default)")
    parser.add_argument("--size", choices=tuple(GPT_SIZES), default="micro")
    parser.add_argument("--block-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--precisions", default="fp32,bf16",
                        help="Trainer rows to run: fp32 (nanoGPT's CPU setting) and/or bf16")
    parser.add_argument("--eval-blocks", type=int, default=256)
    parser.add_argument("--cls-steps", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--mirror", type=Path, default=MIRROR)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.part in ("nanogpt", "both"):
        part_nanogpt(args)
    if args.part in ("polarity", "both"):
        part_polarity(args)


if __name__ == "__main__":
    main()
