"""A tiny BERT pre-training job on synthetic data, run as a subprocess by test_trainer.py.

Usage: python _trainer_job.py OUTPUT_DIR MAX_STEPS [--resume] [--kill-after-step N]
Under torchrun it trains with DDP. Dropout is 0 so that 1 and 2 processes compute the same thing.
"""

import os
import signal
import sys

import torch

from plmkit.data.collate import Batches, pad_sequences
from plmkit.models.bert import BertConfig, BertForPreTraining
from plmkit.training import Trainer, TrainingConfig
from plmkit.training.bert_pretraining import PretrainingTask


def synthetic(count: int, vocab: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(count):
        # Equal lengths and mask counts: per-rank mean losses then average to the global mean,
        # so DDP and one process compute the same gradient (not only approximately).
        length = 16
        token = int(torch.randint(5, vocab, (1,), generator=generator))
        ids = torch.full((length,), token)  # one word repeated: learnable from context
        labels = torch.full((length,), -100)
        masked = torch.zeros(length, dtype=torch.bool)
        masked[torch.randperm(length, generator=generator)[:4]] = True
        labels[masked] = ids[masked]
        inputs = ids.clone()
        inputs[masked] = 4
        items.append({"input_ids": inputs, "labels": labels,
                      "nsp": int(torch.randint(0, 2, (1,), generator=generator))})
    return items


def collate(examples):
    return {
        "input_ids": pad_sequences([e["input_ids"] for e in examples], 0),
        "labels": pad_sequences([e["labels"] for e in examples], -100),
        "attention_mask": pad_sequences([[1] * len(e["input_ids"]) for e in examples], 0),
        "next_sentence_label": torch.tensor([e["nsp"] for e in examples]),
    }


class KillAfter(PretrainingTask):
    """Sends itself SIGKILL right after the checkpoint at ``step`` exists (a real crash)."""

    def __init__(self, output_dir, step):
        self.marker = os.path.join(output_dir, f"checkpoint-{step}")

    def step(self, model, batch):
        if os.path.isdir(self.marker):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().step(model, batch)


def main() -> None:
    output_dir, max_steps = sys.argv[1], int(sys.argv[2])
    resume = "--resume" in sys.argv
    kill_after = None
    if "--kill-after-step" in sys.argv:
        kill_after = int(sys.argv[sys.argv.index("--kill-after-step") + 1])
    accumulation = int(os.environ.get("JOB_ACCUMULATION", "1"))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=32,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = BertForPreTraining(config)
    train = Batches(synthetic(96, 50, 1), batch_size=8, collate=collate, seed=3)
    evaluation = Batches(synthetic(16, 50, 2), batch_size=8, collate=collate, shuffle=False)
    task = KillAfter(output_dir, kill_after) if kill_after else PretrainingTask()
    training = TrainingConfig(output_dir=output_dir, max_steps=max_steps, learning_rate=1e-2,
                              warmup_steps=2, log_every=1, save_every=5, keep_last=3,
                              eval_every=10, progress=False,
                              # fp32: the runs compared here (1 vs 2 processes, resumed vs not)
                              # must agree to float reduction order, which bf16 autocast on a
                              # bf16-native CPU does not promise
                              precision=os.environ.get("JOB_PRECISION", "fp32"),
                              gradient_accumulation_steps=accumulation,
                              max_minutes=float(os.environ.get("JOB_MAX_MINUTES", "0")),
                              plot_metrics=("loss", "mlm_accuracy"))
    Trainer(model, task, train, training, eval_data=evaluation).train(resume=resume)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
