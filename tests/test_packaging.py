"""The wheel is what a user gets from ``pip install .``: build it, install it into a fresh venv and
use it from an empty folder, far from this checkout.

Offline by design (CI machines have no cache and no network but PyPI): the fresh venv sees the
installed dependencies of the running interpreter's site-packages through a ``.pth`` line (which
adds the folder but does not run its ``.pth`` files, so the checkout's editable install stays out),
and the wheel itself is installed with ``--no-deps``. Everything ``boorugan`` imports therefore
comes from the wheel, or the test fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT, tiny_overrides

pytestmark = pytest.mark.slow
FILES_READ_AT_RUN_TIME = ("pipeline/play/static/index.html", "pipeline/play/static/app.js", "pipeline/play/static/app.css",
                          "pipeline/labels/page/static/index.html", "pipeline/labels/page/static/app.js",
                          "pipeline/labels/page/static/app.css", "pipeline/starter/params.yaml", "flows/prefect.yaml")


def _sources() -> list[Path]:
    """Every tracked or new (not ignored) file, as the wheel would be built from a clean clone."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         check=True, capture_output=True, text=True).stdout
    return [Path(p) for p in out.split("\0") if p and (ROOT / p).exists()]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return {**env, "PYTHONNOUSERSITE": "1", **extra}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, Path]:
    """A copy of the working tree -> a wheel -> a fresh venv holding it; returns the paths."""
    import shutil

    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    for rel in _sources():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / rel).is_file():
            shutil.copy2(ROOT / rel, src / rel, follow_symlinks=False)  # symlinks stay links, as in a clone
    dist = base / "dist"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "--disable-pip-version-check", "-w", str(dist), str(src)],
                           capture_output=True, text=True, timeout=600, env=_clean_env())
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = dist.glob("boorugan-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    site = Path(subprocess.run([str(venv / "bin/python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True, env=_clean_env()).stdout.strip())
    (site / "_shared_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    inst = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin/python"), "install", "--no-deps",
                           "--ignore-installed", "--no-index", "-q", "--disable-pip-version-check", str(wheel)],
                          capture_output=True, text=True, timeout=600, env=_clean_env())
    assert inst.returncode == 0, inst.stdout[-3000:] + inst.stderr[-3000:]
    work = base / "empty"
    work.mkdir()
    return {"wheel": wheel, "venv": venv, "site": site, "work": work}


def test_the_wheel_holds_every_package_and_run_time_file(installed):
    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    packages = sorted(str(p.parent) for p in ROOT.glob("*/**/__init__.py")
                      if p.parts[len(ROOT.parts)] in ("pipeline", "models", "flows"))
    missing = [p for p in packages if f"{Path(p).relative_to(ROOT)}/__init__.py" not in names]
    assert not missing, f"packages left out of the wheel: {missing}"
    assert not [f for f in FILES_READ_AT_RUN_TIME if f not in names]
    assert not [n for n in names if n.startswith(("tests/", "bench/"))]
    starter = zipfile.ZipFile(installed["wheel"]).read("pipeline/starter/params.yaml").decode()
    assert starter == (ROOT / "params.yaml").read_text(), "the starter params.yaml must be the project's own"


def _boorugan(installed, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(installed["venv"] / "bin/boorugan"), *args], cwd=installed["work"], capture_output=True,
                          text=True, timeout=timeout, env=_clean_env(MLFLOW_TRACKING_URI=f"sqlite:///{installed['work']}/mlflow.db"))


def test_every_subcommand_answers_help_from_the_wheel(installed):
    from pipeline.cli import commands

    where = subprocess.run([str(installed["venv"] / "bin/python"), "-c", "import pipeline, models, flows; "
                            "print(pipeline.__file__, models.__file__, flows.__file__)"],
                           cwd=installed["work"], capture_output=True, text=True, env=_clean_env(), check=True).stdout
    assert where.count(str(installed["site"])) == 3, f"imported from outside the wheel: {where}"
    top = _boorugan(installed, "--help")
    assert top.returncode == 0, top.stderr
    for name in commands():
        shown = _boorugan(installed, name, "--help", timeout=120)
        assert shown.returncode == 0 and f"usage: boorugan {name}" in shown.stdout, (name, shown.stderr[-2000:])


def test_a_toy_run_from_an_empty_folder(installed):
    work = installed["work"]
    assert not (work / "params.yaml").exists()
    init = _boorugan(installed, "init")
    assert init.returncode == 0 and (work / "params.yaml").is_file(), init.stderr
    again = _boorugan(installed, "init")
    assert again.returncode == 1 and "already exists" in again.stderr and "Traceback" not in again.stderr
    flags = [a for kv in tiny_overrides(work) for a in ("-S", kv)]
    for stage in (["scrape"], ["crop"], ["train", "dcgan"]):
        out = _boorugan(installed, *stage, *flags)
        assert out.returncode == 0, (stage, out.stdout[-2000:], out.stderr[-3000:])
    assert len(list((work / "data/faces").glob("*.png"))) == 48
    assert (work / "runs/dcgan/checkpoint.pt").is_file() and "train@dcgan: 4 steps" in out.stdout
