"""Tiny trained models for the ``boorugan play`` tests: one of each kind the page treats differently
(unconditional, conditional, sketch2image), trained for a few steps on 32 px toy faces, once per
session; and the page's real uvicorn server on a free port."""

from __future__ import annotations

import pytest

from conftest import ROOT, tiny_overrides

MODELS = {"dcgan": "net.ngf=8 net.ndf=8 net.nz=16", "gan_mlp": "net.hidden=16 net.nz=8",
          "acgan": "net.ngf=8 net.ndf=8 net.nz=8", "sketch2image": "net.ngf=8 net.ndf=8 net.blocks=1"}


def play_overrides(root) -> list[str]:
    out = tiny_overrides(root) + [f"labels.manual={root}/manual.csv", "play.device=cpu", "play.max_models=2", "crop.workers=1",
                                  f"train.enabled=[{', '.join(MODELS)}]", "tracking.experiment=play-tests"]
    for model, net in MODELS.items():
        out += [f"train.models.{model}.steps=3", f"train.models.{model}.batch_size=16", f"train.models.{model}.log_every=1"]
        out += [f"train.models.{model}.{kv}" for kv in net.split()]
    return out


@pytest.fixture(scope="session")
def play_world(tmp_path_factory):
    """(root, params) with every model of ``MODELS`` trained by the stage functions."""
    from pipeline.crop.stage import run_crop
    from pipeline.labels.stage import run_labels
    from pipeline.params import load_params
    from pipeline.scrape.stage import run_scrape
    from pipeline.tag.stage import run_tag
    from pipeline.train.stage import run_train

    root = tmp_path_factory.mktemp("play")
    params = load_params(ROOT / "params.yaml", play_overrides(root))
    run_scrape(params)
    run_crop(params)
    run_tag(params)
    run_labels(params)
    for model in MODELS:
        run_train(params, model)
    return root, params


def play_server(params, models=None):
    """The real uvicorn server of ``boorugan play`` on a free port, in a thread; yields its URL."""
    from pipeline.play.server import make_server

    from fakes.local_server import serving

    return serving(lambda sock: make_server(params, models), "play")
