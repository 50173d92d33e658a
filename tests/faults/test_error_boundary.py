"""One error boundary: whatever a user gets wrong or runs into reaches them as one paragraph that names
the input and what to do, with a non-zero exit code and no traceback (``--debug`` shows it).

Every case runs the real command line (``python -m pipeline ...``) in its own process: bad values and
malformed overrides, a real full disk (a tmpfs filled to the brim) under scrape, crop, evaluate and
report, a real Ctrl-C and SIGTERM in the middle of a run (the MLflow run ends KILLED)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from faults.harness import cli, fill, run, small_disk, start, stray_tmp, tree

from conftest import ROOT, run_data_stages, tiny_overrides


def paragraph(stderr: str, *needles: str) -> str:
    """The error paragraph: no traceback, no blank line inside, every needle in it."""
    text = stderr.strip()
    assert "Traceback" not in text, text
    assert "\n\n" not in text, text
    for n in needles:
        assert n in text, f"{n!r} not in {text!r}"
    return text


@pytest.fixture
def world(tmp_path):
    """An empty project folder: params.yaml and nothing else, tracking off (bad inputs stop before any work)."""
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


OFF = ("-S", "tracking.enabled=false")


@pytest.mark.parametrize("argv, needles", [
    (["train", "dcgan", "-S", "train.models.dcgan.net.ngf=100000"], ["net.ngf = 100000", "at most 1024"]),
    (["train", "dcgan", "-S", "train.models.dcgan=[1,2"], ["-S 'train.models.dcgan=[1,2'", "not valid YAML"]),
    (["train", "dcgan", "-S", "train.models.dcgan=[1,2]"], ["train.models.dcgan = [1, 2]", "must be a mapping",
                                                            "-S train.models.dcgan=[1,2]"]),
    (["train", "dcgan", "-S", "train.models.dcgan.lr"], ["-S 'train.models.dcgan.lr'", "key.sub=value"]),
    (["train", "dcgan", "-S", "train.models.dcgan.steps=1e12"], ["train.models.dcgan.steps", "100000000",
                                                                 "3.5 days"]),
    (["train", "dcgan", "-S", "train.models.dcgan.batch_size=1000000"], ["train.models.dcgan.batch_size",
                                                                         "BigGAN"]),
    (["scrape", "-S", "scrape.toy.count=1e9"], ["scrape.toy.count", "1000000", "train holds every face in memory"]),
    (["evaluate", "dcgan", "-S", "evaluate.num_samples=1e8"], ["evaluate.num_samples", "200000", "FID's customary"]),
    (["crop", "-S", "crop.size=100000"], ["crop.size", "1024", "3 MB each at 1024 px"]),
    (["sample", "dcgan", "--n", "-5"], ["--n", "-5 is outside 1..1024"]),
    (["sample", "dcgan", "--n", "100000000"], ["--n", "100000000 is outside 1..1024", "--seed"]),
])
def test_a_bad_value_or_override_is_one_paragraph_that_names_it(world, argv, needles):
    r = run(cli(*argv, *OFF), cwd=world, check=False, timeout=120)
    assert r.returncode == 2, r.stderr
    paragraph(r.stderr, *needles)


def test_debug_shows_the_traceback(world):
    argv = cli("train", "dcgan", "-S", "train.models.dcgan=[1,2", *OFF)
    plain = run(argv, cwd=world, check=False)
    flagged = run(argv[:3] + ["--debug"] + argv[3:], cwd=world, check=False)
    by_env = run(argv, cwd=world, check=False, BOORUGAN_DEBUG="1")
    after = run(argv + ["--debug"], cwd=world, check=False)  # also after the stage's name
    assert "Traceback" not in plain.stderr
    for r in (flagged, by_env, after):
        assert r.returncode == 2 and "Traceback" in r.stderr and "load_params" in r.stderr, r.stderr
        assert r.stderr.strip().splitlines()[-1].startswith("boorugan train: error: override"), r.stderr


def test_an_unexpected_error_says_it_is_a_bug_and_how_to_see_the_traceback():
    from pipeline.core.failures import EXIT_BUG, explain

    try:
        {}["no such key"]
    except KeyError as e:
        f = explain(e, "crop")
    assert f.code == EXIT_BUG
    assert "bug in boorugan" in f.message and "github.com/boorugan/boorugan/issues" in f.message
    assert "--debug" in f.message and "BOORUGAN_DEBUG=1" in f.message and "KeyError" in f.message


def test_memory_and_picture_bombs_say_what_to_lower():
    """Real exceptions of each kind (torch's GPU one by its class, as the boundary never imports torch)."""
    import io

    import torch
    from PIL import Image

    from pipeline.core.failures import explain

    from fakes.bomb import png_declaring

    try:
        bytearray(1 << 62)
    except MemoryError as e:
        f = explain(e, "train", model="dcgan")
    assert f.code == 1 and "out of memory" in f.message and "train.models.dcgan.batch_size" in f.message
    f = explain(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "evaluate", model="acgan")
    assert f.code == 1 and "GPU ran out of memory" in f.message and "evaluate.batch_size" in f.message
    with pytest.raises(Image.DecompressionBombError) as bomb:
        Image.open(io.BytesIO(png_declaring(30000, 30000)))
    f = explain(bomb.value, "crop")
    assert f.code == 1 and "decompression bomb" in f.message and "900000000" in f.message


# --- a real full disk -----------------------------------------------------------------------------


def tiny(root: Path, **paths: str) -> list[str]:
    return [*tiny_overrides(root), "crop.workers=1", "train.enabled=[dcgan]", "evaluate.metrics=[diversity]",
            "tracking.enabled=false", *(f"paths.{k}={v}" for k, v in paths.items())]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A project with raw images, faces, one tiny trained and evaluated dcgan (built in this process)."""
    from pipeline.evaluate.stage import run_evaluate
    from pipeline.params import load_params
    from pipeline.train.stage import run_train

    root = tmp_path_factory.mktemp("trained")
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")
    params = load_params(root / "params.yaml", tiny(root))
    run_data_stages(params)
    run_train(params, "dcgan")
    run_evaluate(params, "dcgan")
    return root


def full_disk_fails(root: Path, disk: Path, argv: list[str], knob: str, out: Path) -> None:
    """``argv`` writing ``out`` on the full ``disk`` stops with the disk-full paragraph, and what was
    there before stays byte for byte, with no temporary file left."""
    before = tree(disk)
    fill(disk)
    r = run(cli(*argv, params=root / "params.yaml"), cwd=root, check=False, timeout=300)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    text = paragraph(r.stderr.strip().splitlines()[-1], "is full", f"point {knob} at ", str(out))
    assert text.startswith(f"boorugan {argv[0]}: error: the disk holding "), text
    (disk / "ballast").unlink()
    assert tree(disk) == before
    assert stray_tmp(disk) == []


def test_scrape_on_a_full_disk(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    with small_disk(2) as disk:
        raw = disk / "raw"
        full_disk_fails(tmp_path, disk, ["scrape", *sum((["-S", o] for o in tiny(tmp_path, raw=str(raw))), [])],
                        "paths.raw", raw)
        assert not (raw / "manifest.parquet").exists()


def test_crop_on_a_full_disk(trained):
    with small_disk(2) as disk:
        faces = disk / "faces"
        full_disk_fails(trained, disk, ["crop", *sum((["-S", o] for o in tiny(trained, faces=str(faces))), [])],
                        "paths.faces", faces)
        assert not (faces / "index.parquet").exists()


def test_evaluate_on_a_full_disk_keeps_the_previous_metrics(trained):
    with small_disk(2) as disk:
        metrics = disk / "metrics"
        shutil.copytree(trained / "metrics", metrics)
        argv = ["evaluate", "dcgan", *sum((["-S", o] for o in tiny(trained, metrics=str(metrics))), [])]
        full_disk_fails(trained, disk, argv, "paths.metrics", metrics)


def test_report_on_a_full_disk_keeps_the_previous_report(trained):
    with small_disk(4) as disk:
        reports = disk / "reports"
        argv = ["report", *sum((["-S", o] for o in tiny(trained, reports=str(reports))), [])]
        run(cli(*argv, params=trained / "params.yaml"), cwd=trained)  # a report to keep
        assert (reports / "report.md").is_file()
        full_disk_fails(trained, disk, argv, "paths.reports", reports)


def test_a_read_only_disk_names_the_folder_and_the_knob(trained, tmp_path):
    where = tmp_path / "ro"
    where.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        assert subprocess.run(["mount", "-o", "remount,ro", str(where)], capture_output=True).returncode == 0
        reports = where / "reports"
        argv = ["report", *sum((["-S", o] for o in tiny(trained, reports=str(reports))), [])]
        r = run(cli(*argv, params=trained / "params.yaml"), cwd=trained, check=False)
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    paragraph(r.stderr.strip().splitlines()[-1], str(where), "read-only file system", "point paths.reports elsewhere")


# --- Ctrl-C and SIGTERM -----------------------------------------------------------------------------


def runs_of(experiment: str, stage: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id], f"tags.stage = '{stage}'")


@pytest.mark.parametrize("sig, code, word, tracked", [(signal.SIGINT, 130, "interrupted", False),
                                                      (signal.SIGTERM, 143, "terminated", True)])
def test_ctrl_c_and_sigterm_end_in_one_line_and_a_killed_run(tmp_path, sig, code, word, tracked):
    """Both unwind the same way (one MLflow check is enough: it costs a store and 2 s of imports)."""
    experiment = f"faults-signal-{sig.name}"
    raw = tmp_path / "data" / "raw"
    overrides = [*tiny(tmp_path), "scrape.toy.count=5000", "scrape.toy.size=128", f"tracking.enabled={tracked}",
                 f"tracking.experiment={experiment}"]
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    proc = start(cli("scrape", params=tmp_path / "params.yaml", overrides=overrides), cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while not (raw.is_dir() and len(list(raw.rglob("*.png"))) >= 20):  # (staged or in place)
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()
            time.sleep(0.02)
        os.killpg(proc.pid, sig)  # as a terminal's Ctrl-C (the whole group) or a scheduler's stop
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    last = err.decode().strip().splitlines()[-1]
    assert proc.returncode == code, err.decode()[-3000:]
    assert "Traceback" not in err.decode() and last.startswith(f"boorugan scrape: {word}"), err.decode()[-3000:]
    assert [r.info.status for r in runs_of(experiment, "scrape")] == (["KILLED"] if tracked else [])
    from pipeline.core.atomic import sweep_outputs

    sweep_outputs(raw)  # a signal inside mkstemp may leave one; then its writer is dead and it goes
    assert stray_tmp(tmp_path) == []


def test_a_label_saved_on_a_full_disk_is_a_json_error_and_the_file_stays(tmp_path):
    """The labelling page (a local web server, not the CLI) meets the same full disk: a JSON answer with
    the paragraph, and manual.csv as it was."""
    import requests

    from fakes.label_world import face_ids, label_server, toy_params

    with small_disk(1) as disk:
        params = toy_params(tmp_path, extra=[f"labels.manual={disk}/manual.csv"])
        ids = face_ids(params)
        with label_server(params) as url:
            put = lambda fid: requests.put(f"{url}api/faces/{fid}", json={"values": {"smile": "yes"}}, timeout=30)  # noqa: E731
            assert put(ids[0]).status_code == 200
            before = tree(disk)
            fill(disk)
            r = put(ids[1])
        assert r.status_code == 507 and r.headers["content-type"].startswith("application/json"), r.text
        assert "manual.csv is full" in r.json()["error"], r.text
        (disk / "ballast").unlink()
        assert tree(disk) == before and stray_tmp(disk) == []
