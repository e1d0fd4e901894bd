"""``plm serve`` in a child process, for scripts and tests: start it on a free loopback port and
wait until it answers, or say why it did not (its own last output)."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from plmkit.errors import PlmError
from plmkit.runtime import free_port


def wait_until_answering(base: str, process: subprocess.Popen, *, path: str = "/health",
                         timeout: float = 180.0, log: Path | None = None) -> None:
    """Poll ``base + path`` until the server answers (any HTTP status counts: it is up), or raise
    a :class:`PlmError` if the process exits or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(base + path, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if process.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:] if log else ""
                raise PlmError(f"the server exited with code {process.returncode}:\n{tail}")
            time.sleep(0.3)
    process.kill()
    raise PlmError(f"the server did not answer {base}{path} in {timeout:.0f} s")


def start_serve(arguments: list[str], log: Path, *, timeout: float = 180.0
                ) -> tuple[subprocess.Popen, str]:
    """``plm serve ARGUMENTS --port <free>``, its output in ``log``; returns the process and its
    base URL once ``/health`` answers."""
    port = free_port()
    command = [sys.executable, "-m", "plmkit.cli", "serve", *arguments, "--port", str(port)]
    with open(log, "w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    wait_until_answering(base, process, timeout=timeout, log=log)
    return process, base


__all__ = ["start_serve", "wait_until_answering"]
