"""Does pre-training pay? The same architecture fine-tuned from random weights, from our own
pre-trained BERT and from MiniLM, on the four downstream families, with learning curves.

Inits (rows):
  random          all-MiniLM-L6-v2's architecture and vocabulary, weights N(0, 0.02)
  ours            a checkpoint from ``plm pretrain`` (``--pretrained DIR``), with its own vocab;
                  ``random-ours`` (its architecture, random weights) is added when it differs
  minilm          the real all-MiniLM-L6-v2 weights

Families (columns), each on a fixed random share (10% / 30% / 100%) of a capped training set:
  polarity (classify, dev accuracy), wic (pair, dev accuracy),
  wordnet_qa (span QA, dev SQuAD F1), people_daily_ner (tagging, dev entity F1)

Every number is a dev metric in percent, from the best of ``--evals`` evaluations (the Trainer
keeps that model). Random inits get a higher learning rate (``--random-lr``) — the usual recipe
for training from scratch — so the comparison is not won by an unfair learning rate. With
``--min-steps`` a small share is repeated until it has had that many updates, so the learning
curve compares how much *labelled data* each init needs rather than how few updates it got.

A second table gives the gain of pre-training: ours − random-ours and minilm − random (dev
points, same architecture on both sides). ``--reuse`` completes a table from earlier JSON results
measured with the same recipe (e.g. add the ``ours`` row when a longer pre-training finishes).

    python benchmarks/pretraining_pays.py --quick                     # a few minutes (make demo)
    python benchmarks/pretraining_pays.py --pretrained runs/pretrain  # the full table
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, table  # noqa: E402

FAMILIES = {
    # name: (dataset function, task, metric, scale to percent)
    "polarity": ("polarity", "classify", "accuracy", 100.0),
    "wic": ("wic", "pair", "accuracy", 100.0),
    "wordnet_qa": ("wordnet_qa", "qa", "f1", 1.0),
    "people_daily_ner": ("people_daily_ner", "tag", "f1", 100.0),
}


# ------------------------------------------------------------------------------- data subsets
def cap_file(task: str, source: Path, target_dir: Path, limit: int, seed: int) -> Path:
    """The first ``limit`` items of a fixed random order, written in the source's format."""
    from plmkit.data.tasks import read_conll, read_table, write_conll

    target_dir.mkdir(parents=True, exist_ok=True)
    if task == "qa":
        data = json.loads(source.read_text(encoding="utf-8"))
        paragraphs = [(a.get("title", ""), p) for a in data["data"] for p in a["paragraphs"]]
        chosen = _choose(paragraphs, limit, seed)
        target = target_dir / source.name
        target.write_text(json.dumps({"version": data.get("version", "1.1"), "data": [
            {"title": title, "paragraphs": [p]} for title, p in chosen]}), encoding="utf-8")
        return target
    if task == "tag":
        sentences = _choose(read_conll(source), limit, seed)
        target = target_dir / source.name
        write_conll(target, [(s.tokens, s.tags) for s in sentences])
        return target
    import csv

    rows = _choose(read_table(source, []), limit, seed)
    target = target_dir / source.name
    with open(target, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0].values))
        writer.writeheader()
        writer.writerows(r.values for r in rows)
    return target


def _choose(items: list, limit: int, seed: int) -> list:
    if not limit or limit >= len(items):
        return items
    keep = sorted(random.Random(seed).sample(range(len(items)), limit))
    return [items[i] for i in keep]


# ------------------------------------------------------------------------------- diagnosis
def family_texts(task: str, path: Path, limit: int = 500) -> list[str]:
    """The raw text a family's model reads (sentences, sentence pairs, passages and questions,
    the NER set's characters joined back), for the masked-LM loss on it."""
    from plmkit.training.finetune import TaskSettings, read_examples

    examples = read_examples(TaskSettings(task=task).resolved(), path)[:limit]
    if task == "tag":
        return ["".join(e.tokens) for e in examples]
    if task == "qa":
        return [f"{e.question} {e.context}" for e in examples]
    return [" ".join(filter(None, (e.text, e.text_pair))) for e in examples]


def masked_lm_loss(checkpoint: Path, texts: list[str]) -> dict[str, float]:
    """The checkpoint's masked-LM loss and accuracy on ``texts``, measured exactly as
    ``time_to_quality.py`` measures the pre-training corpus's held-out documents (packed 128-token
    rows, fixed 15% masks, 80/10/10), so the two numbers compare: near the held-out loss the text
    is in domain, near the unigram loss the model has not seen text like it."""
    from time_to_quality import evaluation_rows, score

    from plmkit.tokenization import WordPieceTokenizer

    tokenizer = WordPieceTokenizer.from_pretrained(checkpoint)
    rows = evaluation_rows(tokenizer, [[text] for text in texts])
    with torch.no_grad():
        measured = score(checkpoint, rows)
    return {"mlm_loss": measured["mlm_loss"], "mlm_accuracy": measured["mlm_accuracy"],
            "masked": int((rows["labels"] != -100).sum())}


def has_mlm_head(folder: Path) -> bool:
    config = json.loads((folder / "config.json").read_text())
    return (config.get("architectures") or [""])[0] in ("BertForMaskedLM", "BertForPreTraining")


# ------------------------------------------------------------------------------- inits
def random_init(like: Path, target: Path, seed: int) -> Path:
    """A BERT with ``like``'s config and vocabulary but freshly initialised weights."""
    from plmkit.models.bert import BertModel

    torch.manual_seed(seed)
    model = BertModel(BertModel.load_config(like))
    model.save_pretrained(target)
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        if (like / name).exists():
            (target / name).write_bytes((like / name).read_bytes())
    return target


def same_architecture(a: Path, b: Path) -> bool:
    keys = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
            "intermediate_size")
    ca = json.loads((a / "config.json").read_text())
    cb = json.loads((b / "config.json").read_text())
    return all(ca.get(k) == cb.get(k) for k in keys)


# ------------------------------------------------------------------------------- runs
def run(init: Path, family: str, train: Path, dev: Path, fraction: float, lr: float, args,
        work: Path) -> tuple[float, float]:
    from plmkit.training.finetune import FinetuneConfig, TaskSettings, finetune

    _, task, metric, scale = FAMILIES[family]
    # A question may take at most half the window, so a short --max-length still leaves passage.
    settings = TaskSettings(task=task, max_length=args.max_length,
                            max_query_length=min(64, args.max_length // 2))
    started = time.perf_counter()
    # A small share gets as many passes as it takes to reach --min-steps updates: the curve then
    # measures how much labelled data each init needs, not how few updates it was given.
    examples = max(1, round(count_items(settings, train) * fraction))
    steps = max(args.min_steps, math.ceil(args.epochs * math.ceil(examples / args.batch_size)))
    output = work / "run"
    shutil.rmtree(output, ignore_errors=True)
    result = finetune(FinetuneConfig(
        task=task, model=str(init), train=str(train), dev=str(dev),
        output_dir=str(output), max_steps=steps, batch_size=args.batch_size,
        eval_every=max(1, math.ceil(steps / args.evals)),
        learning_rate=lr, warmup_ratio=0.1, seed=args.seed, train_fraction=fraction,
        progress=False, plot=False, device="cpu", keep_last=1, settings=settings))
    shutil.rmtree(output, ignore_errors=True)
    return scale * result.dev_metrics.get(metric, 0.0), time.perf_counter() - started


def count_items(settings, path: Path) -> int:
    from plmkit.training.finetune import read_examples

    return len(read_examples(settings.resolved(), path))


def pretraining_gains(results: list[dict], inits: list[str], families: list[str],
                      fractions: list[float]) -> list[dict]:
    """ours − random-ours (or random, when ours has MiniLM's shape) and minilm − random."""
    baseline = {"ours": "random-ours" if "random-ours" in inits else "random",
                "minilm": "random"}
    rows = []
    for name, reference in baseline.items():
        if name not in inits or reference not in inits:
            continue
        row: dict = {"gain": f"{name} - {reference}"}
        for family in families:
            for fraction in fractions:
                def score(init: str) -> float:
                    return next(r["score"] for r in results if r["init"] == init
                                and r["family"] == family and r["fraction"] == fraction)
                row[f"{family}@{int(100 * fraction)}%"] = score(name) - score(reference)
        rows.append(row)
    return rows


def architecture(folder: Path) -> list:
    keys = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
            "intermediate_size")
    config = json.loads((folder / "config.json").read_text())
    return [config.get(k) for k in keys]


def reusable(paths: str, recipe: dict) -> dict[str, dict]:
    """Results of earlier runs (comma-separated JSON files) with the same recipe, keyed by what
    was run (init, family, fraction, architecture, checkpoint), so one table can be completed
    without re-running rows already measured (e.g. when our own checkpoint arrives later)."""
    done = {}
    for result in (r for path in paths.split(",") for r in json.loads(Path(path).read_text())):
        if result.get("recipe") != recipe:
            continue
        identity = {k: result.get(k) for k in ("init", "family", "fraction", "architecture",
                                                "checkpoint")}
        done[json.dumps(identity, sort_keys=True)] = result
    print(f"reusing {len(done)} results of {paths} measured with the same recipe")
    return done


def choose_inits(args, minilm: Path, work: Path) -> dict[str, tuple[Path, float]]:
    """The rows asked for by ``--inits``, each with its learning rate."""
    wanted = set((args.inits or "random,random-ours,ours,minilm").split(","))
    differs = bool(args.pretrained) and not same_architecture(Path(args.pretrained), minilm)
    if args.quick and args.inits is None and differs:
        wanted.discard("random")
    inits: dict[str, tuple[Path, float]] = {}
    if "random" in wanted:
        inits["random"] = (random_init(minilm, work / "random", args.seed), args.random_lr)
    if args.pretrained:
        ours = Path(args.pretrained)
        if not (ours / "config.json").exists():
            raise SystemExit(f"{ours}: no config.json, not a pre-trained checkpoint")
        if not same_architecture(ours, minilm) and "random-ours" in wanted:
            inits["random-ours"] = (random_init(ours, work / "random-ours", args.seed),
                                    args.random_lr)
        if "ours" in wanted:
            inits["ours"] = (ours, args.lr)
    else:
        print("(no --pretrained checkpoint: the 'ours' row is skipped)")
    if "minilm" in wanted:
        inits["minilm"] = (minilm, args.lr)
    return inits


def plot(results: list[dict], inits: list[str], families: list[str], fractions: list[float],
         path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(families), figsize=(4 * len(families), 3.6), squeeze=False)
    width = 0.8 / len(inits)
    for ax, family in zip(axes[0], families):
        x = np.arange(len(fractions))
        for k, init in enumerate(inits):
            values = [next((r["score"] for r in results if r["init"] == init
                            and r["family"] == family and r["fraction"] == f), 0.0)
                      for f in fractions]
            ax.bar(x + (k - (len(inits) - 1) / 2) * width, values, width, label=init)
        ax.set_xticks(x, [f"{int(100 * f)}%" for f in fractions])
        ax.set_title(f"{family} ({FAMILIES[family][2]})")
        ax.set_xlabel("share of training set")
        ax.set_ylim(0, 100)
    axes[0][0].set_ylabel("dev score (%)")
    axes[0][-1].legend(fontsize=8)
    fig.suptitle("Fine-tuning from random weights vs pre-trained checkpoints")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrained", default=None, help="our own pre-trained checkpoint")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--inits", default=None,
                        help="rows to run, of random, random-ours, ours, minilm (random-ours is "
                             "only run when ours has another architecture than MiniLM); default "
                             "all, or with --quick all but 'random' when random-ours stands in "
                             "for it as the from-scratch baseline")
    parser.add_argument("--fractions", default="0.1,0.3,1.0")
    parser.add_argument("--max-train", type=int, default=3000)
    parser.add_argument("--max-dev", type=int, default=500)
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--min-steps", type=int, default=0,
                        help="at least this many updates per run (small shares repeat)")
    parser.add_argument("--evals", type=int, default=3,
                        help="dev evaluations per run; the best one is reported")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4, help="for pre-trained inits")
    parser.add_argument("--random-lr", type=float, default=3e-4, help="for random inits")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0 = default; 1 is steadier on a busy machine)")
    parser.add_argument("--diagnose-only", action="store_true",
                        help="only the masked-LM loss of --pretrained on each family's text")
    parser.add_argument("--quick", action="store_true",
                        help="320 train / 160 dev items, 2 epochs, 2 evaluations, max length 64")
    parser.add_argument("--output", default="runs/benchmarks")
    parser.add_argument("--reuse", default=None,
                        help="pretraining_pays.json of an earlier run: rows measured there with "
                             "the same recipe are taken as they are, not re-run")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.max_train, args.max_dev, args.epochs, args.max_length = 320, 160, 2, 64
        args.evals = 2
    import plmkit.datasets as datasets

    families = args.families.split(",")
    fractions = [float(f) for f in args.fractions.split(",")]
    minilm = datasets.minilm_dir()
    print(f"machine: {machine()}")
    print(f"recipe: train ≤{args.max_train}, dev ≤{args.max_dev}, epochs={args.epochs}, "
          f"batch={args.batch_size}, lr={args.lr} (random: {args.random_lr}), "
          f"max_length={args.max_length}, min_steps={args.min_steps}, evals={args.evals}")
    recipe = {key: getattr(args, key) for key in ("max_train", "max_dev", "epochs", "batch_size",
                                                   "lr", "random_lr", "max_length", "seed",
                                                   "min_steps", "evals")}
    done = reusable(args.reuse, recipe) if args.reuse else {}
    output = Path(args.output)
    results: list[dict] = []
    diagnosis: list[dict] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        inits = choose_inits(args, minilm, work)
        for family in families:
            dataset, task, _, _ = FAMILIES[family]
            splits = getattr(datasets, dataset)()
            train = cap_file(task, Path(splits["train"]), work / family / "train",
                             args.max_train, args.seed)
            dev = cap_file(task, Path(splits["dev"]), work / family / "dev", args.max_dev,
                           args.seed)
            for name, (folder, _) in inits.items():
                if name == "ours" and has_mlm_head(folder):
                    measured = masked_lm_loss(folder, family_texts(task, train))
                    diagnosis.append({"family": family, "checkpoint": str(folder), **measured})
                    print(f"{family:17s} masked-LM loss of {name} on its training text: "
                          f"{measured['mlm_loss']:.2f} (accuracy {measured['mlm_accuracy']:.3f})",
                          flush=True)
            if args.diagnose_only:
                continue
            for name, (folder, lr) in inits.items():
                for fraction in fractions:
                    identity = {"init": name, "family": family, "fraction": fraction,
                                "architecture": architecture(folder),
                                "checkpoint": str(folder) if name == "ours" else None}
                    key = json.dumps(identity, sort_keys=True)
                    if key in done:
                        result = done[key]
                        note = "reused"
                    else:
                        score, seconds = run(folder, family, train, dev, fraction, lr, args,
                                             work)
                        result = {**identity, "score": score, "seconds": seconds,
                                  "recipe": recipe}
                        note = f"{seconds:.0f}s"
                    results.append(result)
                    output.mkdir(parents=True, exist_ok=True)  # kept up to date, run by run
                    (output / "pretraining_pays.json").write_text(json.dumps(results, indent=2)
                                                                  + "\n")
                    print(f"{family:17s} {name:12s} {int(100 * fraction):3d}%  "
                          f"{result['score']:6.2f}  ({note})", flush=True)
    if diagnosis:
        output.mkdir(parents=True, exist_ok=True)
        (output / "family_mlm_loss.json").write_text(json.dumps(diagnosis, indent=2) + "\n")
        print(table(diagnosis, ["family", "mlm_loss", "mlm_accuracy", "masked"]))
    if args.diagnose_only:
        return
    rows = []
    for name in inits:
        row: dict = {"init": name}
        for family in families:
            for fraction in fractions:
                row[f"{family}@{int(100 * fraction)}%"] = next(
                    r["score"] for r in results if r["init"] == name and r["family"] == family
                    and r["fraction"] == fraction)
        rows.append(row)
    print()
    print(table(rows, list(rows[0])))
    gains = pretraining_gains(results, list(inits), families, fractions)
    if gains:
        print("\ngain of pre-training (dev points over the random init of the same architecture)")
        print(table(gains, list(gains[0])))
    plot(results, list(inits), families, fractions, output / "pretraining_pays.png")
    (output / "pretraining_pays.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{time.perf_counter() - started:.0f}s; wrote {output / 'pretraining_pays.png'}")


if __name__ == "__main__":
    main()
