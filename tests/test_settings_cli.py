"""The settings as the user meets them: each command's --help lists its section's settings from the
pydantic models (pipeline/core/settings_doc.py), and a mistyped key at any depth, value or model
name stops with exit code 2 and the nearest known name."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipeline.core.settings_doc import Row, rows, section_rows
from pipeline.params import Params

from conftest import ROOT


def boorugan(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *argv, "-S", "tracking.enabled=false"], cwd=ROOT,
                          capture_output=True, text=True)


def leaf_keys(cls, prefix: str = "") -> set[str]:
    """Every setting's dotted name, found by walking the models independently of settings_doc."""
    from typing import get_args, get_origin

    from pydantic import BaseModel

    out = set()
    for name, info in cls.model_fields.items():
        key, ann = f"{prefix}.{name}" if prefix else name, info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out |= leaf_keys(ann, key)
        elif get_origin(ann) is dict and isinstance(get_args(ann)[1], type) and issubclass(get_args(ann)[1], BaseModel):
            out |= leaf_keys(get_args(ann)[1], f"{key}.<name>")
        else:
            out.add(key)
    return out


def test_rows_cover_every_setting_once_with_type_default_range_and_description():
    all_rows = rows(Params)
    values = [r for r in all_rows if not r.group]
    assert sorted(r.name for r in values) == sorted(leaf_keys(Params))
    by = {r.name: r for r in all_rows}
    assert by["crop.size"] == Row("crop.size", "int", "64", ">= 8, <= 1,024", Params.model_fields["crop"].annotation
                                  .model_fields["size"].description)
    assert by["train.models.<name>.lr"].type == "float" and by["train.models.<name>.lr"].range == "> 0"
    assert by["train.models.<name>.arch"].default == "required"
    assert by["crop.detect_max_side"].type == "int or null"
    assert by["crop.detector"].type == "one of: animeface, lbpcascade, ensemble, none"
    assert by["crop.detector"].default == '"animeface"'
    assert by["train.fast"].type == "one of: auto, on, off"  # through the Switch annotation
    assert by["train.models"].group and by["train.budget"].group
    assert by["scrape.danbooru.ratings"].default == '["g"]'
    assert section_rows("crop") == rows(Params.model_fields["crop"].annotation, "crop")


@pytest.mark.parametrize("command, section", [("scrape", "scrape"), ("crop", "crop"), ("tag", "tag"),
                                              ("labels", "labels"), ("train", "train"), ("evaluate", "evaluate"),
                                              ("report", "report"), ("play", "play"), ("label", "label")])
def test_each_commands_help_lists_its_settings(command, section):
    out = subprocess.run([sys.executable, "-m", "pipeline", command, "--help"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for r in section_rows(section):
        if not r.group:
            assert f"  {r.name}: {r.type}" in out.stdout, f"{r.name} missing from `{command} --help`"
    if section == "crop":
        assert "crop.size: int = 64 (>= 8, <= 1,024)" in out.stdout and "output side in px" in out.stdout


def test_stage_help_imports_nothing_heavy():
    code = ("import sys, contextlib, io\nfrom pipeline.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "    main(['train', '--help'])\n"
            "print(sorted(m for m in ('torch', 'mlflow', 'prefect', 'pandas', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("argv, expected", [
    (["crop", "-S", "train.models.dcgan.lrr=1"], "unknown key 'train.models.dcgan.lrr' (did you mean 'train.models.dcgan.lr'?)"),
    (["crop", "-S", "crop.detecter=animeface"], "(did you mean 'crop.detector'?)"),
    (["crop", "-S", "train.modls.dcgan.lr=1"], "(did you mean 'train.models'?)"),
    (["crop", "-S", "scrape.danbooru.ratng=[g]"], "(did you mean 'scrape.danbooru.ratings'?)"),
    (["crop", "-S", "train.models.dcgan.budget.cpu=1"], "unknown key 'train.models.dcgan.budget'"),
    (["crop", "-S", "crop.detector=animefase"], "(did you mean 'animeface'?)"),
    (["crop", "-S", "train.models.dcgan.net.ngff=8"], "(did you mean 'net.ngf'?)"),
    (["crop", "-S", "train.models.dcgan.arch=dcgn"], "unknown arch 'dcgn' (did you mean 'dcgan'?)"),
    (["crop", "-S", "train.enabled=[dcgn]"], "(did you mean 'dcgan'?)"),
    (["train", "dcgn"], "no model 'dcgn' in train.models (did you mean 'dcgan'?)"),
    (["evaluate", "acgn"], "no model 'acgn' in train.models (did you mean 'acgan'?)"),
])
def test_unknown_names_say_did_you_mean_and_exit_2(argv, expected):
    out = boorugan(*argv)
    assert out.returncode == 2, out.stderr
    assert expected in out.stderr and "Traceback" not in out.stderr


def test_no_hint_when_nothing_is_close():
    out = boorugan("crop", "-S", "crop.zzzzqqq=1")
    assert out.returncode == 2 and "unknown key 'crop.zzzzqqq'" in out.stderr and "did you mean" not in out.stderr
