# Two commands do everything: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint format services bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/atelier demo

services:
	scripts/ensure-services.sh

# The real-network quality tests read the VGG19 ImageNet weights from the Keras cache: fetched
# once (a verified copy is kept); without any source they skip, the rest of the suite runs.
test: $(STAMP) services
	ATELIER_VGG_WEIGHTS=imagenet $(BIN)/atelier weights fetch \
		|| echo "no VGG19 ImageNet weights: the real-network quality tests will skip"
	$(BIN)/pytest -n 4 --dist loadgroup --durations=15

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP) services
	$(BIN)/python -m bench.nst
	$(BIN)/python -m bench.time_to_quality
	$(BIN)/python -m bench.nst_sheet
	$(BIN)/python -m bench.video
	$(BIN)/python -m bench.segments
	$(BIN)/python -m bench.fast
	$(BIN)/python -m bench.faces
	$(BIN)/python -m bench.api
	$(BIN)/python -m bench.queue
	$(BIN)/python -m bench.scale

clean:
	rm -rf $(VENV) data out
