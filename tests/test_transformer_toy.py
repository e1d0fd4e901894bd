"""The Transformer learns the copy and reverse toy tasks (≥ 99% exact match, greedy decoding).

Each trains a tiny model (d_model 64, 2+2 layers) with the one Trainer and the TranslationTask
on random digit strings, then decodes a held-out set greedily, with and without the KV cache.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from plmkit.data.parallel import build_dataset, translation_batches
from plmkit.evaluation.decoding import translate_batch
from plmkit.models.transformer import TransformerModel, transformer_config
from plmkit.training import Trainer, TrainingConfig
from plmkit.training.seq2seq import TranslationTask

PAD, BOS, EOS, FIRST_SYMBOL, VOCAB = 0, 2, 3, 4, 14  # ten symbols, 4..13
MAX_LENGTH = 10


def make_pairs(task: str, count: int, seed: int) -> tuple[list[list[int]], list[list[int]]]:
    rng = np.random.default_rng(seed)
    sources = [rng.integers(FIRST_SYMBOL, VOCAB, rng.integers(1, MAX_LENGTH + 1)).tolist()
               for _ in range(count)]
    targets = [s if task == "copy" else s[::-1] for s in sources]
    return sources, targets




@pytest.mark.parametrize("task,steps", [("copy", 700), ("reverse", 900)])
def test_toy_task_reaches_99_percent_exact_match(task, steps, tmp_path, one_thread):
    torch.manual_seed(0)
    batch_size = 64
    sources, targets = make_pairs(task, steps * batch_size, seed=1)
    train, _ = build_dataset(sources, targets, BOS, EOS, max_length=MAX_LENGTH + 2)
    test_sources, test_targets = make_pairs(task, 200, seed=2)
    test, _ = build_dataset(test_sources, test_targets, BOS, EOS, max_length=MAX_LENGTH + 2)
    config = transformer_config("tiny", vocab_size=VOCAB, dropout=0.0, max_position_embeddings=16,
                                pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS)
    model = TransformerModel(config)
    training = TrainingConfig(output_dir=str(tmp_path), max_steps=steps, learning_rate=3e-3,
                              optimizer="adam", adam_betas=(0.9, 0.98), adam_epsilon=1e-9,
                              weight_decay=0.0, schedule="cosine", warmup_steps=50,
                              progress=False, plot=False, log_every=100, seed=0)
    task_object = TranslationTask(0.0, decode=functools.partial(translate_batch, beam_size=1))
    # exact lengths (multiple_of=1): the thresholds below were set on them; that rounded lengths
    # give the same loss and gradients is tested in test_padding_to_a_multiple_changes_nothing
    batches = translation_batches(train, batch_size, PAD, seed=0, multiple_of=1)
    result = Trainer(model, task_object, batches, training,
                     eval_data=translation_batches(test, 100, PAD, shuffle=False)).train()
    assert result.metrics["eval_exact_match"] >= 0.99, result.metrics

    # The same outputs from the cached (incremental) and the uncached decoder.
    batch = next(iter(translation_batches(test, 200, PAD, shuffle=False).batches(0)))
    cached = translate_batch(model, batch["input_ids"], batch["attention_mask"])
    uncached = translate_batch(model, batch["input_ids"], batch["attention_mask"],
                               use_cache=False)
    assert cached == uncached
    beam = translate_batch(model, batch["input_ids"], batch["attention_mask"], beam_size=3)
    assert sum(b == t for b, t in zip(beam, test_targets)) >= 198


def test_padding_to_a_multiple_changes_nothing():
    """Training batches round each side's length up to 8 (fewer matmul shapes for oneDNN's cache):
    the extra padding is masked out of attention and of the loss, so loss and gradients equal
    those of the exact-length batch, and greedy decoding reads the same."""
    from plmkit.data.parallel import collate_translation

    torch.manual_seed(0)
    sources, targets = make_pairs("reverse", 6, seed=3)
    data, _ = build_dataset(sources, targets, BOS, EOS, max_length=MAX_LENGTH + 2)
    config = transformer_config("tiny", vocab_size=VOCAB, dropout=0.0, max_position_embeddings=32,
                                pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS)
    model = TransformerModel(config)
    items = [data[i] for i in range(len(data))]
    results = []
    for multiple in (1, 8):
        batch = collate_translation(items, PAD, multiple)
        model.zero_grad()
        loss = model(batch["input_ids"], batch["attention_mask"], batch["decoder_input_ids"],
                     batch["labels"]).loss
        loss.backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        with torch.no_grad():
            decoded = translate_batch(model, batch["input_ids"], batch["attention_mask"])
        results.append((batch["input_ids"].shape[1], loss.item(), grads, decoded))
    (exact_length, exact_loss, exact_grads, exact_decoded), (length, loss, grads, decoded) = results
    assert length % 8 == 0 and length > exact_length
    assert loss == pytest.approx(exact_loss, rel=1e-5)
    assert len(grads) == len(exact_grads)
    for got, want in zip(grads, exact_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    assert decoded == exact_decoded
