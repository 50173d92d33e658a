"""`dvc repro` trains and evaluates every enabled model of the zoo, and the report shows them all."""

from __future__ import annotations

import json
import uuid

import pytest
from test_e2e_dvc import TINY, copy_working_tree, git, ran_stages, repro, set_params

pytestmark = pytest.mark.slow
MODELS = {"dcgan_tags": {"ngf": 8, "ndf": 8, "nz": 8}, "sketch2image": {"ngf": 8, "ndf": 8, "blocks": 1}}


def test_dvc_repro_trains_every_enabled_model(tmp_path):
    repo = tmp_path / "repo"
    copy_working_tree(repo)
    (repo / "dvc.lock").unlink(missing_ok=True)
    values = {**TINY, ("train", "enabled"): list(MODELS)}
    for model, net in MODELS.items():
        values |= {("train", "models", model, "epochs"): 1, ("train", "models", model, "batch_size"): 16,
                   ("train", "models", model, "log_every"): 1}
        values |= {("train", "models", model, "net", k): v for k, v in net.items()}
    set_params(repo / "params.yaml", values)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "zoo e2e")

    log = repro(repo, f"zoo-{uuid.uuid4().hex[:8]}")
    assert {s for s in ran_stages(log) if "@" in s} == {f"{stage}@{m}" for m in MODELS for stage in ("train", "evaluate")}
    import torch

    state = torch.load(repo / "runs/dcgan_tags/checkpoint.pt", weights_only=True)
    assert state["meta"]["vocab"]["hair_color"]  # conditioned on the toy faces' known colours
    assert state["step"] == 3 and state["epoch"] == 1
    report = (repo / "reports/report.md").read_text()
    for model in MODELS:
        assert json.loads((repo / f"metrics/{model}.json").read_text())["ssl_fd"] > 0
        assert f"| {model} | {model} |" in report and (repo / f"reports/{model}_grid.png").exists()
