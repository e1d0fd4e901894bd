"""The ladder: every generation of the lineage trained on the same data and measured side by side.

n-gram → NNLM → word2vec → LSTM → ELMo → GPT → BERT. Each generation is *pre-trained* on the same
unlabelled text — the Penn Treebank training split (capped by the budget) for English, and the
characters of People's Daily's NER training split for Chinese — with plmkit's own code, then
used on the same two downstream tasks the way its era used it:

=========  ========================================  ===========================================
generation pre-training                               downstream (polarity / NER)
=========  ========================================  ===========================================
ngram      Kneser-Ney 5-gram counts                  class-conditional KN bigram LMs + Bayes rule;
                                                     a bigram HMM tagger (Viterbi): counting only
nnlm       Bengio's NNLM (Trainer)                   its embeddings C initialise a fine-tuned
                                                     lookup table, ±1-word window, small tanh
                                                     head (Collobert et al. 2011)
word2vec   skip-gram with negative sampling          the same with the skip-gram vectors
lstm       2-layer LSTM LM, tied (Trainer)           [x; mix]: the static rows' fine-tuned word
                                                     window (from the LM's embeddings) beside
                                                     a learned scalar mix of the frozen layers
elmo       biLM, forward + backward (Trainer)        the same with the frozen biLM (Peters et
                                                     al. 2018: "[x_k; ELMo_k]"), tanh head
gpt        GPT decoder, causal LM (Trainer)          fine-tuned: last token / every token → linear
bert       BERT, MLM + NSP (Trainer)                 fine-tuned with ``plm finetune``'s recipe
=========  ========================================  ===========================================

Every generation shares one word vocabulary (the capped PTB training text, ``<unk>`` for the rest;
BERT's WordPiece vocabulary is the same word list), so the held-out perplexities — word-level,
``</s>`` predicted, PTB test split — are comparable between the n-gram, NNLM, LSTM, ELMo's
forward LM and GPT. BERT's masked-LM loss is not a left-to-right perplexity and word2vec is not a
language model: those cells are "—". Downstream numbers are dev-set metrics (polarity accuracy,
entity-level F1), the best of the per-epoch evaluations for every trained head.

``from_scratch`` adds a control after GPT and BERT: the same network from the same initial weights,
fine-tuned the same way without pre-training, so the table shows what pre-training adds at the
budget instead of assuming it.

The package: :mod:`~plmkit.ladder.plan` (settings, sizes, rows), :mod:`~plmkit.ladder.data`
(the shared data), :mod:`~plmkit.ladder.heads` (the task models on each generation's network),
:mod:`~plmkit.ladder.baselines` (the counting models), :mod:`~plmkit.ladder.runner` (each
generation's row; BERT is pre-trained with :mod:`plmkit.training.bert_pretraining`, the recipe
behind ``plm pretrain``) and :mod:`~plmkit.ladder.report` (table, chart, record, resume).
"""

from __future__ import annotations

from plmkit.ladder.baselines import hmm_tagger_f1, ngram_classifier_accuracy
from plmkit.ladder.data import LadderData, load_data, words_of
from plmkit.ladder.heads import (ElmoFeatures, FeatureHead, FeatureHeadConfig, FrozenLayers,
                                 GPTFeatures, HeadOutput, RecurrentFeatures, WindowEmbeddings,
                                 WordsAndContext)
from plmkit.ladder.plan import (CONTROLS, DESCRIPTIONS, GENERATIONS, PRETRAINING_RECORD,
                                REUSABLE_BERTS, LadderConfig, Plan, Row, describe_pretraining,
                                pretraining_record)
from plmkit.ladder.report import markdown_table, plot_ladder, previous_rows, write_outputs
from plmkit.ladder.runner import Ladder, masked_lm_summary, pretrain_bert, run_ladder

__all__ = ["GENERATIONS", "CONTROLS", "DESCRIPTIONS", "PRETRAINING_RECORD", "REUSABLE_BERTS",
           "LadderConfig", "Plan", "Row", "LadderData", "Ladder", "HeadOutput", "FeatureHead",
           "FeatureHeadConfig", "WindowEmbeddings", "FrozenLayers", "RecurrentFeatures",
           "ElmoFeatures", "WordsAndContext", "GPTFeatures", "load_data", "run_ladder",
           "pretrain_bert", "pretraining_record", "describe_pretraining", "masked_lm_summary",
           "previous_rows", "markdown_table", "plot_ladder", "write_outputs", "words_of",
           "ngram_classifier_accuracy", "hmm_tagger_f1"]
