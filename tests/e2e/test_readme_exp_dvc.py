"""The README's ``dvc exp run`` block, as written, in a temporary git repository made from the working
tree, with tiny-data overrides appended (DVC applies the last ``-S`` for a key): every key the README
overrides must exist in params.yaml, as DVC demands, and the run must leave ``git status`` clean."""

from __future__ import annotations

import json
import subprocess

import pytest
from test_e2e_dvc import copy_working_tree, git, set_params
from test_readme import BIN, _argv, _env, blocks

pytestmark = pytest.mark.slow

# Tiny data goes into the temporary repo's params.yaml (keys the README does not set); the README's own
# keys get tiny values appended on its command line, where they must already exist in params.yaml.
TINY_FILE = {("scrape", "toy", "count"): 48, ("scrape", "toy", "size"): 32, ("crop", "size"): 32, ("train", "device"): "cpu",
             **{("train", "models", m, k): v for m in ("dcgan", "dcgan_tags")
                for k, v in (("batch_size", 16), ("log_every", 1), ("net", {"nz": 16, "ngf": 8, "ndf": 8}))},
             ("evaluate", "num_samples"): 32, ("evaluate", "feature_net", "epochs"): 1, ("evaluate", "feature_net", "width"): 8,
             ("evaluate", "inception", "download"): False, ("evaluate", "c2st", "steps"): 50, ("tag", "download"): False}
TINY_APPENDED = ["train.models.dcgan.steps=3", "train.models.dcgan_tags.steps=3"]


def test_readme_dvc_exp_run_works_on_tiny_data(tmp_path):
    repo = tmp_path / "repo"
    copy_working_tree(repo)
    (repo / "dvc.lock").unlink(missing_ok=True)
    set_params(repo / "params.yaml", TINY_FILE)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "readme exp")
    (commands,) = blocks("dvc-exp")
    assert commands[0] == "source .venv/bin/activate"  # the test's PATH puts the venv first instead
    ran = {}
    for command in commands[1:]:
        argv = _argv(command)
        if argv[:3] == ["dvc", "exp", "run"]:
            argv += [a for kv in TINY_APPENDED for a in ("-S", kv)]
        argv[0] = str(BIN / argv[0])
        out = subprocess.run(argv, cwd=repo, env=_env(), capture_output=True, text=True, timeout=1200)
        assert out.returncode == 0, (command, out.stdout[-3000:], out.stderr[-3000:])
        ran[" ".join(argv[1:3])] = out.stdout
    assert "train@dcgan_tags" in ran["exp run"] and "report" in ran["exp run"]
    assert "Experiment" in ran["exp show"]
    # what the table shows, read whole: the experiment's params and each model's metrics
    shown = subprocess.run([str(BIN / "dvc"), "exp", "show", "--json"], cwd=repo, env=_env(), capture_output=True, text=True,
                           timeout=300, check=True).stdout
    experiments = [e for row in json.loads(shown) for e in row.get("experiments") or []]
    assert experiments, f"dvc exp show lists no experiment:\n{shown[:3000]}"
    data = experiments[0]["revs"][0]["data"]
    params = data["params"]["params.yaml"]["data"]
    assert params["train"]["models"]["dcgan_tags"]["steps"] == 3 and params["scrape"]["source"] == "toy"
    metrics = data["metrics"]
    for model in ("dcgan", "dcgan_tags"):
        assert metrics[f"metrics/{model}.json"]["data"]["ssl_fd"] > 0, f"no metrics for {model}:\n{json.dumps(metrics)[:3000]}"
    # dvc exp run leaves the experiment applied: its params and dvc.lock, nothing else (outputs are ignored)
    changed = {line[3:] for line in git(repo, "status", "--porcelain", "--untracked-files=all").splitlines()}
    assert changed <= {"params.yaml", "dvc.lock"}, f"the run left files git sees: {sorted(changed)}"
