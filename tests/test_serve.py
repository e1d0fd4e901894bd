"""``plm serve``'s app: every endpoint on real (small) checkpoints, dynamic batching, limits and
bad input as JSON errors, auth, metrics — through the ASGI app in this process."""

from __future__ import annotations

import asyncio
import json

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from _serve_models import build_models  # noqa: E402
from plmkit.errors import PlmError  # noqa: E402
from plmkit.serve import ServeSettings, create_app, load_served  # noqa: E402


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return build_models(tmp_path_factory.mktemp("served"))


@pytest.fixture(scope="module")
def served(folders):
    return {name: load_served(name, folder) for name, folder in folders.items()}


@pytest.fixture
def client(served):
    with TestClient(create_app(served, ServeSettings(max_wait_ms=2))) as test_client:
        yield test_client


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]


def test_each_folder_serves_what_its_files_say(served):
    kinds = {name: model.kind for name, model in served.items()}
    assert kinds == {"mlm": "fill-mask", "encoder": "embed", "sentiment": "classify",
                     "ner": "tag", "qa": "qa", "gpt": "generate", "mt": "translate"}


def test_models_health_and_openapi(client):
    listed = client.get("/v1/models").json()["data"]
    assert {m["id"] for m in listed} == {"mlm", "encoder", "sentiment", "ner", "qa", "gpt", "mt"}
    assert client.get("/health").json()["status"] == "ok"
    schema = client.get("/openapi.json").json()
    assert "/v1/models/{name}/fill-mask" in schema["paths"] and "/v1/embeddings" in schema["paths"]


def test_fill_mask_matches_the_pipeline(client, folders):
    from plmkit.pipelines import pipeline

    response = client.post("/v1/models/mlm/fill-mask", json={"text": "the cat [MASK] on the mat",
                                                              "top_k": 3})
    assert response.status_code == 200
    [predictions] = response.json()["masks"]
    expected = pipeline("fill-mask", model=folders["mlm"])("the cat [MASK] on the mat", top_k=3)[0]
    assert [p["token"] for p in predictions] == [p.token for p in expected]
    assert predictions[0]["score"] == pytest.approx(expected[0].score, abs=1e-5)


def test_embeddings_ours_and_openai_shape(client):
    ours = client.post("/v1/models/encoder/embed", json={"texts": ["a cat", "a dog"]}).json()
    assert ours["dimensions"] == 32 and len(ours["embeddings"]) == 2
    openai = client.post("/v1/embeddings", json={"model": "encoder", "input": ["a cat", "a dog"]})
    body = openai.json()
    assert body["object"] == "list" and body["data"][1]["index"] == 1
    assert body["data"][0]["embedding"] == pytest.approx(ours["embeddings"][0], abs=1e-5)
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0
    single = client.post("/v1/embeddings", json={"model": "encoder", "input": "a cat"}).json()
    assert len(single["data"]) == 1


def test_classify_ner_qa_translate_attention(client):
    result = client.post("/v1/models/sentiment/classify",
                         json={"texts": ["a good film", "a bad film"]}).json()["results"]
    assert len(result) == 2 and set(result[0]["scores"]) == {"neg", "pos"}
    assert sum(result[0]["scores"].values()) == pytest.approx(1.0)
    tagged = client.post("/v1/models/ner/ner", json={"texts": ["张三住在北京"]}).json()["results"]
    assert len(tagged[0]["tags"]) == len(tagged[0]["tokens"]) == 6
    answer = client.post("/v1/models/qa/qa", json={"question": "who sat ?",
                                                   "context": "the cat sat on the mat ."}).json()
    assert {"answer", "score", "start", "end"} <= set(answer)
    translated = client.post("/v1/models/mt/translate",
                             json={"texts": ["the cat sleeps"], "beam_size": 2}).json()
    assert isinstance(translated["translations"][0], str)
    seen = client.post("/v1/models/mlm/attention", json={"text": "the cat sat"}).json()
    assert seen["tokens"] == ["[CLS]", "the", "cat", "sat", "[SEP]"]
    layers = seen["attentions"]
    assert len(layers) == 2 and len(layers[0]) == 2 and len(layers[0][0]) == 5
    assert sum(layers[1][1][2]) == pytest.approx(1.0, abs=1e-3)  # each query's weights sum to 1


def test_generate_streams_server_sent_events(client):
    with client.stream("POST", "/v1/models/gpt/generate",
                       json={"prompt": "the cat", "max_new_tokens": 5, "temperature": 0}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [e for e in r.read().decode().split("\n\n") if e]
    pieces = [json.loads(e[6:])["text"] for e in events if e.startswith("data: {\"text")]
    assert events[-1].startswith("event: done") and 1 <= len(pieces) <= 5
    whole = client.post("/v1/models/gpt/generate", json={"prompt": "the cat", "max_new_tokens": 5,
                                                         "temperature": 0, "stream": False})
    assert whole.json()["text"] == "".join(pieces)  # greedy: the same continuation


@pytest.mark.parametrize("path,body,status,field", [
    ("/v1/models/mlm/fill-mask", {"text": "no mask here"}, 422, "text"),
    ("/v1/models/mlm/fill-mask", {"text": "the [MASK]", "top_k": 0}, 422, "top_k"),
    ("/v1/models/mlm/fill-mask", {"text": 5}, 422, "text"),
    ("/v1/models/mlm/fill-mask", {"text": "the [MASK]", "tpo_k": 3}, 422, "tpo_k"),
    ("/v1/models/nowhere/fill-mask", {"text": "the [MASK]"}, 404, "model"),
    ("/v1/models/encoder/fill-mask", {"text": "the [MASK]"}, 404, "endpoint"),
    ("/v1/models/encoder/embed", {"texts": []}, 422, "texts"),
    ("/v1/models/encoder/embed", {"texts": ["the cat " * 100]}, 422, "texts[0]"),
    ("/v1/models/sentiment/classify", {"texts": ["a", "b"], "text_pairs": ["c"]}, 422,
     "text_pairs"),
    ("/v1/models/gpt/generate", {"prompt": "the", "max_new_tokens": 100000}, 422,
     "max_new_tokens"),
    ("/v1/embeddings", {"model": "mlm", "input": []}, 422, "input"),
])
def test_bad_requests_are_json_errors_naming_the_field(client, path, body, status, field):
    response = client.post(path, json=body)
    assert response.status_code == status
    assert error_of(response).get("field") == field
    assert client.get("/health").status_code == 200  # and the server keeps serving


def test_malformed_json_and_oversized_bodies(served):
    with TestClient(create_app(served, ServeSettings(max_body_bytes=200, max_items=3))) as client:
        response = client.post("/v1/models/encoder/embed", content=b"{not json",
                               headers={"content-type": "application/json"})
        assert response.status_code == 400 and "malformed JSON" in error_of(response)["message"]
        response = client.post("/v1/models/encoder/embed", json={"texts": ["x" * 300]})
        assert response.status_code == 413 and error_of(response)["field"] == "body"
        response = client.post("/v1/models/encoder/embed", json={"texts": ["a"] * 4})
        assert response.status_code == 413 and error_of(response)["field"] == "texts"


def test_api_key_guards_the_api_but_not_the_page(served):
    with TestClient(create_app(served, ServeSettings(api_key="s3cret"))) as client:
        assert client.get("/v1/models").status_code == 401
        assert client.get("/metrics").status_code == 401
        wrong = client.get("/v1/models", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and error_of(wrong)["field"] == "authorization"
        ok = client.get("/v1/models", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert client.get("/").status_code == 200 and client.get("/health").status_code == 200


def test_the_page_is_served_offline(client):
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    for name in ("app.js", "style.css"):
        asset = client.get(f"/static/{name}")
        assert asset.status_code == 200 and "http://" not in asset.text.replace(
            "http://www.w3.org/2000/svg", "")
    assert "https://" not in page.text  # no CDN, no external fonts
    assert client.get("/static/../app.py").status_code == 404
    assert client.get("/static/app.py").status_code == 404


async def _concurrent(app, requests: int, path: str, body: dict) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await asyncio.gather(*(client.post(path, json=body) for _ in range(requests)))


def test_concurrent_requests_share_forward_passes(served):
    app = create_app(served, ServeSettings(max_batch_size=16, max_wait_ms=50))
    responses = asyncio.run(_concurrent(app, 12, "/v1/models/sentiment/classify",
                                        {"texts": ["a good film"]}))
    assert all(r.status_code == 200 for r in responses)
    scores = {round(r.json()["results"][0]["score"], 5) for r in responses}
    assert len(scores) == 1  # batched with others or not, the same answer
    metrics = app.state.metrics_text()
    sizes = [line for line in metrics.splitlines()
             if line.startswith('plm_batch_size_count{model="sentiment"}')]
    batches = float(sizes[0].split()[-1])
    assert batches < 12  # fewer forward passes than requests


def test_a_full_queue_is_a_fast_503_with_retry_after(served):
    app = create_app(served, ServeSettings(max_batch_size=1, max_wait_ms=1, max_queue=1))
    responses = asyncio.run(_concurrent(app, 12, "/v1/models/sentiment/classify",
                                        {"texts": ["a good film"]}))
    statuses = sorted(r.status_code for r in responses)
    assert 503 in statuses and 200 in statuses
    busy = next(r for r in responses if r.status_code == 503)
    assert busy.headers["retry-after"] == "1" and "busy" in error_of(busy)["message"]


def test_metrics_count_requests(client):
    client.post("/v1/models/encoder/embed", json={"texts": ["a cat"]})
    text = client.get("/metrics").text
    assert 'plm_requests_total{endpoint="embed",model="encoder",status="200"}' in text
    assert "plm_request_latency_seconds_bucket" in text and "plm_queue_depth" in text


def test_an_unservable_folder_is_refused_at_start(tmp_path, folders, capsys):
    from plmkit.cli import main

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(PlmError, match="model_type"):
        load_served("broken", broken)
    assert main(["serve", str(broken), "--port", "1"]) == 2
    assert "model_type" in capsys.readouterr().err
    assert main(["serve", f"a={folders['mlm']}", f"a={folders['encoder']}", "--port", "1"]) == 2
    assert "two models are named" in capsys.readouterr().err


def test_attention_of_a_gpt_and_of_the_transformer(client):
    """GPT's map is causal; the Transformer's answer has its translation and three views: cross
    (target tokens → source tokens), encoder self- and decoder masked self-attention."""
    seen = client.post("/v1/models/gpt/attention", json={"text": "the cat sat"}).json()
    [view] = seen["views"]
    assert view["queries"] == view["keys"] == seen["tokens"] and len(seen["tokens"]) >= 1
    for layer in seen["attentions"]:
        for head in layer:
            for q, row in enumerate(head):
                assert sum(row) == pytest.approx(1.0, abs=1e-3)
                assert all(w == 0 for w in row[q + 1:])  # nothing looks ahead
    seen = client.post("/v1/models/mt/attention", json={"text": "the cat sleeps"}).json()
    translated = client.post("/v1/models/mt/translate",
                             json={"texts": ["the cat sleeps"], "beam_size": 1}).json()
    assert seen["translation"] == translated["translations"][0]
    cross, encoder, decoder = seen["views"]
    assert cross["name"].startswith("cross") and cross["queries"] == decoder["keys"]
    assert cross["keys"] == encoder["queries"] == encoder["keys"]
    assert encoder["keys"][-1] == "[EOS]" or len(encoder["keys"]) >= 2
    for layer in cross["attentions"]:
        assert len(layer[0]) == len(cross["queries"]) and len(layer[0][0]) == len(cross["keys"])
    assert seen["tokens"] == cross["queries"] and seen["attentions"] == cross["attentions"]


def test_bf16_serving_runs_under_autocast_and_stays_close(folders):
    """``precision="bf16"`` runs every batch under bf16 autocast (in the worker thread, where
    autocast state lives); the probabilities stay within bf16's rounding of fp32's."""
    from fastapi.testclient import TestClient

    from plmkit.serve import ServeSettings, create_app, load_served

    models = {"sentiment": load_served("sentiment", folders["sentiment"])}
    texts = ["a good film", "a bad film", "the cat sat on the mat"]
    answers = {}
    for precision in ("fp32", "bf16"):
        with TestClient(create_app(models, ServeSettings(precision=precision))) as client:
            assert client.get("/health").json()["precision"] == precision
            answers[precision] = client.post("/v1/models/sentiment/classify",
                                             json={"texts": texts}).json()["results"]
    for full, half in zip(answers["fp32"], answers["bf16"]):
        for label, score in full["scores"].items():
            assert half["scores"][label] == pytest.approx(score, abs=0.02)
    assert any(full["scores"] != half["scores"] for full, half in
               zip(answers["fp32"], answers["bf16"]))  # it did compute in bf16


def test_bf16_serving_stores_linears_in_bf16_once_with_the_same_answers(folders):
    """Autocast would cast every linear's weight to bf16 on each request; serving in bf16 stores
    them in bf16 once instead. The products are the same copies autocast makes, so the answers
    equal those of autocast over fp32 weights; weights tied to an embedding stay fp32."""
    import torch
    from fastapi.testclient import TestClient

    from plmkit.precision import store_linears_in_bf16
    from plmkit.serve import ServeSettings, create_app, load_served

    texts = ["a good film", "a bad film", "the cat sat on the mat"]
    reference = load_served("sentiment", folders["sentiment"])
    model = reference.modules[0]
    ids = torch.tensor([[2, 7, 8, 9, 3]])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = model(ids, torch.ones_like(ids)).logits
    served = load_served("sentiment", folders["sentiment"])
    with TestClient(create_app({"sentiment": served}, ServeSettings(precision="bf16"))) as client:
        client.post("/v1/models/sentiment/classify", json={"texts": texts}).raise_for_status()
    stored = served.modules[0]
    stored.bert.shape_buckets = None  # the same (unpadded) shape as the reference
    linears = [m for m in stored.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.dtype == torch.bfloat16 for m in linears)
    assert stored.bert.embeddings.word_embeddings.weight.dtype == torch.float32
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(stored(ids, torch.ones_like(ids)).logits, expected)
    # a masked LM's decoder shares the word embeddings: it stays fp32 with them
    mlm = load_served("mlm", folders["mlm"]).modules[0]
    store_linears_in_bf16(mlm)
    assert mlm.cls.predictions.decoder.weight.dtype == torch.float32
    assert mlm.cls.predictions.decoder.weight is mlm.bert.embeddings.word_embeddings.weight


def test_bert_batches_run_at_a_few_fixed_shapes_with_the_same_answers(folders):
    """The server pads BERT batches to bucket shapes (5 texts → 6 rows × a multiple of 16
    tokens), so a long run meets a few dozen shapes; the answers equal unbucketed serving.
    ``shape_buckets=False`` runs each batch at its own shape."""
    import torch

    from plmkit.models.bert import BertModel

    texts = ["a good film", "a bad film", "the cat sat on the mat", "so dull", "fine acting"]
    answers, shapes = {}, {}
    for buckets in (False, True):
        served = load_served("sentiment", folders["sentiment"])
        app = create_app({"sentiment": served}, ServeSettings(shape_buckets=buckets,
                                                               max_wait_ms=50))
        [encoder] = [m for m in served.modules[0].modules() if isinstance(m, BertModel)]
        assert (encoder.shape_buckets is not None) == buckets
        seen = shapes.setdefault(buckets, [])
        encoder.embeddings.register_forward_hook(lambda m, i, o, seen=seen: seen.append(o.shape))
        with TestClient(app) as test_client:
            response = test_client.post("/v1/models/sentiment/classify", json={"texts": texts})
        answers[buckets] = [r["scores"] for r in response.json()["results"]]
    assert shapes[True] == [torch.Size([6, 16, 32])]
    assert shapes[False][0][0] == 5 and shapes[False][0][1] < 16
    for plain, bucketed in zip(answers[False], answers[True]):
        assert bucketed == pytest.approx(plain, abs=1e-5)


def test_the_screenshot_script_asks_for_a_model():
    """docs/screenshots.py (the README's pictures) refuses to run with nothing to show."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parent.parent / "docs" / "screenshots.py"
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "give at least one model" in result.stderr


def test_start_serve_says_why_a_server_did_not_come_up(tmp_path):
    """plmkit.serve.launch: a child `plm serve` that exits (here: a folder that is not there)
    is an error carrying its own last words, not a wait until the timeout."""
    from plmkit.errors import PlmError
    from plmkit.serve.launch import start_serve

    missing = tmp_path / "no-such-model"
    with pytest.raises(PlmError, match="exited with code 2") as raised:
        start_serve([str(missing)], tmp_path / "serve.log", timeout=60)
    assert "no-such-model" in str(raised.value)
