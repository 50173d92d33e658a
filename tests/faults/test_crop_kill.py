"""Crop as a transaction, under real faults: ``python -m pipeline crop`` killed with SIGKILL at seeded
points while a ``crop.size`` change is under way, and a real tmpfs that fills up in the middle of one.

After each fault the crop is run again (sometimes at the new size, sometimes back at the old one) and
the folder must equal what an uninterrupted run gives: the same index rows, the same face files byte
for byte, every face at the index's size, nothing more (no stray face, no ``.tmp``). The faces are the
toy source's (``crop.detector=none``): a few hundred, so one crop takes a second or two of work.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from faults.harness import ROOT, cli, fill, kill_when, rng, run, small_disk, stray_tmp, tree
from PIL import Image

from pipeline.core.layout import INDEX, STORE

from conftest import path_overrides

FACES = 240          # toy images, one face each
OLD, NEW = 32, 48    # the size change under test
PARAMS = ROOT / "params.yaml"
KINDS = ("faces", "index", "time")  # where a kill lands: among the new faces, just after a new index, anywhere


@dataclass
class World:
    root: Path
    overrides: list[str]
    ref: dict[int, Path]  # crop.size -> the folder an uninterrupted crop writes
    params: object        # the stage's params (crop.size aside)

    def reference(self, size: int) -> Path:
        """The folder an uninterrupted crop at ``size`` writes into an empty folder."""
        from pipeline.crop.stage import crop

        if size not in self.ref:
            self.ref[size] = self.root / f"ref{size}"
            crop(self.params.crop.model_copy(update={"size": size, "workers": 1}), self.params.paths.raw, self.ref[size])
        return self.ref[size]

    def crop(self, faces: Path, size: int) -> list[str]:
        return cli("crop", params=PARAMS, overrides=[*self.overrides, f"paths.faces={faces}", f"crop.size={size}"])

    def state(self, name: str, size: int) -> Path:
        """A faces folder as a finished crop at ``size`` left it (file times kept: a kill point
        counts only the files the killed run writes)."""
        dst = self.root / name
        shutil.copytree(self.reference(size), dst)
        return dst


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    from pipeline.params import load_params
    from pipeline.scrape.stage import scrape

    root = tmp_path_factory.mktemp("crop-kill")
    overrides = [*path_overrides(root), "scrape.source=toy", f"scrape.toy.count={FACES}", "scrape.toy.size=32",
                 "crop.detector=none"]
    params = load_params(PARAMS, overrides)
    scrape(params.scrape, params.paths.raw)
    return World(root, overrides, {}, params)


def written_since(faces: Path, t0: int, k: int):
    """A kill point: ``k`` face files written (created or replaced) since ``t0`` (ns)."""
    def reached() -> bool:
        n = 0
        with os.scandir(faces) as it:
            for e in it:
                if e.name.startswith(".") or not e.name.endswith(".png"):
                    continue
                try:
                    n += e.stat().st_mtime_ns >= t0
                except FileNotFoundError:
                    pass
        return n >= k
    return reached


def index_replaced(faces: Path, t0: int):
    """A kill point: the run has just replaced the index (its bookkeeping after it still to come)."""
    def reached() -> bool:
        try:
            return (faces / INDEX).stat().st_mtime_ns >= t0
        except FileNotFoundError:
            return False
    return reached


def kill_crop(world: World, faces: Path, size: int, kind: str, r) -> str:
    """Run a crop at ``size`` and kill -9 it at a point of ``kind`` the generator ``r`` picks."""
    t0 = time.time_ns()
    if kind == "faces":
        k = r.randint(1, FACES - 1)
        when, where = written_since(faces, t0, k), f"after {k} new faces"
    elif kind == "index":
        when, where = index_replaced(faces, t0), "just after the index was replaced"
    else:
        s = round(r.uniform(0.5, 6.0), 2)
        when, where = s, f"{s} s after the start"
    k = kill_when(world.crop(faces, size), when, timeout=120)
    return f"crop.size={size} killed {where}" + (" (it finished first)" if k.finished else f" at {k.seconds:.2f} s")


def assert_as_uninterrupted(faces: Path, ref: Path, history: list[str]) -> None:
    """``faces`` equals the folder an uninterrupted crop writes: index rows, face bytes, file names."""
    story = "; ".join(history)
    index = pd.read_parquet(faces / INDEX)
    sizes = Counter()
    for path, size in zip(index["path"], index["size"]):
        with Image.open(faces / path) as im:
            sizes[(size, im.size[0])] += 1
    mixed = {f"index says {a}, file is {b}": n for (a, b), n in sizes.items() if a != b}
    assert not mixed, f"faces not at the index's size: {mixed} ({story})"
    pd.testing.assert_frame_equal(index, pd.read_parquet(ref / INDEX), obj=f"index after: {story}")
    assert stray_tmp(faces) == [], f"temporary files left behind ({story})"
    got, want = tree(faces), tree(ref)
    assert sorted(set(got) - set(want)) == [], f"stray files ({story})"
    assert sorted(set(want) - set(got)) == [], f"missing files ({story})"
    differ = sorted(name for name in want if got[name] != want[name])
    assert differ == [], f"{len(differ)} files differ from an uninterrupted run's ({story})"


def kill_loop(world: World, name: str, kills: int) -> None:
    """From a finished crop at one size: kill a crop at the other size, rerun at either, compare."""
    r = rng(name)
    size = OLD
    faces = world.state(name, size)
    for i in range(kills):
        other = NEW if size == OLD else OLD
        history = []
        for _ in range(1 if i < 3 else r.randint(1, 3)):  # the soak loop also kills a rerun or two
            kind = "faces" if i == 0 else r.choice(KINDS)
            history.append(kill_crop(world, faces, other, kind, r))
        # first back to the old size (the rerun that trusted the old index), then forward, then either
        size = {0: size, 1: other}.get(i, r.choice((size, other)))
        run(world.crop(faces, size))
        history.append(f"rerun at crop.size={size}")
        print("; ".join(history))  # pytest -s shows where each kill landed
        assert_as_uninterrupted(faces, world.reference(size), history)


def test_kills_during_a_size_change_leave_the_old_or_the_new_faces_never_a_mix(world):
    kill_loop(world, "crop-kill", kills=3)


@pytest.mark.soak
def test_many_kills_during_size_changes(world):
    kill_loop(world, "crop-kill-soak", kills=20)


def test_train_runs_on_what_a_rerun_after_a_kill_left(world, tmp_path):
    faces = world.state("crop-train", OLD)
    history = [kill_crop(world, faces, NEW, "faces", rng("crop-train"))]
    run(world.crop(faces, OLD))
    assert_as_uninterrupted(faces, world.reference(OLD), [*history, f"rerun at crop.size={OLD}"])
    tiny = ["train.device=cpu", "train.models.dcgan.steps=2", "train.models.dcgan.batch_size=16",
            "train.models.dcgan.log_every=1", "train.models.dcgan.net.ngf=8", "train.models.dcgan.net.ndf=8",
            "train.models.dcgan.net.nz=16"]
    run(cli("train", "dcgan", params=PARAMS,
            overrides=[*world.overrides, f"paths.faces={faces}", f"paths.runs={tmp_path / 'runs'}", *tiny]))
    assert (tmp_path / "runs" / "dcgan" / "checkpoint.pt").is_file()


def test_a_full_disk_during_a_size_change_keeps_the_previous_faces(world):
    """Faces of several pages each (96 px), and room for about half of them (their files and their
    rows in the packed store) beside the old ones."""
    big = 96
    pages = sum(-(-p.stat().st_size // 4096) * 4096 for p in (*world.reference(big).glob("*.png"),
                                                              world.reference(big) / STORE))
    with small_disk(2 * pages / 2**20 + 2) as disk:
        faces = disk / "faces"
        shutil.copytree(world.reference(OLD), faces)
        before = tree(faces)
        fill(disk, leave_bytes=pages // 2)
        r = run(world.crop(faces, big), check=False)
        assert r.returncode != 0, "the crop did not notice the full disk"
        assert "Traceback" not in r.stderr, r.stderr[-3000:]
        assert str(faces) in r.stderr and "full" in r.stderr.lower(), r.stderr[-3000:]
        after = tree(faces)
        changed = sorted(n for n in before if after.get(n) != before[n])
        assert changed == [] and sorted(set(after) - set(before)) == [], \
            f"the previous faces and index changed: {len(changed)} files differ, new: {sorted(set(after) - set(before))[:5]}"
        (disk / "ballast").unlink()  # space freed: the rerun completes as if nothing had happened
        run(world.crop(faces, big))
        assert_as_uninterrupted(faces, world.reference(big), [f"disk full during crop.size={big}", "rerun with space"])
