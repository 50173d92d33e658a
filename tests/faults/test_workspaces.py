"""Fault 1 of "Nothing lost": a scrape never clobbers a workspace that is not its own.

Real ``python -m pipeline scrape`` processes, a real Danbooru-compatible server on 127.0.0.1
(tests/fakes/danbooru_server.py), real ``kill -9`` at points a seeded generator picks; every byte of
what must survive is compared with ``tree``. The demo's flags are read from the Makefile by make.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from faults.harness import ROOT, cli, kill_when, rng, run, stray_tmp, tree
from PIL import Image

from pipeline.core.layout import DANBOORU_JOURNAL, INCOMING, MANIFEST, WORKSPACE
from pipeline.params import PathsParams, load_params

from fakes.danbooru_server import FAST as DANBOORU_FAST
from fakes.danbooru_server import DanbooruServer, make_posts


def demo_flags() -> list[str]:
    """The Makefile's ``DEMO`` flags as make expands them (read, never copied here)."""
    if shutil.which("make") is None:
        pytest.skip("no make here to read the Makefile's DEMO flags")
    r = subprocess.run(["make", "-s", "--no-print-directory", "-f", "Makefile", "--eval", "print-%: ; @echo $($*)",
                        "print-DEMO"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    flags = r.stdout.split()
    assert flags and flags[0] == "-S", flags
    return flags


def pictures(folder: Path, n: int, seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        arr = np.random.default_rng(seed * 1000 + i).integers(0, 256, (40, 48, 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"pic{i}.png")
        out.append(folder / f"pic{i}.png")
    return out


def manifest(raw: Path) -> pd.DataFrame:
    return pd.read_parquet(raw / MANIFEST)


def refused(r: subprocess.CompletedProcess, *needles: str) -> None:
    """Non-zero, one message, no traceback, and the message says what it must."""
    assert r.returncode != 0, r.stderr[-2000:]
    assert "Traceback" not in r.stderr, r.stderr[-4000:]
    for n in needles:
        assert n in r.stderr, (n, r.stderr[-2000:])


def consistent(raw: Path) -> pd.DataFrame:
    """The manifest in place lists files that are all there: the previous output, or the new one."""
    m = manifest(raw)
    missing = [p for p in m["path"] if not (raw / p).is_file()]
    assert not missing, f"{len(missing)} files the manifest lists are gone: {missing[:3]}"
    return m


def danbooru(server: DanbooruServer, raw: Path, *extra: str) -> list[str]:
    return [*DANBOORU_FAST, f"scrape.danbooru.base_url={server.url}", f"paths.raw={raw}", *extra]


# (a) make demo after make run ------------------------------------------------------------------

def test_the_demo_scrape_into_a_danbooru_scrape_is_refused_and_replace_replaces(tmp_path):
    from pipeline.scrape.stage import scrape

    raw = tmp_path / "data" / "raw"
    with DanbooruServer(make_posts(12)) as server:  # the user's scrape (in this process: it is not the fault)
        scrape(load_params(ROOT / "params.yaml", danbooru(server, raw)).scrape, raw)
    before = tree(raw)
    assert DANBOORU_JOURNAL in before and sum(n.endswith(".png") for n in before) == 12
    demo = [*demo_flags(), "-S", f"paths.raw={raw}"]  # the demo's toy scrape, aimed at the user's scrape

    r = run([*cli("scrape"), *demo], check=False)
    refused(r, str(raw), "Danbooru search", "12 files", "toy", "-S paths.raw=", "--replace")
    assert tree(raw) == before  # every byte, the journal too

    r = run([*cli("scrape", "--replace"), *demo, "-S", "scrape.toy.count=64"])
    m = consistent(raw)
    assert len(m) == 64 and set(m["source"]) == {"toy"}
    assert sorted(p.name for p in raw.iterdir()) == sorted([*m["path"], MANIFEST, WORKSPACE])  # the Danbooru files went
    assert not stray_tmp(raw)


# (b) paths.raw and the user's own folder ---------------------------------------------------------

@pytest.mark.parametrize("where", ["same", "inside", "contains"])
def test_paths_raw_on_the_users_folder_is_refused_before_any_work(tmp_path, where):
    mine = tmp_path / "mine"
    pictures(mine, 3)
    (mine / "notes.txt").write_text("my notes\n")
    raw = {"same": mine, "inside": mine / "raw", "contains": tmp_path}[where]
    before = tree(tmp_path)
    r = run(cli("scrape", overrides=["scrape.source=folder", f"scrape.folder={mine}", f"paths.raw={raw}"]), check=False)
    refused(r, "paths.raw", "scrape.folder", str(mine), "Nothing was touched")
    assert tree(tmp_path) == before  # every byte, and no file added
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "mine", "mine/notes.txt", "mine/pic0.png", "mine/pic1.png", "mine/pic2.png"]  # nor a folder


# (c) a user's file in paths.raw ---------------------------------------------------------------

def test_a_folder_rerun_keeps_a_file_the_user_put_in_paths_raw(tmp_path):
    mine = tmp_path / "mine"
    pics = pictures(mine, 4)
    raw = tmp_path / "raw"
    flags = ["scrape.source=folder", f"scrape.folder={mine}", f"paths.raw={raw}"]
    from pipeline.scrape.stage import scrape

    scrape(load_params(ROOT / "params.yaml", flags).scrape, raw)  # the first import; the rerun below is the CLI
    gone = manifest(raw).set_index("origin").loc[str(pics[0]), "path"]
    (raw / "notes.txt").write_text("which pictures I liked\n")
    (raw / "keep.png").write_bytes(pics[1].read_bytes())
    (raw / ("f" * 32 + ".png")).write_bytes(pics[2].read_bytes())  # named like a scrape's file, listed by no manifest
    users = {n: b for n, b in tree(raw).items() if n in ("notes.txt", "keep.png", "f" * 32 + ".png")}
    pics[0].unlink()  # a picture left the folder: its copy leaves paths.raw
    run(cli("scrape", overrides=flags))
    m = consistent(raw)
    assert len(m) == 3 and not (raw / gone).exists()
    assert {n: b for n, b in tree(raw).items() if n in users} == users


# (d) kill -9 of a snapshot scrape, then the rerun ------------------------------------------------

def _toy_world(root: Path) -> Path:
    """paths.raw holding a toy scrape of 40 faces, and two files of the user's."""
    from pipeline.scrape.stage import scrape

    raw = root / "raw"
    scrape(load_params(ROOT / "params.yaml", ["scrape.source=toy", "scrape.toy.count=40", "scrape.toy.size=32"]).scrape, raw)
    (raw / "notes.txt").write_text("mine\n")
    (raw / "liked.png").write_bytes(next(raw.glob("*.png")).read_bytes())
    return raw


def _new_files(raw: Path, base: set[str]) -> int:
    return sum(1 for p in raw.rglob("*") if p.is_file() and p.name.endswith(".png") and str(p.relative_to(raw)) not in base)


def _kill_and_rerun(name: str, world: Path, flags: list[str], kills: int, new: int, keep: set[str]) -> Path:
    """``kills`` seeded kill -9 of ``scrape flags`` in a copy of ``world``, then the rerun: the same
    bytes as an uninterrupted run in another copy, the previous output whole after every kill, and
    the files named in ``keep`` (not this run's) untouched throughout. ``new``: how many new files
    the run writes (a kill point is the k-th of them)."""
    from pipeline.scrape.stage import scrape

    ref, hit = world.parent / "ref", world.parent / "hit"
    shutil.copytree(world, ref)
    shutil.copytree(world, hit)
    scrape(load_params(ROOT / "params.yaml", flags).scrape, ref)  # the uninterrupted run, the stage function itself
    want = tree(ref)
    base = set(tree(world))
    user = {n: b for n, b in tree(world).items() if n in keep}
    assert len(user) == len(keep)
    r = rng(name)
    for i in range(kills):
        k = r.randint(1, new)
        how = ("staged", "intent", "time")[i % 3] if kills > 1 else "staged"
        if how == "staged":  # the k-th new file is on disk (staged, or in place on older code)
            when = lambda k=k: _new_files(hit, base) >= k  # noqa: E731
        elif how == "intent":  # the commit has begun
            when = lambda: WORKSPACE in {p.name for p in hit.iterdir()} and "intent" in (hit / WORKSPACE).read_text()  # noqa: E731
        else:
            when = r.uniform(0.5, 6.0)
        k9 = kill_when(cli("scrape", overrides=[*flags, f"paths.raw={hit}"]), when)
        assert "Traceback" not in k9.stderr, k9.stderr[-3000:]
        assert i > 0 or not k9.finished, "the first kill point (the k-th new file) must come before the run ends"
        consistent(hit)  # the previous manifest and its files, or the new ones: never half
        assert {n: b for n, b in tree(hit).items() if n in user} == user
    run(cli("scrape", overrides=[*flags, f"paths.raw={hit}"]))
    assert tree(hit) == want
    assert {n: b for n, b in want.items() if n in user} == user
    assert not stray_tmp(hit) and not (hit / INCOMING).exists()
    return hit


def test_a_killed_toy_scrape_reruns_to_the_uninterrupted_result(tmp_path):
    world = _toy_world(tmp_path / "world")
    _kill_and_rerun("toy-1", world, ["scrape.source=toy", "scrape.toy.count=80", "scrape.toy.size=32"], kills=1,
                    new=80, keep={"notes.txt", "liked.png"})


@pytest.mark.soak
def test_many_killed_toy_scrapes_rerun_to_the_uninterrupted_result(tmp_path):
    world = _toy_world(tmp_path / "world")
    _kill_and_rerun("toy-soak", world, ["scrape.source=toy", "scrape.toy.count=400", "scrape.toy.size=32"], kills=12,
                    new=400, keep={"notes.txt", "liked.png"})


def _shared_world(root: Path, server: DanbooruServer) -> tuple[Path, Path]:
    """paths.raw holding a folder import and a Danbooru search added to it."""
    from pipeline.scrape.stage import scrape

    mine, raw = root / "mine", root / "raw"
    pictures(mine, 30, seed=1)
    scrape(load_params(ROOT / "params.yaml", ["scrape.source=folder", f"scrape.folder={mine}"]).scrape, raw)
    scrape(load_params(ROOT / "params.yaml", danbooru(server, raw)).scrape, raw, mode="add")
    for p in sorted(mine.iterdir())[:5]:  # the folder changed: five pictures left, twenty came
        p.unlink()
    pictures(mine / "more", 20, seed=2)
    return mine, raw


def test_a_killed_folder_rerun_keeps_the_danbooru_search_beside_it(tmp_path):
    with DanbooruServer(make_posts(10)) as server:
        mine, world = _shared_world(tmp_path / "world", server)
        posts = set(manifest(world).query("source == 'danbooru'")["path"])
        hit = _kill_and_rerun("shared-1", world, ["scrape.source=folder", f"scrape.folder={mine}"], kills=1, new=20,
                              keep={*posts, DANBOORU_JOURNAL})
    m = consistent(hit)
    assert set(m.query("source == 'danbooru'")["path"]) == posts and len(m.query("source == 'folder'")) == 45
    assert (hit / DANBOORU_JOURNAL).read_bytes() == (world / DANBOORU_JOURNAL).read_bytes()


@pytest.mark.soak
def test_many_killed_folder_reruns_keep_the_danbooru_search_beside_them(tmp_path):
    with DanbooruServer(make_posts(10)) as server:
        mine, world = _shared_world(tmp_path / "world", server)
        posts = set(manifest(world).query("source == 'danbooru'")["path"])
        _kill_and_rerun("shared-soak", world, ["scrape.source=folder", f"scrape.folder={mine}"], kills=9, new=20,
                        keep={*posts, DANBOORU_JOURNAL})


def test_a_killed_add_leaves_the_folder_to_its_owner_and_a_later_add_whole(tmp_path):
    """kill -9 of ``scrape --add`` mid-file: the folder stays the first search's; that search's next
    run drops the cut-short search's files and its records together, so adding it again later
    fetches them again instead of listing files that are gone."""
    from pipeline.core.journal import read_journal
    from pipeline.scrape.stage import scrape

    posts = make_posts(20)
    raw = tmp_path / "raw"
    smile = {p["id"] for p in posts if "smile" in p["tag_string"].split()}
    hat = {p["id"] for p in posts if "hat" in p["tag_string"].split()}
    extra = ["scrape.danbooru.download_concurrency=1", "scrape.danbooru.mode=backfill"]
    with DanbooruServer(posts) as server:
        scrape(load_params(ROOT / "params.yaml", danbooru(server, raw, *extra, "scrape.danbooru.tags=hat")).scrape, raw)
        owned = tree(raw)
        server.file_bytes_per_s = 2000
        n = rng("killed-add").randint(1, len(smile - hat) - 1)

        def smile_posts() -> int:
            return sum(1 for r in read_journal(raw / DANBOORU_JOURNAL) if r.get("t") == "post" and "|smile|" in r["q"])

        k9 = kill_when(cli("scrape", "--add", overrides=danbooru(server, raw, *extra, "scrape.danbooru.tags=smile")),
                       lambda: smile_posts() >= n)
        assert not k9.finished and "Traceback" not in k9.stderr
        assert {k: v for k, v in tree(raw).items() if k != DANBOORU_JOURNAL and k in owned} == {
            k: v for k, v in owned.items() if k != DANBOORU_JOURNAL}  # the first search's files and manifest
        server.file_bytes_per_s = None
        scrape(load_params(ROOT / "params.yaml", danbooru(server, raw, *extra, "scrape.danbooru.tags=hat")).scrape, raw)
        assert set(consistent(raw)["id"].astype(int)) == hat and smile_posts() == 0
        scrape(load_params(ROOT / "params.yaml", danbooru(server, raw, *extra, "scrape.danbooru.tags=smile")).scrape, raw,
               mode="add")
    m = consistent(raw)
    assert set(m["id"].astype(int)) == hat | smile and m["md5"].is_unique


# (e) make demo has a workspace of its own ---------------------------------------------------------

def test_make_demo_writes_only_under_demo(tmp_path):
    flags = demo_flags()
    overrides = [v for k, v in zip(flags, flags[1:]) if k == "-S"]
    params = load_params(ROOT / "params.yaml", overrides)
    assert all(getattr(params.paths, k).startswith("demo/") for k in PathsParams.model_fields), params.paths
    assert params.labels.manual.startswith("demo/") and params.tracking.experiment != "boorugan"
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("params.yaml", "Makefile", "dvc.yaml"):
        shutil.copy(ROOT / name, repo / name)
    shutil.copytree(ROOT / "labels", repo / "labels")
    for d in ("data", "runs", "metrics", "reports"):  # a user's outputs, as make run leaves them
        (repo / d).mkdir()
        (repo / d / "mine.txt").write_text(d)
    before = tree(repo)
    cheap = ["-S", "scrape.toy.count=128"]  # the demo's paths and sources; fewer faces
    for stage in ("scrape", "crop"):
        run([*cli(stage), *flags, *cheap], cwd=repo)
    after = tree(repo)
    assert {n: b for n, b in after.items() if not n.startswith("demo/")} == before
    assert (repo / "demo/data/raw" / MANIFEST).is_file() and (repo / "demo/data/faces/index.parquet").is_file()
    import mlflow

    runs = mlflow.search_runs(experiment_names=[params.tracking.experiment], output_format="list")
    assert {r.data.tags.get("stage") for r in runs} >= {"scrape", "crop"}


@pytest.mark.soak
@pytest.mark.parametrize("point", ["intent", "manifest"])
def test_a_kill_inside_the_commit_is_undone_or_finished_at_the_next_start(tmp_path, point):
    """Killed after the record notes the commit (files moving in: undone) or after the new manifest
    is in place (old files going: finished); many old files make the window wide enough to hit."""
    import os

    from pipeline.scrape.stage import scrape

    world = tmp_path / "world" / "raw"
    scrape(load_params(ROOT / "params.yaml", ["scrape.source=toy", "scrape.toy.count=1500", "scrape.toy.seed=5",
                                              "scrape.toy.size=32"]).scrape, world)
    (world / "notes.txt").write_text("mine\n")
    flags = ["scrape.source=toy", "scrape.toy.count=300", "scrape.toy.size=32"]
    ref, hit = tmp_path / "ref", tmp_path / "hit"
    shutil.copytree(world, ref)
    shutil.copytree(world, hit)
    run(cli("scrape", overrides=[*flags, f"paths.raw={ref}"]))
    stamp = os.stat(hit / MANIFEST).st_mtime_ns
    when = {"intent": lambda: "intent" in (hit / WORKSPACE).read_text(),
            "manifest": lambda: os.stat(hit / MANIFEST).st_mtime_ns != stamp}[point]
    k9 = kill_when(cli("scrape", overrides=[*flags, f"paths.raw={hit}"]), when, poll=0.0005)
    if k9.finished:
        pytest.skip(f"the run ended before the kill point ({point}) was seen")
    m = consistent(hit)
    assert len(m) == (300 if point == "manifest" else 1500) and (hit / "notes.txt").read_text() == "mine\n"
    run(cli("scrape", overrides=[*flags, f"paths.raw={hit}"]))
    assert tree(hit) == tree(ref) and not stray_tmp(hit)
