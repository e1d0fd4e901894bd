"""Translation as a task of the one Trainer: teacher forcing with label-smoothed cross-entropy.

``step``: the decoder reads the reference shifted right and predicts every next token at once;
the loss is cross-entropy against ``(1 − ε)·one_hot + ε·uniform`` (ε = 0.1 in the paper), averaged
over the target tokens. Use it with ``TrainingConfig(schedule="noam", warmup_steps=4000,
noam_d_model=d_model, learning_rate=1.0 or 2.0, adam_betas=(0.9, 0.98), adam_epsilon=1e-9)`` for
the paper's optimiser.

``evaluate``: held-out loss, plain per-token NLL and its perplexity, token accuracy under teacher
forcing; and, when given a ``decode`` function (a search from :mod:`plmkit.evaluation.decoding`,
passed in so that the caller chooses greedy or beam and its settings), the sentence exact-match
rate and corpus BLEU (:func:`plmkit.evaluation.decoding.corpus_bleu`, the one place BLEU is
computed) of the decoded outputs against the references. These references are the label ids
spelled back by the vocabulary (so [UNK] and WordPiece's spacing count the same on both sides);
the test BLEU that ``plm train-translation`` reports at the end is against the raw reference text
(:func:`plmkit.evaluation.decoding.evaluate_bleu`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from plmkit.data.parallel import (ParallelCorpus, ParallelDataset, encode_parallel, read_parallel,
                                  resolve_parallel_argument, special_tokens,
                                  train_joint_vocabulary, translation_batches,
                                  vocabulary_size)
from plmkit.downstream.loading import load_tokenizer
from plmkit.errors import PlmError
from plmkit.evaluation.decoding import corpus_bleu
from plmkit.models.transformer import TransformerModel, transformer_config

# decode(model, input_ids, attention_mask) -> generated ids per sentence (no BOS/EOS)
DecodeFunction = Callable[[nn.Module, Tensor, Tensor | None], list[list[int]]]


def _references(labels: Tensor, eos_token_id: int) -> list[list[int]]:
    """Label rows → the reference ids (no padding, no EOS)."""
    out = []
    for row in labels.tolist():
        ids = [t for t in row if t != -100]
        if ids and ids[-1] == eos_token_id:
            ids = ids[:-1]
        out.append(ids)
    return out


class TranslationTask:
    """One forward pass of an encoder–decoder model under teacher forcing.

    Args:
        label_smoothing: ε of the smoothed target distribution (0 = plain cross-entropy).
        decode: optional search used by :meth:`evaluate` for exact match and BLEU, e.g.
            ``functools.partial(plmkit.evaluation.decoding.translate_batch, beam_size=1)``.
        tokenizer: turns ids back into text for BLEU (without it, BLEU is not computed).
        bleu_tokenize: sacreBLEU's tokeniser for the target language.
        max_decode_sentences: decode at most this many held-out sentences per evaluation (the
            loss still uses all of them); 0 = all.
    """

    def __init__(self, label_smoothing: float = 0.1, *, decode: DecodeFunction | None = None,
                 tokenizer: Any = None, bleu_tokenize: str = "13a",
                 max_decode_sentences: int = 0) -> None:
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError("label_smoothing must be in [0, 1)")
        self.label_smoothing = label_smoothing
        self.decode = decode
        self.tokenizer = tokenizer
        self.bleu_tokenize = bleu_tokenize
        self.max_decode_sentences = max_decode_sentences

    def forward(self, model: nn.Module, batch: dict[str, Any]) -> Any:
        return model(batch["input_ids"], attention_mask=batch.get("attention_mask"),
                     decoder_input_ids=batch.get("decoder_input_ids"), labels=batch["labels"],
                     label_smoothing=self.label_smoothing)

    def step(self, model: nn.Module, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        out = self.forward(model, batch)
        with torch.no_grad():
            targets = batch["labels"][batch["labels"] != -100]
            accuracy = (out.logits.argmax(-1) == targets).float().mean() if targets.numel() else 0
            metrics = {"nll_loss": float(out.nll_loss), "token_accuracy": float(accuracy)}
        return out.loss, metrics

    def evaluate(self, model: nn.Module, batches: Iterable[dict[str, Any]]) -> dict[str, float]:
        """Loss, NLL, perplexity and token accuracy per target token; exact match and BLEU when
        a ``decode`` function was given."""
        loss_sum = nll_sum = 0.0
        correct = tokens = 0
        hypotheses: list[list[int]] = []
        references: list[list[int]] = []
        config = getattr(model, "config", None)
        eos = getattr(config, "eos_token_id", None)
        for batch in batches:
            out = self.forward(model, batch)
            targets = batch["labels"][batch["labels"] != -100]
            count = targets.numel()
            loss_sum += float(out.loss) * count
            nll_sum += float(out.nll_loss) * count
            correct += int((out.logits.argmax(-1) == targets).sum())
            tokens += count
            budget = self.max_decode_sentences or float("inf")
            if self.decode is not None and len(hypotheses) < budget:
                hypotheses += self.decode(model, batch["input_ids"], batch.get("attention_mask"))
                references += _references(batch["labels"], eos)
        nll = nll_sum / max(1, tokens)
        metrics = {"loss": loss_sum / max(1, tokens), "nll_loss": nll,
                   "perplexity": math.exp(min(nll, 50.0)),
                   "token_accuracy": correct / max(1, tokens)}
        if self.decode is not None and hypotheses:
            if self.max_decode_sentences:
                hypotheses = hypotheses[: self.max_decode_sentences]
                references = references[: self.max_decode_sentences]
            metrics["exact_match"] = sum(h == r for h, r in zip(hypotheses, references)) / len(
                hypotheses)
            if self.tokenizer is not None:
                metrics["bleu"] = corpus_bleu([self.tokenizer.decode(h) for h in hypotheses],
                                              [self.tokenizer.decode(r) for r in references],
                                              tokenize=self.bleu_tokenize)
        return metrics


def paper_training_config(output_dir: str, d_model: int, **overrides: Any):
    """The paper's optimiser as a :class:`~plmkit.training.TrainingConfig`: Adam (β₂ = 0.98,
    ε = 10⁻⁹), lr = d^-½·min(step^-½, step·warmup^-1.5) with 4000 warm-up steps, no weight decay."""
    from plmkit.training.trainer import TrainingConfig

    values: dict[str, Any] = dict(output_dir=output_dir, optimizer="adam", adam_betas=(0.9, 0.98),
                                  adam_epsilon=1e-9, schedule="noam", warmup_steps=4000,
                                  noam_d_model=d_model, learning_rate=1.0, weight_decay=0.0,
                                  max_grad_norm=0.0)
    values.update(overrides)
    return TrainingConfig(**values)


# --------------------------------------------------------------------------------------------
# The recipe behind ``plm train-translation``
# --------------------------------------------------------------------------------------------
BUILTIN_CORPORA = ("en_de", "en-de")


@dataclass
class TranslationSetup:
    """What to train on and how big: everything of ``plm train-translation`` but the optimiser.

    ``train``/``dev``/``test``: one TSV file, two aligned files, a fairseq-style prefix (with
    ``.<source_lang>``/``.<target_lang>`` files), or the built-in ``en_de`` (then dev and test
    default to its own splits; ``source_lang="de"`` translates the other way).
    """

    train: list[str]
    dev: list[str] | None = None
    test: list[str] | None = None
    source_lang: str = "en"
    target_lang: str = "de"
    size: str = "small"
    vocab_size: int = 8000
    tokenizer: str | None = None
    lowercase: bool = False
    max_length: int = 64
    batch_size: int = 64
    label_smoothing: float = 0.1
    dropout: float | None = None
    norm_first: bool = False
    positional_encoding: str = "sinusoidal"
    share_embeddings: bool = True
    tie_output: bool = True
    bleu_sentences: int = 500

    @property
    def bleu_tokenize(self) -> str:
        return {"zh": "zh", "ja": "char", "ko": "char"}.get(self.target_lang, "13a")


@dataclass
class TranslationData:
    tokenizer: Any
    train: ParallelCorpus
    dev: ParallelCorpus | None
    test: ParallelCorpus | None
    train_set: ParallelDataset
    dev_set: ParallelDataset | None


def _corpus(value: list[str] | None, setup: TranslationSetup, split: str,
            log: Callable[[str], None]) -> ParallelCorpus | None:
    if not value:
        return None
    if len(value) == 1 and value[0] in BUILTIN_CORPORA:
        from plmkit.datasets import en_de

        languages = {setup.source_lang, setup.target_lang}
        if languages != {"en", "de"}:
            raise PlmError(f"the built-in en_de corpus is English–German, not "
                           f"{setup.source_lang}→{setup.target_lang}", field="source_lang")
        corpus = read_parallel(en_de()[split], reverse=setup.source_lang == "de")
    else:
        paths = resolve_parallel_argument(value, source_lang=setup.source_lang,
                                          target_lang=setup.target_lang)
        corpus = read_parallel(paths)
    log(f"{split}: {corpus.describe()}")
    return corpus


def _tokenizer(setup: TranslationSetup, train: ParallelCorpus, output_dir: Path, resume: Any,
               progress: bool,
               log: Callable[[str], None]) -> Any:
    if setup.tokenizer:
        return load_tokenizer(setup.tokenizer)
    if resume:
        from plmkit.training.checkpoint import list_checkpoints

        found = list_checkpoints(output_dir)
        if resume is not True and str(resume) not in ("True", "auto", "latest"):
            named = Path(resume)  # checkpoint-N means the one in the output folder
            return load_tokenizer(named if named.exists() else output_dir / named)
        if found:
            return load_tokenizer(found[-1])
    log(f"training a joint WordPiece vocabulary of {setup.vocab_size:,} on both sides "
        f"({'uncased' if setup.lowercase else 'cased'})")
    return train_joint_vocabulary(train.pairs, vocab_size=setup.vocab_size,
                                  lowercase=setup.lowercase, show_progress=progress)


def load_translation_data(setup: TranslationSetup, *, output_dir: str | Path = ".",
                          resume: Any = False, log: Callable[[str], None] = print,
                          progress: bool = True) -> TranslationData:
    """Read the corpora (sizes printed), get the vocabulary, encode (truncations counted)."""
    dev_value, test_value = setup.dev, setup.test
    if len(setup.train) == 1 and setup.train[0] in BUILTIN_CORPORA:
        dev_value = dev_value or setup.train
        test_value = test_value or setup.train
    train = _corpus(setup.train, setup, "train", log)
    dev = _corpus(dev_value, setup, "dev", log)
    test = _corpus(test_value, setup, "test", log)
    assert train is not None
    tokenizer = _tokenizer(setup, train, Path(output_dir), resume, progress, log)
    train_set, report = encode_parallel(train.pairs, tokenizer, max_length=setup.max_length)
    if report.warning():
        log(f"train: {report.warning()}")
    dev_set = None
    if dev is not None:
        dev_set, report = encode_parallel(dev.pairs, tokenizer, max_length=setup.max_length)
        if report.warning():
            log(f"dev: {report.warning()}")
    source_tokens, target_tokens = train_set.num_tokens()
    log(f"train: {source_tokens:,} source and {target_tokens:,} target tokens")
    return TranslationData(tokenizer, train, dev, test, train_set, dev_set)


def build_translation_model(setup: TranslationSetup, tokenizer: Any) -> TransformerModel:
    specials = special_tokens(tokenizer)
    overrides: dict[str, Any] = dict(
        vocab_size=vocabulary_size(tokenizer), pad_token_id=specials.pad, bos_token_id=specials.bos,
        eos_token_id=specials.eos, max_position_embeddings=setup.max_length,
        norm_first=setup.norm_first, positional_encoding=setup.positional_encoding,
        share_embeddings=setup.share_embeddings, tie_output=setup.tie_output,
        source_lang=setup.source_lang, target_lang=setup.target_lang)
    if setup.dropout is not None:
        overrides["dropout"] = setup.dropout
    return TransformerModel(transformer_config(setup.size, **overrides))


def train_translation(setup: TranslationSetup, training: Any, *,
                      decode: DecodeFunction | None = None, resume: Any = False,
                      log: Callable[[str], None] = print,
                      ) -> tuple[TransformerModel, TranslationData, Any]:
    """Corpora → joint vocabulary → Transformer → the one Trainer. ``decode`` (greedy search,
    passed in from the evaluation layer) adds dev exact match and BLEU to each evaluation."""
    from plmkit.training.trainer import Trainer, seed_everything

    data = load_translation_data(setup, output_dir=training.output_dir, resume=resume, log=log,
                                 progress=training.progress)
    seed_everything(training.seed)  # the initial weights are drawn here: --seed reproduces them
    model = build_translation_model(setup, data.tokenizer)
    log(f"model: Transformer {setup.size}, {model.num_parameters():,} parameters, "
        f"vocabulary {model.config.vocab_size:,}")
    pad = model.config.pad_token_id
    train_batches = translation_batches(data.train_set, setup.batch_size, pad, seed=training.seed)
    eval_batches = (translation_batches(data.dev_set, setup.batch_size, pad, shuffle=False)
                    if data.dev_set is not None else None)
    task = TranslationTask(setup.label_smoothing, decode=decode, tokenizer=data.tokenizer,
                           bleu_tokenize=setup.bleu_tokenize,
                           max_decode_sentences=setup.bleu_sentences)
    trainer = Trainer(model, task, train_batches, training, eval_data=eval_batches,
                      tokenizer=data.tokenizer)
    result = trainer.train(resume=resume)
    return model, data, result


__all__ = [
    "DecodeFunction", "TranslationData", "TranslationSetup", "TranslationTask",
    "build_translation_model", "corpus_bleu", "load_translation_data", "paper_training_config",
    "train_translation",
]
