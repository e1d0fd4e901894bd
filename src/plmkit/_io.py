"""Atomic writes: every file or folder plmkit writes is written beside its target and renamed.

A crash, a Ctrl-C or a SIGKILL therefore never leaves a half-written output behind: either the
old file is still there, or the new one is complete.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
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
        os.chmod(tmp, 0o666 & ~process_umask())  # mkstemp's 0600 must not survive the rename
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
    _ordinary_modes(tmp)  # mkdtemp's 0700 (and any writer's 0600) must not survive the rename
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# What a corpus folder contributes: its text files, plain or gzipped.
CORPUS_SUFFIXES = (".txt", ".gz")


def corpus_files(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Expand ``paths`` into files: a file as given, a folder as its ``*.txt``/``*.gz`` files.

    Folders are walked recursively in sorted order, so the corpus (and therefore every instance
    derived from it) does not depend on the file system's listing order.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*")
                                if p.is_file() and p.name.endswith(CORPUS_SUFFIXES)
                                and not p.name.startswith(".")))
        elif path.is_file():
            files.append(path)
        else:
            from plmkit.errors import PlmError

            raise PlmError("corpus file or folder not found", path=path)
    return files


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
            "convert the file to UTF-8",
            path=path,
            line=line,
            suggest="--errors replace",
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


def _ordinary_modes(folder: Path) -> None:
    """Give a finished folder the modes a plain ``mkdir``/``open`` would have: temporary
    folders are private (0700), and some writers (safetensors) create 0600 files."""
    umask = process_umask()
    os.chmod(folder, 0o777 & ~umask)
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o777 & ~umask)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, 0o666 & ~umask)


def process_umask() -> int:
    """The umask, read without setting it (``os.umask`` can only swap it, which would change it
    for every thread for a moment): Linux reports it in /proc; elsewhere assume the usual 022."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


# Names the atomic writers above leave when a run is killed mid-write: ``.NAME.XXXX.tmp`` files
# and folders, ``.final.XXXX`` staging folders, ``.NAME.old-PID`` folders being replaced.
_TEMPORARY = re.compile(r"^\..+\.tmp$|^\.final\.|^\..+\.old-\d+$")


def sweep_temporaries(output: str | Path) -> list[Path]:
    """Remove what killed runs left in ``output`` (and its own temporaries beside it).

    Only safe while holding :func:`claim_output`'s lock: then no other plmkit process is writing
    there, so every temporary belongs to a dead run (a checkpoint half-written by a SIGKILL can be
    gigabytes). Returns what was removed.
    """
    output = Path(output)
    found: list[Path] = []
    if output.is_dir():
        found += [p for p in output.iterdir() if _TEMPORARY.match(p.name)]
    if output.parent.is_dir():
        beside = re.compile(rf"^\.{re.escape(output.name)}\.(.+\.tmp|old-\d+)$")
        found += [p for p in output.parent.iterdir() if beside.match(p.name)]
    for item in found:
        if item.is_dir() and not item.is_symlink():
            shutil.rmtree(item, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                item.unlink()
    return found


def _lock_path(output: Path) -> Path:
    # Beside the output, not in it: the output may not exist yet, and a command that fails on
    # bad input must leave no output folder behind.
    return output.parent / f".{output.name}.lock"


@contextlib.contextmanager
def claim_output(output: str | Path) -> Iterator[Path]:
    """Hold an exclusive lock on ``output`` while one command writes it.

    Two processes given the same output would interleave their logs and checkpoints and both
    report success. The lock is an OS file lock (``flock``), so it is released when the process
    exits, crash or SIGKILL included; a second process is refused at once with the holder's pid.
    Temporaries of killed runs are swept once the lock is held, and again on success. On systems
    without ``fcntl`` the body runs unlocked.
    """
    output = Path(output).absolute()
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield output
        return
    from plmkit.errors import PlmError

    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PlmError(f"cannot create the output's folder ({exc.strerror})", path=output) from None
    handle = _acquire(output, fcntl)
    try:
        sweep_temporaries(output)
        yield output
        sweep_temporaries(output)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(_lock_path(output))
        handle.close()  # closing releases the flock


def _acquire(output: Path, fcntl) -> IO:
    """Open and lock the lock file; retry when a previous holder unlinked it under us."""
    from plmkit.errors import PlmError

    lock = _lock_path(output)
    for _ in range(100):
        try:
            handle = open(lock, "a+", encoding="utf-8")  # noqa: SIM115 - held for the whole run
        except OSError as exc:
            raise PlmError(f"cannot write beside the output ({exc.strerror}); choose a writable "
                           "--output", path=output) from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise PlmError(f"another plm process (pid {holder}) is writing to this output; wait "
                           "for it to finish or choose another --output", path=output) from None
        try:
            same = os.fstat(handle.fileno()).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            return handle
        handle.close()  # the holder removed this file as we opened it: take the new one
    raise PlmError("could not take the output lock", path=lock)
