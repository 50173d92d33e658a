"""The MLflow run a model came from (params, metrics, a link), when the store can be reached.

mlflow is imported only when the page asks (2.4 s), and its absence, or a store that is not
there, is a reason shown on the page, never an error: the models play without it.
"""

from __future__ import annotations

import os
import time
from typing import Any

FRESH_S = 30.0  # evaluate adds eval_* to a finished run later: look again after this long


class RunInfo:
    def __init__(self, params):
        self.params = params
        self.cache: dict[str, tuple[float, dict[str, Any]]] = {}

    def _uri(self) -> str:
        from pipeline.core.tracking import repo_root, tracking_uri

        return tracking_uri(self.params, repo_root())

    def link(self, experiment_id: str, run_id: str) -> str:
        uri = self._uri()
        base = uri if uri.startswith(("http://", "https://")) else self.params.play.mlflow_ui
        return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"

    def describe(self, run_id: str | None) -> dict[str, Any]:
        """{"available": True, params, metrics, link, ...} or {"available": False, "reason": ...}."""
        if not run_id:
            return {"available": False, "reason": "train.json names no MLflow run (trained with tracking off?)"}
        hit = self.cache.get(run_id)
        if hit and time.monotonic() - hit[0] < FRESH_S:
            return hit[1]
        uri = self._uri()
        if uri.startswith("sqlite:///") and not os.path.exists(uri.removeprefix("sqlite:///")):
            return {"available": False, "reason": f"no MLflow store at {uri}"}  # do not create an empty one
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            return {"available": False, "reason": "mlflow is not installed here"}
        try:
            run = MlflowClient(uri).get_run(run_id)
        except Exception as e:  # noqa: BLE001 - a store that is down, a run deleted since
            return {"available": False, "reason": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}
        data, info = run.data, run.info
        out = {"available": True, "run_id": run_id, "experiment_id": info.experiment_id, "status": info.status,
               "start_time": info.start_time, "params": dict(sorted(data.params.items())),
               "metrics": {k: v for k, v in sorted(data.metrics.items())}, "commit": data.tags.get("git_commit", "")[:8],
               "link": self.link(info.experiment_id, run_id), "tracking_uri": uri}
        self.cache[run_id] = (time.monotonic(), out)
        return out
