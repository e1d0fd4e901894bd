"""The catalogue of derived datasets, by name, for ``plm data list/build``."""

from __future__ import annotations

from plmkit.datasets._build import Dataset, build, read_manifest, verify_built
from plmkit.datasets.corpora import CHINESE_POEMS, PROSE, PTB
from plmkit.datasets.general import GENERAL
from plmkit.datasets.ner import PEOPLE_DAILY
from plmkit.datasets.polarity import DATASET as POLARITY
from plmkit.datasets.reviews import MOVIE_REVIEWS
from plmkit.datasets.sources import (
    SOURCES, _local_override, fix_for, get_source, read_marker, source_dir, verify_unpacked,
)
from plmkit.datasets.translation import EN_DE
from plmkit.datasets.wordnet import WIC, WORDNET_QA
from plmkit.errors import PlmError

DATASETS: dict[str, Dataset] = {
    d.name: d for d in (PTB, PROSE, GENERAL, MOVIE_REVIEWS, POLARITY, WIC, WORDNET_QA, PEOPLE_DAILY, EN_DE, CHINESE_POEMS)
}


def get_dataset(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise PlmError(
            f"unknown dataset {name!r}; known: {', '.join(DATASETS)}", field="dataset"
        ) from None


def build_dataset(name: str, force: bool = False) -> dict:
    """Build (or find) dataset ``name``; return its manifest (absolute file paths, stats)."""
    return build(get_dataset(name), force=force)


def is_built(name: str) -> bool:
    manifest = read_manifest(get_dataset(name).name)
    return manifest is not None and manifest.get("version") == DATASETS[name].version


def verify_cached(name: str) -> str | None:
    """Re-hash every file of the fetched source or built dataset ``name`` against its record.

    Returns a short summary (``None`` when it is not fetched/built); a changed or missing file
    is a :class:`PlmError` naming it and the fix. Why a full re-hash: the check on every use
    trusts an unchanged size and mtime, which a careful edit can keep.
    """
    if name in DATASETS:
        manifest = read_manifest(name, require_files=False)
        if manifest is None:
            return None
        return f"{verify_built(name, manifest, rehash=True)} files re-hashed"
    if name not in SOURCES:
        raise PlmError(f"unknown source or dataset {name!r}; known: {', '.join(cached_names())}",
                       field="name")
    source = get_source(name)
    local = _local_override(source)
    folder = local if local is not None and local.is_dir() else source_dir(name)
    marker = read_marker(folder, source)
    if marker is None:
        return None
    fix = fix_for(source) if folder == source_dir(name) else f"restore it, or unset {source.env_var}"
    count = verify_unpacked(folder, marker, fix, rehash=True)
    if not isinstance(marker.get("files"), dict):
        return (f"{count} files checked by date only (fetched before plmkit recorded hashes; "
                f"`plm data fetch {name} --force` records them)")
    return f"{count} files re-hashed"


def cached_names() -> list[str]:
    """Every source and dataset name, sources first (the order ``plm data verify`` checks)."""
    return [*SOURCES, *DATASETS]
