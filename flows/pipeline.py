"""Prefect flow: the same stage functions as the CLI and DVC, one task each, in pipeline order.

Run it with ``boorugan flow`` or ``python -m flows.pipeline``. The stage runs it makes in MLflow
carry the flow run's id as their ``pipeline_run`` tag.
"""

from __future__ import annotations

import os
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.tasks import exponential_backoff

# Network stages (the Danbooru API, the tagger's weights download) retry on failure after 10 s,
# 20 s, 40 s (+-50% jitter), on top of the scraper's own per-request retries.
NETWORK_RETRIES = dict(retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=10), retry_jitter_factor=0.5)


def _params(params_path: str, overrides: list[str]):
    from pipeline.params import load_params

    return load_params(params_path, overrides)


@task(name="scrape", cache_policy=NO_CACHE, **NETWORK_RETRIES)
def scrape_task(params_path: str, overrides: list[str]) -> dict[str, int]:
    from pipeline.scrape import run_scrape

    return run_scrape(_params(params_path, overrides)).summary()


@task(name="crop", cache_policy=NO_CACHE)
def crop_task(params_path: str, overrides: list[str]) -> dict[str, int]:
    from pipeline.crop import run_crop

    return run_crop(_params(params_path, overrides)).summary()


@task(name="tag", cache_policy=NO_CACHE, **NETWORK_RETRIES)
def tag_task(params_path: str, overrides: list[str]) -> dict[str, int]:
    from pipeline.tag import run_tag

    return run_tag(_params(params_path, overrides)).summary()


@task(name="labels", cache_policy=NO_CACHE)
def labels_task(params_path: str, overrides: list[str]) -> dict[str, int]:
    from pipeline.labels import run_labels

    return run_labels(_params(params_path, overrides)).summary()


@task(name="train", task_run_name="train@{model}", cache_policy=NO_CACHE)
def train_task(params_path: str, overrides: list[str], model: str) -> dict[str, Any]:
    from pipeline.train import run_train

    return run_train(_params(params_path, overrides), model)


@task(name="evaluate", task_run_name="evaluate@{model}", cache_policy=NO_CACHE)
def evaluate_task(params_path: str, overrides: list[str], model: str) -> dict[str, Any]:
    from pipeline.evaluate import run_evaluate

    return run_evaluate(_params(params_path, overrides), model)


@task(name="report", cache_policy=NO_CACHE)
def report_task(params_path: str, overrides: list[str]) -> str:
    from pipeline.report import run_report

    return str(run_report(_params(params_path, overrides)))


@flow(name="boorugan-pipeline")
def pipeline_flow(params_path: str = "params.yaml", overrides: list[str] | None = None) -> dict[str, Any]:
    from pipeline.tracking import PIPELINE_RUN_ENV

    overrides = list(overrides or [])
    params = _params(params_path, overrides)  # a bad params file fails the flow before any task
    os.environ[PIPELINE_RUN_ENV] = str(flow_run.get_id())
    log = get_run_logger()
    results: dict[str, Any] = {"scrape": scrape_task(params_path, overrides),
                               "crop": crop_task(params_path, overrides)}
    results.update(tag=tag_task(params_path, overrides), labels=labels_task(params_path, overrides))
    for model in params.train.enabled:
        results[f"train@{model}"] = train_task(params_path, overrides, model)
        results[f"evaluate@{model}"] = evaluate_task(params_path, overrides, model)
    results["report"] = report_task(params_path, overrides)
    log.info("pipeline done: %s", results["report"])
    return results


if __name__ == "__main__":
    pipeline_flow()
