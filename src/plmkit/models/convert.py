"""Write a plmkit BERT checkpoint in a layout a standard Hugging Face class loads with equal logits.

A post-LN BERT with biases (the paper's network, and every plmkit default) needs nothing: its
folder *is* Hugging Face's ``BertModel``/``BertForMaskedLM`` layout. Two options of
:class:`~plmkit.models.bert.BertConfig` leave that layout, and this module maps them back:

* ``use_bias=False`` (bias-free encoder linears): Hugging Face's BERT always has biases, so the
  folder is written with explicit zero biases — the same function.
* ``layer_norm_position="pre"``: Hugging Face's ``BertModel`` is post-LN and cannot represent it;
  loading such a folder with a ``Bert*`` class would *not* fail loudly enough (it warns about
  missing LayerNorm weights and runs a different network). The standard class that fits is
  **RoBERTa-PreLayerNorm** (``model_type="roberta-prelayernorm"``): LayerNorm before each
  sub-layer (``attention.LayerNorm``, ``intermediate.LayerNorm``), one after the last layer
  (``roberta_prelayernorm.LayerNorm``) — our parameter names on purpose — and an embedding
  LayerNorm as ours. Two differences are mapped: RoBERTa numbers positions from
  ``pad_token_id + 1`` (so the position table is shifted and grows by that many rows), and its
  masked-LM head is called ``lm_head`` (``dense``, ``layer_norm``, ``decoder``, ``bias``) with a
  fixed GELU, so a head with another activation is refused.

Hugging Face then loads the converted folder with ``AutoModelForMaskedLM.from_pretrained`` (or
``RobertaPreLayerNormModel``); ``tests/test_bert_recipe.py`` checks the logits against ours. The
converted folder is for Hugging Face; plmkit reads its own folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from plmkit._io import atomic_dir, write_text_atomic
from plmkit.errors import PlmError
from plmkit.models.pretrained import load_state_dict, read_checkpoint_config

PRE_LN_PREFIX = "roberta_prelayernorm"


def _linear_names(layers: int) -> list[str]:
    """The encoder's linear maps, whose biases ``use_bias=False`` drops."""
    names = []
    for i in range(layers):
        layer = f"encoder.layer.{i}"
        names += [f"{layer}.attention.self.query", f"{layer}.attention.self.key",
                  f"{layer}.attention.self.value", f"{layer}.attention.output.dense",
                  f"{layer}.intermediate.dense", f"{layer}.output.dense"]
    return names


def with_zero_biases(state: dict[str, torch.Tensor], config: dict[str, Any],
                     prefix: str = "bert") -> dict[str, torch.Tensor]:
    """``state`` with an explicit zero bias for every bias-free encoder linear."""
    state = dict(state)
    for name in _linear_names(int(config["num_hidden_layers"])):
        weight = state.get(f"{prefix}.{name}.weight")
        if weight is not None and f"{prefix}.{name}.bias" not in state:
            state[f"{prefix}.{name}.bias"] = torch.zeros(weight.shape[0], dtype=weight.dtype)
    return state


def _pre_ln_state(state: dict[str, torch.Tensor], pad: int) -> dict[str, torch.Tensor]:
    """Our names → RobertaPreLayerNormForMaskedLM's; the position table shifted by pad + 1."""
    out: dict[str, torch.Tensor] = {}
    head = {"cls.predictions.transform.dense.": "lm_head.dense.",
            "cls.predictions.transform.LayerNorm.": "lm_head.layer_norm.",
            "cls.predictions.decoder.": "lm_head.decoder.",
            "cls.predictions.bias": "lm_head.bias"}
    for key, tensor in state.items():
        if key.startswith("cls.seq_relationship"):
            continue  # no NSP head in RoBERTa
        for ours, theirs in head.items():
            if key.startswith(ours):
                out[theirs + key[len(ours):]] = tensor
                break
        else:
            name = key[len("bert."):] if key.startswith("bert.") else key
            out[f"{PRE_LN_PREFIX}.{name}"] = tensor
    table_key = f"{PRE_LN_PREFIX}.embeddings.position_embeddings.weight"
    table = out[table_key]
    shifted = torch.zeros(table.shape[0] + pad + 1, table.shape[1], dtype=table.dtype)
    shifted[pad + 1:] = table
    out[table_key] = shifted
    if "lm_head.bias" in out:
        out["lm_head.decoder.bias"] = out["lm_head.bias"]
    if "lm_head.decoder.weight" not in out:  # tied: the decoder is the word embedding
        out["lm_head.decoder.weight"] = out[f"{PRE_LN_PREFIX}.embeddings.word_embeddings.weight"]
    return out


def _pre_ln_config(config: dict[str, Any]) -> dict[str, Any]:
    pad = int(config.get("pad_token_id", 0))
    keep = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
            "intermediate_size", "hidden_act", "hidden_dropout_prob",
            "attention_probs_dropout_prob", "type_vocab_size", "initializer_range",
            "layer_norm_eps", "pad_token_id", "id2label", "label2id")
    values = {k: config[k] for k in keep if k in config}
    values.update(model_type="roberta-prelayernorm",
                  architectures=["RobertaPreLayerNormForMaskedLM"],
                  max_position_embeddings=int(config["max_position_embeddings"]) + pad + 1,
                  position_embedding_type="absolute", tie_word_embeddings=True)
    return values


def to_hugging_face(folder: str | Path, output: str | Path) -> Path:
    """Write ``folder`` (a plmkit BERT checkpoint) to ``output`` so that a standard Hugging Face
    class loads it with equal outputs: post-LN as BERT (zero biases where ``use_bias`` is off),
    pre-LN as RoBERTa-PreLayerNorm (masked LM or encoder). The vocabulary files are copied;
    ``output`` appears whole or not at all."""
    import json
    import shutil

    from safetensors.torch import save_file

    folder, output = Path(folder), Path(output)
    config = read_checkpoint_config(folder)
    if config.get("model_type") != "bert":
        raise PlmError(f"not a BERT checkpoint (model_type {config.get('model_type')!r})",
                       path=folder / "config.json", field="model_type")
    state = with_zero_biases(load_state_dict(folder), config)
    values = dict(config)
    if config.get("layer_norm_position", "post") == "pre":
        if config.get("hidden_act", "gelu") != "gelu":
            raise PlmError("RoBERTa-PreLayerNorm's masked-LM head uses GELU; this checkpoint's "
                           f"hidden_act is {config['hidden_act']!r}", path=folder / "config.json",
                           field="hidden_act")
        architectures = config.get("architectures") or []
        if architectures and architectures[0] not in ("BertForMaskedLM", "BertForPreTraining",
                                                      "BertModel"):
            raise PlmError(f"only a masked LM or a bare encoder converts to RoBERTa-PreLayerNorm "
                           f"here, not {architectures[0]}", path=folder / "config.json",
                           field="architectures")
        state = _pre_ln_state(state, int(config.get("pad_token_id", 0)))
        values = _pre_ln_config(config)
    else:
        values.pop("layer_norm_position", None)
        values.pop("use_bias", None)
    with atomic_dir(output) as staging:
        save_file({k: v.contiguous().clone() for k, v in state.items()},
                  str(staging / "model.safetensors"), metadata={"format": "pt"})
        write_text_atomic(staging / "config.json", json.dumps(values, indent=2) + "\n")
        for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
            if (folder / name).is_file():
                shutil.copyfile(folder / name, staging / name)
    return output


__all__ = ["to_hugging_face", "with_zero_biases"]
