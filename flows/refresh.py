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
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.tasks import TASKS
from flows.tasks import load as _params

ARTIFACT_KEY = "boorugan-refresh"


def _crop(params, params_path: str, overrides: list[str]) -> dict[str, int]:
    address = params.orchestration.dask_address
    if not address:
        return TASKS["crop"](params_path, overrides)
    from flows.dask import dask_mapper, shard_count
    from pipeline.crop.stage import run_crop

    return run_crop(params, dask_mapper("crop", address), shard_count(params, address)).summary()


def _tag(params, params_path: str, overrides: list[str]) -> dict[str, int]:
    address = params.orchestration.dask_address
    if not address or not params.tag.enabled:
        return TASKS["tag"](params_path, overrides)
    from flows.dask import dask_mapper, shard_count
    from pipeline.tag.stage import run_tag

    return run_tag(params, dask_mapper("tag", address), shard_count(params, address)).summary()


def run_stages(params_path: str, overrides: list[str], everything: bool) -> dict[str, Any]:
    """The body both flows share: ``everything`` retrains and re-evaluates every enabled model
    (``boorugan-pipeline`` semantics), otherwise only what changed (``boorugan-refresh``)."""
    from prefect.artifacts import create_markdown_artifact

    from flows import orchestration as orch
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
        results["scrape"] = TASKS["scrape"](params_path, overrides)
        results["crop"] = _crop(params, params_path, overrides)
        results["tag"] = _tag(params, params_path, overrides)
        results["labels"] = TASKS["labels"](params_path, overrides)
        stale: set[str] = set()
        if root:  # record the data stages now, so dvc status says which models they made stale
            orch.dvc_commit(root, ["scrape", "crop", "tag", "labels"])
            stale = orch.dvc_stale(root)
        if everything:
            train = {m: "pipeline run" for m in params.train.enabled}
        elif root:
            train = {m: "dvc status: changed" for m in params.train.enabled if f"train@{m}" in stale}
        else:
            train = orch.models_to_train(params)
        for model, why in train.items():
            log.info("training %s: %s", model, why)
            results[f"train@{model}"] = TASKS["train"](params_path, overrides, model)
        if everything or root:
            evaluate = [m for m in params.train.enabled if everything or m in train or f"evaluate@{m}" in stale]
        else:
            evaluate = orch.models_to_evaluate(params, set(train))
        for model in evaluate:
            results[f"evaluate@{model}"] = TASKS["evaluate"](params_path, overrides, model)
        ran = [f"train@{m}" for m in train] + [f"evaluate@{m}" for m in evaluate]
        if ran or "report" in stale or not (Path(params.paths.reports) / "report.md").exists():
            results["report"] = TASKS["report"](params_path, overrides)
            ran.append("report")
        if root:
            orch.dvc_commit(root, ran)
        results["trained"], results["evaluated"] = sorted(train), evaluate
        results["mlflow_runs"] = orch.stage_run_ids(params, parent)
        ids = {f"{name} (parent)": parent, **results["mlflow_runs"]} if parent else {}
        summary = f"trained: {', '.join(train) or 'nothing (no data change)'}"
        table = orch.metrics_table(params, ids)
        results["artifact"] = str(create_markdown_artifact(
            key=ARTIFACT_KEY, markdown=f"# {name}\n\n{summary}\n\n{table}",
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
