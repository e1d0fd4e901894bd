"""What the fine-tuned pipelines share: load a checkpoint with its task settings, run batches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import torch

from plmkit.errors import PlmError
from plmkit.downstream import (TaskData, TaskSettings, eval_batches, featurize, load_finetuned,
                               load_settings, load_tokenizer, make_predictor)
from plmkit.runtime import move_to, progress_bar, resolve_device


class FinetunedPipeline:
    """A fine-tuned checkpoint ready to predict: model, tokenizer and ``task.json`` settings.

    Args:
        model: the checkpoint folder (``plm finetune``'s output, or any HF folder with the head).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``.
        batch_size: inputs per forward pass.
        progress: draw a progress bar on stderr while predicting (long files).
        runtime: ``"torch"`` (default), ``"torch-int8"`` (the encoder's linears in PyTorch's
            dynamic int8; CPU) or ``"onnx"`` for a ``plm export --format onnx`` folder.
        settings: overrides of the checkpoint's task settings (e.g. ``max_length=256``).
    """

    tasks: ClassVar[tuple[str, ...]] = ()

    def __init__(self, model: str | Path, *, device: str = "cpu", batch_size: int = 32,
                 progress: bool = False, runtime: str = "torch", **settings: Any) -> None:
        self.folder = Path(model)
        if not self.folder.is_dir():
            raise PlmError("checkpoint folder not found", path=self.folder)
        loaded = load_settings(self.folder, **settings)
        if loaded.task not in self.tasks:
            raise PlmError(f"this is a {loaded.task!r} checkpoint; the {type(self).__name__} "
                           f"needs one of {', '.join(self.tasks)}", path=self.folder)
        self.model = load_finetuned(self.folder, loaded, runtime)
        self.runtime = runtime
        self.settings: TaskSettings = loaded.resolved(self.model.config.max_position_embeddings)
        self.tokenizer = load_tokenizer(self.folder)
        self.device = resolve_device(device)
        if runtime != "torch" and self.device.type != "cpu":
            raise PlmError(f"runtime {runtime!r} runs on the CPU, not {self.device}",
                           field="device")
        self.model.to(self.device).eval()
        self.batch_size = batch_size
        self.progress = progress
        self.task = make_predictor(self.settings, self.model)

    @property
    def id2label(self) -> dict[int, str]:
        return self.model.config.id2label or {}

    def features(self, examples: list) -> TaskData:
        return featurize(self.settings, self.tokenizer, examples, None, training=False)

    def batches(self, data: TaskData) -> Iterator[dict[str, Any]]:
        """The features in batches on the device; with ``progress``, a bar counts the inputs
        (QA: the passage windows) as they are predicted."""
        source = eval_batches(data, self.batch_size, self.tokenizer.pad_token_id)
        with progress_bar(len(data.features), 0, self.progress, "predict", "input") as bar:
            for batch in source.batches(0):
                yield move_to(batch, self.device)
                bar.update(len(batch["input_ids"]))

    def no_grad(self) -> torch.autograd.grad_mode.no_grad:
        return torch.no_grad()


__all__ = ["FinetunedPipeline"]
