# Two commands for a fresh machine: `make run` (the product; the demo without a key config) and `make test`.
VENV ?= .venv
PYTHON ?= python3

.PHONY: run test lint bench-collector bench-anomalies clean-demo

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
	$(VENV)/bin/python scripts/bench_anomalies_real.py

clean-demo:
	rm -rf data/demo
