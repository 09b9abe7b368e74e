# zaas-edge developer commands. Each target creates .venv and installs what it needs.
#   make demo   run the daemon in a simulated building (hil/scenario.py, config/demo.toml)
#   make test   run the whole test suite
#   make bench  run the benchmarks under bench/
#   make hil    every scenario file of hil/scenarios/building/ against the real daemon (about 20 minutes)
#   make soak   the demo building for an hour (DURATION=20m), the daemon's memory, fds, store and backlog judged
#   make demo-day  the demo building's day in ten minutes (a time scale of 144)
#   make lint   static checks
#   make install / make uninstall   the service on a Pi, as root (systemd/install.sh; DESTDIR= for a scratch root)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Exact versions (the ones a Pi installs too): a clean checkout gets what the suite passed with.
CONSTRAINTS := constraints.txt
PYTEST_ARGS ?=

.PHONY: demo demo-day hil soak test bench lint venv mosquitto clean install uninstall

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml $(CONSTRAINTS)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "zaas-edge needs Python 3.11 or newer (Debian 12 / Raspberry Pi OS bookworm has it)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { echo "could not create a virtual environment: run 'sudo apt-get install python3-venv'"; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[test,lint]'
	@touch $(STAMP)

# The MQTT tests start their own mosquitto broker; the Debian package provides it.
mosquitto:
	@if command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "installing mosquitto (Debian package) for the tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null; \
	elif command -v sudo >/dev/null 2>&1; then \
		echo "installing mosquitto (Debian package) for the tests"; \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null; \
	else \
		echo "mosquitto is missing: run 'apt-get install mosquitto' as root, then 'make test' again"; exit 1; \
	fi

# The scenario (hil/scenario.py) starts simulated meters and sensors, writes
# .demo/config.toml from config/demo.toml and runs the real daemon on it.
demo: $(STAMP)
	@echo "zaas-edge demo: the real daemon in a simulated building (Ctrl-C stops everything)."
	@echo "In another terminal:  $(BIN)/zaas-edge -c .demo/config.toml status --watch"
	$(BIN)/python -m hil.scenario --config config/demo.toml --run-dir .demo

demo-day: $(STAMP)
	$(BIN)/python -m hil.scenario --config config/demo.toml --run-dir .demo --time-scale 144 --start 21:30

# Every HIL scenario file against the real daemon in the simulated building (about 20 minutes);
# reports in .hil/reports/<name>/. HIL_SCENARIOS=hil/scenarios/building/garbage.toml for one.
HIL_SCENARIOS ?= hil/scenarios/building/*.toml
hil: $(STAMP) mosquitto
	$(BIN)/python -m hil.run $(HIL_SCENARIOS) --run-dir .hil --report-dir .hil/reports

# Memory, file descriptors, store and backlog of the daemon in the demo building, every minute,
# judged for growth after a warm-up (hil/soak.py); exits non-zero when a bound breaks.
soak: $(STAMP) mosquitto
	$(BIN)/python -m hil.soak --duration $(or $(DURATION),1h)

test: $(STAMP) mosquitto
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	@set -e; for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b; done

lint: $(STAMP)
	$(BIN)/ruff check zaas_edge drivers tests hil bench

# Into /opt/zaas-edge/venv with the constraints file, then the unit, the user and
# /etc/zaas-edge/config.toml (never overwritten); needs no .venv. Settings
# (systemd/install.sh says each): DESTDIR, WHEEL, PIP_ARGS, PURGE=1 (uninstall).
install uninstall:
	@DESTDIR="$(DESTDIR)" PYTHON="$(PYTHON)" WHEEL="$(WHEEL)" PIP_ARGS="$(PIP_ARGS)" PURGE="$(PURGE)" sh systemd/install.sh $@

clean:
	rm -rf $(VENV) .demo .soak .hil build *.egg-info .pytest_cache .hypothesis
