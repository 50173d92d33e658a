"""Prefect flow ``boorugan-refresh``: bring everything up to date with what appeared since the last run.

scrape (``scrape.danbooru.mode: incremental`` fetches only posts newer than those held) -> crop and
tag (incremental: only new images and faces; sharded on Dask when ``orchestration.dask_address``
is set) -> labels -> train the models whose data changed -> evaluate them -> report.

Design: tasks call the stage functions (the same ones ``dvc repro`` runs through the CLI), so crop
and tag can be split across a cluster. In a DVC project run from its own params.yaml, the flow then
records the stages it ran with ``dvc commit`` and asks ``dvc status`` which models are stale, so
after a run ``dvc status`` is clean and dvc.lock describes the outputs on disk. With ``-S``
overrides nothing is recorded (the outputs are not what params.yaml says).

Every flow run: one MLflow parent run with the stage runs nested under it, one lock per output
tree (a second run waits or is skipped, ``orchestration.overlap``), and a markdown artefact with
the metrics table and the MLflow run ids.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.tasks import load as _params

ARTIFACT_KEY = "boorugan-refresh"


def _run_whole(stage, params, params_path: str, overrides: list[str], task) -> Any:
    """A stage that runs once per flow run: on Dask shards when the table says it can be sharded
    and ``orchestration.dask_address`` is set, else as its Prefect task."""
    address = params.orchestration.dask_address
    if not address or stage.sharded is None or not stage.sharded(params):
        return task(params_path, overrides)
    from flows.dask import dask_mapper, shard_count

    return stage.execute(params, map_shards=dask_mapper(stage.name, address), shards=shard_count(params, address)).summary


def run_stages(params_path: str, overrides: list[str], everything: bool) -> dict[str, Any]:
    """The body both flows share, driven by the stage table (pipeline/stages.py): ``refresh: always``
    stages run every time (each is incremental) and are recorded in dvc.lock; then each later stage
    runs for what changed: ``everything`` retrains and re-evaluates every enabled model
    (``boorugan-pipeline`` semantics), in a DVC project ``dvc status`` (or an earlier stage of this
    run redoing the model) decides, elsewhere the stage's ``outdated`` rule (``boorugan-refresh``)."""
    from prefect.artifacts import create_markdown_artifact

    from flows import orchestration as orch
    from flows.tasks import tasks
    from pipeline import stages
    from pipeline.core.tracking import PIPELINE_RUN_ENV, parent_run

    params = _params(params_path, overrides)  # a bad params file fails the flow before any task
    log = get_run_logger()
    run_id, name = str(flow_run.get_id()), str(flow_run.get_flow_name())
    with contextlib.ExitStack() as stack:
        try:
            times = stack.enter_context(orch.run_lock(params, f"{name}/{flow_run.get_name()} ({run_id})"))
        except orch.Busy as e:
            log.warning("%s", e)
            create_markdown_artifact(key=ARTIFACT_KEY, markdown=f"Skipped: {e}", description="skipped: another run was running")
            return {"skipped": str(e)}
        os.environ[PIPELINE_RUN_ENV] = run_id
        parent = stack.enter_context(parent_run(params, f"{name} {flow_run.get_name()}", {"flow_run_id": run_id, "flow": name}))
        results: dict[str, Any] = {"mlflow_parent_run": parent}
        root = orch.dvc_root(params_path, overrides, params)
        table, task_of = stages.STAGES, tasks()
        always = [s.name for s in table if s.refresh == "always"]
        stale: set[str] | None = None
        ran: list[str] = []                   # stage runs after the always-stages, for dvc commit
        per_model: dict[str, list[str]] = {}  # per-model stage -> the models it ran
        previous: set[str] = set()            # the models the previous per-model stage ran
        for stage in table:
            if stage.refresh == "always":
                results[stage.name] = _run_whole(stage, params, params_path, overrides, task_of[stage.name])
                continue
            if stale is None:
                stale = set()
                if root:  # record the always-stages now, so dvc status says which later stages they made stale
                    orch.dvc_commit(root, always)
                    stale = orch.dvc_stale(root)
            if stage.per_model:
                if everything:
                    todo = {m: "pipeline run" for m in params.train.enabled}
                elif root:
                    todo = {m: "dvc status: changed" if f"{stage.name}@{m}" in stale else "redone upstream"
                            for m in params.train.enabled if f"{stage.name}@{m}" in stale or m in previous}
                else:
                    todo = stage.outdated(params, previous) if stage.outdated else {}
                for model, why in todo.items():
                    log.info("%s@%s: %s", stage.name, model, why)
                    results[f"{stage.name}@{model}"] = task_of[stage.name](params_path, overrides, model)
                per_model[stage.name] = list(todo)
                previous = set(todo)
                ran += [f"{stage.name}@{m}" for m in todo]
            elif ran or stage.name in stale or (stage.outdated and stage.outdated(params, previous)):
                results[stage.name] = task_of[stage.name](params_path, overrides)
                ran.append(stage.name)
        if root:
            orch.dvc_commit(root, ran)
        train, evaluate = per_model.get("train", []), per_model.get("evaluate", [])
        results["trained"], results["evaluated"] = sorted(train), evaluate
        results["mlflow_runs"] = orch.stage_run_ids(params, parent)
        ids = {f"{name} (parent)": parent, **results["mlflow_runs"]} if parent else {}
        summary = f"trained: {', '.join(train) or 'nothing (no data change)'}"
        table_md = orch.metrics_table(params, ids)
        results["artifact"] = str(create_markdown_artifact(
            key=ARTIFACT_KEY, markdown=f"# {name}\n\n{summary}\n\n{table_md}",
            description="metrics per model and the MLflow runs of this flow run"))
        log.info("%s done: trained %s, evaluated %s", name, sorted(train) or "nothing", evaluate or "nothing")
    results["lock"] = dict(times)
    return results


@flow(name="boorugan-refresh")
def refresh_flow(params_path: str = "params.yaml", overrides: list[str] | None = None) -> dict[str, Any]:
    """Scrape what is new, crop and tag it, retrain and re-evaluate the models whose data changed."""
    return run_stages(params_path, list(overrides or []), everything=False)


if __name__ == "__main__":
    refresh_flow()
