"""Request bodies of ``plm serve``, as pydantic models: FastAPI checks them (a wrong type or a
value out of range is a 422 naming the field) and publishes them in the OpenAPI schema."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not ignored


class FillMaskRequest(_Request):
    text: str = Field(min_length=1, description="text with one or more [MASK] tokens")
    top_k: int = Field(5, ge=1, le=50)


class TextsRequest(_Request):
    texts: list[str] = Field(min_length=1, description="one or more texts")


class EmbedRequest(TextsRequest):
    pass


class OpenAIEmbeddingRequest(_Request):
    """OpenAI's ``/v1/embeddings`` request: what many clients already send."""

    model: str
    input: str | list[str]
    encoding_format: str = Field("float", pattern="^float$")
    user: str | None = None


class ClassifyRequest(TextsRequest):
    text_pairs: list[str] | None = Field(None, description="second sentences, for pair models")


class QARequest(_Request):
    question: str = Field(min_length=1)
    context: str = Field(min_length=1)


class TranslateRequest(TextsRequest):
    beam_size: int = Field(4, ge=1, le=16)


class AttentionRequest(_Request):
    text: str = Field(min_length=1)


class GenerateRequest(_Request):
    prompt: str = Field(min_length=1)
    max_new_tokens: int = Field(50, ge=1)
    temperature: float = Field(0.8, ge=0, le=5, description="0 = greedy")
    top_p: float = Field(0.95, gt=0, le=1)
    top_k: int = Field(0, ge=0)
    seed: int | None = None
    stream: bool = True


__all__ = ["AttentionRequest", "ClassifyRequest", "EmbedRequest", "FillMaskRequest",
           "GenerateRequest", "OpenAIEmbeddingRequest", "QARequest", "TextsRequest",
           "TranslateRequest"]
