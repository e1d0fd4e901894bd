"""``plm ladder``: every generation of the lineage on the same data, in one table and one chart.

    plm ladder --output runs/ladder                      # a few minutes on 2 cores
    plm ladder --budget 0.25 --generations ngram,lstm,bert --output runs/ladder-quick

BERT's masked LM needs far more updates than the ladder's minutes: pre-train it once, alone, for
as long as wanted, then reuse it (``--resume`` keeps the rows already measured)::

    plm ladder --budget 10 --pretrain-bert zh --bert-epochs 80 --output runs/bert-zh
    plm ladder --budget 10 --bert-zh runs/bert-zh --resume --output runs/ladder-b10

Writes ``ladder.md`` (also printed), ``ladder.json`` and ``ladder.png`` into ``--output``, all
at once when the run has finished (an interrupted run leaves nothing behind).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from plmkit.errors import PlmError
from plmkit.commands._types import any_int, non_negative_int, positive_float, positive_int
from plmkit.ladder import GENERATIONS, LadderConfig, pretrain_bert, run_ladder


def _generations(text: str) -> tuple[str, ...]:
    return tuple(g.strip() for g in text.split(",") if g.strip())


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ladder", help="n-gram → NNLM → word2vec → LSTM → ELMo → GPT → BERT on the same data",
        description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", required=True, help="folder for ladder.md/json/png")
    parser.add_argument("--budget", type=positive_float, default=1.0,
                        help="scales the training data (1 = a few minutes on 2 cores)")
    parser.add_argument("--generations", default=",".join(GENERATIONS),
                        help=f"comma-separated subset of {','.join(GENERATIONS)}")
    parser.add_argument("--corpus", default="ptb",
                        help="pre-training text: 'ptb' or a file, one sentence per line")
    parser.add_argument("--test-corpus",
                        help="held-out text for perplexity (ptb: its test split)")
    parser.add_argument("--polarity", nargs=2, metavar=("TRAIN", "DEV"),
                        help="CSV text,label files (default: Pang & Lee polarity)")
    parser.add_argument("--ner", nargs=2, metavar=("TRAIN", "DEV"),
                        help="CoNLL files, one character a line (default: People's Daily)")
    parser.add_argument("--no-task-text", action="store_true",
                        help="pre-train the English generations on the corpus alone, without "
                             "the polarity training sentences' text")
    parser.add_argument("--few-labels", type=non_negative_int, default=320, metavar="N",
                        help="also measure polarity with only N labelled sentences, trained for "
                             "as many updates (0: skip)")
    parser.add_argument("--few-draws", type=positive_int, default=3, metavar="K",
                        help="average the few-label accuracy over K different draws of the N "
                             "sentences (default 3)")
    parser.add_argument("--from-scratch", action="store_true",
                        help="add GPT and BERT rows fine-tuned from random weights: what "
                             "pre-training adds at this budget")
    parser.add_argument("--bert-en", metavar="DIR",
                        help="reuse this pre-trained BERT for the English task (polarity)")
    parser.add_argument("--bert-zh", metavar="DIR",
                        help="reuse this pre-trained BERT for the Chinese task (NER)")
    parser.add_argument("--pretrain-bert", choices=["en", "zh"],
                        help="only pre-train the ladder's BERT for this language and save it "
                             "to --output (for --bert-en/--bert-zh)")
    parser.add_argument("--bert-epochs", type=positive_float, metavar="N",
                        help="with --pretrain-bert: passes over the text (default: the budget's)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the rows already in --output/ladder.json (same data, sizes "
                             "and seed) and run only the others")
    parser.add_argument("--seed", type=any_int, default=42)
    parser.add_argument("--threads", type=non_negative_int, default=0, help="torch threads (0: default)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.bert_epochs is not None and not args.pretrain_bert:
        raise PlmError("--bert-epochs goes with --pretrain-bert", field="bert_epochs")
    if args.pretrain_bert and (args.resume or args.bert_en or args.bert_zh):
        raise PlmError("--pretrain-bert only pre-trains: leave out --resume, --bert-en and "
                       "--bert-zh", field="pretrain_bert")
    if args.threads < 0:
        raise PlmError("threads must be ≥ 0", field="threads")
    if args.threads:
        torch.set_num_threads(args.threads)
    polarity = args.polarity or (None, None)
    ner = args.ner or (None, None)
    config = LadderConfig(generations=_generations(args.generations), budget=args.budget,
                          corpus=args.corpus, test_corpus=args.test_corpus,
                          polarity_train=polarity[0], polarity_dev=polarity[1],
                          ner_train=ner[0], ner_dev=ner[1], task_text=not args.no_task_text,
                          few_labels=args.few_labels, few_draws=args.few_draws,
                          from_scratch=args.from_scratch,
                          bert_en=args.bert_en, bert_zh=args.bert_zh,
                          seed=args.seed,
                          progress=not args.no_progress)
    if args.pretrain_bert:
        pretrain_bert(config, args.pretrain_bert, args.output, epochs=args.bert_epochs)
        print(f"wrote the pre-trained BERT to {args.output}; use it with "
              f"--bert-{args.pretrain_bert} {args.output}")
        return 0
    run_ladder(config, output=args.output, resume=args.resume)
    # the written table states the sizes actually used, which a budget's plan may overstate
    print((Path(args.output) / "ladder.md").read_text(encoding="utf-8"), end="")
    print(f"\nwrote {args.output}/ladder.md, ladder.json, ladder.png")
    return 0


__all__ = ["register", "run"]
