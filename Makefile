# Two commands for a fresh machine: `make run` (the product; the demo without a key config) and `make test`.
VENV ?= .venv
PYTHON ?= python3

.PHONY: run test lint bench-collector bench-anomalies bench-pages clean-demo

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

run: $(VENV)/.installed
	bash scripts/run.sh

test: $(VENV)/.installed-dev
	bash scripts/test.sh

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

clean-demo:
	rm -rf data/demo
