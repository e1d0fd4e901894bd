"""Which number format to compute in: ``auto`` picks what the hardware does fast.

bf16 autocast halves the bytes every matrix multiply moves, and on a CPU with AVX-512 BF16 (or
AMX) it runs about 1.7× fp32. On a CPU without those instructions PyTorch *emulates* bf16: on an
AVX2 processor a bf16 matmul ran at 0.7 GFLOP/s against 110 in fp32, and BERT pre-training 40×
slower. So the right precision is a property of the machine, not of the recipe, and ``auto`` asks
the machine:

* CUDA: bf16 where the device supports it, else fp16 (the Trainer adds a gradient scaler).
* CPU: bf16 only when torch reports native bf16 (AVX-512 BF16 or AMX tiles) *and* a short
  measured matmul probe agrees that bf16 is faster; fp32 otherwise.

:func:`choose_precision` is the decision, a pure function of (device, what the CPU reports, the
probe), so every combination is testable without the hardware. :func:`resolve_precision` gathers
those facts on this machine. The probe costs a few milliseconds; its result is cached per machine
(CPU model, capability, torch version) in ``$PLMKIT_HOME/precision-probe.json``.

This module sits at the floor of the package (it imports no other plmkit layer) so that training,
the pipelines and the server all choose the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from plmkit.errors import PlmError

# Every precision name a command accepts, in one place.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
COMPUTED = ("fp32", "bf16", "fp16")

# bf16 must beat fp32 by this factor in the probe before auto takes it: autocast adds casts
# around every matmul, so a tie in the bare matmul is a loss in a whole model.
BF16_MIN_SPEEDUP = 1.2
PROBE_FILE = "precision-probe.json"


@dataclass(frozen=True)
class CpuFacts:
    """What the CPU says about bf16, and what a short matmul measured."""

    capability: str                      # torch.backends.cpu.get_cpu_capability(): AVX2, AVX512, …
    native_bf16: bool                    # AVX-512 BF16 or AMX tiles, as torch reports them
    bf16_speedup: float | None = None    # fp32 matmul time / bf16 matmul time; None = not measured


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a run computes in, and the one-line reason a user is shown."""

    requested: str
    precision: str
    reason: str
    warning: str | None = None

    def describe(self) -> str:
        return f"precision: {self.precision} ({self.reason})"

    def record(self) -> dict[str, str | None]:
        """What a run writes into its results, so a figure says how it was computed."""
        return asdict(self)


def choose_precision(requested: str, device_type: str, cpu: CpuFacts | None = None,
                     cuda_bf16: bool = False) -> PrecisionChoice:
    """Decide the precision for ``requested`` ("auto" or an explicit name) on a device.

    An explicit choice is always honoured; when it is bf16 on a CPU that emulates it, the choice
    carries a warning with the measured ratio, since that run will be many times slower.
    """
    if requested not in PRECISIONS:
        raise PlmError(f"precision must be one of {', '.join(PRECISIONS)}, not {requested!r}",
                       field="precision")
    if device_type == "cuda":
        return _choose_cuda(requested, cuda_bf16)
    facts = cpu or CpuFacts(capability="unknown", native_bf16=False)
    if requested == "auto":
        return _choose_cpu_auto(facts)
    warning = None
    if requested == "bf16" and not _bf16_pays(facts):
        warning = (f"--precision bf16 on this CPU ({facts.capability}) is "
                   f"{_slowdown(facts)}; --precision auto would choose fp32")
    if requested == "fp16":
        warning = "fp16 autocast on a CPU is emulated and has no gradient scaler; use fp32 or bf16"
    return PrecisionChoice(requested, requested, "as requested", warning)


def _choose_cuda(requested: str, cuda_bf16: bool) -> PrecisionChoice:
    if requested == "auto":
        if cuda_bf16:
            return PrecisionChoice(requested, "bf16", "this GPU computes bf16 natively")
        return PrecisionChoice(requested, "fp16",
                               "this GPU has no bf16; fp16 with a gradient scaler")
    warning = None
    if requested == "bf16" and not cuda_bf16:
        warning = "this GPU does not support bf16; --precision auto would choose fp16"
    return PrecisionChoice(requested, requested, "as requested", warning)


def _bf16_pays(facts: CpuFacts) -> bool:
    if not facts.native_bf16:
        return False
    return facts.bf16_speedup is None or facts.bf16_speedup >= BF16_MIN_SPEEDUP


def _slowdown(facts: CpuFacts) -> str:
    if facts.bf16_speedup is None or facts.bf16_speedup <= 0:
        return "emulated, not native, and runs far slower than fp32"
    if facts.bf16_speedup < 1:
        slower = 1 / facts.bf16_speedup
        return (f"emulated: a bf16 matmul measured {slower:.0f}× slower than fp32" if slower >= 10
                else f"emulated: a bf16 matmul measured {slower:.1f}× slower than fp32")
    return f"barely faster than fp32 ({facts.bf16_speedup:.2f}× in a matmul probe)"


def _choose_cpu_auto(facts: CpuFacts) -> PrecisionChoice:
    if not facts.native_bf16:
        return PrecisionChoice("auto", "fp32",
                               f"this CPU has no native bf16: {facts.capability}")
    if not _bf16_pays(facts):
        return PrecisionChoice("auto", "fp32", f"{facts.capability} reports bf16 but it measured "
                               f"{facts.bf16_speedup:.2f}× fp32 in a matmul probe")
    measured = ("" if facts.bf16_speedup is None
                else f", {facts.bf16_speedup:.1f}× fp32 in a matmul probe")
    return PrecisionChoice("auto", "bf16", f"native bf16 on this CPU: {facts.capability}{measured}")


# --------------------------------------------------------------------------- this machine
def cpu_capability() -> str:
    """torch's name for the widest kernels it dispatches to here (``AVX2``, ``AVX512``, …);
    printed beside every figure plmkit reports, since it decides what is fast."""
    return torch.backends.cpu.get_cpu_capability()


def native_cpu_bf16() -> bool:
    """AVX-512 BF16 or AMX tiles, as torch detects them (False where torch cannot tell)."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name)()) for name in checks if hasattr(cpu, name))


def measure_bf16_speedup(size: tuple[int, int, int] = (128, 256, 256),
                         budget_seconds: float = 0.05) -> float:
    """fp32 time / bf16 time for one matmul shape: > 1 means bf16 is faster here.

    The shape is small so that an emulating CPU (0.7 GFLOP/s) still answers in tens of
    milliseconds. It runs on one thread, and each side keeps its *fastest* call out of at least
    10 (up to 50 within ``budget_seconds``): other processes on the machine only ever add time
    (a descheduled worker thread stalls a parallel matmul for a whole time slice), so the minimum
    on one thread is the stable figure, and the choice must not flip between two runs.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _speedup_on_one_thread(size, budget_seconds)
    finally:
        torch.set_num_threads(threads)


def _speedup_on_one_thread(size: tuple[int, int, int], budget_seconds: float) -> float:
    m, k, n = size
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=generator)
    b = torch.randn(k, n, generator=generator)

    def fastest_call(x: torch.Tensor, y: torch.Tensor) -> float:
        torch.mm(x, y)  # warm-up: first-call dispatch, allocation, kernel JIT
        best, calls, start = float("inf"), 0, time.perf_counter()
        while calls < 50 and (calls < 10 or time.perf_counter() - start < budget_seconds):
            began = time.perf_counter()
            torch.mm(x, y)
            best = min(best, time.perf_counter() - began)
            calls += 1
        return best

    return fastest_call(a, b) / fastest_call(a.bfloat16(), b.bfloat16())


def _machine_key() -> str:
    return "|".join((platform.machine(), _cpu_model(), cpu_capability(), torch.__version__))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _cache_path() -> Path:
    home = os.environ.get("PLMKIT_HOME") or str(Path.home() / ".cache" / "plmkit")
    return Path(home) / PROBE_FILE


def cached_bf16_speedup(refresh: bool = False) -> float:
    """The probe's answer for this machine, measured once and kept in ``$PLMKIT_HOME``.

    A cache file that is unreadable or from another machine is measured again, never trusted.
    """
    path, key = _cache_path(), _machine_key()
    if not refresh:
        try:
            saved = json.loads(path.read_text())
            if isinstance(saved, dict) and saved.get("machine") == key:
                value = saved.get("bf16_speedup")
                if isinstance(value, (int, float)) and value > 0:
                    return float(value)
        except (OSError, ValueError):
            pass
    speedup = measure_bf16_speedup()
    try:
        from plmkit._io import write_text_atomic

        write_text_atomic(path, json.dumps({"machine": key, "bf16_speedup": speedup}))
    except OSError:
        pass  # a read-only home only costs the next run a few milliseconds
    return speedup


def cpu_facts(probe: bool = True) -> CpuFacts:
    """This CPU's facts; the probe runs only where the CPU claims native bf16 (elsewhere the
    answer is fp32 without measuring) or when ``probe`` asks for the ratio anyway."""
    native = native_cpu_bf16()
    speedup = cached_bf16_speedup() if probe else None
    return CpuFacts(cpu_capability(), native, speedup)


# torch.compile is not turned on by default anywhere: on the CPUs measured it did not pay.
COMPILE_MEASURED = ("BERT pre-training (mini, batch 32 x 128) measured 0.85x eager with "
                    "torch.compile on AVX512 (benchmarks/pretrain.py)")


def compile_note(requested: bool) -> tuple[bool, str]:
    """Whether a run compiles, and why: on only when asked, since it measured slower."""
    if requested:
        return True, "as requested (--compile)"
    return False, f"off by default: {COMPILE_MEASURED}"


def autocast_context(precision: str, device_type: str = "cpu"
                     ) -> contextlib.AbstractContextManager:
    """Autocast for a resolved ``precision`` ("fp32": nothing; "bf16"/"fp16": that dtype).
    Autocast state is per thread: enter it in the thread that runs the model."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type, dtype=dtype)


def resolve_precision(requested: str, device: torch.device | str = "cpu") -> PrecisionChoice:
    """:func:`choose_precision` with the facts of this machine filled in."""
    device_type = torch.device(device).type
    if requested not in PRECISIONS:
        return choose_precision(requested, device_type)
    if device_type == "cuda":
        return choose_precision(requested, "cuda", cuda_bf16=torch.cuda.is_bf16_supported())
    needs_probe = requested == "bf16" or (requested == "auto" and native_cpu_bf16())
    return choose_precision(requested, device_type, cpu_facts(probe=needs_probe))


def store_linears_in_bf16(model: torch.nn.Module) -> None:
    """For inference under bf16 autocast: keep every ``nn.Linear``'s weight and bias in bf16.

    Autocast computes a linear layer in bf16 by casting its fp32 weight to bf16 on *every*
    call; its cast cache lives only as long as one autocast context, i.e. one request. Storing
    the weights in bf16 once gives the same products (they are exactly the copies autocast
    would have made) without copying every weight per request, which at batch 1 costs more
    than the matrix multiplies. A weight shared with another kind of module (an MLM decoder
    tied to the word embeddings) stays fp32, so the embedding lookup is unchanged. Only for
    models that then run under bf16 autocast.
    """
    linear_weights = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Linear)}
    shared = {id(p) for m in model.modules() if not isinstance(m, torch.nn.Linear)
              for p in m.parameters(recurse=False) if id(p) in linear_weights}
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and id(module.weight) not in shared:
            module.to(torch.bfloat16)


__all__ = ["autocast_context", "BF16_MIN_SPEEDUP", "COMPILE_MEASURED", "COMPUTED", "compile_note", "PRECISIONS", "CpuFacts", "PrecisionChoice",
           "choose_precision", "cpu_capability", "cpu_facts", "measure_bf16_speedup",
           "native_cpu_bf16", "resolve_precision", "store_linears_in_bf16"]
