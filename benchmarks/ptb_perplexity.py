"""Penn Treebank test perplexity of the pre-Transformer generations, next to published numbers.

    python benchmarks/ptb_perplexity.py [--models kn5 addk nnlm lstm] [--lstm-steps N] ...

KN5 (Mikolov et al. 2011: 141.2) and add-k are trained in seconds. The neural models train
through the Trainer on the CPU for the step budget given (default: one epoch each); published
LSTM numbers (Zaremba et al. 2014: medium 82.7, large 78.4) took 39–55 epochs of 650/1500-unit
LSTMs on a GPU, so a small CPU budget lands well above them — the script prints the budget used
(steps, epochs, wall time) beside each perplexity. Output folders go to ``--output`` (default a
temporary folder).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

REFERENCES = {"kn5": "141.2 (Mikolov 2011)", "addk": "—", "nnlm": "~140 (Mikolov 2011, NNLM)",
              "lstm": "82.7 medium / 78.4 large (Zaremba 2014)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["kn5", "addk", "nnlm", "lstm"],
                        choices=["kn5", "addk", "nnlm", "lstm"])
    parser.add_argument("--output", help="keep the run folders here")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--nnlm-steps", type=int, default=0, help="0: one epoch")
    parser.add_argument("--nnlm-hidden", type=int, default=200)
    parser.add_argument("--lstm-steps", type=int, default=0, help="0: one epoch")
    parser.add_argument("--lstm-hidden", type=int, default=200)
    parser.add_argument("--lstm-layers", type=int, default=2)
    parser.add_argument("--lstm-dropout", type=float, default=0.2)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--bptt", type=int, default=35)
    args = parser.parse_args()

    import torch

    from plmkit import datasets
    from plmkit.data.lm import Vocabulary, read_sentences
    from plmkit.models.ngram import NgramLM
    from plmkit.training import TrainingConfig
    from plmkit.training.tasks_lm import LMRecipe, evaluate_language_model, train_language_model

    if args.threads:
        torch.set_num_threads(args.threads)
    splits = datasets.ptb()
    train, valid, test = (read_sentences(splits[name]) for name in ("train", "valid", "test"))
    out = Path(args.output or tempfile.mkdtemp(prefix="ptb-"))
    rows = []
    print(f"PTB: {sum(map(len, train)):,} training words; torch threads "
          f"{torch.get_num_threads()}; runs in {out}")
    for name in args.models:
        started = time.perf_counter()
        if name in ("kn5", "addk"):
            model = NgramLM.train(train, 5 if name == "kn5" else 3,
                                  "kn" if name == "kn5" else "addk", k=0.01)
            valid_ppl = model.perplexity(valid).perplexity
            test_ppl = model.perplexity(test).perplexity
            budget = "counting" if name == "kn5" else "add-0.01 trigram"
        else:
            vocab = Vocabulary.build(train)
            if name == "nnlm":
                recipe = LMRecipe("nnlm", batch_size=256, order=5)
                sizes = {"embedding_size": 100, "hidden_size": args.nnlm_hidden, "dropout": 0.1}
                steps, lr = args.nnlm_steps, 1e-3
            else:
                recipe = LMRecipe("lstm", batch_size=args.batch_size, bptt=args.bptt)
                sizes = {"embedding_size": args.lstm_hidden, "hidden_size": args.lstm_hidden,
                         "num_layers": args.lstm_layers, "dropout": args.lstm_dropout,
                         "tie_weights": True}
                steps, lr = args.lstm_steps, 2e-3
            training = TrainingConfig(output_dir=str(out / name), max_steps=steps, num_epochs=1,
                                      learning_rate=lr, optimizer="adam", weight_decay=0.0,
                                      schedule="linear", max_grad_norm=5.0, progress=True,
                                      plot=True, log_every=50,
                                      plot_metrics=("loss", "perplexity"))
            model, result = train_language_model(recipe, train, vocab, training, **sizes)
            valid_ppl = evaluate_language_model(recipe, model, valid, vocab)["perplexity"]
            test_ppl = evaluate_language_model(recipe, model, test, vocab)["perplexity"]
            budget = f"{result.global_step} steps, {model.num_parameters():,} params"
        seconds = time.perf_counter() - started
        rows.append((name, valid_ppl, test_ppl, seconds, budget))
        print(f"{name}: valid {valid_ppl:.1f} test {test_ppl:.1f} ({seconds:.0f} s, {budget})",
              flush=True)
    print(f"\n{'model':6} {'valid':>8} {'test':>8} {'seconds':>8}  budget | published test")
    for name, valid_ppl, test_ppl, seconds, budget in rows:
        print(f"{name:6} {valid_ppl:8.1f} {test_ppl:8.1f} {seconds:8.0f}  {budget} | "
              f"{REFERENCES[name]}")


if __name__ == "__main__":
    main()
