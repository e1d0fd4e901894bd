"""``plm serve``: checkpoints behind a batched HTTP service, with a web page to look inside them.

    plm serve runs/mini minilm=~/.cache/plmkit/minilm runs/ner --port 8000

Each MODEL is a checkpoint folder (``name=folder`` to name it); what it serves comes from its
own files (:mod:`plmkit.serve.models`). JSON endpoints are under ``/v1`` (OpenAPI at ``/docs``),
the page at ``/``, ``/health`` and ``/metrics`` (Prometheus). Loopback only unless ``--host``
says otherwise; ``--api-key`` (or ``$PLMKIT_API_KEY``) asks for a bearer token. SIGTERM stops
accepting, finishes the requests in flight and exits 0.
"""

from __future__ import annotations

import argparse
import os

from plmkit.commands._types import positive_float, positive_int
from plmkit.errors import PlmError

API_KEY_ENV = "PLMKIT_API_KEY"
ONEDNN_SHAPES_KEPT = 16  # without shape buckets; see run()


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("serve", help="serve checkpoints over HTTP, with a web page",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", metavar="MODEL",
                        help="checkpoint folder, or NAME=FOLDER")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=positive_int, default=8000)
    parser.add_argument("--max-batch-size", type=positive_int, default=32,
                        help="inputs gathered into one forward pass (default 32)")
    parser.add_argument("--max-wait-ms", type=positive_float, default=5.0,
                        help="how long a batch waits for more inputs (default 5 ms)")
    parser.add_argument("--no-batching", action="store_true",
                        help="one request, one forward pass (for comparison)")
    parser.add_argument("--no-shape-buckets", action="store_true",
                        help="run each BERT batch at its own shape instead of padding it to a "
                             "few fixed ones (more kernels and memory; for comparison)")
    parser.add_argument("--max-queue", type=positive_int, default=256,
                        help="inputs waiting per model; past it requests get 503 at once")
    parser.add_argument("--timeout", type=positive_float, default=30.0,
                        help="seconds a request may wait for its result (504 after)")
    parser.add_argument("--max-body-bytes", type=positive_int, default=1_000_000)
    parser.add_argument("--max-items", type=positive_int, default=64,
                        help="texts per request (default 64)")
    parser.add_argument("--max-length", type=positive_int, default=None,
                        help="tokens per input (default: each model's own limit)")
    parser.add_argument("--max-new-tokens", type=positive_int, default=256,
                        help="generation's cap per request")
    parser.add_argument("--api-key", default=None,
                        help=f"require 'Authorization: Bearer KEY' (or set ${API_KEY_ENV})")
    parser.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                        help="allow browser pages from ORIGIN to call the API (off by default)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="what the models compute in: auto (default) is bf16 where this CPU "
                             "computes it natively and faster, else fp32")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch threads (default: torch's own choice)")
    parser.set_defaults(func=run)


def build(args: argparse.Namespace):
    """The app for ``args``: every model loaded first, so a folder the server cannot serve is
    a one-line error at start-up, not on the first request."""
    from plmkit.serve import ServeSettings, create_app, load_served
    from plmkit.serve.models import parse_model_arguments

    try:
        import fastapi  # noqa: F401
        import prometheus_client  # noqa: F401
    except ImportError as exc:
        raise PlmError(f"plm serve needs {exc.name}: pip install 'plmkit[serve]'",
                       field="serve") from None
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    models = {name: load_served(name, folder, max_length=args.max_length)
              for name, folder in parse_model_arguments(args.models)}
    settings = ServeSettings(
        max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms,
        max_queue=args.max_queue, timeout=args.timeout, max_body_bytes=args.max_body_bytes,
        max_items=args.max_items, max_length=args.max_length,
        max_new_tokens=args.max_new_tokens, batching=not args.no_batching,
        shape_buckets=not args.no_shape_buckets,
        api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
        cors_origins=tuple(args.cors_origin), precision=args.precision)
    return create_app(models, settings), models


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:
        raise PlmError("plm serve needs uvicorn: pip install 'plmkit[serve]'",
                       field="serve") from None
    # Set before the first oneDNN primitive (the bf16 probe, the first batch). oneDNN keeps a
    # compiled kernel and scratch memory per matrix shape, 1,024 shapes by default. With shape
    # buckets (the default) a server meets a few dozen shapes and the default cache is right
    # (and faster). Without them it meets a new (batch × tokens) shape with nearly every batch,
    # and in bf16 its memory grew by 300 MB in a 2-minute soak; keeping 16 shapes held that
    # nearly flat at the cost of rebuilding kernels (benchmarks/serve_load.py). The environment
    # wins either way.
    if args.no_shape_buckets:
        os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(ONEDNN_SHAPES_KEPT))
    app, models = build(args)
    for name, model in models.items():
        print(f"plmkit: serving {name} ({model.kind}: {', '.join(model.endpoints)}) from "
              f"{model.folder}", flush=True)
    from plmkit.precision import resolve_precision

    print(f"plmkit: {resolve_precision(args.precision, 'cpu').describe()}", flush=True)
    print(f"plmkit: http://{args.host}:{args.port}/  (API docs at /docs)", flush=True)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning",
                            timeout_graceful_shutdown=int(args.timeout) + 5)
    _graceful_server_class()(config).run()
    return 0


def _graceful_server_class():
    import signal

    import uvicorn

    class GracefulServer(uvicorn.Server):
        """SIGTERM (what a process manager sends): stop accepting, finish the requests in
        flight, run the shutdown (queued batches), exit 0. uvicorn itself would re-raise the
        signal after the graceful part, so the process would end "killed by SIGTERM"."""

        def handle_exit(self, sig, frame):  # type: ignore[override]
            if sig == signal.SIGTERM:
                self.should_exit = True
                return
            super().handle_exit(sig, frame)

    return GracefulServer
