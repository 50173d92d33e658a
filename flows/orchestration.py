"""What the Prefect flows decide between stages: one flow run at a time per output tree, keeping
dvc.lock true, and the per-run summary table (which models need retraining outside DVC is each
stage's ``outdated`` rule in pipeline/stages.py).

Pure helpers with no Prefect import, so they are tested (and reusable) without a server.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.core.errors import StageError

if TYPE_CHECKING:
    from pipeline.params import Params

log = logging.getLogger(__name__)


class Busy(Exception):
    """Another flow run holds the lock on these outputs."""


def lock_path(params: Params) -> Path:
    """One lock per output tree (the absolute faces folder), outside the repo so git and DVC
    never see it; two flow runs on different trees do not block each other."""
    from pipeline.core.cache import cache_dir

    key = hashlib.sha1(str(Path(params.paths.faces).resolve()).encode()).hexdigest()[:16]
    return cache_dir() / "locks" / f"flow-{key}.lock"


@contextlib.contextmanager
def run_lock(params: Params, owner: str) -> Iterator[dict[str, float]]:
    """Hold the output tree's lock for a flow run. ``orchestration.overlap``: ``wait`` polls until
    the running one ends (StageError after ``lock_timeout``), ``skip`` raises Busy at once. An
    OS-level lock (flock) is released by the kernel when its holder dies: no stale lock files."""
    import fcntl

    orch = params.orchestration
    path = lock_path(params)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    times: dict[str, float] = {"asked": time.time()}
    try:
        deadline = time.monotonic() + orch.lock_timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = Path(path).read_text(errors="replace").strip() or "another flow run"
                if orch.overlap == "skip":
                    raise Busy(f"{holder} is still running on {params.paths.faces}; "
                               "skipping (orchestration.overlap=skip)") from None
                if time.monotonic() > deadline:
                    raise StageError(f"waited {orch.lock_timeout:.0f} s for {holder} on {params.paths.faces}; "
                                     f"raise orchestration.lock_timeout or stop it") from None
                time.sleep(0.5)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"flow run {owner} (pid {os.getpid()})".encode(), 0)
        times["acquired"] = time.time()
        yield times
    finally:
        times["released"] = time.time()
        os.close(fd)  # closing the descriptor drops the flock


# --- DVC: the flow runs the stage functions, then records them like dvc repro would ------------

def dvc_root(params_path: str | Path, overrides: list[str], params: Params) -> Path | None:
    """The DVC project whose dvc.lock a flow run must keep true, or None: only when the flow runs
    the project's own params.yaml without overrides from that directory (with overrides the
    outputs are not what params.yaml says, and recording them would make dvc.lock lie)."""
    root = Path(params_path).resolve().parent
    if not params.orchestration.dvc_commit or not (root / "dvc.yaml").exists() or not (root / ".dvc").is_dir():
        return None
    if Path(params_path).name != "params.yaml" or Path.cwd().resolve() != root:
        log.warning("not recording in dvc.lock: the flow must run from %s with its params.yaml", root)
        return None
    if overrides:
        log.warning("not recording in dvc.lock: -S overrides make outputs that params.yaml does not describe; "
                    "`dvc status` will show the stages as changed (use dvc exp run -S ... to track them)")
        return None
    return root


def _dvc(root: Path, *args: str) -> str:
    exe = Path(sys.executable).with_name("dvc")
    cmd = [str(exe) if exe.exists() else "dvc", *args]
    out = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=dict(os.environ, DVC_NO_ANALYTICS="1"))
    if out.returncode:
        raise StageError(f"`dvc {' '.join(args)}` failed in {root}: {(out.stderr or out.stdout).strip()[-2000:]}")
    return out.stdout


def dvc_commit(root: Path, stages: list[str]) -> None:
    """Record ``stages`` (just run by the flow from params.yaml) in dvc.lock, caching their outputs."""
    if stages:
        _dvc(root, "commit", "--force", "--quiet", *stages)


def dvc_stale(root: Path) -> set[str]:
    """Stage names ``dvc status`` reports as changed (``train@dcgan``, ``report``, ...)."""
    text = _dvc(root, "status", "--json").strip()
    return set(json.loads(text)) if text else set()


# --- the per-run summary -----------------------------------------------------------------------

def metrics_table(params: Params, run_ids: dict[str, str]) -> str:
    """Markdown: one row per enabled model with its metrics, then the MLflow run id of every stage
    run of this flow run (so a run page links straight to the numbers and the runs behind them)."""
    rows = []
    for name in params.train.enabled:
        p = Path(params.paths.metrics) / f"{name}.json"
        rows.append((name, json.loads(p.read_text()) if p.exists() else {}))
    keys = sorted({k for _, m in rows for k, v in m.items() if isinstance(v, (int, float))})
    lines = ["| model | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for name, m in rows:
        lines.append(f"| {name} | " + " | ".join(_cell(m.get(k)) for k in keys) + " |")
    lines += ["", "| stage run | MLflow run id |", "|---|---|"]
    lines += [f"| {stage} | `{rid}` |" for stage, rid in run_ids.items()]
    return "\n".join(lines) + "\n"


def _cell(v: Any) -> str:
    return "n/a" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))


def stage_run_ids(params: Params, parent_id: str | None) -> dict[str, str]:
    """``{run name: run id}`` of the stage runs nested under a flow's parent run, oldest first."""
    if not parent_id:
        return {}
    from mlflow.tracking import MlflowClient

    from pipeline.core.tracking import repo_root, tracking_uri

    client = MlflowClient(tracking_uri(params, repo_root()))
    parent = client.get_run(parent_id)
    runs = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'",
                              order_by=["attributes.start_time ASC"])
    return {r.info.run_name: r.info.run_id for r in runs}
