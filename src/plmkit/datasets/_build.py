"""The machinery every derived dataset shares: build once into the cache, with a manifest.

A :class:`Dataset` names the sources it reads and a ``write(out_dir) -> stats`` function that
writes standard files (CSV, TSV, SQuAD JSON, CoNLL, plain text) into ``out_dir``. ``build``
runs it into a temporary folder, records the sha256 of every file in ``manifest.json`` and renames
the folder to ``$PLMKIT_HOME/datasets/<name>/``; a later call finds the manifest and returns at
once. Every builder is deterministic: the same sources and :data:`SEED` give the same bytes.

The manifest also records each file's size and mtime, and every later use checks them (re-hashing
a file whose size or mtime differs), so a file changed in the cache is refused with the fix
rather than used (see :mod:`plmkit.datasets._verify`).
"""

from __future__ import annotations

import csv
import json
import random
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from plmkit._io import atomic_dir, atomic_write, write_text_atomic
from plmkit.datasets._verify import check_file, file_record, sweep, sweep_locked
from plmkit.datasets.sources import (
    MARKER, SOURCES, _lock, _lock_path, log, plmkit_home, source_dir,
)

SEED = 1234
SPLITS = ("train", "dev", "test")
FRACTIONS = (0.8, 0.1, 0.1)

T = TypeVar("T")


@dataclass(frozen=True)
class Dataset:
    """A derived dataset: which sources it reads and how to write its files.

    Attributes:
        name: the name used by ``plm data build`` and the cache folder.
        sources: names in :data:`SOURCES` it is made from.
        description: one line for ``plm data list``.
        write: ``write(out_dir) -> stats``; ``stats["files"]`` maps a split name to a path
            relative to ``out_dir``; other keys (``rows``, ``labels``...) are printed and kept.
        version: bump when the builder's output changes, so old caches are rebuilt.
    """

    name: str
    sources: tuple[str, ...]
    description: str
    write: Callable[[Path], dict]
    version: int = 1


def dataset_dir(name: str) -> Path:
    return plmkit_home() / "datasets" / name


def read_manifest(name: str, require_files: bool = True) -> dict | None:
    """The manifest of a built dataset, or None if it is not (completely) built.

    ``require_files=False`` returns it even if a file it lists is gone (``plm data verify``
    reports that file instead of calling the dataset unbuilt).
    """
    path = dataset_dir(name) / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        return None
    for entry in manifest["files"].values():
        if require_files and not (path.parent / entry["path"]).is_file():
            return None
    return manifest


def build(dataset: Dataset, force: bool = False) -> dict:
    """Build ``dataset`` into the cache unless an up-to-date build is there; return its manifest.

    An existing build's files are checked against the manifest first (a changed one is refused
    with the fix). The manifest's ``files`` entries carry an absolute ``path`` once returned.
    """
    target = dataset_dir(dataset.name)
    sweep(target, _lock_path(target))
    manifest = None if force else _current(dataset)
    if manifest is not None:
        verify_built(dataset.name, manifest)
    else:
        with _lock(target):
            sweep_locked(target)
            manifest = None if force else _current(dataset)
            if manifest is None:
                log(f"building {dataset.name} from {', '.join(dataset.sources)}")
                with atomic_dir(target) as staging:
                    stats = dataset.write(staging)
                    manifest = _manifest(dataset, staging, stats)
                    write_text_atomic(staging / "manifest.json",
                                      json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
                log(f"{dataset.name} built in {target}")
                print_summary(manifest)
            else:
                verify_built(dataset.name, manifest)
    for entry in manifest["files"].values():
        entry["path"] = str(target / entry["path"])
    return manifest


def verify_built(name: str, manifest: dict, rehash: bool = False) -> int:
    """Refuse a built dataset whose files changed since the manifest; return how many checked.

    Size and mtime are compared (``rehash`` hashes every file, for ``plm data verify``); a
    manifest written before mtimes were recorded vouches for files not newer than itself.
    """
    folder = dataset_dir(name)
    written = (folder / "manifest.json").stat().st_mtime_ns
    fix = f"run `plm data build {name} --force` to rebuild it"
    for entry in manifest["files"].values():
        check_file(folder / entry["path"], entry, fix, written_ns=written, rehash=rehash)
    return len(manifest["files"])


def _current(dataset: Dataset) -> dict | None:
    """The manifest of a build of this version from known builds of its sources, or None."""
    manifest = read_manifest(dataset.name)
    if manifest is None or manifest.get("version") != dataset.version:
        return None
    used = manifest.get("sources")
    if not isinstance(used, dict) or set(used) != set(dataset.sources):
        return None
    if any(SOURCES[name].build_of(str(used[name])) is None for name in dataset.sources):
        return None
    return manifest


def _source_digest(name: str) -> str:
    """The sha256 of the build of source ``name`` that was unpacked (the pinned one if unknown)."""
    try:
        return str(json.loads((source_dir(name) / MARKER).read_text(encoding="utf-8"))["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return SOURCES[name].sha256


def _manifest(dataset: Dataset, folder: Path, stats: dict) -> dict:
    stats = dict(stats)
    files = {split: {"path": rel, **file_record(folder / rel)}
             for split, rel in stats.pop("files").items()}
    return {
        "name": dataset.name,
        "version": dataset.version,
        "seed": SEED,
        "sources": {name: _source_digest(name) for name in dataset.sources},
        "files": files,
        "stats": stats,
    }


def print_summary(manifest: dict) -> None:
    """Sizes and label balance, one line per split, on stderr."""
    stats = manifest.get("stats", {})
    log(f"{manifest['name']}: " + ", ".join(
        f"{key}={value}" for key, value in stats.items() if not isinstance(value, dict)
    ))
    for key, value in stats.items():
        if isinstance(value, dict):
            log(f"  {key}: {json.dumps(value, ensure_ascii=False)}")


def paths(manifest: dict) -> dict[str, Path]:
    return {split: Path(entry["path"]) for split, entry in manifest["files"].items()}


# ---- helpers the builders share ----------------------------------------------------------


def split_groups(
    items: Sequence[T], key: Callable[[T], Hashable], seed: int = SEED,
    fractions: Sequence[float] = FRACTIONS,
) -> dict[str, list[T]]:
    """Shuffle the *groups* of ``items`` (by ``key``) with ``seed`` and cut them 80/10/10.

    Items that share a key (one lemma, one paragraph, one English sentence) land in the same
    split, so the test set never holds a near-copy of a training row. Within a split, items keep
    the shuffled group order.
    """
    groups: dict[Hashable, list[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    order = list(groups)
    random.Random(seed).shuffle(order)
    total = len(items)
    bounds = [sum(fractions[: i + 1]) * total for i in range(len(fractions))]
    out: dict[str, list[T]] = {split: [] for split in SPLITS}
    seen = 0
    index = 0
    for group_key in order:
        while index < len(SPLITS) - 1 and seen >= bounds[index]:
            index += 1
        out[SPLITS[index]].extend(groups[group_key])
        seen += len(groups[group_key])
    return out


def split_stratified(
    items: Sequence[T], label: Callable[[T], str], seed: int = SEED,
    fractions: Sequence[float] = FRACTIONS,
) -> dict[str, list[T]]:
    """Cut each label's items 80/10/10 separately, so every split keeps the label balance."""
    by_label: dict[str, list[T]] = {}
    for item in items:
        by_label.setdefault(label(item), []).append(item)
    out: dict[str, list[T]] = {split: [] for split in SPLITS}
    rng = random.Random(seed)
    for name in sorted(by_label):
        group = list(by_label[name])
        rng.shuffle(group)
        n = len(group)
        cut1 = round(fractions[0] * n)
        cut2 = cut1 + round(fractions[1] * n)
        for split, part in zip(SPLITS, (group[:cut1], group[cut1:cut2], group[cut2:])):
            out[split].extend(part)
    for split in SPLITS:  # interleave labels: a file sorted by label would train badly
        rng.shuffle(out[split])
    return out


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence]) -> int:
    """RFC 4180 CSV, UTF-8 without BOM, ``\\n`` line ends; returns the row count."""
    count = 0
    with atomic_write(path) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


def label_counts(splits: dict[str, list], label: Callable) -> dict[str, dict[str, int]]:
    return {split: dict(sorted(Counter(str(label(r)) for r in rows).items()))
            for split, rows in splits.items()}
