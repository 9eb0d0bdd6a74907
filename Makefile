# Every target installs what it needs: a fresh clone needs only python3 (3.11+) and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install lint typecheck test demo bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy functions/stop_campaign campaign_stop_cli

test: lint typecheck
	$(BIN)/pytest

demo: install
	$(BIN)/python -m devtools.demo $(DEMO_ARGS)

bench: install
	$(BIN)/python -m devtools.bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .aws-sam
