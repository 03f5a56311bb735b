# Two commands do everything on a machine with only Python 3.11: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamp files so a second `make` does not reinstall; they depend on pyproject.toml and on what
# the install compiles (setup.py builds workers/_pump.pyx, the load engine's compiled pump).
BUILT := pyproject.toml setup.py workers/_pump.pyx
$(VENV)/.installed: $(BUILT) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(BUILT) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

# DEMO_ARGS=--prometheus: also judge the app's own p99 from a Prometheus started for the demo.
demo: $(VENV)/.installed
	$(BIN)/slogate demo $(DEMO_ARGS)

# ruff (lint, import order) and mypy (strict on the pure core), configured in pyproject.toml;
# `make test` runs them first, so CI fails on a finding. mypy keeps its cache in .mypy_cache.
LINT = $(BIN)/ruff check . && $(BIN)/mypy

lint: $(VENV)/.installed-test
	$(LINT)

test: $(VENV)/.installed-test test-tools
	$(LINT)
	$(BIN)/python -m pytest

# Debian's prometheus for tests/coordinator/test_custom_metrics.py, installed as the bench installs
# nginx (one apt-get update, then apt-get install -y, as root; nothing when it is there already).
# Where it cannot be installed those tests are skipped and say why.
.PHONY: test-tools
test-tools: $(VENV)/.installed-test
	@$(BIN)/python -c "from bench.install import ensure_debian_tools as ensure; \
	[print(f'make test: {n} missing ({p}): its tests will be skipped') \
	 for n, p in ensure(['prometheus'], print).items()]"

$(VENV)/.installed-bench: $(BUILT) $(VENV)/.installed-test
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $@

# Peers side by side against one local nginx; BENCH_ARGS=--quick for 3 s per client.
bench: $(VENV)/.installed-bench
	$(BIN)/python -m bench $(BENCH_ARGS)

# Request data and response checks against a fixed request (bench/request_data.py): requests per
# CPU-second of one LoadWorker against nginx, in turns; about 30 s with the defaults
.PHONY: bench-data
bench-data: $(VENV)/.installed-bench
	$(BIN)/python -m bench.request_data $(BENCH_DATA_ARGS)

# The coordinator at scale (bench/coordinator_scale.py): 64x600, 1024x600 and 64x3600 worker-windows
# through the supervisor; BENCH_SCALE_ARGS=--full adds 1024x3600 (3.7 M, about 10 minutes here).
.PHONY: bench-scale
bench-scale: $(VENV)/.installed-test
	$(BIN)/python -m bench.coordinator_scale $(BENCH_SCALE_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache .ruff_cache

# The HTML report of a demo run (or of RESULTS=path/results.json), screenshotted by headless
# Chromium into out/report.png, with out/report.html beside it; fails if the page logs errors.
.PHONY: report-screenshot
report-screenshot: $(VENV)/.installed
	$(BIN)/python scripts/report_screenshot.py --out out/report.png $(RESULTS)
