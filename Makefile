# One entry point for people and CI. Every target creates .venv and installs into it first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(CURDIR)/$(VENV)/bin
# DVC stage commands run the first `python` on PATH: make it the venv's.
export PATH := $(BIN):$(PATH)

.PHONY: install run demo test ui flow clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $@

## run: the whole pipeline with DVC (scrape Danbooru -> crop -> tag -> labels -> train -> evaluate -> report); needs internet
run: install
	BOORUGAN_PIPELINE_RUN=$${BOORUGAN_PIPELINE_RUN:-make-$$(date +%Y%m%dT%H%M%S)} $(BIN)/dvc repro

## demo: the same stages offline: toy faces instead of Danbooru, no face detector (one Prefect flow run)
demo: install
	$(BIN)/python -m pipeline flow -S scrape.source=toy -S crop.detector=none

## test: lint, then the whole test suite (offline, CPU)
test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

## ui: the MLflow UI over this repository's runs, on 127.0.0.1:5000
ui: install
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port 5000

## flow: the same pipeline as one Prefect flow run
flow: install
	$(BIN)/python -m pipeline flow

clean:
	rm -rf data runs metrics reports mlruns mlflow.db dvc.lock
