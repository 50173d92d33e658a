"""params.yaml validation: bad input stops before any work with a message naming key and allowance."""

import subprocess
import sys
import time

import pytest

from pipeline.params import ParamsError, load_params, parse_override

from conftest import ROOT


def test_repo_params_load_and_validate():
    p = load_params(ROOT / "params.yaml")
    assert p.train.enabled and all(m in p.train.models for m in p.train.enabled)
    assert p.model("dcgan").net["nz"] == 100


def test_override_parses_yaml_values():
    assert parse_override("train.models.dcgan.lr=1e-4") == (["train", "models", "dcgan", "lr"], 1e-4)
    assert parse_override("scrape.extensions=[png, jpg]")[1] == ["png", "jpg"]
    p = load_params(ROOT / "params.yaml", ["train.models.dcgan.lr=0.001", "crop.size=32"])
    assert p.model("dcgan").lr == 0.001 and p.crop.size == 32


def write(tmp_path, text):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, expected", [
    ("crop:\n  szie: 64\n", ["crop.szie", "did you mean 'crop.size'", "allowed here:"]),
    ("crop:\n  size: big\n", ["crop.size", "'big'", "integer"]),
    ("crop:\n  margin: 0.5\n", ["crop.margin", "0.5", "greater than or equal to 1"]),
    ("crop:\n  detector: yolo\n", ["crop.detector", "'yolo'", "animeface", "none"]),
    ("scrape:\n  source: folder\n", ["scrape.folder is not set"]),
    ("scrape:\n  extensions: [png, exe]\n", ["exe", "allowed"]),
    ("train:\n  enabled: [nope]\n  models: {}\n", ["train.enabled", "nope"]),
    ("train:\n  models:\n    m: {arch: stylegan9}\n", ["train.models.m.arch", "unknown arch 'stylegan9'", "dcgan"]),
    ("train:\n  models:\n    dcgan: {arch: dcgan, net: {ngf: -1}}\n", ["net.ngf", "-1"]),
    ("train:\n  models:\n    dcgan: {arch: dcgan, net: {widht: 3}}\n", ["net.widht", "allowed"]),
    ("evaluate:\n  metrics: [fid9]\n", ["fid9", "ssl_fd"]),
    ("- a list\n", ["mapping"]),
    ("crop: [unclosed\n", ["not valid YAML"]),
])
def test_bad_params_name_the_key(tmp_path, text, expected):
    with pytest.raises(ParamsError) as e:
        load_params(write(tmp_path, text))
    for fragment in expected:
        assert fragment in str(e.value)


def test_bad_override_and_missing_file(tmp_path):
    with pytest.raises(ParamsError, match="key.sub=value"):
        load_params(ROOT / "params.yaml", ["no-equals-sign"])
    with pytest.raises(ParamsError, match="crop.size"):
        load_params(ROOT / "params.yaml", ["crop.size=-3"])
    with pytest.raises(ParamsError, match="does not exist"):
        load_params(tmp_path / "missing.yaml")


def test_folder_source_with_missing_folder_fails_before_writing(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pipeline", "scrape", "-S", "scrape.source=folder",
                          "-S", f"scrape.folder={tmp_path / 'nowhere'}", "-S", f"paths.raw={tmp_path / 'raw'}",
                          "-S", "tracking.enabled=false"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 1
    assert "nowhere" in out.stderr and "is not a directory" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "raw" / "manifest.parquet").exists()


def test_cli_bad_params_exit_2_without_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pipeline", "crop", "-S", "crop.size=huge"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 2 and "crop.size" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("stage", ["scrape", "crop", "train", "evaluate", "report", "flow"])
def test_help_is_instant(stage):
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "pipeline", stage, "--help"], cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    assert out.returncode == 0 and "-S KEY=VALUE" in out.stdout
    assert elapsed < 1.5, f"{stage} --help took {elapsed:.2f}s: something heavy is imported eagerly"


def test_top_level_help_imports_nothing_heavy():
    code = ("import sys, contextlib, io\nfrom pipeline.cli import build_parser\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n    build_parser().format_help()\n"
            "print(sorted(m for m in ('torch', 'mlflow', 'prefect', 'pandas', 'pydantic') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
