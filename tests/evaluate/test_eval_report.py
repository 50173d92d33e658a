"""Evaluate at several checkpoints, the report (Markdown and a self-contained page checked in a real
headless Chromium), and ``compare`` over the MLflow runs, on tiny toy data with two models."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, tiny_overrides


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from pipeline.crop.stage import run_crop
    from pipeline.evaluate.stage import run_evaluate
    from pipeline.params import load_params
    from pipeline.report.stage import run_report
    from pipeline.scrape.stage import run_scrape
    from pipeline.train.stage import run_train

    root = tmp_path_factory.mktemp("evalworld")
    # 4-step models draw noise (and a 1-epoch width-8 feature net has no scale): near_noise off and no
    # margin let these tests see the marking itself; the rules that hold marks back have their own tests below
    extra = ["train.enabled=[dcgan, wide]", "evaluate.every_epochs=1",
             "train.models.wide={arch: dcgan, steps: 4, batch_size: 16, log_every: 2, net: {nz: 16, ngf: 12, ndf: 8}}",
             "report.near_noise=null", "report.clear_margin=0"]
    params = load_params(ROOT / "params.yaml", tiny_overrides(root) + extra)
    run_scrape(params)
    run_crop(params)
    run_train(params, "dcgan")
    run_train(load_params(ROOT / "params.yaml", tiny_overrides(root) + extra[:1] + extra[2:]), "wide")  # no snapshots
    snaps = sorted(p.name for p in (root / "runs" / "dcgan" / "checkpoints").iterdir())
    assert snaps == ["epoch_001.pt", "epoch_002.pt"]  # 48 faces / 16 per batch: epochs end at steps 3 and 4
    metrics = {n: run_evaluate(params, n) for n in ("dcgan", "wide")}
    report = run_report(params)
    return root, params, metrics, report


def test_every_checkpoint_is_scored_and_written_as_history(world):
    root, params, metrics, _ = world
    lines = (root / "metrics" / "dcgan_history.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert header[0] == "step" and {"ssl_fd", "ssl_kid", "c2st_acc", "diversity_ratio"} <= set(header)
    # epoch 1, then the final checkpoint (epoch 2's snapshot is the same step: scored once)
    assert [line.split(",")[0] for line in lines[1:]] == ["3", "4"]
    assert len((root / "metrics" / "wide_history.csv").read_text().splitlines()) == 2  # no snapshots: final only


def test_metrics_json_has_numbers_and_reasons_never_zeros(world):
    root, _, metrics, _ = world
    m = json.loads((root / "metrics" / "dcgan.json").read_text())
    assert "fid" not in m and "is" not in m  # no weights offline: no number at all
    assert all(isinstance(v, (int, float)) for v in m.values()), m  # numbers only: `dvc metrics show` is a table
    status = json.loads((root / "metrics" / "dcgan.status.json").read_text())
    assert "download is false" in status["unavailable"]["inception"] and "skipped" not in status
    assert "download is false" in metrics["dcgan"]["unavailable"]["inception"]  # and the stage still returns it
    assert 0.5 <= m["c2st_acc"] <= 1 and m["ssl_kid"] > 0 and m["diversity_ratio"] > 0
    assert m["step"] == 4 and m["num_fake"] == 32


def test_markdown_report_marks_the_best_per_column(world):
    root, _, metrics, report = world
    text = report.read_text()
    best = min(metrics["dcgan"]["ssl_fd"], metrics["wide"]["ssl_fd"])
    row = next(line for line in text.splitlines() if line.startswith(f"| {'dcgan' if metrics['dcgan']['ssl_fd'] == best else 'wide'} |"))
    assert f"**{best:.4g}**" in row
    assert "unavailable" in row and text.count("download is false") == 1  # one reason, stated once, at the top
    assert text.index("download is false") < text.index("| model |")
    assert "![dcgan metrics vs step](dcgan_steps.png)" in text and (root / "reports" / "dcgan_steps.png").exists()
    assert "wide_steps.png" not in text


def test_html_report_is_self_contained(world):
    root, *_ = world
    page = (root / "reports" / "index.html").read_text()
    assert 'src="data:image/png;base64,' in page and 'src="' + "dcgan" not in page
    first = page.split('src="data:image/png;base64,', 1)[1].split('"', 1)[0]
    assert base64.b64decode(first)[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_in_a_real_browser(world, browser, tmp_path):
    root, _, metrics, _ = world
    page = tmp_path / "index.html"
    shutil.copyfile(root / "reports" / "index.html", page)  # alone: it must not need the PNGs beside it
    browser.get(page.as_uri())
    from selenium.webdriver.common.by import By

    rows = browser.find_elements(By.CSS_SELECTOR, "#metrics tbody tr")
    assert [r.find_element(By.TAG_NAME, "th").text for r in rows] == ["dcgan", "wide"]
    headers = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "#metrics thead th")]
    assert {"ssl_fd", "fid", "c2st_acc"} <= set(headers)
    assert len(browser.find_elements(By.CSS_SELECTOR, "td.best")) >= 1
    na = browser.find_elements(By.CSS_SELECTOR, "td.na")
    assert na and "download is false" in na[0].get_attribute("title")
    images = browser.find_elements(By.TAG_NAME, "img")
    assert len(images) == 5  # grid + losses for both, the step plot for dcgan
    for img in images:
        assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) > 0, img.get_attribute("alt")


def test_compare_lists_runs_with_differing_params_and_eval_metrics(world):
    from pipeline.report.compare import compare_runs

    _, params, metrics, _ = world
    table = compare_runs(params, show="params")
    mine = table[table["model"].isin(["dcgan", "wide"])].head(2)
    assert set(mine["model"]) == {"dcgan", "wide"}
    assert "net.ngf" in table.columns and "eval_ssl_fd" in table.columns
    assert "net.ngf" not in compare_runs(params).columns  # the default view: the few columns a reader needs
    assert mine.set_index("model").loc["wide", "eval_ssl_fd"] == pytest.approx(metrics["wide"]["ssl_fd"])
    assert set(compare_runs(params, model="wide")["model"]) == {"wide"}
    assert compare_runs(params, since="2999-01-01").empty


def test_compare_cli_prints_the_table_and_rejects_a_bad_date(world):
    root, *_ = world
    args = [sys.executable, "-m", "pipeline", "compare", "--model", "wide", *sum((["-S", o] for o in tiny_overrides(root)), [])]
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "wide" in out.stdout and "eval_ssl_fd" in out.stdout
    bad = subprocess.run(args + ["--since", "yesterday"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "--since 'yesterday' is not a date" in bad.stderr


def test_attribute_accuracy_on_toy_faces():
    from pipeline.core.toyfaces import HAIR_COLOURS, draw_face
    from pipeline.evaluate.metrics.attributes import attribute_accuracy, toy_readers

    rng = np.random.default_rng(0)
    hairs = [list(HAIR_COLOURS)[i] for i in rng.integers(0, len(HAIR_COLOURS), 40)]
    faces = np.stack([np.asarray(draw_face(rng, 64, h, "blue").convert("RGB")) for h in hairs])
    right = attribute_accuracy(faces, {"hair_color": hairs, "eye_color": ["blue"] * 40}, toy_readers())
    assert right == {"attr_acc_hair_color": 1.0, "attr_acc": 1.0}  # no reader for eyes: not scored
    wrong = attribute_accuracy(faces, {"hair_color": hairs[1:] + hairs[:1]}, toy_readers())
    assert wrong["attr_acc"] < 0.5


def test_attribute_accuracy_through_the_tagger(tmp_path):
    """Real faces are read by the i2v tagger (tiny random weights here): conditioned on what the
    tagger reads, accuracy is 1; on a shifted copy it drops; without weights it is unavailable."""
    from pipeline.evaluate.metrics.attributes import TaggerReaders, attribute_accuracy
    from pipeline.evaluate.metrics.context import EvalContext
    from pipeline.evaluate.metrics.registry import compute
    from pipeline.params import EvaluateParams, TagParams, VocabularyParams

    from fakes.i2v_tiny import tag_names, write_weights

    weights = write_weights(tmp_path / "w", tag_names(VocabularyParams().tags()), seed=5)
    params = TagParams(enabled=True, weights_dir=str(weights), download=False, device="cpu", batch_size=8)
    faces = np.random.default_rng(0).integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    readers = TaggerReaders(params).readers()
    seen = readers["hair_color"](faces)
    assert set(seen) <= set(VocabularyParams().groups["hair_color"])
    assert attribute_accuracy(faces, {"hair_color": seen}, readers)["attr_acc"] == 1.0
    values = list(VocabularyParams().groups["hair_color"])
    other = [values[(values.index(v) + 1) % len(values)] for v in seen]
    assert attribute_accuracy(faces, {"hair_color": other}, readers)["attr_acc"] == 0.0
    missing = TaggerReaders(TagParams(weights_dir=str(tmp_path / "none"), download=False)).readers()
    ctx = EvalContext(faces, faces, "d", EvaluateParams(), requested={"hair_color": seen}, readers=missing)
    assert "needs the tagger" in compute(["attr_acc"], ctx)[1]["attr_acc"]
    assert "unconditional" in compute(["attr_acc"], EvalContext(faces, faces, "d", EvaluateParams()))[1]["attr_acc"]


def test_best_per_column_follows_each_metric_direction_and_ignores_ties():
    from pipeline.report.table import best, cell

    rows = [{"metrics": {"ssl_fd": 2.0, "precision": 0.3, "diversity_ratio": 0.7, "c2st_acc": 1.0, "near_duplicate_share": 0.5}},
            {"metrics": {"ssl_fd": 1.0, "precision": 0.6, "diversity_ratio": 1.2, "c2st_acc": 0.9, "near_duplicate_share": 0.5,
                         "unavailable": {"inception": "no weights"}}}]
    assert best(rows, "ssl_fd") == 1.0 and best(rows, "precision") == 0.6 and best(rows, "diversity_ratio") == 1.2
    assert best(rows, "c2st_acc") is None  # reported, not ranked
    assert best(rows, "near_duplicate_share") is None  # a tie marks nobody
    assert best(rows[:1], "ssl_fd") is None
    assert cell(rows[1], "fid") == ("unavailable", "no weights") and cell(rows[0], "fid") == ("n/a", None)


def test_reconstruction_models_are_shown_but_never_marked_best():
    from pipeline.report.table import best, is_best, unranked_note

    rows = [{"model": "dcgan", "metrics": {"ssl_fd": 14.0}}, {"model": "gan_mlp", "metrics": {"ssl_fd": 37.0}},
            {"model": "sketch2image", "ranked": False, "metrics": {"ssl_fd": 0.9}}]
    assert best(rows, "ssl_fd") == 14.0  # not sketch2image's 0.9: it redraws real faces from their sketches
    assert "sketch2image" in unranked_note(rows) and unranked_note(rows[:2]) == ""
    rows[2]["metrics"]["ssl_fd"] = 14.0  # equal to the best: still not marked
    assert [is_best(r, "ssl_fd", {"ssl_fd": 14.0}) for r in rows] == [True, False, False]


def test_ssl_fd_comes_with_its_scale_noise_computed_once(world, monkeypatch):
    """Beside the floor, the value uniform noise gets on the same faces: the same for every model,
    computed once per dataset and sample shape, and cached with the feature net."""
    root, params, metrics, _ = world
    for name in ("dcgan", "wide"):
        m = metrics[name]
        assert m["ssl_fd_real_halves"] < m["ssl_fd_noise"] and m["ssl_fd_noise"] > 0
    assert metrics["dcgan"]["ssl_fd_noise"] == metrics["wide"]["ssl_fd_noise"]
    import pipeline.evaluate.metrics.frechet as frechet

    calls = []

    real_fd = frechet.frechet_between
    monkeypatch.setattr(frechet, "frechet_between", lambda *a: calls.append(a) or real_fd(*a))
    from pipeline.evaluate.stage import run_evaluate

    again = run_evaluate(params, "wide")
    assert again["ssl_fd_noise"] == metrics["wide"]["ssl_fd_noise"]
    assert len(calls) == 2  # ssl_fd and the real halves of wide's one checkpoint: the noise value came from the cache


def _rows(values: dict[str, float], noise: float = 100.0):
    return [{"model": m, "arch": "dcgan", "metrics": {"ssl_fd": v, "ssl_fd_real_halves": 0.1, "ssl_fd_noise": noise}}
            for m, v in values.items()]


def test_best_only_when_clearly_better_and_never_when_all_are_noise():
    from pipeline.report.table import best, verdict

    assert best(_rows({"a": 10.0, "b": 10.5}), "ssl_fd", margin=0.1) is None  # 5% apart: too close to call
    assert best(_rows({"a": 10.0, "b": 12.0}), "ssl_fd", margin=0.1) == 10.0
    assert best(_rows({"a": 10.0, "b": 10.5}), "ssl_fd") == 10.0  # no margin asked: the plain minimum
    rows = [{"model": "a", "metrics": {"attr_acc": 0.95}}, {"model": "b", "metrics": {"attr_acc": 0.9}}]
    assert best(rows, "attr_acc", margin=0.1) is None and best(rows, "attr_acc", margin=0.05) == 0.95
    marks, warning = verdict(_rows({"a": 60.0, "b": 95.0}), ["ssl_fd"], 0.1, 0.5)
    assert marks == {"ssl_fd": None} and "No model has learned faces yet" in warning and "95%" in warning
    marks, warning = verdict(_rows({"a": 20.0, "b": 95.0}), ["ssl_fd"], 0.1, 0.5)
    assert marks == {"ssl_fd": 20.0} and warning == ""


def test_noise_value_and_no_best_rule_in_a_real_browser(browser, tmp_path):
    from selenium.webdriver.common.by import By

    from pipeline.params import ReportParams
    from pipeline.report.stage import render_html

    for name, values in {"noise": {"a": 90.0, "b": 97.0}, "close": {"a": 10.0, "b": 10.4}, "clear": {"a": 10.0, "b": 30.0}}.items():
        page = tmp_path / f"{name}.html"
        page.write_text(render_html("t", _rows(values), {m: {} for m in values}, ReportParams()))
        browser.get(page.as_uri())
        headers = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "#metrics thead th")]
        assert {"ssl_fd", "ssl_fd_real_halves", "ssl_fd_noise"} <= set(headers)
        noise_col = headers.index("ssl_fd_noise")
        cells = browser.find_elements(By.CSS_SELECTOR, f"#metrics tbody tr td:nth-child({noise_col + 1})")
        assert [c.text for c in cells] == ["100", "100"]
        marked = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "td.best")]
        warning = browser.find_elements(By.ID, "no-best")
        if name == "noise":
            assert warning and "No model has learned faces yet" in warning[0].text and marked == []
        elif name == "close":
            assert not warning and marked == []
        else:
            assert not warning and marked == ["10"]
        assert "beats the next by 10%" in browser.find_element(By.TAG_NAME, "body").text
