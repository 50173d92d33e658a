"""`dvc repro labels` in a temporary repo: scrape -> crop -> tag -> labels on tiny toy faces, the tag
stage reading small official-format weights the test made (tag.weights_dir), manual labels from the
toy source's known hair colours."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from test_e2e_dvc import copy_working_tree, git, ran_stages, set_params

from fakes.i2v_tiny import tag_names, write_weights

pytestmark = pytest.mark.slow


def repro(repo: Path, target: str) -> str:
    env = dict(os.environ, DVC_NO_ANALYTICS="1", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    out = subprocess.run([str(Path(sys.executable).parent / "dvc"), "repro", target], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


def test_dvc_repro_tags_and_labels_with_test_weights(tmp_path):
    from pipeline.params import VocabularyParams

    weights = write_weights(tmp_path / "weights", tag_names(VocabularyParams().tags()), seed=2)
    repo = tmp_path / "repo"
    repo.mkdir()
    copy_working_tree(repo)
    (repo / "dvc.lock").unlink(missing_ok=True)
    set_params(repo / "params.yaml", {
        ("scrape", "source"): "toy", ("scrape", "toy", "count"): 16, ("scrape", "toy", "size"): 32,
        ("crop", "detector"): "none", ("crop", "size"): 32,
        ("tag", "enabled"): True, ("tag", "weights_dir"): str(weights), ("tag", "download"): False,
        ("tag", "device"): "cpu", ("tracking", "enabled"): False})
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "tiny tag e2e")

    assert ran_stages(repro(repo, "labels")) == {"scrape", "crop", "tag", "labels"}
    tags = pd.read_parquet(repo / "data/tags.parquet")
    assert len(tags) == 16 and tags["p:blonde hair"].between(0, 1).all()
    first = pd.read_parquet(repo / "data/labels.parquet")
    assert len(first) == 16 and set(first["source_hair_color"]) <= {"i2v", "none"}

    # manual labels (the toy source's true hair colours, keyed by source md5): only labels reruns
    manifest = pd.read_parquet(repo / "data/raw/manifest.parquet")
    (repo / "labels/manual.csv").write_text("md5,hair_color\n" + "".join(f"{m},{h}\n" for m, h in zip(manifest["md5"], manifest["hair_color"])))
    assert ran_stages(repro(repo, "labels")) == {"labels"}
    merged = pd.read_parquet(repo / "data/labels.parquet").merge(pd.read_parquet(repo / "data/faces/index.parquet"), on="face_id")
    truth = dict(zip(manifest["md5"], manifest["hair_color"]))
    assert (merged["hair_color"] == merged["md5"].map(truth)).all() and (merged["source_hair_color"] == "manual").all()
    assert (repo / "data/labels_vocab.json").exists() and (repo / "data/label_conflicts.csv").exists()
    assert ran_stages(repro(repo, "labels")) == set()
