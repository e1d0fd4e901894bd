"""``plm export --format onnx``: ONNX Runtime's outputs equal ours (real MiniLM and fine-tuned
heads, several batch/length shapes with padding), ``--runtime onnx`` writes the same prediction
files as the PyTorch path, and bad folders are one-line errors that write nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from plmkit.cli import main  # noqa: E402
from plmkit.errors import PlmError  # noqa: E402
from plmkit.export.onnx import export_onnx  # noqa: E402
from plmkit.export.runtime import OnnxModel  # noqa: E402
from plmkit.models.bert import (BertConfig, BertForQuestionAnswering,  # noqa: E402
                                BertForSequenceClassification, BertForTokenClassification,
                                BertModel)

SHAPES = [(1, 5), (3, 37), (4, 64)]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "dog", "sat", "ran", "on",
         "mat", "log", "a", "red", "good", "bad", "film", "was", "."]


def padded(vocab_size: int, batch: int, length: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab_size, (batch, length), generator=generator)
    mask = torch.ones_like(ids)
    if batch > 1:
        mask[-1, length // 2:] = 0
        ids[-1, length // 2:] = 0
    return ids, mask


def max_difference(ours: torch.Tensor, theirs: torch.Tensor, mask: torch.Tensor) -> float:
    """Over real tokens for per-token outputs (padding positions are never read)."""
    if ours.dim() > 1 and ours.shape[1] == mask.shape[1]:
        ours, theirs = ours[mask.bool()], theirs[mask.bool()]
    return float((ours - theirs.to(ours.dtype)).abs().max())


def fine_tuned(folder: Path, cls: type, **config) -> Path:
    torch.manual_seed(0)
    model = cls(BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=2, intermediate_size=64,
                           max_position_embeddings=64, **config)).eval()
    with torch.no_grad():  # a trained-looking head, not the N(0, 0.02) start
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    model.save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    return folder


HEADS = [
    (BertForSequenceClassification, dict(id2label={0: "neg", 1: "pos"}), ("logits",)),
    (BertForTokenClassification, dict(id2label={0: "O", 1: "B-PER", 2: "I-PER"}), ("logits",)),
    (BertForQuestionAnswering, {}, ("start_logits", "end_logits")),
]


@pytest.mark.parametrize("cls,config,outputs", HEADS, ids=lambda v: getattr(v, "__name__", ""))
def test_onnx_runtime_equals_pytorch_on_every_head(tmp_path, one_thread, cls, config, outputs):
    source = fine_tuned(tmp_path / "model", cls, **config)
    export_onnx(source, tmp_path / "onnx")
    ours = cls.from_pretrained(source).eval()
    theirs = OnnxModel(tmp_path / "onnx")
    for batch, length in SHAPES:
        ids, mask = padded(len(VOCAB), batch, length)
        with torch.no_grad():
            expected = ours(ids, mask)
        got = theirs(ids, mask)
        for name in outputs:
            assert max_difference(getattr(expected, name), getattr(got, name), mask) <= 1e-4


def test_onnx_runtime_equals_pytorch_on_real_minilm(minilm_dir, tmp_path, one_thread):
    export_onnx(minilm_dir, tmp_path / "onnx")
    exported = json.loads((tmp_path / "onnx" / "config.json").read_text())["export"]
    assert exported["task"] == "encoder" and exported["opset"] == 17
    assert (tmp_path / "onnx" / "vocab.txt").is_file()
    ours = BertModel.from_pretrained(minilm_dir).eval()
    theirs = OnnxModel(tmp_path / "onnx")
    for batch, length in SHAPES[:2] + [(2, 128)]:
        ids, mask = padded(ours.config.vocab_size, batch, length, seed=length)
        with torch.no_grad():
            expected = ours(ids, mask).last_hidden_state
        assert max_difference(expected, theirs(ids, mask).last_hidden_state, mask) <= 1e-4


def test_predict_runtime_onnx_writes_the_same_file(tmp_path, capsys):
    source = fine_tuned(tmp_path / "model", BertForSequenceClassification,
                        id2label={0: "neg", 1: "pos"})
    rows = ["the film was good .", "a bad film .", "the cat sat on the mat .", "red dog ran"]
    data = tmp_path / "rows.txt"
    data.write_text("\n".join(rows) + "\n")
    assert main(["export", str(source), "--format", "onnx", "--output",
                 str(tmp_path / "onnx")]) == 0
    assert main(["predict", "--model", str(source), "--input", str(data), "--task", "classify",
                 "--output", str(tmp_path / "torch.jsonl")]) == 0
    assert main(["predict", "--model", str(tmp_path / "onnx"), "--input", str(data),
                 "--runtime", "onnx", "--output", str(tmp_path / "onnx.jsonl")]) == 0
    first = [json.loads(line) for line in (tmp_path / "torch.jsonl").read_text().splitlines()]
    second = [json.loads(line) for line in (tmp_path / "onnx.jsonl").read_text().splitlines()]
    assert [r["label"] for r in first] == [r["label"] for r in second]
    assert all(abs(a["score"] - b["score"]) < 1e-5 for a, b in zip(first, second))
    assert len(first) == len(rows)


def test_pipeline_takes_runtime_onnx(tmp_path):
    from plmkit.pipelines import pipeline

    source = fine_tuned(tmp_path / "model", BertForTokenClassification,
                        id2label={0: "O", 1: "B-PER", 2: "I-PER"})
    export_onnx(source, tmp_path / "onnx")
    texts = ["the cat sat on the mat", "a red dog ran"]
    torch_tags = pipeline("ner", model=source)(texts)
    onnx_tags = pipeline("ner", model=tmp_path / "onnx", runtime="onnx")(texts)
    assert [r["tags"] for r in torch_tags] == [r["tags"] for r in onnx_tags]


def test_bad_export_and_runtime_folders_are_one_line_errors(tmp_path, capsys):
    source = fine_tuned(tmp_path / "model", BertForSequenceClassification,
                        id2label={0: "neg", 1: "pos"})
    data = tmp_path / "rows.txt"
    data.write_text("the film was good .\n")

    def refused(*argv: str, says: str) -> None:
        capsys.readouterr()
        assert main(list(argv)) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and says in err, err

    # a PyTorch folder for --runtime onnx, and an export for the PyTorch runtime
    refused("predict", "--model", str(source), "--input", str(data), "--runtime", "onnx",
            "--output", str(tmp_path / "a.jsonl"), says="no model.onnx")
    export_onnx(source, tmp_path / "onnx")
    refused("predict", "--model", str(tmp_path / "onnx"), "--input", str(data),
            "--output", str(tmp_path / "b.jsonl"), says="--runtime onnx")
    assert not (tmp_path / "a.jsonl").exists() and not (tmp_path / "b.jsonl").exists()
    # a folder with no task head this exporter knows, and one that is not BERT
    config = json.loads((source / "config.json").read_text())
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "config.json").write_text(json.dumps({**config, "architectures": ["BertForNothing"]}))
    refused("export", str(odd), "--format", "onnx", "--output", str(tmp_path / "x"),
            says="BertForNothing")
    (odd / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    refused("export", str(odd), "--format", "onnx", "--output", str(tmp_path / "x"),
            says="model_type")
    assert not (tmp_path / "x").exists()
    # an export whose model.onnx is damaged
    (tmp_path / "onnx" / "model.onnx").write_bytes(b"not a protobuf")
    with pytest.raises(PlmError, match="ONNX Runtime cannot load"):
        OnnxModel(tmp_path / "onnx")


def test_int8_export_is_smaller_close_and_says_what_it_kept(tmp_path, one_thread):
    source = fine_tuned(tmp_path / "model", BertForSequenceClassification,
                        id2label={0: "neg", 1: "pos"})
    export_onnx(source, tmp_path / "fp32")
    assert main(["export", str(source), "--format", "onnx", "--quantize", "int8",
                 "--output", str(tmp_path / "int8")]) == 0
    assert sorted(p.name for p in (tmp_path / "int8").iterdir() if p.suffix == ".onnx") == \
        ["model.onnx"]  # the fp32 intermediate is gone
    record = json.loads((tmp_path / "int8" / "config.json").read_text())["export"]["quantization"]
    assert record["op_types"] == ["MatMul"] and "LayerNorm" in record["kept_fp32"]
    import onnx

    graph = onnx.load(str(tmp_path / "int8" / "model.onnx")).graph
    assert any(node.op_type in ("MatMulInteger", "DynamicQuantizeLinear") for node in graph.node)
    full, small = OnnxModel(tmp_path / "fp32"), OnnxModel(tmp_path / "int8")
    ids, mask = padded(len(VOCAB), 4, 32)
    reference, quantized = full(ids, mask).logits, small(ids, mask).logits
    assert 0 < float((reference - quantized).abs().max()) < 0.1 * float(reference.abs().max())


def test_quantize_needs_the_onnx_format(tmp_path, capsys):
    source = fine_tuned(tmp_path / "model", BertForSequenceClassification,
                        id2label={0: "neg", 1: "pos"})
    assert main(["export", str(source), "--format", "hf", "--quantize", "int8",
                 "--output", str(tmp_path / "x")]) == 2
    assert "--quantize" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_pytorch_dynamic_int8_runs_our_encoder(one_thread):
    """torch's dynamic quantization swaps the linears for packed-int8 modules; the fused Q/K/V
    projection must step aside for them (found by benchmarks/inference_runtimes.py)."""
    import copy

    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=64,
                                 max_position_embeddings=64)).eval()
    quantized = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear},
                                                       dtype=torch.qint8)
    ids, mask = padded(len(VOCAB), 3, 20)
    with torch.no_grad():
        reference = model(ids, mask).last_hidden_state
        got = quantized(ids, mask).last_hidden_state
    assert 0 < max_difference(reference, got, mask) < 0.1


def test_dynamic_int8_projects_queries_keys_values_in_one_int8_call(one_thread):
    """dynamic_int8 gives self-attention one int8 linear over [W^Q; W^K; W^V]; its outputs equal
    the three separate int8 linears' (rows are scaled one by one, the input quantized alike)."""
    from plmkit.export.runtime import Int8Linear, dynamic_int8
    from plmkit.models.attention import MultiHeadAttention

    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=64,
                                 max_position_embeddings=64)).eval()
    quantized = dynamic_int8(model)
    attentions = [m for m in quantized.modules() if isinstance(m, MultiHeadAttention)]
    assert attentions and all(isinstance(m.qkv, Int8Linear) for m in attentions)
    assert all(m.qkv is None for m in model.modules() if isinstance(m, MultiHeadAttention))
    ids, mask = padded(len(VOCAB), 3, 20)
    with torch.no_grad():
        stacked = quantized(ids, mask).last_hidden_state
        for m in attentions:
            m.fuse_qkv = False  # the three separate int8 linears
        separate = quantized(ids, mask).last_hidden_state
    assert max_difference(stacked, separate, mask) < 1e-5


def test_int8_activations_take_8_bits_where_the_cpu_has_vnni(one_thread, monkeypatch):
    """fbgemm without VNNI saturates int16 pair sums, so activations get 7 bits there; with
    VNNI the full 8. The 8th bit halves the activation rounding step, so the int8 encoder lands
    closer to fp32 (on MiniLM: the point of accuracy PyTorch's int8 used to lose)."""
    from plmkit.export import runtime
    from plmkit.export.runtime import Int8Linear, dynamic_int8

    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=len(VOCAB), hidden_size=64, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=128,
                                 max_position_embeddings=64)).eval()
    ids, mask = padded(len(VOCAB), 4, 24)
    with torch.no_grad():
        reference = model(ids, mask).last_hidden_state
        errors = {}
        for full in (True, False):
            quantized = dynamic_int8(model, full_range=full)
            linears = [m for m in quantized.modules() if isinstance(m, Int8Linear)]
            assert linears and all(m.reduce_range is (not full) for m in linears)
            assert f"activation_bits={8 if full else 7}" in repr(linears[0])
            errors[full] = float(((quantized(ids, mask).last_hidden_state - reference)
                                  * mask[..., None]).pow(2).mean())
    assert 0 < errors[True] < 0.6 * errors[False], errors
    for vnni in (True, False):  # by default the CPU decides
        monkeypatch.setattr(runtime, "full_range_int8", lambda vnni=vnni: vnni)
        first = next(m for m in dynamic_int8(model).modules() if isinstance(m, Int8Linear))
        assert first.reduce_range is (not vnni)


def test_fbgemm_held_to_avx2_means_seven_bit_activations(monkeypatch):
    """FBGEMM_ENABLE_INSTRUCTIONS=AVX2 puts fbgemm on its vpmaddubsw kernels whatever the CPU
    has, and those saturate at 8 bits: the full range must not be taken then."""
    from plmkit.export import runtime

    monkeypatch.setenv("FBGEMM_ENABLE_INSTRUCTIONS", "AVX2")
    assert runtime.full_range_int8() is False


def test_export_check_writes_what_each_deployment_path_costs(tmp_path, one_thread, capsys):
    """``--check DATA`` scores fp32 PyTorch, the int8 export and PyTorch's dynamic int8 on the
    same labelled rows, and each path's cost is fp32 minus it, in points."""
    source = fine_tuned(tmp_path / "model", BertForSequenceClassification,
                        id2label={0: "neg", 1: "pos"})
    rows = [("the film was good .", "pos"), ("a bad film .", "neg"), ("red dog ran", "pos"),
            ("the cat sat on the log", "neg"), ("a good dog", "pos"), ("bad mat", "neg")]
    data = tmp_path / "dev.tsv"
    data.write_text("text\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in rows))
    assert main(["export", str(source), "--format", "onnx", "--quantize", "int8", "--check",
                 str(data), "--output", str(tmp_path / "int8")]) == 0
    assert "points lost" in capsys.readouterr().out
    results = json.loads((tmp_path / "int8" / "results.json").read_text())
    assert results["metric"] == "accuracy" and results["task"] == "classify"
    assert set(results["runs"]) == {"torch fp32", "onnx int8", "torch-int8"}
    from plmkit.export.runtime import full_range_int8

    assert results["torch_int8_activation_bits"] == (8 if full_range_int8() else 7)
    from plmkit.downstream import evaluate_checkpoint

    reference = evaluate_checkpoint(source, data, device="cpu")["accuracy"]
    assert results["runs"]["torch fp32"]["accuracy"] == pytest.approx(reference)
    for name, cost in results["cost_points"].items():
        assert cost == pytest.approx(100 * (reference - results["runs"][name]["accuracy"]))
    # the checked export still runs like any other
    onnx = evaluate_checkpoint(tmp_path / "int8", data, runtime="onnx")["accuracy"]
    assert onnx == pytest.approx(results["runs"]["onnx int8"]["accuracy"])


def test_check_is_refused_for_a_bare_encoder_and_for_the_hf_format(tmp_path, capsys):
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=64,
                         max_position_embeddings=64)).save_pretrained(tmp_path / "encoder")
    (tmp_path / "encoder" / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    data = tmp_path / "dev.tsv"
    data.write_text("text\tlabel\nthe film\tpos\n")
    for argv, says in (([("--format"), "onnx"], "bare encoder"), ((["--format", "hf"]), "--check")):
        capsys.readouterr()
        assert main(["export", str(tmp_path / "encoder"), *argv, "--check", str(data),
                     "--output", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and says in err, err
        assert not (tmp_path / "x").exists()


def test_runtime_torch_int8_predicts_like_fp32_through_the_cli(tmp_path, one_thread):
    """``--runtime torch-int8`` quantizes the encoder's linears only (the head stays fp32) and
    writes the same kind of file; on a clear-cut model the labels agree."""
    from plmkit.downstream import load_finetuned, load_settings
    from plmkit.export.runtime import dynamic_int8

    source = fine_tuned(tmp_path / "model", BertForSequenceClassification,
                        id2label={0: "neg", 1: "pos"})
    model = load_finetuned(source, load_settings(source), "torch-int8")
    kinds = {type(m).__module__ for m in model.bert.modules()}
    assert any("quantized" in k for k in kinds)
    assert type(model.classifier) is torch.nn.Linear  # the head is left in fp32
    weight = model.bert.encoder.layer[0].attention.self.query.weight()
    assert weight.qscheme() == torch.per_channel_affine  # one scale per output row, as ORT's
    assert weight.q_per_channel_scales().shape == (weight.shape[0],)
    reference = load_finetuned(source, load_settings(source))
    assert type(reference.bert.encoder.layer[0].attention.self.query) is torch.nn.Linear, \
        "dynamic_int8 must leave the model it was given alone"
    ids, mask = padded(len(VOCAB), 3, 20)
    with torch.no_grad():
        full, small = reference(ids, mask).logits, model(ids, mask).logits
    assert 0 < float((full - small).abs().max()) < 0.1 * float(full.abs().max())
    assert dynamic_int8(reference) is not reference
    data = tmp_path / "rows.txt"
    data.write_text("the film was good .\na bad film .\nred dog ran\n")
    for runtime in ("torch", "torch-int8"):
        assert main(["predict", "--model", str(source), "--input", str(data), "--runtime",
                     runtime, "--output", str(tmp_path / f"{runtime}.jsonl")]) == 0
    first, second = ([json.loads(line) for line in (tmp_path / f"{r}.jsonl").read_text()
                      .splitlines()] for r in ("torch", "torch-int8"))
    assert len(first) == len(second) == 3
    assert all(abs(a["score"] - b["score"]) < 0.2 for a, b in zip(first, second))
