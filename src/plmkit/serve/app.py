"""The ASGI app behind ``plm serve``: JSON endpoints per model, dynamic batching, limits, metrics,
and the web page.

``create_app({"name": ServedModel, ...}, ServeSettings(...))`` returns a FastAPI app, for
``plm serve`` (run by uvicorn), for tests, and for a user's own service. Every error is a JSON
object ``{"error": {"message", "field"?}}`` with a 4xx/5xx status, and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

from plmkit.errors import PlmError
from plmkit.serve import schemas  # at module level: FastAPI resolves the annotations here
from plmkit.serve.batching import DynamicBatcher, QueueFull
from plmkit.serve.models import ServedModel

STATIC = "static"


@dataclass
class ServeSettings:
    """Limits and switches of one server (``plm serve``'s flags)."""

    max_batch_size: int = 32        # inputs per forward pass
    max_wait_ms: float = 5.0        # how long the first input waits for company
    max_queue: int = 256            # inputs waiting per model; past it, 503 at once
    timeout: float = 30.0           # seconds a request may wait for its result (504 after)
    max_body_bytes: int = 1_000_000  # request bodies past this are refused (413)
    max_items: int = 64             # texts per request
    max_length: int | None = None   # tokens per input (default: each model's own limit)
    max_new_tokens: int = 256       # generation's cap
    batching: bool = True           # off: one request, one forward (the load benchmark's baseline)
    shape_buckets: bool = True      # pad BERT batches to a few fixed shapes (flat memory)
    precision: str = "fp32"         # fp32, bf16, or auto (bf16 where this CPU computes it natively)
    api_key: str | None = None      # bearer token for /v1/* and /metrics
    cors_origins: tuple[str, ...] = ()


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field, self.headers = status, message, field, headers


def _error_body(message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, **({"field": field} if field else {})}}


class _Metrics:
    """Prometheus metrics in a registry of this app's own (no global state)."""

    def __init__(self, batchers: Mapping[str, Mapping[str, DynamicBatcher]]) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("plm_requests", "HTTP requests", ["model", "endpoint", "status"],
                                registry=self.registry)
        self.latency = Histogram("plm_request_latency_seconds", "request latency",
                                 ["endpoint"], registry=self.registry,
                                 buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30))
        self.batch_size = Histogram("plm_batch_size", "inputs per forward pass", ["model"],
                                    registry=self.registry,
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128))
        depth = Gauge("plm_queue_depth", "inputs waiting", ["model"], registry=self.registry)
        for model, endpoints in batchers.items():
            depth.labels(model).set_function(
                lambda e=endpoints: float(sum(b.depth for b in e.values())))

    def text(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


def _use_shape_buckets(models: Iterable[ServedModel]) -> None:
    """Every BERT encoder the models run pads its batches to fixed shapes
    (:class:`~plmkit.models.bert.ShapeBuckets`): a server meets a new (rows × tokens) shape with
    nearly every batch, and each new shape costs a compiled kernel and allocator memory."""
    from plmkit.models.bert import BertModel, ShapeBuckets

    buckets = ShapeBuckets()
    for served in models:
        for module in served.modules:
            for sub in module.modules():
                if isinstance(sub, BertModel):
                    sub.shape_buckets = buckets


def create_app(models: Mapping[str, ServedModel], settings: ServeSettings | None = None):
    """The ASGI app serving ``models`` (name → loaded model). When the settings' precision
    resolves to bf16, the models' linear weights are converted to bf16 in place
    (:func:`~plmkit.precision.store_linears_in_bf16`): the models are the app's from then on."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

    import torch

    from plmkit.precision import autocast_context, resolve_precision, store_linears_in_bf16

    settings = settings or ServeSettings()
    precision = resolve_precision(settings.precision, "cpu")
    if precision.precision == "bf16":
        for served in models.values():
            for module in served.modules:
                store_linears_in_bf16(module)
    if settings.shape_buckets:
        _use_shape_buckets(models.values())
    batchers: dict[str, dict[str, DynamicBatcher]] = {}
    metrics_holder: dict[str, _Metrics] = {}

    def batcher(model: ServedModel, endpoint: str) -> DynamicBatcher:
        found = batchers.setdefault(model.name, {}).get(endpoint)
        if found is None:
            function = model.batch_functions[endpoint]
            lock = model.lock  # one forward at a time per model, whatever the endpoint

            def run(items: list[Any], function=function) -> list[Any]:
                with lock, torch.no_grad(), autocast_context(precision.precision):
                    return function(items)

            found = DynamicBatcher(
                run, max_batch_size=settings.max_batch_size if settings.batching else 1,
                max_wait_ms=settings.max_wait_ms if settings.batching else 0.0,
                max_queue=settings.max_queue, length=_length,
                on_batch=lambda size, name=model.name: metrics_holder["m"].batch_size.labels(
                    name).observe(size))
            batchers[model.name][endpoint] = found
        return found

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        for model in models.values():
            for endpoint in model.batch_functions:
                batcher(model, endpoint)
        metrics_holder["m"] = _Metrics(batchers)
        yield
        for endpoints in batchers.values():  # graceful: finish what is queued
            for found in endpoints.values():
                await found.stop()

    app = FastAPI(title="plmkit serve", lifespan=lifespan,
                  description="BERT, GPT and Transformer checkpoints behind JSON endpoints, "
                              "with dynamic batching. Errors: {\"error\": {\"message\", "
                              "\"field\"}}.")
    app.state.settings, app.state.models = settings, models
    app.state.metrics_text = lambda: metrics_holder["m"].text().decode()
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET", "POST"], allow_headers=["*"])

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Any:
        """Body size, auth and the request metrics, before any endpoint runs."""
        started = time.perf_counter()
        path = request.url.path
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > settings.max_body_bytes:
            return _json(413, _error_body(f"request body of {length} bytes is over the limit "
                                          f"of {settings.max_body_bytes}", "body"))
        if settings.api_key and (path.startswith("/v1/") or path == "/metrics"):
            given = request.headers.get("authorization", "")
            if not secrets.compare_digest(given, f"Bearer {settings.api_key}"):
                return _json(401, _error_body("missing or wrong bearer token", "authorization"),
                             {"WWW-Authenticate": "Bearer"})
        response = await call_next(request)
        if path.startswith("/v1/") and "m" in metrics_holder:
            parts = path.strip("/").split("/")
            model = parts[2] if len(parts) > 3 and parts[1] == "models" else ""
            endpoint = parts[-1]
            metrics_holder["m"].requests.labels(model, endpoint, str(response.status_code)).inc()
            metrics_holder["m"].latency.labels(endpoint).observe(time.perf_counter() - started)
        return response

    def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Any:
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Any:
        return _json(exc.status, _error_body(exc.message, exc.field), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Any:
        first = exc.errors()[0] if exc.errors() else {"msg": "invalid request", "loc": ()}
        if first.get("type") == "json_invalid":
            return _json(400, _error_body(f"malformed JSON: {first.get('msg')}", "body"))
        field = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
        return _json(422, _error_body(first.get("msg", "invalid request"), field or None))

    def model_for(name: str, endpoint: str) -> ServedModel:
        model = models.get(name)
        if model is None:
            raise ApiError(404, f"no model named {name!r}; served: {', '.join(models)}",
                           "model")
        if endpoint not in model.endpoints:
            raise ApiError(404, f"model {name!r} ({model.kind}) does not serve {endpoint}; it "
                                f"serves {', '.join(model.endpoints)}", "endpoint")
        return model

    def check_lengths(model: ServedModel, texts: list[str], field: str) -> None:
        if len(texts) > settings.max_items:
            raise ApiError(413, f"{len(texts)} inputs in one request; the limit is "
                                f"{settings.max_items}", field)
        limit = min(model.max_length, settings.max_length or model.max_length)
        for index, text in enumerate(texts):
            # A word piece covers at least one character, so a text of at most limit - 3
            # characters fits ([CLS], [SEP], [SEP]) without being tokenised here a second time.
            if len(text) + 3 > limit and model.count_tokens(text) > limit:
                raise ApiError(422, f"input is longer than {limit} tokens",
                               f"{field}[{index}]" if len(texts) > 1 or field.endswith("s")
                               else field)

    async def run(model: ServedModel, endpoint: str, items: list[Any]) -> list[Any]:
        found = batcher(model, endpoint)
        try:
            return list(await asyncio.gather(*(found.submit(item, settings.timeout)
                                               for item in items)))
        except QueueFull:
            raise ApiError(503, f"model {model.name!r} is busy: its queue is full",
                           headers={"Retry-After": "1"}) from None
        except asyncio.TimeoutError:
            raise ApiError(504, f"no result within {settings.timeout:g} s") from None
        except PlmError as exc:
            raise ApiError(422, exc.message, exc.field) from None

    # ------------------------------------------------------------------------- endpoints
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> Any:
        return HTMLResponse(_static("index.html"))

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Any:
        types = {".js": "text/javascript", ".css": "text/css"}
        suffix = name[name.rfind("."):] if "." in name else ""
        if suffix not in types or "/" in name or name.startswith("."):
            raise ApiError(404, "not found")
        try:
            return Response(_static(name), media_type=types[suffix])
        except FileNotFoundError:
            raise ApiError(404, "not found") from None

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "models": {name: m.kind for name, m in models.items()},
                "precision": precision.precision,
                "queue_depth": {name: sum(b.depth for b in e.values())
                                for name, e in batchers.items()}}

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Any:
        return Response(metrics_holder["m"].text(),
                        media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [m.describe() for m in models.values()]}

    @app.post("/v1/models/{name}/fill-mask")
    async def fill_mask(name: str, body: schemas.FillMaskRequest) -> dict[str, Any]:
        model = model_for(name, "fill-mask")
        check_lengths(model, [body.text], "text")
        [masks] = await run(model, "fill-mask", [{"text": body.text, "top_k": body.top_k}])
        return {"model": name, "masks": masks}

    @app.post("/v1/models/{name}/embed")
    async def embed(name: str, body: schemas.EmbedRequest) -> dict[str, Any]:
        model = model_for(name, "embed")
        check_lengths(model, body.texts, "texts")
        vectors = await run(model, "embed", body.texts)
        return {"model": name, "embeddings": vectors,
                "dimensions": len(vectors[0]) if vectors else 0}

    @app.post("/v1/embeddings")
    async def openai_embeddings(body: schemas.OpenAIEmbeddingRequest) -> dict[str, Any]:
        model = model_for(body.model, "embed")
        texts = [body.input] if isinstance(body.input, str) else list(body.input)
        if not texts:
            raise ApiError(422, "input is empty", "input")
        check_lengths(model, texts, "input")
        vectors = await run(model, "embed", texts)
        tokens = sum(model.count_tokens(t) for t in texts)
        return {"object": "list", "model": body.model,
                "data": [{"object": "embedding", "index": i, "embedding": v}
                         for i, v in enumerate(vectors)],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    @app.post("/v1/models/{name}/classify")
    async def classify(name: str, body: schemas.ClassifyRequest) -> dict[str, Any]:
        model = model_for(name, "classify")
        pairs = body.text_pairs
        if pairs is not None and len(pairs) != len(body.texts):
            raise ApiError(422, f"{len(pairs)} text_pairs for {len(body.texts)} texts",
                           "text_pairs")
        check_lengths(model, [t + " " + (pairs[i] if pairs else "")
                              for i, t in enumerate(body.texts)], "texts")
        items = [{"text": t, "text_pair": pairs[i] if pairs else None}
                 for i, t in enumerate(body.texts)]
        return {"model": name, "results": await run(model, "classify", items)}

    @app.post("/v1/models/{name}/ner")
    async def ner(name: str, body: schemas.TextsRequest) -> dict[str, Any]:
        model = model_for(name, "ner")
        check_lengths(model, body.texts, "texts")
        return {"model": name, "results": await run(model, "ner", body.texts)}

    @app.post("/v1/models/{name}/qa")
    async def qa(name: str, body: schemas.QARequest) -> dict[str, Any]:
        model = model_for(name, "qa")
        check_lengths(model, [body.question], "question")
        if len(body.context) > 200_000:
            raise ApiError(422, "context is longer than 200,000 characters", "context")
        [result] = await run(model, "qa", [{"question": body.question,
                                            "context": body.context}])
        return {"model": name, **result}

    @app.post("/v1/models/{name}/translate")
    async def translate(name: str, body: schemas.TranslateRequest) -> dict[str, Any]:
        model = model_for(name, "translate")
        check_lengths(model, body.texts, "texts")
        items = [{"text": t, "beam_size": body.beam_size} for t in body.texts]
        return {"model": name, "translations": await run(model, "translate", items)}

    @app.post("/v1/models/{name}/attention")
    async def attention(name: str, body: schemas.AttentionRequest) -> dict[str, Any]:
        model = model_for(name, "attention")
        check_lengths(model, [body.text], "text")
        [result] = await run(model, "attention", [{"text": body.text}])
        return {"model": name, **result}

    @app.post("/v1/models/{name}/generate")
    async def generate(name: str, body: schemas.GenerateRequest) -> Any:
        """Tokens stream as server-sent events (``data: {"text": …}``, then ``event: done``)
        when ``stream`` is true. Generation runs one request at a time per model (no batching
        across requests); others wait their turn in the queue."""
        model = model_for(name, "generate")
        check_lengths(model, [body.prompt], "prompt")
        if body.max_new_tokens > settings.max_new_tokens:
            raise ApiError(422, f"max_new_tokens is capped at {settings.max_new_tokens}",
                           "max_new_tokens")
        options = {"max_new_tokens": body.max_new_tokens, "temperature": body.temperature,
                   "top_p": body.top_p, "top_k": body.top_k}
        if body.seed is not None:
            options["seed"] = body.seed
        try:
            pieces = model.streamer(body.prompt, **options)
        except PlmError as exc:
            raise ApiError(422, exc.message, exc.field) from None
        except TypeError as exc:
            raise ApiError(422, f"invalid generation settings: {exc}") from None
        produced = _produce_in_thread(pieces, model.lock, precision.precision)
        if not body.stream:
            text = []
            async for kind, value in produced:
                if kind == "error":
                    raise ApiError(500, value)
                text.append(value)
            return {"model": name, "text": "".join(text)}

        async def events() -> AsyncIterator[str]:
            async for kind, value in produced:
                if kind == "error":
                    yield f"event: error\ndata: {json.dumps({'message': value})}\n\n"
                    return
                yield f"data: {json.dumps({'text': value}, ensure_ascii=False)}\n\n"
            yield "event: done\ndata: {}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    return app


async def _produce_in_thread(pieces: Any, lock: threading.Lock, precision: str = "fp32"
                             ) -> AsyncIterator[tuple[str, str]]:
    """The generator ``pieces`` run in a thread of its own (the event loop stays free), in
    ``precision``, as ("piece", text) items, or one ("error", message) that ends them."""
    import torch

    from plmkit.precision import autocast_context

    queue: asyncio.Queue = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def produce() -> None:
        try:
            with lock, torch.no_grad(), autocast_context(precision):
                for piece in pieces:
                    loop.call_soon_threadsafe(queue.put_nowait, ("piece", piece))
            loop.call_soon_threadsafe(queue.put_nowait, ("done", ""))
        except Exception as exc:  # noqa: BLE001 - reported to the client
            loop.call_soon_threadsafe(queue.put_nowait, ("error", str(exc)))

    threading.Thread(target=produce, daemon=True, name="plm-generate").start()
    while True:
        kind, value = await queue.get()
        if kind == "done":
            return
        yield kind, value
        if kind == "error":
            return


def _length(item: Any) -> int:
    if isinstance(item, str):
        return len(item)
    if isinstance(item, dict):
        return sum(len(v) for v in item.values() if isinstance(v, str))
    return 0


def _static(name: str) -> bytes:
    return resources.files("plmkit.serve").joinpath(STATIC, name).read_bytes()


__all__ = ["ApiError", "ServeSettings", "create_app"]
