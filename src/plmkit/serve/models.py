"""What a checkpoint folder can serve, read from its own files, and the batch functions for it.

* a BERT with a masked-LM head (``plm pretrain`` output, HF ``BertForMaskedLM``): fill-mask,
  embed, attention;
* a bare BERT encoder (MiniLM, HF ``BertModel``): embed, attention;
* a fine-tuned BERT (``task.json`` or a task-head architecture): classify/pair, ner (tag) or qa,
  plus attention;
* a GPT (``model_type`` ``gpt2``): generate (streamed), attention (causal);
* a translation Transformer (``plmkit_transformer``): translate, attention (encoder, decoder
  and cross-attention of a source and its translation).

Every batch function takes a list of request inputs and returns one result per input, so the
:class:`~plmkit.serve.batching.DynamicBatcher` can gather concurrent requests into one call.
Nothing here reads a path from a request: the folders are fixed when the server starts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from plmkit.errors import PlmError
from plmkit.models.pretrained import read_checkpoint_config

MLM_ARCHITECTURES = ("BertForMaskedLM", "BertForPreTraining")
# What each kind of folder answers (the endpoints the page shows as tabs).
ENDPOINTS: dict[str, tuple[str, ...]] = {
    "fill-mask": ("fill-mask", "embed", "attention"),
    "embed": ("embed", "attention"),
    "classify": ("classify", "attention"),
    "pair": ("classify", "attention"),
    "tag": ("ner", "attention"),
    "qa": ("qa", "attention"),
    "generate": ("generate", "attention"),
    "translate": ("translate", "attention"),
}


@dataclass
class ServedModel:
    """One loaded folder: its kind, the endpoints it answers and a batch function for each
    (``generate`` streams instead: :meth:`stream`)."""

    name: str
    folder: Path
    kind: str
    batch_functions: dict[str, Callable[[list[Any]], list[Any]]] = field(default_factory=dict)
    streamer: Callable[..., Iterator[str]] | None = None
    max_length: int = 512
    tokenizer: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    modules: list[torch.nn.Module] = field(default_factory=list)  # what the functions run

    @property
    def endpoints(self) -> tuple[str, ...]:
        return ENDPOINTS[self.kind]

    def count_tokens(self, text: str) -> int:
        if self.tokenizer is None:
            return len(text.split())
        encode = getattr(self.tokenizer, "encode_ids", None)
        if encode is not None:
            return len(encode([text])[0])
        return len(self.tokenizer.encode(text))

    def describe(self) -> dict[str, Any]:
        return {"id": self.name, "object": "model", "kind": self.kind,
                "endpoints": list(self.endpoints), "max_length": self.max_length}


def folder_kind(folder: Path) -> str:
    """The kind of model a checkpoint folder holds, from its own files; one line otherwise."""
    if not folder.is_dir():
        raise PlmError("model folder not found", path=folder)
    config = read_checkpoint_config(folder)
    model_type = config.get("model_type")
    architecture = (config.get("architectures") or [""])[0]
    if model_type == "gpt2":
        return "generate"
    if model_type == "plmkit_transformer":
        return "translate"
    if model_type != "bert":
        raise PlmError(f"cannot serve a model_type {model_type!r} checkpoint (BERT, GPT and "
                       "translation folders are served)", path=folder / "config.json",
                       field="model_type")
    if (folder / "task.json").exists() or architecture not in (*MLM_ARCHITECTURES, "BertModel",
                                                                ""):
        from plmkit.downstream.settings import load_settings

        return load_settings(folder).task
    return "fill-mask" if architecture in MLM_ARCHITECTURES else "embed"


def load_served(name: str, folder: str | Path, *, max_length: int | None = None) -> ServedModel:
    """Load ``folder`` with the pipelines that serve its kind."""
    folder = Path(folder)
    kind = folder_kind(folder)
    served = ServedModel(name, folder, kind)
    if kind in ("fill-mask", "embed"):
        _bert_encoder(served, kind)
    elif kind in ("classify", "pair", "tag", "qa"):
        _finetuned(served, kind)
    elif kind == "generate":
        _gpt(served)
    else:
        _translation(served)
    if max_length is not None:
        served.max_length = min(served.max_length, max_length)
    return served


# ----------------------------------------------------------------------------- BERT encoders
def attention_view(name: str, queries: list[str], keys: list[str], layers: Sequence[Any]
                   ) -> dict[str, Any]:
    """One attention map for the page: query tokens (drawn left), key tokens (right) and the
    weights per layer × head × query × key, rounded to 4 decimals to keep the JSON small."""
    return {"name": name, "queries": queries, "keys": keys,
            "attentions": [torch.as_tensor(a).float().numpy().round(4).tolist()
                           for a in layers]}


def attention_answer(views: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """Every view, with the first one's tokens and weights also at the top level (``tokens``,
    ``attentions``: a self-attention map, as BERT gives)."""
    return {"tokens": views[0]["queries"], "attentions": views[0]["attentions"],
            "views": views, **extra}


def _attention_function(encoder: Any, tokenizer: Any, limit: int
                        ) -> Callable[[list[Any]], list[Any]]:
    """Per text: its tokens and every layer's attention probabilities (layer × head × query ×
    key), what the page's attention explorer draws. One text at a time (no padding to read
    around)."""

    def run(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        results = []
        for item in items:
            encoding = tokenizer.encode(item["text"], max_length=limit)
            tokens = [tokenizer.ids_to_tokens[i] for i in encoding.ids]
            with torch.no_grad():
                out = encoder(torch.tensor([encoding.ids]),
                              token_type_ids=torch.tensor([encoding.type_ids]),
                              output_attentions=True)
            layers = [a[0] for a in out.attentions]
            results.append(attention_answer([attention_view("self-attention", tokens, tokens,
                                                            layers)]))
        return results

    return run


def _bert_encoder(served: ServedModel, kind: str) -> None:
    from plmkit.pipelines.embed import EmbeddingPipeline

    encoder = None
    if kind == "fill-mask":
        from plmkit.pipelines.fill_mask import FillMaskPipeline

        pipe = FillMaskPipeline(served.folder)
        encoder = pipe.model.bert
        served.modules.append(pipe.model)
        served.batch_functions["fill-mask"] = lambda items: _fill_mask(pipe, items)
    embedding = EmbeddingPipeline(served.folder, encoder=encoder, max_length=1 << 30,
                                  batch_size=1 << 30)  # the batcher sizes the batches
    served.tokenizer = embedding.tokenizer
    if encoder is None:
        served.modules.append(embedding.model)
    served.max_length = embedding.max_length  # the model's own limit
    served.batch_functions["embed"] = lambda items: embedding(list(items)).tolist()
    served.batch_functions["attention"] = _attention_function(embedding.model,
                                                              embedding.tokenizer,
                                                              served.max_length)


def _fill_mask(pipe: Any, items: list[dict[str, Any]]) -> list[Any]:
    top_k = max(item["top_k"] for item in items)
    results = pipe.batch([item["text"] for item in items], top_k=top_k)
    return [[[{"token": p.token, "token_id": p.token_id, "score": p.score,
               "sequence": p.sequence} for p in mask[:item["top_k"]]] for mask in result]
            for item, result in zip(items, results)]


# ----------------------------------------------------------------------------- fine-tuned heads
def _finetuned(served: ServedModel, kind: str) -> None:
    from plmkit.data.tasks import TextExample
    from plmkit.data.tasks_qa import QAExample
    from plmkit.pipelines import finetuned_pipeline

    pipe = finetuned_pipeline(served.folder)
    served.tokenizer = pipe.tokenizer
    served.modules.append(pipe.model)
    served.max_length = pipe.model.config.max_position_embeddings
    encoder = pipe.model.bert
    served.batch_functions["attention"] = _attention_function(encoder, pipe.tokenizer,
                                                              served.max_length)
    if kind in ("classify", "pair"):
        def classify(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            examples = [TextExample(item["text"], item.get("text_pair")) for item in items]
            return pipe.predict_examples(examples, all_scores=True)

        served.batch_functions["classify"] = classify
    elif kind == "tag":
        served.batch_functions["ner"] = lambda items: pipe(list(items))
    else:
        def answer(items: list[dict[str, str]]) -> list[dict[str, Any]]:
            examples = [QAExample(str(n), item["question"], item["context"])
                        for n, item in enumerate(items)]
            return pipe.predict_examples(examples)

        served.batch_functions["qa"] = answer


# ----------------------------------------------------------------------------- GPT, translation
def _gpt(served: ServedModel) -> None:
    from plmkit.pipelines.generate import TextGenerationPipeline

    pipe = TextGenerationPipeline(served.folder, notify=None)
    served.tokenizer = pipe.tokenizer
    served.modules.append(pipe.model)
    served.max_length = pipe.model.config.n_positions

    def stream(prompt: str, **generation: Any) -> Iterator[str]:
        return pipe.stream(prompt, **generation)

    def attention(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        results = []
        for item in items:
            found = pipe.attention(item["text"])
            tokens = found["tokens"]
            results.append(attention_answer([attention_view("masked self-attention", tokens,
                                                            tokens, found["attentions"])]))
        return results

    served.streamer = stream
    served.batch_functions["attention"] = attention


def _translation(served: ServedModel) -> None:
    from plmkit.pipelines.translate import TranslationPipeline

    pipe = TranslationPipeline(served.folder)
    served.tokenizer = pipe.tokenizer
    served.modules.append(pipe.model)
    served.max_length = getattr(pipe, "max_length", None) or 256

    def translate(items: list[dict[str, Any]]) -> list[str]:
        beams = {item.get("beam_size") for item in items}
        if len(beams) == 1:
            return pipe.translate([item["text"] for item in items], beam_size=beams.pop(),
                                  warn=False)
        return [pipe.translate([item["text"]], beam_size=item.get("beam_size"), warn=False)[0]
                for item in items]

    def attention(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        results = []
        for item in items:
            found = pipe.attention(item["text"])
            source, target = found["source_tokens"], found["target_tokens"]
            views = [attention_view("cross-attention (target → source)", target, source,
                                    found["cross_attentions"]),
                     attention_view("encoder self-attention", source, source,
                                    found["encoder_attentions"]),
                     attention_view("decoder masked self-attention", target, target,
                                    found["decoder_attentions"])]
            results.append(attention_answer(views, translation=found["translation"]))
        return results

    served.batch_functions["translate"] = translate
    served.batch_functions["attention"] = attention


def parse_model_arguments(values: Sequence[str]) -> list[tuple[str, Path]]:
    """``folder`` or ``name=folder`` → (name, folder); names must be unique."""
    seen: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep:
            name, path = Path(value).name or "model", value
        if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise PlmError(f"model name {name!r}: letters, digits, '-', '_' and '.' only",
                           field="model")
        if name in seen:
            raise PlmError(f"two models are named {name!r}; name them: NAME=FOLDER",
                           field="model")
        seen[name] = Path(path)
    return list(seen.items())


__all__ = ["ENDPOINTS", "ServedModel", "attention_answer", "attention_view", "folder_kind", "load_served", "parse_model_arguments"]
