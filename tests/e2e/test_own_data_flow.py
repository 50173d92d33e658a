"""The Prefect flow on a folder of unlabelled pictures: the conditional model is skipped with the
reason and the flow completes, training, evaluating and reporting the unconditional one."""

from __future__ import annotations

import pytest
from test_own_data_dvc import REASON, toy_pictures

from conftest import ROOT, tiny_overrides

pytestmark = pytest.mark.slow


def test_pipeline_flow_skips_a_conditional_model_without_labels(prefect_harness, tmp_path):
    from flows.pipeline import pipeline_flow

    toy_pictures(tmp_path / "pictures", 24, labelled=False)
    overrides = [*tiny_overrides(tmp_path), "scrape.source=folder", f"scrape.folder={tmp_path / 'pictures'}",
                 "train.enabled=[dcgan, cgan]", "train.models.cgan.steps=2", "train.models.cgan.net.hidden=16"]
    state = pipeline_flow(params_path=str(ROOT / "params.yaml"), overrides=overrides, return_state=True)
    assert state.is_completed(), state
    results = state.result()
    assert results["train@cgan"]["skipped"] == REASON and results["evaluate@cgan"]["skipped"] == REASON
    assert results["train@dcgan"]["steps"] == 4 and results["evaluate@dcgan"]["ssl_fd"] > 0
    report = (tmp_path / "reports" / "report.md").read_text()
    assert "| dcgan |" in report and "| cgan |" in report and "no labels for hair_color, eye_color" in report
