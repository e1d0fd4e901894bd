"""plmkit's Transformer side by side with ``torch.nn.Transformer`` — same data, sizes, steps.

The reference is ``torch.nn.Transformer`` (batch_first, ReLU, the same d_model/heads/d_ff/layers,
dropout and post-/pre-LN) wrapped in *our* embeddings (shared, scaled by √d_model), sinusoidal
positional encoding and tied output layer, so only the encoder–decoder stacks differ (note that
``nn.Transformer`` always adds a final LayerNorm to each stack, also in post-LN mode). Both are
trained by the one Trainer with the same TranslationTask (label smoothing 0.1), the paper's Adam
and Noam schedule, the same seed and the very same batches of the built-in EN→DE corpus (or your
files) with one joint WordPiece vocabulary.

Reported per model: training tokens/s (source + target tokens, wall clock of ``Trainer.train``)
and tokens per CPU-second of this process (less sensitive to other processes on a shared
machine), dev loss / perplexity after the same steps, and test BLEU (sacreBLEU, greedy search) on
the first ``--bleu-sentences`` test pairs; then ratios ours/torch. Runs alternate the order
(A B, B A, …) against drift in the machine's load; speeds are medians. Last, forward+backward of
the two on the same batches, interleaved step by step: the speed ratio least affected by a busy
machine. Decoding speed is shown too: ours with the KV cache, ours without, and the reference
(which has no cache).

    python benchmarks/transformer_vs_torch.py [--size small] [--steps 400] [--batch-size 64]
        [--rounds 1] [--threads N] [--tokenizer VOCAB_DIR] [--train en_de]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, table  # noqa: E402

from plmkit.data.parallel import translation_batches  # noqa: E402
from plmkit.evaluation.decoding import evaluate_bleu, translate_batch  # noqa: E402
from plmkit.models.attention import attention_bias  # noqa: E402
from plmkit.models.transformer import (DecoderState, Seq2SeqOutput, TransformerConfig,  # noqa: E402
                                       TransformerEmbeddings, TransformerModel,
                                       label_smoothed_loss)
from plmkit.training import Trainer  # noqa: E402
from plmkit.training.seq2seq import (TranslationSetup, TranslationTask,  # noqa: E402
                                     build_translation_model, load_translation_data,
                                     paper_training_config)


class TorchReference(nn.Module):
    """``torch.nn.Transformer`` inside plmkit's embeddings, positional encoding and output layer,
    with the same forward/decoding interface as :class:`TransformerModel`."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = nn.Embedding(config.vocab_size, config.d_model,
                                       padding_idx=config.pad_token_id)
        self.source_positions = TransformerEmbeddings(config)
        self.target_positions = TransformerEmbeddings(config)
        self.transformer = nn.Transformer(
            config.d_model, config.num_heads, config.num_encoder_layers,
            config.num_decoder_layers, config.d_ff, config.dropout, activation="relu",
            layer_norm_eps=config.layer_norm_eps, batch_first=True, norm_first=config.norm_first)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        nn.init.normal_(self.embeddings.weight, std=config.d_model ** -0.5)
        with torch.no_grad():
            self.embeddings.weight[config.pad_token_id].zero_()
        self.lm_head.weight = self.embeddings.weight

    def save_pretrained(self, folder, tokenizer=None):  # the Trainer's final save; not needed
        return Path(folder)

    def encode(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        padding = None if attention_mask is None else attention_mask == 0
        return self.transformer.encoder(self.source_positions(input_ids, self.embeddings),
                                        src_key_padding_mask=padding)

    def decode(self, decoder_input_ids: Tensor, memory: Tensor,
               attention_mask: Tensor | None) -> Tensor:
        length = decoder_input_ids.size(1)
        causal = nn.Transformer.generate_square_subsequent_mask(length, device=memory.device)
        padding = None if attention_mask is None else attention_mask == 0
        return self.transformer.decoder(self.target_positions(decoder_input_ids, self.embeddings),
                                        memory, tgt_mask=causal, tgt_is_causal=True,
                                        memory_key_padding_mask=padding)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                decoder_input_ids: Tensor | None = None, labels: Tensor | None = None, *,
                label_smoothing: float = 0.0) -> Seq2SeqOutput:
        hidden = self.decode(decoder_input_ids, self.encode(input_ids, attention_mask),
                             attention_mask)
        labelled = labels != -100
        logits = self.lm_head(hidden[labelled])
        loss, nll = label_smoothed_loss(logits, labels[labelled], label_smoothing)
        return Seq2SeqOutput(loss, logits, nll)

    # Decoding without a cache (nn.Transformer has none): every step re-runs the prefix.
    def start_decoding(self, memory: Tensor, attention_mask: Tensor | None,
                       use_cache: bool = True) -> DecoderState:
        bias = attention_bias(attention_mask, memory.dtype)
        return DecoderState([], [], bias, memory, attention_mask)

    def decode_step(self, tokens: Tensor, state: DecoderState) -> Tensor:
        hidden = self.decode(tokens, state.encoder_hidden_states, state.encoder_attention_mask)
        return self.lm_head(hidden[:, -1]).float().log_softmax(dim=-1)

    reorder_state = staticmethod(TransformerModel.reorder_state)


class CountingTask(TranslationTask):
    """The TranslationTask, counting the source + target tokens it trains on."""

    tokens = 0

    def step(self, model, batch):
        self.tokens += int(batch["attention_mask"].sum()) + int((batch["labels"] != -100).sum())
        return super().step(model, batch)


def build(kind: str, setup: TranslationSetup, tokenizer, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    ours = build_translation_model(setup, tokenizer)
    # nn.Transformer also drops out attention probabilities and the FFN's hidden layer; do the
    # same, so that both do the same work.
    ours.config.attention_dropout = ours.config.activation_dropout = ours.config.dropout
    torch.manual_seed(seed)
    ours = TransformerModel(ours.config)
    if kind == "plmkit":
        return ours
    torch.manual_seed(seed)
    return TorchReference(ours.config)


def train_one(kind: str, setup, data, args, output: Path) -> dict:
    model = build(kind, setup, data.tokenizer, args.seed)
    pad = model.config.pad_token_id
    training = paper_training_config(
        str(output / kind), model.config.d_model, max_steps=args.steps,
        warmup_steps=args.warmup_steps, learning_rate=args.lr, max_grad_norm=1.0,
        seed=args.seed, progress=False, plot=False, log_every=max(1, args.steps // 4),
        save_final=False)
    task = CountingTask(setup.label_smoothing)
    trainer = Trainer(model, task, translation_batches(data.train_set, setup.batch_size, pad,
                                                       seed=args.seed), training)
    wall, cpu = time.perf_counter(), time.process_time()
    trainer.train()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    model.eval()
    with torch.no_grad():
        dev = task.evaluate(model, translation_batches(data.dev_set, 64, pad,
                                                       shuffle=False).batches(0))
    pairs = data.test.pairs[: args.bleu_sentences]
    start = time.perf_counter()
    bleu = evaluate_bleu(model, data.tokenizer, pairs, beam_size=1, batch_size=64)
    decode_seconds = time.perf_counter() - start
    return {"model": model, "tokens_per_s": task.tokens / wall,
            "tokens_per_cpu_s": task.tokens / cpu,
            "dev_loss": dev["loss"], "dev_perplexity": dev["perplexity"], "bleu": bleu["bleu"],
            "decode_sentences_per_s": len(pairs) / decode_seconds}


def interleaved(models: dict[str, nn.Module], data, setup, steps: int) -> dict[str, float]:
    """Median forward+backward seconds per batch, the models alternating on the same batches."""
    pad = next(iter(models.values())).config.pad_token_id
    batches = translation_batches(data.train_set, setup.batch_size, pad, seed=1).batches(0)
    times: dict[str, list[float]] = {name: [] for name in models}
    task = TranslationTask(setup.label_smoothing)
    for index, batch in zip(range(steps + 2), batches):
        for name, model in models.items():
            model.train()
            start = time.perf_counter()
            loss, _ = task.step(model, batch)
            loss.backward()
            elapsed = time.perf_counter() - start
            model.zero_grad(set_to_none=True)
            if index >= 2:  # warm-up
                times[name].append(elapsed)
    return {name: statistics.median(values) for name, values in times.items()}


def warm_up(setup, data, args) -> None:
    """Pay one-time costs (lazy imports, first-call kernel selection, allocator growth) before
    any clock starts, so that the model trained first is not penalised."""
    models = {kind: build(kind, setup, data.tokenizer, args.seed) for kind in ("plmkit", "torch")}
    interleaved(models, data, setup, steps=1)


def decoding_speed(model: TransformerModel, data, sentences: int) -> dict[str, float]:
    """Greedy decoding sentences/s of our model with and without the KV cache."""
    pairs = data.test.pairs[:sentences]
    speeds = {}
    for use_cache in (True, False):
        start = time.perf_counter()
        encoded = translation_batches(
            load_batch_dataset(pairs, data.tokenizer, model.config.max_position_embeddings), 64,
            model.config.pad_token_id, shuffle=False)
        for batch in encoded.batches(0):
            translate_batch(model, batch["input_ids"], batch["attention_mask"], use_cache=use_cache)
        speeds["cached" if use_cache else "uncached"] = len(pairs) / (time.perf_counter() - start)
    return speeds


def load_batch_dataset(pairs, tokenizer, max_length):
    from plmkit.data.parallel import encode_parallel

    return encode_parallel(pairs, tokenizer, max_length=max_length)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", nargs="+", default=["en_de"])
    parser.add_argument("--dev", nargs="+")
    parser.add_argument("--test", nargs="+")
    parser.add_argument("--size", default="small")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warmup-steps", type=int, default=200)
    parser.add_argument("--lr", type=float, default=1.0, help="Noam factor")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--tokenizer", help="a vocabulary folder (else one is trained)")
    parser.add_argument("--norm-first", action="store_true")
    parser.add_argument("--bleu-sentences", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--interleaved-steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {machine()}")
    setup = TranslationSetup(train=args.train, dev=args.dev, test=args.test, size=args.size,
                             vocab_size=args.vocab_size, tokenizer=args.tokenizer,
                             batch_size=args.batch_size, norm_first=args.norm_first,
                             bleu_sentences=args.bleu_sentences)
    log = lambda m: print(f"  {m}")  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="plmkit-bench-") as tmp:
        output = Path(tmp)
        data = load_translation_data(setup, output_dir=output, log=log)
        if data.test is None:
            data.test = data.dev
        warm_up(setup, data, args)
        runs: dict[str, list[dict]] = {"plmkit": [], "torch.nn.Transformer": []}
        order = list(runs)
        for round_index in range(args.rounds):
            for kind in (order if round_index % 2 == 0 else order[::-1]):
                print(f"round {round_index + 1}: training {kind} for {args.steps} steps …",
                      flush=True)
                runs[kind].append(train_one("plmkit" if kind == "plmkit" else "torch", setup,
                                            data, args, output / str(round_index)))
        ours, ref = runs["plmkit"], runs["torch.nn.Transformer"]
        rows = []
        for name, results in runs.items():
            rows.append({"model": name,
                         "tokens/s": statistics.median(r["tokens_per_s"] for r in results),
                         "tokens/CPU-s": statistics.median(r["tokens_per_cpu_s"] for r in results),
                         "dev loss": results[-1]["dev_loss"],
                         "dev ppl": results[-1]["dev_perplexity"],
                         "BLEU greedy": results[-1]["bleu"],
                         "decode sent/s": results[-1]["decode_sentences_per_s"]})
        print()
        print(f"size {args.size}, {args.steps} steps × {args.batch_size} pairs, "
              f"{len(data.train_set):,} training pairs, BLEU on "
              f"{min(args.bleu_sentences, len(data.test)):,} test pairs")
        print(table(rows, ["model", "tokens/s", "tokens/CPU-s", "dev loss", "dev ppl",
                           "BLEU greedy", "decode sent/s"]))
        step = interleaved({"plmkit": ours[-1]["model"], "torch": ref[-1]["model"]}, data, setup,
                           args.interleaved_steps)
        speeds = decoding_speed(ours[-1]["model"], data, min(200, len(data.test)))
        a, b = rows
        print()
        print(f"ratios ours/torch: tokens/s {a['tokens/s'] / b['tokens/s']:.2f}, "
              f"tokens/CPU-s {a['tokens/CPU-s'] / b['tokens/CPU-s']:.2f}, "
              f"interleaved fwd+bwd speed {step['torch'] / step['plmkit']:.2f} "
              f"({step['plmkit'] * 1000:.0f} vs {step['torch'] * 1000:.0f} ms/batch), "
              f"BLEU {a['BLEU greedy'] / max(b['BLEU greedy'], 1e-9):.2f}, "
              f"dev loss torch/ours {b['dev loss'] / a['dev loss']:.2f} (>1: ours lower)")
        print(f"our greedy decoding: {speeds['cached']:.1f} sentences/s with the KV cache, "
              f"{speeds['uncached']:.1f} without ({speeds['cached'] / speeds['uncached']:.1f}×)")


if __name__ == "__main__":
    main()
