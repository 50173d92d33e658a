"""Every stage, called as a function, in order, on tiny toy data (the same functions DVC and Prefect run)."""

import json

from pipeline.crop.stage import run_crop
from pipeline.evaluate.stage import run_evaluate
from pipeline.report.stage import run_report
from pipeline.scrape.stage import run_scrape
from pipeline.train.stage import run_train


def test_stages_in_order(tmp_path):
    from pipeline.params import load_params

    from conftest import ROOT, tiny_overrides

    tiny_params = load_params(ROOT / "params.yaml", tiny_overrides(tmp_path) + ["train.enabled=[dcgan]"])  # report reads the enabled
    assert run_scrape(tiny_params).kept == 48
    assert run_crop(tiny_params).faces == 48
    summary = run_train(tiny_params, "dcgan")
    assert summary["steps"] == 4
    run = tmp_path / "runs" / "dcgan"
    assert (run / "checkpoint.pt").exists() and (run / "losses.png").exists()
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["epoch_001.png", "epoch_002.png"]
    metrics = run_evaluate(tiny_params, "dcgan")
    assert metrics["ssl_fd"] > metrics["ssl_fd_real_halves"] >= 0
    assert json.loads((tmp_path / "metrics" / "dcgan.json").read_text())["ssl_fd"] == metrics["ssl_fd"]
    report = run_report(tiny_params)
    assert "| dcgan | dcgan |" in report.read_text()
