"""Damaged checkpoints: truncated, random bytes, a hostile pickle, a zip that lost an entry. Every
command that loads one names the file and what is wrong, exits non-zero, shows no traceback and
never advises loading it unsafely; train sets it aside and starts over, or stops, as
``train.on_damaged`` says; evaluate skips a damaged snapshot with a warning. The hostile pickle
never runs: its marker file must never appear."""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from faults import harness
from faults.train_world import MODEL, STEPS, faces_world, loss_steps, overrides, run_dir, trained_run

from conftest import ROOT


class Hostile:
    """Unpickling this calls os.system: what a checkpoint from a stranger may hold."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def truncated(good: bytes, marker: Path) -> bytes:
    return good[: len(good) // 2]


def random_bytes(good: bytes, marker: Path) -> bytes:
    return harness.rng("damaged-random").randbytes(len(good) // 4)


def hostile(good: bytes, marker: Path) -> bytes:
    """A real PyTorch archive whose pickle, once loaded, runs a shell command."""
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as zin, zipfile.ZipFile(buf, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name.endswith("/data.pkl"):
                data = pickle.dumps({"G": Hostile(marker), "meta": {}, "step": 1}, protocol=2)
            zout.writestr(name, data)
    return buf.getvalue()


def missing_entry(good: bytes, marker: Path) -> bytes:
    """The archive without one tensor's storage (a copy that lost a member)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as zin, zipfile.ZipFile(buf, "w") as zout:
        names = zin.namelist()
        dropped = sorted(n for n in names if "/data/" in n)[1]
        for name in names:
            if name != dropped:
                zout.writestr(name, zin.read(name))
    return buf.getvalue()


DAMAGE: dict[str, tuple[Callable[[bytes, Path], bytes], str]] = {
    "truncated": (truncated, "truncated"),
    "random": (random_bytes, "not a checkpoint of this project"),
    "hostile": (hostile, "refused: contains code"),
    "missing-entry": (missing_entry, "incomplete"),
}


@pytest.fixture(scope="module")
def world(session_tmp) -> Path:
    return faces_world(session_tmp)


@pytest.fixture(scope="module")
def trained(session_tmp) -> Path:
    """A finished tiny run of 20 epochs (checkpoint, snapshots of epochs 5-20, losses, train.json) to copy and damage."""
    return trained_run(session_tmp, STEPS)


def cmd(command: str, world: Path, out: Path, *extra: str, args: tuple[str, ...] = ()) -> list[str]:
    return harness.cli(command, MODEL, *args, params=ROOT / "params.yaml", overrides=overrides(world, out, STEPS, *extra))


def damaged_copy(trained: Path, out: Path, kind: str, file: str = "checkpoint.pt") -> tuple[Path, Path]:
    """A copy of the trained run with ``file`` damaged as ``kind``; (the damaged path, the hostile marker)."""
    shutil.copytree(trained, run_dir(out))
    marker = out / "PWNED"
    path = run_dir(out) / file
    path.write_bytes(DAMAGE[kind][0](path.read_bytes(), marker))
    return path, marker


def assert_diagnosed(r, path: Path, kind: str, marker: Path) -> None:
    """One message naming the file and the problem; no traceback; no advice to load it unsafely."""
    assert r.returncode != 0
    err = r.stderr
    assert "Traceback" not in err, err[-3000:]
    assert "weights_only" not in err, err[-3000:]
    assert str(path) in err and DAMAGE[kind][1] in err, err[-3000:]
    assert not marker.exists(), "the hostile pickle ran"


def test_every_damage_is_diagnosed_by_the_one_loader(trained, tmp_path):
    """load_state / load_generator, in this process: the same diagnosis for each kind of damage."""
    from pipeline.core.errors import StageError
    from pipeline.train.checkpoint import load_generator, load_state

    good = (trained / "checkpoint.pt").read_bytes()
    for kind, (make, words) in DAMAGE.items():
        marker = tmp_path / f"PWNED-{kind}"
        path = tmp_path / f"{kind}.pt"
        path.write_bytes(make(good, marker))
        for load in (load_state, load_generator):
            with pytest.raises(StageError) as e:
                load(path)
            assert str(path) in str(e.value) and words in str(e.value) and "weights_only" not in str(e.value), (kind, str(e.value))
        assert not marker.exists()
    plain = tmp_path / "plain-pickle.pt"  # not even an archive: a bare pickle that would run a command
    plain.write_bytes(pickle.dumps({"G": Hostile(tmp_path / "PWNED-plain")}))
    with pytest.raises(StageError, match="refused: contains code"):
        load_state(plain)
    other = tmp_path / "other.pt"  # a real PyTorch file of another program
    import torch

    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(StageError, match="not a checkpoint of this project"):
        load_state(other)
    assert not (tmp_path / "PWNED-plain").exists()


CLI_CASES = [  # (command, damage): every kind is loaded in-process above; the rest of the matrix with -m soak
    ("sample", "hostile"), ("evaluate", "random"),
    *[pytest.param(c, k, marks=pytest.mark.soak) for c, k in
      [("sample", "truncated"), ("sample", "random"), ("sample", "missing-entry"), ("evaluate", "truncated"), ("evaluate", "hostile"),
       ("evaluate", "missing-entry")]],
]


@pytest.mark.parametrize("command, kind", CLI_CASES)
def test_evaluate_and_sample_name_the_damaged_file(world, trained, tmp_path, command, kind):
    path, marker = damaged_copy(trained, tmp_path, kind)
    args = ("--n", "4", "--out", str(tmp_path / "grid.png")) if command == "sample" else ()
    r = harness.run(cmd(command, world, tmp_path, args=args), check=False)
    assert_diagnosed(r, path, kind, marker)
    assert f"python -m pipeline train {MODEL}" in r.stderr  # what to do


@pytest.mark.parametrize("kind", ["truncated", pytest.param("random", marks=pytest.mark.soak),
                                  pytest.param("hostile", marks=pytest.mark.soak),
                                  pytest.param("missing-entry", marks=pytest.mark.soak)])
def test_train_sets_a_damaged_checkpoint_aside_and_starts_over(world, trained, tmp_path, kind):
    path, marker = damaged_copy(trained, tmp_path, kind)
    damaged = path.read_bytes()
    r = harness.run(cmd("train", world, tmp_path), check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr and "weights_only" not in r.stderr
    aside = sorted(run_dir(tmp_path).glob("checkpoint.pt.damaged-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == damaged, "the damaged file was not kept aside"
    assert str(path) in r.stderr and DAMAGE[kind][1] in r.stderr and aside[0].name in r.stderr, r.stderr[-3000:]
    summary = json.loads((run_dir(tmp_path) / "train.json").read_text())
    assert summary["resumed_from"] == 0 and summary["steps"] == STEPS
    assert loss_steps(run_dir(tmp_path) / "losses.csv") == list(range(1, STEPS + 1))
    assert not marker.exists()


def test_the_trainer_stops_on_a_damaged_checkpoint_when_asked(world, trained, tmp_path):
    """train.on_damaged=stop, in this process (the CLI's way, below, runs with -m soak): the
    trainer stops with the diagnosis and leaves the run folder as it was."""
    from pipeline.core.datasets import load_faces
    from pipeline.core.errors import StageError
    from pipeline.params import ModelSpec
    from pipeline.train.loop import train

    path, marker = damaged_copy(trained, tmp_path, "hostile")
    before = harness.tree(run_dir(tmp_path))
    meta = json.loads((trained / "train.json").read_text())
    spec = ModelSpec(arch="dcgan", steps=STEPS, batch_size=meta["batch_size"], net={"ngf": 8, "ndf": 8, "nz": 16})
    with pytest.raises(StageError) as e:
        train(load_faces(world / "data" / "faces").images, spec, run_dir(tmp_path), device="cpu", on_damaged="stop")
    assert str(path) in str(e.value) and "refused: contains code" in str(e.value) and "train.on_damaged=restart" in str(e.value)
    assert harness.tree(run_dir(tmp_path)) == before and not marker.exists()


@pytest.mark.soak
@pytest.mark.parametrize("kind", ["hostile", "truncated"])
def test_train_stops_on_a_damaged_checkpoint_when_asked(world, trained, tmp_path, kind):
    path, marker = damaged_copy(trained, tmp_path, kind)
    before = harness.tree(run_dir(tmp_path))
    r = harness.run(cmd("train", world, tmp_path, "train.on_damaged=stop"), check=False)
    assert_diagnosed(r, path, kind, marker)
    assert "train.on_damaged=restart" in r.stderr  # the way forward
    assert harness.tree(run_dir(tmp_path)) == before, "stop must leave the run folder as it was"


def test_evaluate_skips_a_damaged_snapshot_with_a_warning(world, trained, tmp_path):
    path, marker = damaged_copy(trained, tmp_path, "truncated", "checkpoints/epoch_005.pt")
    r = harness.run(cmd("evaluate", world, tmp_path, "evaluate.metrics=[diversity]"), check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    assert str(path) in r.stderr and "truncated" in r.stderr
    history = (tmp_path / "metrics" / f"{MODEL}_history.csv").read_text().splitlines()
    steps = [int(line.split(",")[0]) for line in history[1:]]
    assert steps == [30, 45, 60]  # epochs 10 and 15, then the final checkpoint; epoch 5 (step 15) was skipped
