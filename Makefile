# opsdesk: `make run` to start it, `make test` to check it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ASSETS := src/opsdesk/web/static/vendor/.built

.PHONY: install assets run test lint typecheck pytest browser clean

install: $(STAMP) $(ASSETS)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# Third-party browser files come from the npm registry (pinned by package-lock.json), never a CDN.
$(ASSETS): frontend/package.json frontend/package-lock.json frontend/build.mjs
	cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build
	touch $(ASSETS)

assets: $(ASSETS)

run: install
	$(BIN)/opsdesk db upgrade
	$(BIN)/opsdesk serve

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: install
	$(BIN)/python -m pytest

test: lint typecheck pytest

clean:
	rm -rf $(VENV) frontend/node_modules src/opsdesk/web/static/vendor
