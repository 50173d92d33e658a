"""A run folder (``runs/<model>/``) as one unit, so no run loses another's files.

A run that starts over (training params changed, ``train.resume: never``, a damaged checkpoint)
writes its samples, snapshots, losses and first checkpoint into ``.next/`` beside the earlier run.
Only once that first checkpoint is written does it take over: the earlier run's files move whole
into ``previous/`` (replacing the run set aside before it: one is kept), then the new files move
into place, the checkpoint last. Until then a kill leaves the earlier run exactly as it was.

The move is a few renames in the same folder; ``recover`` at the next start finishes it when a kill
came in the middle (the new checkpoint exists: the new run has won) or removes ``.next`` when the
new run died before its first checkpoint, along with the temporary files of interrupted writes.

Inside ``runs/<model>/``::

    checkpoint.pt losses.csv losses.png train.json samples/ checkpoints/   the current run
    previous/                          the run before it, whole
    .next/                             a run that started over, until its first checkpoint
    checkpoint.pt.damaged-<UTC time>   a checkpoint that did not load, kept for a look
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

from pipeline.core.layout import CHECKPOINT, TRAIN_SUMMARY

LOSSES = "losses.csv"
SAMPLES = "samples"
SNAPSHOTS = "checkpoints"
RUN_FILES = (LOSSES, "losses.png", TRAIN_SUMMARY, SAMPLES, SNAPSHOTS, CHECKPOINT)  # checkpoint last: it is the commit
PREVIOUS = "previous"
NEXT = ".next"
_OLD = "old"                    # .next/old: the earlier run's files on their way to previous/
_OLD_DONE = ".old-complete"     # .next/.old-complete: every file of the earlier run is in .next/old


def stage(run: Path) -> Path:
    """A fresh ``.next/`` for a run that starts over; its files go there until its first checkpoint."""
    nxt = run / NEXT
    if nxt.exists():
        abandon(run)
    (nxt / SAMPLES).mkdir(parents=True)
    return nxt


def committed(run: Path) -> bool:
    """Whether the run in ``.next/`` has its first checkpoint (or is already half moved in)."""
    nxt = run / NEXT
    return (nxt / CHECKPOINT).exists() or (nxt / _OLD_DONE).exists()


def promote(run: Path) -> None:
    """Set the earlier run aside in ``previous/`` and move the staged run in. Every step is a rename
    and may be repeated: after a kill anywhere in here, calling it again finishes the job."""
    nxt, old = run / NEXT, run / NEXT / _OLD
    if not (nxt / _OLD_DONE).exists():
        old.mkdir(exist_ok=True)
        for name in RUN_FILES:
            if (run / name).exists():
                os.replace(run / name, old / name)
        (nxt / _OLD_DONE).touch()
    for name in RUN_FILES:
        if (nxt / name).exists():
            os.replace(nxt / name, run / name)
    if old.exists():
        if any(old.iterdir()):
            shutil.rmtree(run / PREVIOUS, ignore_errors=True)
            os.replace(old, run / PREVIOUS)
        else:
            old.rmdir()
    shutil.rmtree(nxt)


def abandon(run: Path) -> None:
    """A staged run that stopped: promoted when it has its checkpoint, else removed (the earlier
    run is untouched)."""
    if committed(run):
        promote(run)
    else:
        shutil.rmtree(run / NEXT, ignore_errors=True)


def recover(run: Path) -> None:
    """What a killed run left in ``run``: a staged run finished or removed, and the temporary files
    of interrupted writes (``.<name>.<random>.tmp``, pipeline/core/atomic.py) removed."""
    if (run / NEXT).exists():
        abandon(run)
    for folder in (run, run / SAMPLES, run / SNAPSHOTS):
        for tmp in folder.glob(".*.tmp") if folder.is_dir() else ():
            if tmp.is_file():
                tmp.unlink(missing_ok=True)


def set_aside(path: Path) -> Path:
    """Move a file that does not load out of the way, as ``<name>.damaged-<UTC time>`` beside it."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    os.replace(path, aside)
    return aside
