"""GPT as tasks of the one Trainer: causal-LM pre-training and GPT-1-style classification.

* :class:`CausalLMTask` — one forward pass over a batch of blocks, mean next-token cross-entropy;
  held-out evaluation reports the token-weighted loss, perplexity exp(loss) and bits per token
  (loss / ln 2: bits per character at character level).
* :class:`GPTClassificationTask` — the classifier reads the last token's state; GPT-1 also keeps
  the language-model objective during fine-tuning as an auxiliary loss
  (L = L_task + λ·L_LM, λ = 0.5 in the paper), which ``lm_weight`` turns on.
* :func:`pretrain_gpt` — the recipe behind ``plm train-gpt``: corpus → tokenizer → blocks →
  model → Trainer → held-out perplexity.
* :func:`finetune_gpt` — the recipe behind ``plm finetune-gpt``: GPT-1's second stage. The
  pre-trained checkpoint gets the task tokens ``<start> <delim> <extract>`` (new embedding rows),
  each example becomes ``<start> text [<delim> pair] <extract>``, and a fresh linear head reads
  the last token; the classification files are those of BERT's fine-tuning (``polarity:train``
  or any CSV/TSV/JSONL with text[,text_pair],label columns).
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
from plmkit.training.trainer import Trainer, TrainingConfig, TrainResult, move_to, seed_everything


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
    seed_everything(training.seed)  # the initial weights are drawn here: --seed reproduces them
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


# --------------------------------------------------------------------------------------------
# The fine-tuning recipe (GPT-1, section 3.2–3.3)
# --------------------------------------------------------------------------------------------
@dataclass
class GPTFinetuneConfig:
    """What ``plm finetune-gpt`` needs beyond the TrainingConfig: the data and the input shape.

    ``train``/``dev``/``test`` are files or built-in ``NAME:SPLIT`` names, read by the same
    readers as BERT's fine-tuning. ``lm_weight`` is GPT-1's λ of the auxiliary LM loss (0.5 in
    the paper; 0 turns it off).
    """

    train: str
    dev: str | None = None
    test: str | None = None
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    max_length: int = 128
    batch_size: int = 32
    eval_batch_size: int = 64
    lm_weight: float = 0.5


def _read_examples(spec: str, setup: GPTFinetuneConfig) -> list[Any]:
    from plmkit.data.tasks import read_text_examples, resolve_data

    return read_text_examples(resolve_data(spec), text_column=setup.text_column,
                              text_pair_column=setup.text_pair_column,
                              label_column=setup.label_column)


def encode_gpt_examples(examples: list[Any], tokenizer: Any, label2id: dict[str, int],
                        max_length: int) -> Any:
    """``<start> text [<delim> pair] <extract>`` ids and label ids; a label the training set
    does not have is an error naming its file and line."""
    from plmkit.data.tasks import check_label
    from plmkit.data.text_lm import ClassificationSet, gpt_task_input

    inputs, label_ids = [], []
    for example in examples:
        inputs.append(gpt_task_input(tokenizer, example.text, example.text_pair,
                                     max_length=max_length))
        label_ids.append(check_label(str(example.label), label2id, example.source,
                                     example.line))
    return ClassificationSet(inputs, label_ids, list(label2id))


def finetune_gpt(checkpoint: str | Path, setup: GPTFinetuneConfig, training: TrainingConfig, *,
                 resume: bool | str | Path = False, log=print) -> dict[str, float]:
    """Fine-tune a ``plm train-gpt`` checkpoint as a classifier, GPT-1's way.

    Writes the classifier (``GPTForSequenceClassification``, HF layout, with its tokenizer) to
    ``training.output_dir`` and ``results.json`` (dev/test accuracy); returns those results.
    ``resume``: continue from the last (True) or the given checkpoint of an interrupted run.
    """
    from plmkit.data.tasks import label_list
    from plmkit.data.text_lm import GPT_TASK_TOKENS, classification_batches, load_text_tokenizer
    from plmkit.models.gpt import GPTForSequenceClassification

    base = load_text_tokenizer(checkpoint)
    if base is None:
        raise PlmError("not a plm train-gpt checkpoint (no word/char tokenizer_config.json)",
                       path=checkpoint)
    if setup.lm_weight < 0:
        raise PlmError(f"lm_weight must be ≥ 0, not {setup.lm_weight}", field="lm_weight")
    tokenizer = base.with_tokens(GPT_TASK_TOKENS)
    train_examples = _read_examples(setup.train, setup)
    labels = label_list(str(e.label) for e in train_examples)
    if len(labels) < 2:
        raise PlmError(f"the training data has one label only ({labels[0]!r})",
                       path=setup.train, field=setup.label_column)
    label2id = {name: i for i, name in enumerate(labels)}
    # The fresh head and the task tokens' embedding rows are drawn here: seed first, so --seed
    # reproduces them whatever the process drew before.
    seed_everything(training.seed)
    model = GPTForSequenceClassification.from_pretrained(
        checkpoint, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id=label2id, pad_token_id=tokenizer.pad_id)
    model.resize_token_embeddings(len(tokenizer))
    max_length = min(setup.max_length, model.config.n_positions)
    if max_length < setup.max_length:
        log(f"max_length {setup.max_length} cut to the model's context window {max_length}")
    sets = {"train": encode_gpt_examples(train_examples, tokenizer, label2id, max_length)}
    for split in ("dev", "test"):
        spec = getattr(setup, split)
        if spec:
            sets[split] = encode_gpt_examples(_read_examples(spec, setup), tokenizer, label2id,
                                              max_length)
    log("data: " + ", ".join(f"{split} {len(data):,}" for split, data in sets.items())
        + f"; labels {labels}; vocabulary {len(tokenizer):,} (+{len(tokenizer) - len(base)} "
        "task tokens)")
    pad = tokenizer.pad_id

    def batches(split: str) -> Any:
        return classification_batches(sets[split], setup.eval_batch_size, pad, train=False)

    task = GPTClassificationTask(setup.lm_weight)
    trainer = Trainer(model, task,
                      classification_batches(sets["train"], setup.batch_size, pad,
                                             seed=training.seed), training,
                      eval_data=batches("dev") if "dev" in sets else None, tokenizer=tokenizer)
    result = trainer.train(resume=resume)
    results: dict[str, float] = {"steps": float(result.global_step)}
    model.eval()
    with torch.no_grad():
        for split in ("dev", "test"):
            if split in sets:
                scores = GPTClassificationTask(0.0).evaluate(
                    model, (move_to(b, trainer.device) for b in batches(split).batches(0)))
                results[f"{split}_accuracy"] = scores["accuracy"]
    if trainer.context.is_main:
        write_text_atomic(Path(training.output_dir) / "results.json",
                          json.dumps(results, indent=2) + "\n")
    return results


__all__ = ["CausalLMTask", "GPTClassificationTask", "GPTFinetuneConfig", "GPTPretrainingConfig",
           "build_gpt", "encode_gpt_examples", "evaluate_lm", "finetune_gpt", "pretrain_gpt"]
