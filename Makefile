# Two commands on a fresh machine: `make run` serves the API, `make test` runs the suite.
# Both create the virtualenv and install from the requirements files first.
PYTHON ?= python3
# `make run PORT=5001 HOST=0.0.0.0`
HOST ?= 127.0.0.1
PORT ?= 5000
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint migrate schema fuzz audit clean package sls-package cfn-lint deploy migrate-deployed remove offline bench

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required" if sys.version_info < (3, 11) else 0)'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

# Serves with --reload: a code edit restarts the app, the embedded database keeps running.
run: $(STAMP)
	$(PY) -m cities serve --host $(HOST) --port $(PORT) --reload

migrate: $(STAMP)
	$(PY) -m cities migrate

# cities/db/schema.sql: the schema the migrations build, for reading (tests/db/test_schema.py).
schema: $(STAMP)
	$(PY) -m tests.support.schema

lint: $(STAMP)
	$(PY) -m ruff check .

# tests/support/node.py says first, in one line, when the deploy checks cannot run (no Node.js 20.19+).
test: lint
	@$(PY) -m tests.support.node
	$(PY) -m pytest --cov --cov-report=term --basetemp=.pytest-tmp

# A long randomized fuzz run; `make test` runs the same tests with few, fixed examples.
fuzz: $(STAMP)
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-1000} FUZZ_RANDOM=1 $(PY) -m pytest tests/fuzz/test_fuzz.py -p no:cacheprovider \
		--basetemp=.pytest-tmp

# Known vulnerabilities in the pinned runtime dependencies (needs the advisory service online).
audit: $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check pip-audit==2.10.1
	$(PY) -m pip_audit --requirement requirements.txt --progress-spinner off

# The benchmark of issue 5 (see docs/benchmarks.md): its extra deps never reach requirements.txt.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP) requirements-bench.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	@touch $@

bench: $(BENCH_STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .pytest-tmp .ruff_cache .coverage build dist .serverless

# ---- Deployment (docs/deploy.md) ------------------------------------------------------------
# `make package` builds dist/cities.zip for the Lambda runtime (python3.12, x86_64) from manylinux
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

package: $(ZIP)

$(ZIP): $(STAMP) $(APP_SOURCES)
	$(PY) deploy/package_lambda.py $(PACKAGE_FLAGS)

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

# The CloudFormation a deploy would submit, generated offline (placeholder credentials: the CLI
# needs some to start, and packaging calls no AWS API).
sls-package: $(ZIP) $(NODE_STAMP)
	AWS_ACCESS_KEY_ID=$${AWS_ACCESS_KEY_ID:-offline} AWS_SECRET_ACCESS_KEY=$${AWS_SECRET_ACCESS_KEY:-offline} \
		$(OSLS) package $(SLS_FLAGS)

# W3005 (a DependsOn that a Ref already implies) is emitted by the framework for every httpApi
# route and every function with its own role; it is the only check ignored.
cfn-lint: sls-package
	$(VENV)/bin/cfn-lint --ignore-checks W3005 -- .serverless/cloudformation-template-*.json

# One CloudFormation update: the Migrations custom resource runs the migrate function before the
# API function's new code goes live; a failed migration fails the deploy and rolls it back, the
# previous code still serving (docs/deploy.md). `make migrate-deployed` re-runs it by hand.
deploy: $(ZIP) $(NODE_STAMP)
	$(PY) deploy/package_lambda.py --verify
	$(OSLS) deploy $(SLS_FLAGS) --verbose

migrate-deployed: $(NODE_STAMP)
	$(OSLS) invoke $(SLS_FLAGS) --function migrate --log

remove: $(NODE_STAMP)
	$(OSLS) remove $(SLS_FLAGS)

# The service under serverless-offline (HTTP API on http://127.0.0.1:3000): the venv's Python
# runs handler.api against DATABASE_URL or the embedded local PostgreSQL, migrated first.
offline: $(ZIP) $(NODE_STAMP)
	$(PY) deploy/offline.py -- $(OSLS) offline --stage local
