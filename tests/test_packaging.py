"""plmkit installs beside other people's torch: a torch range in the metadata, the CPU pin in the
Makefile only, and numba as the optional ``[fast]`` extra that no core path imports."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _requirement(requirements: list[str], name: str) -> str | None:
    return next((r for r in requirements if re.match(rf"{name}\b", r)), None)


def test_torch_is_a_range_with_a_floor_not_a_pin():
    torch = _requirement(_project()["dependencies"], "torch")
    assert torch is not None and "==" not in torch
    assert re.fullmatch(r"torch>=2\.\d+(,<\d+)?", torch.replace(" ", ""))


def test_numba_is_the_fast_extra_not_a_dependency():
    project = _project()
    assert _requirement(project["dependencies"], "numba") is None
    assert _requirement(project["optional-dependencies"]["fast"], "numba") is not None


def test_every_makefile_install_of_plmkit_pins_torch_in_the_same_command():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    pin = re.search(r"^TORCH\s*\?=\s*(\S+)", makefile, re.MULTILINE).group(1)
    assert pin.startswith("torch==")  # an exact version: the local CPU wheel here
    installs = [line for line in makefile.splitlines() if "pip" in line.lower() and " install" in line]
    editable = [line for line in installs if " -e " in line]
    assert len(editable) >= 2  # the run and the test environments
    assert all('"$(TORCH)"' in line for line in editable)
    assert any("[fast" in line for line in editable)


def test_the_core_never_needs_numba():
    """With numba unimportable: the CLI, tokenizer, BERT/GPT models and datasets import and run;
    word2vec training, the one user, either refuses in one line naming numba or warns that it
    runs interpreted (the fallback)."""
    code = """
import sys
sys.modules["numba"] = None
import numpy as np
import plmkit.cli, plmkit.datasets, plmkit.models.bert, plmkit.models.gpt, plmkit.training.trainer
from plmkit.tokenization import WordPieceTokenizer
from plmkit.errors import PlmError
from plmkit.models import word2vec
tokenizer = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello"])
assert tokenizer("hello")["input_ids"] == [2, 4, 3]
import warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    try:
        word2vec.SgnsKernel(word2vec.Word2VecConfig(vocab_size=3), np.array([3, 2, 1]))
    except PlmError as error:
        assert "numba" in str(error) and "\\n" not in str(error), error
    else:
        assert any("numba" in str(w.message) for w in caught), "word2vec must say numba is missing"
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
