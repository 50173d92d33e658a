"""The zoo through the real stages: labels from data/labels.parquet and the toy manifest, every
family trained by ``run_train``, the ``sample`` command, evaluation of a sketch and a conditional model."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from models.registry import ARCHS
from pipeline.params import load_params

from conftest import ROOT, run_data_stages, tiny_model_overrides, tiny_overrides

TINY = {"dcgan_tags": "net.ngf=8 net.ndf=8 net.nz=8", "acgan": "net.ngf=8 net.ndf=8 net.nz=8",
        "cgan": "net.hidden=16 net.nz=8", "gan_mlp": "net.hidden=16 net.nz=8", "sketch2image": "net.ngf=8 net.ndf=8 net.blocks=1",
        "r3gan": "net.nz=8 net.width=16 net.blocks=1 net.group_width=8",
        "r3gan_tags": "net.nz=8 net.width=16 net.blocks=1 net.group_width=8"}


def zoo_overrides(root) -> list[str]:
    return tiny_overrides(root) + tiny_model_overrides(TINY)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """Scrape, crop, tag (off: empty table), labels (no manual labels: all unknown) on 48 toy faces."""
    root = tmp_path_factory.mktemp("zoo")
    params = load_params(ROOT / "params.yaml", zoo_overrides(root) + [f"labels.manual={root}/manual.csv"])
    run_data_stages(params)
    return root, params


def test_default_enabled_covers_every_family():
    params = load_params(ROOT / "params.yaml")
    families = {params.model(m).family for m in params.train.enabled}
    assert families == {a.family for a in ARCHS.values()}
    assert {params.model(m).arch for m in params.train.enabled} == set(ARCHS)
    for variant in ("dcgan_v1", "dcgan_v2", "dcgan_v3", "dcgan_v4_1", "dcgan_v4_2", "dcgan_v4_3"):
        assert params.model(variant).arch == "dcgan"
    assert [params.model(f"dcgan_v{v}").d_threshold for v in ("3", "4_1", "4_2", "4_3")] == [0.2, 0.1, 0.3, 0.2]
    assert params.model("dcgan_v4_3").g_threshold == 4.0 and params.model("dcgan_v3").g_threshold is None


def test_labels_come_from_labels_parquet_then_the_manifest(zoo):
    from pipeline.core.datasets import load_faces, load_labels

    root, params = zoo
    faces = load_faces(params.paths.faces)
    table = pd.read_parquet(params.paths.labels)
    assert (table["hair_color"] == "unknown").all()  # tagging off, no manual labels
    labels = load_labels(faces, ["hair_color", "eye_color"], params.paths.labels, params.paths.faces, params.paths.raw)
    assert (labels.codes >= 0).all()  # every toy face's colours come from the manifest
    manifest = pd.read_parquet(root / "data" / "raw" / "manifest.parquet")
    index = pd.read_parquet(root / "data" / "faces" / "index.parquet")
    truth = index.merge(manifest, on="md5").set_index("face_id").loc[faces.ids, "hair_color"].tolist()
    assert [labels.vocab["hair_color"][c] for c in labels.codes[:, 0]] == truth

    # a known value in labels.parquet wins over the manifest's
    override = table.copy()
    override.loc[override["face_id"] == faces.ids[0], "hair_color"] = "silver"
    path = root / "override.parquet"
    override.to_parquet(path)
    labels = load_labels(faces, ["hair_color"], path, params.paths.faces, params.paths.raw)
    assert labels.vocab["hair_color"][labels.codes[0, 0]] == "silver"
    assert [labels.vocab["hair_color"][c] for c in labels.codes[1:, 0]] == truth[1:]

    with pytest.raises(ValueError, match="hair_style"):  # in labels.parquet, but unknown for every face
        load_labels(faces, ["hair_style"], params.paths.labels, params.paths.faces, params.paths.raw)
    with pytest.raises(ValueError, match="columns of none"):
        load_labels(faces, ["tail_length"], params.paths.labels, params.paths.faces, params.paths.raw)


@pytest.mark.parametrize("model", sorted(TINY))
def test_every_family_trains_through_the_stage(zoo, model):
    from pipeline.train.stage import run_train

    root, params = zoo
    summary = run_train(params, model)
    assert summary["steps"] == 3
    run = root / "runs" / model
    assert (run / "checkpoint.pt").exists() and (run / "losses.png").exists() and (run / "train.json").exists()
    assert len(list((run / "samples").glob("epoch_*.png"))) == 1


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_sample_command(zoo, tmp_path):
    from pipeline.train.stage import run_train

    root, params = zoo
    for model in ("cgan", "sketch2image"):
        if not (root / "runs" / model / "checkpoint.pt").exists():
            run_train(params, model)
    over = [a for kv in zoo_overrides(root) for a in ("-S", kv)] + ["-S", "tracking.enabled=false"]
    out = tmp_path / "blue.png"
    r = _cli("sample", "cgan", "--n", "16", "--tags", "blue hair,green eyes", "--seed", "3", "--out", str(out), *over, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert str(out) in r.stdout and Image.open(out).size[0] > 4 * 32  # a 4 x 4 grid of 32 px faces
    again = tmp_path / "again.png"
    assert _cli("sample", "cgan", "--n", "16", "--tags", "blue hair,green eyes", "--seed", "3", "--out", str(again), *over, cwd=ROOT).returncode == 0
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(again)))  # the seed decides
    other = tmp_path / "red.png"
    assert _cli("sample", "cgan", "--n", "16", "--tags", "red hair,green eyes", "--seed", "3", "--out", str(other), *over, cwd=ROOT).returncode == 0
    assert not np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(other)))  # the tags decide too

    r = _cli("sample", "cgan", "--tags", "purple hair", *over, cwd=ROOT)
    assert r.returncode != 0 and "purple hair" in r.stderr and "blue hair" in r.stderr  # names the known ones

    sketch = tmp_path / "sketch.png"
    Image.fromarray(np.full((48, 48), 255, np.uint8)).save(sketch)
    out = tmp_path / "from_sketch.png"
    r = _cli("sample", "sketch2image", "--sketch", str(sketch), "--out", str(out), *over, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert Image.open(out).size[0] > 2 * 32  # sketch and face side by side

    r = _cli("sample", "cgan", "--sketch", str(sketch), *over, cwd=ROOT)
    assert r.returncode != 0 and "sketch2image" in r.stderr


@pytest.mark.parametrize("model", ["sketch2image", "acgan"])
def test_evaluate_new_families(zoo, model):
    from pipeline.evaluate.stage import run_evaluate
    from pipeline.train.stage import run_train

    root, params = zoo
    if not (root / "runs" / model / "train.json").exists():
        run_train(params, model)
    metrics = run_evaluate(params, model)
    assert metrics["ssl_fd"] >= 0 and metrics["num_fake"] == 32
    if model == "acgan":  # conditional: evaluate knows what each sample asked for and reads it back
        assert 0 <= metrics["attr_acc_hair_color"] <= 1 and "attr_acc" in metrics
    else:
        assert not any(k.startswith("attr_acc") for k in metrics)
