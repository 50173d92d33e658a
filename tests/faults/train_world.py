"""A tiny world for the trainer's fault tests: toy faces made once per test session, and the real
``train`` / ``evaluate`` / ``sample`` commands on a runs folder of the test's own.

A run here is dcgan with 8-channel nets on 48 toy faces of 32 px, batch 16: 3 steps an epoch (so a
checkpoint every 3 steps), losses read every 5 steps (so a checkpoint often lands between two
reads), a G snapshot every 5 epochs. MLflow tracking is off: it is not what these tests break,
and it costs 4 s a process on this machine.
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

from conftest import ROOT, tiny_overrides

MODEL = "dcgan"
STEPS = 60


def faces_world(session_tmp: Path) -> Path:
    """A folder with ``data/raw`` and ``data/faces`` of 48 toy faces, made once per session."""
    root = session_tmp / "faults-train-world"
    if not (root / "data" / "faces" / "index.parquet").exists():
        from pipeline.crop.stage import run_crop
        from pipeline.params import load_params
        from pipeline.scrape.stage import run_scrape

        shutil.rmtree(root, ignore_errors=True)
        params = load_params(ROOT / "params.yaml", tiny_overrides(root))
        run_scrape(params)
        run_crop(params)
    return root


_TRAINED: dict[int, Path] = {}


def trained_run(session_tmp: Path, steps: int = STEPS) -> Path:
    """The run folder of an uninterrupted training of ``steps`` steps through the CLI, made once per
    session: the reference a killed run must end like, and the run the damage tests copy."""
    from faults import harness

    if steps not in _TRAINED:
        world = faces_world(session_tmp)
        out = session_tmp / f"faults-train-reference-{steps}"
        shutil.rmtree(out, ignore_errors=True)
        harness.run(harness.cli("train", MODEL, params=ROOT / "params.yaml", overrides=overrides(world, out, steps)))
        _TRAINED[steps] = run_dir(out)
    return _TRAINED[steps]


def overrides(world: Path, out: Path, steps: int = STEPS, *extra: str) -> list[str]:
    """The -S flags of a tiny training of MODEL reading ``world``'s faces and writing under ``out``."""
    m = f"train.models.{MODEL}"
    return [*tiny_overrides(world), f"paths.runs={out}/runs", f"paths.metrics={out}/metrics",
            f"paths.reports={out}/reports", f"{m}.steps={steps}", f"{m}.log_every=5", f"{m}.batch_size=16",
            "evaluate.every_epochs=5", "tracking.enabled=false", "train.num_threads=1", *extra]


def run_dir(out: Path) -> Path:
    return out / "runs" / MODEL


def loss_steps(path: Path) -> list[int]:
    """The step column of a losses.csv (a torn last line, as a kill leaves it, is not a step)."""
    text = path.read_bytes()
    text = text[:text.rfind(b"\n") + 1]
    rows = list(csv.reader(text.decode().splitlines()))
    return [int(r[0]) for r in rows[1:] if r and r[0].isdigit()]


def files_named(run: Path, name: str, skip: str = "previous") -> list[Path]:
    """Every file called ``name`` under ``run`` (not under ``skip``), read while a live process may
    be renaming and removing folders there (os.walk passes over what vanished)."""
    found = []
    for folder, dirs, files in os.walk(run):
        dirs[:] = [d for d in dirs if d != skip]
        found += [Path(folder) / name] if name in files else []
    return found


def visible(tree: dict[str, bytes]) -> dict[str, bytes]:
    """``harness.tree`` without hidden entries (a name starting with a dot: temporary and staging files)."""
    return {k: v for k, v in tree.items() if not any(part.startswith(".") for part in Path(k).parts)}


def open_for_writing(pid: int, name_part: str) -> bool:
    """Whether process ``pid`` holds a file whose name contains ``name_part`` open for writing
    (read from /proc: what the process really did, not what its log says)."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                flags = int(next(line for line in f if line.startswith("flags:")).split()[1], 8)
        except (OSError, StopIteration, ValueError):
            continue
        if name_part in Path(target).name and flags & (os.O_WRONLY | os.O_RDWR):
            return True
    return False
