"""benchmarks/linear_probe.py: the frozen-feature regression the README's diagnosis rests on."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from linear_probe import bag_of_words, probe  # noqa: E402

from plmkit.data.tasks import TextExample  # noqa: E402


def test_probe_reads_a_linear_label_and_not_noise():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(400, 6, generator=generator) * torch.tensor([1, 5, 5, 5, 5, 5.0])
    labels = (features[:, 0] > 0).long()
    score, _ = probe(features[:300], labels[:300], features[300:], labels[300:])
    assert score >= 0.9  # chance is 0.5

    noise = torch.randint(0, 2, (400,), generator=generator)
    score, strength = probe(features[:300], noise[:300], features[300:], noise[300:])
    assert 0.3 <= score <= 0.7
    assert strength >= 1.0  # nothing to read: cross-validation picks a strong penalty


def test_bag_of_words_counts_only_the_training_vocabulary():
    train = [TextExample("Good good film", label="1"), TextExample("bad plot", label="0")]
    dev = [TextExample("a good unseen film", label="1"), TextExample("x", text_pair="bad")]
    train_vectors, dev_vectors = bag_of_words(train, dev)
    assert train_vectors.shape == (2, 4)  # good, film, bad, plot
    assert train_vectors[0].tolist() == [2, 1, 0, 0]  # lower-cased, counted
    assert dev_vectors.tolist() == [[1, 1, 0, 0], [0, 0, 1, 0]]  # 'a', 'unseen', 'x' dropped
