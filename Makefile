# The two commands a new user runs: `make demo` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
PO_FILES := $(wildcard translations/*/LC_MESSAGES/messages.po)

.PHONY: demo test lint check-catalogs system-deps clean

demo: $(INSTALLED)
	$(BIN)/mailer demo

test: $(INSTALLED) system-deps lint check-catalogs
	$(BIN)/pytest

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

check-catalogs: system-deps
	@for po in $(PO_FILES); do msgfmt --check --output-file=/dev/null $$po || exit 1; done
	@echo "msgfmt --check: $(words $(PO_FILES)) catalogs OK"

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (found " + sys.version.split()[0] + "); set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres]'
	touch $(INSTALLED)

# redis-server (tests start their own on a free port) and msgfmt (catalog checks), from Debian's packages.
system-deps:
	@sh .ci/system-deps.sh

clean:
	rm -rf $(VENV) mailer-demo .pytest_cache .mypy_cache .ruff_cache
