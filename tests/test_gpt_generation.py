"""Generation: each sampling knob does what it says, the KV cache changes nothing but speed."""

from __future__ import annotations

import pytest
import torch

from plmkit.errors import PlmError
from plmkit.evaluation import generation as gen
from plmkit.models.gpt import GPTLMHeadModel, gpt_config


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPTLMHeadModel(gpt_config("nano", vocab_size=40, n_positions=16)).eval()


PROMPT = [3, 4, 5, 6]


def test_cache_and_no_cache_give_the_same_tokens_greedy_and_sampled(model):
    for settings in (dict(temperature=0), dict(temperature=1.3, top_k=7, top_p=0.9, seed=5)):
        cached = gen.generate(model, PROMPT, max_new_tokens=12, **settings)
        recomputed = gen.generate(model, PROMPT, max_new_tokens=12, use_cache=False, **settings)
        assert cached.tolist() == recomputed.tolist()
        assert cached.shape == (1, 16) and cached[0, :4].tolist() == PROMPT


def test_greedy_is_the_argmax_of_the_full_forward(model):
    out = gen.generate(model, PROMPT, temperature=0, max_new_tokens=3)[0].tolist()
    context = list(PROMPT)
    for _ in range(3):
        with torch.no_grad():
            context.append(int(model(torch.tensor([context])).logits[0, -1].argmax()))
    assert out == context


def test_seed_makes_sampling_reproducible_and_top_k_1_is_greedy(model):
    first = gen.generate(model, PROMPT, temperature=1.0, max_new_tokens=10, seed=1)
    again = gen.generate(model, PROMPT, temperature=1.0, max_new_tokens=10, seed=1)
    other = gen.generate(model, PROMPT, temperature=5.0, max_new_tokens=10, seed=2)
    greedy = gen.generate(model, PROMPT, temperature=0, max_new_tokens=10)
    assert first.tolist() == again.tolist() and first.tolist() != other.tolist()
    for narrow in (dict(top_k=1), dict(top_p=1e-6)):
        assert gen.generate(model, PROMPT, temperature=2.0, max_new_tokens=10, seed=3,
                            **narrow).tolist() == greedy.tolist()


def test_top_k_and_top_p_filters():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0]])
    assert torch.isinf(gen.top_k_filter(logits, 2)).tolist() == [[True, False, False, True]]
    probabilities = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    kept = ~torch.isinf(gen.top_p_filter(probabilities, 0.75))
    assert kept.tolist() == [[True, True, False, False]]  # 0.5 < 0.75 ≤ 0.8
    assert (~torch.isinf(gen.top_p_filter(probabilities, 0.5))).sum() == 1


def test_repetition_penalty_lowers_seen_tokens_both_signs():
    logits = torch.tensor([[2.0, -2.0, 2.0]])
    seen = torch.tensor([[True, True, False]])
    assert gen.apply_repetition_penalty(logits, seen, 2.0).tolist() == [[1.0, -4.0, 2.0]]


def test_repetition_penalty_breaks_a_greedy_loop(model):
    plain = gen.generate(model, PROMPT, temperature=0, max_new_tokens=12)[0, 4:].tolist()
    penalised = gen.generate(model, PROMPT, temperature=0, max_new_tokens=12,
                             repetition_penalty=1e6)[0, 4:].tolist()
    assert len(set(penalised)) == 12 and not set(penalised) & set(PROMPT)
    assert len(set(plain)) < 12


def test_stop_tokens_end_the_stream(model):
    greedy = gen.generate(model, PROMPT, temperature=0, max_new_tokens=8)[0, 4:].tolist()
    stop = greedy[2]
    first_stop = greedy.index(stop)
    tokens = list(gen.stream_tokens(model, PROMPT, gen.GenerationConfig(
        temperature=0, max_new_tokens=8, stop_tokens=(stop,))))
    assert tokens == greedy[:first_stop]


def test_left_padded_batch_equals_each_prompt_alone(model):
    input_ids = torch.tensor([[3, 4, 5, 6], [0, 0, 7, 8]])
    mask = torch.tensor([[1, 1, 1, 1], [0, 0, 1, 1]])
    batch = gen.generate(model, input_ids, attention_mask=mask, temperature=0, max_new_tokens=6)
    alone = gen.generate(model, [7, 8], temperature=0, max_new_tokens=6)
    assert batch[1, 4:].tolist() == alone[0, 2:].tolist()
    assert batch[0].tolist() == gen.generate(model, PROMPT, temperature=0,
                                             max_new_tokens=6)[0].tolist()


def test_long_prompts_are_cut_from_the_left_with_a_message(model):
    messages: list[str] = []
    long_prompt = list(range(1, 31))
    out = gen.generate(model, long_prompt, temperature=0, max_new_tokens=2,
                       notify=messages.append)
    assert len(messages) == 1 and "keeping its last 16" in messages[0]
    tail = gen.generate(model, long_prompt[-16:], temperature=0, max_new_tokens=2, notify=None)
    assert out[0, -2:].tolist() == tail[0, -2:].tolist()


def test_generation_past_the_window_slides_like_a_recompute(model):
    cached = gen.generate(model, PROMPT, temperature=0, max_new_tokens=30)
    recomputed = gen.generate(model, PROMPT, temperature=0, max_new_tokens=30, use_cache=False)
    assert cached.shape == (1, 34) and cached.tolist() == recomputed.tolist()


@pytest.mark.parametrize("field, value", [("top_p", 0.0), ("top_p", 1.5), ("temperature", -0.1),
                                          ("top_k", -1), ("repetition_penalty", 0.0),
                                          ("max_new_tokens", -1)])
def test_invalid_settings_are_plm_errors_naming_the_field(field, value):
    with pytest.raises(PlmError) as error:
        gen.GenerationConfig(**{field: value})
    assert error.value.field == field


def test_empty_prompt_is_a_plm_error(model):
    with pytest.raises(PlmError, match="empty"):
        gen.generate(model, [], max_new_tokens=2)


def test_pipeline_streams_text_from_a_hugging_face_folder_with_bpe(tmp_path):
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    from plmkit.pipelines.generate import TextGenerationPipeline

    bpe = tokenizers.ByteLevelBPETokenizer()
    bpe.train_from_iterator(["the cat sat on the mat, naïve café"] * 20, vocab_size=300,
                            min_frequency=1, show_progress=False)
    bpe.save_model(str(tmp_path))  # vocab.json + merges.txt, GPT-2's tokenizer files
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=bpe.get_vocab_size(), n_positions=32, n_embd=32, n_layer=1, n_head=2,
        bos_token_id=0, eos_token_id=0)).save_pretrained(tmp_path)
    pipe = TextGenerationPipeline(tmp_path, notify=None)
    pieces = list(pipe.stream("the café", max_new_tokens=6, temperature=0))
    whole = pipe("the café", max_new_tokens=6, temperature=0)
    assert whole == "".join(pieces) and len(whole) > 0 and "\ufffd" not in whole
    ids = bpe.encode("the café").ids
    expected = gen.generate(pipe.model, ids, temperature=0, max_new_tokens=6, notify=None)
    assert bpe.decode(expected[0].tolist()) == "the café" + whole


@pytest.fixture
def char_folder(tmp_path):
    """An untrained character-level GPT saved as plm train-gpt would (context 16)."""
    from plmkit.data.text_lm import CharTokenizer

    tokenizer = CharTokenizer.build(["abcdefgh ij\nklmnop"])
    torch.manual_seed(0)
    GPTLMHeadModel(gpt_config("nano", vocab_size=len(tokenizer), n_positions=16)).save_pretrained(
        tmp_path, tokenizer=tokenizer)
    return tmp_path


def test_cli_generate_cuts_a_long_prompt_from_the_left_and_says_so(char_folder, capsys):
    from plmkit.cli import main

    prompt = "abcdefghij" * 3  # 30 characters, context 16
    assert main(["generate", str(char_folder), prompt, "--max-new-tokens", "4",
                 "--temperature", "0"]) == 0
    captured = capsys.readouterr()
    assert "30 tokens is longer than the model's context window (16)" in captured.err
    assert "keeping its last 16" in captured.err
    assert captured.out.startswith(prompt) and len(captured.out) == len(prompt) + 4 + 1

    from plmkit.pipelines.generate import TextGenerationPipeline

    pipe = TextGenerationPipeline(char_folder, notify=None)
    assert pipe(prompt, max_new_tokens=4, temperature=0) == pipe(prompt[-16:], max_new_tokens=4,
                                                                 temperature=0)


@pytest.mark.parametrize("flag, value, field", [("--temperature", "-1", "--temperature"),
                                                ("--top-p", "1.01", "--top-p"),
                                                ("--top-k", "-3", "--top-k")])
def test_cli_generate_refuses_bad_sampling_settings_before_writing(char_folder, capsys, flag,
                                                                   value, field):
    from plmkit.cli import main

    assert main(["generate", str(char_folder), "abc", flag, value]) == 2
    captured = capsys.readouterr()
    assert field in captured.err and captured.out == ""  # not even the prompt was printed


def test_cli_generate_stop_text_must_be_one_token(char_folder, capsys):
    from plmkit.cli import main

    assert main(["generate", str(char_folder), "abc", "--stop", "ab"]) == 2
    assert "'ab' is 2 tokens" in capsys.readouterr().err
