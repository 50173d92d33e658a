"""``compare`` over a real MLflow sqlite store holding training runs of several families, logged as
the train and evaluate stages log them: one row per model's latest run, best first, few columns
that fit in 120, ``--params``/``--all``/``--format``, and the evaluate sidecars' reasons once."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time

import pytest

from conftest import ROOT, tiny_overrides

EXPERIMENT = "compare-families"
# model -> (eval_ssl_fd, lr); dcgan is trained twice: only its second (latest) run counts
RUNS = [("dcgan", 80.0, 2e-4), ("acgan", 30.5, 2e-4), ("cgan", 55.25, 1e-4), ("gan_mlp", 140.0, 2e-4),
        ("sketch2image", 0.9, 2e-4), ("dcgan_v3", 41.0, 2e-4), ("dcgan", 22.0, 2e-4)]
OFFLINE = "Inception weights could not be fetched (offline); copy weights-inception-2015-12-05-6726825d.pth to the cache"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from pipeline.core.atomic import write_json
    from pipeline.core.tracking import stage_run
    from pipeline.params import load_params

    root = tmp_path_factory.mktemp("compare")
    overrides = tiny_overrides(root) + [f"tracking.experiment={EXPERIMENT}"]
    params = load_params(ROOT / "params.yaml", overrides)
    for i, (name, fd, lr) in enumerate(RUNS):
        spec = params.model(name).model_copy(update={"lr": lr})
        logged = {"model": name, "seed": 0, "device": "cpu", "fast": "auto", "world_size": 1, **spec.model_dump()}
        tags = {"model": name, "arch": spec.arch, "family": spec.family, "data_hash": "d" * 8}
        with stage_run("train", params, logged, tags, run_name=f"train@{name}") as mlflow:
            mlflow.log_metrics({"steps": 100.0 * (i + 1), "batch_size": 64.0, "world_size": 1.0, "loss_d": 1.0,
                                "eval_ssl_fd": fd, "eval_ssl_fd_real_halves": 0.08, "eval_ssl_kid": fd / 100,
                                "eval_ssl_kid_std": 0.01, "eval_c2st_acc": 1.0, "eval_diversity_ratio": 0.9})
            if spec.conditioning:
                mlflow.log_metric("eval_attr_acc", 0.5)
        time.sleep(0.02)  # distinct start times: "latest" is well defined
        write_json(root / "metrics" / f"{name}.status.json", {"unavailable": {"inception": OFFLINE}})
    write_json(root / "metrics" / "dcgan_tags.status.json", {"skipped": "no labels for hair_color, eye_color"})
    return params, overrides


def test_default_table_has_one_row_per_model_best_first(store):
    from pipeline.report.compare import compare_runs

    params, _ = store
    table = compare_runs(params)
    assert list(table["model"]) == ["dcgan", "acgan", "dcgan_v3", "cgan", "gan_mlp", "sketch2image"]
    assert table.attrs["primary"] == "eval_ssl_fd"
    assert list(table.columns) == ["model", "arch", "steps", "images_seen", "date", "commit", "eval_ssl_fd",
                                   "eval_ssl_fd_real_halves", "eval_ssl_kid", "eval_ssl_kid_std", "eval_attr_acc"]
    dcgan = table.iloc[0]
    assert dcgan["eval_ssl_fd"] == 22.0 and dcgan["steps"] == 700 and dcgan["images_seen"] == 700 * 64
    assert table.set_index("model").loc["cgan", "eval_attr_acc"] == 0.5 and table.iloc[0]["arch"] == "dcgan"


def test_cli_default_output_fits_120_columns_with_each_reason_once(store):
    _, overrides = store
    args = [sys.executable, "-m", "pipeline", "compare", *sum((["-S", o] for o in overrides), [])]
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    table = [line for line in lines if line.strip()]
    header = table[0].split()
    assert header[:6] == ["model", "arch", "steps", "images_seen", "date", "commit"] and "eval_ssl_fd" in header
    assert [line.split()[0] for line in table[1:7]] == ["dcgan", "acgan", "dcgan_v3", "cgan", "gan_mlp", "sketch2image"]
    assert max(len(line) for line in lines) <= 120, out.stdout  # the long reason wraps
    flat = " ".join(out.stdout.split())
    assert flat.count(OFFLINE) == 1 and f"inception unavailable for every model: {OFFLINE}" in flat
    assert "dcgan_tags not trained: no labels for hair_color, eye_color" in out.stdout
    assert "sorted by eval_ssl_fd, lower is better" in out.stdout


def test_params_adds_only_what_differs_and_all_adds_everything(store):
    from pipeline.report.compare import compare_runs

    params, _ = store
    with_params = compare_runs(params, show="params")
    assert "lr" in with_params.columns and "beta1" not in with_params.columns  # the same in every run: left out
    assert "arch" in with_params.columns and "conditioning" in with_params.columns
    everything = compare_runs(params, show="all")
    assert {"net.nz", "eval_c2st_acc", "loss_d", "run_id", "eval_diversity_ratio"} <= set(everything.columns)
    assert len(compare_runs(params, latest=False)) == len(RUNS)


@pytest.mark.parametrize("fmt", ["csv", "json", "markdown"])
def test_formats_for_scripts(store, fmt):
    _, overrides = store
    args = [sys.executable, "-m", "pipeline", "compare", "--format", fmt, "--params", *sum((["-S", o] for o in overrides), [])]
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out.stdout)))
        assert rows[0]["model"] == "dcgan" and float(rows[0]["eval_ssl_fd"]) == 22.0 and "lr" in rows[0]
    elif fmt == "json":
        rows = json.loads(out.stdout)
        assert [r["model"] for r in rows][:2] == ["dcgan", "acgan"] and rows[0]["steps"] == 700
        assert rows[-1]["eval_attr_acc"] is None  # sketch2image has none: null, not NaN
    else:
        lines = out.stdout.splitlines()
        assert lines[0].startswith("| model | arch |") and lines[1].startswith("|---|") and lines[2].startswith("| dcgan |")


def test_a_dropped_column_that_is_the_same_for_every_row_is_said_once():
    import pandas as pd

    from pipeline.report.compare import render

    table = pd.DataFrame({"model": ["a" * 40, "b" * 40], "eval_ssl_fd": [1.5, 30.0],
                          "eval_ssl_fd_noise": [239.6, 239.6], "eval_ssl_kid": [0.1, 0.9]})
    out = render(table, width=70)
    assert "eval_ssl_fd_noise = 239.6 for every row" in out
    assert "left out to fit 70 columns: eval_ssl_kid" in out and "eval_ssl_fd_noise," not in out
    assert max(len(line) for line in out.splitlines()[:3]) <= 70
