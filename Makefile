# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= ../shared/data/blood_cells
DEMO_OUT ?= runs/demo

.PHONY: install demo test test-slow benchmark clean

install: $(BIN)/biolens

$(BIN)/biolens: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	@touch $(BIN)/biolens

demo: install
	$(BIN)/biolens demo --out $(DEMO_OUT)

test: install
	$(BIN)/python -m pytest -q

test-slow: install
	$(BIN)/python -m pytest -q -m slow

benchmark: install
	$(BIN)/python benchmarks/images_vs_tutorial.py $(DATA)

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info
