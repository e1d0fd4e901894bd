"""What int8 costs in accuracy: MiniLM fine-tuned on the built-in polarity and People's Daily NER
sets, then scored on their full dev sets in fp32 (PyTorch), as an ONNX Runtime int8 export and
under PyTorch's dynamic int8 — with ``plm export --quantize int8 --check``, so the same numbers
land in each export's ``results.json``.

    python benchmarks/int8_accuracy.py                    # fine-tunes twice (~10 min), then checks
    python benchmarks/int8_accuracy.py --reuse            # checks the fine-tuned folders again

The fine-tuned checkpoints and their exports stay in ``--work`` (default ``runs/int8-accuracy``);
the table goes to ``benchmarks/results/int8_accuracy/`` with the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, table  # noqa: E402

# family: (dataset function, task, training items, epochs)
FAMILIES = {
    "polarity": ("polarity", "classify", 3200, 3.0),
    "people_daily_ner": ("people_daily_ner", "tag", 5000, 2.0),
}
RESULTS = Path(__file__).resolve().parent / "results" / "int8_accuracy"


def fine_tune(family: str, minilm: Path, output: Path, seed: int) -> dict:
    from plmkit import datasets
    from plmkit.downstream.settings import TaskSettings
    from plmkit.training.finetune import FinetuneConfig, finetune

    dataset, task, items, epochs = FAMILIES[family]
    splits = getattr(datasets, dataset)()
    train = Path(splits["train"])
    if task == "tag":  # the first ``items`` sentences of the CoNLL file
        from plmkit.data.tasks import read_conll, write_conll

        capped = output.parent / f"{family}-train.conll"
        capped.parent.mkdir(parents=True, exist_ok=True)
        write_conll(capped, [(s.tokens, s.tags) for s in read_conll(train)[:items]])
        train = capped
    started = time.perf_counter()
    result = finetune(FinetuneConfig(
        task=task, model=str(minilm), train=str(train), dev=str(splits["dev"]),
        output_dir=str(output), epochs=epochs, batch_size=32, learning_rate=1e-4,
        warmup_ratio=0.1, seed=seed, progress=False, plot=False, device="cpu", keep_last=1,
        settings=TaskSettings(task=task)))
    return {"dev": result.dev_metrics, "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--work", type=Path, default=Path("runs/int8-accuracy"))
    parser.add_argument("--reuse", action="store_true",
                        help="keep fine-tuned folders already in --work")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    from plmkit import datasets
    from plmkit.export.onnx import export_onnx

    print(machine(), flush=True)
    minilm = datasets.minilm_dir()
    rows, records = [], {"machine": machine(), "families": {}}
    for family in args.families.split(","):
        dataset, task, items, epochs = FAMILIES[family]
        folder = args.work / family
        if not (args.reuse and (folder / "model.safetensors").is_file()):
            shutil.rmtree(folder, ignore_errors=True)
            print(f"[{family}] fine-tuning MiniLM ({items} items, {epochs:g} epochs)", flush=True)
            trained = fine_tune(family, minilm, folder, args.seed)
            print(f"[{family}] {trained['seconds'] / 60:.1f} min, dev {trained['dev']}", flush=True)
        exported = args.work / f"{family}-onnx-int8"
        shutil.rmtree(exported, ignore_errors=True)
        dev = f"{dataset}:dev"
        started = time.perf_counter()
        export_onnx(folder, exported, quantize="int8", check=dev)
        results = json.loads((exported / "results.json").read_text())
        results["seconds"] = time.perf_counter() - started
        records["families"][family] = results
        metric = results["metric"]
        row = {"family": family, "dev set": dev, "metric": metric,
               "fp32": results["runs"]["torch fp32"][metric]}
        for name in ("onnx int8", "torch-int8"):
            row[name] = results["runs"][name][metric]
            row[f"{name} cost (points)"] = results["cost_points"][name]
        rows.append(row)
        print(f"[{family}] {row}", flush=True)
    text = table(rows, list(rows[0]))
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "int8_accuracy.json").write_text(json.dumps(records, indent=2) + "\n")
    (RESULTS / "int8_accuracy.md").write_text(machine() + "\n\n" + text + "\n")


if __name__ == "__main__":
    main()
