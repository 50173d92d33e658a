"""Fast checks of the flows' helpers: sharding, schedules shared by prefect.yaml and serve, when
dvc.lock may be written, and the run lock."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from conftest import ROOT


def test_split_keeps_order_and_whole_batches():
    from pipeline.core.shards import split

    items = list(range(23))
    chunks = split(items, 3, align=4)
    assert [x for c in chunks for x in c] == items
    assert [len(c) for c in chunks] == [8, 8, 7] and all(len(c) % 4 == 0 for c in chunks[:-1])
    assert split(items[:3], 5) == [[0], [1], [2]] and split([], 4) == []
    with pytest.raises(ValueError, match="shards"):
        split(items, 0)


def test_serve_uses_prefect_yaml_schedule_unless_told_otherwise():
    from prefect.flows import load_flow_from_entrypoint

    from flows.serve import deployments

    spec = {d["name"]: d for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]}
    cron = spec["refresh"]["schedules"][0]
    refresh, pipeline = deployments("params.yaml", [])
    assert refresh.schedules[0].schedule.cron == cron["cron"] and refresh.schedules[0].schedule.timezone == cron["timezone"]
    assert refresh.concurrency_limit == spec["refresh"]["concurrency_limit"]["limit"] == 1 and pipeline.schedules == []
    assert deployments("params.yaml", [], cron="*/5 * * * *")[0].schedules[0].schedule.cron == "*/5 * * * *"
    assert deployments("params.yaml", [], interval=30)[0].schedules[0].schedule.interval.total_seconds() == 30
    for d in (refresh, pipeline):  # the entrypoints prefect.yaml names load the same flows
        assert load_flow_from_entrypoint(spec[d.name]["entrypoint"]).name == load_flow_from_entrypoint(d.entrypoint).name


def test_serve_help_is_instant_and_lists_schedule_options():
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "pipeline", "serve", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--cron" in out.stdout and "--interval" in out.stdout
    assert " prefect" not in out.stderr and "mlflow" not in out.stderr  # nothing heavy imported


def test_dvc_lock_is_written_only_for_the_projects_own_params(tmp_path, monkeypatch):
    from flows.orchestration import dvc_root
    from pipeline.params import load_params

    (tmp_path / ".dvc").mkdir()
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    params = load_params(tmp_path / "params.yaml", [])
    monkeypatch.chdir(tmp_path)
    assert dvc_root("params.yaml", [], params) == tmp_path
    assert dvc_root("params.yaml", ["train.seed=1"], params) is None  # outputs params.yaml does not describe
    off = load_params(tmp_path / "params.yaml", ["orchestration.dvc_commit=false"])
    assert dvc_root("params.yaml", [], off) is None
    monkeypatch.chdir(ROOT)
    assert dvc_root(str(tmp_path / "params.yaml"), [], params) is None  # run from elsewhere: relative outs differ


def test_lock_skip_and_wait_timeout(tiny_params):
    from flows.orchestration import Busy, run_lock
    from pipeline.core.errors import StageError

    skip = tiny_params.model_copy(update={"orchestration": tiny_params.orchestration.model_copy(update={"overlap": "skip"})})
    wait = tiny_params.model_copy(update={"orchestration": tiny_params.orchestration.model_copy(update={"lock_timeout": 1.0})})
    with run_lock(tiny_params, "first") as times:
        assert times["acquired"] >= times["asked"]
        with pytest.raises(Busy, match="first"):
            with run_lock(skip, "second"):
                pass
        with pytest.raises(StageError, match="lock_timeout"):
            with run_lock(wait, "third"):
                pass
    with run_lock(skip, "after"):  # released when the holder leaves
        pass
