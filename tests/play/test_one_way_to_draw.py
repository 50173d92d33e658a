"""One way to draw faces: the same (model, seed, attributes) gives the same pixels, byte for byte,
through ``python -m pipeline sample``, the play page's API (its real HTTP server) and evaluation's
sampler, for an unconditional, a conditional and the sketch model; and a walk starts and ends on the
faces that grids show. PNG files are compared after dropping their text chunks (the page writes the
command that redraws a picture into its PNG; ``sample`` writes none): the pixels are re-encoded with
the same writer and the files compared as bytes."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import requests
from PIL import Image

from fakes.play_world import play_server


@pytest.fixture(scope="module")
def url(play_world):
    _, params = play_world
    with play_server(params) as u:
        yield u


def pixels_of(png: bytes | str) -> np.ndarray:
    data = base64.b64decode(png.split(",", 1)[1]) if isinstance(png, str) else png
    return np.asarray(Image.open(io.BytesIO(data)))


def plain_png(pixels: np.ndarray, path) -> bytes:
    """The bytes ``sample`` would write for these pixels (the project's one PNG writer)."""
    from pipeline.core.images import save_png

    return save_png(pixels, path).read_bytes()


def cells(picture: np.ndarray, n: int, size: int, nrow: int = 8, pad: int = 2) -> np.ndarray:
    """The n pictures tiled in a grid by pipeline.core.images.grid."""
    return np.stack([picture[pad + r * (size + pad): pad + r * (size + pad) + size,
                             pad + q * (size + pad): pad + q * (size + pad) + size]
                     for r, q in (divmod(i, nrow) for i in range(n))])


def evaluation_faces(params, model, n, seed, tags=None, real=None):
    import torch

    from pipeline.evaluate.sample import drawn_faces

    return drawn_faces(f"{params.paths.runs}/{model}/checkpoint.pt", n, torch.device("cpu"), seed=seed, tags=tags, real=real)


@pytest.mark.parametrize(("model", "attributes"), [("dcgan", {}), ("gan_mlp", {}), ("acgan", {"hair_color": "blue"}),
                                                   ("acgan", {})])
def test_sample_play_and_evaluation_draw_the_same_pngs(url, play_world, tmp_path, model, attributes):
    from pipeline.core.images import grid
    from pipeline.evaluate.sample import sample

    _, params = play_world
    tags = [f"{a}={v}" for a, v in attributes.items()]
    r = requests.post(url + "api/generate", json={"model": model, "seed": 11, "count": 10, "attributes": attributes}, timeout=60)
    assert r.status_code == 200, r.text
    page = r.json()
    cli = sample(params, model, n=10, tags=tags, seed=11, out=tmp_path / "cli.png").read_bytes()
    faces, requested = evaluation_faces(params, model, 10, 11, tags=tags)
    assert plain_png(pixels_of(page["grid"]["png"]), tmp_path / "page.png") == cli
    assert plain_png(grid(faces), tmp_path / "eval.png") == cli
    assert [pixels_of(f["png"]).tobytes() for f in page["faces"]] == [f.tobytes() for f in faces]
    if model == "acgan":  # what each face was asked for is the same too (evaluation scores it)
        assert [f["requested"] for f in page["faces"]] == [dict(zip(requested, v)) for v in zip(*requested.values())]
        assert set(requested["hair_color"]) == ({"blue"} if attributes else set(requested["hair_color"]))
        assert len(set(requested["eye_color"])) > 1  # the attributes not fixed are drawn, not fixed by accident
    else:
        assert requested is None and all(f["requested"] == {} for f in page["faces"])
    other = sample(params, model, n=10, tags=tags, seed=12, out=tmp_path / "other.png").read_bytes()
    assert other != cli  # a seed that changes nothing would make the comparisons above vacuous


def test_a_walk_starts_and_ends_on_the_faces_the_grids_show(url, play_world):
    """The walk panel's endpoints come from the sampler's own inputs: with every attribute fixed, a
    spherical walk from face 2 of (seed 4, 6 faces) to face 0 of (seed 9, 1 face) begins and ends
    on exactly those faces as evaluation's sampler draws them (acgan draws in eval mode, so a face
    does not depend on the others in its batch)."""
    _, params = play_world
    attributes = {"hair_color": "red", "eye_color": "blue"}
    tags = [f"{a}={v}" for a, v in attributes.items()]
    r = requests.post(url + "api/walk", json={"model": "acgan", "mode": "slerp", "start": {"seed": 4, "index": 2, "count": 6},
                                              "end": {"seed": 9, "index": 0, "count": 1}, "steps": 5,
                                              "attributes": attributes}, timeout=60)
    assert r.status_code == 200, r.text
    strip = [pixels_of(f["png"]) for f in r.json()["faces"]]
    start, _ = evaluation_faces(params, "acgan", 6, 4, tags=tags)
    end, _ = evaluation_faces(params, "acgan", 1, 9, tags=tags)
    assert strip[0].tobytes() == start[2].tobytes() and strip[-1].tobytes() == end[0].tobytes()
    assert strip[2].tobytes() not in (start[2].tobytes(), end[0].tobytes())
    near = requests.post(url + "api/walk", json={"model": "acgan", "mode": "near", "start": {"seed": 4, "index": 2, "count": 6},
                                                 "steps": 4, "strength": 0.5, "attributes": attributes}, timeout=60).json()
    assert pixels_of(near["faces"][0]["png"]).tobytes() == start[2].tobytes()


def test_the_sketch_model_draws_the_same_face_everywhere(url, play_world, tmp_path):
    """sketch2image: ``sample`` without --sketch (sketches of the first training faces) and evaluation's
    sampler give the same faces; the XDoG sketch of face 0, saved as a PNG, drawn by ``sample --sketch``
    and uploaded to the sketch panel gives that face again, and both show the sketch as the model saw it."""
    from pipeline.core.datasets import load_faces
    from pipeline.evaluate.sample import sample
    from pipeline.train.checkpoint import load_generator

    _, params = play_world
    real = load_faces(params.paths.faces).images
    size = real.shape[1]
    grid_png = np.asarray(Image.open(sample(params, "sketch2image", n=4, seed=0, out=tmp_path / "cli.png")))
    pairs = cells(grid_png, 8, size)
    faces, requested = evaluation_faces(params, "sketch2image", 4, 0, real=real)
    assert requested is None and pairs[1::2].tobytes() == faces.tobytes()
    G, _ = load_generator(f"{params.paths.runs}/sketch2image/checkpoint.pt")
    sketches = G.sketches_of(real[:4])
    assert pairs[0::2].tobytes() == np.repeat(sketches[..., None], 3, -1).tobytes()  # each sketch just before its face

    Image.fromarray(sketches[0]).save(tmp_path / "sketch0.png")
    one = cells(np.asarray(Image.open(sample(params, "sketch2image", n=1, sketch=str(tmp_path / "sketch0.png"),
                                             out=tmp_path / "one.png"))), 2, size)
    body = "data:image/png;base64," + base64.b64encode((tmp_path / "sketch0.png").read_bytes()).decode()
    r = requests.post(url + "api/sketch", json={"model": "sketch2image", "image": body}, timeout=60)
    assert r.status_code == 200, r.text
    page = r.json()
    assert pixels_of(page["face"]["png"]).tobytes() == one[1].tobytes() == faces[0].tobytes()
    assert pixels_of(page["sketch"]).tobytes() == one[0][..., 0].tobytes() == sketches[0].tobytes()
    assert faces[1].tobytes() != faces[0].tobytes()  # other sketches, other faces: the comparison can fail


def test_a_transparent_drawing_reads_as_paper_in_sample_and_on_the_page(url, play_world, tmp_path):
    """Both read a drawing through one reader: transparent pixels are paper, not black."""
    from pipeline.evaluate.sample import sample

    _, params = play_world
    im = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    im.paste((0, 0, 0, 255), (8, 28, 56, 36))
    im.save(tmp_path / "clear.png")
    one = cells(np.asarray(Image.open(sample(params, "sketch2image", n=1, sketch=str(tmp_path / "clear.png"),
                                             out=tmp_path / "one.png"))), 2, 32)
    assert one[0][2].mean() > 250 and one[0][16].mean() < 120  # paper white, the bar dark
    body = "data:image/png;base64," + base64.b64encode((tmp_path / "clear.png").read_bytes()).decode()
    page = requests.post(url + "api/sketch", json={"model": "sketch2image", "image": body}, timeout=60).json()
    assert pixels_of(page["sketch"]).tobytes() == one[0][..., 0].tobytes()
    assert pixels_of(page["face"]["png"]).tobytes() == one[1].tobytes()


def test_a_bad_sketch_file_is_named_and_a_face_outside_its_grid_is_a_422(url, play_world, tmp_path):
    from pipeline.evaluate.sample import sample

    _, params = play_world
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(ValueError, match=r"--sketch .*notes.png is not a picture PIL can read .*pass a PNG, JPEG or WebP"):
        sample(params, "sketch2image", n=1, sketch=str(tmp_path / "notes.png"))
    with pytest.raises(ValueError, match=r"--sketch .*absent.png does not exist"):
        sample(params, "sketch2image", n=1, sketch=str(tmp_path / "absent.png"))
    r = requests.post(url + "api/walk", json={"model": "acgan", "mode": "lerp", "start": {"seed": 4, "index": 6, "count": 6},
                                              "end": {"seed": 9, "index": 0, "count": 1}, "steps": 3}, timeout=60)
    assert r.status_code == 422 and "face index 6 is outside a grid of 6" in r.json()["error"]


@pytest.mark.parametrize("model", ["dcgan", "acgan"])
def test_the_last_epoch_grid_is_the_samplers_drawing_of_the_checkpoint(play_world, tmp_path, model):
    """The trainer's per-epoch grid comes from the same module: its inputs (``epoch_inputs``: 64 faces
    of seed + 1, acgan's rows cycling hair colours), G's way of drawing and the layout (``sheet``)
    redraw the last grid from the checkpoint's EMA G, byte for byte."""
    from pipeline.train.checkpoint import load_generator
    from pipeline.train.sampling import epoch_inputs, outputs, sheet

    root, params = play_world
    G, meta = load_generator(f"{params.paths.runs}/{model}/checkpoint.pt")
    last = sorted((root / "runs" / model / "samples").glob("epoch_*.png"))[-1]
    inputs = epoch_inputs(G, meta["seed"])
    again = sheet(outputs(G.G, G.fam, inputs, batch_size=meta["spec"]["batch_size"]))
    assert plain_png(again, tmp_path / "again.png") == last.read_bytes()
    if model == "acgan":
        assert inputs.codes[:, 0].tolist() == [r // 8 % G.sizes[0] for r in range(64)]
