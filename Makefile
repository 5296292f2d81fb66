# The two commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint format bench docs clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[all,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/workbench serve

test: $(STAMP)
	$(PY) -m ruff check workbench tests demos
	$(PY) -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(PY) -m ruff check workbench tests demos
	$(PY) -m ruff format --check workbench tests demos

format: $(STAMP)
	$(PY) -m ruff format workbench tests demos
	$(PY) -m ruff check --fix workbench tests demos

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

bench: $(STAMP)
	$(VENV)/bin/workbench bench record

clean:
	rm -rf $(VENV) build *.egg-info
