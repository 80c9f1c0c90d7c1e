# Two commands for a new user: `make demo` (the main job) and `make test` (every check).
# Both set themselves up: a virtualenv per Airflow version, installed from the pinned lock files.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
# uv trusts the system's CA store, like pip: machines behind a TLS-inspecting proxy need that.
export UV_SYSTEM_CERTS := 1

VENV := .venv
VENV_211 := .venv-2.11
VENV_E2E := .venv-e2e
VENV_DIST := .venv-dist
# The older Airflow 3 minors, each at its newest patch in its own virtualenv (.venv-3.0, ...).
OLDER_MINORS := 3.0 3.1 3.2
# What runs on them: everything that touches Airflow (hook, operators, sensor, triggers, workflows,
# example DAGs, registration, connection forms, the pytest plugin); not the emulator's own tests,
# the docs pages or the 3.3 browser test.
OLDER_TESTS := tests/hooks tests/operators tests/sensors tests/triggers tests/workflows tests/example_dags \
	tests/test_provider.py tests/test_connection_forms.py tests/test_templated_conn_id.py \
	tests/testing/test_pytest_plugin.py
PY := $(VENV)/bin/python
PY_211 := $(VENV_211)/bin/python

.PHONY: demo test test-3.3 test-2.11 test-older test-3.0 test-3.1 test-3.2 test-ui e2e lint typecheck \
	benchmark docs dist lock clean

# $(1): venv dir, $(2): lock file
define make_venv
	@test -x $(1)/bin/python || $(PYTHON) -m venv $(1)
	@test -x $(1)/bin/uv || $(1)/bin/python -m pip install -q uv==$(UV_VERSION)
	$(1)/bin/uv pip sync -q --python $(1)/bin/python $(2)
	$(1)/bin/uv pip install -q --python $(1)/bin/python --no-deps -e .
	@touch $(1)/.installed
endef

$(VENV)/.installed: requirements/airflow-3.3.txt pyproject.toml
	$(call make_venv,$(VENV),requirements/airflow-3.3.txt)

$(VENV_211)/.installed: requirements/airflow-2.11.txt pyproject.toml
	$(call make_venv,$(VENV_211),requirements/airflow-2.11.txt)

$(foreach m,$(OLDER_MINORS),.venv-$(m)/.installed): .venv-%/.installed: requirements/airflow-%.txt pyproject.toml
	$(call make_venv,.venv-$*,requirements/airflow-$*.txt)

# Airflow 3.3 with the Celery provider and both PostgreSQL drivers (Python 3.11+, as the Celery provider).
$(VENV_E2E)/.installed: requirements/e2e-3.3.txt pyproject.toml
	$(call make_venv,$(VENV_E2E),requirements/e2e-3.3.txt)

demo: $(VENV)/.installed
	$(PY) scripts/run_demo.py

test: lint typecheck test-3.3 test-2.11

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

test-3.3: $(VENV)/.installed
	$(PY) -m pytest

test-2.11: $(VENV_211)/.installed
	$(PY_211) -m pytest

# The older Airflow 3 minors (CI runs them through .ci/run; make test does not, for time).
test-older: $(addprefix test-,$(OLDER_MINORS))

$(addprefix test-,$(OLDER_MINORS)): test-%: .venv-%/.installed
	.venv-$*/bin/python -m pytest $(OLDER_TESTS)

# The browser test alone (test-3.3 runs it too, whenever /usr/bin/chromium exists); this one also
# refreshes the screenshots the docs show.
test-ui: $(VENV)/.installed
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	MOTHERDUCK_SCREENSHOT_DIR=docs/_static/screenshots $(PY) -m pytest -m browser tests/ui

# A real deployment on this machine (e2e/): PostgreSQL, api-server, scheduler, dag-processor,
# triggerer, LocalExecutor, then CeleryExecutor with Redis and two workers; faults and a secret scan.
# Installs Debian's postgresql and redis-server if missing (as root).
e2e: $(VENV_E2E)/.installed
	@need=(); ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql); \
	command -v redis-server >/dev/null || need+=(redis-server); \
	if [ $${#need[@]} -gt 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$${need[@]}"; fi
	$(VENV_E2E)/bin/python -m pytest e2e

# Every script in benchmarks/, each printing its table; fails if any missed its targets.
benchmark: $(VENV)/.installed
	@status=0; for script in benchmarks/*.py; do echo "=== $$script"; $(PY) $$script || status=1; done; exit $$status

# The documentation site into docs/_build/html, warnings as errors (graphviz's dot from Debian if missing).
docs: $(VENV)/.installed
	@command -v dot >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz; }
	$(VENV)/bin/sphinx-build -E -W --keep-going -q -b html docs docs/_build/html

# sdist and wheel into dist/ (uv build: the wheel is built from the sdist), checked with twine; then
# the wheel alone, beside Airflow 3.3.2 at the lock's pins, in a new virtualenv (scripts/check_dist.py).
dist: $(VENV)/.installed
	rm -rf dist $(VENV_DIST)
	$(VENV)/bin/uv build -q --out-dir dist
	$(VENV)/bin/twine check --strict dist/*
	$(VENV)/bin/uv venv -q --python $(PYTHON) $(VENV_DIST)
	$(VENV)/bin/uv pip install -q --python $(VENV_DIST)/bin/python -c requirements/airflow-3.3.txt \
		apache-airflow==3.3.2 dist/*.whl
	cd /tmp && $(CURDIR)/$(VENV_DIST)/bin/python $(CURDIR)/scripts/check_dist.py

# Re-pin after editing requirements/*.in (needs the package registry).
lock: $(VENV)/.installed
	$(VENV)/bin/uv pip compile -q --universal --python-version 3.10 requirements/airflow-3.3.in -o requirements/airflow-3.3.txt
	$(VENV)/bin/uv pip compile -q --universal --python-version 3.10 requirements/airflow-2.11.in -o requirements/airflow-2.11.txt
	for m in $(OLDER_MINORS); do \
		$(VENV)/bin/uv pip compile -q --universal --python-version 3.10 requirements/airflow-$$m.in -o requirements/airflow-$$m.txt || exit 1; \
	done
	$(VENV)/bin/uv pip compile -q --universal --python-version 3.11 requirements/e2e-3.3.in -c requirements/airflow-3.3.txt -o requirements/e2e-3.3.txt

clean:
	rm -rf $(VENV) $(VENV_211) $(VENV_E2E) $(VENV_DIST) $(addprefix .venv-,$(OLDER_MINORS)) dist .airflow-demo .mypy_cache .ruff_cache .pytest_cache docs/_build
