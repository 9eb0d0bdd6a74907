# Every target installs what it needs: a fresh clone needs only python3 (3.11+) and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DOCS_STAMP := $(VENV)/.docs-installed-stamp

.PHONY: install lint typecheck docs test demo bench lock clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

# The operator's command line is installed with the project, in .venv/bin: said once per install, with the line
# that puts it on the PATH.
install: $(STAMP)
	@test -f $(VENV)/.path-told || { echo "campaign-stop is $(CURDIR)/$(BIN)/campaign-stop; to run it as campaign-stop:" \
		"export PATH=\"$(CURDIR)/$(BIN):\$$PATH\" (or: source $(BIN)/activate)"; touch $(VENV)/.path-told; }

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy functions/stop_campaign campaign_stop_cli

# The documentation site (docs/, mkdocs.yml): built strictly, so a broken link, a missing page or a snippet
# whose file moved (schemas and sample events are included from their files) fails; the site goes to site/.
$(DOCS_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install -q -e '.[dev,docs]'
	@touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

test: lint typecheck docs
	$(BIN)/pytest

demo: install
	$(BIN)/python -m devtools.demo $(DEMO_ARGS)

bench: install
	$(BIN)/python -m devtools.bench

# The bundle's lock: functions/stop_campaign/requirements.in resolved for the function's runtime (template.yaml:
# python3.12 on arm64), exact versions with the hashes of every file of each release (so x86_64 and aarch64
# wheels both verify). `sam build` reads functions/requirements.txt, the copy at the CodeUri root.
# Upgrades every pin to the newest release the ranges allow; `make lock LOCK_UPGRADE=` keeps the pins that
# still fit (after editing a range).
LOCK_UPGRADE ?= --upgrade
lock: install
	$(BIN)/uv pip compile functions/stop_campaign/requirements.in --quiet --generate-hashes $(LOCK_UPGRADE) \
		--python-version 3.12 --python-platform aarch64-manylinux_2_28 \
		--custom-compile-command 'make lock' --output-file functions/stop_campaign/requirements.txt
	cp functions/stop_campaign/requirements.txt functions/requirements.txt

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .aws-sam
