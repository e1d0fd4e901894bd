"""Helpers shared by the benchmarks: timing, machine facts, a plain table."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable

import torch


def machine() -> str:
    """One header line for every figure: the CPU capability decides what is fast (an AVX2
    processor emulates bf16), so no number is reported without it."""
    from plmkit.precision import _cpu_model, cpu_capability, native_cpu_bf16

    limits = ", ".join(f"{name}={os.environ[name]}" for name in ISA_LIMITS if name in os.environ)
    bf16 = "yes" if native_cpu_bf16() else "no"
    if bf16 == "yes" and os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper().startswith("AVX2"):
        bf16 = "in the hardware, not in the kernels limited below"  # oneDNN then emulates bf16
    return (f"{_cpu_model() or platform.machine()}, {os.cpu_count()} cores, "
            f"capability {cpu_capability()} (native bf16: {bf16}), "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"load {os.getloadavg()[0]:.2f}" + (f", instruction sets limited: {limits}"
                                                 if limits else ""))


# The variables that make an AVX-512 machine run the kernels an AVX2-only processor has: ATen's
# own kernels, oneDNN's (bf16 matmuls, convolutions), MKL's (fp32 GEMM) and fbgemm's (PyTorch's
# dynamic int8 linear). ATEN_CPU_CAPABILITY alone leaves oneDNN and MKL on AVX-512, which is why
# it did not reproduce an AVX2 machine; without FBGEMM_ENABLE_INSTRUCTIONS the int8 linears kept
# AVX-512 VNNI, which overstated int8 on AVX2 until session 17.
ISA_LIMITS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS",
              "FBGEMM_ENABLE_INSTRUCTIONS")


def time_call(function: Callable[[], object], *, warmup: int = 2, repeat: int = 5,
              min_seconds: float = 0.0) -> float:
    """Median seconds of one call, after warm-up calls."""
    for _ in range(warmup):
        function()
    times = []
    start = time.perf_counter()
    while len(times) < repeat or time.perf_counter() - start < min_seconds:
        begin = time.perf_counter()
        function()
        times.append(time.perf_counter() - begin)
    return statistics.median(times)


def table(rows: list[dict], columns: list[str]) -> str:
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns}
    lines = [" | ".join(c.ljust(widths[c]) for c in columns),
             "-|-".join("-" * widths[c] for c in columns)]
    for row in rows:
        lines.append(" | ".join(_fmt(row.get(c)).ljust(widths[c]) for c in columns))
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return "" if value is None else str(value)


def interleaved(functions: dict[str, Callable[[], object]], *, rounds: int, warmup: int = 2
                ) -> dict[str, list[float]]:
    """Seconds of each call, the variants taking turns round by round (the order rotating), so
    a slow minute of the machine lands on every variant alike instead of on whichever ran then.
    Report the median: one-shot figures on these machines vary by ±15%."""
    for function in functions.values():
        for _ in range(warmup):
            function()
    names = list(functions)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(rounds):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            begin = time.perf_counter()
            functions[name]()
            times[name].append(time.perf_counter() - begin)
    return times


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def matmul_peak(dtype: torch.dtype, size: int = 1024, repeat: int = 10) -> float | None:
    """GFLOP/s of one square matrix multiply in ``dtype``: the faster of ``a @ b`` and oneDNN's
    linear with the weight packed beforehand (on AMD processors PyTorch's fp32 ``a @ b`` goes
    through MKL's slower code path and reaches half of what the cores can do); int8:
    ``torch._int_mm``, int8 × int8 → int32, where this build has it on the CPU."""
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    calls = []
    if dtype == torch.int8:
        a, b = a.clamp(-3, 3).mul(40).to(torch.int8), b.clamp(-3, 3).mul(40).to(torch.int8)
        calls.append(lambda: torch._int_mm(a, b))
    else:
        a, b = a.to(dtype), b.to(dtype)
        calls.append(lambda: a @ b)
        try:
            packed = torch.ops.mkldnn._reorder_linear_weight(b.t().contiguous())
            calls.append(lambda: torch.ops.mkldnn._linear_pointwise(a, packed, None, "none",
                                                                    [], ""))
        except (RuntimeError, AttributeError):
            pass
    best = None
    for call in calls:
        try:
            for _ in range(3):
                call()
        except (RuntimeError, AttributeError):
            continue
        times = []
        for _ in range(repeat):
            begin = time.perf_counter()
            call()
            times.append(time.perf_counter() - begin)
        best = min(times) if best is None else min(best, min(times))
    return None if best is None else 2 * size ** 3 / best / 1e9
