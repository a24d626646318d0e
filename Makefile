# The two set-up commands of the README: `make run` (mini benchmark) and `make test` (ruff, then pytest).
# Both build .venv on first use; torch/torchvision are pinned (pyproject) so pip takes the local wheels.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $(STAMP)

.PHONY: install run test
install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/unlearn-bench run

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -q
