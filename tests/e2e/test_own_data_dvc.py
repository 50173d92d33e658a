"""A user's own data through `dvc repro`: a folder of unlabelled pictures with every model of the
default train.enabled (the conditional ones are skipped with the reason, the others trained and
reported), and toy faces sorted into hair_color=<value>/ folders (the conditional models learn
those labels: the toy colour check of their samples beats chance)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_e2e_dvc import TINY, copy_working_tree, git, ran_stages, repro, set_params

from conftest import ROOT

pytestmark = pytest.mark.slow
CONDITIONAL = ("dcgan_tags", "acgan", "cgan", "r3gan_tags")
LEARNERS = ("dcgan_tags", "acgan", "cgan")  # the toy hair-colour check below: steps each needs, measured
REASON = ("no labels for hair_color, eye_color: label faces with `boorugan label`, a labels CSV or a labelled folder, "
          "or turn on the tagger")
NETS = {"dcgan": {"ngf": 8, "ndf": 8, "nz": 16}, "dcgan_v3": {"ngf": 8, "ndf": 8, "nz": 16},
        "dcgan_tags": {"ngf": 16, "ndf": 16, "nz": 16}, "acgan": {"ngf": 16, "ndf": 16, "nz": 16},
        "cgan": {"hidden": 64, "layers": 2}, "gan_mlp": {"hidden": 32, "layers": 2},
        "sketch2image": {"ngf": 8, "ndf": 8, "blocks": 1},
        "r3gan": {"nz": 8, "width": 16, "blocks": 1, "group_width": 8},
        "r3gan_tags": {"nz": 8, "width": 16, "blocks": 1, "group_width": 8}}


def default_enabled() -> list[str]:
    return yaml.safe_load((ROOT / "params.yaml").read_text())["train"]["enabled"]


def toy_pictures(root: Path, n: int, labelled: bool) -> list[str]:
    """``n`` toy faces of 32 px under ``root`` (in ``hair_color=<value>/`` when ``labelled``); their hair colours."""
    from pipeline.core.toyfaces import draw_face, sample_labels

    rng = np.random.default_rng(0)
    hairs, eyes = sample_labels(rng, n)
    for i, (hair, eye) in enumerate(zip(hairs, eyes)):
        folder = root / f"hair_color={hair}" if labelled else root
        folder.mkdir(parents=True, exist_ok=True)
        draw_face(rng, 32, hair, eye).save(folder / f"face_{i:03d}.png")
    return hairs


def make_repo(tmp_path: Path, pictures: Path, models: list[str], steps: dict[str, int]) -> Path:
    repo = tmp_path / "repo"
    copy_working_tree(repo)
    (repo / "dvc.lock").unlink(missing_ok=True)
    values = {**TINY, ("scrape", "source"): "folder", ("scrape", "folder"): str(pictures), ("train", "enabled"): models}
    for m in models:
        values |= {("train", "models", m, "epochs"): 1, ("train", "models", m, "batch_size"): 16,
                   ("train", "models", m, "log_every"): 1}
        # a loss read (and an MLflow write) every 50 steps, not every step: on a busy CPU each costs ~1 s
        values |= {("train", "models", m, "steps"): steps[m], ("train", "models", m, "log_every"): 50} if m in steps else {}
        values |= {("train", "models", m, "net", k): v for k, v in NETS[m].items()}
    set_params(repo / "params.yaml", values)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "own data e2e")
    return repo


def test_unlabelled_folder_with_every_default_model(tmp_path):
    models = default_enabled()
    assert set(CONDITIONAL) <= set(models) and len(models) > len(CONDITIONAL)
    toy_pictures(tmp_path / "pictures", 24, labelled=False)
    repo = make_repo(tmp_path, tmp_path / "pictures", models, {})

    log = repro(repo, f"own-{uuid.uuid4().hex[:8]}")
    assert "Traceback" not in log
    assert {f"{s}@{m}" for m in models for s in ("train", "evaluate")} | {"report"} <= ran_stages(log)
    report = (repo / "reports/report.md").read_text()
    for m in models:
        assert f"| {m} |" in report, m
        info = json.loads((repo / f"runs/{m}/train.json").read_text())
        metrics = json.loads((repo / f"metrics/{m}.json").read_text())
        if m in CONDITIONAL:
            assert info["skipped"] == REASON and not (repo / f"runs/{m}/checkpoint.pt").exists()
            assert metrics == {}
            assert json.loads((repo / f"metrics/{m}.status.json").read_text())["skipped"] == REASON
            row = next(line for line in report.splitlines() if line.startswith(f"| {m} |"))
            assert "no labels for hair_color, eye_color" in row or ("skipped" in row and REASON in report), row
        else:
            assert info["steps"] > 0 and metrics["ssl_fd"] > 0, m
    assert f"train@{CONDITIONAL[0]}: skipped: {REASON}" in log


def test_hair_colour_folders_train_the_conditional_models(tmp_path):
    """No manifest labels: only the folder names say the hair colour; the models learn it."""
    import pandas as pd
    import torch

    from pipeline.core.toyfaces import hair_colour_of
    from pipeline.evaluate.sample import drawn_faces

    hairs = toy_pictures(tmp_path / "pictures", 48, labelled=True)
    steps = {"cgan": 200, "dcgan_tags": 300, "acgan": 600}  # bench/RESULTS.md "zoo": cgan learns fastest, acgan slowest
    repo = make_repo(tmp_path, tmp_path / "pictures", list(LEARNERS), steps)
    log = repro(repo, f"own-{uuid.uuid4().hex[:8]}")
    assert "Traceback" not in log and "skipped" not in log

    manifest = pd.read_parquet(repo / "data/raw/manifest.parquet")
    assert "hair_color" not in manifest.columns and manifest["label:hair_color"].notna().all()
    labels = pd.read_parquet(repo / "data/labels.parquet")
    assert (labels["source_hair_color"] == "folder").all() and sorted(labels["hair_color"]) == sorted(hairs)
    chance = 1 / len(set(hairs))
    for m in LEARNERS:
        info = json.loads((repo / f"runs/{m}/train.json").read_text())
        assert info["steps"] == steps[m] and "skipped" not in info
        fake, requested = drawn_faces(repo / f"runs/{m}/checkpoint.pt", 256, torch.device("cpu"), seed=1)
        assert set(requested) == {"hair_color"}  # no face knows an eye colour: conditioned on hair alone
        accuracy = np.mean([hair_colour_of(f) == want for f, want in zip(fake, requested["hair_color"])])
        assert accuracy > 2 * chance, (m, accuracy, chance)
