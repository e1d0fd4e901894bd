"""Linear probe: what a frozen encoder's sentence vectors know, before fine-tuning changes them.

``pretraining_pays.py`` fine-tunes every weight; on the sentence-level families (polarity, WiC) a
pre-trained checkpoint can then score no better than random weights. That leaves two readings:
the pre-trained vectors carry no more of the label than random ones, or they do and fine-tuning on
a few hundred examples does not keep it. This probe separates them: each init's encoder is frozen,
a sentence becomes the mean of its last hidden states (a pair: ``[u, v, |u-v|, u*v]``), and an
L2-regularised logistic regression (strength chosen by 5-fold cross-validation on the training
share, never on dev) is fitted on the same share of the same capped training set and scored on the
same dev items as ``pretraining_pays.py``. A bag-of-words regression on the same split is the
floor a sentence vector should clear.

    python benchmarks/linear_probe.py --pretrained runs/ttq/budget-60min --fractions 0.1,1.0
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, table  # noqa: E402
from pretraining_pays import FAMILIES, cap_file, random_init  # noqa: E402

STRENGTHS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)


def fit_logistic(features: torch.Tensor, labels: torch.Tensor, strength: float,
                 classes: int) -> torch.nn.Linear:
    """Multinomial logistic regression by L-BFGS on the full batch (features standardised)."""
    torch.manual_seed(0)
    model = torch.nn.Linear(features.size(1), classes)
    optimizer = torch.optim.LBFGS(model.parameters(), max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = (torch.nn.functional.cross_entropy(model(features), labels)
                + strength * model.weight.pow(2).sum())
        loss.backward()
        return loss

    optimizer.step(closure)
    return model


def accuracy(model: torch.nn.Linear, features: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(features).argmax(-1) == labels).float().mean().item()


def probe(train: torch.Tensor, train_labels: torch.Tensor, dev: torch.Tensor,
          dev_labels: torch.Tensor, folds: int = 5) -> tuple[float, float]:
    """Dev accuracy of the regression whose L2 strength won the cross-validation on train."""
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
    train, dev = (train - mean) / std, (dev - mean) / std
    classes = int(max(train_labels.max(), dev_labels.max())) + 1
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
    chunks = order.chunk(folds)

    def cross_validated(strength: float) -> float:
        scores = []
        for k, held in enumerate(chunks):
            kept = torch.cat([c for j, c in enumerate(chunks) if j != k])
            model = fit_logistic(train[kept], train_labels[kept], strength, classes)
            scores.append(accuracy(model, train[held], train_labels[held]))
        return sum(scores) / len(scores)

    best = max(STRENGTHS, key=cross_validated)
    model = fit_logistic(train, train_labels, best, classes)
    return accuracy(model, dev, dev_labels), best


def encoder_features(folder: Path, example_sets: list[list]) -> list[torch.Tensor]:
    """Frozen-encoder features of each list of examples, the model loaded once: a sentence's mean
    last hidden state, or ``[u, v, |u-v|, u*v]`` for a pair."""
    from plmkit.pipelines.embed import EmbeddingPipeline

    encode = EmbeddingPipeline(folder, normalize=False, max_length=128)

    def features(examples: list) -> torch.Tensor:
        first = encode([e.text for e in examples])
        if examples[0].text_pair is None:
            return first
        second = encode([e.text_pair for e in examples])
        return torch.cat([first, second, (first - second).abs(), first * second], dim=-1)

    return [features(examples) for examples in example_sets]


def bag_of_words(train: list, dev: list) -> tuple[torch.Tensor, torch.Tensor]:
    word = re.compile(r"\w+")

    def words(example) -> list[str]:
        return word.findall(" ".join(filter(None, (example.text, example.text_pair))).lower())

    counts = Counter(w for e in train for w in words(e))
    vocabulary = {w: i for i, (w, _) in enumerate(counts.most_common())}

    def vectors(examples: list) -> torch.Tensor:
        out = torch.zeros(len(examples), len(vocabulary))
        for row, example in enumerate(examples):
            for w in words(example):
                if w in vocabulary:
                    out[row, vocabulary[w]] += 1
        return out

    return vectors(train), vectors(dev)


def main() -> None:
    from plmkit import datasets
    from plmkit.downstream.features import read_examples
    from plmkit.downstream.settings import TaskSettings
    from plmkit.training.finetune import subsample

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrained", required=True, type=Path)
    parser.add_argument("--families", default="polarity,wic")
    parser.add_argument("--fractions", default="0.1,1.0")
    parser.add_argument("--max-train", type=int, default=3000)
    parser.add_argument("--max-dev", type=int, default=500)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output", type=Path, default=Path("runs/benchmarks"))
    args = parser.parse_args()
    print(f"machine: {machine()}")
    minilm = datasets.minilm_dir()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        inits = {"bag of words": None, "ours": args.pretrained,
                 "random-ours": random_init(args.pretrained, work / "random-ours", args.seed),
                 "minilm": minilm, "random": random_init(minilm, work / "random", args.seed)}
        for family in args.families.split(","):
            dataset, task, _, _ = FAMILIES[family]
            if task not in ("classify", "pair"):
                raise SystemExit(f"{family}: the probe reads sentence vectors; "
                                 "only classify/pair families")
            splits = getattr(datasets, dataset)()
            settings = TaskSettings(task=task).resolved()
            train_all = read_examples(settings, cap_file(task, Path(splits["train"]),
                                                         work / family / "train",
                                                         args.max_train, args.seed))
            dev = read_examples(settings, cap_file(task, Path(splits["dev"]),
                                                   work / family / "dev", args.max_dev,
                                                   args.seed))
            names = sorted({str(e.label) for e in train_all})
            dev_labels = torch.tensor([names.index(str(e.label)) for e in dev])
            # every encoder reads the capped training set and dev once; each share takes its rows
            encoded = {name: encoder_features(folder, [train_all, dev])
                       for name, folder in inits.items() if folder is not None}
            for fraction in (float(f) for f in args.fractions.split(",")):
                # the same share pretraining_pays.py fine-tunes on (FinetuneConfig's seed)
                share = subsample(list(range(len(train_all))), fraction, args.seed)
                train = [train_all[i] for i in share]
                labels = torch.tensor([names.index(str(e.label)) for e in train])
                row = {"family": family, "share": f"{int(100 * fraction)}% ({len(train)})"}
                for name in inits:
                    if name in encoded:
                        train_features, dev_features = encoded[name][0][share], encoded[name][1]
                    else:  # bag of words: the share's own vocabulary
                        train_features, dev_features = bag_of_words(train, dev)
                    score, strength = probe(train_features, labels, dev_features, dev_labels)
                    row[name] = round(100 * score, 1)
                    print(f"{family} {fraction:g} {name}: dev accuracy {100 * score:.1f} "
                          f"(L2 {strength:g})", flush=True)
                rows.append(row)
    print(table(rows, list(rows[0])))
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "linear_probe.json").write_text(json.dumps(
        {"machine": machine(), "pretrained": str(args.pretrained), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
