"""Crop and tag shards on an existing Dask cluster through prefect-dask's task runner.

The stage functions take a ``map_shards(fn, [args])`` hook; this module supplies one whose every
shard is a Prefect task run on the cluster, so shards show in the flow run's graph with their own
state and logs. Bookkeeping (what is new, merging, writing the outputs) stays in the stage.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE


@task(name="shard", task_run_name="{stage} shard {index}", cache_policy=NO_CACHE)
def shard_task(stage: str, index: int, fn: Callable, args: tuple) -> Any:
    return fn(*args)


def shard_count(params, address: str) -> int:
    """``orchestration.shards``, else one shard per worker thread of the cluster."""
    if params.orchestration.shards:
        return params.orchestration.shards
    from distributed import Client

    with Client(address, timeout=30) as client:
        return max(1, sum(client.nthreads().values()))


def dask_mapper(stage: str, address: str) -> Callable[[Callable, list], list]:
    """``map_shards`` that runs every shard as a Prefect task on the Dask scheduler at ``address``;
    results come back in shard order whatever order they finish in."""
    def map_shards(fn: Callable, args_list: list[tuple]) -> list:
        from prefect_dask import DaskTaskRunner

        with DaskTaskRunner(address=address) as runner:
            futures = [runner.submit(shard_task, {"stage": stage, "index": i, "fn": fn, "args": args})
                       for i, args in enumerate(args_list)]
            return [f.result() for f in futures]
    return map_shards
