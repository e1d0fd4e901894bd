# Every target installs what it needs into .venv itself, idempotently.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP_RUN  := $(VENV)/.stamp-run
STAMP_TEST := $(VENV)/.stamp-test

.PHONY: demo test bench venv clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# The package asks for torch>=2.5; here torch is pinned, and repeated in the same pip command as
# plmkit itself, so resolving plmkit's dependencies can never swap in another torch: on this kind
# of machine `torch==2.13.0` is a local CPU wheel, while an unpinned torch is a multi-GB CUDA
# build. [fast] adds numba for word2vec's kernel.
TORCH ?= torch==2.13.0

$(STAMP_RUN): pyproject.toml | $(PY)
	$(PIP) install --quiet "$(TORCH)"
	$(PIP) install --quiet "$(TORCH)" -e ".[fast]"
	touch $@

$(STAMP_TEST): $(STAMP_RUN) pyproject.toml
	$(PIP) install --quiet "$(TORCH)" -e ".[fast,test]"
	touch $@

venv: $(STAMP_RUN)

demo: $(STAMP_RUN)
	$(VENV)/bin/plm demo --output runs/demo
	$(PY) benchmarks/pretraining_pays.py --quick --fractions 1.0 --pretrained runs/demo/mini-bert --output runs/demo/pretraining-pays

# The browser tests (tests/test_serve_browser.py) drive Debian's Chromium through Playwright
# pointed at the system browser (Playwright's own browser download cannot run here). Installed
# with apt when we are root and it is missing; otherwise those tests say why they skip.
STAMP_BROWSER := $(VENV)/.stamp-chromium

$(STAMP_BROWSER): | $(PY)
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && \
	  { apt-get install -y -q chromium >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; }; }; } || \
	  echo "note: chromium is not installed and we are not root: the browser tests will skip"
	touch $@

test: $(STAMP_TEST) $(STAMP_BROWSER)
	$(PY) -m pytest -q

bench: $(STAMP_TEST)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
