# Two commands matter: `make demo` and `make test`. Both set up what they need first.
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
TOOLS_STAMP := .tools/.installed

.PHONY: demo test lint typecheck unit tools bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[test,demo]'
	$(PIP) check
	touch $(STAMP)

# System parts the tests drive for real: prometheus, promtool, alertmanager, chromium, helm, buildah,
# debootstrap (the image test; its Debian base is cached in .tools/cache/ on first use).
$(TOOLS_STAMP): scripts/install-tools.sh
	bash scripts/install-tools.sh
	touch $(TOOLS_STAMP)

tools: $(TOOLS_STAMP)

LINTED := exporter tests $(wildcard benchmarks) $(wildcard scripts/*.py) $(wildcard dashboards/*.py) $(wildcard alerts/*.py)

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP) $(TOOLS_STAMP)
	$(VENV)/bin/pytest -n 2 -q

test: lint typecheck unit

demo: $(STAMP)
	$(VENV)/bin/sg-churn-exporter demo

# Figures with their in-run baselines and targets (docs/benchmarks.md); BENCH_ARGS=--quick for a short run.
bench: $(STAMP)
	$(PY) -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache
