"""Load on ``plm serve``: throughput and latency percentiles from 1, 8, 32 and 128 concurrent
clients, with dynamic batching on, off, and Hugging Face's ``pipeline`` per request behind an
equal FastAPI endpoint — the same machine, one after the other.

    python benchmarks/serve_load.py [--seconds 20] [--clients 1 8 32 128] [--soak 120]

Workloads: classify (a sequence-classification head on MiniLM's real encoder, movie-review
sentences cut to 64 tokens) and embed (MiniLM, same sentences). Each (side, workload, clients)
run lasts ``--seconds`` (bounded in time, each client sending its next request when the last
answers) and reports requests/s, p50/p95/p99 latency and errors. ``--soak`` then drives the
batched server at 32 clients for that many seconds and samples its RSS every 5 s (memory must stay
flat). Run it alone on an idle machine; the header prints the CPU and the load.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, percentile, table  # noqa: E402


def sentences(count: int = 400) -> list[str]:
    from plmkit.datasets import polarity

    with open(polarity()["dev"], encoding="utf-8") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)]
    return [" ".join(t.split()[:48]) for t in texts[:count]]  # ≈ 64 word pieces


def classifier_folder(root: Path) -> Path:
    """MiniLM's encoder with a two-label head (random: speed does not depend on it)."""
    import torch

    from plmkit.datasets import minilm_dir
    from plmkit.models.bert import BertForSequenceClassification

    folder = root / "minilm-classify"
    torch.manual_seed(0)
    config = BertForSequenceClassification.load_config(minilm_dir(), id2label={0: "neg", 1: "pos"},
                                                       label2id={"neg": 0, "pos": 1})
    model = BertForSequenceClassification(config)
    from plmkit.models.pretrained import load_state_dict

    state = {k: v for k, v in load_state_dict(minilm_dir()).items()}
    model.load_checkpoint_state({(k if k.startswith("bert.") else f"bert.{k}"): v
                                 for k, v in state.items()}, source=minilm_dir())
    model.save_pretrained(folder)
    (folder / "vocab.txt").write_bytes((minilm_dir() / "vocab.txt").read_bytes())
    (folder / "task.json").write_text(json.dumps({"task": "classify", "max_length": 64}))
    return folder


HF_APP = textwrap.dedent('''
    """Hugging Face's pipeline per request, behind the same FastAPI endpoints."""
    import sys
    import torch
    import transformers
    from fastapi import FastAPI
    from pydantic import BaseModel

    classify_folder, embed_folder = sys.argv[1], sys.argv[2]
    classifier = transformers.pipeline("text-classification", model=classify_folder,
                                       tokenizer=classify_folder, device="cpu")
    tokenizer = transformers.AutoTokenizer.from_pretrained(embed_folder)
    encoder = transformers.AutoModel.from_pretrained(embed_folder).eval()
    app = FastAPI()

    class Texts(BaseModel):
        texts: list[str]

    @app.post("/v1/models/classify/classify")
    def classify(body: Texts):
        return {"results": classifier(body.texts, truncation=True, max_length=64)}

    @app.post("/v1/models/minilm/embed")
    def embed(body: Texts):
        batch = tokenizer(body.texts, padding=True, truncation=True, max_length=64,
                          return_tensors="pt")
        with torch.no_grad():
            states = encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (states * mask).sum(1) / mask.sum(1)
        return {"embeddings": torch.nn.functional.normalize(pooled, dim=-1).tolist()}

    if __name__ == "__main__":
        import uvicorn
        uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[3]), log_level="warning")
''')


def start(command: list[str], port: int, log: Path) -> subprocess.Popen:
    """Run a server command, its output in ``log``, and wait until it answers on ``port`` (the HF
    app has no ``/health``: any HTTP answer to ``/v1/models`` counts); if it dies, the error
    carries its last output."""
    from plmkit.serve.launch import wait_until_answering

    with open(log, "w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    wait_until_answering(f"http://127.0.0.1:{port}", process, path="/v1/models", log=log)
    return process


# One client process drives about this many clients before it, not the server, is the
# bottleneck: with httpx, 128 clients from one process got 67 requests/s from every server alike
# (the batcher saw 2 inputs per batch: the requests were not arriving), 4 processes × 32 got 225
# from the same batched server.
CLIENTS_PER_PROCESS = 32


def load(url: str, texts: list[str], clients: int, seconds: float) -> dict:
    """``clients`` concurrent clients for ``seconds``, spread over enough processes that the
    clients' own CPU does not cap the rate; their latencies are pooled for the percentiles."""
    if clients <= CLIENTS_PER_PROCESS:
        return summarise(*asyncio.run(drive(url, texts, clients, seconds)))
    shares = [CLIENTS_PER_PROCESS] * (clients // CLIENTS_PER_PROCESS)
    if clients % CLIENTS_PER_PROCESS:
        shares.append(clients % CLIENTS_PER_PROCESS)
    with tempfile.TemporaryDirectory() as scratch:
        texts_file = Path(scratch) / "texts.json"
        texts_file.write_text(json.dumps(texts))
        workers = [subprocess.Popen([sys.executable, __file__, "--drive", url, str(texts_file),
                                     str(share), str(seconds)], stdout=subprocess.PIPE, text=True)
                   for share in shares]
        results = [json.loads(worker.communicate()[0].strip().splitlines()[-1])
                   for worker in workers]
    latencies = [latency for result in results for latency in result["latencies"]]
    return summarise(latencies, sum(r["errors"] for r in results),
                     max(r["elapsed"] for r in results))


def summarise(latencies: list[float], errors: int, elapsed: float) -> dict:
    return {"requests/s": len(latencies) / elapsed, "errors": errors,
            "p50 ms": 1000 * percentile(latencies, 0.5) if latencies else None,
            "p95 ms": 1000 * percentile(latencies, 0.95) if latencies else None,
            "p99 ms": 1000 * percentile(latencies, 0.99) if latencies else None,
            "requests": len(latencies)}


async def drive(url: str, texts: list[str], clients: int, seconds: float
                ) -> tuple[list[float], int, float]:
    """Latencies, errors and the seconds from the first request to the last answer.

    aiohttp, not httpx: the clients share the server's two cores, and per request aiohttp's
    client costs a fraction of httpx's CPU, so less of the machine goes to the load generator."""
    import aiohttp

    latencies: list[float] = []
    errors = 0
    stop = time.monotonic() + seconds
    bodies = [json.dumps({"texts": [text]}).encode() for text in texts]

    async def client(index: int, session: aiohttp.ClientSession) -> None:
        nonlocal errors
        n = index
        while time.monotonic() < stop:
            body = bodies[n % len(bodies)]
            n += clients
            begin = time.perf_counter()
            try:
                async with session.post(url, data=body) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                        continue
            except (aiohttp.ClientError, asyncio.TimeoutError):
                errors += 1
                continue
            latencies.append(time.perf_counter() - begin)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60),
                                     headers={"Content-Type": "application/json"}) as session:
        started = time.monotonic()
        await asyncio.gather(*(client(i, session) for i in range(clients)))
        elapsed = time.monotonic() - started
    return latencies, errors, elapsed


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--soak", type=float, default=120.0, help="0 = no soak")
    parser.add_argument("--sides", nargs="+", default=["batched", "unbatched", "hf"],
                        choices=["batched", "no-buckets", "unbatched", "hf"],
                        help="no-buckets: batched, each batch at its own shape (--no-shape-buckets)")
    args = parser.parse_args()
    print(machine())
    from plmkit.datasets import minilm_dir
    from plmkit.runtime import free_port

    texts = sentences()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        classify = classifier_folder(Path(scratch))
        hf_app = Path(scratch) / "hf_app.py"
        hf_app.write_text(HF_APP)
        for side in args.sides:
            port = free_port()
            if side == "hf":
                command = [sys.executable, str(hf_app), str(classify), str(minilm_dir()), str(port)]
            else:
                command = [sys.executable, "-m", "plmkit.cli", "serve", f"classify={classify}",
                           f"minilm={minilm_dir()}", "--port", str(port), "--max-queue", "4096",
                           "--max-length", "64", *(["--no-batching"] if side == "unbatched" else []),
                           *(["--no-shape-buckets"] if side == "no-buckets" else [])]
            process = start(command, port, Path(scratch) / f"{side}.log")
            started_mb = rss_mb(process.pid)
            try:
                for workload, path in (("classify", "/v1/models/classify/classify"),
                                       ("embed", "/v1/models/minilm/embed")):
                    for clients in args.clients:
                        result = load(f"http://127.0.0.1:{port}{path}", texts, clients,
                                      args.seconds)
                        rows.append({"side": side, "workload": workload, "clients": clients,
                                     **result})
                        print(table(rows[-1:], list(rows[-1])), flush=True)
                print(f"{side}: RSS {started_mb:.0f} MB when ready, "
                      f"{rss_mb(process.pid):.0f} MB after the load runs", flush=True)
                if side in ("batched", "no-buckets") and args.soak:
                    samples = [rss_mb(process.pid)]
                    end = time.monotonic() + args.soak
                    while time.monotonic() < end:
                        load(f"http://127.0.0.1:{port}/v1/models/classify/classify", texts,
                             32, 5.0)
                        samples.append(rss_mb(process.pid))
                    print(f"{side}: soak {args.soak:g} s at 32 clients: RSS MB "
                          f"{', '.join(f'{s:.0f}' for s in samples)} (first {samples[0]:.0f}, "
                          f"last {samples[-1]:.0f}, max {max(samples):.0f})")
            finally:
                process.terminate()
                process.wait(timeout=60)
    for row in rows:
        base = next((r for r in rows if r["side"] == "unbatched" and
                     r["workload"] == row["workload"] and r["clients"] == row["clients"]), None)
        row["× unbatched"] = row["requests/s"] / base["requests/s"] if base and \
            base["requests/s"] else None
    print(machine())
    print(table(rows, ["side", "workload", "clients", "requests/s", "× unbatched", "p50 ms",
                       "p95 ms", "p99 ms", "errors", "requests"]))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if len(sys.argv) == 6 and sys.argv[1] == "--drive":  # one client process of load()
        url, texts_path, count, seconds = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
        measured, failed, took = asyncio.run(drive(url, json.loads(Path(texts_path).read_text()),
                                                   int(count), float(seconds)))
        print(json.dumps({"latencies": measured, "errors": failed, "elapsed": took}))
    else:
        main()
