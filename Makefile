# Two commands from a fresh clone: `make plan` (offline plan of staging) and `make test`.
PYTHON ?= python3
VENV   := venv
PY     := $(VENV)/bin/python
STACK  ?= staging
OUT    ?= out

.PHONY: plan test unit integration lint typecheck bench mutation system-deps clean

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

## plan: offline plan of $(STACK) (default staging): tree on stdout, manifests and plan.json under out/$(STACK)
plan: $(VENV)/.installed
	$(PY) -m components plan --stack $(STACK) --out $(OUT)/$(STACK)

## test: system packages (as root), lint, types, then every test (unit and integration)
test: system-deps $(VENV)/.installed lint typecheck
	$(PY) -m pytest

unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit tests/app

integration: system-deps $(VENV)/.installed
	$(PY) -m pytest -m integration

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check components tests benchmarks policy app __main__.py
	$(VENV)/bin/ruff format --check components

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

bench: $(VENV)/.installed
	$(PY) benchmarks/plan.py

## mutation: mutation score per module against its unit tests (mutmut 3; minutes; not part of `make test`)
mutation: $(VENV)/.installed
	$(PY) scripts/mutation.py

system-deps:
	./scripts/install-system-deps.sh

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .mypy_cache .ruff_cache
