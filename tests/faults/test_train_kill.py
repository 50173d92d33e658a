"""Faults during ``train``: kill -9 at seeded points, a kill in the first moments after a resume, a
start-over killed before its first checkpoint, a full disk. What must hold: losses.csv ends with
exactly one row per step, the weights end where an uninterrupted run's end, and an earlier run's
files are never lost to a later run that did not get as far as a checkpoint."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from faults import harness
from faults.train_world import (
    MODEL,
    STEPS,
    faces_world,
    files_named,
    loss_steps,
    open_for_writing,
    overrides,
    run_dir,
    trained_run,
    visible,
)

from conftest import ROOT

Poll = Callable[[subprocess.Popen], bool]


@pytest.fixture(scope="module")
def world(session_tmp) -> Path:
    return faces_world(session_tmp)


@pytest.fixture(scope="module")
def reference(session_tmp) -> Callable[[int], Path]:
    """The run folder of an uninterrupted training of ``steps`` steps (trained once per session and steps)."""
    return lambda steps: trained_run(session_tmp, steps)


def train_cmd(world: Path, out: Path, steps: int = STEPS, *extra: str) -> list[str]:
    return harness.cli("train", MODEL, params=ROOT / "params.yaml", overrides=overrides(world, out, steps, *extra))


def kill_once(cmd: list[str], when: Poll, timeout: float = 180.0) -> harness.Killed:
    """``harness.kill_when`` for a condition that needs the process itself (its open files)."""
    proc = harness.start(cmd)
    t0 = time.monotonic()
    try:
        while proc.poll() is None:
            if when(proc):
                harness.kill_group(proc)
                break
            if time.monotonic() - t0 > timeout:
                harness.kill_group(proc)
                raise TimeoutError(f"{' '.join(cmd)} neither finished nor reached its kill point in {timeout:g} s")
            time.sleep(0.002)
        _, err = proc.communicate(timeout=60)
    finally:
        harness.kill_group(proc)
    return harness.Killed(proc.returncode, time.monotonic() - t0, proc.returncode != -signal.SIGKILL,
                          err.decode(errors="replace"))


def rows_logged(run: Path) -> int:
    """Rows of this run's losses log as the files stand now, wherever the trainer keeps it (an
    earlier run's set aside under previous/ does not count)."""
    n = 0
    for p in files_named(run, "losses.csv"):
        try:
            n = max(n, len(loss_steps(p)))
        except (OSError, UnicodeDecodeError):
            pass
    return n


def after_rows(run: Path, rows: int, delay: float) -> Poll:
    """Kill ``delay`` seconds after ``rows`` rows are logged."""
    hit: list[float] = []

    def when(_proc) -> bool:
        if not hit and rows_logged(run) >= rows:
            hit.append(time.monotonic())
        return bool(hit) and time.monotonic() - hit[0] >= delay

    return when


def assert_like_uninterrupted(run: Path, ref: Path, steps: int) -> None:
    """One row per step 1..steps, the same rows and the same final weights as the uninterrupted
    run, and nothing temporary left behind."""
    got = loss_steps(run / "losses.csv")
    missing = sorted(set(range(1, steps + 1)) - set(got))
    assert got == list(range(1, steps + 1)), f"losses.csv steps: {len(got)} rows, missing {missing[:20]}"
    assert (run / "losses.csv").read_bytes() == (ref / "losses.csv").read_bytes()
    mine, theirs = (json.loads((d / "train.json").read_text()) for d in (run, ref))
    assert mine["steps"] == steps and mine["weights_sha256"] == theirs["weights_sha256"]
    assert harness.stray_tmp(run) == [] and sorted(p.name for p in run.rglob(".*")) == []


def right_after_resume(proc: subprocess.Popen) -> bool:
    """The moment a resumed process opens its losses log (or a file beside it named after it) for writing."""
    return open_for_writing(proc.pid, "losses.csv")


def checkpoint_step(run: Path) -> int:
    """The step of the checkpoint on disk (what a resume continues from)."""
    import torch

    return int(torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)["step"])


def kill_loop(world: Path, out: Path, steps: int, kills: int, name: str) -> int:
    """Train ``steps`` steps, killed ``kills`` times: alternately at a seeded point (rows logged, then
    a seeded delay) and the moment the resumed process opens its losses log for writing, which
    must lose no row the checkpoint has. The number of kills that came before the run ended."""
    rng = harness.rng(name)
    cmd, run = train_cmd(world, out, steps), run_dir(out)
    done = 0
    while done < kills:
        have = rows_logged(run)
        if done % 2 == 1 and (run / "checkpoint.pt").exists():
            kept = min(have, checkpoint_step(run))
            k = kill_once(cmd, right_after_resume)
            assert rows_logged(run) >= kept, f"kill {done + 1}, right after the resume, left {rows_logged(run)} of {kept} rows"
        elif have + 1 <= steps - 2:
            k = kill_once(cmd, after_rows(run, rng.randint(have + 1, steps - 2), rng.uniform(0.0, 0.3)))
        else:
            break
        if k.finished:
            assert k.returncode == 0, k.stderr[-3000:]
            break
        done += 1
    harness.run(cmd)
    return done


def test_kills_at_a_seeded_point_and_right_after_resume_end_like_the_uninterrupted_run(world, reference, tmp_path):
    """Two kills (at a seeded point, then the first moment after the resume), then the run to its
    end: one row per step, the same rows and weights as the uninterrupted run. More: -m soak."""
    killed = kill_loop(world, tmp_path, STEPS, 2, "train-kill-loop")
    assert killed == 2
    assert_like_uninterrupted(run_dir(tmp_path), reference(STEPS), STEPS)


def touched(run: Path, before: dict[str, bytes], new_rows: int) -> Poll:
    """Kill once the new run has logged ``new_rows`` rows of its own (wherever it keeps them before
    its first checkpoint), or as soon as it has touched a file of the earlier run (removed it, or
    rewritten its losses log): the moment that loses data."""
    old_log = before["losses.csv"]
    names = [run / k for k in visible(before)]
    ckpt_stat = (run / "checkpoint.pt").stat()

    def when(_proc) -> bool:
        if not all(p.exists() for p in names):
            return True
        try:
            if not (run / "losses.csv").read_bytes().startswith(old_log):
                return True
            st = (run / "checkpoint.pt").stat()
        except OSError:
            return True
        if (st.st_mtime_ns, st.st_size, st.st_ino) != (ckpt_stat.st_mtime_ns, ckpt_stat.st_size, ckpt_stat.st_ino):
            return True
        for p in files_named(run, "losses.csv"):
            try:
                if p != run / "losses.csv" and len(loss_steps(p)) >= new_rows:
                    return True
            except (OSError, UnicodeDecodeError):
                pass
        return False

    return when


def test_a_start_over_killed_before_its_first_checkpoint_leaves_the_earlier_run(world, reference, tmp_path):
    """New training params (batch 2: the first checkpoint comes after 24 steps) start the run over; a
    kill before that first checkpoint leaves the earlier run's checkpoint, losses, samples and
    snapshots byte for byte; once it has finished, the earlier run is set aside whole in previous/."""
    rng = harness.rng("train-start-over")
    run = run_dir(tmp_path)
    shutil.copytree(reference(STEPS), run)
    before = harness.tree(run)
    assert any(k.startswith("checkpoints/") for k in before) and any(k.startswith("samples/") for k in before)
    cmd = train_cmd(world, tmp_path, STEPS, f"train.models.{MODEL}.lr=0.001", f"train.models.{MODEL}.batch_size=2")
    k = kill_once(cmd, touched(run, before, rng.randint(1, 15)))
    assert not k.finished, k.stderr[-2000:]
    after = visible(harness.tree(run))
    assert sorted(after) == sorted(visible(before)), "files of the earlier run were removed or added"
    changed = [name for name in after if after[name] != before[name]]
    assert changed == [], f"the killed start-over changed the earlier run's {changed}"

    harness.run(cmd)
    assert loss_steps(run / "losses.csv") == list(range(1, STEPS + 1))
    assert json.loads((run / "train.json").read_text())["resumed_from"] == 0
    previous = harness.tree(run / "previous")
    assert previous == visible(before), "the earlier run was not set aside whole"


@contextlib.contextmanager
def kept_full(disk: Path) -> Iterator[None]:
    """Another program that keeps ``disk`` full while the test runs: every block freed (a file
    truncated or removed) is taken again at once, as on a disk that others fill."""
    stop = threading.Event()

    def take() -> None:
        with open(disk / "ballast-live", "ab", buffering=0) as f:
            while not stop.is_set():
                try:
                    f.write(b"\0" * 4096)
                except OSError:
                    time.sleep(0.001)

    t = threading.Thread(target=take, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()


@pytest.mark.parametrize("start_over", [False, pytest.param(True, marks=pytest.mark.soak)], ids=["resume", "start-over"])
def test_a_full_disk_leaves_the_checkpoint_and_losses_usable(world, reference, start_over):
    """runs/ on a real tmpfs, full and kept full by another writer: the continued (or restarted) run
    fails, the earlier checkpoint and losses stay as they were, and once there is room the run
    resumes from them."""
    more = STEPS + 30
    size = sum(p.stat().st_size for p in reference(STEPS).rglob("*") if p.is_file())
    with harness.small_disk(size / 2**20 + 4) as disk:
        run = run_dir(disk)
        shutil.copytree(reference(STEPS), run)
        before = harness.tree(run)
        harness.fill(disk, leave_bytes=0)
        extra = ("train.resume=never",) if start_over else ()
        with kept_full(disk):
            r = harness.run(train_cmd(world, disk, more, *extra), check=False)
        assert r.returncode != 0
        assert (run / "checkpoint.pt").read_bytes() == before["checkpoint.pt"]
        log = (run / "losses.csv").read_bytes()
        assert log.startswith(before["losses.csv"]), f"losses.csv lost rows: {len(log)} bytes, {len(before['losses.csv'])} before"
        if start_over:
            assert visible(harness.tree(run)) == visible(before)
        for ballast in disk.glob("ballast*"):
            ballast.unlink()
        harness.run(train_cmd(world, disk, more))
        summary = json.loads((run / "train.json").read_text())
        assert summary["resumed_from"] == STEPS and summary["steps"] == more
        assert loss_steps(run / "losses.csv") == list(range(1, more + 1))


@pytest.mark.soak
def test_many_kills_resume_to_the_uninterrupted_run(world, reference, tmp_path):
    """Twelve kills over 150 steps, every other one the moment the resumed process opens its log."""
    killed = kill_loop(world, tmp_path, 150, 12, "train-kill-soak")
    assert killed >= 6
    assert_like_uninterrupted(run_dir(tmp_path), reference(150), 150)
