"""``--precision auto``: the choice is a pure function of (device, CPU facts, probe), tested for
every combination without the hardware; then the real machine's choice end to end."""

from __future__ import annotations

import json

import pytest
import torch

from plmkit import precision
from plmkit.errors import PlmError
from plmkit.precision import CpuFacts, choose_precision

AVX2 = CpuFacts("AVX2", native_bf16=False, bf16_speedup=0.006)
AVX2_UNPROBED = CpuFacts("AVX2", native_bf16=False)
AVX512 = CpuFacts("AVX512", native_bf16=False, bf16_speedup=0.3)
AVX512_BF16 = CpuFacts("AVX512", native_bf16=True, bf16_speedup=2.2)
AVX512_BF16_UNPROBED = CpuFacts("AVX512", native_bf16=True)
AVX512_BF16_SLOW = CpuFacts("AVX512", native_bf16=True, bf16_speedup=0.9)


@pytest.mark.parametrize("facts, expected", [
    (AVX2, "fp32"), (AVX2_UNPROBED, "fp32"), (AVX512, "fp32"),
    (AVX512_BF16, "bf16"), (AVX512_BF16_UNPROBED, "bf16"), (AVX512_BF16_SLOW, "fp32"),
    (None, "fp32"),
])
def test_auto_on_a_cpu_takes_bf16_only_where_it_is_native_and_measured_faster(facts, expected):
    choice = choose_precision("auto", "cpu", facts)
    assert choice.precision == expected and choice.requested == "auto"
    assert choice.warning is None
    if facts is not None:
        assert facts.capability in choice.reason
    if expected == "fp32" and facts is not None and not facts.native_bf16:
        assert choice.describe() == f"precision: fp32 (this CPU has no native bf16: {facts.capability})"


@pytest.mark.parametrize("cuda_bf16, expected", [(True, "bf16"), (False, "fp16")])
def test_auto_on_a_gpu_takes_bf16_where_supported_else_fp16(cuda_bf16, expected):
    choice = choose_precision("auto", "cuda", cuda_bf16=cuda_bf16)
    assert choice.precision == expected and choice.warning is None


@pytest.mark.parametrize("requested", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("facts", [AVX2, AVX512_BF16, AVX512_BF16_SLOW])
def test_an_explicit_choice_is_honoured_and_emulated_bf16_warns_with_the_ratio(requested, facts):
    choice = choose_precision(requested, "cpu", facts)
    assert choice.precision == requested
    bf16_slow = requested == "bf16" and facts is not AVX512_BF16
    assert (choice.warning is not None) == (bf16_slow or requested == "fp16")
    if bf16_slow and facts is AVX2:
        assert "167" in choice.warning and "slower than fp32" in choice.warning  # 1 / 0.006


def test_explicit_bf16_on_a_gpu_without_it_warns():
    assert choose_precision("bf16", "cuda", cuda_bf16=False).warning
    assert choose_precision("bf16", "cuda", cuda_bf16=True).warning is None


def test_unknown_precision_is_a_plm_error_naming_the_field():
    with pytest.raises(PlmError) as error:
        choose_precision("int3", "cpu", AVX2)
    assert error.value.field == "precision"


def test_the_probe_is_cached_per_machine_and_a_foreign_cache_is_measured_again(
        tmp_path, monkeypatch):
    monkeypatch.setenv("PLMKIT_HOME", str(tmp_path))
    calls = []
    monkeypatch.setattr(precision, "measure_bf16_speedup", lambda: calls.append(1) or 1.7)
    assert precision.cached_bf16_speedup() == 1.7
    assert precision.cached_bf16_speedup() == 1.7 and len(calls) == 1
    saved = json.loads((tmp_path / precision.PROBE_FILE).read_text())
    assert saved["bf16_speedup"] == 1.7 and torch.__version__ in saved["machine"]
    (tmp_path / precision.PROBE_FILE).write_text(json.dumps({"machine": "another", "bf16_speedup": 9}))
    assert precision.cached_bf16_speedup() == 1.7 and len(calls) == 2
    (tmp_path / precision.PROBE_FILE).write_text("{not json")
    assert precision.cached_bf16_speedup() == 1.7 and len(calls) == 3


def test_the_real_probe_measures_a_positive_ratio_quickly():
    import time

    start = time.perf_counter()
    ratio = precision.measure_bf16_speedup()
    assert ratio > 0 and time.perf_counter() - start < 10


def test_resolve_precision_on_this_machine_agrees_with_the_pure_choice(tmp_path, monkeypatch):
    monkeypatch.setenv("PLMKIT_HOME", str(tmp_path))
    choice = precision.resolve_precision("auto", "cpu")
    facts = CpuFacts(precision.cpu_capability(), precision.native_cpu_bf16(),
                     precision.cached_bf16_speedup() if precision.native_cpu_bf16() else None)
    assert choice == choose_precision("auto", "cpu", facts)


def test_a_faked_slow_probe_makes_explicit_bf16_warn_through_the_trainer(tmp_path, monkeypatch,
                                                                         capsys):
    """The warning path on any machine: the probe says bf16 is 40× slower."""
    from plmkit.training import Trainer, TrainingConfig

    monkeypatch.setattr(precision, "native_cpu_bf16", lambda: False)
    monkeypatch.setattr(precision, "cached_bf16_speedup", lambda refresh=False: 1 / 40)
    model = torch.nn.Linear(2, 2)
    trainer = Trainer(model, task=None, train_data=None,
                      config=TrainingConfig(output_dir=str(tmp_path), precision="bf16", max_steps=1))
    assert trainer.precision.precision == "bf16"
    assert "40× slower than fp32" in trainer.precision.warning
    auto = Trainer(model, task=None, train_data=None,
                   config=TrainingConfig(output_dir=str(tmp_path), max_steps=1))
    assert auto.precision.precision == "fp32" and auto.precision.requested == "auto"
    assert auto.training_config_dict()["precision"] == "fp32"
    assert auto.training_config_dict()["precision_requested"] == "auto"


def test_plm_pretrain_records_the_precision_auto_chose(tmp_path, capsys):
    from plmkit.cli import main

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"The cat number {i} sat on the mat.\nIt was warm there.\n\n"
                              for i in range(40)))
    output = tmp_path / "run"
    assert main(["pretrain", "--corpus", str(corpus), "--model-size", "tiny", "--max-steps", "2",
                 "--batch-size", "4", "--max-seq-length", "32", "--dupe-factor", "1",
                 "--output", str(output), "--no-progress"]) == 0
    printed = capsys.readouterr().err
    expected = precision.resolve_precision("auto", "cpu")
    assert f"plmkit: {expected.describe()}" in printed
    records = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    start = [r for r in records if r.get("event") == "start"]
    assert len(start) == 1
    assert start[0]["precision"] == expected.precision
    assert start[0]["precision_requested"] == "auto"
    assert start[0]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert start[0]["compile"] is False and "0.85" in start[0]["compile_reason"]
    saved = json.loads(next(output.glob("checkpoint-*/training_config.json")).read_text())
    assert saved["precision"] == expected.precision and saved["precision_requested"] == "auto"
