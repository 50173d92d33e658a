"""Prefect flow: the same stage functions as the CLI and DVC, one task each, in pipeline order.

Run it with ``boorugan flow`` or ``python -m flows.pipeline``. The stage runs it makes in MLflow
carry the flow run's id as their ``pipeline_run`` tag and nest under one parent run per flow run.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
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
    """Every stage once, every enabled model retrained; the lock, MLflow parent run, artefact and
    dvc.lock handling are the refresh flow's (flows/refresh.py)."""
    from flows.refresh import run_stages

    return run_stages(params_path, list(overrides or []), everything=True)


if __name__ == "__main__":
    pipeline_flow()
