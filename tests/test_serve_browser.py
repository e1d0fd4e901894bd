"""The page in a real browser: headless Debian Chromium (driven by Playwright, pointed at the
system browser), against ``plm serve`` started here on a free loopback port with real small
checkpoints (MiniLM and tiny models built in the test). Types, clicks and reads the DOM: the
fill-mask bars, the highlighted entities, the QA answer, the streamed tokens, an attention head's
SVG lines. ``PLMKIT_SCREENSHOTS=DIR`` keeps a screenshot of each view with these tiny models (the
README's pictures come from trained ones, through ``docs/screenshots.py``). Then SIGTERM: the
server exits 0.

Skips only when Chromium or Playwright is absent; ``make test`` installs both.
"""

from __future__ import annotations

import os
import shutil
import signal
import urllib.request
from pathlib import Path

import pytest

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser")
                 if shutil.which(name)), None)
if CHROMIUM is None:
    pytest.skip("Debian's chromium is not installed (make test installs it)",
                allow_module_level=True)

from _serve_models import build_models  # noqa: E402

from plmkit.errors import PlmError  # noqa: E402
from plmkit.serve.launch import start_serve  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory, minilm_dir):
    folders = build_models(tmp_path_factory.mktemp("browser-models"))
    log = tmp_path_factory.mktemp("server-log") / "serve.log"
    arguments = [f"minilm={minilm_dir}", f"mlm={folders['mlm']}", f"ner={folders['ner']}",
                 f"qa={folders['qa']}", f"sentiment={folders['sentiment']}",
                 f"gpt={folders['gpt']}", f"mt={folders['mt']}", "--threads", "1"]
    try:
        process, base = start_serve(arguments, log, timeout=120)
    except PlmError as error:
        pytest.fail(str(error))
    yield {"base": base, "process": process, "log": log}
    if process.poll() is None:
        process.kill()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    outside: list[str] = []
    opened.on("request", lambda request: outside.append(request.url)
              if not request.url.startswith(server["base"]) else None)
    yield opened
    context.close()
    assert errors == [], errors
    assert outside == [], f"the page fetched from elsewhere: {outside}"


def screenshot(page, name: str) -> None:
    folder = os.environ.get("PLMKIT_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"serve-{name}.png"), full_page=True)


def open_tab(page, server, model: str, tab: str) -> None:
    page.goto(f"{server['base']}/?model={model}&tab={tab}")
    page.wait_for_selector(f"nav button[data-endpoint='{tab}'].active")


def test_fill_mask_bars_update_as_the_user_types(page, server):
    open_tab(page, server, "mlm", "fill-mask")
    box = page.locator("#fill-input")
    box.fill("")
    box.type("the cat [MASK] on the mat")
    page.wait_for_function("document.querySelector('#fill-results').dataset.text === "
                           "'the cat [MASK] on the mat'")
    assert page.locator("#fill-results .bar").count() == 5
    tokens = page.eval_on_selector_all("#fill-results .bar", "bars => bars.map(b => b.dataset.token)")
    scores = page.eval_on_selector_all("#fill-results .bar",
                                       "bars => bars.map(b => parseFloat(b.dataset.score))")
    expected = sync_json(server, "/v1/models/mlm/fill-mask", {"text": "the cat [MASK] on the mat"})
    assert tokens == [p["token"] for p in expected["masks"][0]]
    assert scores == sorted(scores, reverse=True) and 0 < scores[0] <= 1
    screenshot(page, "fill-mask")


def test_ner_highlights_entities_inline(page, server):
    open_tab(page, server, "ner", "ner")
    page.fill("#ner-input", "张三住在北京")
    page.click("#ner-run")
    page.wait_for_function("document.querySelector('#ner-output').textContent.length > 0")
    expected = sync_json(server, "/v1/models/ner/ner", {"texts": ["张三住在北京"]})["results"][0]
    marks = page.eval_on_selector_all("#ner-output mark.entity",
                                      "ms => ms.map(m => [m.dataset.type, m.firstChild.textContent])")
    assert marks == [[e["type"], e["text"]] for e in expected["entities"]]
    text = page.inner_text("#ner-output")
    assert all(ch in text for ch in "张三住在北京")
    screenshot(page, "ner")


def test_qa_marks_the_answer_in_the_passage(page, server):
    open_tab(page, server, "qa", "qa")
    context = "the cat sat on the mat ."
    page.fill("#qa-question", "who sat ?")
    page.fill("#qa-context", context)
    page.click("#qa-run")
    page.wait_for_function("document.querySelector('#qa-score').textContent.length > 0")
    expected = sync_json(server, "/v1/models/qa/qa", {"question": "who sat ?",
                                                      "context": context})
    if expected["answer"]:
        assert page.inner_text("#qa-output mark.answer") == expected["answer"]
    assert page.inner_text("#qa-output").replace("\n", "") == context
    screenshot(page, "qa")


def test_classify_shows_label_probabilities(page, server):
    open_tab(page, server, "sentiment", "classify")
    page.fill("#cls-input", "a good film")
    page.click("#cls-run")
    page.wait_for_function("document.querySelectorAll('#cls-output .bar').length === 2")
    labels = page.eval_on_selector_all("#cls-output .row", "rows => rows.map(r => r.dataset.label)")
    assert sorted(labels) == ["neg", "pos"]


def test_generated_tokens_appear_as_they_stream(page, server):
    open_tab(page, server, "gpt", "generate")
    page.fill("#gen-prompt", "the cat")
    page.fill("#gen-temperature", "0")
    page.fill("#gen-max", "8")
    page.click("#gen-run")
    page.wait_for_function("document.querySelector('#gen-output').dataset.done === '1'")
    pieces = page.eval_on_selector_all("#gen-output .token", "ts => ts.map(t => t.textContent)")
    expected = sync_json(server, "/v1/models/gpt/generate",
                         {"prompt": "the cat", "temperature": 0, "max_new_tokens": 8,
                          "stream": False})
    assert 1 <= len(pieces) <= 8 and "".join(pieces) == expected["text"]
    screenshot(page, "generate")


def test_attention_head_view_draws_weighted_lines_and_a_head_grid(page, server):
    open_tab(page, server, "minilm", "attention")
    page.fill("#att-input", "the cat sat on the mat")
    page.click("#att-run")
    page.wait_for_selector("#att-view svg line.att-line", state="attached")
    tokens = page.eval_on_selector_all("#att-view text.att-token[data-side='query']",
                                       "ts => ts.map(t => t.textContent)")
    assert tokens == ["[CLS]", "the", "cat", "sat", "on", "the", "mat", "[SEP]"]
    weights = page.eval_on_selector_all("#att-view line.att-line",
                                        "ls => ls.map(l => parseFloat(l.dataset.weight))")
    assert all(0 < w <= 1 for w in weights)
    expected = sync_json(server, "/v1/models/minilm/attention", {"text": "the cat sat on the mat"})
    row = expected["attentions"][0][0][2]  # layer 0, head 0, query "cat"
    drawn = page.eval_on_selector_all(
        "#att-view line.att-line[data-from='2']",
        "ls => ls.map(l => [parseInt(l.dataset.to), parseFloat(l.dataset.weight)])")
    assert {k: pytest.approx(w, abs=1e-4) for k, w in drawn} == \
        {k: pytest.approx(w, abs=1e-4) for k, w in enumerate(row) if w >= 0.02}
    page.hover("#att-view text.att-token[data-side='query'][data-index='2']")
    dimmed = page.eval_on_selector_all("#att-view line.att-line.dim",
                                       "ls => ls.every(l => l.dataset.from !== '2')")
    assert dimmed
    screenshot(page, "attention")
    page.select_option("#att-head", "all")
    page.wait_for_selector("#att-view figure.att-mini")
    assert page.locator("#att-view figure.att-mini").count() == 12  # MiniLM: 12 heads
    screenshot(page, "attention-heads")


def sync_json(server, path: str, body: dict) -> dict:
    import json

    request = urllib.request.Request(server["base"] + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def test_cross_attention_joins_target_tokens_to_source_tokens(page, server):
    """The Transformer's attention tab: a view picker (cross, encoder, decoder), the translation,
    and query tokens from the target on the left, key tokens from the source on the right."""
    open_tab(page, server, "mt", "attention")
    page.fill("#att-input", "the cat sleeps")
    page.click("#att-run")
    page.wait_for_selector("#att-view svg text.att-token", state="attached")
    expected = sync_json(server, "/v1/models/mt/attention", {"text": "the cat sleeps"})
    assert page.is_visible("#att-kind")
    names = page.eval_on_selector_all("#att-kind option", "os => os.map(o => o.textContent)")
    assert names == [view["name"] for view in expected["views"]]
    cross, encoder = expected["views"][0], expected["views"][1]

    def column(side: str) -> list[str]:
        return page.eval_on_selector_all(f"#att-view text.att-token[data-side='{side}']",
                                         "ts => ts.map(t => t.textContent)")

    assert column("query") == cross["queries"] and column("key") == cross["keys"]
    assert expected["translation"] in page.inner_text("#att-translation")
    page.select_option("#att-kind", "1")
    page.wait_for_function("document.querySelectorAll(\"#att-view text[data-side='query']\")"
                           f".length === {len(encoder['queries'])}")
    assert column("query") == column("key") == encoder["queries"]
    screenshot(page, "attention-cross")


def test_gpt_attention_draws_no_line_to_a_later_token(page, server):
    open_tab(page, server, "gpt", "attention")
    assert not page.is_visible("#att-kind")  # one view: no picker
    page.fill("#att-input", "the cat sat")  # the test GPT reads 16 characters at most
    page.click("#att-run")
    page.wait_for_selector("#att-view svg line.att-line", state="attached")
    pairs = page.eval_on_selector_all(
        "#att-view line.att-line", "ls => ls.map(l => [parseInt(l.dataset.from), "
        "parseInt(l.dataset.to)])")
    assert pairs and all(key <= query for query, key in pairs)


# Last: it stops the module's server.
def test_sigterm_finishes_and_exits_zero(server):
    process = server["process"]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
