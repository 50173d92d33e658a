"""Real faults for the fault-injection suite: a CLI process killed with SIGKILL at a point a seeded
generator picks, and a real small filesystem that fills up.

Nothing here imitates a fault: the process is a real ``python -m pipeline`` and dies by ``kill -9``
(its whole process group, so pool workers die with it); the full disk is a tmpfs of a few MB,
mounted where the machine allows it (root, or a user namespace) and skipped with the reason
elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SEED = int(os.environ.get("BOORUGAN_FAULT_SEED", "20261204"))  # one seed for the suite; a failure names it


def rng(name: str) -> random.Random:
    """The kill points of one test: seeded by the suite's seed and the test's name, so a failing
    sequence is replayed by running the test again (``BOORUGAN_FAULT_SEED`` picks another)."""
    return random.Random(f"{SEED}:{name}")


def cli(*args: str, params: str | Path | None = None, overrides: Sequence[str] = ()) -> list[str]:
    """``python -m pipeline <args> [--params P] -S k=v ...``, the command every caller runs."""
    cmd = [sys.executable, "-m", "pipeline", *args]
    if params is not None:
        cmd += ["--params", str(params)]
    for o in overrides:
        cmd += ["-S", o]
    return cmd


def env(**extra: str) -> dict[str, str]:
    """The test session's environment (its MLflow store, cache, Prefect home) with this checkout
    first on the path, so a child process imports the code under test."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("DANBOORU_")}
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [e.get("PYTHONPATH")])])
    e.update(extra)
    return e


@dataclass
class Killed:
    returncode: int
    seconds: float           # from start to the kill (or to the exit, when it ended first)
    finished: bool           # it ended on its own before the kill point
    stderr: str


def start(cmd: Sequence[str], cwd: str | Path = ROOT, **extra_env: str) -> subprocess.Popen:
    return subprocess.Popen(list(cmd), cwd=cwd, env=env(**extra_env), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)


def kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def kill_when(cmd: Sequence[str], when: Callable[[], bool] | float, *, cwd: str | Path = ROOT,
              timeout: float = 300.0, poll: float = 0.005, **extra_env: str) -> Killed:
    """Run ``cmd`` and ``kill -9`` its process group once ``when`` (a number: seconds after the
    start; a callable: a condition on the files, polled) holds. ``finished`` says it exited first."""
    proc = start(cmd, cwd, **extra_env)
    t0 = time.monotonic()
    try:
        while proc.poll() is None:
            elapsed = time.monotonic() - t0
            if (elapsed >= when) if isinstance(when, (int, float)) else when():
                kill_group(proc)
                break
            if elapsed > timeout:
                kill_group(proc)
                raise TimeoutError(f"{' '.join(cmd)} neither finished nor reached its kill point in {timeout:g} s")
            time.sleep(poll)
        _, err = proc.communicate(timeout=60)
    finally:
        kill_group(proc)
    seconds = time.monotonic() - t0
    return Killed(proc.returncode, seconds, proc.returncode != -signal.SIGKILL, err.decode(errors="replace"))


def run(cmd: Sequence[str], *, cwd: str | Path = ROOT, timeout: float = 600.0, check: bool = True,
        **extra_env: str) -> subprocess.CompletedProcess:
    """Run ``cmd`` to the end (no fault); ``check``: a non-zero exit fails the test with its stderr."""
    r = subprocess.run(list(cmd), cwd=cwd, env=env(**extra_env), capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stderr[-4000:]}")
    return r


@contextlib.contextmanager
def small_disk(megabytes: float) -> Iterator[Path]:
    """A real filesystem of ``megabytes`` (tmpfs), so writes past it fail with ENOSPC as on a full
    disk. Needs the right to mount (root here and in CI); skipped, saying why, where there is none."""
    where = Path(tempfile.mkdtemp(prefix="boorugan-small-disk-"))
    size = f"{max(1, int(megabytes * 1024))}k"
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0777", "tmpfs", str(where)],
                       capture_output=True, text=True) if shutil.which("mount") else None
    if r is None or r.returncode != 0:
        shutil.rmtree(where, ignore_errors=True)
        why = "no mount command" if r is None else (r.stderr.strip() or f"mount exited {r.returncode}")
        pytest.skip(f"cannot mount a {megabytes:g} MB tmpfs for a full-disk test here ({why})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)
        shutil.rmtree(where, ignore_errors=True)


def fill(disk: Path, leave_bytes: int = 0) -> None:
    """Fill ``disk`` until at most ``leave_bytes`` are free (a file named ``ballast``)."""
    free = shutil.disk_usage(disk).free
    with open(disk / "ballast", "wb") as f:
        chunk = b"\0" * (1 << 16)
        todo = max(0, free - leave_bytes)
        with contextlib.suppress(OSError):
            while todo > 0:
                todo -= f.write(chunk[:min(len(chunk), todo)])
                f.flush()


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes): what a fault must leave as it was."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def stray_tmp(root: Path) -> list[str]:
    """Temporary files (``.<name>.<random>.tmp``, pipeline/core/atomic.py) left under ``root``."""
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*.tmp"))
