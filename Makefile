# hsl_live developer commands. `make install` once, then any target.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CAPTURE ?= demo.capture.zst

.PHONY: install system-deps test lint format run demo bench query lock clean

install: $(BIN)/hsl-live

$(BIN)/hsl-live: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

system-deps:
	@scripts/system-deps

test: install system-deps
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

run: install
	$(BIN)/hsl-live run

demo: install
	@test -f $(CAPTURE) || $(BIN)/hsl-live simulate --vehicles 400 --duration 600 --output $(CAPTURE)
	$(BIN)/hsl-live replay $(CAPTURE) --speed 1 --serve

bench: install
	$(BIN)/python -m bench

# Memory with 5,000 vehicles and 1,000 SSE clients, sampled for 30 minutes.
soak: install
	$(BIN)/python -m bench soak --minutes 30

query: install
	$(BIN)/hsl-live query delay_by_route_hour --limit 20

# Rewrite constraints.txt from what is installed now (after changing dependencies).
lock:
	$(BIN)/pip freeze --exclude-editable | grep -v '^hsl-live' > constraints.txt

clean:
	rm -rf $(VENV) build dist src/*.egg-info .mypy_cache .ruff_cache .pytest_cache
