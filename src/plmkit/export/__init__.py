"""Checkpoints in forms other runtimes load: ONNX (run by ONNX Runtime) and Hugging Face's own
classes (:mod:`plmkit.models.convert`).

* :func:`~plmkit.export.onnx.export_onnx` writes a self-contained folder — ``model.onnx`` with
  dynamic batch and sequence axes, the tokenizer files, ``config.json`` and ``task.json`` — for a
  fine-tuned head (classify, pair, tag, QA) or the bare encoder;
* :class:`~plmkit.export.runtime.OnnxModel` runs such a folder behind the same call and outputs as
  our PyTorch models, so predictors and pipelines take either (``runtime="onnx"``).
"""
