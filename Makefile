# Two commands for a fresh machine: `make run` (the product; the demo without a key config) and `make test`.
VENV ?= .venv
PYTHON ?= python3

.PHONY: run test lint install-scale screenshots bench-collector bench-anomalies bench-pages bench-scale clean-demo

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

# The optional distributed engine (`--engine dask`); the tests need it, the product runs without it.
$(VENV)/.installed-scale: $(VENV)/.installed requirements-scale.txt
	$(VENV)/bin/pip install --quiet -r requirements-scale.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-scale requirements-dev.txt
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

install-scale: $(VENV)/.installed-scale

run: $(VENV)/.installed
	bash scripts/run.sh

test: $(VENV)/.installed-dev
	bash scripts/test.sh

# Every page of the demo world in Chromium at 1,400 px, into docs/screenshots/ (the README shows them).
screenshots: $(VENV)/.installed-dev
	bash scripts/chromium.sh
	$(VENV)/bin/python scripts/screenshots.py

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench-collector: $(VENV)/.installed
	$(VENV)/bin/python scripts/bench_collector.py

bench-anomalies: $(VENV)/.installed
	$(VENV)/bin/python ../shared/tools/nab_score.py --detector analytics.anomalies:spike_scores --reference --strict-causal
	$(VENV)/bin/python scripts/bench_anomalies_sim.py
	$(VENV)/bin/python scripts/bench_anomalies_sim.py --skip-scale --coverage-days 3
	$(VENV)/bin/python scripts/bench_anomalies_sim.py --skip-scale --all

SCALE_DB ?= /tmp/scale.duckdb
bench-pages: $(VENV)/.installed
	test -f $(SCALE_DB) || $(VENV)/bin/python -m simulator.scale --keys 1000 --days 90 --now 2026-11-20T12:00:00Z --db $(SCALE_DB)
	# what the collector does after each collection: findings, incidents, reconciliation, review, stored once
	$(VENV)/bin/python -m collectors refresh --db $(SCALE_DB) --now 2026-11-20T12:00:00Z
	$(VENV)/bin/python scripts/bench_pages_scale.py --db $(SCALE_DB)

# first collection, no-change cycle, refresh and pages cold at 1,000 and 10,000 keys side by side (~15 min)
bench-scale: $(VENV)/.installed
	$(VENV)/bin/python scripts/bench_scale.py --keys 1000 10000 --latency-ms 50

clean-demo:
	rm -rf data/demo
