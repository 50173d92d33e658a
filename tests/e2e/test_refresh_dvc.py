"""After a refresh flow run in a DVC project, `dvc status` is clean and dvc.lock describes the
outputs on disk: a real `dvc repro` afterwards finds nothing to do (temp git repo, real dvc)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_e2e_dvc import TINY, copy_working_tree, git, ran_stages, set_params

from fakes.danbooru_server import DanbooruServer, make_posts

pytestmark = pytest.mark.slow
ALL = {"scrape", "crop", "tag", "labels", "train@dcgan", "evaluate@dcgan", "report"}


def dvc(repo: Path, *args: str) -> str:
    env = dict(os.environ, DVC_NO_ANALYTICS="1", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    out = subprocess.run([str(Path(sys.executable).parent / "dvc"), *args], cwd=repo, env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


def refresh(repo: Path, monkeypatch):
    from flows.refresh import refresh_flow

    monkeypatch.chdir(repo)
    state = refresh_flow(params_path="params.yaml", overrides=[], return_state=True)
    assert state.is_completed(), state
    return state.result()


def assert_lock_true(repo: Path) -> dict:
    """Clean status, every stage locked, the lock's params those of params.yaml, its metric hash the file's."""
    assert json.loads(dvc(repo, "status", "--json").strip() or "{}") == {}
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert set(lock) == ALL
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert lock["train@dcgan"]["params"]["params.yaml"]["train.models.dcgan"] == params["train"]["models"]["dcgan"]
    metric = next(o for o in lock["evaluate@dcgan"]["outs"] if o["path"] == "metrics/dcgan.json")
    assert metric["md5"] == hashlib.md5((repo / "metrics/dcgan.json").read_bytes()).hexdigest()
    assert ran_stages(dvc(repo, "repro")) == set()  # the proof: DVC itself sees nothing to redo
    return lock


def test_refresh_keeps_dvc_lock_true(prefect_harness, tmp_path, monkeypatch):
    repo = tmp_path / "project"
    repo.mkdir()
    copy_working_tree(repo)
    (repo / "dvc.lock").unlink(missing_ok=True)
    with DanbooruServer(make_posts(24, size=40)) as server:
        set_params(repo / "params.yaml", {**TINY, ("scrape", "source"): "danbooru",
                                          ("scrape", "danbooru", "base_url"): server.url,
                                          ("scrape", "danbooru", "tags"): "", ("scrape", "danbooru", "mode"): "incremental",
                                          ("scrape", "danbooru", "limit"): 100, ("scrape", "danbooru", "rate"): 10,
                                          ("scrape", "danbooru", "min_width"): 0, ("scrape", "danbooru", "min_height"): 0})
        git(repo, "init", "-q")
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "project")

        first = refresh(repo, monkeypatch)
        assert first["trained"] == ["dcgan"] and first["crop"]["faces"] == 24
        lock = assert_lock_true(repo)

        server.add_posts(make_posts(6, start_id=25, size=40))
        second = refresh(repo, monkeypatch)
        assert second["scrape"]["new"] == 6 and second["trained"] == ["dcgan"] and second["crop"]["faces"] == 30
        again = assert_lock_true(repo)
        faces_hash = lambda lk: next(o["md5"] for o in lk["crop"]["outs"] if o["path"] == "data/faces")  # noqa: E731
        assert faces_hash(again) != faces_hash(lock)

        # nothing new: nothing trained, dvc.lock unchanged, still clean
        before = (repo / "dvc.lock").read_text()
        third = refresh(repo, monkeypatch)
        assert third["trained"] == [] and "report" not in third
        assert (repo / "dvc.lock").read_text() == before
        assert_lock_true(repo)
