# checkin-gateway: the two commands a newcomer needs are `make demo` and `make test`.
# Both create or refresh the virtualenv themselves; `make test` also installs the Debian
# packages the real-component tests drive (idempotent: nothing happens when present).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SYSTEM_PACKAGES := chromium nftables udhcpc isc-dhcp-client arping socat busybox iproute2 \
	conntrack libusb-1.0-0 systemd
APT_STAMP := $(VENV)/.apt-installed

.PHONY: demo sim test bench lint venv system-deps typecheck clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

# Debian packages for the real-component tests. Missing ones are installed with apt-get
# (as root, or through sudo); present ones cost one dpkg query.
system-deps: $(APT_STAMP)

$(APT_STAMP): Makefile | $(STAMP)
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@touch $@

demo: $(STAMP)
	$(PY) -m gateway demo

# The simulated Cobot server alone (loopback, demo data): SIM_ARGS="--port 0 --no-rate-limit"
sim: $(STAMP)
	$(PY) -m gateway.sim $(SIM_ARGS)

test: $(STAMP) system-deps
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check gateway tests bench
	$(VENV)/bin/ruff format --check gateway tests bench
	$(VENV)/bin/mypy

typecheck: $(STAMP)
	$(VENV)/bin/mypy

bench: $(STAMP) system-deps
	$(PY) -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
