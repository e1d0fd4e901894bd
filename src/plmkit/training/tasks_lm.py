"""The generations before the Transformer as tasks of the one Trainer.

* :class:`Word2VecTask` — a batch is a chunk of sentences; the step runs the numba SGNS kernel
  on it (in-place Hogwild updates, like word2vec.c) and hands the Trainer the loss to log. The
  Trainer's optimiser has nothing to do (no parameter gets a gradient); it supplies the progress
  bar, the JSONL log, checkpoints and exact resume.
* :class:`NextWordTask` — the NNLM: cross-entropy of the word after a fixed window.
* :class:`StreamLMTask` — RNN/LSTM language models on contiguous streams with truncated BPTT:
  the hidden state is carried from one batch to the next (detached, so gradients stop at the
  batch edge) and reset whenever the stream restarts.
* :class:`BiLMTask` — ELMo's forward + backward language models on sentences.

Every task's ``evaluate`` reports ``loss`` (mean negative log-likelihood per predicted token, in
nats) and ``perplexity`` = exp(loss).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from plmkit.data.lm import (BOS, EOS, PAD, StreamBatches, Vocabulary, WordChunks,
                            encode_sentences, encode_stream, ngram_windows, sentence_batches,
                            window_batches)
from plmkit.errors import PlmError
from plmkit.models.elmo import ElmoBiLM, ElmoConfig
from plmkit.models.nnlm import NNLM, NNLMConfig
from plmkit.models.rnn import RNNLanguageModel, RNNLMConfig, detach_hidden
from plmkit.models.word2vec import KeyedVectors, SgnsKernel, Word2VecConfig, Word2VecModel
from plmkit.training.trainer import Trainer, TrainingConfig, TrainResult, seed_everything, unwrap

# Below this many words, word2vec's threads would share too few vectors for Hogwild (measured: 20
# words collapsed in 4 of 25 two-thread runs on busy cores, 200 words in none).
HOGWILD_MIN_VOCABULARY = 100


# --------------------------------------------------------------------------------- word2vec
class Word2VecTask:
    """Skip-gram / CBOW with negative sampling on one chunk of sentences per step."""

    def __init__(self, config: Word2VecConfig, counts: np.ndarray) -> None:
        self.config = config
        self.kernel = SgnsKernel(config, counts)

    def step(self, model: nn.Module, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        model = unwrap(model)
        syn0, syn1neg = model.arrays()
        alpha = self.kernel.alpha_at(float(batch["progress"]))
        words = batch["input_ids"].numpy()
        starts = batch["sentence_starts"].numpy()
        loss, predictions, kept = self.kernel.train_chunk(syn0, syn1neg, words, starts, alpha,
                                                          int(batch["seed"]))
        mean = loss / max(1, predictions)
        # A leaf the Trainer can call backward() on; the vectors were already updated in place.
        return torch.tensor(mean, requires_grad=True), {
            "alpha": alpha, "kept_words": float(kept), "raw_words": float(batch["raw_words"])}


def word2vec_vocabulary(sentences: Sequence[Sequence[str]], config: Word2VecConfig) -> Vocabulary:
    """Words seen ≥ min_count times, most frequent first (no specials, no ``<unk>``)."""
    return Vocabulary.build(sentences, min_count=config.min_count,
                            max_size=config.max_vocab_size, specials=(), unk=None)


@dataclass
class Word2VecRun:
    """What :func:`train_word2vec` returns: the vectors and how the run went."""

    vectors: KeyedVectors
    vocab: Vocabulary
    result: TrainResult
    train_seconds: float
    raw_words: int

    @property
    def raw_words_per_second(self) -> float:
        return self.raw_words / max(self.train_seconds, 1e-9)


def train_word2vec(sentences: Sequence[Sequence[str]], config: Word2VecConfig | None = None, *,
                   output_dir: str | Path | None = None, progress: bool = True,
                   plot: bool = False, log_every: int = 50, resume: bool = False) -> Word2VecRun:
    """Build the vocabulary, train through the Trainer, return the word vectors.

    ``output_dir`` receives the checkpoint folder (config.json, model.safetensors, vocab.txt)
    and ``metrics.jsonl``; with None a temporary folder is used and nothing is kept. The
    learning rate decays linearly from ``alpha`` to ``min_alpha`` over all epochs.
    """
    config = config or Word2VecConfig()
    sentences = [s for s in sentences if len(s)]
    if not sentences:
        raise PlmError("the corpus is empty (no sentence with a word)")
    vocab = word2vec_vocabulary(sentences, config)
    config = dataclasses.replace(config, vocab_size=len(vocab))
    if config.workers > 1 and len(vocab) < HOGWILD_MIN_VOCABULARY:
        # Hogwild's lock-free updates assume the threads rarely touch the same rows; on a busy
        # machine a time-sliced thread then resumes with a gradient thousands of updates stale.
        print(f"plmkit: warning: {config.workers} word2vec threads on a vocabulary of "
              f"{len(vocab)} words update the same few vectors; training can collapse when the "
              f"cores are busy (seen with 20 words: 4 runs in 25). Use --workers 1.",
              file=sys.stderr, flush=True)
    counts = np.asarray([vocab.counts[w] for w in vocab.itos], dtype=np.int64)
    chunks = WordChunks(sentences, vocab, epochs=config.epochs, batch_words=config.batch_words,
                        max_sentence_length=config.max_sentence_length, seed=config.seed)
    model = Word2VecModel(config)
    task = Word2VecTask(config, counts)
    with contextlib.ExitStack() as stack:
        out = output_dir or stack.enter_context(tempfile.TemporaryDirectory())
        training = TrainingConfig(
            output_dir=str(out), num_epochs=config.epochs, learning_rate=config.alpha,
            optimizer="sgd", weight_decay=0.0, schedule="linear_to_zero", max_grad_norm=0.0,
            log_every=log_every, seed=config.seed, progress=progress, plot=plot,
            save_final=output_dir is not None, plot_metrics=("loss", "alpha"))
        trainer = Trainer(model, task, chunks, training, tokenizer=vocab)
        started = time.perf_counter()
        try:
            result = trainer.train(resume=resume)
        finally:
            task.kernel.close()
        seconds = time.perf_counter() - started
    vectors = KeyedVectors(vocab.itos, model.arrays()[0].copy())
    return Word2VecRun(vectors, vocab, result, seconds, chunks.total_raw_words * config.epochs)


# --------------------------------------------------------------------------------- neural LMs
def _perplexity(loss: float) -> float:
    return math.exp(min(loss, 50.0))


class NextWordTask:
    """NNLM: predict the word after a window of n−1 words (batches from ``window_batches``)."""

    def step(self, model: nn.Module, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        out = model(batch["input_ids"], labels=batch["labels"])
        return out.loss, {"perplexity": _perplexity(float(out.loss.detach()))}

    def evaluate(self, model: nn.Module, batches: Iterable[dict[str, Any]]) -> dict[str, float]:
        total, count = 0.0, 0
        for batch in batches:
            out = model(batch["input_ids"], labels=batch["labels"])
            total += float(out.loss) * batch["labels"].numel()
            count += batch["labels"].numel()
        loss = total / max(1, count)
        return {"loss": loss, "perplexity": _perplexity(loss)}


class StreamLMTask:
    """RNN/LSTM on contiguous streams with truncated BPTT and a carried, detached state.

    Batch ``position`` p continues batch p−1 (``StreamBatches``); when a batch does not continue
    the previous one — a new epoch, a resumed run, the first batch — the state starts at zero.
    """

    def __init__(self) -> None:
        self.hidden: Any = None
        self.expected_position: int | None = None

    def step(self, model: nn.Module, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        position = int(batch["position"])
        hidden = self.hidden if position == self.expected_position else None
        out = model(batch["input_ids"], hidden=hidden, labels=batch["labels"])
        self.hidden = detach_hidden(out.hidden)
        self.expected_position = position + 1
        return out.loss, {"perplexity": _perplexity(float(out.loss.detach()))}

    def evaluate(self, model: nn.Module, batches: Iterable[dict[str, Any]]) -> dict[str, float]:
        total, count, hidden = 0.0, 0, None
        for batch in batches:
            out = model(batch["input_ids"], hidden=hidden, labels=batch["labels"])
            hidden = out.hidden
            total += float(out.loss) * batch["labels"].numel()
            count += batch["labels"].numel()
        loss = total / max(1, count)
        return {"loss": loss, "perplexity": _perplexity(loss)}


class BiLMTask:
    """ELMo pre-training: mean of the forward and backward LM losses on padded sentences."""

    def step(self, model: nn.Module, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        out = model(batch["input_ids"], attention_mask=batch["attention_mask"])
        return out.loss, {"forward_perplexity": _perplexity(float(out.forward_loss.detach())),
                          "backward_perplexity": _perplexity(float(out.backward_loss.detach()))}

    def evaluate(self, model: nn.Module, batches: Iterable[dict[str, Any]]) -> dict[str, float]:
        sums = {"forward": 0.0, "backward": 0.0}
        count = 0
        for batch in batches:
            out = model(batch["input_ids"], attention_mask=batch["attention_mask"])
            predicted = int(batch["attention_mask"].sum()) - batch["attention_mask"].shape[0]
            sums["forward"] += float(out.forward_loss) * predicted
            sums["backward"] += float(out.backward_loss) * predicted
            count += predicted
        forward, backward = sums["forward"] / max(1, count), sums["backward"] / max(1, count)
        loss = (forward + backward) / 2
        return {"loss": loss, "perplexity": _perplexity(loss),
                "forward_perplexity": _perplexity(forward),
                "backward_perplexity": _perplexity(backward)}


LM_ARCHITECTURES = ("nnlm", "rnn", "lstm", "elmo")


@dataclass
class LMRecipe:
    """How to batch a corpus for one architecture (the model's own sizes are its config)."""

    arch: str = "lstm"
    batch_size: int = 20
    bptt: int = 35           # rnn / lstm: truncated-BPTT length
    order: int = 5           # nnlm: n (the window is n−1 words)
    max_sentence_length: int = 100  # elmo: longer sentences are cut

    def __post_init__(self) -> None:
        if self.arch not in LM_ARCHITECTURES:
            raise PlmError(f"arch must be one of {', '.join(LM_ARCHITECTURES)}, not "
                           f"{self.arch!r}", field="arch")


@dataclass(frozen=True)
class LMOptimization:
    """Optimizer, learning rate and gradient clipping that an architecture learns well with."""

    optimizer: str
    learning_rate: float
    max_grad_norm: float


def default_optimization(arch: str) -> LMOptimization:
    """rnn/lstm/elmo: Zaremba et al.'s plain SGD, lr 20, gradients clipped at 0.25 — on 4,000 PTB
    sentences a 2-layer LSTM reaches test perplexity 222 with it and stays near 400 with Adam
    (5e-3 or 2e-3) in the same number of steps. ELMo's biLM is two such LSTM LMs: on 15,200
    sentences (one epoch, batch 4) its forward perplexity is 159 with this SGD against 173–186
    with Adam 3e-3. nnlm: Adam 1e-3, clipped at 5."""
    if arch in ("rnn", "lstm", "elmo"):
        return LMOptimization("sgd", 20.0, 0.25)
    return LMOptimization("adam", 1e-3, 5.0)


def build_language_model(recipe: LMRecipe, vocab: Vocabulary, **sizes: Any) -> nn.Module:
    """The model for ``recipe.arch`` with ``sizes`` overriding its config's defaults."""
    sizes = {k: v for k, v in sizes.items() if v is not None}
    if recipe.arch == "nnlm":
        return NNLM(NNLMConfig(vocab_size=len(vocab), context_size=recipe.order - 1, **sizes))
    if recipe.arch in ("rnn", "lstm"):
        return RNNLanguageModel(RNNLMConfig(vocab_size=len(vocab), cell=recipe.arch, **sizes))
    ids = {"pad_token_id": vocab.index(PAD), "bos_token_id": vocab.index(BOS),
           "eos_token_id": vocab.index(EOS)}
    sizes.pop("tie_weights", None)
    return ElmoBiLM(ElmoConfig(vocab_size=len(vocab), **ids, **sizes))


def lm_data(recipe: LMRecipe, sentences: Sequence[Sequence[str]], vocab: Vocabulary, *,
            shuffle: bool, seed: int = 0) -> tuple[Any, Any]:
    """(BatchSource, task) for ``recipe.arch`` over ``sentences``."""
    if recipe.arch == "nnlm":
        windows = ngram_windows(encode_sentences(sentences, vocab), recipe.order,
                                vocab.index(BOS), vocab.index(EOS))
        return window_batches(windows, recipe.batch_size, shuffle=shuffle, seed=seed), \
            NextWordTask()
    if recipe.arch in ("rnn", "lstm"):
        return StreamBatches(encode_stream(sentences, vocab), recipe.batch_size, recipe.bptt), \
            StreamLMTask()
    return sentence_batches(encode_sentences(sentences, vocab), recipe.batch_size,
                            bos_id=vocab.index(BOS), eos_id=vocab.index(EOS),
                            pad_id=vocab.index(PAD), shuffle=shuffle, seed=seed,
                            max_length=recipe.max_sentence_length), BiLMTask()


def train_language_model(recipe: LMRecipe, train: Sequence[Sequence[str]], vocab: Vocabulary,
                         training: TrainingConfig, *, valid: Sequence[Sequence[str]] | None = None,
                         model: nn.Module | None = None, resume: bool | str = False,
                         **sizes: Any) -> tuple[nn.Module, TrainResult]:
    """Train an NNLM, RNN, LSTM or ELMo biLM through the Trainer; returns (model, result)."""
    if model is None:
        seed_everything(training.seed)  # the initial weights: --seed reproduces them
        model = build_language_model(recipe, vocab, **sizes)
    train_data, task = lm_data(recipe, train, vocab, shuffle=True, seed=training.seed)
    eval_data = lm_data(recipe, valid, vocab, shuffle=False)[0] if valid else None
    trainer = Trainer(model, task, train_data, training, eval_data=eval_data, tokenizer=vocab)
    return model, trainer.train(resume=resume)


def evaluate_language_model(recipe: LMRecipe, model: nn.Module,
                            sentences: Sequence[Sequence[str]], vocab: Vocabulary
                            ) -> dict[str, float]:
    """Held-out loss and perplexity (per predicted token, ``</s>`` included).

    RNN/LSTM: the text is one stream cut into ``recipe.batch_size`` rows and read with the state
    carried throughout (the first token of each row is context only, the last partial row is
    dropped: fewer than ``batch_size`` tokens). NNLM: every word and ``</s>`` of every sentence.
    ELMo: the mean of the forward and backward perplexities' log.
    """
    data, task = lm_data(recipe, sentences, vocab, shuffle=False)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        metrics = task.evaluate(model, data.batches(0))
    model.train(was_training)
    return metrics


__all__ = ["Word2VecTask", "Word2VecRun", "train_word2vec", "word2vec_vocabulary", "NextWordTask",
           "StreamLMTask", "BiLMTask", "LMRecipe", "LM_ARCHITECTURES", "LMOptimization",
           "default_optimization", "build_language_model", "lm_data", "train_language_model",
           "evaluate_language_model"]
