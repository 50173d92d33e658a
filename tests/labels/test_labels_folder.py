"""Labelled folders: attribute=value subfolders (nested), ImageFolder class folders, a CSV beside the
images; through the real scrape and labels stages, with the vocabulary checks and line-numbered
errors of the manual CSV, and the `folder` place in labels.precedence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline.core.errors import StageError
from pipeline.labels.stage import labels
from pipeline.params import CropParams, LabelsParams, PathsParams, ScrapeParams, VocabularyParams

VOCAB = VocabularyParams(groups={"hair_color": {"blonde": "blonde hair", "blue": "blue hair", "grey": "grey hair"},
                                 "eye_color": {"red": "red eyes", "green": "green eyes"}},
                         binary={"smile": "smile"})


def image(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (16, 16, 3), np.uint8)).save(path)


def pipeline_of(tmp: Path, folder: Path, precedence=("manual", "folder", "danbooru", "i2v"), manual: str | None = None, **scrape):
    """scrape (folder) -> crop (none) -> an empty tag table -> labels; the labels table by source file name."""
    from pipeline.core.layout import PROB_PREFIX
    from pipeline.crop.stage import crop
    from pipeline.scrape.stage import scrape as run_scrape

    paths = PathsParams(raw=str(tmp / "raw"), faces=str(tmp / "faces"), tags=str(tmp / "tags.parquet"),
                        labels=str(tmp / "labels.parquet"), labels_vocab=str(tmp / "vocab.json"),
                        label_conflicts=str(tmp / "conflicts.csv"))
    run_scrape(ScrapeParams(source="folder", folder=str(folder), **scrape), paths.raw)
    crop(CropParams(detector="none", size=16, workers=1), paths.raw, paths.faces)
    pd.DataFrame(columns=["face_id", "content", "tagged_with", *(PROB_PREFIX + t for t in VOCAB.tags())]).to_parquet(paths.tags)
    if manual is not None:
        (tmp / "manual.csv").write_text(manual)
    result = labels(LabelsParams(manual=str(tmp / "manual.csv"), precedence=list(precedence)), VOCAB, paths)
    manifest = pd.read_parquet(tmp / "raw/manifest.parquet")
    index = pd.read_parquet(tmp / "faces/index.parquet")
    names = dict(zip(manifest["md5"], (Path(o).relative_to(folder).as_posix() for o in manifest["origin"])))
    table = pd.read_parquet(paths.labels)
    table["file"] = table["face_id"].map(dict(zip(index["face_id"], index["md5"].map(names))))
    return result, table.set_index("file")


def test_nested_attribute_folders(tmp_path):
    pics = tmp_path / "pics"
    image(pics / "hair_color=blue/eye_color=red/a.png", 0)
    image(pics / "hair_color=Blonde_Hair/b.png", 1)  # the tag spelling is understood too
    image(pics / "smile=yes/hair_color=grey/c.png", 2)
    image(pics / "d.png", 3)  # unlabelled
    result, t = pipeline_of(tmp_path, pics)
    a = t.loc["hair_color=blue/eye_color=red/a.png"]
    assert a[["hair_color", "eye_color", "smile"]].tolist() == ["blue", "red", "unknown"]
    assert t.loc["hair_color=Blonde_Hair/b.png", "hair_color"] == "blonde"
    assert t.loc["smile=yes/hair_color=grey/c.png", ["hair_color", "smile"]].tolist() == ["grey", "yes"]
    assert t.loc["d.png", "hair_color"] == "unknown" and t.loc["d.png", "source_hair_color"] == "none"
    assert t.loc["hair_color=blue/eye_color=red/a.png", "source_hair_color"] == "folder"
    assert result.folder_faces == 3 and result.summary()["folder_faces"] == 3


def test_class_folders_are_values_of_folder_attribute(tmp_path):
    pics = tmp_path / "pics"
    image(pics / "blue/a.png", 0)
    image(pics / "grey/sub/b.png", 1)  # deeper folders: the top-level one is the class
    _, t = pipeline_of(tmp_path, pics, folder_attribute="hair_color")
    assert t.loc["blue/a.png", "hair_color"] == "blue" and t.loc["grey/sub/b.png", "hair_color"] == "grey"
    # without folder_attribute, plain folders say nothing
    _, t = pipeline_of(tmp_path / "again", pics)
    assert set(t["hair_color"]) == {"unknown"}


def test_a_csv_beside_the_images(tmp_path):
    pics = tmp_path / "pics"
    image(pics / "a.png", 0)
    image(pics / "sub/b.png", 1)
    image(pics / "hair_color=blue/c.png", 2)
    (pics / "labels.csv").write_text("file,tags,comment\na.png,\"blonde hair, smile\",x\nsub/b.png,green eyes,\n"
                                     "hair_color=blue/c.png,blue hair,agrees with its folder\n")
    _, t = pipeline_of(tmp_path, pics)
    assert t.loc["a.png", ["hair_color", "smile"]].tolist() == ["blonde", "yes"]
    assert t.loc["sub/b.png", ["hair_color", "eye_color"]].tolist() == ["unknown", "green"]
    assert t.loc["hair_color=blue/c.png", "hair_color"] == "blue"
    assert "labels.csv" not in t.index  # the CSV is not an image
    # attribute columns instead of tags, the bare name where it is unique
    (pics / "labels.csv").write_text("file,hair_color,smile\nb.png,grey,no\n")
    _, t = pipeline_of(tmp_path / "again", pics)
    assert t.loc["sub/b.png", ["hair_color", "smile"]].tolist() == ["grey", "no"]


def test_precedence_orders_the_folder_like_the_other_sources(tmp_path):
    pics = tmp_path / "pics"
    image(pics / "hair_color=blue/a.png", 0)
    manual = "file,hair_color\na.png,grey\n"
    _, t = pipeline_of(tmp_path / "1", pics, manual=manual)
    assert t.loc["hair_color=blue/a.png", ["hair_color", "source_hair_color"]].tolist() == ["grey", "manual"]
    _, t = pipeline_of(tmp_path / "2", pics, precedence=["folder", "manual"], manual=manual)
    assert t.loc["hair_color=blue/a.png", ["hair_color", "source_hair_color"]].tolist() == ["blue", "folder"]
    _, t = pipeline_of(tmp_path / "3", pics, precedence=["i2v"])
    assert t.loc["hair_color=blue/a.png", "hair_color"] == "unknown"  # left out: not used


def test_bad_values_are_all_reported_with_their_folder_or_line(tmp_path):
    pics = tmp_path / "pics"
    for i in range(3):
        image(pics / f"hair_color=blu/{i}.png", i)  # one problem, not one per image
    image(pics / "hair_colour=blue/x.png", 5)
    image(pics / "y.png", 6)
    image(pics / "z.png", 7)
    (pics / "labels.csv").write_text("file,smile,tags\ny.png,maybe,\nz.png,,purple hair\n")
    with pytest.raises(StageError) as e:
        pipeline_of(tmp_path, pics)
    msg = str(e.value)
    assert "4 problem(s); nothing was written" in msg
    assert f"{pics}/hair_color=blu/: hair_color: unknown value 'blu' (did you mean 'blue'?)" in msg
    assert f"{pics}/hair_colour=blue/: unknown attribute 'hair_colour' (did you mean 'hair_color'" in msg
    assert f"{pics}/labels.csv: line 2: smile: 'maybe' is not yes/no" in msg
    assert f"{pics}/labels.csv: line 3: unknown tag 'purple hair'" in msg
    assert "python -m pipeline scrape" in msg
    assert not (tmp_path / "labels.parquet").exists()


def test_csv_shape_problems_stop_the_scrape_with_their_lines(tmp_path):
    from pipeline.scrape.stage import scrape

    pics = tmp_path / "pics"
    image(pics / "a/x.png", 0)
    image(pics / "b/x.png", 1)
    image(pics / "hair_color=blue/y.png", 2)
    (pics / "labels.csv").write_text("file,hair_color\nx.png,grey\nnope.png,blue\nhair_color=blue/y.png,grey\n"
                                     "a/x.png,grey\na/x.png,blue\nb/x.png\n")
    with pytest.raises(StageError) as e:
        scrape(ScrapeParams(source="folder", folder=str(pics)), tmp_path / "raw")
    msg = str(e.value)
    assert "line 2: 'x.png' names 2 images (a/x.png, b/x.png); give its path inside the folder" in msg
    assert f"line 3: no image 'nope.png' in {pics}" in msg
    assert "line 6: a/x.png is already labelled on line 5 (duplicate)" in msg
    assert "line 7: 1 fields, the header has 2" in msg
    assert not any((tmp_path / "raw").iterdir())  # nothing stored
    (pics / "labels.csv").write_text("file,hair_color\nhair_color=blue/y.png,grey\n")
    with pytest.raises(StageError, match="line 2: hair_color is 'grey', but its folder says 'blue'"):
        scrape(ScrapeParams(source="folder", folder=str(pics)), tmp_path / "raw")
    (pics / "labels.csv").write_text("name,hair_color\ny.png,blue\n")
    with pytest.raises(StageError, match="line 1: the header needs one 'file' column"):
        scrape(ScrapeParams(source="folder", folder=str(pics)), tmp_path / "raw")
    image(pics / "hair_color=blue/hair_color=grey/w.png", 3)
    (pics / "labels.csv").unlink()
    with pytest.raises(StageError, match="hair_color given as both 'blue' and 'grey' by its folders"):
        scrape(ScrapeParams(source="folder", folder=str(pics)), tmp_path / "raw")


def test_folder_labels_null_reads_no_csv(tmp_path):
    pics = tmp_path / "pics"
    image(pics / "a.png", 0)
    (pics / "labels.csv").write_text("file,hair_color\nnot-an-image.png,blue\n")  # would be an error if read
    _, t = pipeline_of(tmp_path, pics, folder_labels=None)
    assert t.loc["a.png", "hair_color"] == "unknown"


def test_the_labelling_page_shows_what_the_labels_stage_keeps():
    """The page (pipeline/labels/page) merges the folder's values by the same precedence."""
    from pipeline.labels.page.faces import face_view

    view = face_view("f", {}, None, VOCAB, LabelsParams(), 0.6, None, {"hair_color": "blue"})
    assert view["attrs"]["hair_color"]["value"] == "blue" and view["attrs"]["hair_color"]["source"] == "folder"
    view = face_view("f", {"hair_color": "grey"}, None, VOCAB, LabelsParams(), 0.6, None, {"hair_color": "blue"})
    assert view["attrs"]["hair_color"]["value"] == "grey" and view["attrs"]["hair_color"]["source"] == "manual"
    view = face_view("f", {}, None, VOCAB, LabelsParams(precedence=["i2v"]), 0.6, None, {"hair_color": "blue"})
    assert view["attrs"]["hair_color"]["source"] == "none"
