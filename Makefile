# Two commands on a fresh machine: `make demo` and `make test`.
# Python >= 3.12 is required (PuLP 4 needs it); we look for it on PATH, then in pyenv.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
PYTHON_FOR_VENV := $(shell for p in python3.13 python3.12; do command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; assert sys.version_info >= (3,12)' 2>/dev/null && { command -v $$p; exit 0; }; done; for d in $$HOME/.pyenv/versions/3.12* $$HOME/.pyenv/versions/3.13* /root/.pyenv/versions/3.12* /root/.pyenv/versions/3.13*; do [ -x $$d/bin/python ] && { echo $$d/bin/python; exit 0; }; done)
DEMO_CONFIG ?= deploy/examples/community-centre.yaml

.PHONY: venv sysdeps test test-fast lint-imports demo bench clean

$(VENV)/.installed: pyproject.toml
	@if [ -z "$(PYTHON_FOR_VENV)" ]; then echo "error: Python >= 3.12 not found (PATH or ~/.pyenv/versions)"; exit 1; fi
	@[ -x $(PY) ] || $(PYTHON_FOR_VENV) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

venv: $(VENV)/.installed

# Install the Debian packages the tests use, only when missing: influxd (storage tests),
# mbpoll (Modbus peer), chromium (dashboard browser tests), a CJK font (Japanese UI screenshots).
sysdeps:
	@missing=""; \
	command -v influxd >/dev/null 2>&1 || missing="$$missing influxdb"; \
	command -v mbpoll  >/dev/null 2>&1 || missing="$$missing mbpoll"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	dpkg -s fonts-noto-cjk >/dev/null 2>&1 || missing="$$missing fonts-noto-cjk"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

test: venv sysdeps lint-imports
	@set +e; $(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc = 5 ]; then echo "no tests collected"; exit 1; fi; exit $$rc

# The inner loop: no servers (influxd, the runtime, uvicorn, `vpp demo`), no browser, no whole
# scenarios (tiers applied in tests/conftest.py). Under a minute on two cores.
FAST_MARKERS := not (browser or influx or runtime or scenario or slow)
test-fast: venv lint-imports
	@set +e; $(PY) -m pytest -q -p no:cacheprovider -m "$(FAST_MARKERS)" $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc = 5 ]; then echo "no tests collected"; exit 1; fi; exit $$rc

# The layering contracts in pyproject.toml [tool.importlinter].
lint-imports: venv
	@set -o pipefail; $(VENV)/bin/lint-imports --no-cache | sed -n '/^Contracts/,$$p'

demo: venv
	$(VENV)/bin/vpp demo --config $(DEMO_CONFIG)

bench: venv sysdeps
	$(PY) bench/poll.py
	$(PY) bench/ingest.py
	$(PY) bench/optimizer.py
	$(PY) bench/api.py
	$(PY) bench/hil.py
	$(PY) bench/ocpp.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
