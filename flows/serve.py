"""``boorugan serve``: the deployments of prefect.yaml, served from this process (no work pool).

The refresh schedule, its time zone and default parameters are read from prefect.yaml, so
``prefect deploy`` and ``boorugan serve`` run on the same schedule unless told otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# flows/prefect.yaml is a symlink to the project's prefect.yaml in a checkout and a copy of it in a wheel
PREFECT_YAML = Path(__file__).resolve().parent / "prefect.yaml"


def deployment_spec(name: str, path: Path = PREFECT_YAML) -> dict[str, Any]:
    import yaml

    specs = {d["name"]: d for d in yaml.safe_load(path.read_text())["deployments"]}
    if name not in specs:
        raise KeyError(f"no deployment {name!r} in {path}; it has {sorted(specs)}")
    return specs[name]


def schedule_kwargs(cron: str | None, interval: float | None, timezone: str | None) -> dict[str, Any]:
    """``to_deployment`` schedule arguments: an explicit cron or interval, else prefect.yaml's."""
    from datetime import timedelta

    from prefect.schedules import Cron, Interval

    if interval is not None:
        if interval <= 0:
            raise ValueError(f"--interval must be > 0 seconds, got {interval}")
        return {"schedule": Interval(timedelta(seconds=interval))}
    first = (deployment_spec("refresh").get("schedules") or [{}])[0]
    return {"schedule": Cron(cron or first["cron"], timezone=timezone or first.get("timezone", "UTC"))}


# Entrypoints are module paths (flows.refresh.refresh_flow), never file paths: Prefect puts a flow
# file's folder first on sys.path, where flows/pipeline.py would shadow the pipeline package.


def deployments(params_path: str, overrides: list[str], cron: str | None = None, interval: float | None = None,
                timezone: str | None = None) -> list:
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.deployments.runner import EntrypointType

    from flows.pipeline import pipeline_flow
    from flows.refresh import refresh_flow

    params = {"params_path": params_path, "overrides": overrides}
    one_at_a_time = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)
    refresh = deployment_spec("refresh")
    return [
        refresh_flow.to_deployment(name="refresh", description=refresh.get("description"), tags=refresh.get("tags"),
                                   parameters=params, concurrency_limit=one_at_a_time,
                                   entrypoint_type=EntrypointType.MODULE_PATH, **schedule_kwargs(cron, interval, timezone)),
        pipeline_flow.to_deployment(name="pipeline", description=deployment_spec("pipeline").get("description"),
                                    tags=["boorugan"], parameters=params, concurrency_limit=one_at_a_time,
                                    entrypoint_type=EntrypointType.MODULE_PATH),
    ]


def serve(params_path: str = "params.yaml", overrides: list[str] | None = None, cron: str | None = None,
          interval: float | None = None, timezone: str | None = None) -> None:
    """Register both deployments with the Prefect API (PREFECT_API_URL) and run their flow runs here
    until interrupted (Ctrl-C, SIGTERM)."""
    from prefect import serve as prefect_serve

    prefect_serve(*deployments(str(Path(params_path).resolve()), list(overrides or []), cron, interval, timezone))
