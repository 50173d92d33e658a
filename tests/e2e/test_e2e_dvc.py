"""`dvc repro` end to end in a temporary git repo made from the working tree, on tiny toy data."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

pytestmark = pytest.mark.slow
TINY = {
    ("scrape", "source"): "toy", ("scrape", "toy", "count"): 48, ("scrape", "toy", "size"): 32,
    ("crop", "detector"): "none", ("crop", "size"): 32, ("train", "device"): "cpu", ("train", "enabled"): ["dcgan"],
    ("train", "models", "dcgan", "epochs"): 2, ("train", "models", "dcgan", "batch_size"): 16,
    ("train", "models", "dcgan", "log_every"): 1, ("train", "models", "dcgan", "net", "ngf"): 8,
    ("train", "models", "dcgan", "net", "ndf"): 8, ("train", "models", "dcgan", "net", "nz"): 16,
    ("evaluate", "num_samples"): 32, ("evaluate", "feature_net", "epochs"): 1, ("evaluate", "feature_net", "width"): 8,
    ("evaluate", "inception", "download"): False, ("evaluate", "c2st", "steps"): 50, ("tag", "download"): False,
    ("evaluate", "holdout"): 0,  # steps counted in whole batches of all 48 faces
}


def set_params(path: Path, values: dict[tuple, object]) -> None:
    tree = yaml.safe_load(path.read_text())
    for keys, value in values.items():
        node = tree
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    path.write_text(yaml.safe_dump(tree, sort_keys=False))


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=boorugan-tests", "-c", "user.email=tests@boorugan.invalid", *args],
                          cwd=repo, check=True, capture_output=True, text=True).stdout


def copy_working_tree(dst: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True, text=True).stdout.split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("dvc-e2e")
    copy_working_tree(repo)
    for stale in ("dvc.lock",):
        (repo / stale).unlink(missing_ok=True)
    set_params(repo / "params.yaml", TINY)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "tiny e2e")
    return repo


def repro(repo: Path, pipeline_run: str) -> str:
    env = dict(os.environ, BOORUGAN_PIPELINE_RUN=pipeline_run, DVC_NO_ANALYTICS="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    out = subprocess.run([str(Path(sys.executable).parent / "dvc"), "repro"], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


def runs_of(pipeline_run: str):
    import mlflow

    return mlflow.search_runs(search_all_experiments=True, filter_string=f"tags.pipeline_run = '{pipeline_run}'",
                              output_format="list")


def ran_stages(log: str) -> set[str]:
    return {line.split("'")[1] for line in log.splitlines() if line.startswith("Running stage '")}


def test_dvc_repro_end_to_end(repo):
    first = f"e2e-{uuid.uuid4().hex[:8]}"
    log = repro(repo, first)
    assert ran_stages(log) == {"scrape", "crop", "tag", "labels", "train@dcgan", "evaluate@dcgan", "report"}

    import pandas as pd
    import torch
    from PIL import Image

    manifest = pd.read_parquet(repo / "data/raw/manifest.parquet")
    assert len(manifest) == 48 and manifest["md5"].is_unique
    assert all((repo / "data/raw" / p).exists() for p in manifest["path"])
    index = pd.read_parquet(repo / "data/faces/index.parquet")
    assert len(index) == 48 and set(index["md5"]) == set(manifest["md5"])
    with Image.open(repo / "data/faces" / index["path"][0]) as im:
        assert im.size == (32, 32)
    state = torch.load(repo / "runs/dcgan/checkpoint.pt", weights_only=True)
    assert state["step"] == 6 and state["epoch"] == 2
    for grid in ("epoch_001.png", "epoch_002.png"):
        with Image.open(repo / "runs/dcgan/samples" / grid) as im:
            im.verify()
    metrics = json.loads((repo / "metrics/dcgan.json").read_text())
    assert metrics["ssl_fd"] > 0 and metrics["num_fake"] == 32
    report = (repo / "reports/report.md").read_text()
    assert "| dcgan | dcgan |" in report and (repo / "reports/dcgan_grid.png").exists()
    shown = subprocess.run([str(Path(sys.executable).parent / "dvc"), "metrics", "show", "--json"], cwd=repo,
                           capture_output=True, text=True, check=True).stdout
    assert "ssl_fd" in shown
    dvc = str(Path(sys.executable).parent / "dvc")
    table = subprocess.run([dvc, "metrics", "show"], cwd=repo, capture_output=True, text=True, check=True).stdout
    assert "metrics/dcgan.json" in table and "c2st_acc" in table
    plots = subprocess.run([dvc, "plots", "show", "--json"], cwd=repo, capture_output=True, text=True, check=True).stdout
    assert "metrics/dcgan_history.csv" in plots
    assert (repo / "reports/index.html").exists()

    runs = runs_of(first)
    by_stage = {}
    for r in runs:
        by_stage.setdefault(r.data.tags["stage"], []).append(r)
    assert {k: len(v) for k, v in by_stage.items()} == {"scrape": 1, "crop": 1, "tag": 1, "labels": 1, "train": 1, "evaluate": 1, "report": 1}
    train = by_stage["train"][0]
    assert train.data.params["lr"] == "0.0002" and train.data.tags["model"] == "dcgan"
    assert train.data.tags.get("git_commit") and train.data.tags.get("data_hash")
    assert {"loss_d", "loss_g", "d_real", "d_fake", "eval_ssl_fd"} <= set(train.data.metrics)
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    assert len(client.get_metric_history(train.info.run_id, "loss_d")) == 6
    artifacts = {a.path for a in client.list_artifacts(train.info.run_id)}
    assert {"samples", "checkpoint", "losses.png"} <= artifacts
    assert by_stage["evaluate"][0].data.metrics["ssl_fd"] == pytest.approx(metrics["ssl_fd"])
    assert by_stage["scrape"][0].data.metrics["kept"] == 48

    # nothing changed: nothing runs, nothing is logged
    second = f"e2e-{uuid.uuid4().hex[:8]}"
    assert ran_stages(repro(repo, second)) == set()
    assert runs_of(second) == []

    # a training param changed: only what depends on it reruns
    set_params(repo / "params.yaml", {("train", "models", "dcgan", "lr"): 0.0005})
    third = f"e2e-{uuid.uuid4().hex[:8]}"
    assert ran_stages(repro(repo, third)) == {"train@dcgan", "evaluate@dcgan", "report"}
    assert sorted(r.data.tags["stage"] for r in runs_of(third)) == ["evaluate", "report", "train"]


def stale_stages(repo: Path) -> set[str]:
    dvc = str(Path(sys.executable).parent / "dvc")
    out = subprocess.run([dvc, "status", "--json"], cwd=repo, capture_output=True, text=True, check=True).stdout
    return set(json.loads(out or "{}"))


@pytest.mark.parametrize("core_file", ["pipeline/core/journal.py", "pipeline/core/images.py", "pipeline/core/vocab.py",
                                       "pipeline/core/atomic.py"])
def test_touching_a_core_module_stales_exactly_the_stages_that_import_it(repo, core_file):
    """After a full repro (the test above), a change to one shared module makes `dvc status` list
    every stage whose code imports it, and no other."""
    import importgraph

    assert stale_stages(repo) == set()
    importers = {s for s in importgraph.stage_table() if Path(core_file) in importgraph.closure(s)}
    expected = {f"{s}@dcgan" if s in ("train", "evaluate") else s for s in importers}
    assert importers, f"no stage imports {core_file}: pick another module"
    path = repo / core_file
    original = path.read_text()
    try:
        path.write_text(original + "\n# touched by the test\n")
        assert stale_stages(repo) == expected
    finally:
        path.write_text(original)
    assert stale_stages(repo) == set()


def test_editing_one_stages_settings_stales_that_stage_and_what_reads_it(repo):
    """Settings live per stage (pipeline/<stage>/params.py): a change to the train stage's settings
    module (a comment is enough for DVC's hash) makes `dvc status` list the stages that read the
    train section (train, evaluate, report) and none of the data stages, which before the split all
    depended on the one pipeline/params.py."""
    assert stale_stages(repo) == set()
    path = repo / "pipeline/train/params.py"
    original = path.read_text()
    try:
        path.write_text(original + "\n# a comment: help text edited\n")
        stale = stale_stages(repo)
        assert stale == {"train@dcgan", "evaluate@dcgan", "report"}
        assert not stale & {"scrape", "crop", "tag", "labels"}
    finally:
        path.write_text(original)
    assert stale_stages(repo) == set()
