# The two commands of the README: `make demo` and `make test`.  Both set everything up
# on a fresh Debian/Ubuntu machine first (a virtual environment with the package).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench vectors clean setup live-deps

# What the live federation tests need from Debian/Ubuntu: Prosody 0.12, a C toolchain with the
# Lua 5.4 and OpenSSL headers (for the module's Ed25519 binding), and faketime (the clock-skew
# scenario), tmux and the Python headers (poezio, in the client tests).
LIVE_PACKAGES := prosody lua5.4 liblua5.4-dev libsodium-dev libssl-dev gcc make faketime tmux python3-dev

setup: $(STAMP)

live-deps:
	@missing=""; \
	for p in $(LIVE_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "installing for the live tests:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	    service prosody stop >/dev/null 2>&1 || true; \
	  else \
	    echo "the live tests need:$$missing (on Debian/Ubuntu: sudo apt-get install$$missing); they will be skipped"; \
	  fi; \
	fi
	@if [ -f /usr/include/lua5.4/lua.h ] && [ -f prosody/Makefile ]; then $(MAKE) -s -C prosody; fi

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "trustpath needs Python 3.11 or newer (found: $$($(PYTHON) --version))"; exit 1; }
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python3-venv is missing; installing it"; \
	  apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/trustpath demo

test: $(STAMP) live-deps
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/trustpath bench

# Regenerate the published test vectors (fixed keys and clock) and the XEP's examples.
vectors: $(STAMP)
	$(BIN)/python -m trustpath.tools.vectors spec/vectors
	$(BIN)/python -m trustpath.tools.sync_xep

clean:
	rm -rf $(VENV) build *.egg-info reference/*.egg-info .pytest_cache .hypothesis
