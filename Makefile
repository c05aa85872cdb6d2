# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= ../shared/data/blood_cells
DEMO_OUT ?= runs/demo

CHROMIUM ?= /usr/bin/chromium

.PHONY: install demo test test-slow benchmark clean browser

install: $(BIN)/biolens

$(BIN)/biolens: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	@touch $(BIN)/biolens

demo: install
	$(BIN)/biolens demo --out $(DEMO_OUT)

test: install browser
	$(BIN)/python -m pytest -q

# Debian's chromium for the web app's browser tests (Playwright drives it; browser downloads are not possible here).
browser:
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = 0 ]; then run=env; elif sudo -n true 2>/dev/null; then run="sudo -n env"; else run=; fi; \
	  if [ -n "$$run" ] && command -v apt-get >/dev/null; then \
	    $$run DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 || \
	    { $$run apt-get update -qq && $$run DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; \
	  else echo "note: the browser tests need chromium at $(CHROMIUM) (apt-get install chromium)"; fi; }

test-slow: install browser
	$(BIN)/python -m pytest -q -m slow

benchmark: install
	$(BIN)/python benchmarks/images_vs_tutorial.py $(DATA)

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info
