"""Atomic writes: every file or folder plmkit writes is written beside its target and renamed.

A crash, a Ctrl-C or a SIGKILL therefore never leaves a half-written output behind: either the
old file is still there, or the new one is complete.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        kwargs = {} if "b" in mode else {"encoding": encoding}
        with open(tmp, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; swap it into place only on success.

    An existing ``path`` is replaced only after the new folder is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_write(path) as handle:
        handle.write(text)


def read_text_file(path: str | Path, errors: str = "strict") -> str:
    """Read UTF-8 text; a decoding error names the file and line (or use ``errors='replace'``)."""
    from plmkit.errors import PlmError

    path = Path(path)
    if not path.exists():
        raise PlmError("file not found", path=path)
    data = path.read_bytes()
    if path.suffix == ".gz":
        import gzip

        data = gzip.decompress(data)
    try:
        return data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise PlmError(
            f"invalid UTF-8 at byte {exc.start} ({data[exc.start:exc.start + 1]!r}); "
            "fix the file or pass --errors replace",
            path=path,
            line=line,
        ) from None


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while many small long-lived objects are built.

    Why: the collector counts allocations and keeps starting passes over the whole (growing)
    heap while millions of lists/strings are made (a tokenized batch, an ARPA file being read or
    written), yet none of them form cycles, so the passes find nothing. Left as found: a caller
    that has it disabled keeps it disabled (Mercurial's ``util.nogc`` does the same).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
