"""scrape.source=danbooru against the project's own Danbooru-compatible server on 127.0.0.1: what is
kept and skipped, cursor paging, limits, resume, dedupe, and every injected fault's outcome."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from pipeline.core.errors import StageError
from pipeline.core.layout import MANIFEST, WORKSPACE
from pipeline.params import ParamsError, load_params
from pipeline.scrape.sources.danbooru import JOURNAL
from pipeline.scrape.stage import scrape

from conftest import ROOT
from fakes.danbooru_server import DanbooruServer, as_video, deleted, make_posts, restricted, with_changes, with_id

FAST = ["scrape.source=danbooru", "scrape.danbooru.tags=", "scrape.danbooru.min_width=0", "scrape.danbooru.min_height=0",
        "scrape.danbooru.rate=10", "scrape.danbooru.files_rate=50", "scrape.danbooru.retry_backoff=0.01",
        "scrape.danbooru.max_retries=3",
        "scrape.danbooru.timeout=5"]


def sparams(server: DanbooruServer, *extra: str):
    return load_params(ROOT / "params.yaml", [*FAST, f"scrape.danbooru.base_url={server.url}", *extra]).scrape


def manifest(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / MANIFEST)


def assert_consistent(out: Path) -> pd.DataFrame:
    """Every manifest row once, its file present with the right md5, and no other file."""
    m = manifest(out)
    assert m["id"].is_unique and m["md5"].is_unique
    for row in m.itertuples():
        assert hashlib.md5((out / row.path).read_bytes()).hexdigest() == row.md5 and row.path == f"{row.md5}.{row.ext}"
    assert sorted(p.name for p in out.iterdir()) == sorted([*m["path"], MANIFEST, JOURNAL, WORKSPACE])
    return m


@pytest.fixture(autouse=True)
def no_credentials(monkeypatch):
    monkeypatch.delenv("DANBOORU_LOGIN", raising=False)
    monkeypatch.delenv("DANBOORU_API_KEY", raising=False)


def test_backfill_keeps_good_posts_and_counts_the_rest(tmp_path):
    good = make_posts(12, start_id=1)
    extra = [restricted(make_posts(1, start_id=20)[0]), deleted(make_posts(1, start_id=21)[0]),
             as_video(make_posts(1, start_id=22)[0]), with_id(good[-1], 23),  # same file as post 1
             with_changes(make_posts(1, start_id=24)[0], file_url="http://files.elsewhere.invalid/x.png"),
             with_changes(make_posts(1, start_id=25)[0], rating="s"),  # filtered by the site (rating:g)
             with_changes(make_posts(1, start_id=26, size=16)[0], image_width=16, image_height=16)]
    out = tmp_path / "raw"
    with DanbooruServer(good + extra) as server:
        result = scrape(sparams(server, "scrape.danbooru.page_size=5", "scrape.danbooru.min_width=32"), out)
        api_calls = server.api_requests
        files = server.file_requests
    m = assert_consistent(out)
    # post 23 is newer than post 1 and carries the same file: kept under 23, post 1 is the duplicate
    assert sorted(m["id"].astype(int)) == [*range(2, 13), 23]
    # the deleted post never comes: -status:deleted (a free metatag) drops it server-side
    assert dict(result.skipped) == {"restricted": 1, "extension": 1, "duplicate_md5": 1,
                                    "host_not_allowed": 1, "too_small": 1}
    assert result.kept == result.new == 12 and not result.failed
    assert len(files) == 12  # one download per kept file, nothing else fetched
    assert all("rating%3Ag+-status%3Adeleted" in c and "limit=5" in c for c in api_calls)
    # 3 posts on the page after b4 are not the end on a site of unknown cap: only the empty page after them is
    assert [c.rsplit("page=", 1)[-1] if "page=" in c else None for c in api_calls] == [None, "b20", "b8", "b3", "b1"]
    row = m[m["id"] == "12"].iloc[0]
    post = next(p for p in good if p["id"] == 12)
    assert (row.width, row.height, row.rating, row.score) == (post["image_width"], post["image_height"], "g", post["score"])
    assert row.tags_general == post["tag_string_general"] and row.tags_character == post["tag_string_character"]
    assert row.file_url == server.file_url(post) and row.source == "danbooru" and row.origin.endswith("/posts/12")
    assert row.fetched_at.startswith("20")


def test_limit_met_makes_no_request_and_raising_it_resumes_below(tmp_path):
    out = tmp_path / "raw"
    with DanbooruServer(make_posts(30)) as server:
        scrape(sparams(server, "scrape.danbooru.limit=8", "scrape.danbooru.page_size=5"), out)
        assert sorted(manifest(out)["id"].astype(int)) == list(range(23, 31))
        n = len(server.requests)
        again = scrape(sparams(server, "scrape.danbooru.limit=8", "scrape.danbooru.page_size=5"), out)
        assert len(server.requests) == n and again.new == 0 and again.kept == 8
        more = scrape(sparams(server, "scrape.danbooru.limit=12", "scrape.danbooru.page_size=5"), out)
        later = server.requests[n:]
    assert more.new == 4 and sorted(manifest(out)["id"].astype(int)) == list(range(19, 31))
    # resumes below the lowest post decided (the first run stopped inside page b26, after post 23)
    assert later[0].endswith("page=b23") and len([r for r in later if not r.startswith("/posts")]) == 4
    assert_consistent(out)


def test_incremental_fetches_only_newer_posts(tmp_path):
    out = tmp_path / "raw"
    with DanbooruServer(make_posts(10)) as server:
        scrape(sparams(server, "scrape.danbooru.mode=incremental", "scrape.danbooru.limit=6"), out)
        assert sorted(manifest(out)["id"].astype(int)) == list(range(5, 11))  # first run: the newest
        server.add_posts(make_posts(7, start_id=11))
        n = len(server.requests)
        result = scrape(sparams(server, "scrape.danbooru.mode=incremental", "scrape.danbooru.limit=5",
                                "scrape.danbooru.page_size=3"), out)
        later = server.requests[n:]
        assert result.new == 5 and sorted(manifest(out)["id"].astype(int)) == list(range(5, 16))
        assert [r.rsplit("page=", 1)[1] for r in later if r.startswith("/posts")] == ["a10", "a13"]
        n = len(server.requests)
        result = scrape(sparams(server, "scrape.danbooru.mode=incremental", "scrape.danbooru.limit=5"), out)
        assert result.new == 2 and [r.rsplit("page=", 1)[1] for r in server.api_requests[-2:]] == ["a15", "a17"]
        assert len([r for r in server.requests[n:] if not r.startswith("/posts")]) == 2
    assert sorted(manifest(out)["id"].astype(int)) == list(range(5, 18))
    assert_consistent(out)


def test_a_second_search_reuses_held_files(tmp_path):
    posts = make_posts(20)
    out = tmp_path / "raw"
    with DanbooruServer(posts) as server:
        first = scrape(sparams(server, "scrape.danbooru.tags=hat"), out)
        n_files = len(server.file_requests)
        second = scrape(sparams(server, "scrape.danbooru.tags=smile"), out, mode="add")
        refetched = server.file_requests[n_files:]
    hat = {p["id"] for p in posts if "hat" in p["tag_string"].split()}
    smile = {p["id"] for p in posts if "smile" in p["tag_string"].split()}
    assert hat & smile and hat - smile and smile - hat  # the seed makes overlapping searches
    assert first.new == len(hat) and second.new == len(smile - hat)
    assert second.skipped["already_held"] == len(hat & smile) and len(refetched) == len(smile - hat)
    assert set(assert_consistent(out)["id"].astype(int)) == hat | smile


def test_other_sources_rows_stay_and_their_files_are_not_fetched_again(tmp_path):
    posts = make_posts(4)
    out = tmp_path / "raw"
    src = tmp_path / "src"
    src.mkdir()
    with DanbooruServer(posts) as server:
        (src / "mine.png").write_bytes(requests_get(server.file_url(posts[0])))
        scrape(load_params(ROOT / "params.yaml", ["scrape.source=folder", f"scrape.folder={src}"]).scrape, out)
        n = len(server.requests)
        result = scrape(sparams(server), out, mode="add")
        assert len(server.file_requests) == 1 + 3 and len(server.requests) == n + 2 + 3  # the held file is not fetched
    m = assert_consistent(out)
    assert result.skipped["duplicate_md5"] == 1 and sorted(m["source"]) == ["danbooru"] * 3 + ["folder"]


def requests_get(url: str) -> bytes:
    import requests

    return requests.get(url, timeout=5).content


def test_too_many_tags_stop_before_any_request(tmp_path):
    with DanbooruServer([with_changes(p, tag_string="1girl solo") for p in make_posts(3)]) as server:
        with pytest.raises(StageError, match=r"3 searched tags.*anonymous search may use 2.*DANBOORU_LOGIN"):
            scrape(sparams(server, "scrape.danbooru.tags=1girl solo smile score:>5"), tmp_path / "raw")
        assert server.requests == []
        # metatags are free: two tags plus score: and the rating filter go out
        assert scrape(sparams(server, "scrape.danbooru.tags=1girl solo score:>5"), tmp_path / "raw").new == 3
        assert server.api_requests[0] == "/posts.json?tags=1girl+solo+score%3A%3E5+rating%3Ag+-status%3Adeleted&limit=200"


def test_server_422_401_and_credentials_stay_secret(tmp_path, monkeypatch):
    posts = make_posts(3)
    secret = "s3cr3t-api-key"
    with DanbooruServer(posts, credentials=("alice", secret), member_tag_limit=2) as server:
        monkeypatch.setenv("DANBOORU_LOGIN", "alice")
        monkeypatch.setenv("DANBOORU_API_KEY", "wrong")
        with pytest.raises(StageError, match=r"rejected the credentials \(HTTP 401.*DANBOORU_API_KEY"):
            scrape(sparams(server), tmp_path / "raw")
        monkeypatch.setenv("DANBOORU_API_KEY", secret)
        with pytest.raises(StageError, match=r"refused the search.*HTTP 422.*more than 2 tags.*fewer tags"):
            scrape(sparams(server, "scrape.danbooru.tags=a b c"), tmp_path / "raw")
        assert len(server.api_requests) == 2  # neither is retried
        monkeypatch.setenv("DANBOORU_API_KEY", "")
        with pytest.raises(StageError, match="DANBOORU_API_KEY is not set"):
            scrape(sparams(server), tmp_path / "raw")
        monkeypatch.setenv("DANBOORU_API_KEY", secret)
        from pipeline.scrape.stage import run_scrape

        params = load_params(ROOT / "params.yaml", [*FAST, f"scrape.danbooru.base_url={server.url}",
                                                    f"paths.raw={tmp_path / 'raw'}"])
        assert run_scrape(params).kept == 3
    for f in (tmp_path / "raw").iterdir():
        assert secret.encode() not in f.read_bytes()
    import mlflow

    run = mlflow.search_runs(search_all_experiments=True, filter_string="tags.stage = 'scrape'", output_format="list",
                             order_by=["attributes.start_time DESC"])[0]
    assert run.data.metrics["kept"] == 3 and run.data.metrics["api_requests"] == 2  # the page, then the empty one
    assert secret not in json.dumps([run.data.params, run.data.tags])


def test_transient_faults_are_retried(tmp_path):
    posts = make_posts(6)
    m = [p["md5"] for p in posts]
    with DanbooruServer(posts, api_faults=[429, 500, "reset", 503, "truncate", 504],
                        file_faults={m[0]: ["reset"], m[1]: ["truncate", 502], m[2]: ["corrupt"]}) as server:
        result = scrape(sparams(server, "scrape.danbooru.max_retries=6"), tmp_path / "raw")
        assert len(server.api_requests) == 7 + 1  # six faults, the page, the empty page
        assert server.file_requests.count(server.file_url(posts[1]).split(server.url)[1]) == 3
    assert result.new == 6 and result.stats["retries"] == 6 + 1 + 2 + 1 and not result.failed
    assert_consistent(tmp_path / "raw")


def test_md5_mismatch_retried_once_then_skipped(tmp_path):
    posts = make_posts(3)
    with DanbooruServer(posts, file_faults={posts[1]["md5"]: ["corrupt"] * 4}) as server:
        result = scrape(sparams(server), tmp_path / "raw")
        assert len(server.file_requests) == 2 + 2  # the same wrong bytes twice: not worth four more downloads
    assert dict(result.skipped) == {"md5_mismatch": 1} and result.new == 2
    assert posts[1]["md5"] not in set(assert_consistent(tmp_path / "raw")["md5"])


def test_api_gives_up_after_bounded_retries(tmp_path):
    with DanbooruServer(make_posts(3), api_faults=[500] * 10) as server:
        with pytest.raises(StageError, match=r"could not be searched: 4 tries failed \(HTTP 500: The database timed out "
                                             r"running your query.\).*Narrow scrape.danbooru.tags.*run the scrape stage again"):
            scrape(sparams(server), tmp_path / "raw")
        assert len(server.api_requests) == 4


@pytest.mark.parametrize("fault", ["challenge", "challenge503", "html"])
def test_cloudflare_challenge_stops_at_once_and_the_rerun_resumes(tmp_path, fault):
    posts = make_posts(9)
    out = tmp_path / "raw"
    with DanbooruServer(posts, api_faults=[None, fault]) as server:
        with pytest.raises(StageError, match=r"Cloudflare challenge.*Nothing is lost \(4 posts.*resumes"):
            scrape(sparams(server, "scrape.danbooru.page_size=4"), out)
        assert len(server.api_requests) == 2  # no retry into a ban
        assert sorted(assert_consistent(out)["id"].astype(int)) == [6, 7, 8, 9]
        n = len(server.file_requests)
        result = scrape(sparams(server, "scrape.danbooru.page_size=4"), out)
        assert server.api_requests[2].endswith("page=b6") and len(server.file_requests) == n + 5
    assert result.new == 5 and sorted(assert_consistent(out)["id"].astype(int)) == list(range(1, 10))


def test_cloudflare_on_a_file_stops_too(tmp_path):
    posts = make_posts(3)
    with DanbooruServer(posts, file_faults={posts[1]["md5"]: ["challenge"]}) as server:
        with pytest.raises(StageError, match="Cloudflare"):
            scrape(sparams(server, "scrape.danbooru.download_concurrency=1"), tmp_path / "raw")
        assert server.file_requests.count(server.file_url(posts[1]).split(server.url)[1]) == 1


def test_failed_download_is_retried_by_id_next_run(tmp_path):
    posts = make_posts(5)
    out = tmp_path / "raw"
    with DanbooruServer(posts, file_faults={posts[2]["md5"]: [503] * 4}) as server:
        first = scrape(sparams(server), out)
        assert first.new == 4 and dict(first.failed) == {"HTTP 503": 1}
        second = scrape(sparams(server), out)
        assert "id%3A3+rating%3Ag" in server.api_requests[-2] or "id%3A3" in server.api_requests[-2]
    assert second.new == 1 and sorted(assert_consistent(out)["id"].astype(int)) == [1, 2, 3, 4, 5]


def test_failed_post_gone_from_the_search_is_not_asked_for_forever(tmp_path):
    posts = make_posts(4)
    out = tmp_path / "raw"
    with DanbooruServer(posts, file_faults={posts[1]["md5"]: [500] * 4}) as server:
        p = sparams(server, "scrape.danbooru.mode=incremental", "scrape.danbooru.tags=1girl solo")
        assert dict(scrape(p, out).failed) == {"HTTP 500": 1}
        server.add_posts([with_changes(posts[1], tag_string="retagged")])  # no longer 1girl solo
        n = len(server.api_requests)
        assert scrape(p, out).skipped["no_longer_listed"] == 1
        assert scrape(p, out).new == 0
        retries = [r for r in server.api_requests[n:] if "id%3A" in r]
    assert len(retries) == 1 and sorted(assert_consistent(out)["id"].astype(int)) == [1, 2, 4]


def test_no_search_results_is_a_clear_error(tmp_path):
    with DanbooruServer(make_posts(3)) as server:
        with pytest.raises(StageError, match="no usable post for 'nothing_matches rating:g -status:deleted'"):
            scrape(sparams(server, "scrape.danbooru.tags=nothing_matches"), tmp_path / "raw")


def test_bad_base_url_is_named(tmp_path):
    with DanbooruServer(make_posts(1)) as server:
        with pytest.raises(StageError, match="404.*Danbooru-compatible"):
            scrape(sparams(server, f"scrape.danbooru.base_url={server.url}/nope"), tmp_path / "raw")


@pytest.mark.parametrize("override, words", [
    ("scrape.danbooru.ratings=[g, x]", ["ratings", "'x'", "'q'"]),
    ("scrape.danbooru.extensions=[png, mp4]", ["mp4", "never"]),
    ("scrape.danbooru.base_url=https://me:key@danbooru.donmai.us", ["credentials", "DANBOORU_LOGIN"]),
    ("scrape.danbooru.tags=1girl order:score", ["order:"]),
    ("scrape.danbooru.rate=0", ["rate"]),
    ("scrape.danbooru.mode=sideways", ["backfill", "incremental"]),
])
def test_bad_params_are_refused(override, words):
    with pytest.raises(ParamsError) as e:
        load_params(ROOT / "params.yaml", [override])
    for w in words:
        assert w in str(e.value)


def test_defaults_scrape_danbooru():
    p = load_params(ROOT / "params.yaml")
    assert p.scrape.source == "danbooru" and p.crop.detector == "animeface"
    d = p.scrape.danbooru
    assert (d.base_url, d.ratings, d.rate, d.download_concurrency, d.mode) == ("https://danbooru.donmai.us", ["g"], 1.0, 4, "backfill")
    assert d.extensions == ["jpg", "png", "webp", "avif"] and d.exclude_deleted and d.limit <= 1000
    assert d.files_rate <= 2 and d.variant == "sample" and d.animated == "skip"


def _journal_posts(out: Path) -> list[int]:
    from pipeline.core.journal import read_journal

    return [r["id"] for r in read_journal(out / JOURNAL) if r.get("t") == "post"]


def _start_cli(server: DanbooruServer, out: Path, *extra: str):
    import os
    import subprocess
    import sys

    args = [sys.executable, "-m", "pipeline", "scrape", "-S", f"paths.raw={out}", "-S", "tracking.enabled=false",
            "-S", f"scrape.danbooru.base_url={server.url}", *[x for o in [*FAST, *extra] for x in ("-S", o)]]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DANBOORU_")}
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait(cond, proc, timeout=60.0) -> None:
    import time

    end = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            raise AssertionError(f"scrape exited early ({proc.returncode}): {proc.stderr.read().decode()[-2000:]}")
        assert time.monotonic() < end, "timed out waiting for the scrape subprocess"
        time.sleep(0.02)


def test_kill_9_mid_file_then_rerun_keeps_every_post_once(tmp_path):
    """kill -9 the stage while a file is half sent, twice; the rerun ends with every post exactly
    once, no partial or orphan file, and no file transferred in full twice."""
    import collections
    import signal

    posts = make_posts(10)
    out = tmp_path / "raw"
    extra = ("scrape.danbooru.download_concurrency=1", "scrape.danbooru.page_size=4", "scrape.danbooru.limit=9")
    with DanbooruServer(posts, file_bytes_per_s=600) as server:
        for kept_before_kill in (2, 4):
            proc = _start_cli(server, out, *extra)
            try:
                _wait(lambda n=kept_before_kill: out.is_dir() and len(_journal_posts(out)) >= n and server.active_transfers > 0,
                      proc)
                server.file_progress.clear()
                _wait(server.file_progress.is_set, proc)  # bytes of the next file are on the wire
                proc.send_signal(signal.SIGKILL)
            finally:
                proc.wait(timeout=30)
            assert proc.returncode == -signal.SIGKILL
        assert not (out / MANIFEST).exists()  # never reached the end: only the journal knows
        done = set(_journal_posts(out))
        assert len(done) >= 4
        server.file_bytes_per_s = None
        n = len(server.requests)
        result = scrape(sparams(server, *extra), out)
        rerun_files = server.file_requests[len([r for r in server.requests[:n] if not r.startswith("/posts")]):]
    m = assert_consistent(out)
    assert sorted(m["id"].astype(int)) == list(range(2, 11)) and result.new == 9 - len(done)
    assert not any(p["md5"] in r for p in posts if p["id"] in done for r in rerun_files)  # nothing done is fetched again
    files_sent = collections.Counter(c for c in server.completed if not c.startswith("/posts"))
    assert len(files_sent) == 9 and max(files_sent.values()) == 1  # no file sent in full twice
    assert len(_journal_posts(out)) == 9  # one record per post: no duplicate in the journal either


def test_leftovers_of_a_kill_are_cleaned_or_adopted(tmp_path):
    """A temp file of a write cut short is removed; a complete file whose journal record never got
    written is adopted without a download; a file nobody lists any more is removed."""
    from fakes.danbooru_server import file_bytes

    posts = make_posts(3)
    out = tmp_path / "raw"
    out.mkdir()
    (out / f".{posts[0]['md5']}.png.abc123.tmp").write_bytes(b"half a fi")
    (out / f"{posts[1]['md5']}.png").write_bytes(file_bytes(posts[1]["md5"]))
    (out / f"{'0' * 32}.png").write_bytes(b"orphan")
    (out / JOURNAL).write_bytes(b'{"t":"post","id":99,"q":"x","row":{"md5"')  # torn by the kill
    with DanbooruServer(posts) as server:
        result = scrape(sparams(server), out)
        assert len(server.file_requests) == 2 and posts[1]["md5"] not in "".join(server.file_requests)
    assert result.new == 3 and sorted(assert_consistent(out)["id"].astype(int)) == [1, 2, 3]


def test_journal_ignores_and_cuts_a_torn_tail(tmp_path):
    from pipeline.core.journal import Journal, read_journal

    path = tmp_path / "j.jsonl"
    with Journal(path) as j:
        j.append({"a": 1})
    path.write_bytes(path.read_bytes() + b'{"a": 2')
    assert read_journal(path) == [{"a": 1}]
    with Journal(path) as j:
        j.append({"a": 3})
    assert read_journal(path) == [{"a": 1}, {"a": 3}] and path.read_bytes().count(b"\n") == 2


def test_token_bucket_spaces_calls_without_bursts():
    from pipeline.core.ratelimit import TokenBucket

    now = [100.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    bucket = TokenBucket(4.0, slack=0.0, clock=lambda: now[0], sleep=sleep)
    times = []
    for i in range(5):
        if i == 3:
            now[0] += 2.0  # idle time is not banked into a burst
        bucket.acquire()
        times.append(now[0])
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert gaps[0] == gaps[1] == 0.25 and gaps[2] == 2.0 and gaps[3] == 0.25
    assert TokenBucket(4.0).interval == pytest.approx(0.2575)  # default: 3 % under the rate

    def oversleep(s):
        now[0] += s + 0.1  # a busy machine wakes late

    late = TokenBucket(4.0, slack=0.0, clock=lambda: now[0], sleep=oversleep)
    t = []
    for _ in range(3):
        late.acquire()
        t.append(now[0])
    assert [round(b - a, 6) for a, b in zip(t, t[1:])] == [0.35, 0.35]  # spaced from the late wake-up


def test_retry_policy_backoff_is_exponential_bounded_and_jittered():
    import random

    from pipeline.core.httpclient import RetryPolicy

    p = RetryPolicy(backoff=1.0, backoff_max=10.0, jitter=0.5, rng=random.Random(0))
    waits = [p.delay(i) for i in range(8)]
    for i, w in enumerate(waits):
        base = min(10.0, 2.0 ** i)
        assert 0.5 * base <= w <= 1.5 * base
    assert len({round(w / min(10.0, 2.0 ** i), 6) for i, w in enumerate(waits)}) > 1  # jitter varies
    assert p.delay(0, retry_after=7.0) >= 7.0  # the server's Retry-After is honoured (capped)


def test_api_rate_stays_at_or_under_the_configured_rate(tmp_path):
    posts = make_posts(35, size=16)
    with DanbooruServer(posts, latency=0.01) as server:
        with pytest.raises(StageError, match="no usable post"):  # all too small: paging only
            scrape(sparams(server, "scrape.danbooru.rate=8", "scrape.danbooru.page_size=5",
                           "scrape.danbooru.min_width=1000"), tmp_path / "raw")
        t = [t for t, p in server.request_times if p.startswith("/posts")]
    assert len(t) == 8  # 7 full pages and the empty one after them
    achieved = (len(t) - 1) / (t[-1] - t[0])
    assert 0.9 * 8 <= achieved <= 8
    assert min(b - a for a, b in zip(t, t[1:])) >= 0.5 / 8  # no burst (those come 10 ms apart), whatever the load


def test_a_changed_filter_looks_at_skipped_posts_again(tmp_path):
    posts = make_posts(6)
    posts[2] = with_changes(posts[2], image_width=10)  # post 4 claims to be tiny
    out = tmp_path / "raw"
    with DanbooruServer(posts) as server:
        first = scrape(sparams(server, "scrape.danbooru.min_width=32"), out)
        second = scrape(sparams(server, "scrape.danbooru.min_width=0"), out)
        assert len(server.file_requests) == 6  # the five held files are not fetched again
    assert first.new == 5 and first.skipped["too_small"] == 1
    assert second.new == 1 and second.skipped["already_held"] == 5
    assert sorted(assert_consistent(out)["id"].astype(int)) == list(range(1, 7))


def test_toy_faces_are_never_mixed_into_real_data(tmp_path):
    out = tmp_path / "raw"
    scrape(load_params(ROOT / "params.yaml", ["scrape.source=toy", "scrape.toy.count=5", "scrape.toy.size=16"]).scrape, out)
    with DanbooruServer(make_posts(3)) as server:
        scrape(sparams(server), out)
    assert sorted(assert_consistent(out)["source"]) == ["danbooru"] * 3


def test_default_search_fits_the_test_server(tmp_path):
    """params.yaml's defaults and make_posts agree: only base_url needs setting (the refresh flow relies on it)."""
    params = load_params(ROOT / "params.yaml", ["scrape.danbooru.retry_backoff=0.01"])
    with DanbooruServer(make_posts(4)) as server:
        params.scrape.danbooru.base_url = server.url
        assert scrape(params.scrape, tmp_path / "raw").new == 4
        assert server.api_requests[0] == "/posts.json?tags=1girl+solo+rating%3Ag+-status%3Adeleted&limit=200"


def test_timeouts_are_retried(tmp_path):
    posts = make_posts(2)
    with DanbooruServer(posts, api_faults=[("delay", 1.0)], file_faults={posts[0]["md5"]: [("delay", 1.0)]}) as server:
        result = scrape(sparams(server, "scrape.danbooru.timeout=0.3"), tmp_path / "raw")
        assert len(server.api_requests) == 3 and len(server.file_requests) == 3
    assert result.new == 2 and result.stats["retries"] == 2


def test_missing_and_oversized_files_are_skipped_by_reason(tmp_path):
    import io

    import numpy as np
    from PIL import Image

    from fakes.danbooru_server import PLACEHOLDER, register_file

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, format="PNG")
    big = register_file(buf.getvalue())  # ~12 KB of noise
    posts = make_posts(3)
    posts[0] = with_changes(posts[0], md5=big, file_url=f"{PLACEHOLDER}/original/{big[:2]}/{big[2:4]}/{big}.png")
    with DanbooruServer(posts, file_faults={posts[1]["md5"]: [404]}) as server:
        result = scrape(sparams(server, "scrape.danbooru.max_file_bytes=4096"), tmp_path / "raw")
        assert len(server.file_requests) == 3  # neither is retried
    assert dict(result.skipped) == {"too_large": 1, "file_unavailable": 1} and result.new == 1
    assert sorted(assert_consistent(tmp_path / "raw")["id"].astype(int)) == [1]
