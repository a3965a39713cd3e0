# civicflow: one-command set-up on a machine with Python 3.11 and make.
# Everything is installed into .venv from requirements.lock; data lives in .local/.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
CIVICFLOW := $(BIN)/python -m civicflow.cli
# uv installs the lock in parallel; pip took three times as long on a 2-core machine.
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml Makefile | cksum | cut -d' ' -f1)

# Bytecode is written on first import rather than compiled for every installed file at install
# time: the runs import under half of the environment's 10,000 modules (pandas' own tests,
# most of scipy and phonenumbers' metadata never), so this halves the compiling.
unexport PYTHONDONTWRITEBYTECODE

.DEFAULT_GOAL := help
.PHONY: help install demo test lint browser format airflow warehouse-url db-stop expectations dictionary report lock bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "civicflow needs Python 3.11 (set PYTHON=...)")' >&2
	@test -x $(BIN)/python || $(PYTHON) -m venv --without-pip $(VENV) >&2
	@test -x $(BIN)/uv || $(PYTHON) -m pip --python $(BIN)/python install --quiet --disable-pip-version-check uv==$(UV_VERSION) >&2
	@echo "installing pinned dependencies into $(VENV) (a few minutes the first time)" >&2
	@$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.lock >&2
	@$(BIN)/python -c 'import site, pathlib; pathlib.Path(site.getsitepackages()[0], "civicflow.pth").write_text(str(pathlib.Path("plugins").resolve()) + "\n")'
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)  ## create .venv and install everything pinned

demo: $(STAMP)  ## run the ingest DAGs once on an embedded PostgreSQL and the feed simulator
	$(CIVICFLOW) demo

test: lint browser  ## lint, then the whole test suite (what CI runs)
	$(CIVICFLOW) expectations --check
	$(BIN)/pytest

lint: $(STAMP)  ## ruff check and format check only
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The report's browser test drives Debian's chromium through Playwright; Playwright's own
# browser downloads are never used. CIVICFLOW_CHROMIUM may name another chromium binary.
browser:  ## install Debian's chromium for the browser tests (once)
	@chromium="$${CIVICFLOW_CHROMIUM:-$$(command -v chromium || true)}"; \
	if [ -n "$$chromium" ] && [ -x "$$chromium" ] && fc-list :lang=zh family 2>/dev/null | grep -q .; then \
		echo "browser: $$chromium"; \
	else \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		echo "installing Debian's chromium and fonts (CJK included) for the browser tests" >&2; \
		$$sudo apt-get update -qq && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			chromium fonts-dejavu-core fonts-wqy-zenhei >&2; \
	fi

format: $(STAMP)  ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

airflow: $(STAMP)  ## Airflow UI at http://localhost:8080 on the embedded database (Ctrl-C stops)
	$(CIVICFLOW) airflow standalone

warehouse-url: $(STAMP)  ## print the warehouse's PostgreSQL URL (starts the embedded server)
	@$(CIVICFLOW) db url

db-stop: $(STAMP)  ## stop the embedded PostgreSQL server
	$(CIVICFLOW) db stop

expectations: $(STAMP)  ## rewrite expectations/ from the feed descriptions
	$(CIVICFLOW) expectations

dictionary: $(STAMP)  ## rewrite docs/data-dictionary.md from the warehouse's comments
	$(CIVICFLOW) dictionary

report: $(STAMP)  ## write the warehouse report (.local/reports/warehouse-report.html)
	$(CIVICFLOW) report

lock:  ## re-pin requirements.lock from requirements.in in a scratch environment
	rm -rf .local/lock-venv && $(PYTHON) -m venv .local/lock-venv
	.local/lock-venv/bin/pip install --quiet -r requirements.in
	.local/lock-venv/bin/pip freeze --exclude-editable | grep -vE '^(pip|setuptools|wheel)==' > requirements.lock

bench: $(STAMP)  ## run the benchmarks in bench/ and write bench/results/
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r bench/requirements.txt
	RUNTIME__DLTHUB_TELEMETRY=false $(BIN)/python bench/run.py $(BENCH_ARGS)

clean:  ## stop the embedded server and remove .local (all local data)
	-$(CIVICFLOW) db stop
	rm -rf .local
