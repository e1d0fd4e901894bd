"""Checking cached files on every use, cheaply, and sweeping what interrupted work left behind.

A file in ``$PLMKIT_HOME`` can change after it was fetched or built (an editor, a stray ``sed``, a
disk error), and a changed PTB test set or MiniLM vocabulary gives different numbers without a
word. So every cached file is recorded with its size, its modification time (ns) and its sha256
when it is written, and every use compares size and mtime, a ``stat`` per file; only a file whose
size or mtime differs is re-hashed, and a different hash is refused with the fix.
``plm data verify`` re-hashes everything.

Caches written before the records carried mtimes (a source marker without ``files``, a dataset
manifest without ``mtime_ns``) are still checked: every file was written before its marker or
manifest, so a file *newer* than it has changed since (and is re-hashed where a hash exists).
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
from collections.abc import Iterable
from pathlib import Path

from plmkit.errors import PlmError


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_record(path: Path) -> dict:
    """What a later use compares against: sha256, size and mtime (ns) of ``path``."""
    info = path.stat()
    return {"sha256": sha256_file(path), "bytes": info.st_size, "mtime_ns": info.st_mtime_ns}


def record_tree(folder: Path, skip: Iterable[str] = ()) -> dict[str, dict]:
    """A record for every regular file under ``folder`` (relative POSIX path → record)."""
    skipped = set(skip)
    records = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if rel not in skipped and path.is_file() and not path.is_symlink():
            records[rel] = file_record(path)
    return records


def check_file(path: Path, record: dict, fix: str, *, written_ns: int | None = None,
               rehash: bool = False) -> None:
    """Refuse ``path`` if it is gone or its content is not the recorded one.

    ``record`` holds ``sha256`` and ``bytes`` and, for new caches, ``mtime_ns``; ``written_ns``
    is the mtime of the manifest that recorded it (for records without ``mtime_ns``).
    ``rehash`` hashes whatever size and mtime say (``plm data verify``).
    """
    try:
        info = path.stat()
    except OSError:
        raise PlmError(f"cached file is missing; {fix}", path=path) from None
    if info.st_size != record["bytes"]:
        _refuse(path, f"its size is {info.st_size} bytes, {record['bytes']} when recorded", fix)
    recorded_ns = record.get("mtime_ns")
    suspicious = (info.st_mtime_ns != recorded_ns if recorded_ns is not None
                  else written_ns is None or info.st_mtime_ns > written_ns)
    if (rehash or suspicious) and sha256_file(path) != record["sha256"]:
        _refuse(path, "its sha256 is not the recorded one", fix)


def check_dates(folder: Path, written_ns: int, fix: str, skip: Iterable[str] = ()) -> int:
    """For a cache without hashes: refuse any file changed after ``written_ns``; return the count."""
    skipped = set(skip)
    count = 0
    for path in folder.rglob("*"):
        if path.relative_to(folder).as_posix() in skipped or not path.is_file():
            continue
        count += 1
        if path.stat().st_mtime_ns > written_ns:
            _refuse(path, "it was modified after it was fetched (no hash was recorded to "
                          "tell whether it still holds the same bytes)", fix)
    return count


def _refuse(path: Path, why: str, fix: str) -> None:
    raise PlmError(f"cached file changed since it was written ({why}); {fix}", path=path)


# ---- stale temporaries -------------------------------------------------------------------


def stale_temporaries(target: Path) -> list[Path]:
    """What an interrupted fetch or build of ``target`` leaves beside it: the staging folder
    (``.NAME.XXXX.tmp``), the download folder (``.NAME.download-XXXX``) and a replaced copy
    waiting for deletion (``.NAME.old-PID``)."""
    parent = target.parent
    if not parent.is_dir():
        return []
    patterns = (f".{target.name}.*.tmp", f".{target.name}.download-*", f".{target.name}.old-*")
    return sorted({path for pattern in patterns for path in parent.glob(pattern)})


def sweep(target: Path, lock_path: Path) -> list[Path]:
    """Delete ``target``'s stale temporaries if no other process holds its lock; return them.

    The lock is taken without waiting: a process that holds it may be writing those very
    folders, and they are then not stale. Nothing is opened or locked when there is nothing to
    sweep, so a clean cache is only listed.
    """
    found = stale_temporaries(target)
    if not found:
        return []
    with open(lock_path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return []
        try:
            return sweep_locked(target)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def sweep_locked(target: Path) -> list[Path]:
    """Delete ``target``'s stale temporaries; the caller holds ``target``'s lock."""
    found = stale_temporaries(target)
    for path in found:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return found
