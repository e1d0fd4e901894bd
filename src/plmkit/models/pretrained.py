"""One pretrained-IO mixin: a checkpoint is a folder laid out like Hugging Face's.

``config.json`` (the config dataclass, plus ``model_type`` and ``architectures`` so Hugging Face
can read it), ``model.safetensors`` (the state dict, with HF's parameter names) and, when a
tokenizer is given, ``vocab.txt``. Either side loads the other's folders.

Loading is strict where a silent mistake would hurt: a tensor whose shape differs from the config
is an error that lists every offending tensor; weights the model needs but the folder lacks are an
error, except for the task head (``head_prefixes``), which a fine-tuning run initialises fresh.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from plmkit._io import atomic_dir
from plmkit.config import config_from_dict, load_json
from plmkit.errors import PlmError

M = TypeVar("M", bound="PretrainedMixin")

# Keys Hugging Face writes into every config.json that mean nothing to our dataclasses.
HF_GENERIC_KEYS = (
    "_name_or_path", "architectures", "model_type", "transformers_version", "torch_dtype", "dtype",
    "use_cache", "gradient_checkpointing", "output_past", "finetuning_task", "is_decoder",
    "add_cross_attention", "chunk_size_feed_forward", "return_dict", "output_hidden_states",
    "output_attentions", "torchscript", "tie_word_embeddings", "is_encoder_decoder", "bos_token_id",
    "eos_token_id", "tokenizer_class", "prefix", "sep_token_id", "decoder_start_token_id",
    "task_specific_params", "problem_type", "pruned_heads", "cross_attention_hidden_size",
    "tf_legacy_loss", "use_bfloat16", "id2label", "label2id", "num_labels", "classifier_dropout",
)


def _rename_legacy(key: str) -> str:
    """TF-era checkpoints call LayerNorm's parameters gamma/beta."""
    if key.endswith(".gamma"):
        return key[: -len("gamma")] + "weight"
    if key.endswith(".beta"):
        return key[: -len("beta")] + "bias"
    return key


class PretrainedMixin:
    """Shared ``from_pretrained`` / ``save_pretrained`` for every plmkit model.

    Subclasses set ``config_class``, ``model_type`` (HF's name), ``base_model_prefix`` (the
    attribute holding the encoder in head models, e.g. ``"bert"``), ``hf_architecture``,
    ``tied_weights`` (state-dict keys that alias another tensor and are not stored) and
    ``head_prefixes`` (keys that may be missing from a checkpoint and are initialised fresh).
    """

    config_class: ClassVar[type]
    model_type: ClassVar[str] = ""
    base_model_prefix: ClassVar[str] = ""
    hf_architecture: ClassVar[str] = ""
    tied_weights: ClassVar[tuple[str, ...]] = ()
    head_prefixes: ClassVar[tuple[str, ...]] = ()
    ignored_keys: ClassVar[tuple[str, ...]] = ()
    config: Any

    # ----------------------------------------------------------------------------- saving
    def config_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self.config)
        values["model_type"] = self.model_type
        values["architectures"] = [self.hf_architecture or type(self).__name__]
        return values

    def save_pretrained(self, folder: str | Path, tokenizer: Any = None) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (+ ``vocab.txt``) atomically."""
        from safetensors.torch import save_file

        assert isinstance(self, nn.Module)
        folder = Path(folder)
        state = {
            key: tensor.detach().contiguous().cpu()
            for key, tensor in self.state_dict().items()
            if key not in self.tied_weights
        }
        with atomic_dir(folder) as tmp:
            (tmp / "config.json").write_text(json.dumps(self.config_dict(), indent=2) + "\n")
            save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
            if tokenizer is not None:
                tokenizer.save_pretrained(tmp)
            else:
                # Keep the vocabulary of a checkpoint we are overwriting in place.
                for name in ("vocab.txt", "tokenizer_config.json"):
                    if (folder / name).exists():
                        (tmp / name).write_bytes((folder / name).read_bytes())
        return folder

    # ----------------------------------------------------------------------------- loading
    @classmethod
    def load_config(cls, folder: str | Path, **overrides: Any):
        folder = Path(folder)
        path = folder / "config.json" if folder.is_dir() else folder
        if not path.exists():
            raise PlmError("no config.json: not a checkpoint folder", path=folder)
        values = load_json(path)
        model_type = values.get("model_type")
        if cls.model_type and model_type not in (None, cls.model_type):
            raise PlmError(f"checkpoint is a {model_type!r} model, not {cls.model_type!r}",
                           path=path, field="model_type")
        return cls.config_from_values(values, path, **overrides)

    @classmethod
    def config_from_values(cls, values: dict[str, Any], path: Path, **overrides: Any):
        """Map a config.json onto the dataclass; subclasses translate HF-only keys here."""
        names = {f.name for f in dataclasses.fields(cls.config_class)}
        values = {**values, **overrides}
        ignore = tuple(k for k in HF_GENERIC_KEYS if k not in names)
        return config_from_dict(cls.config_class, values, source=path, ignore=ignore)

    @classmethod
    def from_pretrained(cls: type[M], folder: str | Path, *, strict_head: bool = False,
                        **config_overrides: Any) -> M:
        """Build the model from a checkpoint folder (ours or Hugging Face's).

        Args:
            folder: a folder with config.json and model.safetensors (or pytorch_model.bin).
            strict_head: also require the task head's weights (e.g. when loading a fine-tuned
                classifier for prediction).
            config_overrides: config fields to change, e.g. ``num_labels=3`` for a new head;
                other keywords go to the model's constructor (e.g. ``sparse_mlm=False``).
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise PlmError("checkpoint folder not found (no config.json)", path=folder)
        fields = {f.name for f in dataclasses.fields(cls.config_class)}
        model_kwargs = {k: v for k, v in config_overrides.items() if k not in fields}
        config_overrides = {k: v for k, v in config_overrides.items() if k in fields}
        config = cls.load_config(folder, **config_overrides)
        model = cls(config, **model_kwargs)  # type: ignore[call-arg]
        state = load_state_dict(folder)
        model.load_checkpoint_state(state, source=folder, strict_head=strict_head)
        model.eval()
        return model

    def load_checkpoint_state(self, state: dict[str, torch.Tensor], *, source: Path | str,
                              strict_head: bool = False) -> None:
        assert isinstance(self, nn.Module)
        state = self._align_prefix({_rename_legacy(k): v for k, v in state.items()})
        own = self.state_dict()
        wanted = [k for k in own if k not in self.tied_weights]
        mismatched = [
            f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
            for k in wanted if k in state and state[k].shape != own[k].shape
        ]
        if mismatched:
            raise PlmError("tensor shapes do not match the config:\n  " + "\n  ".join(mismatched),
                           path=source)
        missing = [k for k in wanted if k not in state]
        optional = () if strict_head else self.head_prefixes
        required_missing = [k for k in missing if not k.startswith(optional) or not optional]
        required_missing = [k for k in required_missing if not self._is_buffer_key(k)]
        if required_missing:
            listed = ", ".join(required_missing[:10]) + (" …" if len(required_missing) > 10 else "")
            raise PlmError(f"checkpoint lacks {len(required_missing)} tensors the model needs: "
                           f"{listed}", path=source)
        fresh = [k for k in missing if k not in required_missing and not self._is_buffer_key(k)]
        if fresh:
            print(f"plmkit: {type(self).__name__}: initialised fresh (not in checkpoint): "
                  f"{', '.join(sorted({k.rsplit('.', 1)[0] for k in fresh}))}", file=sys.stderr)
        usable = {k: v for k, v in state.items() if k in own}
        self.load_state_dict(usable, strict=False)
        self.tie_weights()

    def _is_buffer_key(self, key: str) -> bool:
        assert isinstance(self, nn.Module)
        buffers = dict(self.named_buffers())
        return key in buffers

    def _align_prefix(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Accept checkpoints saved from a head model (keys ``bert.…``) or from the bare encoder."""
        assert isinstance(self, nn.Module)
        prefix = self.base_model_prefix
        if not prefix:
            return state
        own = self.state_dict()
        ours_prefixed = any(k.startswith(prefix + ".") for k in own)
        theirs_prefixed = any(k.startswith(prefix + ".") for k in state)
        if ours_prefixed and not theirs_prefixed:
            return {(f"{prefix}.{k}" if f"{prefix}.{k}" in own else k): v for k, v in state.items()}
        if theirs_prefixed and not ours_prefixed:
            return {k[len(prefix) + 1:]: v for k, v in state.items() if k.startswith(prefix + ".")}
        return state

    def tie_weights(self) -> None:
        """Re-point tied parameters (e.g. the MLM decoder at the word embeddings)."""

    # ----------------------------------------------------------------------------- init
    def init_weights(self) -> None:
        """Every module's initial weights, then the ties. By default BERT's and GPT-2's scheme:
        N(0, ``initializer_range``) matrices and embeddings (padding row zero), zero biases,
        LayerNorm = identity; a model changes the two distributions with :meth:`init_matrix`
        and :meth:`embedding_std`."""
        assert isinstance(self, nn.Module)
        for module in self.modules():
            self._init_module(module)
        self.tie_weights()

    def init_matrix(self, weight: torch.Tensor) -> None:
        nn.init.normal_(weight, std=self.config.initializer_range)

    def embedding_std(self) -> float:
        return self.config.initializer_range

    def _init_module(self, module: nn.Module) -> None:
        if isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=self.embedding_std())
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(getattr(module, "weight", None), nn.Parameter) and module.weight.dim() == 2:
            # nn.Linear, and GPT-2's Conv1D (the same map with the matrix stored transposed)
            self.init_matrix(module.weight)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    def num_parameters(self, trainable_only: bool = False) -> int:
        assert isinstance(self, nn.Module)
        seen: set[int] = set()
        total = 0
        for parameter in self.parameters():
            if id(parameter) in seen or (trainable_only and not parameter.requires_grad):
                continue
            seen.add(id(parameter))
            total += parameter.numel()
        return total


def load_state_dict(folder: str | Path) -> dict[str, torch.Tensor]:
    """Read ``model.safetensors``, or ``pytorch_model.bin`` with ``weights_only=True``."""
    folder = Path(folder)
    safetensors_path = folder / "model.safetensors"
    if safetensors_path.exists():
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(safetensors_path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise PlmError(f"cannot read weights ({exc}); the file is corrupted or truncated",
                           path=safetensors_path) from None
    bin_path = folder / "pytorch_model.bin"
    if bin_path.exists():
        try:
            return torch.load(bin_path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
            raise PlmError(f"cannot read weights ({exc})", path=bin_path) from None
    raise PlmError("no model.safetensors or pytorch_model.bin in checkpoint folder", path=folder)


__all__ = ["PretrainedMixin", "load_state_dict", "HF_GENERIC_KEYS"]
