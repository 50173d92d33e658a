"""One Prefect task per stage of ``pipeline.stages.STAGES``: both flows run these.

A task loads params itself (tasks may run in other processes, on Dask) and calls the same stage
function as the CLI and DVC. Network stages (the Danbooru API, the tagger's weights download) retry
after 10 s, 20 s, 40 s (+-50% jitter), on top of the scraper's own per-request retries.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from pipeline import stages
from pipeline.stages import Stage

NETWORK_RETRIES = dict(retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=10), retry_jitter_factor=0.5)


def load(params_path: str, overrides: list[str]):
    from pipeline.params import load_params

    return load_params(params_path, overrides)


def _task(stage: Stage):
    options: dict[str, Any] = dict(name=stage.name, cache_policy=NO_CACHE, **(NETWORK_RETRIES if stage.network else {}))
    if stage.per_model:
        def run_model(params_path: str, overrides: list[str], model: str) -> Any:
            return stage.execute(load(params_path, overrides), model).summary

        return task(task_run_name=f"{stage.name}@{{model}}", **options)(run_model)

    def run(params_path: str, overrides: list[str]) -> Any:
        return stage.execute(load(params_path, overrides)).summary

    return task(**options)(run)


def tasks() -> dict[str, Any]:
    """One task per entry of the stage table, as it is now (a stage added there is a task here)."""
    return {stage.name: _task(stage) for stage in stages.STAGES}


TASKS = tasks()
