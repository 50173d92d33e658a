"""Prefect flow: the same stage functions as the CLI and DVC, one task each (flows/tasks.py), in pipeline order.

Run it with ``boorugan flow`` or ``python -m flows.pipeline``. The stage runs it makes in MLflow
carry the flow run's id as their ``pipeline_run`` tag and nest under one parent run per flow run.
"""

from __future__ import annotations

from typing import Any

from prefect import flow


@flow(name="boorugan-pipeline")
def pipeline_flow(params_path: str = "params.yaml", overrides: list[str] | None = None) -> dict[str, Any]:
    """Every stage once, every enabled model retrained; the lock, MLflow parent run, artefact and
    dvc.lock handling are the refresh flow's (flows/refresh.py)."""
    from flows.refresh import run_stages

    return run_stages(params_path, list(overrides or []), everything=True)


if __name__ == "__main__":
    pipeline_flow()
