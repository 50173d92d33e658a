"""Where every stage's outputs live, by name: the one module a downstream stage reads to find an
upstream stage's files, so no stage imports another stage to learn a file name.

Folders come from ``params.paths``; the names inside them are fixed here.
"""

from __future__ import annotations

from pathlib import Path

# scrape -> paths.raw
MANIFEST = "manifest.parquet"        # one row per kept image: id, md5, ext, size, origin, post metadata
FOLDER_LABEL = "label:"              # manifest columns label:<attribute> (or label:tags): a labelled folder's raw values
FOLDER_LABEL_ORIGIN = "label_origin"  # where those values were read (a folder, or a CSV and its line)
WORKSPACE = "workspace.json"         # which scrapes own the folder (source + search) and a commit a kill cut short
INCOMING = ".incoming"               # a toy/folder run's new files until its manifest names them
DANBOORU_JOURNAL = "danbooru.jsonl"  # the Danbooru source's append-only record of every decision
# crop -> paths.faces
INDEX = "index.parquet"              # one row per face: face_id, source_id, md5, box, score, path, ...
SOURCES = "sources.parquet"          # one row per raw image: outcome, face count, crop config digest
DUPLICATES = "duplicates.parquet"    # near-duplicate faces left out of the index
STORE = "faces.u8"                   # every face's pixels, packed (pipeline/core/facestore.py); index column ``row``
CROP_RECORD = b"boorugan.crop"       # the index's Parquet metadata key of crop's commit record (config, tables, store)
STAGED = ".next"                     # crop's <table>.next: written before the commit, moved in after it
# tag -> paths.tags: a probability column per tag, named with this prefix
PROB_PREFIX = "p:"
# train -> paths.runs/<model>/
CHECKPOINT = "checkpoint.pt"
TRAIN_SUMMARY = "train.json"
# evaluate -> paths.metrics/<model>.json and its history
HISTORY_SUFFIX = "_history.csv"
CLOSEST_SUFFIX = "_closest.png"      # samples beside their nearest training faces (the memorisation check)
STATUS_SUFFIX = ".status.json"       # why metrics are missing ({"unavailable": {metric: reason}, "skipped": reason})


def manifest_path(raw_dir: str | Path) -> Path:
    return Path(raw_dir) / MANIFEST


def workspace_path(raw_dir: str | Path) -> Path:
    return Path(raw_dir) / WORKSPACE


def index_path(faces_dir: str | Path) -> Path:
    return Path(faces_dir) / INDEX


def store_path(faces_dir: str | Path) -> Path:
    return Path(faces_dir) / STORE


def run_dir(runs_dir: str | Path, model: str) -> Path:
    return Path(runs_dir) / model


def checkpoint_path(runs_dir: str | Path, model: str) -> Path:
    return run_dir(runs_dir, model) / CHECKPOINT


def metrics_path(metrics_dir: str | Path, model: str) -> Path:
    return Path(metrics_dir) / f"{model}.json"


def status_path(metrics_dir: str | Path, model: str) -> Path:
    """The sidecar of ``metrics_path``: reasons (strings) kept out of the DVC metrics file, which holds numbers only."""
    return Path(metrics_dir) / f"{model}{STATUS_SUFFIX}"


def history_path(metrics_dir: str | Path, model: str) -> Path:
    return Path(metrics_dir) / f"{model}{HISTORY_SUFFIX}"


def closest_path(metrics_dir: str | Path, model: str) -> Path:
    return Path(metrics_dir) / f"{model}{CLOSEST_SUFFIX}"
