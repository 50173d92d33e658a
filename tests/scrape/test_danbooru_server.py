"""The test server itself behaves like Danbooru where the scraper depends on it."""

import hashlib

import pytest
import requests

from fakes.danbooru_server import DanbooruServer, make_posts, restricted


def test_cursor_paging_and_files():
    posts = make_posts(7, start_id=10)
    assert [p["id"] for p in posts] == list(range(16, 9, -1))
    with DanbooruServer(posts) as server:
        first = requests.get(f"{server.url}/posts.json", params={"limit": 3}, timeout=5).json()
        assert [p["id"] for p in first] == [16, 15, 14]
        older = requests.get(f"{server.url}/posts.json", params={"limit": 3, "page": "b14"}, timeout=5).json()
        assert [p["id"] for p in older] == [13, 12, 11]
        newer = requests.get(f"{server.url}/posts.json", params={"limit": 2, "page": "a11"}, timeout=5).json()
        assert [p["id"] for p in newer] == [13, 12]  # the posts just above the cursor, newest first
        data = requests.get(first[0]["file_url"], timeout=5).content
        assert first[0]["file_url"].startswith(server.url)
        assert hashlib.md5(data).hexdigest() == first[0]["md5"] and len(data) == first[0]["file_size"]
        server.add_posts(make_posts(1, start_id=17))
        assert requests.get(f"{server.url}/posts.json", params={"page": "a16"}, timeout=5).json()[0]["id"] == 17
        assert server.requests[0].startswith("/posts.json?limit=3")


def test_tag_limit_auth_and_faults():
    posts = make_posts(2)
    with DanbooruServer(posts + [restricted(make_posts(1, start_id=3)[0])], credentials=("me", "key"),
                        api_faults=[429, "challenge"]) as server:
        url = f"{server.url}/posts.json"
        assert requests.get(url, timeout=5).status_code == 429
        r = requests.get(url, timeout=5)
        assert r.status_code == 403 and r.headers["cf-mitigated"] == "challenge"
        assert "md5" not in requests.get(url, timeout=5).json()[0]
        assert requests.get(url, params={"tags": "a b c rating:g"}, timeout=5).status_code == 422
        assert requests.get(url, params={"tags": "a b rating:g"}, timeout=5).status_code == 200
        assert requests.get(url, params={"tags": "a b c"}, auth=("me", "key"), timeout=5).status_code == 200
        assert requests.get(url, auth=("me", "nope"), timeout=5).status_code == 401
        server.fault_file(posts[0]["md5"], "reset")
        with pytest.raises(requests.ConnectionError):
            requests.get(posts[0]["file_url"].replace("http://danbooru.test", server.url), timeout=5)


def test_pages_errors_and_filters_as_the_site_has_them():
    """app/logical/post_sets/post.rb (MAX_PER_PAGE 200), pagination_extension.rb (410 past page
    1000), post_query.rb (UNLIMITED_METATAGS; has: counts), application_controller.rb (error JSON)."""
    from fakes.danbooru_server import deleted

    posts = make_posts(205, size=8)
    posts[0] = deleted(posts[0])
    with DanbooruServer(posts) as server:
        url = f"{server.url}/posts.json"
        assert len(requests.get(url, params={"limit": 1000}, timeout=5).json()) == 200
        r = requests.get(url, params={"page": 1001}, timeout=5)
        assert r.status_code == 410 and r.json() == {"success": False, "error": "PaginationExtension::PaginationError",
                                                     "message": "You cannot go beyond page 1000."}
        assert requests.get(url, params={"page": 1000}, timeout=5).json() == []
        r = requests.get(url, params={"tags": "1girl solo has:source"}, timeout=5)
        assert r.status_code == 422 and r.json()["message"] == "You cannot search for more than 2 tags at a time."
        free = "1girl solo favcount:>1 tagcount:<50 pixiv_id:any -status:deleted rating:g"
        page = requests.get(url, params={"tags": free, "limit": 200}, timeout=5).json()
        assert len(page) == 200 and posts[0]["id"] not in {p["id"] for p in page}  # deleted dropped server-side
        assert [p["id"] for p in requests.get(url, params={"tags": "id:3,5,7"}, timeout=5).json()] == [7, 5, 3]


def test_cloudflare_origin_pages_mirror_caps_and_members_only_posts():
    posts = make_posts(12, size=8)
    with DanbooruServer(posts, api_faults=[524, 500], page_cap=5, members_only={12}, credentials=("me", "k")) as server:
        url = f"{server.url}/posts.json"
        r = requests.get(url, timeout=5)
        assert r.status_code == 524 and r.headers["Content-Type"].startswith("text/html")
        assert "cf-mitigated" not in r.headers and b"524" in r.content
        r = requests.get(url, timeout=5)
        assert r.status_code == 500 and r.json()["message"] == "The database timed out running your query."
        anonymous = requests.get(url, params={"limit": 200}, timeout=5).json()
        assert len(anonymous) == 5 and "md5" not in anonymous[0] and "file_url" not in anonymous[0]
        assert requests.get(url, auth=("me", "k"), timeout=5).json()[0]["md5"] == posts[0]["md5"]


def test_samples_and_the_2020_file_layout_are_served():
    import io

    from PIL import Image

    from fakes.danbooru_server import as_2020

    post = make_posts(1, size=1000, height=500)[0]
    assert post["has_large"] and [v["type"] for v in post["media_asset"]["variants"]] == ["sample", "original"]
    old = as_2020(post)
    with DanbooruServer([old]) as server:
        got = requests.get(f"{server.url}/posts.json", timeout=5).json()[0]
        assert "/data/" in got["file_url"] and "/data/sample/sample-" in got["large_file_url"]
        original = requests.get(got["file_url"], timeout=5).content
        assert hashlib.md5(original).hexdigest() == post["md5"]
        with Image.open(io.BytesIO(requests.get(got["large_file_url"], timeout=5).content)) as im:
            assert im.size == (850, 425) and im.format == "JPEG"
