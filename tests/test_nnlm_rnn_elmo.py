"""NNLM, RNN/LSTM and ELMo: the formulas, truncated BPTT with carried state, the biLM's
directions, frozen features with a learned scalar mix, and training through the one Trainer."""

import numpy as np
import pytest
import torch

from plmkit.data.lm import (BOS, EOS, PAD, StreamBatches, Vocabulary, encode_sentences,
                            ngram_windows, read_sentences, sentence_batches, tokenize_line)
from plmkit.errors import PlmError
from plmkit.models.elmo import ElmoBiLM, ElmoConfig, ElmoEncoder, ElmoForTask, reverse_padded
from plmkit.models.nnlm import NNLM, NNLMConfig
from plmkit.models.rnn import RNNLanguageModel, RNNLMConfig
from plmkit.training import Trainer, TrainingConfig
from plmkit.training.tasks_lm import (LMRecipe, StreamLMTask, evaluate_language_model,
                                      train_language_model)


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


SUBJECTS = ["the cat", "the dog", "a bird", "my friend"]
VERBS = ["sees", "likes", "chases", "finds"]
OBJECTS = ["the ball", "a fish", "the house", "some bread"]


def toy_corpus(count=300, seed=0):
    rng = np.random.default_rng(seed)
    return [f"{SUBJECTS[rng.integers(4)]} {VERBS[rng.integers(4)]} {OBJECTS[rng.integers(4)]}"
            .split() for _ in range(count)]


def training(tmp_path, steps, lr=0.01, **extra):
    return TrainingConfig(output_dir=str(tmp_path), max_steps=steps, learning_rate=lr,
                          optimizer="adam", weight_decay=0.0, schedule="constant",
                          progress=False, plot=False, log_every=10, **extra)


# ------------------------------------------------------------------------------------- data
def test_vocabulary_min_count_and_unk(tmp_path):
    vocab = Vocabulary.build([["a", "a", "b", "c", "c", "c"]], min_count=2)
    assert vocab.itos == [PAD, "<unk>", BOS, EOS, "c", "a"]
    assert list(vocab.encode(["c", "b", "zebra"])) == [4, 1, 1]
    vocab.save(tmp_path / "vocab.txt")
    assert Vocabulary.load(tmp_path).itos == vocab.itos
    with pytest.raises(PlmError, match="min_count=9 leaves no word"):
        Vocabulary.build([["a", "b"]], min_count=9)
    (tmp_path / "empty.txt").write_text("\n  \n")
    with pytest.raises(PlmError, match="empty") as info:
        read_sentences(tmp_path / "empty.txt")
    assert info.value.path == str(tmp_path / "empty.txt")
    assert tokenize_line("ab c", char_level=True) == ["a", "b", "▁", "c"]


def test_ngram_windows_pad_with_sentence_starts():
    windows = ngram_windows([np.array([5, 6])], 3, bos_id=2, eos_id=3)
    assert windows.tolist() == [[2, 2, 5], [2, 5, 6], [5, 6, 3]]


def test_stream_batches_are_contiguous_per_row():
    stream = np.arange(41)
    source = StreamBatches(stream, batch_size=4, bptt=3)
    batches = list(source.batches(0))
    assert len(batches) == source.num_batches() == 4  # 10 columns / 3
    rows = torch.cat([b["input_ids"] for b in batches], dim=1)
    assert rows.tolist() == np.arange(40).reshape(4, 10).tolist()
    labels = torch.cat([b["labels"] for b in batches], dim=1)
    assert torch.equal(labels, rows + 1)
    assert [int(b["position"]) for b in batches] == [0, 1, 2, 3]
    halves = [next(source.batches(0, rank=r, world_size=2))["input_ids"] for r in (0, 1)]
    assert halves[0].tolist() == [[0, 1, 2], [20, 21, 22]]
    assert [int(b["position"]) for b in source.batches(0, start=2)] == [2, 3]


# ------------------------------------------------------------------------------------- NNLM
def test_nnlm_computes_the_seed_formula():
    torch.manual_seed(0)
    model = NNLM(NNLMConfig(vocab_size=11, context_size=3, embedding_size=4, hidden_size=5))
    torch.nn.init.normal_(model.W.weight)
    ids = torch.tensor([[1, 2, 3], [4, 5, 6]])
    x = model.C.weight[ids].reshape(2, 12)
    d, H = model.H.bias, model.H.weight
    y = model.b + x @ model.W.weight.T + torch.tanh(d + x @ H.T) @ model.U.weight.T
    torch.testing.assert_close(model(ids).logits, y)
    without = NNLM(NNLMConfig(vocab_size=11, context_size=3, direct_connection=False))
    assert without.W is None and "W.weight" not in without.state_dict()


def test_nnlm_learns_through_the_trainer_and_reloads(tmp_path):
    torch.manual_seed(0)
    sentences = toy_corpus()
    vocab = Vocabulary.build(sentences)
    recipe = LMRecipe(arch="nnlm", batch_size=32, order=3)
    model, result = train_language_model(
        recipe, sentences, vocab, training(tmp_path, 150), valid=toy_corpus(50, seed=1),
        embedding_size=16, hidden_size=32)
    held_out = evaluate_language_model(recipe, model, toy_corpus(50, seed=2), vocab)
    # After "the" the next word is one of cat/dog/ball/house: far better than uniform over 24.
    assert held_out["perplexity"] < 4.0, held_out
    assert result.metrics["eval_perplexity"] < 4.0
    loaded = NNLM.from_pretrained(tmp_path)
    assert Vocabulary.load(tmp_path).itos == vocab.itos
    ids = torch.tensor([[vocab.index("the"), vocab.index("cat")]])
    model.eval()
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits)


# ------------------------------------------------------------------------------------- RNN/LSTM
@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_carried_state_equals_one_long_sequence(cell):
    torch.manual_seed(0)
    model = RNNLanguageModel(RNNLMConfig(vocab_size=20, cell=cell, embedding_size=8,
                                         hidden_size=8, num_layers=2)).eval()
    ids = torch.randint(0, 20, (3, 12))
    whole = model(ids).logits
    hidden, pieces = None, []
    for begin in range(0, 12, 4):
        out = model(ids[:, begin:begin + 4], hidden=hidden)
        hidden = out.hidden
        pieces.append(out.logits)
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole)


def test_stream_task_carries_detached_state_and_resets_on_a_jump():
    torch.manual_seed(0)
    model = RNNLanguageModel(RNNLMConfig(vocab_size=20, embedding_size=8, hidden_size=8))
    task = StreamLMTask()
    source = StreamBatches(np.random.default_rng(0).integers(0, 20, 200), batch_size=2, bptt=5)
    batches = list(source.batches(0))
    task.step(model, batches[0])
    carried = task.hidden
    assert all(not h.requires_grad for h in carried)
    loss, _ = task.step(model, batches[1])
    loss.backward()  # the graph stops at the batch edge: no error about freed buffers
    with torch.no_grad():
        fresh = model(batches[1]["input_ids"], labels=batches[1]["labels"]).loss
        continued = model(batches[1]["input_ids"], hidden=carried,
                          labels=batches[1]["labels"]).loss
    loss = float(loss.detach())
    assert loss == pytest.approx(float(continued)) and loss != float(fresh)
    with torch.no_grad():
        jump, _ = task.step(model, batches[5])  # not position 2: the state starts again at zero
        restarted = model(batches[5]["input_ids"], labels=batches[5]["labels"]).loss
    assert float(jump) == pytest.approx(float(restarted))


def test_tied_lstm_learns_saves_without_the_copy_and_reloads(tmp_path):
    torch.manual_seed(0)
    sentences = toy_corpus()
    vocab = Vocabulary.build(sentences)
    recipe = LMRecipe(arch="lstm", batch_size=8, bptt=10)
    model, _ = train_language_model(recipe, sentences, vocab, training(tmp_path, 200),
                                    valid=toy_corpus(40, seed=1), embedding_size=32,
                                    hidden_size=32, num_layers=1, dropout=0.1, tie_weights=True)
    assert model.decoder.weight is model.embeddings.weight
    held_out = evaluate_language_model(recipe, model, toy_corpus(40, seed=2), vocab)
    assert held_out["perplexity"] < 4.0, held_out
    from safetensors.torch import load_file

    assert "decoder.weight" not in load_file(tmp_path / "model.safetensors")
    loaded = RNNLanguageModel.from_pretrained(tmp_path)
    assert loaded.decoder.weight is loaded.embeddings.weight
    ids = torch.tensor([[vocab.index("the"), vocab.index("cat")]])
    model.eval()
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits)
    with pytest.raises(PlmError, match="embedding_size == hidden_size"):
        RNNLMConfig(vocab_size=5, embedding_size=4, hidden_size=8, tie_weights=True)


# ------------------------------------------------------------------------------------- ELMo
def tiny_bilm(vocab_size=30):
    torch.manual_seed(0)
    return ElmoBiLM(ElmoConfig(vocab_size=vocab_size, embedding_size=16, hidden_size=32,
                               dropout=0.0)).eval()


def test_reverse_padded_keeps_padding_in_place():
    x = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]])
    assert reverse_padded(x, torch.tensor([3, 2])).tolist() == [[3, 2, 1, 0], [5, 4, 0, 0]]


def test_forward_states_see_only_the_past_and_backward_only_the_future():
    bilm = tiny_bilm()
    ids = torch.tensor([[2, 5, 6, 7, 8, 9, 3]])
    changed = ids.clone()
    changed[0, 4] = 10
    _, fwd, bwd, _ = bilm.directional_states(ids)
    _, fwd2, bwd2, _ = bilm.directional_states(changed)
    top_f, top_f2, top_b, top_b2 = fwd[-1][0], fwd2[-1][0], bwd[-1][0], bwd2[-1][0]
    torch.testing.assert_close(top_f[:4], top_f2[:4])       # before the change: same
    assert not torch.allclose(top_f[4:], top_f2[4:])         # from it on: different
    torch.testing.assert_close(top_b[5:], top_b2[5:])        # after the change: same
    assert not torch.allclose(top_b[:5], top_b2[:5])
    layers = bilm.representation_layers(ids)
    assert len(layers) == 3 and all(layer.shape == (1, 7, 32) for layer in layers)
    # padding does not change the real positions
    padded = torch.tensor([[2, 5, 6, 7, 8, 9, 3, 0, 0]])
    again = bilm.representation_layers(padded)
    for a, b in zip(layers, again):
        torch.testing.assert_close(b[:, :7], a)


def test_bilm_pretraining_lowers_both_directions(tmp_path):
    sentences = toy_corpus()
    vocab = Vocabulary.build(sentences)
    torch.manual_seed(0)
    recipe = LMRecipe(arch="elmo", batch_size=16)
    model, result = train_language_model(recipe, sentences, vocab, training(tmp_path, 80),
                                         valid=toy_corpus(40, seed=1), embedding_size=16,
                                         hidden_size=32, dropout=0.0)
    metrics = evaluate_language_model(recipe, model, toy_corpus(40, seed=2), vocab)
    assert metrics["forward_perplexity"] < 5 and metrics["backward_perplexity"] < 5, metrics
    loaded = ElmoBiLM.from_pretrained(tmp_path)
    batch = next(sentence_batches(encode_sentences(toy_corpus(4, seed=3), vocab), 4,
                                  bos_id=vocab.index(BOS), eos_id=vocab.index(EOS),
                                  pad_id=vocab.index(PAD), shuffle=False).batches(0))
    model.eval()
    for a, b in zip(loaded.representation_layers(batch["input_ids"], batch["attention_mask"]),
                    model.representation_layers(batch["input_ids"], batch["attention_mask"])):
        torch.testing.assert_close(a, b)


def test_encoder_features_are_contextual_masked_and_frozen():
    bilm = tiny_bilm()
    encoder = ElmoEncoder(bilm, num_output_representations=2)
    ids = torch.tensor([[5, 6, 7, 0], [5, 9, 7, 8]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    first, second = encoder.features(ids, mask)
    assert first.shape == (2, 4, 32) and second.shape == (2, 4, 32)
    assert torch.all(first[0, 3] == 0)                       # padding → zeros
    assert not torch.allclose(first[0, 0], first[1, 0])      # same word, different right context
    assert all(not p.requires_grad for p in encoder.bilm.parameters())
    trainable = [n for n, p in encoder.named_parameters() if p.requires_grad]
    assert sorted(trainable) == ["mixes.0.scalar_parameters", "mixes.0.scale",
                                 "mixes.1.scalar_parameters", "mixes.1.scale"]
    encoder.train()
    assert not encoder.bilm.training


class TaggingTask:
    def step(self, model, batch):
        out = model(batch["input_ids"], batch["attention_mask"], labels=batch["labels"])
        return out.loss, {}


def test_tagger_on_frozen_elmo_learns_and_leaves_the_bilm_untouched(tmp_path):
    bilm = tiny_bilm()
    animals = {5, 6, 7}
    rng = np.random.default_rng(0)
    ids = torch.as_tensor(rng.integers(4, 30, size=(64, 6)))
    labels = torch.as_tensor(np.isin(ids.numpy(), list(animals)).astype(np.int64))
    items = list(zip(ids, labels))

    def collate(batch):
        return {"input_ids": torch.stack([i for i, _ in batch]),
                "attention_mask": torch.ones(len(batch), 6, dtype=torch.long),
                "labels": torch.stack([label for _, label in batch])}

    from plmkit.data.collate import Batches

    model = ElmoForTask.from_bilm(bilm, num_labels=2)
    before = {k: v.clone() for k, v in model.encoder.bilm.state_dict().items()}
    mix_before = model.encoder.mixes[0].scalar_parameters.detach().clone()
    Trainer(model, TaggingTask(), Batches(items, 16, collate, seed=0),
            training(tmp_path, 120, lr=0.05)).train()
    model.eval()
    predictions = model(ids).logits.argmax(-1)
    assert (predictions == labels).float().mean() > 0.95
    for key, value in model.encoder.bilm.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert not torch.equal(model.encoder.mixes[0].scalar_parameters.detach(), mix_before)
    reloaded = ElmoForTask.from_pretrained(tmp_path)
    torch.testing.assert_close(reloaded(ids).logits, model(ids).logits)
    classifier = ElmoForTask.from_bilm(bilm, num_labels=3, head="classification")
    assert classifier(ids).logits.shape == (64, 3)


@pytest.mark.parametrize("content, flags, message", [
    ("\n  \n", [], "empty"),
    ("the cat\nthe dog\n", ["--min-count", "50"], "min_count=50 leaves no word"),
])
def test_train_lm_cli_refuses_bad_corpora_before_writing(tmp_path, capsys, content, flags,
                                                         message):
    from plmkit.cli import main

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(content)
    output = tmp_path / "run"
    assert main(["train-lm", "--arch", "lstm", "--corpus", str(corpus), "-o", str(output),
                 "--no-progress", *flags]) == 2
    assert message in capsys.readouterr().err
    assert not output.exists()


def test_recurrent_lms_default_to_zaremba_sgd_and_the_nnlm_to_adam():
    from plmkit.training.tasks_lm import LMOptimization, default_optimization

    zaremba = LMOptimization("sgd", 20.0, 0.25)
    assert default_optimization("lstm") == default_optimization("rnn") == zaremba
    assert default_optimization("elmo") == zaremba  # two LSTM LMs
    assert default_optimization("nnlm").optimizer == "adam"
