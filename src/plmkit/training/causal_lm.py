"""GPT as tasks of the one Trainer: causal-LM pre-training and GPT-1-style classification.

* :class:`CausalLMTask` — one forward pass over a batch of blocks, mean next-token cross-entropy;
  held-out evaluation reports the token-weighted loss, perplexity exp(loss) and bits per token
  (loss / ln 2: bits per character at character level).
* :class:`GPTClassificationTask` — the classifier reads the last token's state; GPT-1 also keeps
  the language-model objective during fine-tuning as an auxiliary loss
  (L = L_task + λ·L_LM, λ = 0.5 in the paper), which ``lm_weight`` turns on.
* :func:`pretrain_gpt` — the recipe behind ``plm train-gpt``: corpus → tokenizer → blocks →
  model → Trainer → held-out perplexity.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from plmkit._io import write_text_atomic
from plmkit.data.text_lm import LMData, lm_batches, load_lm_data
from plmkit.errors import PlmError
from plmkit.models.gpt import GPTLMHeadModel, causal_lm_loss, gpt_config
from plmkit.training.trainer import Trainer, TrainingConfig, TrainResult, move_to


def _count_targets(targets: Tensor) -> int:
    return int((targets != -100).sum())


class CausalLMTask:
    """Next-token prediction over ``{"input_ids", "targets"}`` blocks (or HF-style ``labels``)."""

    def step(self, model: nn.Module, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        out = model(batch["input_ids"], attention_mask=batch.get("attention_mask"),
                    labels=batch.get("labels"), shift_labels=batch.get("targets"))
        return out.loss, {}

    def evaluate(self, model: nn.Module, batches: Iterable[dict[str, Any]]) -> dict[str, float]:
        total_loss, total_tokens = 0.0, 0
        for batch in batches:
            out = model(batch["input_ids"], attention_mask=batch.get("attention_mask"),
                        labels=batch.get("labels"), shift_labels=batch.get("targets"))
            if "targets" in batch:
                count = _count_targets(batch["targets"])
            else:
                count = _count_targets(batch["labels"][:, 1:])
            total_loss += float(out.loss) * count
            total_tokens += count
        loss = total_loss / max(1, total_tokens)
        return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)),
                "bits_per_token": loss / math.log(2), "tokens": float(total_tokens)}


class GPTClassificationTask:
    """Sequence classification from the last token, with GPT-1's optional auxiliary LM loss."""

    def __init__(self, lm_weight: float = 0.0) -> None:
        if lm_weight < 0:
            raise PlmError(f"lm_weight must be ≥ 0, not {lm_weight}", field="lm_weight")
        self.lm_weight = lm_weight

    def _forward(self, model: nn.Module, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        out = model(batch["input_ids"], attention_mask=batch.get("attention_mask"),
                    labels=batch["labels"])
        loss = out.loss
        if self.lm_weight and hasattr(model, "lm_logits"):
            logits = model.lm_logits(out.last_hidden_state)
            targets = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
            loss = loss + self.lm_weight * causal_lm_loss(logits, labels=targets)
        return loss, out.logits

    def step(self, model: nn.Module, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        loss, logits = self._forward(model, batch)
        with torch.no_grad():
            accuracy = float((logits.argmax(-1) == batch["labels"]).float().mean())
        return loss, {"accuracy": accuracy}

    def evaluate(self, model: nn.Module, batches: Iterable[dict[str, Any]]) -> dict[str, float]:
        correct, total, loss_sum = 0, 0, 0.0
        for batch in batches:
            loss, logits = self._forward(model, batch)
            count = batch["labels"].numel()
            correct += int((logits.argmax(-1) == batch["labels"]).sum())
            loss_sum += float(loss) * count
            total += count
        return {"accuracy": correct / max(1, total), "loss": loss_sum / max(1, total)}


# --------------------------------------------------------------------------------------------
# The pre-training recipe
# --------------------------------------------------------------------------------------------
@dataclass
class GPTPretrainingConfig:
    """What ``plm train-gpt`` needs beyond the TrainingConfig: data and model shape."""

    corpus: str = "ptb"
    level: str | None = None  # word | char; None → the corpus's default
    size: str = "nano"
    block_size: int = 128
    batch_size: int = 32
    eval_batch_size: int = 64
    eval_tokens: int | None = None  # evaluate on the first N held-out tokens only
    # No dropout by default: a pre-training run on CPU sees each token a few times at most, and
    # dropout would cost a third of the step (it also forces the unfused attention kernel).
    dropout: float = 0.0
    # Exact GELU (nanoGPT's nn.GELU) rather than GPT-2's tanh approximation: the same function
    # to 1e-3, and about twice as fast on CPU. GPT-2 checkpoints keep their own gelu_new.
    activation_function: str = "gelu"
    min_count: int = 1
    max_vocab: int | None = None
    lowercase: bool = False
    model_overrides: dict[str, Any] = field(default_factory=dict)


@torch.no_grad()
def evaluate_lm(model: nn.Module, data_ids, block_size: int, batch_size: int,
                device: torch.device | str = "cpu") -> dict[str, float]:
    """Held-out loss / perplexity of ``model`` over a whole split (every token a target)."""
    was_training = model.training
    model.eval()
    batches = lm_batches(data_ids, block_size, batch_size, train=False)
    metrics = CausalLMTask().evaluate(model, (move_to(b, device) for b in batches.batches(0)))
    model.train(was_training)
    return metrics


def build_gpt(data: LMData, setup: GPTPretrainingConfig) -> GPTLMHeadModel:
    overrides = {"vocab_size": len(data.tokenizer), "n_positions": setup.block_size,
                 "resid_pdrop": setup.dropout, "embd_pdrop": setup.dropout,
                 "attn_pdrop": setup.dropout, "activation_function": setup.activation_function,
                 "eos_token_id": data.tokenizer.eos_id,
                 "bos_token_id": data.tokenizer.eos_id, "pad_token_id": data.tokenizer.pad_id,
                 **setup.model_overrides}
    return GPTLMHeadModel(gpt_config(setup.size, **overrides))


def pretrain_gpt(setup: GPTPretrainingConfig, training: TrainingConfig, *,
                 resume: bool | str = False, log=print) -> tuple[TrainResult, dict[str, float]]:
    """Train a GPT language model on a corpus; returns the run and held-out test metrics.

    The final model and its tokenizer are written to ``training.output_dir`` (HF layout), with
    ``metrics.jsonl``, ``curves.png`` and ``lm_results.json`` (valid/test perplexity).
    """
    if setup.block_size < 2:
        raise PlmError("block_size must be ≥ 2", field="block_size")
    data = load_lm_data(setup.corpus, setup.level, min_count=setup.min_count,
                        max_vocab=setup.max_vocab, lowercase=setup.lowercase)
    log(f"corpus {setup.corpus}: {data.describe()}")
    torch.manual_seed(training.seed)
    model = build_gpt(data, setup)
    log(f"model: GPT {setup.size}, {model.num_parameters() / 1e6:.2f}M parameters, "
        f"context {setup.block_size}")
    train = lm_batches(data.splits["train"], setup.block_size, setup.batch_size, train=True,
                       seed=training.seed)
    held_out = {name: ids[: setup.eval_tokens] if setup.eval_tokens else ids
                for name, ids in data.splits.items() if name != "train"}
    valid = lm_batches(held_out["valid"], setup.block_size, setup.eval_batch_size, train=False)
    trainer = Trainer(model, CausalLMTask(), train, training, eval_data=valid,
                      tokenizer=data.tokenizer)
    result = trainer.train(resume=resume)
    results = {"valid_" + k.removeprefix("eval_"): v for k, v in trainer.evaluate().items()}
    if "test" in held_out:
        test = evaluate_lm(model, held_out["test"], setup.block_size, setup.eval_batch_size,
                           trainer.device)
        results.update({f"test_{k}": v for k, v in test.items()})
    results["steps"] = float(result.global_step)
    if result.metrics.get("tokens_per_s"):
        results["train_tokens_per_s"] = float(result.metrics["tokens_per_s"])
    if trainer.context.is_main:
        write_text_atomic(Path(training.output_dir) / "lm_results.json",
                          json.dumps(results, indent=2) + "\n")
    return result, results


__all__ = ["CausalLMTask", "GPTClassificationTask", "GPTPretrainingConfig", "build_gpt",
           "evaluate_lm", "pretrain_gpt"]
