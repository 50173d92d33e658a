"""Third-party log lines are quiet by default and come back with --verbose."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

from conftest import ROOT


def _levels() -> dict[str, bool]:
    return {name: logging.getLogger(name).isEnabledFor(logging.INFO)
            for name in ("httpx", "prefect.task_runs", "docket", "pipeline.train.loop", "prefect.flow_runs")}


def test_quiet_by_default_and_verbose_brings_them_back(monkeypatch):
    from pipeline.cli import quiet_third_party

    for name in ("BOORUGAN_VERBOSE", "PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL", "PREFECT_SERVER_ANALYTICS_ENABLED",
                 "MLFLOW_LOGGING_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    saved = {n: logging.getLogger(n).level for n in ("httpx", "prefect.task_runs", "docket")}
    # what earlier tests in this process left (Prefect sets "prefect" to its configured level when a flow
    # runs): start from a fresh process's loggers, so only quiet_third_party decides what is heard
    ours = {n: logging.getLogger(n).level for n in ("", "prefect", "prefect.flow_runs", "pipeline", "pipeline.train.loop")}
    for name in ours:
        logging.getLogger(name).setLevel(logging.NOTSET)
    try:
        logging.getLogger().setLevel(logging.INFO)
        quiet_third_party(False)
        quiet = _levels()
        assert not quiet["httpx"] and not quiet["prefect.task_runs"] and not quiet["docket"]
        assert quiet["pipeline.train.loop"] and quiet["prefect.flow_runs"]  # ours, and the flows' own lines, stay
        # Prefect sets its loggers' levels from its own logging.yml when it starts: told through its env overrides
        assert os.environ["PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL"] == "WARNING"
        assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"  # its telemetry heartbeat's tracebacks
        assert os.environ["MLFLOW_LOGGING_LEVEL"] == "WARNING"  # mlflow, likewise, sets its level when imported
        for name in saved:
            logging.getLogger(name).setLevel(logging.NOTSET)
        quiet_third_party(True)
        assert all(_levels().values())
    finally:
        for name, level in {**saved, **ours}.items():
            logging.getLogger(name).setLevel(level)


def test_every_command_takes_verbose():
    out = subprocess.run([sys.executable, "-m", "pipeline", "scrape", "--help"], cwd=ROOT, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
    assert out.returncode == 0 and "--verbose" in out.stdout
