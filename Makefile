# One entry point for people and CI. Every target creates .venv and installs into it first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(CURDIR)/$(VENV)/bin
# DVC stage commands run the first `python` on PATH: make it the venv's.
export PATH := $(BIN):$(PATH)

.PHONY: install run demo demo-play test ui flow docs docs-serve clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $@

## run: the whole pipeline with DVC (scrape Danbooru -> crop -> tag -> labels -> train -> evaluate -> report); needs internet
run: install
	BOORUGAN_PIPELINE_RUN=$${BOORUGAN_PIPELINE_RUN:-make-$$(date +%Y%m%dT%H%M%S)} $(BIN)/dvc repro
	@printf '%s\n' "run: done. The report:     reports/report.md (one self-contained page: reports/index.html)" \
	  "     Draw from the models: .venv/bin/boorugan play  (http://127.0.0.1:8766/)" \
	  "     Every run in MLflow:  make ui                  (http://127.0.0.1:5000)"

# The demo's own workspace: every output under demo/ (its own labels file too) and its own MLflow
# experiment, so it never touches data/, runs/, metrics/, reports/ or labels/ of `make run`.
DEMO_WORKSPACE := -S paths.raw=demo/data/raw -S paths.faces=demo/data/faces -S paths.tags=demo/data/tags.parquet \
        -S paths.labels=demo/data/labels.parquet -S paths.labels_vocab=demo/data/labels_vocab.json \
        -S paths.label_conflicts=demo/data/label_conflicts.csv -S paths.runs=demo/runs -S paths.metrics=demo/metrics \
        -S paths.reports=demo/reports -S labels.manual=demo/labels/manual.csv -S tracking.experiment=boorugan-demo
# The demo: 2,048 toy faces at 32 px, one unconditional and one conditional DCGAN trained long enough
# to draw faces and obey the hair colour on 2 CPU cores in a few minutes (README: "The demo").
DEMO := $(DEMO_WORKSPACE) -S scrape.source=toy -S crop.detector=none -S scrape.toy.count=2048 -S scrape.toy.size=32 -S crop.size=32 \
        -S train.enabled=[dcgan,dcgan_tags] -S train.device=cpu \
        -S train.models.dcgan.steps=800 -S train.models.dcgan.log_every=50 \
        -S train.models.dcgan.net.nz=32 -S train.models.dcgan.net.ngf=32 -S train.models.dcgan.net.ndf=32 \
        -S train.models.dcgan_tags.steps=500 -S train.models.dcgan_tags.log_every=50 \
        -S train.models.dcgan_tags.net.nz=32 -S train.models.dcgan_tags.net.ngf=32 -S train.models.dcgan_tags.net.ndf=32 \
        -S evaluate.feature_net.epochs=2 -S evaluate.feature_net.max_images=2048

## demo: the same stages offline on toy faces: two models that visibly learn, evaluated and reported (one Prefect flow run), all in demo/
demo: install
	$(BIN)/python -m pipeline flow $(DEMO)
	@printf '%s\n' "demo: done. The report:   demo/reports/report.md (one self-contained page: demo/reports/index.html)" \
	  "      Draw from the models: make demo-play  (boorugan play over demo/runs, http://127.0.0.1:8766/)" \
	  "      Every run in MLflow:  make ui         (http://127.0.0.1:5000, experiment boorugan-demo)"

## demo-play: the play page over the demo's models (demo/runs)
demo-play: install
	$(BIN)/python -m pipeline play $(DEMO)

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

## docs: the docs site into site/ (mkdocs build --strict: a broken link fails); docs-serve previews it
docs: install
	$(BIN)/mkdocs build --strict

docs-serve: install
	$(BIN)/mkdocs serve

clean:
	rm -rf data runs metrics reports demo mlruns mlflow.db dvc.lock dvc_plots site build dist
