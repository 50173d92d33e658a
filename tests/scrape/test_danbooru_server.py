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
