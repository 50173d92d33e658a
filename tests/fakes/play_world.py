"""Tiny trained models for the ``boorugan play`` tests: one of each kind the page treats differently
(unconditional, conditional, sketch2image), trained for a few steps on 32 px toy faces, once per
session; and the page's real uvicorn server on a free port."""

from __future__ import annotations

import pytest

from conftest import ROOT, run_data_stages, tiny_model_overrides, tiny_overrides

MODELS = {"dcgan": "net.ngf=8 net.ndf=8 net.nz=16", "gan_mlp": "net.hidden=16 net.nz=8",
          "acgan": "net.ngf=8 net.ndf=8 net.nz=8", "sketch2image": "net.ngf=8 net.ndf=8 net.blocks=1"}


def play_overrides(root) -> list[str]:
    return tiny_overrides(root) + [f"labels.manual={root}/manual.csv", "play.device=cpu", "play.max_models=2", "crop.workers=1",
                                   f"train.enabled=[{', '.join(MODELS)}]", "tracking.experiment=play-tests",
                                   *tiny_model_overrides(MODELS)]


@pytest.fixture(scope="session")
def play_world(tmp_path_factory):
    """(root, params) with every model of ``MODELS`` trained by the stage functions."""
    from pipeline.params import load_params
    from pipeline.train.stage import run_train

    root = tmp_path_factory.mktemp("play")
    params = load_params(ROOT / "params.yaml", play_overrides(root))
    run_data_stages(params)
    for model in MODELS:
        run_train(params, model)
    return root, params


def play_server(params, models=None):
    """The real uvicorn server of ``boorugan play`` on a free port, in a thread; yields its URL."""
    from pipeline.play.server import make_server

    from fakes.local_server import serving

    return serving(lambda sock: make_server(params, models), "play")
