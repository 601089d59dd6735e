# One command to run the chat, one to run the tests. Both set everything up first.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup run test test-fast test-browser browser-deps index clean-venv

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	# torch first, pinned: pip takes the CPU build from the local wheel store.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test,bench,pg]'
	touch $@

setup: $(VENV)/.installed

index: setup
	$(BIN)/python -m rag build docs --index index

run: setup
	$(BIN)/python app.py

test: setup browser-deps
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not browser"

clean-venv:
	rm -rf $(VENV)

browser-deps:
	bash scripts/install_browser.sh

test-browser: setup
	$(BIN)/python -m pytest -q -s -m browser
