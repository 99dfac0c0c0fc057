# Two entry points: `make demo` (the main job on bundled defaults) and `make test`.
# Both set up everything they need first: SWI-Prolog, .venv, torch 2.13.0 (CPU), the project.
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint bench bench-quick clean

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/aligned demo

lint: setup
	$(VENV)/bin/ruff check aligned tests benchmarks
	$(VENV)/bin/ruff format --check aligned tests benchmarks

test: lint
	$(VENV)/bin/pytest -q

# The full record (hours on 2 cores) regenerates docs/benchmarks.md; the quick one takes minutes.
bench: setup
	$(VENV)/bin/python benchmarks/run_all.py

bench-quick: setup
	$(VENV)/bin/python benchmarks/run_all.py --quick

clean:
	rm -rf $(VENV) dist build .pytest_cache .ruff_cache
