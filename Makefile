# Two commands do everything on a fresh machine (README "Quick start"):
#   make run    the pipeline locally on Azurite: AKS capture -> ingest function -> queue -> plugin
#   make test   every test (.ci/run calls exactly this)
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
LIB := build/libk8saudit-aks.so
HOST := build/falco_host

.PHONY: all plugin dist test test-fast run bench soak lint docs clean falco

# Real Falco for the tests and `make run`: FALCO_BIN, else `falco` on PATH, else the one
# ../shared/tools/falco/setup.sh unpacks into build/falco (where that folder exists).
FALCO_SETUP := ../shared/tools/falco/setup.sh
WITH_FALCO = FALCO_BIN=$${FALCO_BIN:-$$(test -x build/falco/bin/falco && echo $(CURDIR)/build/falco/bin/falco)}
all: plugin

# What building the plugin needs (the image's build stage stops here), then the dev tools.
$(VENV)/.base: requirements.txt plugin/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt \
	    -r plugin/requirements.txt
	touch $@

$(VENV)/.installed: $(VENV)/.base requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# checkov (offline Bicep checks) pins its own dependencies: it gets a venv of its own.
.venv-infra/.installed: requirements-infra.txt
	$(PYTHON) -m venv .venv-infra
	.venv-infra/bin/pip install --quiet --disable-pip-version-check -r requirements-infra.txt
	touch $@

node_modules/.installed: package.json
	npm install --no-audit --no-fund --silent
	touch $@

$(LIB): $(VENV)/.base $(wildcard plugin/*.py plugin/sdk/*.py plugin/sdk/abi/*.py plugin/sdk/abi/*.[ch] plugin/k8saudit_aks/*.py plugin/k8saudit_aks/sources/*.py extractor/*.py extractor/*/*.py extractor/*/*.json transport/*.py)
	$(PY) -m plugin.build $(LIB)

plugin: $(LIB)

# The install layout (docs/install.md), rooted at /: the .so and k8saudit-aks/ beside it in
# Falco's plugin directory, the AKS rules file in /usr/share/falco/rules (outside /etc/falco,
# which the Helm chart mounts over); and the release artifact: that tree as a tarball, with
# its SHA-256 checksum.
DIST := build/dist
PLUGINS_DIR := $(DIST)/usr/share/falco/plugins
RULES_DIR := $(DIST)/usr/share/falco/rules
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' plugin/k8saudit_aks/__init__.py)
TARBALL := k8saudit-aks-$(VERSION)-linux-$(shell uname -m).tar.gz
dist: $(VENV)/.base
	rm -rf $(DIST) build/k8saudit-aks-*.tar.gz* && mkdir -p $(PLUGINS_DIR)/k8saudit-aks $(RULES_DIR)
	$(PY) -m pip install --quiet --disable-pip-version-check --target $(PLUGINS_DIR)/k8saudit-aks -r plugin/requirements.txt
	cp -r extractor plugin transport LICENSE $(PLUGINS_DIR)/k8saudit-aks/
	find $(DIST) -name __pycache__ -prune -exec rm -rf {} +
	$(PY) -m plugin.build $(PLUGINS_DIR)/libk8saudit-aks.so --standalone
	cp rules/aks_audit_rules.yaml $(RULES_DIR)/
	tar -C $(DIST) --sort=name --owner=0 --group=0 --numeric-owner -czf build/$(TARBALL) usr
	cd build && sha256sum $(TARBALL) > $(TARBALL).sha256

$(HOST): harness/falco_host.c plugin/sdk/abi/plugin_api.h
	@mkdir -p build
	cc -O2 -Wall -o $@ harness/falco_host.c -ldl

falco:
	@if [ -z "$$FALCO_BIN" ] && ! command -v falco >/dev/null && [ -f $(FALCO_SETUP) ] \
	    && [ ! -x build/falco/bin/falco ]; then bash $(FALCO_SETUP) build/falco; fi

# promtool checks and evaluates the Prometheus alert rules: Debian's prometheus package,
# unpacked here (nothing installed system-wide). Without apt-get (not Debian), set PROMTOOL
# or put promtool on PATH; else the promtool tests skip, saying so.
PROMTOOL := build/prometheus/usr/bin/promtool
$(PROMTOOL):
	@if ! command -v apt-get >/dev/null; then \
	    echo "no apt-get: set PROMTOOL to a promtool, or the promtool tests skip"; \
	else \
	    rm -rf build/prometheus && mkdir -p build/prometheus && cd build \
	    && { apt-get download prometheus 2>/dev/null \
	         || { apt-get update -qq && apt-get download prometheus; }; } \
	    && dpkg -x prometheus_*.deb prometheus && rm prometheus_*.deb \
	    && touch prometheus/usr/bin/promtool; \
	fi

test: $(LIB) $(HOST) $(PROMTOOL) node_modules/.installed .venv-infra/.installed falco lint
	$(WITH_FALCO) $(PY) -m pytest

# The pure tests (no .so, Azurite, Falco, Node or checkov; under a minute): the extractor's
# table-driven and property tests, the hand-over, the layout and the docs' tables.
FAST_TESTS := tests/extractor tests/plugin/test_handover.py tests/test_layout.py \
	tests/test_failure_modes_doc.py
test-fast: $(VENV)/.installed
	$(PY) -m pytest $(FAST_TESTS)

run: $(LIB) $(HOST) node_modules/.installed falco
	$(WITH_FALCO) $(PY) -m scripts.run_local

bench: $(LIB) $(HOST) node_modules/.installed falco
	$(PY) -m benchmarks.bench_fields
	$(PY) -m benchmarks.bench_extract_abi --callgrind
	$(PY) -m benchmarks.bench_ingest
	$(PY) -m benchmarks.bench_pipeline
	$(WITH_FALCO) $(PY) -m benchmarks.bench_falco
	$(WITH_FALCO) $(PY) -m benchmarks.bench_aks_rules
	$(WITH_FALCO) $(PY) -m benchmarks.bench_memory
	$(PY) -m benchmarks.bench_cost

# The chaos soak (scripts/soak.py): 100,000 events, Falco SIGKILLs, storage outages, hostile
# input; at most 10 minutes. `make test` runs a short one (tests/e2e/test_soak.py).
soak: $(LIB) node_modules/.installed falco
	$(WITH_FALCO) $(PY) -m scripts.soak

lint: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m mypy

docs: $(LIB)
	$(PY) -m extractor.fields.markdown --markdown docs/fields.md

clean:
	rm -rf build
