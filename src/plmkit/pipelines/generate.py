"""The "generate" pipeline: a prompt in, a continuation out — whole or streamed piece by piece.

It loads a GPT checkpoint folder — one written by ``plm train-gpt`` (word or character
tokenizer) or a Hugging Face GPT-2 folder (byte-level BPE through the ``tokenizers`` library) —
and runs :mod:`plmkit.evaluation.generation` on it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from plmkit.data.text_lm import load_text_tokenizer
from plmkit.errors import PlmError
from plmkit.evaluation.generation import (GenerationConfig, Notify, notify_stderr,
                                          stream_tokens)
from plmkit.models.gpt import GPTLMHeadModel


class _HFTokenizer:
    """Encode/decode through a Hugging Face ``tokenizer.json`` or GPT-2's vocab.json + merges."""

    def __init__(self, folder: Path) -> None:
        from tokenizers import Tokenizer

        if (folder / "tokenizer.json").exists():
            self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        else:
            from tokenizers import ByteLevelBPETokenizer

            self.tokenizer = ByteLevelBPETokenizer(str(folder / "vocab.json"),
                                                   str(folder / "merges.txt"))

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)


def load_generation_tokenizer(folder: str | Path) -> Any:
    """The tokenizer saved beside a GPT checkpoint (plmkit's or Hugging Face's)."""
    folder = Path(folder)
    ours = load_text_tokenizer(folder)
    if ours is not None:
        return ours
    if (folder / "tokenizer.json").exists() or ((folder / "vocab.json").exists()
                                                and (folder / "merges.txt").exists()):
        return _HFTokenizer(folder)
    raise PlmError("no tokenizer in the checkpoint folder (expected vocab.txt + "
                   "tokenizer_config.json from plm train-gpt, or tokenizer.json / vocab.json + "
                   "merges.txt from Hugging Face)", path=folder)


class TextGenerationPipeline:
    """``pipe = TextGenerationPipeline("runs/gpt"); pipe("The market", max_new_tokens=20)``.

    Generation settings are :class:`GenerationConfig` fields given as keywords; ``stop`` lists
    strings that end the continuation, each of which must be one token (e.g. ``"\\n"``).
    """

    def __init__(self, model: str | Path | GPTLMHeadModel, tokenizer: Any = None, *,
                 device: str = "cpu", notify: Notify | None = notify_stderr) -> None:
        if isinstance(model, (str, Path)):
            folder = Path(model)
            self.model = GPTLMHeadModel.from_pretrained(folder)
            self.tokenizer = tokenizer or load_generation_tokenizer(folder)
        else:
            if tokenizer is None:
                raise PlmError("a model object needs its tokenizer", field="tokenizer")
            self.model, self.tokenizer = model, tokenizer
        self.model.to(torch.device(device)).eval()
        self.notify = notify

    def stop_ids(self, stop: Sequence[str]) -> tuple[int, ...]:
        ids = []
        for text in stop:
            encoded = self.tokenizer.encode(text)
            if len(encoded) != 1:
                raise PlmError(f"stop text {text!r} is {len(encoded)} tokens, not one",
                               field="stop")
            ids.append(encoded[0])
        return tuple(ids)

    def config(self, stop: Sequence[str] = (), **generation: Any) -> GenerationConfig:
        stop_tokens = tuple(generation.pop("stop_tokens", ())) + self.stop_ids(stop)
        pad = getattr(self.model.config, "pad_token_id", None) or 0
        return GenerationConfig(stop_tokens=stop_tokens, pad_token_id=pad, **generation)

    def stream(self, prompt: str, *, stop: Sequence[str] = (), **generation: Any) -> Iterator[str]:
        """The continuation as text pieces, each yielded as soon as its token is chosen.

        Settings and the prompt are checked here, before the first token is computed.
        """
        config = self.config(stop, **generation)
        prompt_ids = self.tokenizer.encode(prompt)
        if not prompt_ids:
            raise PlmError("the prompt encodes to no token", field="prompt")
        return self._pieces(prompt_ids, config)

    def _pieces(self, prompt_ids: list[int], config: GenerationConfig) -> Iterator[str]:
        shown = len(self.tokenizer.decode(prompt_ids))
        generated: list[int] = []
        for token in stream_tokens(self.model, prompt_ids, config, notify=self.notify):
            generated.append(token)
            text = self.tokenizer.decode(prompt_ids + generated)
            if text.endswith("\ufffd"):  # a multi-byte character is not complete yet
                continue
            if len(text) > shown:
                yield text[shown:]
                shown = len(text)

    def __call__(self, prompt: str, *, stop: Sequence[str] = (), **generation: Any) -> str:
        """The continuation of ``prompt`` (without the prompt)."""
        return "".join(self.stream(prompt, stop=stop, **generation))

    def attention(self, text: str) -> dict[str, Any]:
        """``text``'s tokens and every block's causal attention weights, each (heads, query,
        key): what an attention explorer draws. A text longer than the context window keeps
        its last ``n_positions`` tokens, as generation does."""
        ids = self.tokenizer.encode(text)
        if not ids:
            raise PlmError("the text encodes to no token", field="text")
        ids = ids[-self.model.config.n_positions:]
        device = next(self.model.parameters()).device
        with torch.no_grad():
            out = self.model(torch.tensor([ids], device=device), output_attentions=True,
                             logits_to_keep=1)
        return {"tokens": [self.tokenizer.decode([i]) for i in ids],
                "attentions": [layer[0].float().cpu() for layer in out.attentions]}


__all__ = ["TextGenerationPipeline", "load_generation_tokenizer"]
