"""The README's pictures of ``plm serve``: serve real checkpoints, drive the page in headless
Debian Chromium (Playwright pointed at the system browser) and keep one screenshot per view.

    python docs/screenshots.py --mlm runs/budget --encoder MINILM_DIR --classify runs/pol \
        --ner runs/ner --qa runs/qa --gpt runs/gpt --translate runs/mt --output docs

Every model is optional; a view is drawn for each one given. Chinese text needs a CJK font in the
system (Debian: ``apt-get install -y fonts-wqy-zenhei``), or the NER view shows empty boxes. The pictures are only as meaningful as
the checkpoints: the browser tests (``tests/test_serve_browser.py``) assert on the same DOM with tiny
models built in the test, this script shows what trained ones answer.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

# What each view types, and the selector that says the answer is drawn.
FILL_TEXT = "The first letter of the English [MASK] is A."
ATTENTION_TEXT = "The cat sat on the mat because it was tired."
CLASSIFY_TEXT = "a gorgeous, witty, seductive movie that I would happily watch again"
NER_TEXT = "国务院总理李鹏今天在北京会见了来自日本东京的代表团。"
QA_QUESTION = "What word means: move fast by using one's feet?"  # WordNet QA's kind of question
QA_CONTEXT = "Every morning the children run to the park before school."
GENERATE_PROMPT = "The cat"
TRANSLATE_TEXT = "A man is playing a guitar."
EMBED_TEXT = "A man is playing a guitar.\nSomeone plays an instrument.\nThe stock market fell today."


class Shooter:
    """Opens one model's tab, fills it, waits for the answer, keeps ``serve-<name>.png``."""

    def __init__(self, page, base: str, output: Path) -> None:
        self.page, self.base, self.output = page, base, output

    def open(self, model: str, tab: str) -> None:
        self.page.goto(f"{self.base}/?model={model}&tab={tab}")
        self.page.wait_for_selector(f"nav button[data-endpoint='{tab}'].active")

    def keep(self, name: str) -> None:
        path = self.output / f"serve-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        print(f"wrote {path}")

    def fill_mask(self, model: str) -> None:
        self.open(model, "fill-mask")
        self.page.fill("#fill-input", "")
        self.page.type("#fill-input", FILL_TEXT)
        self.page.wait_for_function(
            f"document.querySelector('#fill-results').dataset.text === {FILL_TEXT!r}")
        self.keep("fill-mask")

    def attention(self, model: str, name: str, text: str = ATTENTION_TEXT,
                  hover: int = 7, heads: bool = False) -> None:
        self.open(model, "attention")
        self.page.fill("#att-input", text)
        self.page.click("#att-run")
        self.page.wait_for_selector("#att-view svg line.att-line", state="attached")
        if self.page.is_visible("#att-layer"):
            layers = self.page.eval_on_selector_all("#att-layer option", "os => os.length")
            self.page.select_option("#att-layer", str(max(0, layers // 2)))
        self.page.hover(f"#att-view text.att-token[data-side='query'][data-index='{hover}']")
        self.keep(name)
        if heads:
            self.page.select_option("#att-head", "all")
            self.page.wait_for_selector("#att-view figure.att-mini")
            self.keep(f"{name}-heads")

    def form(self, model: str, tab: str, fields: dict[str, str], button: str, ready: str,
             name: str | None = None) -> None:
        """Fill ``fields`` (selector → text), press ``button``, wait until the JS expression
        ``ready`` holds, keep the picture."""
        self.open(model, tab)
        for selector, text in fields.items():
            self.page.fill(selector, text)
        self.page.click(button)
        self.page.wait_for_function(ready, timeout=120_000)
        self.keep(name or tab)


def has_text(selector: str) -> str:
    return f"document.querySelector('{selector}').textContent.length > 0"


# view name → (tab, fields, button, ready): the forms that differ only in what they type
FORMS = {
    "classify": ("classify", {"#cls-input": CLASSIFY_TEXT}, "#cls-run",
                 "document.querySelectorAll('#cls-output .bar').length > 0"),
    "ner": ("ner", {"#ner-input": NER_TEXT}, "#ner-run", has_text("#ner-output")),
    "qa": ("qa", {"#qa-question": QA_QUESTION, "#qa-context": QA_CONTEXT}, "#qa-run",
           has_text("#qa-score")),
    "gpt": ("generate", {"#gen-prompt": GENERATE_PROMPT, "#gen-temperature": "0.8",
                         "#gen-max": "60"}, "#gen-run",
            "document.querySelector('#gen-output').dataset.done === '1'"),
    "translate": ("translate", {"#tr-input": TRANSLATE_TEXT}, "#tr-run", has_text("#tr-output")),
    "encoder": ("embed", {"#emb-input": EMBED_TEXT}, "#emb-run",
                "document.querySelectorAll('#emb-output td').length > 0"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for flag, what in [("--mlm", "a masked-LM BERT: fill-mask and attention"),
                       ("--encoder", "a bare encoder (MiniLM): embed and the attention head grid"),
                       ("--classify", "a fine-tuned classifier"), ("--ner", "a fine-tuned tagger"),
                       ("--qa", "a fine-tuned span-QA model"), ("--gpt", "a GPT"),
                       ("--translate", "a translation Transformer: translate and cross-attention")]:
        parser.add_argument(flag, type=Path, help=what)
    parser.add_argument("--output", type=Path, default=Path("docs"))
    args = parser.parse_args(argv)
    models = {name: getattr(args, name) for name in
              ("mlm", "encoder", "classify", "ner", "qa", "gpt", "translate")
              if getattr(args, name) is not None}
    if not models:
        parser.error("give at least one model (--mlm, --encoder, --classify, ...)")
    browser_path = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser_path is None:
        parser.error("Debian's chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    args.output.mkdir(parents=True, exist_ok=True)
    from plmkit.serve.launch import start_serve

    process, base = start_serve([f"{name}={folder}" for name, folder in models.items()],
                                args.output / "screenshots-serve.log", timeout=300)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=browser_path, headless=True,
                                                 args=["--no-sandbox"])
            page = browser.new_context(viewport={"width": 1100, "height": 760}).new_page()
            shoot = Shooter(page, base, args.output)
            if "mlm" in models:
                shoot.fill_mask("mlm")
                shoot.attention("mlm", "attention-ours")
            if "encoder" in models:
                shoot.attention("encoder", "attention", heads=True)
            for name, (tab, fields, button, ready) in FORMS.items():
                if name in models:
                    shoot.form(name, tab, fields, button, ready)
            if "translate" in models:
                shoot.attention("translate", "attention-cross", text=TRANSLATE_TEXT, hover=2)
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=60)
    (args.output / "screenshots-serve.log").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
