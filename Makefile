# Two commands on a fresh machine: `make run` serves the API, `make test` runs the suite.
# `make run` installs only what serving needs (requirements-run.txt); `make test` adds the rest
# (requirements-dev.txt). Plain `make` lists the targets and installs nothing.
PYTHON ?= python3
# `make run PORT=5001 HOST=0.0.0.0`
HOST ?= 127.0.0.1
PORT ?= 5000
VENV ?= .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.run-installed
STAMP := $(VENV)/.installed
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.DEFAULT_GOAL := help
.PHONY: help run test lint migrate schema settings-docs fuzz audit clean package sls-package cfn-lint deploy \
	migrate-deployed remove offline bench lambda-rie trixie-postgres unfreeze

# Each target with a `##` comment is listed by `make help`.
help:  ## list the targets (the default: plain `make` installs nothing)
	@echo "Usage: make TARGET   (the virtualenv $(VENV) is created on first use)"
	@awk -F ':.*## ' '/^[a-z-]+:.*## / {printf "  %-17s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(RUN_STAMP): requirements.txt requirements-run.txt
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required" if sys.version_info < (3, 11) else 0)'
	@echo "make: creating $(VENV) with $$($(PYTHON) --version)"
	@$(PYTHON) -m venv $(VENV)
	@echo "make: installing what serving needs (requirements-run.txt: Flask, psycopg2, the embedded"
	@echo "      PostgreSQL 18; about 90 MB, a minute on a slow link)..."
	@$(PIP) -r requirements-run.txt
	@touch $@

$(STAMP): $(RUN_STAMP) requirements-dev.txt
	@echo "make: installing the test and deployment toolchain (requirements-dev.txt: pytest, ruff,"
	@echo "      schemathesis, playwright, moto, cfn-lint; about 500 MB, a few minutes)..."
	@$(PIP) -r requirements-dev.txt
	@touch $@

# Serves with --reload: a code edit restarts the app, the embedded database keeps running.
run: $(RUN_STAMP)  ## migrate and serve the API at http://127.0.0.1:5000 (HOST=, PORT=), reloading on edits
	$(PY) -m cities serve --host $(HOST) --port $(PORT) --reload

migrate: $(RUN_STAMP)  ## apply pending migrations (DATABASE_URL or the embedded database)
	$(PY) -m cities migrate

# cities/db/schema.sql: the schema the migrations build, for reading (tests/db/test_schema.py).
schema: $(STAMP)  ## rewrite cities/db/schema.sql from the migrations (after adding one)
	$(PY) -m tests.support.schema

# .env.example and docs/configuration.md's table, from cities/ops/config.py SETTINGS.
settings-docs: $(RUN_STAMP)  ## rewrite .env.example and the settings table (after adding a setting)
	$(PY) -m cities.ops.settings_docs --write

lint: $(STAMP)  ## ruff over the checkout
	$(PY) -m ruff check .

# tests/support/node.py says first, in one line, when the deploy checks cannot run (no Node.js 20.19+).
test: lint  ## lint, then the whole suite with coverage
	@$(PY) -m tests.support.node
	$(PY) -m pytest --cov --cov-report=term --basetemp=.pytest-tmp

# A long randomized fuzz run; `make test` runs the same tests with few, fixed examples.
fuzz: $(STAMP)  ## a long randomized fuzz run
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-1000} FUZZ_RANDOM=1 $(PY) -m pytest tests/fuzz/test_fuzz.py -p no:cacheprovider \
		--basetemp=.pytest-tmp

# Known vulnerabilities in the pinned runtime dependencies (needs the advisory service online).
audit: $(STAMP)  ## known vulnerabilities in the pinned runtime dependencies
	$(PIP) pip-audit==2.10.1
	$(PY) -m pip_audit --requirement requirements.txt --progress-spinner off

# The benchmark of issue 5 (see docs/benchmarks.md): its extra deps never reach requirements.txt.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP) requirements-bench.txt
	$(PIP) -r requirements-bench.txt
	@touch $@

bench: $(BENCH_STAMP)  ## the benchmark of docs/benchmarks.md
	$(PY) -m bench

# AWS's Lambda Runtime Interface Emulator and awslambdaric, pinned, cached in .cache/ for the
# emulator tests (tests/support/rie.py); they fetch it themselves when missing, or skip offline.
lambda-rie: $(STAMP)  ## fetch the Lambda emulator, awslambdaric and the aarch64 Python the runtime tests use
	$(PY) -m tests.support.rie

# Debian trixie's PostgreSQL 17 (with OpenSSL) under .cache/ for the direct TLS negotiation tests
# and bench (tests/support/pg17.py); they fetch it themselves when missing, or skip offline.
trixie-postgres: $(STAMP)  ## fetch the PostgreSQL 17 the direct TLS negotiation tests and bench run
	$(PY) -m tests.support.pg17

clean:  ## remove the virtualenv, caches and build output (never .data/, the local database)
	rm -rf $(VENV) .pytest_cache .pytest-tmp .ruff_cache .coverage build dist .serverless .serverless-offline .cache

# ---- Deployment (docs/deploy.md) ------------------------------------------------------------
# `make package` builds dist/cities.zip for the Lambda runtime (python3.13; x86_64 and arm64, dist/cities-arm64.zip) from manylinux
# wheels, without Docker; `make deploy STAGE=dev` runs the migrations, then ships the new API code.
STAGE ?= dev
# SECRETS=deploy resolves the SSM parameters at deploy time instead of at runtime (docs/deploy.md).
SECRETS ?=
SLS_FLAGS := --stage $(STAGE) $(if $(SECRETS),--param=secrets=$(SECRETS))
ZIP := dist/cities.zip
APP_SOURCES := handler.py requirements.txt deploy/package_lambda.py \
	$(shell find cities -name '*.py' -o -name '*.sql' -o -name '*.js' 2>/dev/null)
NODE_STAMP := node_modules/.installed
# Plain `npx osls ...` with no telemetry or update notices (the CLI runs offline for packaging).
OSLS := env SLS_TELEMETRY_DISABLED=1 SLS_NOTIFICATIONS_MODE=off npx --no-install osls
TEMPLATE := .serverless/cloudformation-template-update-stack.json

package: $(ZIP)  ## build dist/cities.zip (x86_64) and dist/cities-arm64.zip for the Lambda runtime

$(ZIP): $(STAMP) $(APP_SOURCES)
	$(PY) deploy/package_lambda.py $(PACKAGE_FLAGS)

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

# The CloudFormation a deploy would submit, generated offline (placeholder credentials: the CLI
# needs some to start, and packaging calls no AWS API).
sls-package: $(ZIP) $(NODE_STAMP)  ## the CloudFormation a deploy would submit, offline
	AWS_ACCESS_KEY_ID=$${AWS_ACCESS_KEY_ID:-offline} AWS_SECRET_ACCESS_KEY=$${AWS_SECRET_ACCESS_KEY:-offline} \
		$(OSLS) package $(SLS_FLAGS)

# W3005 (a DependsOn that a Ref already implies) is emitted by the framework for every httpApi
# route and every function with its own role; it is the only check ignored.
cfn-lint: sls-package  ## cfn-lint over that template
	$(VENV)/bin/cfn-lint --ignore-checks W3005 -- .serverless/cloudformation-template-*.json

# One CloudFormation update: the Migrations custom resource runs the migrate function before the
# API function's new code goes live; a failed migration fails the deploy and rolls it back, the
# previous code still serving (docs/deploy.md). `make migrate-deployed` re-runs it by hand.
deploy: $(ZIP) $(NODE_STAMP)  ## deploy to AWS: make deploy STAGE=dev (docs/deploy.md)
	$(PY) deploy/package_lambda.py --verify
	$(OSLS) deploy $(SLS_FLAGS) --verbose

migrate-deployed: $(NODE_STAMP)  ## run the deployed migrate function: make migrate-deployed STAGE=dev
	$(OSLS) invoke $(SLS_FLAGS) --function migrate --log

# After the kill switch fired (docs/deploy.md, "Kill switch"): the API function's reserved
# concurrency goes from 0 back to none (CONCURRENCY=n reserves n instead).
unfreeze: $(STAMP)  ## restore the API after the kill switch: make unfreeze STAGE=dev
	$(PY) deploy/kill_switch.py --stage $(STAGE) $(if $(CONCURRENCY),--concurrency $(CONCURRENCY))

remove: $(NODE_STAMP)  ## remove a deployed stage: make remove STAGE=dev
	$(OSLS) remove $(SLS_FLAGS)

# The service under serverless-offline (HTTP API on http://127.0.0.1:3000): the venv's Python
# runs handler.api against DATABASE_URL or the embedded local PostgreSQL, migrated first.
offline: $(ZIP) $(NODE_STAMP)  ## the zip under serverless-offline at http://127.0.0.1:3000
	$(PY) deploy/offline.py -- $(OSLS) offline --stage local
