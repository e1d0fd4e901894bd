"""BERT pre-training as a task of the one Trainer: masked LM + next sentence prediction."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn


def _mlm_correct(logits: Tensor, labels: Tensor, masked: Tensor | None) -> tuple[int, int]:
    """(correct, total) over the positions that carry an MLM label."""
    if masked is not None:  # sparse logits: one row per masked position
        targets = labels[masked]
    else:
        keep = labels != -100
        logits, targets = logits[keep], labels[keep]
    if targets.numel() == 0:
        return 0, 0
    return int((logits.argmax(-1) == targets).sum()), targets.numel()


class PretrainingTask:
    """One forward pass of ``BertForPreTraining``; metrics: MLM/NSP losses and accuracies."""

    def step(self, model: nn.Module, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        out = model(batch["input_ids"], attention_mask=batch.get("attention_mask"),
                    token_type_ids=batch.get("token_type_ids"), labels=batch["labels"],
                    next_sentence_label=batch.get("next_sentence_label"))
        metrics: dict[str, float] = {}
        with torch.no_grad():
            correct, total = _mlm_correct(out.prediction_logits, batch["labels"],
                                          out.masked_positions)
            metrics["mlm_accuracy"] = correct / max(1, total)
            if out.mlm_loss is not None:
                metrics["mlm_loss"] = float(out.mlm_loss)
            if out.nsp_loss is not None:
                metrics["nsp_loss"] = float(out.nsp_loss)
                labels = batch["next_sentence_label"].view(-1)
                metrics["nsp_accuracy"] = float(
                    (out.seq_relationship_logits.argmax(-1) == labels).float().mean())
        return out.loss, metrics

    def evaluate(self, model: nn.Module, batches: Iterable[dict[str, Any]]) -> dict[str, float]:
        """Held-out MLM loss (per masked token), accuracy, perplexity and NSP accuracy."""
        mlm_loss_sum, mlm_correct, mlm_total = 0.0, 0, 0
        nsp_correct, nsp_total, nsp_loss_sum = 0, 0, 0.0
        for batch in batches:
            out = model(batch["input_ids"], attention_mask=batch.get("attention_mask"),
                        token_type_ids=batch.get("token_type_ids"), labels=batch["labels"],
                        next_sentence_label=batch.get("next_sentence_label"))
            correct, total = _mlm_correct(out.prediction_logits, batch["labels"],
                                          out.masked_positions)
            mlm_correct += correct
            mlm_total += total
            if out.mlm_loss is not None:
                mlm_loss_sum += float(out.mlm_loss) * total
            if out.seq_relationship_logits is not None and "next_sentence_label" in batch:
                labels = batch["next_sentence_label"].view(-1)
                nsp_correct += int((out.seq_relationship_logits.argmax(-1) == labels).sum())
                nsp_total += labels.numel()
                if out.nsp_loss is not None:
                    nsp_loss_sum += float(out.nsp_loss) * labels.numel()
        mlm_loss = mlm_loss_sum / max(1, mlm_total)
        metrics = {"mlm_loss": mlm_loss, "mlm_accuracy": mlm_correct / max(1, mlm_total),
                   "mlm_perplexity": math.exp(min(mlm_loss, 50.0))}
        metrics["loss"] = mlm_loss  # comparable with the training loss: MLM + NSP
        if nsp_total:
            metrics["nsp_accuracy"] = nsp_correct / nsp_total
            metrics["nsp_loss"] = nsp_loss_sum / nsp_total
            metrics["loss"] = mlm_loss + metrics["nsp_loss"]
        return metrics


__all__ = ["PretrainingTask"]
