"""glibc malloc kept from handing tensor memory back to the kernel (plmkit.runtime)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from plmkit import runtime

pytestmark = pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc",
                                reason="mallopt is glibc's")

# A 40 MB tensor is above glibc's largest automatic mmap threshold (32 MB): by default every
# allocation of it is fresh pages from the kernel, 10,240 first-touch faults each time.
_FAULTS = """
import resource, sys, torch
from plmkit.runtime import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
counts = []
for step in range(16):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.empty(10 << 20).fill_(1.0)       # 40 MB, freed at once
    counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(applied, min(counts[-4:]), max(counts[-4:]))  # once the heap has grown
"""


def _faults(mode: str, **env: str) -> tuple[str, int, int]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True,
                         env={**environ, **env}, check=True).stdout.split()
    return out[0], int(out[1]), int(out[2])


def test_freed_tensor_memory_is_reused_without_page_faults():
    applied, _, default_fewest = _faults("default")
    assert applied == "None" and default_fewest > 5000  # fresh pages every time
    applied, _, kept_most = _faults("keep")
    assert applied == "True" and kept_most < 200


def test_the_users_own_malloc_settings_stand():
    applied, fewest, _ = _faults("keep", MALLOC_TRIM_THRESHOLD_="131072")
    assert applied == "False" and fewest > 5000
    applied, fewest, _ = _faults("keep", PLMKIT_KEEP_FREED_MEMORY="0")
    assert applied == "False" and fewest > 5000


def test_the_plm_command_applies_it(monkeypatch, capsys):
    from plmkit.cli import main

    calls = []
    monkeypatch.setattr(runtime, "keep_freed_memory", lambda: calls.append(True) or True)
    main(["export", "/nonexistent-folder", "--format", "hf", "--output", "/nonexistent-out"])
    assert calls == [True]


def test_plm_serve_leaves_malloc_as_it_is(monkeypatch):
    """A server's batches are small; kept memory bought it nothing and held ~100 MB more."""
    from plmkit import cli

    assert "serve" in cli.HOLDS_MEMORY_LOW
    calls = []
    monkeypatch.setattr(runtime, "keep_freed_memory", lambda: calls.append(True) or True)
    # the same rule, on a command cheap to run here
    monkeypatch.setattr(cli, "HOLDS_MEMORY_LOW", cli.HOLDS_MEMORY_LOW | {"export"})
    cli.main(["export", "/nonexistent-folder", "--format", "hf", "--output", "/nonexistent-out"])
    assert calls == []
