"""The tag stage on toy faces with small weights in the official format: outputs, incremental
re-runs, vocabulary checks, the disabled mode."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from pipeline.core.errors import StageError
from pipeline.core.layout import PROB_PREFIX
from pipeline.crop.stage import crop
from pipeline.params import CropParams, ScrapeParams, TagParams, ToySource, VocabularyParams
from pipeline.scrape.stage import scrape
from pipeline.tag.i2v import converted_state
from pipeline.tag.i2v_net import I2VTagNet
from pipeline.tag.i2v_preprocess import preprocess
from pipeline.tag.stage import tag

from fakes.i2v_tiny import tag_names, write_weights


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    root = tmp_path_factory.mktemp("tagfaces")
    scrape(ScrapeParams(source="toy", toy=ToySource(count=12, size=32)), root / "raw")
    crop(CropParams(detector="none", size=32), root / "raw", root / "faces")
    return root / "faces"


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    tags = tag_names(VocabularyParams().tags())
    return write_weights(tmp_path_factory.mktemp("w"), tags, seed=5), tags


def params_for(weights_dir, **kw) -> TagParams:
    return TagParams(enabled=True, weights_dir=str(weights_dir), download=False, device="cpu", batch_size=5, **kw)


def test_tags_table_holds_the_network_outputs(faces, weights, tmp_path):
    folder, tags = weights
    params = params_for(folder, threshold=0.5)
    out = tmp_path / "tags.parquet"
    result = tag(params, faces, out)
    table = pd.read_parquet(out)
    index = pd.read_parquet(faces / "index.parquet")
    assert result.tagged == len(index) == 12 and result.reused == 0
    assert table["face_id"].tolist() == index["face_id"].tolist()

    state, _ = converted_state(folder / "illust2vec_tag_ver200.caffemodel")
    net = I2VTagNet.from_state_dict(state).eval()
    images = [Image.open(faces / p).convert("RGB") for p in index["path"]]
    with torch.no_grad():
        probs = net(torch.from_numpy(preprocess(images))).numpy()
    for t in VocabularyParams().tags():
        np.testing.assert_allclose(table[PROB_PREFIX + t].to_numpy(), probs[:, tags.index(t)], atol=1e-5)
    for row, p in zip(table.itertuples(), probs):
        expected = [tags[i] for i in np.argsort(-p, kind="stable") if p[i] > 0.5]
        assert list(row.tags) == expected and all(q > 0.5 for q in row.tag_probs)
    assert table["tags"].map(len).sum() > 0  # the threshold keeps some and drops some
    assert table["tags"].map(len).sum() < len(table) * len(tags)


def test_rerun_is_incremental(faces, weights, tmp_path):
    folder, _ = weights
    params = params_for(folder)
    out = tmp_path / "tags.parquet"
    tag(params, faces, out)
    first = pd.read_parquet(out)
    again = tag(params, faces, out)
    assert (again.tagged, again.reused) == (0, 12)
    pd.testing.assert_frame_equal(pd.read_parquet(out), first)

    # one face re-cropped: only it runs again
    index = pd.read_parquet(faces / "index.parquet")
    victim = faces / index["path"][3]
    original = victim.read_bytes()
    try:
        Image.open(victim).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(victim)
        changed = tag(params, faces, out)
        assert (changed.tagged, changed.reused) == (1, 11)
        assert pd.read_parquet(out)["face_id"].tolist() == index["face_id"].tolist()
    finally:
        victim.write_bytes(original)

    # another threshold means other tag lists: everything runs again
    assert tag(params_for(folder, threshold=0.9), faces, out).tagged == 12


def test_unknown_vocabulary_tag_is_an_error_with_suggestions(faces, weights, tmp_path):
    folder, _ = weights
    vocab = VocabularyParams(groups={"hair_color": {"gray": "gray hair", "blonde": "blonde hair"}}, binary={"smile": "smiling"})
    with pytest.raises(StageError) as e:
        tag(params_for(folder, vocabulary=vocab), faces, tmp_path / "t.parquet")
    assert "'gray hair' (closest: 'grey hair'" in str(e.value) and "'smiling'" in str(e.value)
    assert not (tmp_path / "t.parquet").exists()


def test_missing_weights_without_download_name_the_urls(faces, tmp_path):
    with pytest.raises(StageError, match="releases/download/v2.0.0/illust2vec_tag_ver200.caffemodel"):
        tag(params_for(tmp_path / "empty"), faces, tmp_path / "t.parquet")


def test_disabled_stage_writes_an_empty_table(faces, tmp_path):
    out = tmp_path / "t.parquet"
    result = tag(TagParams(enabled=False), faces, out)
    table = pd.read_parquet(out)
    assert len(table) == 0 and not result.enabled
    assert {PROB_PREFIX + t for t in VocabularyParams().tags()} <= set(table.columns)


def test_vocabulary_params_are_validated():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="more than one"):
        VocabularyParams(groups={"a": {"x": "t", "y": "t"}}, binary={})
    with pytest.raises(ValidationError, match="at least 2"):
        VocabularyParams(groups={"a": {"x": "t"}}, binary={})
    with pytest.raises(ValidationError, match="must match"):
        VocabularyParams(groups={}, binary={"Bad Name": "t"})


def test_faces_cropped_without_files_are_refused_with_the_setting_to_change(weights, tmp_path):
    scrape(ScrapeParams(source="toy", toy=ToySource(count=3, size=32)), tmp_path / "raw")
    crop(CropParams(detector="none", size=32, pngs=False), tmp_path / "raw", tmp_path / "faces")
    with pytest.raises(StageError, match="crop.pngs=true"):
        tag(params_for(weights[0]), tmp_path / "faces", tmp_path / "t.parquet")
