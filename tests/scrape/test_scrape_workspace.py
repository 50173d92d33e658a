"""Who owns paths.raw (pipeline/scrape/workspace.py): refusals, --add, --replace, folders scraped
before the record existed, and damaged records; the stage function against the real test server."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from pipeline.core.errors import StageError
from pipeline.core.journal import read_journal
from pipeline.core.layout import DANBOORU_JOURNAL, MANIFEST, WORKSPACE
from pipeline.params import load_params
from pipeline.scrape.sources.danbooru_api import search_of_query
from pipeline.scrape.stage import scrape

from conftest import ROOT
from fakes.danbooru_server import DanbooruServer, make_posts

FAST = ["scrape.source=danbooru", "scrape.danbooru.tags=", "scrape.danbooru.rate=10", "scrape.danbooru.files_rate=50",
        "scrape.danbooru.retry_backoff=0.01", "scrape.danbooru.timeout=5"]


def danbooru(server: DanbooruServer, *extra: str):
    return load_params(ROOT / "params.yaml", [*FAST, f"scrape.danbooru.base_url={server.url}", *extra]).scrape


def toy(count: int = 5, seed: int = 0):
    return load_params(ROOT / "params.yaml", ["scrape.source=toy", f"scrape.toy.count={count}", f"scrape.toy.seed={seed}",
                                              "scrape.toy.size=16"]).scrape


def folder(path: Path):
    return load_params(ROOT / "params.yaml", ["scrape.source=folder", f"scrape.folder={path}"]).scrape


def files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


def consistent(out: Path) -> pd.DataFrame:
    """Every row's file there with its md5, and no other image file."""
    m = pd.read_parquet(out / MANIFEST)
    assert m["md5"].is_unique
    for row in m.itertuples():
        assert hashlib.md5((out / row.path).read_bytes()).hexdigest() == row.md5
    assert sorted(p.name for p in out.iterdir() if p.name not in (MANIFEST, WORKSPACE, DANBOORU_JOURNAL)) == sorted(m["path"])
    return m


def owners(out: Path) -> list[dict]:
    return json.loads((out / WORKSPACE).read_text())["owners"]


def pictures(where: Path, n: int, seed: int) -> Path:
    import numpy as np
    from PIL import Image

    where.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(np.random.default_rng(seed * 100 + i).integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(where / f"{i}.png")
    return where


@pytest.fixture(autouse=True)
def no_credentials(monkeypatch):
    monkeypatch.delenv("DANBOORU_LOGIN", raising=False)
    monkeypatch.delenv("DANBOORU_API_KEY", raising=False)


def test_toy_faces_replace_toy_faces_without_a_flag(tmp_path):
    out = tmp_path / "raw"
    scrape(toy(5), out)
    first = set(pd.read_parquet(out / MANIFEST)["path"])
    scrape(toy(7, seed=1), out)
    m = consistent(out)
    assert len(m) == 7 and not first & set(m["path"]) and owners(out) == [{"source": "toy", "search": None}]


def test_add_is_for_a_danbooru_search_only(tmp_path):
    with pytest.raises(StageError, match=r"--add adds a Danbooru search.*scrape.source=toy.*Nothing was touched"):
        scrape(toy(), tmp_path / "raw", mode="add")
    assert not (tmp_path / "raw").exists()


def test_a_second_search_is_refused_then_added_then_replaces_the_first(tmp_path):
    posts = make_posts(20)
    hat = {p["id"] for p in posts if "hat" in p["tag_string"].split()}
    smile = {p["id"] for p in posts if "smile" in p["tag_string"].split()}
    assert hat & smile and hat - smile and smile - hat
    out = tmp_path / "raw"
    with DanbooruServer(posts) as server:
        scrape(danbooru(server, "scrape.danbooru.tags=hat"), out)
        before, n = files(out), len(server.requests)
        with pytest.raises(StageError, match=r"holds the Danbooru search 'hat' on .*\(\d+ files in its manifest\); this run is "
                                             r"the Danbooru search 'smile'.*Nothing was touched.*--add.*--replace"):
            scrape(danbooru(server, "scrape.danbooru.tags=smile"), out)
        assert files(out) == before and len(server.requests) == n  # no request, no byte changed
        # ratings and sizes refine the same search: no flag needed
        scrape(danbooru(server, "scrape.danbooru.tags=hat", "scrape.danbooru.min_width=8"), out)

        scrape(danbooru(server, "scrape.danbooru.tags=smile"), out, mode="add")
        assert set(consistent(out)["id"].astype(int)) == hat | smile and len(owners(out)) == 2

        scrape(danbooru(server, "scrape.danbooru.tags=smile"), out, mode="replace")
        assert set(consistent(out)["id"].astype(int)) == smile  # hat's own posts went; those smile shares stay
        assert {search_of_query(r["q"]) for r in read_journal(out / DANBOORU_JOURNAL)} == {f"{server.url.split('//')[1]}|smile"}
        assert [o["search"].split("|")[1] for o in owners(out)] == ["smile"]

        n_files = len(server.file_requests)
        scrape(danbooru(server, "scrape.danbooru.tags=hat"), out, mode="add")  # hat back: only what went is fetched again
        assert len(server.file_requests) - n_files == len(hat - smile)
    assert set(consistent(out)["id"].astype(int)) == hat | smile


def test_a_danbooru_search_replaces_toy_faces_without_a_flag_and_a_folder_import_with_one(tmp_path):
    out = tmp_path / "raw"
    scrape(toy(), out)
    with DanbooruServer(make_posts(3)) as server:
        scrape(danbooru(server), out)
        assert set(consistent(out)["source"]) == {"danbooru"}
        with pytest.raises(StageError, match=r"holds the Danbooru search.*this run is a folder import of"):
            scrape(folder(pictures(tmp_path / "mine", 2, 0)), out)
        scrape(folder(tmp_path / "mine"), out, mode="replace")
    assert set(consistent(out)["source"]) == {"folder"} and not (out / DANBOORU_JOURNAL).exists()


def test_owners_of_a_folder_scraped_before_the_record_are_read_from_it(tmp_path):
    out = tmp_path / "raw"
    with DanbooruServer(make_posts(3)) as server:
        scrape(danbooru(server, "scrape.danbooru.tags=hat"), out)
        (out / WORKSPACE).unlink()
        with pytest.raises(StageError, match=r"holds the Danbooru search 'hat'"):  # from the journal
            scrape(toy(), out)
        (out / DANBOORU_JOURNAL).unlink()
        with pytest.raises(StageError, match=r"holds a Danbooru search \(its journal is gone\)"):  # from the manifest
            scrape(toy(), out)
    other = tmp_path / "other"
    mine = pictures(tmp_path / "mine" / "sub", 3, 1).parent
    scrape(folder(mine), other)
    (other / WORKSPACE).unlink()
    scrape(folder(mine), other)  # the same folder: its files' common folder is inside it
    (other / WORKSPACE).unlink()
    with pytest.raises(StageError, match=r"holds a folder import of .*sub.*this run is a folder import of"):
        scrape(folder(pictures(tmp_path / "yours", 2, 2)), other)


def test_a_damaged_record_is_read_again_from_the_manifest(tmp_path, caplog):
    out = tmp_path / "raw"
    scrape(folder(pictures(tmp_path / "mine", 2, 0)), out)
    (out / WORKSPACE).write_text('{"owners": [')
    with pytest.raises(StageError, match="holds a folder import of"):
        scrape(toy(), out)
    assert "workspace.json is damaged" in caplog.text
    scrape(folder(tmp_path / "mine"), out)
    assert owners(out)[0]["source"] == "folder"


def test_a_damaged_manifest_is_named_and_nothing_is_touched(tmp_path):
    out = tmp_path / "raw"
    scrape(toy(), out)
    (out / MANIFEST).write_bytes(b"PAR1 not really")
    before = files(out)
    with pytest.raises(StageError, match=r"manifest.parquet cannot be read.*Move it aside"):
        scrape(toy(), out)
    assert files(out) == before
