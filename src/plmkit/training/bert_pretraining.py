"""BERT pre-training (masked LM + next sentence prediction): the task and the recipe.

* :class:`PretrainingTask` — one forward pass of ``BertForPreTraining`` for the one Trainer;
  held-out evaluation reports the MLM loss per masked token, its accuracy and perplexity, and the
  NSP accuracy.
* :func:`pretrain_bert` — the recipe behind ``plm pretrain``: corpus → vocabulary (MiniLM's, a
  given one, or one learnt from the corpus) → held-out documents split off → instances prepared
  once into memmap shards (reused while corpus, settings and tokenizer match) → seeded model →
  Trainer. Its parts — :func:`prepare_shards`, :func:`build_bert`, :func:`run_pretraining` — are
  what the ladder's own small BERTs are made with too, so there is one way to pre-train BERT.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from plmkit import datasets
from plmkit._io import atomic_write, write_text_atomic
from plmkit.data.collate import Batches
from plmkit.data.corpus import read_documents
from plmkit.data.pretraining import OBJECTIVES
from plmkit.data.shards import (PretrainingDataset, collate_pretraining, prepare_pretraining,
                                tokenizer_hash)
from plmkit.errors import PlmError
from plmkit.models.bert import BertConfig, BertForMaskedLM, BertForPreTraining
from plmkit.models.pretrained import load_state_dict, weights_file
from plmkit.runtime import resolve_device
from plmkit.tokenization import WordPieceTokenizer, train_wordpiece
from plmkit.training.distributed import barrier, init_distributed
from plmkit.training.trainer import Trainer, TrainingConfig, TrainResult


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


def _forward(model: nn.Module, batch: dict[str, Any]) -> Any:
    """``BertForPreTraining`` (MLM + NSP) or ``BertForMaskedLM`` (objective ``mlm``: packed rows
    carry no next-sentence label, and the model has no NSP head)."""
    extra = ({"next_sentence_label": batch["next_sentence_label"]}
             if "next_sentence_label" in batch else {})
    return model(batch["input_ids"], attention_mask=batch.get("attention_mask"),
                 token_type_ids=batch.get("token_type_ids"), labels=batch["labels"], **extra)


class PretrainingTask:
    """One forward pass of ``BertForPreTraining``; metrics: MLM/NSP losses and accuracies."""

    def step(self, model: nn.Module, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        out = _forward(model, batch)
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
            out = _forward(model, batch)
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


# --------------------------------------------------------------------------------------------
# The pre-training recipe
# --------------------------------------------------------------------------------------------
@dataclass
class PretrainDataConfig:
    """What ``plm pretrain`` needs beyond the model and TrainingConfig: the corpus, its
    vocabulary, google-research/bert's instance settings and the batches (``[data]`` in TOML)."""

    corpus: str = "prose"
    tokenizer: str = "minilm"
    train_tokenizer: int = 0
    lowercase: bool = True
    max_seq_length: int = 128
    short_seq_prob: float = 0.1
    dupe_factor: int = 5
    masked_lm_prob: float = 0.15
    max_predictions_per_seq: int = 20
    whole_word_mask: bool = False
    dynamic_masking: bool = False
    heldout_fraction: float = 0.05
    batch_size: int = 32
    eval_batch_size: int = 64
    max_eval_instances: int = 2000
    seed: int = 12345
    errors: str = "strict"
    # "mlm_nsp": BERT's pairs with next sentence prediction; "mlm": full packed rows, masked LM
    # alone (RoBERTa's FULL-SENTENCES), no NSP head loss.
    objective: str = "mlm_nsp"

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise PlmError(f"objective must be one of {', '.join(OBJECTIVES)}, not "
                           f"{self.objective!r}", field="objective")
        if not 0 < self.masked_lm_prob < 1:
            raise PlmError(f"masked_lm_prob must be in (0, 1), not {self.masked_lm_prob!r}",
                           field="masked_lm_prob")


@dataclass(frozen=True)
class PretrainRecipe:
    """A named set of defaults for ``plm pretrain --recipe NAME``: values for BertConfig
    (``model``), TrainingConfig (``training``) and PretrainDataConfig (``data``). They sit under
    the TOML file and the flags, which still win; the name is recorded in
    ``training_config.json`` so that a run says how it was made."""

    name: str
    summary: str
    model: dict[str, Any]
    training: dict[str, Any]
    data: dict[str, Any]
    needs_budget: bool = False


RECIPES: dict[str, PretrainRecipe] = {
    "bert": PretrainRecipe(
        "bert", "BERT's own recipe (the default): post-LN, dropout 0.1, MLM + NSP on sentence "
        "pairs, lr 1e-4 with 100 warm-up steps and linear decay over --max-steps",
        model={}, training={}, data={}),
    # Geiping & Goldstein's Cramming (2022), at the scale of one CPU: what a small time budget
    # buys. Each line is an option of its own (and a test); together they are the recipe that
    # benchmarks/time_to_quality.py measures against Hugging Face's run_mlm recipe.
    "budget": PretrainRecipe(
        "budget", "quality per CPU-minute: pre-LN with a final LayerNorm, no dropout, bias-free "
        "encoder linears; masked LM alone on rows packed full of sentences, masks drawn afresh "
        "each epoch; batch 64, lr 1e-3 (β₂ 0.98), warm-up over the first 10% of --max-minutes "
        "and linear decay to 0 exactly when the budget ends",
        model=dict(layer_norm_position="pre", use_bias=False, hidden_dropout_prob=0.0,
                   attention_probs_dropout_prob=0.0),
        training=dict(learning_rate=1e-3, adam_betas=(0.9, 0.98), adam_epsilon=1e-6,
                      weight_decay=0.01, max_grad_norm=0.5, schedule="linear",
                      schedule_clock="time", warmup_steps=0, warmup_ratio=0.1,
                      min_lr_ratio=0.0, max_steps=0),
        data=dict(objective="mlm", dynamic_masking=True, dupe_factor=1, batch_size=64),
        needs_budget=True),
}


def recipe(name: str) -> PretrainRecipe:
    """The recipe called ``name``; an unknown name is a one-line error listing the known ones."""
    if name not in RECIPES:
        raise PlmError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}",
                       field="recipe")
    return RECIPES[name]


def _silent(message: str) -> None:
    """A log that says nothing (ranks other than 0 under torchrun)."""


def resolve_corpus(name: str) -> list[Path]:
    """Paths (files or folders) or built-in corpus names, comma-separated: ``general,movie_reviews``
    reads both, in that order. A path that itself contains a comma is taken whole when it exists."""
    built_in = {"prose": datasets.prose, "general": datasets.general,
                "movie_reviews": datasets.movie_reviews,
                "ptb": lambda: datasets.ptb()["train"]}
    parts = [name] if Path(name).exists() else [p.strip() for p in name.split(",")]
    corpus = []
    for part in parts:
        if part in built_in:
            corpus.append(built_in[part]())
        elif Path(part).exists():
            corpus.append(Path(part))
        else:
            raise PlmError(f"corpus not found (a file, a folder, or one of: "
                           f"{', '.join(built_in)}; several joined by commas)", path=Path(part))
    return corpus


def build_tokenizer(data: PretrainDataConfig, corpus: list[Path], output: Path,
                    progress: bool = False) -> WordPieceTokenizer:
    """MiniLM's vocabulary, a given one, or (``train_tokenizer``) one learnt from the corpus and
    kept in ``output/data`` so that a resumed run reads the same vocabulary."""
    if data.train_tokenizer:
        vocab_folder = output / "data" / f"vocab-{data.train_tokenizer}"
        if (vocab_folder / "vocab.txt").exists():
            return WordPieceTokenizer.from_pretrained(vocab_folder, lowercase=data.lowercase)
        sentences = (s for document in read_documents(corpus, errors=data.errors)
                     for s in document)
        tokenizer = train_wordpiece(sentences, vocab_size=data.train_tokenizer,
                                    lowercase=data.lowercase, show_progress=progress)
        tokenizer.save_pretrained(vocab_folder)
        return tokenizer
    if data.tokenizer == "minilm":
        return WordPieceTokenizer.from_pretrained(datasets.minilm_dir())
    return WordPieceTokenizer.from_pretrained(data.tokenizer)


def split_heldout(corpus: list[Path], data: PretrainDataConfig,
                  folder: Path) -> tuple[Path, Path | None]:
    """Every k-th document goes to the held-out file, so no held-out sentence is trained on."""
    train_path, heldout_path = folder / "corpus-train.txt", folder / "corpus-heldout.txt"
    documents = list(read_documents(corpus, errors=data.errors))
    if not documents:
        raise PlmError("the corpus has no sentences", path=", ".join(map(str, corpus)))
    every = max(2, round(1 / data.heldout_fraction)) if data.heldout_fraction > 0 else 0
    if every and len(documents) < 2 * every:  # a small corpus still gets a held-out document
        every = len(documents) // 2 if len(documents) >= 4 else 0
    if every:
        heldout = [d for i, d in enumerate(documents) if i % every == every - 1]
        train = [d for i, d in enumerate(documents) if i % every != every - 1]
    else:
        train, heldout = documents, []
    for path, part in ((train_path, train), (heldout_path, heldout)):
        with atomic_write(path) as handle:
            handle.write("\n\n".join("\n".join(d) for d in part) + "\n")
    return train_path, (heldout_path if heldout else None)


def prepare_shards(text: Path, tokenizer: Any, folder: Path, data: PretrainDataConfig, *,
                   dupe_factor: int, format: str = "bert", progress: bool = False) -> Path:
    """``text`` → NSP instances in memmap shards at ``folder``, with ``data``'s sequence length,
    short-sequence probability, seed and UTF-8 handling. ``format`` is the corpus layout
    (:func:`plmkit.data.corpus.read_documents`): ``plm pretrain`` writes its split files one
    sentence a line, so ``"bert"``."""
    prepare_pretraining(text, tokenizer, folder, max_seq_length=data.max_seq_length,
                        short_seq_prob=data.short_seq_prob, dupe_factor=dupe_factor,
                        seed=data.seed, errors=data.errors, progress=progress, format=format,
                        objective=data.objective)
    return folder


def prepare_data(corpus: list[Path], tokenizer: Any, data: PretrainDataConfig, output: Path,
                 progress: bool, log: Callable[[str], None] = print
                 ) -> tuple[Path, Path | None]:
    """Prepare shards once; reuse them while corpus, settings and tokenizer are unchanged."""
    folder = output / "data"
    folder.mkdir(parents=True, exist_ok=True)
    recipe = {k: getattr(data, k) for k in ("max_seq_length", "short_seq_prob", "dupe_factor",
                                            "heldout_fraction", "seed")}
    if data.objective != "mlm_nsp":  # so that earlier runs' stamps (NSP only) stay valid
        recipe["objective"] = data.objective
    recipe["tokenizer"] = tokenizer_hash(tokenizer)
    recipe["corpus"] = [_fingerprint(p) for p in corpus]
    stamp = folder / "recipe.json"
    train_dir, heldout_dir = folder / "train", folder / "heldout"
    if stamp.exists() and json.loads(stamp.read_text()) == recipe and train_dir.exists():
        log(f"reusing prepared data in {folder}")
        return train_dir, heldout_dir if heldout_dir.exists() else None
    train_text, heldout_text = split_heldout(corpus, data, folder)
    prepare_shards(train_text, tokenizer, train_dir, data, dupe_factor=data.dupe_factor,
                   progress=progress)
    if heldout_text is not None:
        prepare_shards(heldout_text, tokenizer, heldout_dir, data, dupe_factor=1,
                       progress=progress)
    write_text_atomic(stamp, json.dumps(recipe, indent=2))
    return train_dir, heldout_dir if heldout_text is not None else None


def _fingerprint(path: Path) -> str:
    """Cheap identity of a corpus path: names, sizes and modification times."""
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for item in files:
        if item.is_file():
            stat = item.stat()
            digest.update(f"{item}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def build_bert(config: BertConfig, seed: int, objective: str = "mlm_nsp"
               ) -> BertForPreTraining | BertForMaskedLM:
    """The pre-training network at initial weights drawn after seeding torch with ``seed``: the
    same seed gives the same network, so two runs with one ``--seed`` match from step 0.
    ``mlm_nsp``: ``BertForPreTraining``; ``mlm``: ``BertForMaskedLM`` with the sparse decoder,
    so there is no pooler and no NSP head to carry, train or save."""
    torch.manual_seed(seed)
    if objective == "mlm":
        return BertForMaskedLM(config, sparse_mlm=True)
    return BertForPreTraining(config)


class _Subset:
    """The first held-out instances only: evaluation cost stays bounded on a large corpus."""

    def __init__(self, dataset: Any, indices: Any) -> None:
        self.dataset, self.indices = dataset, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[int(self.indices[index])]


def pretraining_batches(tokenizer: Any, train_dir: Path, heldout_dir: Path | None,
                        data: PretrainDataConfig, seed: int) -> tuple[Batches, Batches | None]:
    """Training batches (masked as ``data`` says, shuffled with ``seed``, grouped by length) and
    held-out batches (static masks, at most ``data.max_eval_instances``)."""
    masking = dict(masked_lm_prob=data.masked_lm_prob,
                   max_predictions_per_seq=data.max_predictions_per_seq,
                   whole_word_mask=data.whole_word_mask)
    train_set = PretrainingDataset(train_dir, tokenizer, dynamic_masking=data.dynamic_masking,
                                   **masking)
    pad = tokenizer.pad_token_id

    def collate(examples):
        return collate_pretraining(examples, pad)

    train = Batches(train_set, data.batch_size, collate, seed=seed, lengths=train_set.lengths)
    if heldout_dir is None:
        return train, None
    heldout_set = PretrainingDataset(heldout_dir, tokenizer, **masking)
    chosen = np.arange(min(len(heldout_set), data.max_eval_instances))
    return train, Batches(_Subset(heldout_set, chosen), data.eval_batch_size, collate,
                          shuffle=False)


def run_pretraining(model: BertForPreTraining, tokenizer: Any, train_dir: Path,
                    heldout_dir: Path | None, data: PretrainDataConfig,
                    training: TrainingConfig, *, resume: bool | str = False,
                    log: Callable[[str], None] = _silent) -> tuple[Trainer, TrainResult]:
    """Masked LM + NSP on prepared shards with the one Trainer; the Trainer (for its device and
    rank) and the run."""
    train, evaluation = pretraining_batches(tokenizer, train_dir, heldout_dir, data,
                                            training.seed)
    config = model.config
    log(f"BERT {config.num_hidden_layers}/{config.hidden_size}, "
        f"{model.num_parameters() / 1e6:.1f}M parameters; {len(train.dataset):,} training "
        f"instances, {0 if evaluation is None else len(evaluation.dataset):,} held-out")
    trainer = Trainer(model, PretrainingTask(), train, training, eval_data=evaluation,
                      tokenizer=tokenizer)
    return trainer, trainer.train(resume=resume)


def pretrain_bert(model_config: BertConfig, data: PretrainDataConfig, training: TrainingConfig,
                  *, resume: bool | str = False, init: str | Path | None = None,
                  log: Callable[[str], None] = print) -> TrainResult:
    """Pre-train BERT on ``data.corpus``; the model, its vocabulary, ``metrics.jsonl`` and
    ``curves.png`` go to ``training.output_dir`` (HF layout), the prepared data to its ``data``
    folder. Under torchrun, rank 0 builds the vocabulary and the shards while the others wait,
    and only rank 0 logs. ``init``: a checkpoint whose weights the network starts from
    (continued pre-training; ``model_config`` and ``data.tokenizer`` must be its own, as
    ``plm pretrain --init`` makes them)."""
    output = Path(training.output_dir)
    if not resume and any(output.glob("checkpoint-*")):
        raise PlmError("output folder already holds checkpoints; pass --resume to continue, or "
                       "choose a new --output", path=output)
    corpus = resolve_corpus(data.corpus)
    context = init_distributed(resolve_device(training.device))
    tokenizer = (build_tokenizer(data, corpus, output, training.progress) if context.is_main
                 else None)
    barrier(context)
    if tokenizer is None:
        tokenizer = build_tokenizer(data, corpus, output)
    model_config.vocab_size = tokenizer.vocab_size
    model_config.pad_token_id = tokenizer.pad_token_id
    model_config.max_position_embeddings = max(model_config.max_position_embeddings,
                                               data.max_seq_length)
    if context.is_main:
        train_dir, heldout_dir = prepare_data(corpus, tokenizer, data, output, training.progress,
                                              log)
    barrier(context)
    if not context.is_main:
        train_dir, heldout_dir = prepare_data(corpus, tokenizer, data, output, False, log)
    say = log if context.is_main else _silent
    model = build_bert(model_config, training.seed, data.objective)
    if init is not None:
        model.load_checkpoint_state(load_state_dict(init), source=weights_file(init))
        say(f"weights from {init}")
    _, result = run_pretraining(model, tokenizer, train_dir, heldout_dir, data, training,
                                resume=resume, log=say)
    shown = {k: round(v, 4) for k, v in result.metrics.items() if k.startswith("eval_")}
    say(f"{result.global_step} steps; held-out {json.dumps(shown)}")
    say(f"model in {output} (HF layout), curves in {output / 'curves.png'}")
    return result


__all__ = ["RECIPES", "PretrainDataConfig", "PretrainRecipe", "PretrainingTask", "recipe", "build_bert", "build_tokenizer",
           "prepare_data", "prepare_shards", "pretrain_bert", "pretraining_batches",
           "resolve_corpus", "run_pretraining", "split_heldout"]
