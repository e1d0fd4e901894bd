"""The ladder's outputs: the markdown table, the bar chart, ``ladder.json``, and reading that
record back for ``--resume``."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from plmkit._io import atomic_dir
from plmkit.config import load_json
from plmkit.errors import PlmError
from plmkit.ladder.plan import (CONTROLS, PRETRAINING_RECORD, REUSABLE_BERTS, LadderConfig, Plan,
                                Row, describe_pretraining, pretraining_record)


def cell(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _parameters(count: int) -> str:
    return f"{count / 1e6:.2f}M" if count >= 1e5 else f"{count / 1e3:.1f}k"


def markdown_table(rows: Sequence[Row], config: LadderConfig, plan: Plan) -> str:
    corpus = "PTB" if config.corpus == "ptb" else Path(config.corpus).name
    task = (f" + the {plan.task_sentences:,} polarity training sentences without their labels"
            if plan.task_sentences else "")
    few = f" | polarity, {plan.few_labels:,} labels" if plan.few_labels else ""
    lines = [
        f"| generation | model | {corpus} test perplexity | polarity accuracy{few} | "
        "NER entity F1 | parameters | train time (s) |",
        "|---|---|---:|---:|" + ("---:|" if few else "") + "---:|---:|---:|"]
    for row in rows:
        few_cell = f" | {cell(row.polarity_few_accuracy, 3)}" if few else ""
        lines.append(f"| {row.generation} | {row.model} | {cell(row.perplexity, 1)} | "
                     f"{cell(row.polarity_accuracy, 3)}{few_cell} | {cell(row.ner_f1, 3)} | "
                     f"{_parameters(row.parameters)} | {row.seconds:.0f} |")
    lines += [
        "",
        f"Budget {config.budget:g}: pre-training on {plan.lm_sentences:,} {corpus} sentences"
        f"{task} "
        f"(English, the {plan.vocab_size:,} most frequent words, the rest `<unk>`) and "
        f"{plan.zh_sentences:,} People's Daily sentences (Chinese characters); "
        f"polarity: {plan.polarity_train:,} training sentences"
        + (f" (and {plan.few_labels:,} of them, trained for as many updates: the mean over "
           f"{plan.few_draws} fixed draws, each in ladder.json)" if plan.few_labels else "")
        + ", accuracy on the dev split"
        + (f" (± {math.sqrt(0.25 / plan.polarity_dev):.3f} at most: one binomial standard error "
           f"on its {plan.polarity_dev:,} sentences)" if plan.polarity_dev else "")
        + "; NER: "
        f"{plan.ner_train:,} training sentences, entity F1 on {plan.ner_dev:,} dev sentences. "
        "Perplexity: word level, one shared vocabulary, `</s>` predicted; n-gram, NNLM and ELMo's "
        "forward LM read one sentence at a time, LSTM and GPT the running text. — = not a "
        "left-to-right language model"
        + (", or not pre-trained (the -scratch rows: the network of the row above, fine-tuned "
           "the same way from random weights)" if any(r.generation in CONTROLS.values()
                                                    for r in rows) else "")
        + ". Parameters: the English pre-trained model (n-gram: "
        "stored n-grams; word2vec: input + output vectors; BERT: encoder without heads). Time: "
        "everything of the row (both pre-trainings and every downstream run) on this machine."
        + _reused_note(config),
    ]
    return "\n".join(lines) + "\n"


def _reused_note(config: LadderConfig) -> str:
    notes = []
    for _, language, folder in config.reused_berts():
        summary = describe_pretraining(pretraining_record(folder))
        notes.append(f" BERT's {language} pre-training is reused from `{folder}`"
                     + (f": {summary}; counted in the row's time." if summary else
                        f" (it has no {PRETRAINING_RECORD}: its pre-training time is not "
                        "counted)."))
    return "".join(notes)


def plot_ladder(rows: Sequence[Row], path: Path, polarity_dev: int = 0) -> None:
    """One bar panel per measure. With ``polarity_dev`` (the dev sentences behind each
    accuracy), accuracies carry ±1 binomial standard error: on 400 sentences that is about
    ±2.3 points, the size of most gaps between generations. From-scratch controls are hatched."""
    # lazy: pyplot costs about half a second to import and must come after choosing the Agg
    # backend; only the chart needs it (as in training/reporting.py)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.generation for r in rows]
    x = np.arange(len(rows))
    panels = [("held-out perplexity (lower is better)", [r.perplexity for r in rows], None),
              ("polarity accuracy", [r.polarity_accuracy for r in rows], (0, 1)),
              ("polarity accuracy, few labels", [r.polarity_few_accuracy for r in rows], (0, 1)),
              ("NER entity F1", [r.ner_f1 for r in rows], (0, 1)),
              ("train time (s)", [r.seconds for r in rows], None)]

    def standard_errors(title: str, values: list) -> list[float] | None:
        if not polarity_dev or not title.startswith("polarity"):
            return None
        return [0.0 if v is None else math.sqrt(v * (1 - v) / polarity_dev) for v in values]

    panels = [panel for panel in panels if any(v is not None for v in panel[1])]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (title, values, limits) in zip(axes[0], panels):
        heights = [0.0 if v is None else v for v in values]
        errors = standard_errors(title, values)
        bars = ax.bar(x, heights, color=plt.cm.viridis(np.linspace(0.1, 0.9, len(rows))),
                      yerr=errors, capsize=3 if errors else 0, ecolor="0.4")
        for bar, row in zip(bars, rows):
            if row.generation in CONTROLS.values():  # a control, not a generation: hatched
                bar.set_hatch("//")
                bar.set_alpha(0.55)
        for bar, value in zip(bars, values):
            label = "—" if value is None else (f"{value:.0f}" if value >= 10 else f"{value:.2f}")
            ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x, names, rotation=40, ha="right")
        ax.set_title(title, fontsize=10)
        if limits:
            # scores of [0, 1] zoomed to the band the rows fall in: 0.55 against 0.70 is the
            # story, and a full 0–1 axis flattens it (the bars carry their values)
            known = [v for v in values if v is not None]
            low = max(limits[0], math.floor((min(known) - 0.1) * 10) / 10)
            high = min(limits[1], math.ceil((max(known) + 0.05) * 10) / 10)
            ax.set_ylim(low, max(high, low + 0.1))
    fig.suptitle("The ladder: each generation on the same data")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(rows: Sequence[Row], config: LadderConfig, plan: Plan, output: Path) -> str:
    """ladder.md, ladder.json and ladder.png, all or nothing (the folder is swapped in)."""
    table = markdown_table(rows, config, plan)
    with atomic_dir(output) as folder:
        (folder / "ladder.md").write_text(table, encoding="utf-8")
        record = {"config": dataclasses.asdict(config), "plan": dataclasses.asdict(plan),
                  "rows": [dataclasses.asdict(r) for r in rows]}
        (folder / "ladder.json").write_text(json.dumps(record, indent=2) + "\n",
                                            encoding="utf-8")
        plot_ladder(rows, folder / "ladder.png", plan.polarity_dev)
    return table


# What a kept row (``resume``) depends on besides the plan: the data and settings every row
# shares, and a row's own inputs.
SHARED_SETTINGS = ("budget", "corpus", "test_corpus", "polarity_train", "polarity_dev",
                   "ner_train", "ner_dev", "task_text", "few_labels", "few_draws", "seed")
ROW_SETTINGS = {row: tuple(name for name, _ in REUSABLE_BERTS)
                for row in ("bert", "bert-scratch")}


def previous_rows(output: Path, config: LadderConfig, plan: Plan) -> dict[str, Row]:
    """The rows of an earlier run into ``output`` that this run may keep: all of them when
    it was made from the same data, sizes and seed (else an error: mixing them would compare
    generations on different data), except rows whose own inputs changed."""
    path = output / "ladder.json"
    if not path.is_file():
        return {}
    record = load_json(path)
    old_config, old_plan = record.get("config", {}), record.get("plan", {})
    if not isinstance(old_config, dict) or not isinstance(old_plan, dict):
        raise PlmError("not a ladder record (config and plan should be objects)", path=path)
    settings = dataclasses.asdict(config)
    changed = ([k for k in SHARED_SETTINGS if old_config.get(k) != settings[k]]
               + [k for k, v in dataclasses.asdict(plan).items() if old_plan.get(k) != v])
    if changed:
        raise PlmError(f"made with other settings ({', '.join(changed)}): its rows cannot share "
                       "a table with this run's; leave out --resume or write elsewhere", path=path)
    rows = {}
    for number, values in enumerate(record.get("rows", []), 1):
        try:
            row = Row(**values)
        except TypeError:
            raise PlmError(f"row {number} is not a ladder row", path=path, field="rows") from None
        if all(old_config.get(k) == settings[k] for k in ROW_SETTINGS.get(row.generation, ())):
            rows[row.generation] = row
    return rows
