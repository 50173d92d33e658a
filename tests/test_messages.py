"""Every stage's command on missing or bad inputs: one paragraph (no traceback, no blank line) that
names the file or key and the command that makes it right, and the exit code the README documents
(1 for a stage error, 2 for a bad param, 0 for a conditional model skipped for want of labels)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from pipeline.cli import main

from conftest import ROOT

OFF = ["-S", "tracking.enabled=false"]


@pytest.fixture
def world(tmp_path, monkeypatch):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def cli(capsys, *argv: str) -> tuple[int, str]:
    code = main([*argv, *OFF])
    out = capsys.readouterr()
    return code, out.out + out.err


def one_paragraph(text: str, *needles: str) -> None:
    assert "Traceback" not in text and "\n\n" not in text.strip(), text
    for n in needles:
        assert n in text, f"{n!r} not in {text!r}"


def toy_folder(root, n: int = 6, labelled: bool = False) -> None:
    from pipeline.core.toyfaces import draw_face

    rng = np.random.default_rng(0)
    for i in range(n):
        hair = ("blue", "red")[i % 2]
        d = root / f"hair_color={hair}" if labelled else root
        d.mkdir(parents=True, exist_ok=True)
        draw_face(rng, 32, hair, "green").save(d / f"face{i}.png")


@pytest.mark.parametrize("argv, needles", [
    (["crop"], ["data/raw/manifest.parquet does not exist", "python -m pipeline scrape"]),
    (["tag"], ["data/faces/index.parquet does not exist", "python -m pipeline crop"]),
    (["labels"], ["data/faces/index.parquet does not exist", "python -m pipeline crop"]),
    (["train", "dcgan"], ["data/faces/index.parquet does not exist", "python -m pipeline crop"]),
    (["evaluate", "dcgan"], ["runs/dcgan/train.json does not exist", "python -m pipeline train dcgan"]),
    (["report"], ["metrics/dcgan.json does not exist", "python -m pipeline evaluate dcgan"]),
    (["sample", "dcgan"], ["runs/dcgan/checkpoint.pt does not exist", "python -m pipeline train dcgan"]),
    (["scrape", "-S", "scrape.source=folder", "-S", "scrape.folder=no/such/dir"], ["scrape.folder 'no/such/dir'"]),
])
def test_a_missing_input_names_the_file_and_the_stage_that_makes_it(world, capsys, argv, needles):
    code, text = cli(capsys, *argv)
    assert code == 1, text
    one_paragraph(text, *needles)


def test_every_stage_says_the_same_sentence(world, capsys):
    """One helper (pipeline/core/inputs.py) words them:
    '<path> does not exist; run the <stage> stage first (<command>, or dvc repro)'."""
    for argv, path, stage in ((["crop"], "data/raw/manifest.parquet", "scrape"), (["tag"], "data/faces/index.parquet", "crop"),
                              (["evaluate", "acgan"], "runs/acgan/train.json", "train")):
        _, text = cli(capsys, *argv)
        assert f"{path} does not exist; run the {stage} stage first (python -m pipeline {stage}" in text
        assert text.rstrip().endswith("or dvc repro)"), text


@pytest.mark.parametrize("argv, needles", [
    (["train", "dcgan", "-S", "train.models.dcgan.lr=-1"], ["train.models.dcgan.lr"]),
    (["crop", "-S", "crop.detector=yolo"], ["crop.detector", "animeface"]),
    (["train", "no_such_model"], ["no_such_model", "train.models"]),
])
def test_a_bad_param_names_the_key(world, capsys, argv, needles):
    code, text = cli(capsys, *argv)
    assert code == 2, text
    one_paragraph(text, *needles)


def test_a_conditional_model_without_labels_is_skipped_with_the_reason(world, capsys):
    toy_folder(world / "pics")
    base = ["-S", "scrape.source=folder", "-S", "scrape.folder=pics", "-S", "crop.detector=none", "-S", "crop.size=32"]
    for stage in ("scrape", "crop", "tag", "labels"):
        assert cli(capsys, stage, *base)[0] == 0
    code, text = cli(capsys, "train", "dcgan_tags", *base)
    assert code == 0, text
    one_paragraph(text, "train@dcgan_tags: skipped: no labels for hair_color, eye_color: label faces with `boorugan label`, "
                        "a labels CSV or a labelled folder, or turn on the tagger")
    import json

    info = json.loads((world / "runs/dcgan_tags/train.json").read_text())
    assert info["skipped"].startswith("no labels for hair_color, eye_color") and info["steps"] == 0
    code, text = cli(capsys, "evaluate", "dcgan_tags", *base)
    assert code == 0 and "evaluate@dcgan_tags: skipped: no labels for hair_color" in text, text
    assert json.loads((world / "metrics/dcgan_tags.json").read_text()) == {}
    assert json.loads((world / "metrics/dcgan_tags.status.json").read_text())["skipped"] == info["skipped"]
    assert (world / "metrics/dcgan_tags_history.csv").read_text().strip() == "step"


def test_bad_folder_labels_name_the_folder_or_the_csv_line(world, capsys):
    toy_folder(world / "pics", labelled=True)
    (world / "pics/hair_color=blu").mkdir()
    shutil.copy(next((world / "pics/hair_color=red").iterdir()), world / "pics/hair_color=blu/x.png")
    (world / "pics/hair_color=red/extra.png").write_bytes((world / "pics/hair_color=blue/face0.png").read_bytes()[:-1] + b"\0")
    (world / "pics/labels.csv").write_text("file,smile\nhair_color=blue/face0.png,maybe\n")
    base = ["-S", "scrape.source=folder", "-S", "scrape.folder=pics", "-S", "crop.detector=none", "-S", "crop.size=32"]
    for stage in ("scrape", "crop", "tag"):
        assert cli(capsys, stage, *base)[0] == 0
    code, text = cli(capsys, "labels", *base)
    assert code == 1
    one_paragraph(text, "pics/hair_color=blu/: hair_color: unknown value 'blu' (did you mean 'blue'?)",
                  "pics/labels.csv: line 2: smile: 'maybe' is not yes/no", "python -m pipeline scrape")
    (world / "pics/labels.csv").write_text("file,smile\nnot_there.png,yes\n")
    code, text = cli(capsys, "scrape", *base)
    assert code == 1
    one_paragraph(text, "pics/labels.csv", "line 2: no image 'not_there.png'")


@pytest.mark.parametrize("argv, damaged, stage", [
    (["crop"], "data/raw/manifest.parquet", "scrape"),
    (["tag"], "data/faces/index.parquet", "crop"),
    (["labels"], "data/faces/index.parquet", "crop"),
    (["train", "dcgan"], "data/faces/index.parquet", "crop"),
    (["evaluate", "dcgan"], "runs/dcgan/train.json", "train"),
])
def test_a_damaged_input_names_the_file_and_the_stage_to_run_again(world, capsys, argv, damaged, stage):
    path = world / damaged
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"{trunc")
    code, text = cli(capsys, *argv)
    assert code == 1, text
    one_paragraph(text, f"{damaged} cannot be read", f"output of the {stage} stage: run it again (python -m pipeline {stage}")
