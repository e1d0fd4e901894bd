"""The catalogue of derived datasets, by name, for ``plm data list/build``."""

from __future__ import annotations

from plmkit.datasets._build import Dataset, build, read_manifest
from plmkit.datasets.corpora import CHINESE_POEMS, PROSE, PTB
from plmkit.datasets.general import GENERAL
from plmkit.datasets.ner import PEOPLE_DAILY
from plmkit.datasets.polarity import DATASET as POLARITY
from plmkit.datasets.translation import EN_DE
from plmkit.datasets.wordnet import WIC, WORDNET_QA
from plmkit.errors import PlmError

DATASETS: dict[str, Dataset] = {
    d.name: d for d in (PTB, PROSE, GENERAL, POLARITY, WIC, WORDNET_QA, PEOPLE_DAILY, EN_DE, CHINESE_POEMS)
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
