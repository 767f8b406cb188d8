# checkin-gateway: the two commands a newcomer needs are `make demo` and `make test`.
# Both create or refresh the virtualenv themselves; `make test` also installs the Debian
# packages the real-component tests drive (idempotent: nothing happens when present).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SYSTEM_PACKAGES := chromium nftables udhcpc isc-dhcp-client arping socat busybox iproute2 \
	conntrack libusb-1.0-0 systemd \
	gcc python3-dev linux-libc-dev \
	mosquitto mosquitto-clients
# The Grafana dashboard's queries run in a real Prometheus (tests/test_dashboard_prometheus.py).
SYSTEM_PACKAGES += prometheus
# The test VM (tests/vm/): qemu, the image's build (debootstrap, mkfs.ext4 -d) and a
# compiler for the one wheel PyPI has only as source (evdev).
SYSTEM_PACKAGES += qemu-system-x86 debootstrap e2fsprogs gcc libc6-dev python3-dev
APT_STAMP := $(VENV)/.apt-installed

.PHONY: demo sim test test-vm bench lint venv system-deps typecheck clean \
	install install-venv install-files install-activate uninstall

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

# Debian packages for the real-component tests. Missing ones are installed with apt-get
# (as root, or through sudo); present ones cost one dpkg query. Their services
# (mosquitto, prometheus) are not started by the install (policy-rc.d, exit 101, only
# while installing): the tests start their own on loopback, on free ports.
system-deps: $(APT_STAMP)

$(APT_STAMP): Makefile | $(STAMP)
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		policy=""; if [ ! -e /usr/sbin/policy-rc.d ]; then policy=1; \
			printf '#!/bin/sh\nexit 101\n' | $$SUDO tee /usr/sbin/policy-rc.d >/dev/null; \
			$$SUDO chmod 755 /usr/sbin/policy-rc.d; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
		rc=$$?; [ -z "$$policy" ] || $$SUDO rm -f /usr/sbin/policy-rc.d; [ $$rc = 0 ] || exit $$rc; \
	fi
	@touch $@

# The demo's own small virtualenv: the runtime dependencies only (no pytest, mypy,
# Playwright), so a fresh clone reaches the demo's first prompt in seconds.
DEMO_VENV ?= .venv-demo
DEMO_PY := $(DEMO_VENV)/bin/python
DEMO_STAMP := $(DEMO_VENV)/.installed

# The demo imports these and nothing else of pyproject.toml's dependencies (a test
# checks both); it runs from the source tree, so the package itself is not installed.
# With a pip on the host (>= 22.3, --python), the venv gets no pip of its own: half the
# time and a third of the size. --no-compile: Python compiles what the demo imports.
DEMO_REQUIREMENTS := 'aiohttp>=3.9' 'aiosqlite>=0.20' 'structlog>=24.1'
DEMO_PIP := --quiet --disable-pip-version-check --no-compile

$(DEMO_STAMP): pyproject.toml Makefile
	@if $(PYTHON) -m pip --python "$$($(PYTHON) -c 'import sys; print(sys.executable)')" \
			--version >/dev/null 2>&1; then \
		test -x $(DEMO_PY) || $(PYTHON) -m venv --without-pip $(DEMO_VENV) || exit 1; \
		$(PYTHON) -m pip --python $(DEMO_PY) install $(DEMO_PIP) $(DEMO_REQUIREMENTS) || exit 1; \
	else \
		test -x $(DEMO_PY) || $(PYTHON) -m venv $(DEMO_VENV) || exit 1; \
		$(DEMO_PY) -m pip install $(DEMO_PIP) $(DEMO_REQUIREMENTS) || exit 1; \
	fi
	@touch $@

# Ctrl-C ends the demo cleanly (it says so); `exec` leaves make nothing to report.
demo: $(DEMO_STAMP)
	@exec $(DEMO_PY) -m gateway demo

# The simulated Cobot server alone (loopback, demo data, port 8180: not the portal's
# 8080), in the demo's small venv: SIM_ARGS="--port 0 --no-rate-limit"
sim: $(DEMO_STAMP)
	@exec $(DEMO_PY) -m gateway.sim $(SIM_ARGS)

test: $(STAMP) system-deps
	$(PY) -m pytest -q -p no:cacheprovider --ignore=tests/vm $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory test-vm

# The tests that need a real kernel and a real systemd, in a qemu VM (README "Testing"):
# gpio-sim, uinput, the installed service. The first run builds the VM's image into
# /var/cache/checkin-gateway-vm/ (needs root; a few minutes); later runs reuse it.
test-vm: $(STAMP) system-deps
	$(PY) -m pytest -q -p no:cacheprovider -rs tests/vm $(VM_PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check gateway tests bench
	$(VENV)/bin/ruff format --check gateway tests bench
	$(VENV)/bin/mypy

typecheck: $(STAMP)
	$(VENV)/bin/mypy

bench: $(STAMP) system-deps
	$(PY) -m bench

clean:
	rm -rf $(VENV) $(DEMO_VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis

# --- Install on a Raspberry Pi (README: "Install on a Raspberry Pi") -----------------
# `sudo make install` puts a virtualenv in $(PREFIX), the unit, the user, the udev rules
# and an example config in place; it never overwrites an existing config or token.
# WITH="mac-presence portal" adds the drop-ins granting CAP_NET_RAW / CAP_NET_ADMIN
# (WITH=moco: the MOCO key's credential, and an empty root-only moco-key to fill in);
# a later `make install` without WITH removes them again. install-files honours
# DESTDIR (the tests use it); the other steps act on this machine.
PREFIX ?= /opt/checkin-gateway
DESTDIR ?=
WITH ?=
UNITDIR := /etc/systemd/system
CONFDIR := /etc/checkin-gateway
DROPINS := mac-presence portal moco

install: install-venv install-files install-activate

install-venv:
	@[ "$$(id -u)" = 0 ] || { echo "make install needs root: sudo make install"; exit 1; }
	@test -x $(PREFIX)/venv/bin/python || $(PYTHON) -m venv $(PREFIX)/venv
	$(PREFIX)/venv/bin/pip install --quiet --disable-pip-version-check --upgrade pip
	$(PREFIX)/venv/bin/pip install --quiet --disable-pip-version-check '.[gpio,hid]'

install-files:
	@for d in $(WITH); do case " $(DROPINS) " in *" $$d "*) ;; \
		*) echo "unknown WITH=$$d (choose from: $(DROPINS))"; exit 1;; esac; done
	install -D -m 0644 systemd/checkin-gateway.service $(DESTDIR)$(UNITDIR)/checkin-gateway.service
	rm -f $(foreach d,$(DROPINS),$(DESTDIR)$(UNITDIR)/checkin-gateway.service.d/$(d).conf)
	@for d in $(WITH); do \
		install -D -m 0644 systemd/checkin-gateway.service.d/$$d.conf \
			$(DESTDIR)$(UNITDIR)/checkin-gateway.service.d/$$d.conf || exit 1; done
	install -D -m 0644 systemd/checkin-gateway.sysusers $(DESTDIR)/etc/sysusers.d/checkin-gateway.conf
	install -D -m 0644 hardware/udev/60-checkin-gateway.rules \
		$(DESTDIR)/etc/udev/rules.d/60-checkin-gateway.rules
	install -d -m 0750 $(DESTDIR)$(CONFDIR)
	@test -e $(DESTDIR)$(CONFDIR)/config.toml || \
		install -m 0640 config/example.toml $(DESTDIR)$(CONFDIR)/config.toml
	@test -e $(DESTDIR)$(CONFDIR)/cobot-token || \
		install -m 0600 /dev/null $(DESTDIR)$(CONFDIR)/cobot-token
	@case " $(WITH) " in *" moco "*) test -e $(DESTDIR)$(CONFDIR)/moco-key || \
		install -m 0600 /dev/null $(DESTDIR)$(CONFDIR)/moco-key;; esac

install-activate:
	systemd-sysusers /etc/sysusers.d/checkin-gateway.conf
	chgrp checkin-gateway $(CONFDIR) $(CONFDIR)/config.toml
	ln -sf $(PREFIX)/venv/bin/checkin-gateway /usr/local/bin/checkin-gateway
	-udevadm control --reload-rules && udevadm trigger
	systemctl daemon-reload
	@echo
	@echo "Installed. Next:"
	@echo "  1. edit $(CONFDIR)/config.toml (readers, doors, your space's base_url)"
	@echo "  2. put the Cobot access token into $(CONFDIR)/cobot-token (root only, 0600)"
	@echo "  3. sudo checkin-gateway doctor --config $(CONFDIR)/config.toml"
	@echo "  4. sudo systemctl enable --now checkin-gateway"

uninstall:
	@[ "$$(id -u)" = 0 ] || { echo "make uninstall needs root: sudo make uninstall"; exit 1; }
	-systemctl disable --now checkin-gateway
	rm -f $(UNITDIR)/checkin-gateway.service /usr/local/bin/checkin-gateway
	rm -rf $(UNITDIR)/checkin-gateway.service.d $(PREFIX)
	rm -f /etc/udev/rules.d/60-checkin-gateway.rules /etc/sysusers.d/checkin-gateway.conf
	-systemctl daemon-reload
	-udevadm control --reload-rules
	@echo "Kept: $(CONFDIR) (config, token), /var/lib/checkin-gateway (cache, queue) and"
	@echo "the checkin-gateway user. Remove them by hand if the gateway is gone for good."
