"""What a person watching a run sees: a progress bar, a JSONL log and PNG curves."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from plmkit._io import atomic_write
from plmkit.runtime import progress_bar


class MetricsLog:
    """Append-only JSONL: one object per logging step or evaluation."""

    def __init__(self, path: Path, enabled: bool = True) -> None:
        self.path = path
        self.enabled = enabled
        self.records: list[dict[str, Any]] = []
        if enabled and path.exists():
            self.records = read_metrics(path)

    def truncate_after(self, step: int) -> None:
        """On resume, forget what a killed run logged after its last checkpoint."""
        self.records = [r for r in self.records if r.get("step", 0) <= step]
        if self.enabled:
            with atomic_write(self.path) as handle:
                for record in self.records:
                    handle.write(json.dumps(record) + "\n")

    def write(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        if self.enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a kill: ignore it
                continue
    return records


def plot_curves(records: Sequence[dict[str, Any]], path: Path, keys: Sequence[str],
                title: str = "", references: dict[str, tuple[str, float]] | None = None
                ) -> Path | None:
    """One panel per metric (training and eval_ series together), x = optimiser step.

    ``references``: metric → (label, value), drawn as a dashed line across that panel (e.g. a
    masked LM's loss when guessing by frequency, which a curve has to get below)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    for key in keys:
        train = [(r["step"], r[key]) for r in records if key in r and "step" in r]
        evals = [(r["step"], r[f"eval_{key}"]) for r in records if f"eval_{key}" in r]
        if train or evals:
            panels.append((key, train, evals))
    if not panels:
        return None
    figure, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.4), squeeze=False)
    for axis, (key, train, evals) in zip(axes[0], panels):
        if train:
            axis.plot(*zip(*train), label="train", linewidth=1.2)
        if evals:
            axis.plot(*zip(*evals), "o-", label="held-out", linewidth=1.5, markersize=4)
        if references and key in references:
            label, value = references[key]
            axis.axhline(value, color="grey", linestyle="--", linewidth=1.2, label=label)
        axis.set_title(key.replace("_", " "))
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    with atomic_write(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=110)
    plt.close(figure)
    return path


__all__ = ["MetricsLog", "plot_curves", "progress_bar", "read_metrics"]  # progress_bar: runtime's
