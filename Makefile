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

# torch is pinned: an unpinned torch pulls a multi-GB CUDA build on this kind of machine.
$(STAMP_RUN): pyproject.toml | $(PY)
	$(PIP) install --quiet "torch==2.13.0"
	$(PIP) install --quiet -e .
	touch $@

$(STAMP_TEST): $(STAMP_RUN) pyproject.toml
	$(PIP) install --quiet "torch==2.13.0" -e ".[test]"
	touch $@

venv: $(STAMP_RUN)

demo: $(STAMP_RUN)
	$(VENV)/bin/plm demo --output runs/demo
	$(PY) benchmarks/pretraining_pays.py --quick --fractions 1.0 --pretrained runs/demo/mini-bert --output runs/demo/pretraining-pays

test: $(STAMP_TEST)
	$(PY) -m pytest -q

bench: $(STAMP_TEST)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
