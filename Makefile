# The two commands of the README: `make demo` and `make test`.  Both set everything up
# on a fresh Debian/Ubuntu machine first (a virtual environment with the package).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench vectors clean setup

setup: $(STAMP)

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

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/trustpath bench

# Regenerate the published test vectors (fixed keys and clock) and the XEP's examples.
vectors: $(STAMP)
	$(BIN)/python -m trustpath.vectors spec/vectors
	$(BIN)/python tools/sync_xep.py

clean:
	rm -rf $(VENV) build *.egg-info reference/*.egg-info .pytest_cache .hypothesis
