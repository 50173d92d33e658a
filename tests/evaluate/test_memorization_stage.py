"""The copy check end to end: train never sees the held-out faces, evaluate scores memorisation and
precision/recall/density/coverage against them and draws the closest pairs, the report shows them;
and through the registry, a "model" that returns its training faces is caught."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, tiny_overrides


def test_held_out_faces_are_chosen_by_id_and_stay_out_as_the_set_grows():
    from pipeline.core.datasets import holdout_mask

    ids = [f"face{i}" for i in range(4000)]
    held = holdout_mask(ids, 0.05)
    assert 0.04 < held.mean() < 0.06
    assert np.array_equal(holdout_mask(ids[:1000], 0.05), held[:1000])  # a face keeps its side
    assert not holdout_mask(ids, 0.0).any()


def test_a_model_that_returns_its_training_faces_is_caught():
    from pipeline.core.datasets import holdout_mask, toy_labelled_faces
    from pipeline.evaluate.metrics.context import EvalContext
    from pipeline.evaluate.metrics.registry import compute
    from pipeline.evaluate.params import EvaluateParams

    real = toy_labelled_faces(400, 32, seed=0)[0].images
    ids = [f"f{i}" for i in range(len(real))]
    held = holdout_mask(ids, 0.2)
    cfg = EvaluateParams(feature_net={"epochs": 2, "width": 8}, memorization={"quantile": 0.01})
    copies = real[~held][:200]
    new = toy_labelled_faces(200, 32, seed=1)[0].images
    got = {}
    for name, fake in (("copies", copies), ("new", new)):
        ctx = EvalContext(real, fake, f"toy400-{held.sum()}", cfg, holdout=held)
        got[name], unavailable = compute(["memorization", "prdc"], ctx)
        assert unavailable == {}
        assert len(ctx.cache["closest"]) == cfg.memorization.pairs
    assert got["copies"]["memorization_share"] == 1.0 and got["copies"]["memorization_ratio"] == 0.0
    assert got["new"]["memorization_share"] < 0.2, got["new"]
    assert got["copies"]["memorization_holdout"] == held.sum()
    assert 0 <= got["new"]["ssl_precision"] <= 1 and 0 <= got["new"]["ssl_coverage"] <= 1


def test_without_held_out_faces_memorization_says_why():
    from pipeline.evaluate.metrics.context import EvalContext
    from pipeline.evaluate.metrics.registry import compute
    from pipeline.evaluate.params import EvaluateParams

    real = np.zeros((10, 8, 8, 3), np.uint8)
    values, unavailable = compute(["memorization"], EvalContext(real, real, "z", EvaluateParams(holdout=0)))
    assert values == {} and "0 of 10 real faces are held out" in unavailable["memorization"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from pipeline.crop.stage import run_crop
    from pipeline.evaluate.stage import run_evaluate
    from pipeline.params import load_params
    from pipeline.report.stage import run_report
    from pipeline.scrape.stage import run_scrape
    from pipeline.train.stage import run_train

    root = tmp_path_factory.mktemp("memoworld")
    params = load_params(ROOT / "params.yaml", tiny_overrides(root) + [
        "train.enabled=[dcgan]", "evaluate.holdout=0.25", "evaluate.metrics=[ssl_fd, memorization, prdc]",
        "evaluate.memorization.pairs=4"])
    run_scrape(params)
    run_crop(params)
    train = run_train(params, "dcgan")
    metrics = run_evaluate(params, "dcgan")
    run_report(params)
    return root, params, train, metrics


def test_train_never_sees_the_held_out_faces(world):
    from pipeline.core.datasets import holdout_mask, load_faces

    root, params, train, metrics = world
    faces = load_faces(params.paths.faces)
    held = holdout_mask(faces.ids, 0.25)
    assert 0 < held.sum() < len(faces.ids)
    assert train["images"] == len(faces.ids) - held.sum()
    assert metrics["memorization_holdout"] == held.sum() and metrics["num_real"] == len(faces.ids)


def test_evaluate_scores_copies_and_draws_the_closest_pairs(world):
    root, params, train, metrics = world
    assert 0 <= metrics["memorization_share"] <= 1 and metrics["memorization_ratio"] > 0
    assert {"ssl_precision", "ssl_recall", "ssl_density", "ssl_coverage"} <= metrics.keys()
    saved = json.loads((root / "metrics" / "dcgan.json").read_text())
    assert saved["memorization_share"] == metrics["memorization_share"]
    with Image.open(root / "metrics" / "dcgan_closest.png") as im:
        assert im.size == (2 * 32 + 4, 4 * 32 + 3 * 4)  # 4 rows: sample | training face, 4 px apart


def test_the_report_shows_the_closest_pairs_and_ranks_the_new_columns(world):
    from pipeline.report.table import direction

    root = world[0]
    md = (root / "reports" / "report.md").read_text()
    assert "![dcgan samples beside their nearest training faces (memorization)](dcgan_closest.png)" in md
    assert (root / "reports" / "dcgan_closest.png").read_bytes() == (root / "metrics" / "dcgan_closest.png").read_bytes()
    assert direction("memorization_share") == "lower" and direction("ssl_coverage") == "higher"
