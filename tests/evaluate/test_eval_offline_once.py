"""Offline once: weights that cannot be fetched are tried and warned about once per process and per
pipeline run, the DVC metrics file holds numbers only (reasons in the status sidecar), and the
report states each distinct reason once, at the top, and per model only what differs."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from pipeline.evaluate.metrics.context import EvalContext
from pipeline.evaluate.metrics.registry import compute, forget_unavailable
from pipeline.params import EvaluateParams, InceptionParams

from fakes.file_server import Server


@pytest.fixture
def missing_weights(tmp_path, monkeypatch):
    """A weights server that has no such file (HTTP 404), a fresh cache, and no memory of earlier tries."""
    monkeypatch.setenv("BOORUGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("BOORUGAN_PIPELINE_RUN", raising=False)
    server = Server({})
    forget_unavailable()
    yield server, EvaluateParams(inception=InceptionParams(url=f"{server.url}weights-inception-6726825d.pth", retries=0))
    forget_unavailable()
    server.close()


def _ctx(params: EvaluateParams, seed: int) -> EvalContext:
    faces = np.random.default_rng(seed).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    return EvalContext(faces, faces.copy(), f"digest-{seed}", params)


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "inception" in r.getMessage()]


def test_two_models_in_one_process_try_the_download_once_and_warn_once(missing_weights, caplog):
    server, params = missing_weights
    caplog.set_level(logging.INFO)
    _, first = compute(["inception"], _ctx(params, 0))
    _, second = compute(["inception"], _ctx(params, 1))  # the next model of the same run
    assert "could not be fetched" in first["inception"] and second == first
    assert len(server.requests) == 1
    assert len(_warnings(caplog)) == 1
    other = EvaluateParams(inception=InceptionParams(url=f"{server.url}other-6726825d.pth", retries=0))
    compute(["inception"], _ctx(other, 0))  # other params: a new try, a new warning
    assert len(server.requests) == 2 and len(_warnings(caplog)) == 2


def test_stage_processes_of_one_pipeline_run_share_the_verdict(missing_weights, monkeypatch, caplog):
    server, params = missing_weights
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("BOORUGAN_PIPELINE_RUN", "make-20261201T1000")
    _, first = compute(["inception"], _ctx(params, 0))
    forget_unavailable()  # what a fresh `python -m pipeline evaluate <next model>` process starts with
    _, second = compute(["inception"], _ctx(params, 1))
    assert second == first and len(server.requests) == 1 and len(_warnings(caplog)) == 1
    forget_unavailable()
    monkeypatch.setenv("BOORUGAN_PIPELINE_RUN", "make-20261202T1000")  # the next pipeline run tries again
    compute(["inception"], _ctx(params, 0))
    assert len(server.requests) == 2


def test_a_reason_of_one_model_is_not_remembered_for_the_next(missing_weights):
    _, params = missing_weights
    ctx = _ctx(params, 0)
    assert "unconditional" in compute(["attr_acc"], ctx)[1]["attr_acc"]
    ctx.requested, ctx.readers = {"hair_color": ["blue"] * 4}, {"hair_color": lambda faces: ["blue"] * len(faces)}
    values, unavailable = compute(["attr_acc"], ctx)
    assert unavailable == {} and values["attr_acc"] == 1.0


def _row(model, unavailable, **extra):
    return {"model": model, "arch": "dcgan", "metrics": {"ssl_fd": 1.0 + len(model), "unavailable": unavailable}, **extra}


def test_report_states_each_distinct_reason_once_at_the_top():
    from pipeline.report.stage import render_html, render_markdown

    offline = "Inception weights could not be fetched (no network); copy the file to /cache/inception"
    rows = [_row("dcgan", {"inception": offline}), _row("acgan", {"inception": offline, "attr_acc": "no reader here"}),
            _row("dcgan_tags", {}, skipped="no labels for hair_color, eye_color: label faces with `boorugan label`")]
    images = {r["model"]: {} for r in rows}
    md = render_markdown("t", rows, images)
    assert md.count(offline) == 1 and md.count("no reader here") == 1
    top, rest = md.split("| model |", 1)
    assert f"- inception unavailable for every trained model: {offline}" in top  # dcgan_tags has no numbers at all
    acgan_section = rest.split("## acgan", 1)[1].split("##", 1)[0]
    assert "attr_acc unavailable: no reader here" in acgan_section and offline not in acgan_section
    row = next(line for line in md.splitlines() if line.startswith("| dcgan_tags |"))
    assert "not trained: no labels for hair_color, eye_color" in row
    page = render_html("t", rows, images)
    assert page.count(offline) == 3  # once in the list at the top, and as the hover title of the two cells
    assert page.index('id="unavailable"') < page.index('id="metrics"')
    assert 'class="skipped" colspan=' in page


def test_one_model_alone_gets_its_reasons_at_the_top():
    from pipeline.report.table import reason_notes

    shared, own = reason_notes([_row("dcgan", {"inception": "offline"})])
    assert shared == [("inception", "offline", "every model")] and own == {}
