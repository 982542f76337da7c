# Two commands from a fresh clone: `make plan` (offline plan of staging) and `make test`.
PYTHON ?= python3
VENV   := venv
PY     := $(VENV)/bin/python
STACK  ?= staging
OUT    ?= out
MERMAID := tests/mermaid/node_modules/.package-lock.json

.PHONY: plan test unit integration lint typecheck bench mutation system-deps clean lock engine e2e

# Installs exactly requirements.lock (hash-checked), then the project itself without dependencies.
$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

## lock: re-resolve requirements.lock from requirements.txt and requirements-dev.txt (needs PyPI)
lock: $(VENV)/.installed
	$(PY) -m pip install --quiet "pip-tools>=7.4"
	$(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-find-links \
		--no-emit-index-url --output-file requirements.lock requirements-dev.txt

## plan: offline plan of $(STACK) (default staging): tree on stdout, manifests and plan.json under out/$(STACK)
plan: $(VENV)/.installed
	$(PY) -m components plan --stack $(STACK) --out $(OUT)/$(STACK)

## test: system packages (as root), the real engine's tools, lint, types, then every test (unit,
## integration and the real engine's lifecycle run, tests/integration/test_real_engine.py)
test: system-deps $(VENV)/.installed $(MERMAID) engine lint typecheck
	$(PY) -m pytest

## engine: the real Pulumi CLI, language host, kubernetes provider and a local control plane, built
## from Go modules into a cache outside the repository (docs/engine.md); writes out/engine/env.sh
engine:
	./engine/build.sh

## e2e: the whole lifecycle by the real engine on the local control plane; artefacts in out/e2e
e2e: system-deps $(VENV)/.installed engine
	PYTHONPATH=. $(PY) -m engine.e2e --out $(OUT)/e2e

## Mermaid's own parser, which checks the diagrams of the pull-request comment (tests/mermaid)
$(MERMAID): tests/mermaid/package.json tests/mermaid/package-lock.json
	npm ci --prefix tests/mermaid --no-audit --no-fund --loglevel=error
	touch $@

unit: $(VENV)/.installed $(MERMAID)
	$(PY) -m pytest tests/unit tests/app examples

integration: system-deps $(VENV)/.installed
	$(PY) -m pytest -m integration

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check components engine tests benchmarks policy app examples scripts __main__.py
	$(VENV)/bin/ruff format --check components engine tests benchmarks policy app examples scripts __main__.py

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
	rm -rf $(VENV) $(OUT) tests/mermaid/node_modules .pytest_cache .mypy_cache .ruff_cache
