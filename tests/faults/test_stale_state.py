"""What a kill -9 leaves behind is cleared by the next start of the same stage: the temporary files of
the writes it cut (``.<name>.<pid>@<host>.<random>.tmp``) and its MLflow run, which nothing else would
ever end (it becomes KILLED). A write that is still going on, another host's or another program's
file is never touched.

Real processes, killed with SIGKILL at a point a seeded generator picks; the test session's MLflow
store (tests/conftest.py sets MLFLOW_TRACKING_URI)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faults.harness import ROOT, cli, env, kill_when, rng, run, stray_tmp

from pipeline.core.layout import INCOMING

from conftest import tiny_overrides


def runs_of(experiment: str, stage: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id], f"tags.stage = '{stage}'")


def statuses(experiment: str, stage: str) -> list[str]:
    return sorted(r.info.status for r in runs_of(experiment, stage))


def project(root: Path, experiment: str, *extra: str) -> tuple[Path, list[str]]:
    """params.yaml and the overrides of a tiny project under ``root``, logging to ``experiment``."""
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")
    return root / "params.yaml", [*tiny_overrides(root), "crop.workers=1", "train.enabled=[dcgan]",
                                  f"tracking.experiment={experiment}", *extra]


def writing(folder: Path, suffix: str, at_least: int):
    """A kill point: ``at_least`` files of ``suffix`` written (in ``folder`` or a staging folder inside
    it) and a write under way (its temporary file)."""
    def now() -> bool:
        if not folder.is_dir():
            return False
        names = [p.name for p in folder.rglob("*")]
        return sum(n.endswith(suffix) for n in names) >= at_least and any(n.endswith(".tmp") for n in names)
    return now


def test_a_killed_crop_leaves_temporaries_and_a_running_run_that_the_next_crop_clears(tmp_path):
    from pipeline.params import load_params
    from pipeline.scrape.stage import scrape

    experiment = "faults-stale-crop"
    params, overrides = project(tmp_path, experiment, "scrape.toy.count=60", "scrape.toy.size=128", "crop.size=128")
    r = run(cli("crop", params=params, overrides=overrides), cwd=tmp_path, check=False)  # nothing scraped yet
    assert r.returncode == 1 and "manifest.parquet does not exist" in r.stderr, r.stderr
    assert statuses(experiment, "crop") == ["FAILED"]  # a failed stage's run ends FAILED

    typed = load_params(params, overrides)
    scrape(typed.scrape, typed.paths.raw)
    faces = tmp_path / "data" / "faces"
    point = rng("crop-kill").randrange(1, 30)
    k = kill_when(cli("crop", params=params, overrides=overrides), writing(faces, ".png", point), cwd=tmp_path, poll=0.001)
    assert not k.finished, k.stderr
    left = stray_tmp(faces)
    assert left, "the kill left no temporary file: the test would prove nothing"
    assert statuses(experiment, "crop") == ["FAILED", "RUNNING"]

    run(cli("crop", params=params, overrides=overrides), cwd=tmp_path)
    assert stray_tmp(tmp_path) == [], f"left by the kill at {point} faces: {left}"
    assert statuses(experiment, "crop") == ["FAILED", "FINISHED", "KILLED"]
    killed = next(r for r in runs_of(experiment, "crop") if r.info.status == "KILLED")
    assert "ended without closing the run" in killed.data.tags["killed_reason"]


def test_a_killed_scrape_leaves_a_running_run_that_the_next_scrape_ends_killed(tmp_path):
    experiment = "faults-stale-scrape"
    params, overrides = project(tmp_path, experiment, "scrape.toy.count=300", "scrape.toy.size=128")
    raw = tmp_path / "data" / "raw"
    point = rng("scrape-kill").randrange(5, 150)
    k = kill_when(cli("scrape", params=params, overrides=overrides), writing(raw, ".png", point), cwd=tmp_path, poll=0.001)
    assert not k.finished, k.stderr
    # the write seen under way may have been renamed before the signal landed; the pictures staged
    # for the commit that never came are half-done state all the same
    assert stray_tmp(raw) or any((raw / INCOMING).glob("*.png")), "the kill left nothing half-done: the test would prove nothing"
    assert statuses(experiment, "scrape") == ["RUNNING"]

    run(cli("scrape", params=params, overrides=overrides), cwd=tmp_path)
    assert stray_tmp(tmp_path) == [] and not (raw / INCOMING).exists()
    assert statuses(experiment, "scrape") == ["FINISHED", "KILLED"]


def test_a_kill_while_the_mlflow_store_is_made_leaves_none_or_a_whole_one(tmp_path):
    """MLflow makes a new SQLite store one migration at a time (65 tables, seconds), each table committed
    before its migration is recorded; a kill in between used to leave a file every later run refused
    ("table ... already exists"). The kill comes once the store being made holds a seeded number of tables."""
    import sqlite3

    from mlflow.tracking import MlflowClient

    store = tmp_path / "store" / "mlflow.db"
    store.parent.mkdir()
    uri = f"sqlite:///{store}"
    params, overrides = project(tmp_path, "faults-new-store")
    tables = rng("store-kill").randrange(25, 60)

    def half_made() -> bool:
        for p in store.parent.iterdir():  # the store itself, or the temporary it is made under
            if p.name == store.name or (p.name.startswith(f".{store.name}.") and p.name.endswith(".tmp")):
                try:
                    with contextlib.closing(sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=0.01)) as db:
                        return db.execute("select count(*) from sqlite_master where type='table'").fetchone()[0] >= tables
                except sqlite3.Error:  # locked by the writer at this instant
                    return False
        return False

    k = kill_when(cli("scrape", params=params, overrides=overrides), half_made, cwd=tmp_path, poll=0.002,
                  MLFLOW_TRACKING_URI=uri)
    assert not k.finished, k.stderr

    r = run(cli("scrape", params=params, overrides=overrides), cwd=tmp_path, check=False, MLFLOW_TRACKING_URI=uri)
    assert r.returncode == 0, f"after a kill at {tables} tables: {r.stderr[-3000:]}"
    exp = MlflowClient(uri).get_experiment_by_name("faults-new-store")
    assert [x.info.status for x in MlflowClient(uri).search_runs([exp.experiment_id])] == ["FINISHED"]
    assert stray_tmp(store.parent) == []


def live_writer(path: Path) -> subprocess.Popen:
    """A real process in the middle of an atomic write of ``path`` (it holds the temporary file)."""
    code = ("import sys, time\nfrom pipeline.core.atomic import atomic_path\n"
            f"with atomic_path({str(path)!r}) as tmp:\n"
            "    tmp.write_bytes(b'half')\n    print('writing', flush=True)\n    time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env(), stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    return proc


def test_the_sweep_never_touches_a_live_write_nor_files_it_did_not_make(tmp_path):
    from pipeline.core.atomic import FOREIGN_AGE, sweep_outputs
    from pipeline.core.procs import this_host

    out = tmp_path / "faces"
    out.mkdir()
    proc = live_writer(out / "a.png")
    try:
        (live,) = stray_tmp(tmp_path)
        other_host = out / ".b.png.4242@elsewhere.k2j3h4g5.tmp"
        old_other_host = out / ".c.png.4242@elsewhere.x8y7z6w5.tmp"
        someone_elses = [out / ".notes.txt.tmp", out / ".d.png.abcd1234.tmp"]  # not our writers' names
        for p in (other_host, old_other_host, *someone_elses):
            p.write_bytes(b"x")
        past = time.time() - FOREIGN_AGE - 60
        os.utime(old_other_host, (past, past))

        assert sweep_outputs(out) == [old_other_host]
        assert sorted(stray_tmp(tmp_path)) == sorted(
            [live, *(str(p.relative_to(tmp_path)) for p in (other_host, *someone_elses))])
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert sweep_outputs(out) == [tmp_path / live]  # its writer is dead now
    assert not (out / "a.png").exists()

    # a directory swap (pipeline.core.atomic.atomic_dir) cut between its renames: the old one comes back
    reports = tmp_path / "reports"
    old = tmp_path / f".reports.old-{proc.pid}@{this_host()}"
    old.mkdir()
    (old / "report.md").write_text("previous")
    sweep_outputs(reports)
    assert (reports / "report.md").read_text() == "previous" and not old.exists()


@pytest.mark.soak
@pytest.mark.parametrize("stage", ["scrape", "crop", "train"])
def test_many_seeded_kills_then_one_run_leave_no_temporary_and_no_running_run(tmp_path, stage):
    """Each kill at a point of the seeded generator; after a run to the end, nothing of them is left."""
    experiment = f"faults-soak-{stage}"
    params, overrides = project(tmp_path, experiment, "scrape.toy.count=400", "scrape.toy.size=128", "crop.size=128",
                                "train.models.dcgan.steps=60")
    if stage != "scrape":
        run(cli("scrape", params=params, overrides=overrides), cwd=tmp_path)
    if stage == "train":
        run(cli("crop", params=params, overrides=overrides), cwd=tmp_path)
    argv = cli(*([stage, "dcgan"] if stage == "train" else [stage]), params=params, overrides=overrides)
    r = rng(f"soak-{stage}")
    for _ in range(8):
        kill_when(argv, r.uniform(0.5, 8.0), cwd=tmp_path)
    run(argv, cwd=tmp_path)
    assert stray_tmp(tmp_path) == []
    got = statuses(experiment, stage)
    assert "RUNNING" not in got and set(got) <= {"KILLED", "FINISHED"} and "FINISHED" in got, got
