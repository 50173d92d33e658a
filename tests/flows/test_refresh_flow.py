"""The refresh flow under one Prefect test harness, against the Danbooru-compatible server on
127.0.0.1: incremental runs, MLflow nesting, the artefact, no overlapping runs, Dask shards."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT, tiny_overrides
from fakes.danbooru_server import FAST, DanbooruServer, make_posts

pytestmark = pytest.mark.slow
def overrides(root: Path, server: DanbooruServer, *extra: str) -> list[str]:
    return [*tiny_overrides(root), *FAST, f"scrape.danbooru.base_url={server.url}", *extra]


def refresh(ov: list[str]):
    from flows.refresh import refresh_flow

    state = refresh_flow(params_path=str(ROOT / "params.yaml"), overrides=ov, return_state=True)
    assert state.is_completed(), state
    return state.result()


def nested_stages(parent: str) -> list[str]:
    import mlflow

    runs = mlflow.search_runs(search_all_experiments=True, filter_string=f"tags.mlflow.parentRunId = '{parent}'",
                              output_format="list")
    return sorted(r.data.tags["stage"] for r in runs)


def test_refresh_runs_only_what_new_posts_change(prefect_harness, tmp_path):
    from prefect.client.orchestration import get_client

    with DanbooruServer(make_posts(20, size=40)) as server:
        ov = overrides(tmp_path, server)
        first = refresh(ov)
        assert first["scrape"]["new"] == 20 and first["crop"]["faces"] == 20
        assert first["trained"] == ["dcgan"] and first["evaluated"] == ["dcgan"]
        assert nested_stages(first["mlflow_parent_run"]) == ["crop", "evaluate", "labels", "report", "scrape", "tag", "train"]
        assert set(first["mlflow_runs"]) == {"scrape", "crop", "tag", "labels", "train@dcgan", "evaluate@dcgan", "report"}
        metrics = (tmp_path / "metrics/dcgan.json").read_text()

        with get_client(sync_client=True) as client:  # the typed read_artifacts sends nulls 3.8.8's API rejects
            artifacts = client._client.post("/artifacts/filter", json={"artifacts": {"key": {"any_": ["boorugan-refresh"]}},
                                                                      "limit": 50}).json()
        mine = [a for a in artifacts if a["id"] == first["artifact"]]
        assert mine and mine[0]["type"] == "markdown"
        assert "| dcgan |" in mine[0]["data"] and first["mlflow_runs"]["train@dcgan"] in mine[0]["data"]

        # nothing new: nothing retrained, the metrics file untouched
        again = refresh(ov)
        assert again["scrape"]["new"] == 0 and again["crop"]["new_faces"] == 0
        assert again["trained"] == [] and again["evaluated"] == [] and "report" not in again
        assert nested_stages(again["mlflow_parent_run"]) == ["crop", "labels", "scrape", "tag"]
        assert (tmp_path / "metrics/dcgan.json").read_text() == metrics

        # new posts: only they are fetched and cropped; the model is retrained on 28 faces
        server.add_posts(make_posts(8, start_id=21, size=40))
        third = refresh(ov)
        assert third["scrape"]["new"] == 8 and third["crop"]["new_faces"] == 8 and third["crop"]["faces"] == 28
        assert third["trained"] == ["dcgan"] and third["evaluated"] == ["dcgan"]
        assert third["train@dcgan"]["images"] == 28
        assert (tmp_path / "metrics/dcgan.json").read_text() != metrics


def wait_until_locked(params, future, timeout: float = 120) -> None:
    import time

    from flows import orchestration

    skip = params.model_copy(update={"orchestration": params.orchestration.model_copy(update={"overlap": "skip"})})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not future.done():
        try:
            with orchestration.run_lock(skip, "probe"):
                pass
        except orchestration.Busy:
            return
        time.sleep(0.05)
    raise AssertionError("the first flow run never took the lock")


def test_overlapping_runs_wait_and_never_interleave(prefect_harness, tmp_path):
    """Two flow runs on the same outputs at once: the second waits for the first's lock; both
    complete and the outputs are those of one consistent run (every face file indexed, and back)."""
    from pipeline.params import load_params

    with DanbooruServer(make_posts(16, size=40), latency=0.1) as server:
        ov = overrides(tmp_path, server)
        with ThreadPoolExecutor(2) as ex:
            a = ex.submit(refresh, ov)
            wait_until_locked(load_params(ROOT / "params.yaml", ov), a)  # the first run is inside its lock...
            b = ex.submit(refresh, ov)  # ...when the second starts
            results = sorted([a.result(), b.result()], key=lambda r: r["lock"]["acquired"])
    first, second = results
    assert first["lock"]["released"] <= second["lock"]["acquired"]  # strictly one after the other
    assert second["lock"]["acquired"] - second["lock"]["asked"] > 1.0  # ...because the second waited
    assert first["scrape"]["new"] == 16 and second["scrape"]["new"] == 0 and second["trained"] == []
    index = pd.read_parquet(tmp_path / "data/faces/index.parquet")
    files = {p.name for p in (tmp_path / "data/faces").iterdir() if p.suffix == ".png"}
    assert len(index) == 16 and set(index["path"]) == files
    manifest = pd.read_parquet(tmp_path / "data/raw/manifest.parquet")
    assert len(manifest) == 16 and manifest["md5"].is_unique


def test_a_run_finding_another_running_can_skip(prefect_harness, tmp_path):
    from flows import orchestration
    from pipeline.params import load_params

    with DanbooruServer(make_posts(4, size=40)) as server:
        ov = overrides(tmp_path, server, "orchestration.overlap=skip")
        with orchestration.run_lock(load_params(ROOT / "params.yaml", ov), "a test holding the lock"):
            out = refresh(ov)
        assert "a test holding the lock" in out["skipped"]
        assert server.requests == [] and not (tmp_path / "data").exists()


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    from pipeline.params import VocabularyParams

    from fakes.i2v_tiny import tag_names, write_weights

    return write_weights(tmp_path_factory.mktemp("i2v"), tag_names(VocabularyParams().tags()), seed=3)


def test_dask_shards_give_the_single_process_outputs(prefect_harness, tmp_path, tiny_weights):
    from distributed import LocalCluster

    posts = make_posts(23, size=40)
    tagging = ["tag.enabled=true", f"tag.weights_dir={tiny_weights}", "tag.download=false", "tag.device=cpu",
               "tag.batch_size=4", "crop.workers=1"]
    runs = {}
    with DanbooruServer(posts) as server:
        runs["local"] = refresh(overrides(tmp_path / "local", server, *tagging))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            DanbooruServer(posts) as server:
        seen: set[str] = set()
        cluster.scheduler.add_plugin(_WorkerSpy(seen))
        runs["dask"] = refresh(overrides(tmp_path / "dask", server, *tagging,
                                         f"orchestration.dask_address={cluster.scheduler_address}"))
    assert len(seen) == 2  # both workers ran shards
    assert runs["dask"]["tag"]["tagged"] == runs["local"]["tag"]["tagged"] == 23
    for rel in ("data/faces/index.parquet", "data/faces/sources.parquet", "data/tags.parquet", "data/labels.parquet"):
        local, dask = (pd.read_parquet(tmp_path / k / rel) for k in ("local", "dask"))
        pd.testing.assert_frame_equal(local, dask, check_exact=True, obj=rel)
    for name in pd.read_parquet(tmp_path / "local/data/faces/index.parquet")["path"]:
        assert (tmp_path / "local/data/faces" / name).read_bytes() == (tmp_path / "dask/data/faces" / name).read_bytes()


from distributed.diagnostics.plugin import SchedulerPlugin  # noqa: E402


class _WorkerSpy(SchedulerPlugin):
    """A scheduler plugin recording which workers ran shard tasks."""

    name = "boorugan-worker-spy"

    def __init__(self, seen: set[str]):
        self.seen, self.lock = seen, threading.Lock()

    def transition(self, key, start, finish, *args, **kwargs):
        if finish == "memory" and kwargs.get("worker"):
            with self.lock:
                self.seen.add(kwargs["worker"])
