# Two commands on a fresh machine: `make run` serves the API, `make test` runs the suite.
# Both create the virtualenv and install from the requirements files first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint migrate fuzz audit clean

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required" if sys.version_info < (3, 11) else 0)'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

run: $(STAMP)
	$(PY) -m cities serve

migrate: $(STAMP)
	$(PY) -m cities migrate

lint: $(STAMP)
	$(PY) -m ruff check .

test: lint
	$(PY) -m pytest --cov --cov-report=term

# A long randomized fuzz run; `make test` runs the same tests with few, fixed examples.
fuzz: $(STAMP)
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-1000} FUZZ_RANDOM=1 $(PY) -m pytest tests/test_fuzz.py -p no:cacheprovider

# Known vulnerabilities in the pinned runtime dependencies (needs the advisory service online).
audit: $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check pip-audit==2.10.1
	$(PY) -m pip_audit --requirement requirements.txt --progress-spinner off

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .coverage
