"""``boorugan play``'s HTTP API over a real uvicorn server and tiny trained models: what it draws is
what ``python -m pipeline sample`` draws, and requests that name a path or a value outside a
model's vocabulary are refused with a 422 that says what is allowed."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import requests
from PIL import Image

from fakes.play_world import play_server


def png(data_url: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))


@pytest.fixture(scope="module")
def url(play_world):
    _, params = play_world
    with play_server(params) as u:
        yield u


def post(url, path, **body):
    return requests.post(url + path, json=body, timeout=60)


def test_a_page_elsewhere_cannot_reach_it_by_dns_rebinding(url):
    assert requests.get(url + "api/models", headers={"Host": "evil.example"}, timeout=30).status_code == 400


def test_lists_every_trained_model_with_its_vocabulary(url):
    models = {m["name"]: m for m in requests.get(url + "api/models", timeout=30).json()["models"]}
    assert set(models) == {"dcgan", "gan_mlp", "acgan", "sketch2image"}
    assert models["acgan"]["conditional"] and set(models["acgan"]["vocab"]) == {"hair_color", "eye_color"}
    assert models["sketch2image"]["sketch"] and not models["dcgan"]["conditional"]
    assert models["dcgan"]["step"] == 3 and models["dcgan"]["image_size"] == 32


def test_grid_is_the_sample_commands_grid_and_carries_how_to_redraw_it(url, play_world, tmp_path):
    from pipeline.evaluate.sample import sample

    _, params = play_world
    r = post(url, "api/generate", model="acgan", seed=7, count=10, attributes={"hair_color": "blue", "eye_color": "random"})
    assert r.status_code == 200, r.text
    data = r.json()
    assert len(data["faces"]) == 10 and all(f["requested"]["hair_color"] == "blue" for f in data["faces"])
    assert data["command"] == "python -m pipeline sample acgan --n 10 --seed 7 --tags hair_color=blue"
    grid = png(data["grid"]["png"])
    assert grid.text["model"] == "acgan" and grid.text["checkpoint_step"] == "3" and grid.text["seed"] == "7"
    assert grid.text["tags"] == "hair_color=blue" and grid.text["command"] == data["command"]
    assert data["grid"]["filename"] == "acgan_step3_seed7_grid10_hair_color=blue.png"
    face = png(data["faces"][4]["png"])
    assert face.size == (32, 32) and face.text["index"] == "4" and "hair_color=blue" in face.text["attributes"]
    again = sample(params, "acgan", n=10, tags=["hair_color=blue"], seed=7, out=tmp_path / "cli.png")
    assert np.array_equal(np.asarray(Image.open(again).convert("RGB")), np.asarray(grid.convert("RGB")))


def test_same_seed_same_faces_other_seed_other_faces(url):
    a, b, c = (post(url, "api/generate", model="dcgan", seed=s, count=4).json()["faces"] for s in (5, 5, 6))
    assert [f["png"] for f in a] == [f["png"] for f in b]
    assert a[0]["png"] != c[0]["png"]


def test_path_traversal_and_unknown_names_are_refused(url, play_world):
    root, _ = play_world
    for name in ("../dcgan", "..", "/etc/passwd", "dcgan/../acgan", "runs/dcgan"):
        r = post(url, "api/generate", model=name)
        assert r.status_code == 422 and "model" in r.json()["error"], (name, r.text)
    (root / "outside").mkdir(exist_ok=True)
    r = post(url, "api/generate", model="outside")
    assert r.status_code == 404 and "known: acgan, dcgan, gan_mlp, sketch2image" in r.json()["error"]
    assert requests.get(url + "api/models/..%2Fdcgan/run", timeout=30).status_code == 404
    assert requests.get(url + "app.js/../../params.yaml", timeout=30).status_code == 404


def test_values_outside_the_vocabulary_and_bad_numbers_are_clear_422s(url):
    r = post(url, "api/generate", model="acgan", attributes={"hair_color": "plaid"})
    assert r.status_code == 422
    assert r.json()["error"].startswith("acgan: hair_color='plaid' is not in its vocabulary; allowed: ")
    r = post(url, "api/generate", model="acgan", attributes={"hat": "yes"})
    assert r.status_code == 422 and "not conditioned on 'hat'" in r.json()["error"]
    r = post(url, "api/generate", model="dcgan", attributes={"hair_color": "blue"})
    assert r.status_code == 422 and "none (unconditional)" in r.json()["error"]
    r = post(url, "api/generate", model="dcgan", count=100000)
    assert r.status_code == 422 and r.json()["error"].startswith("count: ")
    r = post(url, "api/generate", model="dcgan", seed=-1, extra=1)
    assert r.status_code == 422 and "seed" in r.json()["error"] and "extra" in r.json()["error"]
    r = post(url, "api/generate", model="sketch2image")
    assert r.status_code == 422 and "sketch panel" in r.json()["error"]


def test_side_by_side_applies_attributes_where_they_apply(url):
    r = post(url, "api/compare", models=["dcgan", "acgan", "gan_mlp", "sketch2image"], seed=3, count=4,
             attributes={"hair_color": "red"})
    data = r.json()
    assert [c["model"] for c in data["columns"]] == ["dcgan", "acgan", "gan_mlp"] and data["left_out"] == ["sketch2image"]
    acgan = data["columns"][1]
    assert all(f["requested"]["hair_color"] == "red" for f in acgan["faces"])
    alone = post(url, "api/generate", model="dcgan", seed=3, count=4).json()
    assert [f["png"] for f in data["columns"][0]["faces"]] == [f["png"] for f in alone["faces"]]
    r = post(url, "api/compare", models=["dcgan", "gan_mlp"], attributes={"hair_color": "red"})
    assert r.status_code == 422 and "no chosen model is conditioned on hair_color" in r.json()["error"]


@pytest.mark.parametrize("mode", ["lerp", "slerp", "near"])
def test_walk_strip_has_the_requested_length_and_starts_at_the_picked_face(url, mode):
    r = post(url, "api/walk", model="acgan", mode=mode, start={"seed": 4, "index": 2, "count": 6},
             end={"seed": 9, "index": 0, "count": 1}, steps=7, strength=0.5)
    assert r.status_code == 200, r.text
    data = r.json()
    assert len(data["faces"]) == 7 and png(data["strip"]["png"]).size == (7 * 34 + 2, 36)
    picked = post(url, "api/generate", model="acgan", seed=4, count=6).json()["faces"][2]["requested"]
    assert all(f["requested"] == picked for f in data["faces"])  # the start face's attributes all along
    ends = {f["png"] for f in data["faces"]}
    assert len(ends) > 1  # it moves


def test_slerp_keeps_the_latent_norm_that_lerp_loses():
    import torch

    from pipeline.train.sampling import lerp, slerp

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1, 100, generator=g), torch.randn(1, 100, generator=g)
    t = torch.linspace(0, 1, 5)[:, None]
    s, li = slerp(a, b, t), lerp(a, b, t)
    assert torch.allclose(s[0], a[0], atol=1e-5) and torch.allclose(s[-1], b[0], atol=1e-5)
    assert li[2].norm() < 0.8 * a.norm() and abs(s[2].norm() - (a.norm() + b.norm()) / 2) < 0.1 * a.norm()


def test_sketch_reaches_sketch2image_and_only_it(url):
    im = Image.new("L", (200, 200), 255)
    im.paste(0, (20, 90, 180, 110))  # a thick dark bar
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    body = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    r = post(url, "api/sketch", model="sketch2image", image=body)
    assert r.status_code == 200, r.text
    data = r.json()
    seen = np.asarray(png(data["sketch"]))
    assert seen.shape == (32, 32) and seen[16].mean() < 60 and seen[2].mean() > 200 and 0.05 < data["ink"] < 0.2
    assert png(data["face"]["png"]).size == (32, 32)
    assert post(url, "api/sketch", model="dcgan", image=body).status_code == 422
    r = post(url, "api/sketch", model="sketch2image", image="data:image/png;base64,bm90IGEgcG5n")
    assert r.status_code == 422 and "not a picture" in r.json()["error"]
    assert post(url, "api/sketch", model="sketch2image", image="file:///etc/passwd").status_code == 422


def test_mlflow_run_of_a_model(url):
    run = requests.get(url + "api/models/dcgan/run", timeout=60).json()
    assert run["available"], run
    assert run["params"]["arch"] == "dcgan" and run["metrics"]["steps"] == 3
    assert run["link"].startswith("http://127.0.0.1:5000/#/experiments/") and run["link"].endswith(run["run_id"])


def test_loaded_models_stay_within_max_models(play_world):
    from pipeline.play.models import Models

    _, params = play_world
    models = Models(params.paths.runs, "cpu", max_models=2)
    for name in ("dcgan", "acgan", "gan_mlp", "dcgan"):
        models.grid(name, 0, 2)
    assert list(models.cache) == ["gan_mlp", "dcgan"]


def test_a_checkpoint_linked_from_outside_runs_is_not_listed(play_world, tmp_path):
    from pipeline.play.models import discover

    root, params = play_world
    runs = tmp_path / "runs"
    (runs / "inside").mkdir(parents=True)
    (runs / "inside" / "checkpoint.pt").symlink_to(root / "runs" / "dcgan" / "checkpoint.pt")
    (runs / ".hidden").mkdir()
    (runs / ".hidden" / "checkpoint.pt").write_bytes(b"x")
    assert discover(runs) == {}  # the link leaves runs/; dot folders are never models
    assert set(discover(params.paths.runs)) == {"dcgan", "gan_mlp", "acgan", "sketch2image"}
