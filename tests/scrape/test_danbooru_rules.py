"""The Danbooru source against the rules of the real site (danbooru/danbooru's Rails app), on the
project's local server: passing errors, skips that are undone when their cause goes, mirrors with a
lower page cap, walks that keep nothing, a rate for files, samples instead of originals, what the
JSON says before any download, animated and AVIF files, relative URLs, and the site's messages.
Each test names the numbered behaviour of the issue it covers."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from pipeline.core.errors import StageError
from pipeline.core.journal import read_journal
from pipeline.core.layout import MANIFEST
from pipeline.params import load_params
from pipeline.scrape.sources import danbooru_api as api
from pipeline.scrape.sources.danbooru import JOURNAL
from pipeline.scrape.stage import scrape

from conftest import ROOT
from fakes.danbooru_server import (
    PLACEHOLDER,
    DanbooruServer,
    animated,
    as_2020,
    banned,
    make_posts,
    on_file_host,
    relative_urls,
    with_changes,
)

FAST = ["scrape.source=danbooru", "scrape.danbooru.tags=", "scrape.danbooru.min_width=0", "scrape.danbooru.min_height=0",
        "scrape.danbooru.rate=10", "scrape.danbooru.files_rate=50", "scrape.danbooru.retry_backoff=0.01",
        "scrape.danbooru.max_retries=3", "scrape.danbooru.timeout=5", "scrape.danbooru.variant=original"]


def sparams(server: DanbooruServer, *extra: str):
    return load_params(ROOT / "params.yaml", [*FAST, f"scrape.danbooru.base_url={server.url}", *extra]).scrape


def ids(out: Path) -> list[int]:
    m = pd.read_parquet(out / MANIFEST)
    for row in m.itertuples():  # every file present under the md5 of its bytes
        assert hashlib.md5((out / row.path).read_bytes()).hexdigest() == row.md5
    return sorted(m["id"].astype(int))


def skips(out: Path) -> list[dict]:
    return [r for r in read_journal(out / JOURNAL) if r.get("t") == "skip"]


@pytest.fixture(autouse=True)
def no_credentials(monkeypatch):
    monkeypatch.delenv("DANBOORU_LOGIN", raising=False)
    monkeypatch.delenv("DANBOORU_API_KEY", raising=False)


# 1. Cloudflare origin errors (52x) on the API are passing: retried like 5xx --------------------

@pytest.mark.parametrize("status", [524, 520, 522])
def test_a_cloudflare_52x_page_then_a_good_page(tmp_path, status):
    with DanbooruServer(make_posts(3), api_faults=[status]) as server:
        result = scrape(sparams(server), tmp_path / "raw")
        assert len(server.api_requests) == 1 + 2  # the 52x page, the page again, the empty page
    assert result.new == 3 and result.stats["retries"] == 1


def test_52x_every_time_gives_up_with_the_cloudflare_reason(tmp_path):
    with DanbooruServer(make_posts(3), api_faults=[524] * 9) as server:
        with pytest.raises(StageError, match=r"4 tries failed \(HTTP 524 \(Cloudflare.*did not answer\)\).*run the scrape"):
            scrape(sparams(server), tmp_path / "raw")


# 2. skips that pass or depend on a setting are looked at again -----------------------------------

def test_a_file_403_once_is_kept_on_the_next_run(tmp_path):
    posts = make_posts(4)
    out = tmp_path / "raw"
    with DanbooruServer(posts, file_faults={posts[1]["md5"]: [403]}) as server:
        first = scrape(sparams(server), out)
        assert dict(first.skipped) == {"file_unavailable": 1} and first.new == 3
        n = len(server.api_requests)
        second = scrape(sparams(server), out)
        asked = server.api_requests[n]
    assert second.new == 1 and ids(out) == [1, 2, 3, 4]
    assert f"id%3A{posts[1]['id']}+" in asked and "limit=1" in asked  # by id, the limit the batch needs
    assert [r["try"] for r in skips(out)] == [1]


def test_a_file_refused_every_time_is_tried_max_post_tries_runs_then_left(tmp_path):
    posts = make_posts(2)
    out = tmp_path / "raw"
    path = None
    with DanbooruServer(posts, file_faults={posts[0]["md5"]: [404] * 20}) as server:
        path = server.file_url(posts[0]).split(server.url)[1]
        for _ in range(4):
            scrape(sparams(server, "scrape.danbooru.max_post_tries=2"), out)
        tries = server.file_requests.count(path)
    assert tries == 2 and [r["try"] for r in skips(out)] == [1, 2]  # each try a journal record; then final
    assert ids(out) == [1]


def test_widening_allowed_hosts_then_rerunning_keeps_what_was_skipped(tmp_path):
    posts = make_posts(6)
    posts[1], posts[3] = on_file_host(posts[1]), on_file_host(posts[3])  # files on http://localhost:<port>
    out = tmp_path / "raw"
    with DanbooruServer(posts) as server:
        first = scrape(sparams(server), out)
        assert first.skipped["host_not_allowed"] == 2 and not any("localhost" in r for r in server.requests)
        again = scrape(sparams(server), out)  # nothing changed: not looked at again
        assert again.new == 0 and not again.skipped
        wider = scrape(sparams(server, "scrape.danbooru.allowed_hosts=[localhost]"), out)
    assert wider.new == 2 and ids(out) == list(range(1, 7))
    assert {r["cond"] for r in skips(out)} == {"*.donmai.us"}  # the setting the skip depended on


def test_redirects_are_followed_to_allowed_hosts_only(tmp_path):
    posts = make_posts(3)
    m0, m1 = posts[0]["md5"], posts[1]["md5"]
    same_host = f"{PLACEHOLDER}/data/{m0}.png"  # the 2020 layout on the same host (an http -> https move looks alike)
    other_host = on_file_host(posts[1])["file_url"]
    out = tmp_path / "raw"
    with DanbooruServer(posts, file_faults={m0: [("redirect", same_host)], m1: [("redirect", other_host)]}) as server:
        first = scrape(sparams(server), out)
        assert dict(first.skipped) == {"redirect_not_allowed": 1} and first.new == 2
        server.fault_file(m1, ("redirect", other_host))
        second = scrape(sparams(server, "scrape.danbooru.allowed_hosts=[localhost]"), out)
        assert any(r.startswith("/data/") for r in server.file_requests)
    assert second.new == 1 and ids(out) == [1, 2, 3]


def test_restricted_posts_are_looked_at_again_after_logging_in(tmp_path, monkeypatch):
    posts = make_posts(4)
    out = tmp_path / "raw"
    with DanbooruServer(posts, members_only={2, 3}, credentials=("alice", "key")) as server:
        first = scrape(sparams(server), out)
        assert first.skipped["restricted"] == 2 and first.new == 2
        monkeypatch.setenv("DANBOORU_LOGIN", "alice")
        monkeypatch.setenv("DANBOORU_API_KEY", "key")
        second = scrape(sparams(server), out)
    assert second.new == 2 and ids(out) == [1, 2, 3, 4]
    assert all("alice" not in str(r) and "key" not in r.get("cond", "") for r in read_journal(out / JOURNAL))


def test_banned_posts_are_counted_as_banned_and_final(tmp_path):
    posts = make_posts(3)
    posts[0] = banned(posts[0])
    out = tmp_path / "raw"
    with DanbooruServer(posts) as server:
        assert dict(scrape(sparams(server), out).skipped) == {"banned": 1}
        n = len(server.api_requests)
        scrape(sparams(server), out)
        assert not any("id%3A" in r for r in server.api_requests[n:])  # a fact about the post: never asked again


# 3. failed downloads are asked for again by id: nothing lost with a small page size ---------------

def test_page_size_5_with_failed_downloads_loses_nothing(tmp_path):
    posts = make_posts(14)
    failing = [p["md5"] for p in posts[:9]]
    out = tmp_path / "raw"
    with DanbooruServer(posts, file_faults={m: [503] * 4 for m in failing}, page_cap=5) as server:
        first = scrape(sparams(server, "scrape.danbooru.page_size=5"), out)
        assert sum(first.failed.values()) == 9 and first.new == 5
        second = scrape(sparams(server, "scrape.danbooru.page_size=5"), out)
        by_id = [r for r in server.api_requests if "id%3A" in r]
    assert second.new == 9 and not second.skipped.get("no_longer_listed") and ids(out) == list(range(1, 15))
    # one request for the 9 ids; the mirror's cap of 5 cut it short, so the other 4 were asked again
    assert len(by_id) == 2 and "limit=9" in by_id[0] and "limit=4" in by_id[1]
    assert {r["try"] for r in read_journal(out / JOURNAL) if r["t"] == "fail"} == {1}


# 4. a walk that keeps nothing stops, naming the reason and the setting ----------------------------

def test_a_walk_where_every_post_is_skipped_stops_with_the_reason(tmp_path):
    posts = [on_file_host(p) for p in make_posts(40)]
    with DanbooruServer(posts) as server:
        with pytest.raises(StageError, match=r"last 3 pages .*15 posts.* kept nothing: 15 skipped as 'host_not_allowed'.*"
                                             r"scrape.danbooru.allowed_hosts.*stop_after_barren_pages=3"):
            scrape(sparams(server, "scrape.danbooru.page_size=5", "scrape.danbooru.stop_after_barren_pages=3"),
                   tmp_path / "raw")
        assert len(server.api_requests) == 3 and not server.file_requests


def test_a_barren_stretch_after_kept_posts_ends_the_walk_but_not_the_run(tmp_path):
    posts = make_posts(30)
    posts = posts[:5] + [with_changes(p, file_ext="mp4") for p in posts[5:]]  # the 5 newest are pictures
    with DanbooruServer(posts) as server:
        result = scrape(sparams(server, "scrape.danbooru.page_size=5", "scrape.danbooru.stop_after_barren_pages=2"),
                        tmp_path / "raw")
        assert len(server.api_requests) == 1 + 2
    assert result.new == 5 and result.stats["stopped_barren"] == 1


# 5. only an empty page ends a walk: a mirror capping pages at 100 finishes -------------------------

def test_a_mirror_capping_pages_at_100_yields_the_full_limit(tmp_path):
    with DanbooruServer(make_posts(150, size=8), page_cap=100) as server:
        result = scrape(sparams(server, "scrape.danbooru.limit=150"), tmp_path / "raw")
        pages = server.api_requests
    assert result.new == 150 and len(pages) == 2 and "limit=200" in pages[0]


def test_the_documented_cap_is_danbooru_s_own():
    assert api.page_cap("https://danbooru.donmai.us") == 200 and api.page_cap("https://safebooru.donmai.us") == 200
    assert api.page_cap("https://my-mirror.example") is None and api.page_cap("https://donmai.us.evil.example") is None


# 6. files have their own rate, shared by the concurrent downloads ---------------------------------

def test_downloads_never_exceed_files_rate_measured_by_the_server(tmp_path):
    with DanbooruServer(make_posts(16, size=8)) as server:
        result = scrape(sparams(server, "scrape.danbooru.files_rate=8", "scrape.danbooru.download_concurrency=4"),
                        tmp_path / "raw")
        t = server.file_times()
    assert result.new == 16 and len(t) == 16
    achieved = (len(t) - 1) / (t[-1] - t[0])
    assert 0.85 * 8 <= achieved <= 8
    assert min(b - a for a, b in zip(t, t[1:])) >= 0.5 / 8  # four threads, yet no burst


# 7/8. samples for wide posts, originals for small ones; sizes and pixels from the JSON --------------

def test_variant_sample_stores_samples_for_wide_posts_and_originals_for_small_ones(tmp_path):
    wide = make_posts(2, start_id=1, size=1200, height=900)
    small = make_posts(2, start_id=3, size=64)
    out = tmp_path / "raw"
    with DanbooruServer(wide + small) as server:
        result = scrape(sparams(server, "scrape.danbooru.variant=sample"), out)
        files = server.file_requests
    m = pd.read_parquet(out / MANIFEST).set_index("id")
    assert sorted(m.index.astype(int)) == [1, 2, 3, 4] and result.stats["kept_sample"] == 2
    assert list(m.loc[["1", "2"], "variant"]) == ["sample"] * 2 and list(m.loc[["3", "4"], "variant"]) == ["original"] * 2
    assert set(m.loc[["1", "2"], "width"]) == {850} and set(m.loc[["1", "2"], "height"]) == {638}  # 900 * 850 / 1200
    assert sum("/sample/" in f for f in files) == 2 and sum("/original/" in f for f in files) == 2
    rows = {r["id"]: r["row"] for r in read_journal(out / JOURNAL) if r.get("t") == "post"}
    assert rows[1]["variant"] == "sample" and rows[1]["post_md5"] == wide[1]["md5"] != rows[1]["md5"]
    assert rows[3]["variant"] == "original" and rows[3]["md5"] == rows[3]["post_md5"]


def test_a_sample_that_is_not_the_promised_picture_is_replaced_by_the_original(tmp_path):
    from fakes.danbooru_server import register_file

    posts = make_posts(1, size=1000)
    register_file(b"not a jpeg at all", key=f"sample-{posts[0]['md5']}")
    with DanbooruServer(posts) as server:
        result = scrape(sparams(server, "scrape.danbooru.variant=sample"), tmp_path / "raw")
    assert result.new == 1 and result.stats.get("kept_original") == 1


def test_size_and_pixels_are_checked_from_the_json_before_any_download(tmp_path):
    posts = make_posts(3)
    posts[0] = with_changes(posts[0], file_size=10**9)
    posts[1] = with_changes(posts[1], image_width=40000, image_height=40000)
    out = tmp_path / "raw"
    with DanbooruServer(posts) as server:
        result = scrape(sparams(server, "scrape.danbooru.max_file_bytes=1048576"), out)
        assert dict(result.skipped) == {"too_large": 1, "too_many_pixels": 1} and len(server.file_requests) == 1
        more = scrape(sparams(server, "scrape.danbooru.max_file_bytes=2000000000"), out)  # the limit is a setting
    assert more.skipped["too_many_pixels"] == 0 and more.new == 1 and ids(out) == [1, 3]


# 9. deleted posts are dropped by the site --------------------------------------------------------

def test_exclude_deleted_sends_the_free_metatag(tmp_path):
    from fakes.danbooru_server import deleted

    posts = make_posts(3)
    posts[0] = deleted(posts[0])
    with DanbooruServer(posts) as server:
        kept = scrape(sparams(server, "scrape.danbooru.tags=1girl solo"), tmp_path / "a")
        assert all("-status%3Adeleted" in r for r in server.api_requests) and not kept.skipped
        shown = scrape(sparams(server, "scrape.danbooru.tags=1girl solo", "scrape.danbooru.exclude_deleted=false"),
                       tmp_path / "b")
        assert not any("status" in r for r in server.api_requests[-2:])
    assert kept.new == 2 and shown.new == 3


# 10. a User-Agent with a contact URL ---------------------------------------------------------------

def test_user_agent_names_the_project_url_and_can_be_changed(tmp_path):
    import tomllib

    from pipeline.scrape.sources.danbooru import default_user_agent

    url = next(iter(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"].values()))
    assert default_user_agent().startswith("boorugan/") and f"(+{url})" in default_user_agent()
    with DanbooruServer(make_posts(1)) as server:
        scrape(sparams(server), tmp_path / "a")
        assert server.user_agents == {default_user_agent()}
        server.user_agents.clear()
        scrape(sparams(server, "scrape.danbooru.user_agent=mybot/1 (+mailto:me@example.org)"), tmp_path / "b")
        assert server.user_agents == {"mybot/1 (+mailto:me@example.org)"}


# messages: free metatags as the site counts them, 403 with credentials ------------------------------

def test_free_metatags_are_danbooru_s_unlimited_metatags(tmp_path):
    assert api.counted_tags("1girl solo favcount:>1 -status:deleted rating:g tagcount:<20 pixiv_id:any") == ["1girl", "solo"]
    assert api.counted_tags("1girl has:source order:score") == ["1girl", "has:source", "order:score"]
    with DanbooruServer(make_posts(2)) as server:
        assert scrape(sparams(server, "scrape.danbooru.tags=1girl solo favcount:>1"), tmp_path / "raw").new == 2
        with pytest.raises(StageError, match=r"3 searched tags.*has:source"):
            scrape(sparams(server, "scrape.danbooru.tags=1girl solo has:source"), tmp_path / "raw")


def test_a_403_with_credentials_quotes_the_site_and_names_the_api_key(tmp_path, monkeypatch):
    monkeypatch.setenv("DANBOORU_LOGIN", "alice")
    monkeypatch.setenv("DANBOORU_API_KEY", "key")
    with DanbooruServer(make_posts(2), credentials=("alice", "key"), api_faults=[403]) as server:
        with pytest.raises(StageError, match=r"HTTP 403: Access denied\).*API key.*permissions.*IP addresses"):
            scrape(sparams(server), tmp_path / "raw")


# AVIF, animated files, relative URLs ---------------------------------------------------------------

def test_avif_is_kept_where_pillow_decodes_it_else_a_clear_skip(tmp_path, monkeypatch):
    if not api.avif_decodable():
        pytest.skip("this Pillow build has no AVIF decoder")
    posts = make_posts(2, ext="avif")
    with DanbooruServer(posts) as server:
        assert scrape(sparams(server), tmp_path / "a").new == 2
        monkeypatch.setattr(api, "avif_decodable", lambda: False)
        n = len(server.file_requests)
        with pytest.raises(StageError, match="avif_unsupported"):
            scrape(sparams(server), tmp_path / "b")
        assert len(server.file_requests) == n  # known before any download


def test_animated_files_are_skipped_or_kept_as_their_first_frame(tmp_path):
    from pipeline.crop.rawimage import load_rgb

    posts = make_posts(3)
    posts[0] = animated(posts[0], tagged=True)
    posts[1] = animated(posts[1], tagged=False)  # the JSON does not say so: found when decoded
    ext = "scrape.danbooru.extensions=[png, gif]"
    out = tmp_path / "raw"
    with DanbooruServer(posts) as server:
        skipped = scrape(sparams(server, ext), out)
        assert skipped.skipped["animated"] == 2 and len(server.file_requests) == 2  # the tagged one is not fetched
        kept = scrape(sparams(server, ext, "scrape.danbooru.animated=first_frame"), out)  # a setting: looked at again
    assert kept.new == 2 and kept.stats["kept_first_frame"] == 2
    m = pd.read_parquet(out / MANIFEST).set_index("id")
    assert m.loc["3", "first_frame"] and m.loc["3", "ext"] == "png"
    assert load_rgb(out / m.loc["3", "path"]).image.size == (posts[0]["image_width"], posts[0]["image_height"])


def test_relative_file_urls_are_on_the_api_host(tmp_path):
    posts = [relative_urls(p) for p in make_posts(2)]
    assert posts[0]["file_url"].startswith("/original/")
    with DanbooruServer(posts) as server:
        assert scrape(sparams(server), tmp_path / "raw").new == 2


# post JSON as the site wrote it: 2020 (no media_asset, /data/<md5>), 2025 (variants), GIF posts ----

def _cfg(*extra):
    return load_params(ROOT / "params.yaml", list(extra)).scrape.danbooru


def test_a_2020_post_without_media_asset_parses_and_scrapes(tmp_path):
    """Structural stand-in for the real 2020 page: the same keys, generated files."""
    posts = [as_2020(p) for p in make_posts(2, size=1000, height=700)] + [as_2020(p) for p in make_posts(1, start_id=3)]
    assert "media_asset" not in posts[0] and "/data/sample/sample-" in posts[0]["large_file_url"]
    choice = api.choose_file(posts[0], _cfg("scrape.danbooru.variant=sample"))
    assert (choice.variant, choice.width, choice.height, choice.ext) == ("sample", 850, 595, "jpg")
    with DanbooruServer(posts) as server:
        result = scrape(sparams(server, "scrape.danbooru.variant=sample"), tmp_path / "raw")
        assert sum(r.startswith("/data/sample/") for r in server.file_requests) == 2
    assert result.new == 3 and result.stats["kept_sample"] == 2


def test_real_post_json(shared_data):
    """The real posts in danbooru-posts: every field the scraper reads parses, as the site meant it."""
    import json

    folder = shared_data / "danbooru-posts"
    cfg = _cfg("scrape.danbooru.variant=sample", "scrape.danbooru.ratings=[g, s]",
               "scrape.danbooru.extensions=[jpg, png, gif]")
    post_2025 = json.loads((folder / "booruhs_9969513.json").read_text())
    c = api.choose_file(post_2025, cfg)
    assert (c.variant, c.width, c.height, c.ext) == ("sample", 850, 850, "jpg") and c.url.endswith("sample-" + post_2025["md5"] + ".jpg")
    assert api.screen(post_2025, cfg, 89_478_485) is None
    original = api.choose_file(post_2025, cfg.model_copy(update={"variant": "original"}))
    assert (original.md5, original.size, original.width) == (post_2025["md5"], post_2025["file_size"], 2048)

    page_2020 = json.loads((folder / "imgbrd_search_2020.json").read_text())
    assert all("media_asset" not in p and "/data/" in p["file_url"] for p in page_2020)
    for p in page_2020:
        c = api.choose_file(p, cfg)
        assert api.screen(p, cfg, 89_478_485) is None
        if p["image_width"] > 850:
            assert (c.variant, c.width) == ("sample", 850) and "/data/sample/sample-" in c.url
            assert abs(c.height - p["image_height"] * 850 / p["image_width"]) <= 0.5
        else:
            assert c.variant == "original" and c.url == p["file_url"] and c.md5 == p["md5"]

    gifs = json.loads((folder / "artanalyzer_2posts.json").read_text())
    assert all(api.is_animated(p) for p in gifs)
    assert {api.screen(p, cfg, 89_478_485) for p in gifs} == {"animated"}
    assert all(api.choose_file(p, cfg).variant == "original" for p in gifs)  # never a sample of an animation
    assert {api.screen(p, cfg.model_copy(update={"animated": "first_frame"}), 89_478_485) for p in gifs} == {None}


def test_real_2020_page_served_with_stand_in_files(shared_data, tmp_path):
    """The real 2020 JSON through the server: URLs moved onto it, md5s rewritten to generated files
    of the posts' own sizes (their images are not in the data)."""
    import json

    from fakes.danbooru_server import PLACEHOLDER, _picture, encode, register_file, sample_of

    page = json.loads((shared_data / "danbooru-posts" / "imgbrd_search_2020.json").read_text())[:4]
    posts = []
    for p in page:
        data = encode(_picture(p["id"], 0, p["image_width"], p["image_height"]), p["file_ext"])
        md5 = register_file(data)
        if p["has_large"]:
            register_file(sample_of(data), key=f"sample-{md5}")
        text = json.dumps(p).replace(p["md5"], md5).replace("https://danbooru.donmai.us", PLACEHOLDER)
        posts.append({**json.loads(text), "file_size": len(data)})
    with DanbooruServer(posts) as server:
        result = scrape(sparams(server, "scrape.danbooru.variant=sample", "scrape.danbooru.ratings=[s]"), tmp_path / "raw")
    assert result.new == 4 and result.stats["kept_sample"] == sum(p["has_large"] for p in page)


def test_sparse_posts_with_keys_missing_are_read_not_crashed_on(tmp_path):
    """Forks and older APIs (safebooru-style) leave keys out or null: sizes, tags, media_asset."""
    posts = make_posts(3)
    sparse = {k: posts[0][k] for k in ("id", "md5", "file_url", "file_ext", "rating")}
    posts[0] = {**sparse, "media_asset": None, "tag_string": None, "large_file_url": None}
    with DanbooruServer(posts) as server:
        result = scrape(sparams(server, "scrape.danbooru.variant=sample"), tmp_path / "raw")
    m = pd.read_parquet(tmp_path / "raw" / MANIFEST).set_index("id")
    assert result.new == 3 and m.loc["3", "width"] == 64 and m.loc["3", "tags_general"] == ""


def test_a_redirect_loop_is_a_refused_file_not_a_hang(tmp_path):
    posts = make_posts(2)
    m0 = posts[0]["md5"]
    loop = posts[0]["file_url"]  # redirects to itself
    with DanbooruServer(posts, file_faults={m0: [("redirect", loop)] * 10}) as server:
        result = scrape(sparams(server), tmp_path / "raw")
        hops = server.file_requests.count(server.file_url(posts[0]).split(server.url)[1])
    assert dict(result.skipped) == {"file_unavailable": 1} and result.new == 1 and hops == 6  # the request + 5 hops
