"""A real `prefect server start` on 127.0.0.1 and `boorugan serve` with a short interval: the
scheduler fires refresh runs by itself, new posts on the Danbooru-compatible server flow through to
a new evaluation, and both processes shut down."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT, tiny_overrides
from fakes.danbooru_server import FAST, DanbooruServer, make_posts

pytestmark = pytest.mark.slow
INTERVAL = 15  # s between scheduled refresh runs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(url: str, path: str, body: dict | None = None):
    req = urllib.request.Request(url + path, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="GET" if body is None else "POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def wait_for(what: str, check, timeout: float, procs: list[subprocess.Popen]):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            assert p.poll() is None, f"{p.args[:3]} exited with {p.returncode} while waiting for {what}"
        try:
            if out := check():
                return out
        except OSError:
            pass
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def completed_scheduled_runs(url: str, deployment_id: str, after: float) -> list[dict]:
    runs = api(url, "/flow_runs/filter", {"flow_runs": {"deployment_id": {"any_": [deployment_id]},
                                                        "state": {"type": {"any_": ["COMPLETED"]}}}, "limit": 50})
    return [r for r in runs if r["auto_scheduled"] and pd.Timestamp(r["start_time"]).timestamp() > after]


def test_served_refresh_runs_on_schedule(tmp_path):
    import mlflow

    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = dict(os.environ, PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_API_URL=url,
               PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_UI_ENABLED="false",
               PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="2", PREFECT_RUNNER_POLL_FREQUENCY="2",
               PREFECT_LOGGING_LEVEL="INFO", PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    bin_dir = Path(sys.executable).parent
    logs = {name: open(tmp_path / f"{name}.log", "w") for name in ("server", "serve")}
    procs: list[subprocess.Popen] = []
    work = tmp_path / "work"
    work.mkdir()
    try:
        server_proc = subprocess.Popen([str(bin_dir / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                       env=env, stdout=logs["server"], stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(server_proc)
        wait_for("the Prefect server", lambda: api(url, "/health") is True, 120, procs)

        with DanbooruServer(make_posts(16, size=40)) as danbooru:
            overrides = [*tiny_overrides(work), *FAST, f"scrape.danbooru.base_url={danbooru.url}"]
            cmd = [sys.executable, "-m", "pipeline", "serve", "--params", str(ROOT / "params.yaml"),
                   "--interval", str(INTERVAL), *[a for o in overrides for a in ("-S", o)]]
            serve_proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=logs["serve"], stderr=subprocess.STDOUT,
                                          start_new_session=True)
            procs.append(serve_proc)
            deployment = wait_for("the refresh deployment", lambda: api(url, "/deployments/name/boorugan-refresh/refresh"),
                                  60, procs)
            assert deployment["schedules"][0]["schedule"]["interval"] == INTERVAL

            first = wait_for("a scheduled refresh run to complete",
                             lambda: completed_scheduled_runs(url, deployment["id"], 0), 180, procs)
            metrics = json.loads((work / "metrics/dcgan.json").read_text())
            assert len(pd.read_parquet(work / "data/raw/manifest.parquet")) == 16

            added = time.time()
            danbooru.add_posts(make_posts(5, start_id=17, size=40))
            later = wait_for("a scheduled run after new posts",
                             lambda: completed_scheduled_runs(url, deployment["id"], added), 180, procs)
            assert len(pd.read_parquet(work / "data/raw/manifest.parquet")) == 21
            assert len(pd.read_parquet(work / "data/faces/index.parquet")) == 21
            assert json.loads((work / "runs/dcgan/train.json").read_text())["images"] == 21
            assert json.loads((work / "metrics/dcgan.json").read_text()) != metrics

            # the new evaluation is a stage run nested under that flow run's MLflow parent run
            evals = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                       filter_string=f"tags.pipeline_run = '{later[0]['id']}' and tags.stage = 'evaluate'")
            if not evals:  # a run after the one that picked the posts up had nothing to evaluate
                ids = [r["id"] for r in completed_scheduled_runs(url, deployment["id"], added)]
                evals = [r for i in ids for r in mlflow.search_runs(
                    search_all_experiments=True, output_format="list",
                    filter_string=f"tags.pipeline_run = '{i}' and tags.stage = 'evaluate'")]
            assert len(evals) == 1 and evals[0].data.tags.get("mlflow.parentRunId")
            assert first[0]["id"] not in {e.data.tags["pipeline_run"] for e in evals}
    finally:
        for p in reversed(procs):
            stop(p)
        for f in logs.values():
            f.close()
    assert all(p.poll() is not None for p in procs)
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "the Prefect server still listens"
