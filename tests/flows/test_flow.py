"""The Prefect flow runs the same stages, in order, under one test harness (a real Prefect server)."""


import pytest

from conftest import ROOT, tiny_overrides

pytestmark = pytest.mark.slow


def test_pipeline_flow_runs_every_stage(prefect_harness, tmp_path):
    import mlflow

    from flows.pipeline import pipeline_flow

    state = pipeline_flow(params_path=str(ROOT / "params.yaml"), overrides=tiny_overrides(tmp_path), return_state=True)
    assert state.is_completed(), state
    results = state.result()
    assert results["scrape"]["kept"] == 48 and results["crop"]["faces"] == 48
    assert results["tag"]["faces"] == 48 and results["labels"]["faces"] == 48
    assert results["train@dcgan"]["steps"] == 4
    assert results["evaluate@dcgan"]["ssl_fd"] > 0
    assert (tmp_path / "reports" / "report.md").exists()

    flow_run_id = str(state.state_details.flow_run_id)
    runs = mlflow.search_runs(search_all_experiments=True, filter_string=f"tags.pipeline_run = '{flow_run_id}'",
                              output_format="list")
    from pipeline.params import load_params

    enabled = load_params(ROOT / "params.yaml", tiny_overrides(tmp_path)).train.enabled  # train/evaluate once per model
    assert all(results[f"{stage}@{m}"] for m in enabled for stage in ("train", "evaluate"))
    assert sorted(r.data.tags["stage"] for r in runs) == sorted(["crop", "labels", "report", "scrape", "tag"] + ["evaluate", "train"] * len(enabled))


def test_flow_rejects_bad_params_before_any_task(prefect_harness, tmp_path):
    from flows.pipeline import pipeline_flow

    state = pipeline_flow(params_path=str(ROOT / "params.yaml"), overrides=[f"paths.raw={tmp_path}/raw", "crop.size=-1"],
                          return_state=True)
    assert state.is_failed()
    assert "crop.size" in str(state.message) or "crop.size" in repr(state.result(raise_on_failure=False))
    assert not (tmp_path / "raw").exists()
