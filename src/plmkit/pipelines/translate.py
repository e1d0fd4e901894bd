"""The "translate" pipeline: sentences in, translations out, from a ``plm train-translation``
checkpoint (a :class:`~plmkit.models.transformer.TransformerModel` with its joint vocabulary).

    >>> from plmkit.pipelines.translate import TranslationPipeline
    >>> translate = TranslationPipeline("runs/en-de", beam_size=4)
    >>> translate("The news spread like wildfire.")
    'Die Nachricht verbreitete sich in Windeseile.'

Beam search with GNMT's length penalty by default (``beam_size=1`` is greedy search); see
:mod:`plmkit.evaluation.decoding`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from plmkit.downstream import load_tokenizer
from plmkit.errors import PlmError
from plmkit.evaluation.decoding import LengthPenalty, TranslationReport, translate_texts
from plmkit.models.transformer import TransformerModel
from plmkit.runtime import resolve_device


class TranslationPipeline:
    """Translate with a checkpoint folder (or an already loaded model and tokenizer).

    Args:
        model: checkpoint folder, or a :class:`TransformerModel` (then give ``tokenizer``).
        tokenizer: the joint vocabulary; read from the folder when not given.
        beam_size: 1 = greedy search.
        length_penalty: α of the length penalty (0 = off); ``length_penalty_style`` ``"gnmt"``
            or ``"simple"``.
        batch_size: sentences per forward pass.
        max_length: cap on generated tokens (default: source length + 50, within the model).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
    """

    def __init__(self, model: str | Path | TransformerModel, *, tokenizer: Any = None,
                 beam_size: int = 4, length_penalty: float = 0.6,
                 length_penalty_style: str = "gnmt", batch_size: int = 32,
                 max_length: int | None = None, device: str = "cpu") -> None:
        if isinstance(model, (str, Path)):
            folder = Path(model)
            if not folder.is_dir():
                raise PlmError("checkpoint folder not found", path=folder)
            tokenizer = tokenizer if tokenizer is not None else load_tokenizer(folder)
            model = TransformerModel.from_pretrained(folder)
        elif tokenizer is None:
            raise PlmError("give the tokenizer with a model object", field="tokenizer")
        if beam_size < 1:
            raise PlmError(f"beam size must be ≥ 1, not {beam_size}", field="beam_size")
        if batch_size < 1:
            raise PlmError(f"batch size must be ≥ 1, not {batch_size}", field="batch_size")
        if max_length is not None and max_length < 2:
            raise PlmError(f"max length must be ≥ 2 (a token and EOS), not {max_length}",
                           field="max_length")
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.beam_size = beam_size
        try:
            self.length_penalty = LengthPenalty(length_penalty, length_penalty_style)
        except ValueError as exc:
            raise PlmError(str(exc), field="length_penalty_style") from None
        self.batch_size = batch_size
        self.max_length = max_length
        self.last_report = TranslationReport()

    def __call__(self, texts: str | Sequence[str], **options: Any) -> str | list[str]:
        """One sentence → its translation; a list → a list (same order, blank → blank)."""
        if isinstance(texts, str):
            return self.translate([texts], **options)[0]
        return self.translate(list(texts), **options)

    def translate(self, texts: Sequence[str], *, beam_size: int | None = None,
                  warn: bool = True) -> list[str]:
        with torch.no_grad():
            outputs, report = translate_texts(
                self.model, self.tokenizer, texts, beam_size=beam_size or self.beam_size,
                length_penalty=self.length_penalty, batch_size=self.batch_size,
                max_length=self.max_length)
        self.last_report = report
        if warn and report.warning():
            print(f"plmkit: {report.warning()}", file=sys.stderr)
        return outputs

    def attention(self, text: str, *, beam_size: int = 1) -> dict[str, Any]:
        """Translate ``text`` (greedy by default), then run the model once over the source and
        its translation with ``output_attentions``: the source and target tokens and, per
        layer (heads, query, key), the encoder's self-attention, the decoder's masked
        self-attention and the cross-attention from each target token to the source."""
        from plmkit.data.parallel import encode_texts
        from plmkit.evaluation.decoding import translate_batch

        config = self.model.config
        if not text.strip():
            raise PlmError("the text is empty", field="text")
        source = [*encode_texts(self.tokenizer, [text])[0][:config.max_position_embeddings - 1],
                  config.eos_token_id]
        input_ids = torch.tensor([source], device=self.device)
        with torch.no_grad():
            [target] = translate_batch(self.model, input_ids, beam_size=beam_size,
                                       length_penalty=self.length_penalty,
                                       max_length=self.max_length)
            decoder_input_ids = torch.tensor([[config.bos_token_id, *target]],
                                             device=self.device)
            out = self.model(input_ids, decoder_input_ids=decoder_input_ids,
                             output_attentions=True)

        def maps(layers: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
            return [layer[0].float().cpu() for layer in layers]

        names = self.tokenizer.ids_to_tokens
        return {"translation": self.tokenizer.decode(target),
                "source_tokens": [names[i] for i in source],
                "target_tokens": [names[i] for i in decoder_input_ids[0].tolist()],
                "encoder_attentions": maps(out.encoder_attentions),
                "decoder_attentions": maps(out.decoder_attentions),
                "cross_attentions": maps(out.cross_attentions)}


__all__ = ["TranslationPipeline"]
