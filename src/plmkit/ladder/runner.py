"""The runner: each generation pre-trained and then used on both tasks, one row each
(:class:`Ladder`); :func:`run_ladder` runs the chosen generations and writes the outputs, and
:func:`pretrain_bert` pre-trains the ladder's BERT alone for reuse."""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import math
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from plmkit._io import atomic_dir
from plmkit.data.collate import Batches
from plmkit.data.lm import EOS, LM_SPECIALS, PAD, Vocabulary, encode_stream
from plmkit.data.tasks import TaskCollator, write_conll
from plmkit.data.text_lm import lm_batches
from plmkit.errors import PlmError
from plmkit.ladder.baselines import hmm_tagger_f1, ngram_classifier_accuracy
from plmkit.ladder.data import LadderData, load_data, pick, words_of
from plmkit.ladder.heads import (ElmoFeatures, FeatureHead, FeatureHeadConfig, FrozenLayers,
                                 GPTFeatures, RecurrentFeatures, WindowEmbeddings, WordsAndContext)
from plmkit.ladder.plan import (BLOCK, CONTROLS, DESCRIPTIONS, GENERATIONS, MAX_CHARS, MAX_WORDS,
                                PRETRAINING_RECORD, LadderConfig, Plan, Row,
                                describe_pretraining, pretraining_record)
from plmkit.ladder.report import cell, previous_rows, write_outputs
from plmkit.models.bert import BertForPreTraining, BertModel, bert_config
from plmkit.models.gpt import GPTLMHeadModel, gpt_config
from plmkit.models.ngram import NgramLM
from plmkit.tokenization import WordPieceTokenizer
from plmkit.training.bert_pretraining import (PretrainDataConfig, build_bert, prepare_shards,
                                              run_pretraining)
from plmkit.training.causal_lm import CausalLMTask, evaluate_lm
from plmkit.training.finetune import (ClassificationTask, FinetuneConfig, TaggingTask,
                                      TaskSettings, finetune)
from plmkit.training.reporting import plot_curves, read_metrics
from plmkit.training.trainer import Trainer, TrainingConfig

# The ladder is the reference table of the lineage: its rows must mean the same on every machine,
# so it trains in fp32 rather than in what --precision auto picks (bf16 where native, which moves
# every row a little on AVX-512 BF16 processors and not on AVX2 ones).
LADDER_PRECISION = "fp32"


def masked_lm_summary(metrics: Path, sentences: Sequence[Sequence[str]],
                      last: int = 10) -> dict[str, float]:
    """Where a masked LM ended (its last ``last`` logged windows) beside ``unigram_loss``: the
    cross-entropy of guessing each masked token by its corpus frequency, the stage a masked LM
    sits at until it learns to read the context."""
    counts = Counter(token for sentence in sentences for token in sentence)
    total = sum(counts.values())
    summary = {"unigram_loss": round(-sum(c / total * math.log(c / total)
                                          for c in counts.values()), 4)}
    records = [r for r in read_metrics(metrics) if "mlm_loss" in r][-last:] \
        if metrics.is_file() else []
    for key in ("mlm_loss", "mlm_accuracy"):
        if records:
            summary[key] = round(float(np.mean([r[key] for r in records])), 4)
    return summary


class Ladder:
    """Runs the chosen generations on one :class:`LadderData` and collects their rows."""

    def __init__(self, config: LadderConfig, data: LadderData, plan: Plan, work: Path,
                 log: Callable[[str], None]) -> None:
        self.config, self.data, self.plan, self.work, self.log = config, data, plan, work, log
        self.reused_seconds = 0.0  # a reused checkpoint's recorded pre-training time (this row)
        self._reused_sizes: dict[str, int] = {}  # reused checkpoint → encoder parameters
        # the counting generation learns from the task's own words; the others see them through
        # their pre-trained vocabulary
        self.raw_polarity_words = ([words_of(t) for t, _ in data.polarity_train],
                                   [words_of(t) for t, _ in data.polarity_dev])
        if config.task_text:
            data.lm_train = data.lm_train + [w for w in self.raw_polarity_words[0] if w]
        self.vocab = Vocabulary.build(data.lm_train, max_size=plan.vocab_size)
        self.zh_vocab = Vocabulary.build(data.zh_train)
        # Every generation reads the same token streams: words outside the vocabulary are <unk>.
        data.lm_train = self.in_vocabulary(data.lm_train)
        data.lm_test = self.in_vocabulary(data.lm_test)
        self.polarity_words = tuple(map(self.in_vocabulary, self.raw_polarity_words))
        # the few-label runs' training sentences: fixed subsets, the same for every generation
        self.few_subsets = [
            np.sort(np.random.default_rng(config.seed + 2 + draw).permutation(
                len(data.polarity_train))[:plan.few_labels]).tolist()
            for draw in range(plan.few_draws if plan.few_labels else 0)]

    def in_vocabulary(self, sentences: list[list[str]]) -> list[list[str]]:
        known, unk = self.vocab.stoi, self.vocab.unk
        return [[w if w in known else unk for w in sentence] for sentence in sentences]

    # ---------------------------------------------------------------- shared pieces
    def training(self, name: str, *, epochs: float, lr: float, eval_every: int = 0,
                 optimizer: str = "adamw", max_steps: int = 0, max_grad_norm: float = 5.0,
                 **extra: Any):
        return TrainingConfig(output_dir=str(self.work / name), num_epochs=epochs,
                              max_steps=max_steps, learning_rate=lr, optimizer=optimizer,
                              weight_decay=0.0, schedule="linear", warmup_ratio=0.05,
                              max_grad_norm=max_grad_norm, seed=self.config.seed, log_every=20,
                              eval_every=eval_every, save_every=0, keep_last=1,
                              progress=self.config.progress, plot=False, save_final=False,
                              precision=LADDER_PRECISION, **extra)

    def _features(self, task: str, vocab, subset: Sequence[int] | None = None
                  ) -> tuple[list[dict], list[dict], Any]:
        """(train, dev) feature dicts of a task in ``vocab``'s ids (``subset``: only these
        training examples), and the task object."""
        if task == "polarity":
            label2id = {label: i for i, label in enumerate(self.data.polarity_labels)}
            words_train, words_dev = self.polarity_words

            def encode(words: list[str], label: str, index: int) -> dict:
                ids = vocab.encode(words or ["<unk>"]).tolist()
                return {"input_ids": ids, "labels": label2id.get(label, 0), "example_index": index}

            train = [encode(w, lab, i) for i, (w, (_, lab)) in
                     enumerate(zip(words_train, self.data.polarity_train))]
            dev = [encode(w, lab, i) for i, (w, (_, lab)) in
                   enumerate(zip(words_dev, self.data.polarity_dev))]
            task = ClassificationTask(dict(enumerate(self.data.polarity_labels)))
            return pick(train, subset), dev, task
        label2id = {label: i for i, label in enumerate(self.data.ner_labels)}

        def tagged(chars: list[str], tags: list[str], index: int) -> dict:
            return {"input_ids": vocab.encode(chars).tolist(),
                    "labels": [label2id[t] for t in tags],
                    "word_ids": list(range(len(chars))), "example_index": index}

        train = [tagged(c, t, i) for i, (c, t) in enumerate(self.data.ner_train)]
        dev = [tagged(c, t, i) for i, (c, t) in enumerate(self.data.ner_dev)]
        references = [tags for _, tags in self.data.ner_dev]
        return train, dev, TaggingTask(dict(enumerate(self.data.ner_labels)), references, "bio")

    def fit_head(self, name: str, task: str, encoder: nn.Module, vocab, *, pool: str = "mean",
                 lr: float = 1e-2, epochs: int | None = None, batch_size: int = 16,
                 hidden_size: int = 128, subset: Sequence[int] | None = None) -> float:
        """Train a FeatureHead through the Trainer; its best dev metric over the epochs.

        With ``subset`` (the few-label run) the epochs grow by the ratio of the full training set
        to the subset: the head gets as many updates as with every label, only less to learn from.
        """
        train, dev, task_object = self._features(task, vocab, subset)
        epochs = self._epochs(epochs or self.plan.head_epochs, subset)
        num_labels = (len(self.data.polarity_labels) if task == "polarity"
                      else len(self.data.ner_labels))
        head = "classification" if task == "polarity" else "tagging"
        torch.manual_seed(self.config.seed)
        model = FeatureHead(encoder, FeatureHeadConfig(num_labels, head, pool,
                                                       hidden_size=hidden_size))
        collate = TaskCollator(vocab.index(PAD))
        train_batches = Batches(train, batch_size, collate, shuffle=True, seed=self.config.seed,
                                lengths=[len(f["input_ids"]) for f in train])
        dev.sort(key=lambda f: -len(f["input_ids"]))  # results are keyed by example_index
        dev_batches = Batches(dev, 64, collate, shuffle=False)
        run = self.run_name(f"{name}-{task}", subset)
        metric = "eval_accuracy" if task == "polarity" else "eval_f1"
        training = self.training(run, epochs=epochs, lr=lr, metric_for_best=metric)
        trainer = Trainer(model, task_object, train_batches, training, eval_data=dev_batches)
        trainer.train()
        if trainer.state.best_metric is None:
            raise PlmError(f"{run}: the Trainer reported no {metric}")
        return float(trainer.state.best_metric)

    def log_pretraining(self, sentences: Sequence, vocab) -> None:
        language = "English" if vocab is self.vocab else "Chinese"
        self.log(f"  pre-training on {len(sentences):,} {language} sentences")

    def _epochs(self, epochs: float, subset: Sequence[int] | None) -> float:
        if subset is None:
            return epochs
        return epochs * len(self.data.polarity_train) / max(1, len(subset))

    def run_name(self, name: str, subset: Sequence[int] | None) -> str:
        """``name`` for the full training set, ``name-few2`` for the second few-label draw."""
        if subset is None:
            return name
        return f"{name}-few{self.few_subsets.index(list(subset)) + 1}"

    def both_polarities(self, measure: Callable[[Sequence[int] | None], float]
                        ) -> tuple[float, list[float]]:
        """``measure(subset)`` with every training label (``subset`` None), then with each
        few-label draw (none when not run): the one place every generation's polarity goes
        through."""
        full = measure(None)
        draws = []
        for number, subset in enumerate(self.few_subsets, 1):
            self.log(f"  polarity with {len(subset):,} labelled sentences "
                     f"(draw {number}/{len(self.few_subsets)})")
            draws.append(measure(subset))
        return full, draws

    def polarity(self, name: str, encoder: Callable[[], nn.Module], **head: Any
                 ) -> tuple[float, list[float]]:
        """A :class:`FeatureHead`'s polarity accuracy with every label and with each few-label
        draw (:meth:`both_polarities`); ``encoder`` builds a fresh encoder, since each run
        fine-tunes its own."""
        return self.both_polarities(lambda subset: self.fit_head(
            name, "polarity", encoder(), self.vocab, subset=subset, **head))

    # ---------------------------------------------------------------- generations
    def run(self, generation: str) -> Row:
        started = time.perf_counter()
        self.reused_seconds = 0.0
        method = getattr(self, f"run_{generation.replace('-', '_')}")
        perplexity, (polarity, draws), ner, parameters = method()
        return Row(generation, self.describe(generation), perplexity, polarity, ner,
                   float(np.mean(draws)) if draws else None, parameters,
                   time.perf_counter() - started + self.reused_seconds, draws)

    def describe(self, generation: str) -> str:
        """The table's model cell: says when BERT's pre-training was reused."""
        reused = [language for _, language, _ in self.config.reused_berts()]
        if generation == "bert" and reused:
            return f"BERT, fine-tuned; {' and '.join(reused)} pre-training reused"
        if generation == "bert-scratch" and reused:
            return f"BERT, same fine-tuning, no pre-training ({' and '.join(reused)}: " \
                   f"the reused checkpoint's network)"
        return DESCRIPTIONS[generation]

    def run_ngram(self) -> tuple:
        self.log("  counting a Kneser-Ney 5-gram LM")
        lm = NgramLM.train(self.data.lm_train, 5, "kn")
        perplexity = lm.perplexity(self.data.lm_test).perplexity
        self.log("  polarity: class-conditional KN bigram LMs")
        train = list(zip(self.raw_polarity_words[0], (lab for _, lab in self.data.polarity_train)))
        dev = list(zip(self.raw_polarity_words[1], (lab for _, lab in self.data.polarity_dev)))
        polarity = self.both_polarities(lambda subset: ngram_classifier_accuracy(
            pick(train, subset), dev, self.data.polarity_labels))
        self.log("  NER: bigram HMM tagger")
        ner = hmm_tagger_f1(self.data.ner_train, self.data.ner_dev)
        return perplexity, polarity, ner, int(sum(lm.num_ngrams()))

    def _train_lm(self, arch: str, sentences, vocab, name: str, **sizes: Any) -> nn.Module:
        # lazy: this imports word2vec's numba kernels (~0.4 s), and plm --help imports the ladder
        from plmkit.training.tasks_lm import LMRecipe, default_optimization, train_language_model

        recipes = {"nnlm": LMRecipe("nnlm", batch_size=128, order=5),
                   "lstm": LMRecipe("lstm", batch_size=4, bptt=35),
                   "elmo": LMRecipe("elmo", batch_size=4, max_sentence_length=MAX_CHARS)}
        # Small batches: at a budget of minutes the number of updates is what is scarce; for
        # the same reason the Adam-trained NNLM gets 3× plm train-lm's rate.
        default = default_optimization(arch)
        lr = default.learning_rate * (3 if default.optimizer == "adam" else 1)
        torch.manual_seed(self.config.seed)
        training = self.training(name, epochs=1.0, lr=lr, optimizer=default.optimizer,
                                 max_grad_norm=default.max_grad_norm)
        model, _ = train_language_model(recipes[arch], sentences, vocab, training, **sizes)
        return model.eval()

    def _lm_perplexity(self, arch: str, model: nn.Module, key: str = "perplexity") -> float:
        from plmkit.training.tasks_lm import LMRecipe, evaluate_language_model  # lazy: numba

        recipe = LMRecipe(arch, batch_size=128 if arch == "nnlm" else 20, order=5)
        return evaluate_language_model(recipe, model, self.data.lm_test, self.vocab)[key]

    def run_nnlm(self) -> tuple:
        # without the direct connection W, which would double the cost of the softmax layer
        sizes = dict(embedding_size=64, hidden_size=128, direct_connection=False)
        self.log_pretraining(self.data.lm_train, self.vocab)
        lm = self._train_lm("nnlm", self.data.lm_train, self.vocab, "nnlm-en", **sizes)
        perplexity = self._lm_perplexity("nnlm", lm)
        polarity = self.polarity("nnlm", lambda: self._static(lm.C.weight))
        self.log_pretraining(self.data.zh_train, self.zh_vocab)
        zh = self._train_lm("nnlm", self.data.zh_train, self.zh_vocab, "nnlm-zh", **sizes)
        ner = self.fit_head("nnlm", "ner", self._static(zh.C.weight), self.zh_vocab)
        return perplexity, polarity, ner, lm.num_parameters()

    def _word2vec(self, sentences, vocab) -> Tensor:
        """Skip-gram vectors as a matrix in ``vocab``'s order (zeros for words it lacks)."""
        # lazy: word2vec's numba kernels (see _train_lm)
        from plmkit.models.word2vec import Word2VecConfig
        from plmkit.training.tasks_lm import train_word2vec

        config = Word2VecConfig(arch="sg", vector_size=100, min_count=1, window=5,
                                epochs=self.plan.word2vec_epochs, workers=2,
                                seed=self.config.seed, batch_words=10000)
        run = train_word2vec(sentences, config, progress=self.config.progress)
        matrix = np.zeros((len(vocab), config.vector_size), dtype=np.float32)
        for index, word in enumerate(vocab.itos):
            if word in run.vectors:
                matrix[index] = run.vectors[word]
        return torch.from_numpy(matrix)

    @staticmethod
    def _static(matrix: Tensor) -> WindowEmbeddings:
        """Static vectors initialise a lookup table the task fine-tunes: frozen, these briefly
        trained vectors (smooth, one dominant direction) leave a small head predicting ``O``
        for every character within the budget, while fine-tuned ones also learn each word's
        identity."""
        return WindowEmbeddings(matrix.detach().clone(), freeze=False)

    def run_word2vec(self) -> tuple:
        self.log(f"  skip-gram on {len(self.data.lm_train):,} English sentences")
        english = self._word2vec(self.data.lm_train, self.vocab)
        polarity = self.polarity("word2vec", lambda: self._static(english))
        self.log(f"  skip-gram on {len(self.data.zh_train):,} Chinese sentences")
        chinese = self._word2vec(self.data.zh_train, self.zh_vocab)
        ner = self.fit_head("word2vec", "ner", self._static(chinese), self.zh_vocab)
        # input and output vectors (syn0, syn1neg) are both trained parameters
        return None, polarity, ner, 2 * english.numel()

    def _contextual(self, lm: nn.Module, context: FrozenLayers) -> WordsAndContext:
        return WordsAndContext(self._static(lm.embeddings.weight), context)

    def run_lstm(self) -> tuple:
        sizes = dict(embedding_size=128, hidden_size=128, num_layers=2, dropout=0.1,
                     tie_weights=True)
        self.log_pretraining(self.data.lm_train, self.vocab)
        lm = self._train_lm("lstm", self.data.lm_train, self.vocab, "lstm-en", **sizes)
        perplexity = self._lm_perplexity("lstm", lm)
        polarity = self.polarity("lstm", lambda: self._contextual(lm, RecurrentFeatures(lm)))
        self.log_pretraining(self.data.zh_train, self.zh_vocab)
        zh = self._train_lm("lstm", self.data.zh_train, self.zh_vocab, "lstm-zh", **sizes)
        ner = self.fit_head("lstm", "ner", self._contextual(zh, RecurrentFeatures(zh)),
                            self.zh_vocab)
        return perplexity, polarity, ner, lm.num_parameters()

    def run_elmo(self) -> tuple:
        sizes = dict(embedding_size=128, hidden_size=128, num_layers=2, dropout=0.1)
        self.log(f"  pre-training a biLM on {len(self.data.lm_train):,} English sentences")
        lm = self._train_lm("elmo", self.data.lm_train, self.vocab, "elmo-en", **sizes)
        perplexity = self._lm_perplexity("elmo", lm, "forward_perplexity")
        polarity = self.polarity("elmo", lambda: self._contextual(lm, ElmoFeatures(lm)))
        self.log(f"  pre-training a biLM on {len(self.data.zh_train):,} Chinese sentences")
        zh = self._train_lm("elmo", self.data.zh_train, self.zh_vocab, "elmo-zh", **sizes)
        ner = self.fit_head("elmo", "ner", self._contextual(zh, ElmoFeatures(zh)), self.zh_vocab)
        return perplexity, polarity, ner, lm.num_parameters()

    def _gpt(self, sentences, vocab, name: str, pretrain: bool = True) -> nn.Module:
        """A GPT causal LM on ``sentences`` (``pretrain=False``: left at its random weights)."""
        torch.manual_seed(self.config.seed)
        config = gpt_config("nano", vocab_size=len(vocab), n_positions=BLOCK, n_embd=96,
                            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                            activation_function="gelu", eos_token_id=vocab.index(EOS),
                            bos_token_id=vocab.index(EOS), pad_token_id=vocab.index(PAD))
        model = GPTLMHeadModel(config)
        if not pretrain:
            return model.eval()
        self.log_pretraining(sentences, vocab)
        stream = encode_stream(sentences, vocab)
        block = max(2, min(BLOCK, (len(stream) - 1) // 2))
        batches = lm_batches(stream, block, 4, train=True, seed=self.config.seed)
        Trainer(model, CausalLMTask(), batches,
                self.training(name, epochs=self.plan.gpt_epochs, lr=2e-3)).train()
        return model.eval()

    def run_gpt(self, pretrain: bool = True) -> tuple:
        name = "gpt" if pretrain else "gpt-scratch"
        lm = self._gpt(self.data.lm_train, self.vocab, f"{name}-en", pretrain)
        perplexity = None
        if pretrain:
            test = encode_stream(self.data.lm_test, self.vocab)
            perplexity = evaluate_lm(lm, test, BLOCK, 32)["perplexity"]
        parameters = lm.num_parameters()
        finetuning = dict(lr=self.plan.gpt_finetune_lr, batch_size=32, hidden_size=0)
        polarity = self.polarity(name, lambda: GPTFeatures(copy.deepcopy(lm.transformer)),
                                 pool="last", epochs=self.plan.finetune_epochs, **finetuning)
        zh = self._gpt(self.data.zh_train, self.zh_vocab, f"{name}-zh", pretrain)
        ner = self.fit_head(name, "ner", GPTFeatures(zh.transformer), self.zh_vocab,
                            epochs=self.plan.tagging_epochs, **finetuning)
        return perplexity, polarity, ner, parameters

    def run_gpt_scratch(self) -> tuple:
        return self.run_gpt(pretrain=False)

    def _bert(self, sentences, vocab, name: str, max_seq_length: int, pretrain: bool = True,
              reuse: str | None = None) -> tuple[Path, int]:
        """Pre-train a small BERT (MLM + NSP) whose WordPiece vocabulary is ``vocab``'s words
        (``pretrain=False``: saved at its random weights; ``reuse``: a pre-trained checkpoint
        folder to take instead)."""
        if reuse is not None:
            return self._reused_bert(Path(reuse), name, pretrain)
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        words = list(dict.fromkeys(w.lower() for w in vocab.itos if w not in LM_SPECIALS))
        tokenizer = WordPieceTokenizer(specials + words, lowercase=True)
        folder = self.work / name
        folder.mkdir(parents=True, exist_ok=True)
        model = build_bert(bert_config("tiny", vocab_size=tokenizer.vocab_size,
                                       pad_token_id=tokenizer.pad_token_id,
                                       max_position_embeddings=BLOCK), self.config.seed)
        checkpoint = folder / "model"
        if pretrain:
            self.log_pretraining(sentences, vocab)
            corpus = _write_bert_corpus(sentences, folder / "corpus.txt")
            # plm pretrain's recipe on the ladder's text: each instance once, masks drawn afresh
            # every pass (RoBERTa's dynamic masking), no held-out split (the ladder measures BERT
            # by its fine-tuning)
            data = PretrainDataConfig(max_seq_length=max_seq_length, dupe_factor=1,
                                      dynamic_masking=True, heldout_fraction=0.0,
                                      batch_size=self.plan.bert_batch_size, seed=self.config.seed)
            # "auto": the layout the ladder's numbers were made with (a line of People's Daily
            # characters can hold several sentences, which "auto" may read as paragraphs)
            shards = prepare_shards(corpus, tokenizer, folder / "shards", data, dupe_factor=1,
                                    format="auto")
            training = self.training(f"{name}/run", epochs=self.plan.bert_epochs,
                                     lr=self.plan.bert_lr)
            started = time.perf_counter()
            _, result = run_pretraining(model, tokenizer, shards, None, data, training)
            record = {"sentences": len(sentences), "epochs": self.plan.bert_epochs,
                      "steps": result.global_step, "batch_size": self.plan.bert_batch_size,
                      "learning_rate": self.plan.bert_lr, "max_seq_length": max_seq_length,
                      "seconds": round(time.perf_counter() - started, 1), "seed": self.config.seed,
                      **masked_lm_summary(folder / "run" / "metrics.jsonl", sentences)}
        model.save_pretrained(checkpoint)
        tokenizer.save_pretrained(checkpoint)
        if pretrain:
            (checkpoint / PRETRAINING_RECORD).write_text(json.dumps(record, indent=2) + "\n",
                                                         encoding="utf-8")
        return checkpoint, model.bert.num_parameters()

    def _reused_bert(self, source: Path, name: str, pretrain: bool) -> tuple[Path, int]:
        """The checkpoint itself, or (``pretrain=False``, the control) a model of its
        architecture and vocabulary at the ladder's seeded random weights: the initial weights
        the ladder's own pre-training starts from, so a checkpoint made by :func:`pretrain_bert`
        is compared with exactly where it began."""
        if pretrain:
            record = pretraining_record(source)
            self.reused_seconds += float(record.get("seconds", 0.0))
            summary = describe_pretraining(record)
            self.log(f"  reusing the pre-trained BERT in {source}"
                     + (f" ({summary})" if summary else ""))
            return source, self.reused_parameters(source)
        model = build_bert(BertForPreTraining.load_config(source), self.config.seed)
        checkpoint = self.work / name / "model"
        model.save_pretrained(checkpoint, tokenizer=WordPieceTokenizer.from_pretrained(source))
        return checkpoint, model.bert.num_parameters()

    def reused_parameters(self, folder: str | Path) -> int:
        """The encoder parameters of a reused checkpoint, loading it once (the check before the
        first generation, then its row)."""
        key = str(folder)
        if key not in self._reused_sizes:
            self._reused_sizes[key] = BertModel.from_pretrained(folder).num_parameters()
        return self._reused_sizes[key]

    def check_reused_berts(self) -> None:
        """Load every reused BERT before the first generation runs, and stop if its
        vocabulary misses most of its task's tokens: an English vocabulary given for the
        Chinese NER would fine-tune on [UNK] alone, an hour later."""
        for name, _, folder in self.config.reused_berts():
            self.reused_parameters(folder)
            tokenizer = WordPieceTokenizer.from_pretrained(folder)
            # by running tokens, not distinct ones: a small vocabulary misses most rare words
            counts = (Counter(w for words in self.raw_polarity_words[0] for w in words)
                      if name == "bert_en" else
                      Counter(c for chars, _ in self.data.ner_train for c in chars))
            unknown = sum(n for t, n in counts.items()
                          if tokenizer.encode(t, add_special_tokens=False).ids
                          == [tokenizer.unk_token_id])
            share = unknown / max(1, sum(counts.values()))
            if share > 0.5:
                raise PlmError(f"its vocabulary misses {share:.0%} of the task's tokens "
                               f"(a checkpoint for the other language?)", path=folder, field=name)

    def _bert_finetune(self, checkpoint: Path, task: str,
                       subset: Sequence[int] | None = None, name: str = "bert") -> float:
        run = self.run_name(f"{name}-{task}", subset)
        folder = self.work / f"{run}-data"
        folder.mkdir(parents=True, exist_ok=True)
        if task == "polarity":
            train, dev = folder / "train.csv", folder / "dev.csv"
            labelled = pick(self.data.polarity_train, subset)
            for path, rows in ((train, labelled), (dev, self.data.polarity_dev)):
                with open(path, "w", newline="", encoding="utf-8") as handle:
                    writer = csv.writer(handle)
                    writer.writerow(["text", "label"])
                    writer.writerows(rows)
            settings, metric = TaskSettings(task="classify", max_length=MAX_WORDS + 2), "accuracy"
        else:
            train, dev = folder / "train.txt", folder / "dev.txt"
            write_conll(train, self.data.ner_train)
            write_conll(dev, self.data.ner_dev)
            settings, metric = TaskSettings(task="tag", max_length=BLOCK), "f1"
        result = finetune(FinetuneConfig(
            task=settings.task, model=str(checkpoint), train=str(train), dev=str(dev),
            output_dir=str(self.work / run),
            epochs=self._epochs(self.plan.finetune_epochs if task == "polarity"
                                else self.plan.tagging_epochs, subset),
            eval_every=0, batch_size=self.plan.bert_finetune_batch_size,
            learning_rate=self.plan.bert_finetune_lr,
            warmup_ratio=0.1,
            seed=self.config.seed,
            progress=self.config.progress, plot=False, device="cpu", keep_last=1,
            precision=LADDER_PRECISION, settings=settings))
        return float(result.dev_metrics.get(metric, 0.0))

    def run_bert(self, pretrain: bool = True) -> tuple:
        name = "bert" if pretrain else "bert-scratch"
        english, parameters = self._bert(self.data.lm_train, self.vocab, f"{name}-en", MAX_WORDS,
                                         pretrain, self.config.bert_en)
        polarity = self.both_polarities(
            lambda subset: self._bert_finetune(english, "polarity", subset, name))
        chinese, _ = self._bert(self.data.zh_train, self.zh_vocab, f"{name}-zh", BLOCK, pretrain,
                                self.config.bert_zh)
        ner = self._bert_finetune(chinese, "ner", name=name)
        return None, polarity, ner, parameters

    def run_bert_scratch(self) -> tuple:
        return self.run_bert(pretrain=False)


def _write_bert_corpus(sentences: Sequence[Sequence[str]], path: Path) -> Path:
    """The ladder's sentences as a pre-training corpus: one sentence a line, a blank line after
    every 20 (NSP's "documents"), ``<unk>`` written as BERT's ``[UNK]``."""
    documents = [sentences[i:i + 20] for i in range(0, len(sentences), 20)]
    with open(path, "w", encoding="utf-8") as handle:
        for document in documents:
            for sentence in document:
                handle.write(" ".join("[UNK]" if w == "<unk>" else w for w in sentence) + "\n")
            handle.write("\n")
    return path


def run_ladder(config: LadderConfig, output: str | Path | None = None,
               log: Callable[[str], None] | None = None, resume: bool = False) -> list[Row]:
    """Run the generations in lineage order; write the outputs to ``output`` if given.

    ``resume``: keep the rows an earlier run wrote into ``output`` (same data, sizes and seed)
    and run only the missing ones, e.g. a generation added later or one that crashed."""
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    if resume and output is None:
        raise PlmError("resume needs the output folder of the earlier run", field="output")
    plan = Plan.from_budget(config.budget)
    data = load_data(config, plan)
    # A budget may ask for more than a dataset holds (polarity has 3,200 training sentences):
    # the table reports what was actually used.
    plan = dataclasses.replace(plan, lm_sentences=len(data.lm_train),
                               zh_sentences=len(data.zh_train),
                               polarity_train=len(data.polarity_train),
                               ner_train=len(data.ner_train), ner_dev=len(data.ner_dev),
                               polarity_dev=len(data.polarity_dev),
                               task_sentences=len(data.polarity_train) if config.task_text else 0,
                               few_labels=(config.few_labels
                                           if 0 < config.few_labels < len(data.polarity_train)
                                           else 0),
                               few_draws=config.few_draws)
    chosen = [g for g in GENERATIONS if g in config.generations]
    if config.from_scratch:
        chosen = [row for g in chosen for row in (g, CONTROLS.get(g)) if row]
    kept = previous_rows(Path(output), config, plan) if resume else {}  # type: ignore[arg-type]
    rows = []
    with tempfile.TemporaryDirectory(prefix="plm-ladder-") as tmp:
        ladder = Ladder(config, data, plan, Path(tmp), log)
        ladder.check_reused_berts()
        for number, generation in enumerate(chosen, 1):
            if generation in kept:
                log(f"ladder [{number}/{len(chosen)}] {generation}: kept from "
                    f"{Path(output) / 'ladder.json'}")  # type: ignore[arg-type]
                rows.append(kept[generation])
                continue
            log(f"ladder [{number}/{len(chosen)}] {generation}: {ladder.describe(generation)}")
            row = ladder.run(generation)
            log(f"ladder [{number}/{len(chosen)}] {generation}: perplexity "
                f"{cell(row.perplexity, 1)}, polarity {cell(row.polarity_accuracy, 3)}"
                + (f" ({plan.few_labels:,} labels: {cell(row.polarity_few_accuracy, 3)})"
                   if plan.few_labels else "")
                + ", NER F1 "
                f"{cell(row.ner_f1, 3)}, {row.seconds:.0f}s")
            rows.append(row)
    if output is not None:
        write_outputs(rows, config, plan, Path(output))
    return rows


def pretrain_bert(config: LadderConfig, language: str, output: str | Path,
                  epochs: float | None = None, log: Callable[[str], None] | None = None) -> Path:
    """Pre-train the ladder's BERT for one language (``en`` or ``zh``) alone and save it to
    ``output``, for ``LadderConfig.bert_en`` / ``bert_zh`` (``plm ladder --bert-en/--bert-zh``).

    Why: in the ladder's minutes BERT's masked LM stays near the unigram stage, so its row
    measures a barely pre-trained network. This is the same recipe on the same data,
    vocabulary and seeded initial weights as the ladder's own BERT at ``config.budget``, for
    ``epochs`` passes instead of the plan's. The checkpoint records what made it
    (``pretraining.json``); the ladder adds that time to the BERT row's."""
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    if language not in ("en", "zh"):
        raise PlmError(f"language must be en or zh, not {language!r}", field="language")
    if epochs is not None and not (math.isfinite(epochs) and epochs > 0):
        raise PlmError(f"epochs must be a positive number, not {epochs!r}", field="epochs")
    if (Path(output) / "ladder.json").exists():
        raise PlmError("this folder holds a ladder's results (ladder.json), which the checkpoint "
                       "would replace: choose another folder", path=output)
    plan = Plan.from_budget(config.budget)
    if epochs is not None:
        plan = dataclasses.replace(plan, bert_epochs=epochs)
    data = load_data(config, plan)
    with tempfile.TemporaryDirectory(prefix="plm-bert-") as tmp:
        ladder = Ladder(config, data, plan, Path(tmp), log)
        if language == "en":
            checkpoint, _ = ladder._bert(data.lm_train, ladder.vocab, "bert-en", MAX_WORDS)
        else:
            checkpoint, _ = ladder._bert(data.zh_train, ladder.zh_vocab, "bert-zh", BLOCK)
        with atomic_dir(output) as folder:
            shutil.copytree(checkpoint, folder, dirs_exist_ok=True)
            curve = Path(tmp) / f"bert-{language}" / "run" / "metrics.jsonl"
            if curve.is_file():
                (folder / "metrics.jsonl").write_bytes(curve.read_bytes())
                guess = pretraining_record(folder).get("unigram_loss")
                plot_curves(read_metrics(curve), folder / "curves.png",
                            ["mlm_loss", "mlm_accuracy", "nsp_accuracy"],
                            title=f"the ladder's BERT ({language}), budget {config.budget:g}",
                            references={"mlm_loss": ("guessing by frequency", guess)}
                            if guess is not None else None)
    return Path(output)
