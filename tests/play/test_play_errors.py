"""``boorugan play`` answers every failure as JSON with a message, over its real uvicorn server: a
sketch whose header declares 30000x30000 pixels (a decompression bomb) is the user's input, a 4xx;
a damaged checkpoint says which file and what to do; never a plain-text 500."""

from __future__ import annotations

import base64
import shutil

import pytest
import requests

from fakes.bomb import png_declaring
from fakes.play_world import play_server


def json_error(r: requests.Response, status: range) -> str:
    assert r.status_code in status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json"), r.text
    return r.json()["error"]


@pytest.fixture(scope="module")
def url(play_world):
    _, params = play_world
    with play_server(params) as u:
        yield u


def test_a_sketch_that_declares_30000x30000_pixels_is_a_4xx_json_error(url):
    body = "data:image/png;base64," + base64.b64encode(png_declaring(30000, 30000)).decode()
    r = requests.post(url + "api/sketch", json={"model": "sketch2image", "image": body}, timeout=60)
    error = json_error(r, range(400, 500))
    assert "pixels" in error and "900000000" in error, error


@pytest.fixture(scope="module")
def damaged_url(play_world, tmp_path_factory):
    """The page over a runs folder with one truncated checkpoint (a kill during a copy, a full disk)."""
    root, params = play_world
    runs = tmp_path_factory.mktemp("damaged-runs")
    good = (root / "runs" / "dcgan" / "checkpoint.pt").read_bytes()
    (runs / "broken").mkdir()
    (runs / "broken" / "checkpoint.pt").write_bytes(good[: len(good) // 3])
    shutil.copytree(root / "runs" / "dcgan", runs / "dcgan")
    damaged = params.model_copy(deep=True)
    damaged.paths.runs = str(runs)
    with play_server(damaged) as u:
        yield u


def test_a_damaged_checkpoint_is_a_json_error_that_names_the_file(damaged_url):
    listed = {m["name"]: m for m in requests.get(damaged_url + "api/models", timeout=60).json()["models"]}
    assert "error" in listed["broken"] and "error" not in listed["dcgan"]
    for r in (requests.get(damaged_url + "api/models/broken/run", timeout=60),
              requests.post(damaged_url + "api/generate", json={"model": "broken", "seed": 1, "count": 4}, timeout=60)):
        error = json_error(r, range(400, 600))
        assert "broken/checkpoint.pt" in error and "train the model again" in error.lower(), error
    r = requests.post(damaged_url + "api/generate", json={"model": "dcgan", "seed": 1, "count": 4}, timeout=60)
    assert r.status_code == 200, r.text  # the other models still draw
