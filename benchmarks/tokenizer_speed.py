"""Tokenizer speed: plmkit vs Hugging Face fast (Rust) vs Hugging Face slow (Python), one run.

Same text for all (``plmkit.datasets.prose()``: Python's documentation, one sentence per line,
~6.7 MB), same uncased BERT vocabulary (all-MiniLM-L6-v2). Every contender's ids are checked
identical to plmkit's before a number is printed. Prints MB/s and ratios.

* plmkit ``encode_ids`` (the data-preparation path: ids only), with a cold and a warm word
  cache, and with two worker processes;
* plmkit ``encode_batch`` (full :class:`Encoding` objects with offsets, word ids, ...);
* Rust ``tokenizers`` ``encode_batch`` (what ``BertTokenizerFast`` calls), on all cores and,
  in a child process with ``RAYON_NUM_THREADS=1``, on one;
* transformers' Python ``BertTokenizerLegacy`` (the slow tokenizer), on a slice (``--slow-mb``):
  ``tokenize`` + ``convert_tokens_to_ids`` (ids only, compare with ``encode_ids``) and its batch
  ``__call__`` (ids, type ids, mask with [CLS]/[SEP]; compare with ``encode_batch``, which
  computes offsets and word ids on top).

``--train`` also times ``train_wordpiece`` against ``tokenizers``' ``WordPieceTrainer`` on a
corpus of ``--train-mb`` MB (the prose, repeated if needed).

    python benchmarks/tokenizer_speed.py [--mb 6.7] [--slow-mb 0.5] [--train --train-mb 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, table  # noqa: E402

from plmkit.datasets import minilm_dir, prose  # noqa: E402
from plmkit.tokenization import WordPieceTokenizer, train_wordpiece  # noqa: E402


def load_lines(megabytes: float) -> list[str]:
    lines, size = [], 0
    for line in prose().read_text(encoding="utf-8").split("\n"):
        if not line:
            continue
        lines.append(line)
        size += len(line.encode("utf-8"))
        if size >= megabytes * 1e6:
            break
    return lines


def size_mb(lines: list[str]) -> float:
    return sum(len(line.encode("utf-8")) for line in lines) / 1e6


def timed(function) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def rust_encode(lines: list[str]) -> tuple[float, list[list[int]]]:
    from transformers import BertTokenizerFast

    backend = BertTokenizerFast.from_pretrained(str(minilm_dir())).backend_tokenizer
    backend.no_truncation()
    backend.no_padding()
    backend.encode_batch(lines[:1000], add_special_tokens=False)  # warm the thread pool
    seconds, encodings = timed(lambda: backend.encode_batch(lines, add_special_tokens=False))
    return seconds, [e.ids for e in encodings]


def rust_single_thread(megabytes: float) -> float:
    """Seconds of the Rust batch encode with one thread (rayon reads its env at start-up)."""
    env = dict(os.environ, RAYON_NUM_THREADS="1", RAYON_RS_NUM_CPUS="1")
    out = subprocess.run([sys.executable, __file__, "--rust-child", "--mb", str(megabytes)],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


def benchmark(args: argparse.Namespace) -> None:
    lines = load_lines(args.mb)
    mb = size_mb(lines)
    print(f"machine: {machine()}; text: {len(lines):,} lines, {mb:.2f} MB "
          f"(shared machine: timings are noisy)")
    rows = []

    def add(name: str, seconds: float, megabytes: float = mb) -> None:
        rows.append({"tokenizer": name, "seconds": seconds, "MB/s": megabytes / seconds})

    cold = WordPieceTokenizer.from_pretrained(minilm_dir())
    seconds, ours = timed(lambda: cold.encode_ids(lines))
    add("plmkit encode_ids (cold cache)", seconds)
    seconds, again = timed(lambda: cold.encode_ids(lines))
    assert again == ours
    add("plmkit encode_ids (warm cache)", seconds)
    fresh = WordPieceTokenizer.from_pretrained(minilm_dir())
    seconds, parallel = timed(lambda: fresh.encode_ids(lines, num_workers=2))
    assert parallel == ours
    add("plmkit encode_ids, 2 processes", seconds)
    fresh = WordPieceTokenizer.from_pretrained(minilm_dir())
    seconds, encodings = timed(lambda: fresh.encode_batch(lines, add_special_tokens=False))
    assert [e.ids for e in encodings] == ours
    add("plmkit encode_batch (Encodings)", seconds)

    seconds, reference = rust_encode(lines)
    assert reference == ours, "Rust ids differ"
    add(f"HF fast (Rust) encode_batch, {os.cpu_count()} threads", seconds)
    add("HF fast (Rust) encode_batch, 1 thread", rust_single_thread(args.mb))

    from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy

    slow = BertTokenizerLegacy.from_pretrained(str(minilm_dir()))
    part = load_lines(args.slow_mb)
    seconds, slow_ids = timed(lambda: [slow.convert_tokens_to_ids(slow.tokenize(t))
                                       for t in part])
    assert slow_ids == ours[:len(part)], "Python slow ids differ"
    add(f"HF slow (Python) tokenize+ids, {size_mb(part):.2f} MB", seconds, size_mb(part))
    seconds, batch = timed(lambda: slow(part)["input_ids"])
    assert batch == [e.ids for e in cold.encode_batch(part)], "Python slow batch differs"
    add(f"HF slow (Python) __call__ batch, {size_mb(part):.2f} MB", seconds, size_mb(part))

    speeds = {row["tokenizer"]: row["MB/s"] for row in rows}
    rust = speeds[f"HF fast (Rust) encode_batch, {os.cpu_count()} threads"]
    rust1 = speeds["HF fast (Rust) encode_batch, 1 thread"]
    slow_ids, slow_call = rows[-2]["MB/s"], rows[-1]["MB/s"]
    for row in rows:
        row["vs Rust"] = row["MB/s"] / rust
        row["vs Rust 1 thread"] = row["MB/s"] / rust1
        row["vs slow ids"] = row["MB/s"] / slow_ids
        row["vs slow __call__"] = row["MB/s"] / slow_call
    print(table(rows, ["tokenizer", "seconds", "MB/s", "vs Rust", "vs Rust 1 thread",
                       "vs slow ids", "vs slow __call__"]))
    print("ids identical across all tokenizers: yes")


def benchmark_training(args: argparse.Namespace) -> None:
    from tokenizers import BertWordPieceTokenizer

    lines = load_lines(args.train_mb)
    while size_mb(lines) < args.train_mb * 0.99:  # repeat the prose to reach the size
        lines += lines[: max(1, int(len(lines) * (args.train_mb / size_mb(lines) - 1)) + 1)]
    with tempfile.TemporaryDirectory() as folder:
        corpus = Path(folder) / "corpus.txt"
        corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
        mb = corpus.stat().st_size / 1e6
        seconds, ours = timed(lambda: train_wordpiece(corpus, vocab_size=30522,
                                                      min_frequency=2, show_progress=False))
        reference = BertWordPieceTokenizer(lowercase=True)
        rust_seconds, _ = timed(lambda: reference.train([str(corpus)], vocab_size=30522,
                                                        min_frequency=2, show_progress=False))
    print(f"train_wordpiece on {mb:.1f} MB: plmkit {seconds:.1f} s ({ours.vocab_size:,} tokens), "
          f"tokenizers (Rust) {rust_seconds:.1f} s ({reference.get_vocab_size():,} tokens), "
          f"ratio {seconds / rust_seconds:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100.0, help="text size (default: all)")
    parser.add_argument("--slow-mb", type=float, default=0.5,
                        help="slice for the slow Python tokenizer")
    parser.add_argument("--train", action="store_true", help="also time vocabulary training")
    parser.add_argument("--train-mb", type=float, default=10.0)
    parser.add_argument("--rust-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rust_child:
        seconds, _ = rust_encode(load_lines(args.mb))
        print(json.dumps({"seconds": seconds}))
        return
    benchmark(args)
    if args.train:
        benchmark_training(args)


if __name__ == "__main__":
    main()
