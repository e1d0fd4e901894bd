"""One pretrained-IO mixin: a checkpoint is a folder laid out like Hugging Face's.

``config.json`` (the config dataclass, plus ``model_type`` and ``architectures`` so Hugging Face
can read it), ``model.safetensors`` (the state dict, with HF's parameter names) and, when a
tokenizer is given, ``vocab.txt``. Either side loads the other's folders.

A checkpoint folder is input, not truth, and loading checks it before trusting it, each failure a
one-line :class:`PlmError` naming the file and the field or tensor:

* ``config.json`` must be an object whose keys have the right types and values (the config class's
  ``__post_init__`` checks sizes, probabilities, activation names, heads dividing the width);
* the model it describes must fit: its parameter count, estimated from the config alone, is
  checked against a bound *before* anything is allocated (:func:`check_model_size`), so a
  ``num_hidden_layers`` of 100000 fails in milliseconds instead of growing until the OOM killer;
* ``vocab.txt`` beside it must fit the embedding (:func:`check_vocabulary`);
* the weights must match the built model: shapes (every offending tensor listed), floating
  dtypes and finite values (a NaN row would otherwise surface as a NaN score much later).
  Weights the model needs but the folder lacks are an error, except for the task head
  (``head_prefixes``), which a fine-tuning run initialises fresh.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from plmkit._io import atomic_dir
from plmkit.config import config_from_dict, load_json_object
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


# The size bound: explicit argument, else this environment variable, else the default — the smaller
# of 4e9 parameters and what float32 weights can take of three quarters of the machine's memory.
# The CLI's flag for it is ``plm --max-parameters N`` (it sets the variable for the whole command).
MAX_PARAMETERS_ENV = "PLMKIT_MAX_PARAMETERS"
DEFAULT_MAX_PARAMETERS = 4_000_000_000
MEMORY_SHARE = 0.75
BYTES_PER_PARAMETER = 4  # float32
# The deepest trained Transformers have about a hundred layers; building 100000 layers' modules
# takes minutes (even when each is tiny), so a layer count past this is refused outright.
MAX_LAYERS = 1024
# Checkpoints may pad the embedding past the vocabulary to a round row count (multiples of 8 or
# 64 suit matrix kernels: GPT-2's 50257 → 50304); fewer than this many rows of padding is that.
VOCAB_PADDING_ROWS = 128


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
    def load_config(cls, folder: str | Path, *, max_parameters: int | None = None,
                    **overrides: Any):
        """The checked config of ``folder`` (or of a ``config.json`` path), ``overrides`` applied.

        Checked before anything is built: the JSON (an object, known keys, types, values), the
        model's estimated size against the bound of :func:`check_model_size` (``max_parameters``
        overrides it), and ``vocab.txt`` beside it against ``vocab_size``.
        """
        folder = Path(folder)
        path = folder / "config.json" if folder.is_dir() else folder
        if not path.exists():
            raise PlmError("no config.json: not a checkpoint folder", path=folder)
        values = load_json_object(path)
        model_type = values.get("model_type")
        if cls.model_type and model_type not in (None, cls.model_type):
            raise PlmError(f"checkpoint is a {model_type!r} model, not {cls.model_type!r}",
                           path=path, field="model_type")
        config = cls.config_from_values(values, path, **overrides)
        check_model_size(config, max_parameters=max_parameters, source=path)
        if folder.is_dir():
            check_vocabulary(cls.embedding_rows(config), folder / "vocab.txt", path)
        return config

    @classmethod
    def embedding_rows(cls, config: Any) -> int | None:
        """Rows of the token embedding, which ``vocab.txt`` must fit (None: no such table)."""
        return getattr(config, "vocab_size", None)

    @classmethod
    def config_from_values(cls, values: dict[str, Any], path: Path, **overrides: Any):
        """Map a config.json onto the dataclass; subclasses translate HF-only keys here."""
        names = {f.name for f in dataclasses.fields(cls.config_class)}
        values = {**values, **overrides}
        ignore = tuple(k for k in HF_GENERIC_KEYS if k not in names)
        return config_from_dict(cls.config_class, values, source=path, ignore=ignore)

    @classmethod
    def from_pretrained(cls: type[M], folder: str | Path, *, strict_head: bool = False,
                        max_parameters: int | None = None, **config_overrides: Any) -> M:
        """Build the model from a checkpoint folder (ours or Hugging Face's).

        Args:
            folder: a folder with config.json and model.safetensors (or pytorch_model.bin).
            strict_head: also require the task head's weights (e.g. when loading a fine-tuned
                classifier for prediction).
            max_parameters: refuse a config describing a bigger model (default: the
                ``PLMKIT_MAX_PARAMETERS`` environment variable, else :func:`parameter_limit`).
            config_overrides: config fields to change, e.g. ``num_labels=3`` for a new head;
                other keywords go to the model's constructor (e.g. ``sparse_mlm=False``).
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise PlmError("checkpoint folder not found (no config.json)", path=folder)
        fields = {f.name for f in dataclasses.fields(cls.config_class)}
        model_kwargs = {k: v for k, v in config_overrides.items() if k not in fields}
        config_overrides = {k: v for k, v in config_overrides.items() if k in fields}
        config = cls.load_config(folder, max_parameters=max_parameters, **config_overrides)
        model = cls(config, **model_kwargs)  # type: ignore[call-arg]
        state = load_state_dict(folder)
        model.load_checkpoint_state(state, source=weights_file(folder), strict_head=strict_head)
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
            raise PlmError(f"{len(mismatched)} tensor shapes do not match the config: "
                           + "; ".join(mismatched), path=source, field=mismatched[0].split(":")[0])
        check_weight_values({k: v for k, v in state.items() if k in own},
                            {k: own[k].dtype for k in own}, source)
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


# ----------------------------------------------------------------------------- checks
def read_checkpoint_config(folder: str | Path) -> dict[str, Any]:
    """The raw ``config.json`` of a checkpoint folder, refused unless it is a JSON object.

    For callers that look at a few keys (``model_type``, ``architectures``) before choosing a
    class; building a model goes through ``load_config``, which checks every field.
    """
    folder = Path(folder)
    path = folder / "config.json"
    if not path.is_file():
        raise PlmError("no config.json: not a checkpoint folder", path=folder)
    return load_json_object(path)


def physical_memory() -> int | None:
    """Bytes of RAM on this machine (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


def parameter_limit(max_parameters: int | None = None) -> tuple[int, str]:
    """The largest model a config may describe, and where that bound comes from.

    ``max_parameters`` if given, else the ``PLMKIT_MAX_PARAMETERS`` environment variable (``4e9``
    and ``4000000000`` both read), else the smaller of 4e9 and the float32 parameters that fit
    in three quarters of this machine's RAM.
    """
    if max_parameters is not None:
        return int(max_parameters), "max_parameters"
    text = os.environ.get(MAX_PARAMETERS_ENV, "").strip()
    if text:
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not value >= 1 or value == float("inf"):
            raise PlmError(f"{MAX_PARAMETERS_ENV} must be a positive number of parameters, not "
                           f"{text!r}", field=MAX_PARAMETERS_ENV)
        return int(value), f"{MAX_PARAMETERS_ENV}={text}"
    memory = physical_memory()
    by_memory = int(MEMORY_SHARE * memory / BYTES_PER_PARAMETER) if memory else None
    if by_memory is not None and by_memory < DEFAULT_MAX_PARAMETERS:
        return by_memory, f"float32 weights in 3/4 of this machine's {memory / 2**30:.0f} GiB RAM"
    return DEFAULT_MAX_PARAMETERS, "the default"


def check_model_size(config: Any, *, max_parameters: int | None = None,
                     source: str | Path | None = None) -> int:
    """Refuse a config that describes a model too big to build here; return its estimate.

    The estimate (``config.parameter_estimate()``: parameters per field that scales them) costs
    nothing, so it runs before any allocation. Anything that builds a model from numbers a user
    typed or a file supplied should call this first; ``load_config`` and the named-size helpers
    (``bert_config`` …) do.
    """
    estimate = getattr(config, "parameter_estimate", None)
    if estimate is None:  # a config from outside models/ that cannot say (its owner should)
        return 0
    parts: dict[str, int] = estimate()
    total = sum(parts.values())
    limit, why = parameter_limit(max_parameters)
    if total > limit:
        field = max(parts, key=lambda name: parts[name])
        raise PlmError(
            f"the config describes a model of about {total:.3g} parameters "
            f"({total * BYTES_PER_PARAMETER / 2**30:,.1f} GiB in float32), over the limit of "
            f"{limit:.3g} ({why}); {field} accounts for the most ({parts[field]:.3g}). If you "
            f"mean it, raise the limit with {MAX_PARAMETERS_ENV} (or max_parameters=)",
            path=source, field=field)
    return total


def count_vocabulary(path: Path) -> int:
    """Tokens in a ``vocab.txt``, counted as its readers count them (one per line)."""
    data = path.read_bytes()
    return data.count(b"\n") + (0 if not data or data.endswith(b"\n") else 1)


def check_vocabulary(rows: int | None, vocab_path: Path, config_path: Path) -> None:
    """``vocab.txt`` must fit the embedding of ``rows`` rows.

    More tokens than rows would fail at run time (an id past the table); far fewer means the
    vocabulary is not the one the model was trained with. The embedding may still have up to
    ``VOCAB_PADDING_ROWS - 1`` more rows than tokens: some checkpoints round ``vocab_size`` up
    to a multiple of 8 or 64 for faster matrix kernels, and those rows are never read, so this
    is accepted silently. (MiniLM's, and every plmkit checkpoint's, sizes match exactly.)
    """
    if rows is None or not vocab_path.is_file():
        return
    tokens = count_vocabulary(vocab_path)
    if tokens > rows:
        raise PlmError(f"{vocab_path.name} lists {tokens:,} tokens but vocab_size is {rows:,}: "
                       f"ids from {rows:,} on would have no embedding row",
                       path=config_path, field="vocab_size")
    if rows - tokens >= VOCAB_PADDING_ROWS:
        raise PlmError(f"vocab_size is {rows:,} but {vocab_path.name} lists only {tokens:,} "
                       f"tokens ({rows - tokens:,} rows no token reaches; padding to a round "
                       f"size adds fewer than {VOCAB_PADDING_ROWS}): is this the vocabulary the "
                       f"model was trained with?", path=config_path, field="vocab_size")


def check_weight_values(state: dict[str, torch.Tensor], dtypes: dict[str, torch.dtype],
                        source: str | Path) -> None:
    """Weights must be floating where the model's are, and finite.

    A NaN or infinite value loads without complaint and only shows up much later, as a NaN
    score that is not even valid JSON; a float tensor stored as integers is a different file.
    """
    for name, tensor in state.items():
        if dtypes[name].is_floating_point and not tensor.is_floating_point():
            raise PlmError(f"tensor holds {tensor.dtype} values where the model needs floating "
                           f"point", path=source, field=name)
    broken = [(name, int((~torch.isfinite(t)).sum())) for name, t in state.items()
              if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if broken:
        listed = ", ".join(f"{name} ({count:,} values)" for name, count in broken[:5])
        raise PlmError(f"weights hold NaN or infinite values: {listed}; the checkpoint is "
                       f"damaged (a diverged training run saves such weights)",
                       path=source, field=broken[0][0])


def normalise_label_maps(config: Any) -> None:
    """``id2label`` keys as ints (JSON has only string keys), ``label2id`` values as ints, and
    ``num_labels`` from ``id2label``: HF's convention, shared by every config with a task head."""
    if config.id2label is not None:
        try:
            config.id2label = {int(k): v for k, v in config.id2label.items()}
        except (TypeError, ValueError):
            raise PlmError("id2label keys must be label ids (0, 1, …)", field="id2label") from None
        config.num_labels = len(config.id2label)
        if config.label2id is None:
            config.label2id = {v: k for k, v in config.id2label.items()}
    if config.label2id is not None:
        try:
            config.label2id = {k: int(v) for k, v in config.label2id.items()}
        except (TypeError, ValueError):
            raise PlmError("label2id values must be label ids (0, 1, …)",
                           field="label2id") from None


def weights_file(folder: str | Path) -> Path:
    """The weights of a checkpoint folder: ``model.safetensors``, else ``pytorch_model.bin``."""
    folder = Path(folder)
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).exists():
            return folder / name
    raise PlmError("no model.safetensors or pytorch_model.bin in checkpoint folder", path=folder)


def load_state_dict(folder: str | Path) -> dict[str, torch.Tensor]:
    """Read ``model.safetensors``, or ``pytorch_model.bin`` with ``weights_only=True``."""
    path = weights_file(folder)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise PlmError(f"cannot read weights ({exc}); the file is corrupted or truncated",
                           path=path) from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise PlmError(f"cannot read weights ({exc})", path=path) from None


__all__ = ["HF_GENERIC_KEYS", "MAX_LAYERS", "MAX_PARAMETERS_ENV", "PretrainedMixin", "check_model_size",
           "check_vocabulary", "check_weight_values", "load_state_dict", "normalise_label_maps",
           "parameter_limit", "read_checkpoint_config", "weights_file"]
