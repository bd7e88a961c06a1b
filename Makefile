# Two commands on a fresh machine: `make demo` and `make test`.
# Python >= 3.12 is required (PuLP 4 needs it); we look for it on PATH, then in pyenv.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
PYTHON_FOR_VENV := $(shell for p in python3.13 python3.12; do command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; assert sys.version_info >= (3,12)' 2>/dev/null && { command -v $$p; exit 0; }; done; for d in $$HOME/.pyenv/versions/3.12* $$HOME/.pyenv/versions/3.13* /root/.pyenv/versions/3.12* /root/.pyenv/versions/3.13*; do [ -x $$d/bin/python ] && { echo $$d/bin/python; exit 0; }; done)
DEMO_CONFIG ?= deploy/examples/community-centre.yaml

.PHONY: venv venv-prod lock sysdeps test test-fast lint-imports demo bench bench-peer clean

# Locked dependencies (uv pip compile, universal): runtime.txt = dependencies + the openadr extra
# (the image, `make venv-prod`); test.txt = those + the test extra (`make venv`). They must pin
# what pyproject.toml asks for (requirements/check_lock.py); `make lock` regenerates them,
# keeping the other pins (LOCK_ARGS=--upgrade to move everything to the newest versions).
LOCK_RUNTIME := requirements/runtime.txt
LOCK_TEST    := requirements/test.txt
UV           := $(VENV)/bin/uv
UV_COMPILE   := $(UV) pip compile pyproject.toml --universal --python-version 3.12 --custom-compile-command "make lock" -q

$(PY):
	@if [ -z "$(PYTHON_FOR_VENV)" ]; then echo "error: Python >= 3.12 not found (PATH or ~/.pyenv/versions)"; exit 1; fi
	$(PYTHON_FOR_VENV) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml $(LOCK_TEST) | $(PY)
	@$(PY) requirements/check_lock.py
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r $(LOCK_TEST)
	$(PY) -m pip install -q -e . --no-deps
	@touch $@

venv: $(VENV)/.installed

# Production (the systemd unit's /opt/vpp/.venv): the runtime lock only, no test tools.
venv-prod: | $(PY)
	@$(PY) requirements/check_lock.py
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r $(LOCK_RUNTIME)
	$(PY) -m pip install -q --no-deps .

lock: | $(PY)
	@[ -x $(UV) ] || $(PY) -m pip install -q uv
	$(UV_COMPILE) --extra openadr -o $(LOCK_RUNTIME) $(LOCK_ARGS)
	$(UV_COMPILE) --extra openadr --extra test \
	  -c $(LOCK_RUNTIME) -o $(LOCK_TEST) $(LOCK_ARGS)
	@$(PY) requirements/check_lock.py && echo "$(LOCK_RUNTIME) and $(LOCK_TEST) agree with pyproject.toml"

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

# Two pytest-xdist workers: most of the suite waits on servers, sockets and a simulated clock,
# so two processes on two cores roughly halve the wall time. XDIST= runs serially.
XDIST ?= -n 2
test: venv sysdeps lint-imports
	@set +e; $(PY) -m pytest -q -p no:cacheprovider $(XDIST) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc = 5 ]; then echo "no tests collected"; exit 1; fi; exit $$rc

# The inner loop: no servers (influxd, the runtime, uvicorn, `vpp demo`), no browser, no whole
# scenarios (tiers applied in tests/conftest.py). Under a minute on two cores.
FAST_MARKERS := not (browser or influx or runtime or scenario or slow)
test-fast: venv lint-imports
	@set +e; $(PY) -m pytest -q -p no:cacheprovider $(XDIST) -m "$(FAST_MARKERS)" $(PYTEST_ARGS); rc=$$?; \
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
	$(PY) bench/bus.py
	$(PY) bench/ocpp.py

# The peer optimiser (EMHASS 0.18.7) in its own venv under .peer/ (never the project's venv),
# then the optimiser bench with the peer run side by side on the same inputs.
PEER_VENV := .peer/venv
$(PEER_VENV)/.installed:
	@mkdir -p .peer
	@[ -x $(PEER_VENV)/bin/python ] || $(PYTHON_FOR_VENV) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/python -m pip install -q emhass==0.18.7
	@touch $@

bench-peer: venv $(PEER_VENV)/.installed
	$(PY) bench/optimizer.py --peer

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
