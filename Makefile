# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= ../shared/data/blood_cells
DEMO_OUT ?= runs/demo

CHROMIUM ?= /usr/bin/chromium
# pytest-xdist workers: the suite's Python, file and subprocess work fills the second core while TensorFlow trains
# on the first (shared runs are built once for all workers: tests/conftest.py `built_once`)
TEST_WORKERS ?= 2

.PHONY: install demo test test-slow benchmark clean browser tfjs

install: $(BIN)/biolens

$(BIN)/biolens: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/python -c "from biolens.explain.known_motifs import warm_up; warm_up()"  # compile Tomtom once (~40 s)
	@touch $(BIN)/biolens

demo: install
	$(BIN)/biolens demo --out $(DEMO_OUT)

test: install browser tfjs
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# Debian's chromium for the web app's browser tests (Playwright drives it; browser downloads are not possible here).
browser:
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = 0 ]; then run=env; elif sudo -n true 2>/dev/null; then run="sudo -n env"; else run=; fi; \
	  if [ -n "$$run" ] && command -v apt-get >/dev/null; then \
	    $$run DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 || \
	    { $$run apt-get update -qq && $$run DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; \
	  else echo "note: the browser tests need chromium at $(CHROMIUM) (apt-get install chromium)"; fi; }

# TensorFlow.js (its pure-JS CPU backend, from the npm registry) to run `biolens export --format tfjs` models in the
# tests, as a web page would; Node.js and npm from Debian when the machine has none.
TFJS := tests/js/node_modules/@tensorflow/tfjs-converter/package.json
tfjs: $(TFJS)

$(TFJS): tests/js/package.json tests/js/package-lock.json
	@command -v npm >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then run=env; elif sudo -n true 2>/dev/null; then run="sudo -n env"; else run=; fi; \
	  if [ -n "$$run" ] && command -v apt-get >/dev/null; then \
	    $$run DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null 2>&1 || \
	    { $$run apt-get update -qq && $$run DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }; \
	  else echo "note: the TF.js export test needs Node.js and npm (apt-get install nodejs npm)"; fi; }
	cd tests/js && npm ci --no-audit --no-fund --silent
	@touch $(TFJS)

test-slow: install browser tfjs
	$(BIN)/python -m pytest -q -m slow -n $(TEST_WORKERS) --dist loadfile

benchmark: install
	$(BIN)/python benchmarks/images_vs_tutorial.py $(DATA)

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info tests/js/node_modules
