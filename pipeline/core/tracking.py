"""MLflow for every stage run: one run per stage, tagged so runs of one pipeline run group together.

mlflow is imported only here and only when a run starts (2.4 s), never by the trainer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.params import Params

log = logging.getLogger(__name__)
PIPELINE_RUN_ENV = "BOORUGAN_PIPELINE_RUN"
PARENT_RUN_ENV = "BOORUGAN_PARENT_RUN"  # an MLflow run id: stage runs nest under it (a flow run's run)


def repo_root(start: Path | None = None) -> Path:
    """The project directory; inside a DVC experiment's temporary copy, the real one above it,
    so `dvc exp run` logs to the same store as `dvc repro`."""
    here = (start or Path.cwd()).resolve()
    parts = here.parts
    for i in range(len(parts) - 2):
        if parts[i:i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return here


def tracking_uri(params: Params, root: Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or params.tracking.tracking_uri or f"sqlite:///{root / 'mlflow.db'}"


def ensure_store(uri: str, root: Path) -> None:
    """A SQLite store that does not exist yet is created whole under a temporary name, then renamed
    into place: MLflow creates its tables one migration at a time, and a kill in the middle would leave
    a file that every later run refuses ("table ... already exists"). Other stores are left to MLflow."""
    import fcntl
    import hashlib

    from pipeline.core.atomic import atomic_path, sweep_stale_tmp
    from pipeline.core.cache import cache_dir

    if not uri.startswith("sqlite:///"):
        return
    path = Path(uri[len("sqlite:///"):])
    if path.exists() or str(path) == ":memory:":
        return
    locks = cache_dir() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"mlflow-{hashlib.md5(str(path.resolve()).encode()).hexdigest()[:16]}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two stages starting at once on a new store: one creates it
        if path.exists():
            return
        sweep_stale_tmp(path.parent, names=[path.name])
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        with atomic_path(path) as tmp:
            store = SqlAlchemyStore(f"sqlite:///{tmp}", str(root / "mlruns"))
            store.engine.dispose()


def git_commit(root: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            flat.update(flatten(v, key + "."))
        else:
            flat[key] = v
    return flat


def _experiment_id(mlflow, name: str, root: Path) -> str:
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return mlflow.create_experiment(name, artifact_location=(root / "mlruns").as_uri())
    except Exception:  # noqa: BLE001 - another stage process created it first
        exp = mlflow.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


HOST_TAG, PID_TAG = "host", "pid"  # who opened a run: its process on its host


def owner_tags() -> dict[str, str]:
    from pipeline.core.procs import this_host

    return {HOST_TAG: this_host(), PID_TAG: str(os.getpid())}


def close_dead_runs(client, exp_id: str, stage: str, model: str | None = None) -> list[str]:
    """End as KILLED the runs of ``stage`` (and ``model``) left RUNNING on this host by a process that
    is gone (a kill -9, a power cut): nothing else would ever close them. Returns their ids."""
    from pipeline.core.procs import this_host, writer_gone

    query = (f"tags.stage = '{stage}' and attributes.status = 'RUNNING' and tags.{HOST_TAG} = '{this_host()}'"
             + (f" and tags.model = '{model}'" if model else ""))
    closed = []
    for run in client.search_runs([exp_id], filter_string=query, max_results=1000):
        pid = run.data.tags.get(PID_TAG, "")
        if pid.isdigit() and writer_gone(run.data.tags.get(HOST_TAG), int(pid)):
            client.set_tag(run.info.run_id, "killed_reason", f"process {pid} ended without closing the run; "
                           f"closed by the next {stage} start (pid {os.getpid()})")
            client.set_terminated(run.info.run_id, "KILLED")
            closed.append(run.info.run_id)
    if closed:
        log.info("%s: marked %d run(s) of a killed %s process KILLED in MLflow", stage, len(closed), stage)
    return closed


def _close_dead_quietly(mlflow, exp_id: str, stage: str, model: str | None) -> None:
    """Closing old runs never stops a stage (a store that refuses the search is only logged)."""
    try:
        close_dead_runs(mlflow.tracking.MlflowClient(), exp_id, stage, model)
    except Exception as e:  # noqa: BLE001
        log.warning("%s: could not close runs of killed processes in MLflow (%s)", stage, e)


def _interrupted(e: BaseException) -> bool:
    """Ctrl-C, or SIGTERM as the CLI raises it: a run stopped from outside."""
    from pipeline.core.failures import Terminated

    return isinstance(e, (KeyboardInterrupt, Terminated))


@contextlib.contextmanager
def stage_run(stage: str, params: Params, logged: dict[str, Any], tags: dict[str, str] | None = None,
              run_name: str | None = None) -> Iterator[Any]:
    """An MLflow run for one stage (yields the ``mlflow`` module, or None when tracking is off)."""
    if not params.tracking.enabled:
        yield None
        return
    import mlflow

    root = repo_root()
    ensure_store(tracking_uri(params, root), root)
    mlflow.set_tracking_uri(tracking_uri(params, root))
    exp_id = _experiment_id(mlflow, params.tracking.experiment, root)
    _close_dead_quietly(mlflow, exp_id, stage, (tags or {}).get("model"))
    all_tags = {"stage": stage, **(tags or {}), **owner_tags()}
    if commit := git_commit(root):
        all_tags["git_commit"] = commit
    if pipeline_run := os.environ.get(PIPELINE_RUN_ENV):
        all_tags["pipeline_run"] = pipeline_run
    if parent := os.environ.get(PARENT_RUN_ENV):
        all_tags["mlflow.parentRunId"] = parent  # nesting by tag works across threads and processes
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name or stage, tags=all_tags):
        flat = flatten(logged)
        items = list(flat.items())
        for i in range(0, len(items), 100):  # MLflow accepts at most 100 params per batch
            mlflow.log_params(dict(items[i:i + 100]))
        try:
            yield mlflow
        except BaseException as e:
            if _interrupted(e):  # Ctrl-C or SIGTERM: KILLED, as MLflow says of a run stopped from outside
                mlflow.end_run("KILLED")
            raise  # anything else: start_run's exit ends it FAILED


@contextlib.contextmanager
def parent_run(params: Params, name: str, tags: dict[str, str]) -> Iterator[str | None]:
    """One MLflow run for a whole flow run (yields its id, or None when tracking is off); every
    stage run started inside nests under it. Ends FAILED when the body raises."""
    if not params.tracking.enabled:
        yield None
        return
    from mlflow.tracking import MlflowClient

    root = repo_root()
    ensure_store(tracking_uri(params, root), root)
    client = MlflowClient(tracking_uri(params, root))
    import mlflow

    mlflow.set_tracking_uri(tracking_uri(params, root))
    exp_id = _experiment_id(mlflow, params.tracking.experiment, root)
    _close_dead_quietly(mlflow, exp_id, "flow", None)
    all_tags = {"stage": "flow", "mlflow.runName": name, **tags, **owner_tags()}
    if commit := git_commit(root):
        all_tags["git_commit"] = commit
    run = client.create_run(exp_id, tags=all_tags, run_name=name)
    run_id = run.info.run_id
    previous = os.environ.get(PARENT_RUN_ENV)
    os.environ[PARENT_RUN_ENV] = run_id
    status = "FAILED"
    try:
        yield run_id
        status = "FINISHED"
    except BaseException as e:
        if _interrupted(e):
            status = "KILLED"
        raise
    finally:
        if previous is None:
            os.environ.pop(PARENT_RUN_ENV, None)
        else:
            os.environ[PARENT_RUN_ENV] = previous
        client.set_terminated(run_id, status)


def log_into_run(params: Params, run_id: str, metrics: dict[str, float]) -> None:
    """Add metrics to an existing run (evaluate -> the model's training run, for side-by-side views)."""
    if not params.tracking.enabled:
        return
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri(params, repo_root()))
    for k, v in metrics.items():
        client.log_metric(run_id, k, v)


class MLflowCallback:
    """Trainer callback: losses over steps, a sample grid per epoch, the final checkpoint."""

    def __init__(self, mlflow):
        self.mlflow = mlflow

    def on_start(self, total_steps: int, done_steps: int) -> None:
        pass

    def on_log(self, step: int, stats: dict[str, float]) -> None:
        self.mlflow.log_metrics(stats, step=step)

    def on_epoch_end(self, epoch: int, step: int, grid_path: Path) -> None:
        from PIL import Image

        with Image.open(grid_path) as im:
            self.mlflow.log_image(im.copy(), key="samples", step=step)
        self.mlflow.log_artifact(str(grid_path), artifact_path="samples")

    def on_end(self, summary: dict[str, Any], checkpoint: Path) -> None:
        self.mlflow.log_metrics({k: float(v) for k, v in summary.items() if isinstance(v, (int, float))})
        self.mlflow.log_artifact(str(checkpoint), artifact_path="checkpoint")
