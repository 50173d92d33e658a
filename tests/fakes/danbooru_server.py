"""A Danbooru-compatible HTTP server on 127.0.0.1 for tests and benchmarks.

It answers ``GET /posts.json`` the way danbooru.donmai.us does, as the site's code says
(danbooru/danbooru: ``app/logical/post_sets/post.rb`` clamps ``limit`` to MAX_PER_PAGE 200;
``pagination_extension.rb`` pages ``b<id>``/``a<id>`` without a cap and numbered pages up to 1000,
then "You cannot go beyond page 1000." as HTTP 410; ``post_query.rb`` counts every tag and metatag
outside UNLIMITED_METATAGS toward the 2-tag limit, HTTP 422 beyond; ``application_controller.rb``
answers errors as ``{"success": false, "error": <class>, "message": ...}``, a database timeout as 500
"The database timed out running your query."), filters ``id:``, ``rating:`` and ``status:deleted``,
and serves the posts' files: originals, 850 px samples of wider pictures (``media_asset.rb``), and
the 2020 layout ``/data/<md5>.<ext>``. ``page_cap`` makes it a mirror that caps pages lower.
Faults are injected per request so every failure path of the scraper can be driven for real:
429/5xx answers, Cloudflare's 52x origin-error pages, connection resets, truncated bodies, wrong
bytes (md5 mismatch), a Cloudflare challenge page, redirects, slow transfers.

    posts = make_posts(30)
    with DanbooruServer(posts, latency=0.01) as server:
        run scrape with -S scrape.danbooru.base_url=<server.url>
        server.requests  -> ["/posts.json?tags=...", "/original/ab/cd/<md5>.png", ...]

Post dicts name their files under the placeholder host ``http://danbooru.test``; the server
rewrites that to its own URL in every answer (``server.file_url(post)`` gives the served URL), and
``http://files.danbooru.test`` to ``http://localhost:<port>``: the same server under another host
name (a file host outside the default ``allowed_hosts``). A post whose ``file_url`` names another
host keeps it (a file on a host the scraper must refuse).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import socket
import struct
import threading
import time
from collections import defaultdict, deque
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PLACEHOLDER = "http://danbooru.test"
ALT_PLACEHOLDER = "http://files.danbooru.test"  # served as http://localhost:<port>
# UNLIMITED_METATAGS of app/logical/post_query.rb: the metatags that do not count toward the tag
# limit; every other term (has:, order:, plain tags) counts.
FREE_METATAGS = {"status", "rating", "limit", "is", "id", "date", "age", "filesize", "filetype", "parent", "child",
                 "md5", "width", "height", "duration", "mpixels", "ratio", "score", "upvote", "downvotes", "favcount",
                 "embedded", "tagcount", "pixiv_id", "pixiv"}
SAMPLE_WIDTH = 850  # media_asset.rb: a sample for still images wider than this, 850 px wide
CHALLENGE_HTML = (b"<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
                  b"<body><noscript>Enable JavaScript and cookies to continue</noscript></body></html>")


def cloudflare_origin_page(status: int) -> bytes:
    """The shape of Cloudflare's own page for an origin that did not answer (520-524)."""
    return (f"<!DOCTYPE html><html><head><title>danbooru.donmai.us | {status}: A timeout occurred</title></head>"
            f"<body><h1>Error code {status}</h1><p>Visit cloudflare.com for more information.</p>"
            f"<span>Cloudflare Ray ID: 8a1b2c3d4e5f6789</span></body></html>").encode()

# md5 -> file bytes of every post made here: posts are plain JSON-able dicts, their files live here.
_FILES: dict[str, bytes] = {}
_FILES_LOCK = threading.Lock()

_GENERAL = ["1girl", "solo", "long_hair", "short_hair", "smile", "blush", "open_mouth", "looking_at_viewer",
            "blue_eyes", "red_eyes", "blonde_hair", "black_hair", "hat", "ribbon", "glasses", "school_uniform"]
_CHARACTERS = ["hakurei_reimu", "kirisame_marisa", "hatsune_miku", "saber_(fate)", "original"]
_COPYRIGHTS = {"hakurei_reimu": "touhou", "kirisame_marisa": "touhou", "hatsune_miku": "vocaloid",
               "saber_(fate)": "fate/stay_night", "original": "original"}
_ARTISTS = ["artist_a", "artist_b", "artist_c"]
_META = ["highres", "commentary_request", "absurdres", "translated"]

# -S overrides that point the danbooru source at this server quickly (add scrape.danbooru.base_url)
FAST = ["scrape.source=danbooru", "scrape.danbooru.tags=", "scrape.danbooru.min_width=0", "scrape.danbooru.min_height=0",
        "scrape.danbooru.rate=10", "scrape.danbooru.files_rate=50", "scrape.danbooru.retry_backoff=0.01", "scrape.danbooru.timeout=5",
        "scrape.danbooru.mode=incremental", "scrape.danbooru.limit=100", "train.enabled=[dcgan]"]


def register_file(data: bytes, key: str | None = None) -> str:
    """Make bytes servable by any DanbooruServer under their md5 (or ``key``: ``sample-<md5>``)."""
    md5 = hashlib.md5(data).hexdigest()
    with _FILES_LOCK:
        _FILES[key or md5] = data
    return key or md5


def file_bytes(md5: str) -> bytes | None:
    with _FILES_LOCK:
        return _FILES.get(md5)


def _picture(post_id: int, seed: int, width: int, height: int, noise: float = 0.0):
    import numpy as np

    rng = np.random.default_rng([seed, post_id])
    base = rng.integers(0, 256, 3)
    arr = np.empty((height, width, 3), np.uint8)
    arr[:] = base
    # a few random blocks so every post is a different picture
    for _ in range(4):
        x0, y0 = rng.integers(0, width // 2), rng.integers(0, height // 2)
        arr[y0:y0 + height // 3, x0:x0 + width // 3] = rng.integers(0, 256, 3)
    if noise:  # grain, so that files weigh what real illustrations of that size weigh
        arr = np.clip(arr + rng.normal(0, noise, arr.shape), 0, 255).astype(np.uint8)
    return arr


def encode(arr, ext: str, **kw) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    fmt = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP", "avif": "AVIF", "gif": "GIF"}[ext]
    Image.fromarray(arr).save(buf, format=fmt, **({"quality": 90} if ext in ("jpg", "webp", "avif") else {}), **kw)
    return buf.getvalue()


def _png(post_id: int, seed: int, width: int, height: int) -> bytes:
    return encode(_picture(post_id, seed, width, height), "png")


def sample_of(data: bytes) -> bytes:
    """The 850 px sample the site makes of a wider picture: a JPEG, 850 x (the aspect) px."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        w, h = im.size
        small = im.convert("RGB").resize((SAMPLE_WIDTH, max(1, round(h * SAMPLE_WIDTH / w))), Image.LANCZOS)
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def _file_urls(md5: str, ext: str, sample: bool = False) -> dict[str, str]:
    path = f"{md5[:2]}/{md5[2:4]}/{md5}"
    large = f"{PLACEHOLDER}/sample/{md5[:2]}/{md5[2:4]}/sample-{md5}.jpg" if sample else f"{PLACEHOLDER}/original/{path}.{ext}"
    return {"file_url": f"{PLACEHOLDER}/original/{path}.{ext}", "large_file_url": large,
            "preview_file_url": f"{PLACEHOLDER}/preview/180x180/{path}.jpg"}


def make_posts(n: int, *, start_id: int = 1, seed: int = 0, size: int = 64, ext: str = "png", noise: float = 0.0,
               height: int | None = None) -> list[dict]:
    """Realistic Danbooru post dicts (ids start_id..start_id+n-1) whose files the server serves.
    All rated ``g``, tagged ``1girl solo`` (params.yaml's default search), not deleted, ``ext``
    (png), ``size`` px wide and ``height`` (default ``size`` + 0, 8 or 16) high; wider than 850 px,
    they have a sample as the site makes them (``large_file_url``, ``media_asset.variants``). Make
    restricted/deleted/video/duplicate/2020-era posts from them with the helpers below. Newest
    (highest id) first, as the API lists them."""
    import random

    posts = []
    for post_id in range(start_id, start_id + n):
        rnd = random.Random(f"{seed}:{post_id}")
        width, h = size, (height if height is not None else size + 8 * (post_id % 3))
        data = encode(_picture(post_id, seed, width, h, noise), ext)
        md5 = register_file(data)
        post = _post(post_id, rnd, md5, data, ext, width, h)
        posts.append(post)
    return posts[::-1]


def _post(post_id: int, rnd, md5: str, data: bytes, ext: str, width: int, height: int) -> dict:
    character = rnd.choice(_CHARACTERS)
    general = sorted(["1girl", "solo", *rnd.sample(_GENERAL[2:], 4)])  # the default search matches all
    artist, meta = rnd.choice(_ARTISTS), sorted(rnd.sample(_META, 1))
    created = datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=-5))) + timedelta(minutes=post_id)
    tags = sorted({*general, character, _COPYRIGHTS[character], artist, *meta})
    score = rnd.randint(0, 60)
    has_large = width > SAMPLE_WIDTH
    if has_large:
        register_file(sample_of(data), key=f"sample-{md5}")
    urls = _file_urls(md5, ext, sample=has_large)
    variants = [{"type": "original", "url": urls["file_url"], "width": width, "height": height, "file_ext": ext}]
    if has_large:
        variants.insert(0, {"type": "sample", "url": urls["large_file_url"], "width": SAMPLE_WIDTH,
                            "height": max(1, round(height * SAMPLE_WIDTH / width)), "file_ext": "jpg"})
    post = {
        "id": post_id, "created_at": created.isoformat(timespec="milliseconds"), "uploader_id": 1000 + post_id % 7,
        "score": score, "source": f"https://www.pixiv.net/artworks/{9000000 + post_id}",
        "md5": md5, "last_comment_bumped_at": None, "rating": "g",
        "image_width": width, "image_height": height, "tag_string": " ".join(tags),
        "fav_count": score + rnd.randint(0, 20), "file_ext": ext, "last_noted_at": None, "parent_id": None,
        "has_children": False, "approver_id": None, "tag_count_general": len(general),
        "tag_count_artist": 1, "tag_count_character": 1, "tag_count_copyright": 1,
        "file_size": len(data), "up_score": score, "down_score": 0, "is_pending": False,
        "is_flagged": False, "is_deleted": False, "tag_count": len(tags), "updated_at": created.isoformat(timespec="milliseconds"),
        "is_banned": False, "pixiv_id": 9000000 + post_id, "last_commented_at": None,
        "has_active_children": False, "bit_flags": 0, "tag_count_meta": len(meta),
        "has_large": has_large, "has_visible_children": False,
        "media_asset": {"id": 500000 + post_id, "created_at": created.isoformat(timespec="milliseconds"),
                        "updated_at": created.isoformat(timespec="milliseconds"), "md5": md5, "file_ext": ext,
                        "file_size": len(data), "image_width": width, "image_height": height, "duration": None,
                        "status": "active", "file_key": f"key{post_id:06d}", "is_public": True, "pixel_hash": md5[::-1],
                        "variants": variants},
        "tag_string_general": " ".join(general), "tag_string_character": character,
        "tag_string_copyright": _COPYRIGHTS[character], "tag_string_artist": artist,
        "tag_string_meta": " ".join(meta),
        **urls,
    }
    return post


def restricted(post: dict) -> dict:
    """The post as a caller who may not see it gets it (banned, gold-only): no md5, no file URLs."""
    p = copy.deepcopy(post)
    for k in ("md5", "file_url", "large_file_url", "preview_file_url"):
        p.pop(k, None)
    for k in ("md5", "file_key", "variants"):
        (p.get("media_asset") or {}).pop(k, None)
    return p


def deleted(post: dict) -> dict:
    p = copy.deepcopy(post)
    p["is_deleted"] = True
    return p


def as_video(post: dict) -> dict:
    """The post as an mp4 (its served bytes are not an image)."""
    p = copy.deepcopy(post)
    data = b"\x00\x00\x00\x18ftypmp42" + struct.pack(">I", p["id"]) * 64
    md5 = register_file(data)
    p.update(md5=md5, file_ext="mp4", file_size=len(data), **_file_urls(md5, "mp4"))
    p["media_asset"].update(md5=md5, file_ext="mp4", duration=3.2)
    return p


def with_id(post: dict, post_id: int) -> dict:
    """Another post with the same file (a re-upload: a duplicate md5)."""
    p = copy.deepcopy(post)
    p["id"] = post_id
    return p


def with_changes(post: dict, **fields) -> dict:
    p = copy.deepcopy(post)
    p.update(fields)
    return p


def banned(post: dict) -> dict:
    """A banned post as an anonymous caller sees it: ``is_banned`` and, hidden, no md5 or URLs."""
    return with_changes(restricted(post), is_banned=True)


def as_2020(post: dict) -> dict:
    """The post as the API gave it in 2020: no ``media_asset``, files under ``/data/<md5>.<ext>``
    and samples under ``/data/sample/sample-<md5>.jpg`` (the real page in danbooru-posts shows it)."""
    p = copy.deepcopy(post)
    p.pop("media_asset", None)
    md5, ext = p["md5"], p["file_ext"]
    p["file_url"] = f"{PLACEHOLDER}/data/{md5}.{ext}"
    p["large_file_url"] = f"{PLACEHOLDER}/data/sample/sample-{md5}.jpg" if p.get("has_large") else p["file_url"]
    p["preview_file_url"] = f"{PLACEHOLDER}/data/preview/{md5}.jpg"
    return p


def relative_urls(post: dict) -> dict:
    """A fork that names files by path only (``/original/...``): relative to the API host."""
    text = json.dumps(post).replace(PLACEHOLDER, "")
    return json.loads(text)


def on_file_host(post: dict) -> dict:
    """The post's files on another host name (``localhost``), outside the default allowed_hosts."""
    return json.loads(json.dumps(post).replace(f'{PLACEHOLDER}/original', f'{ALT_PLACEHOLDER}/original')
                      .replace(f'{PLACEHOLDER}/sample', f'{ALT_PLACEHOLDER}/sample'))


def animated(post: dict, *, tagged: bool = True, frames: int = 3) -> dict:
    """The post as an animated GIF of ``frames`` frames; ``tagged`` adds animated_gif as the site does."""
    import numpy as np
    from PIL import Image

    p = copy.deepcopy(post)
    w, h = p["image_width"], p["image_height"]
    rng = np.random.default_rng(p["id"])
    ims = [Image.fromarray(np.full((h, w, 3), rng.integers(0, 256, 3), np.uint8)) for _ in range(frames)]
    buf = io.BytesIO()
    ims[0].save(buf, format="GIF", save_all=True, append_images=ims[1:], duration=100, loop=0)
    data = buf.getvalue()
    md5 = register_file(data)
    tags = p["tag_string"].split() + (["animated", "animated_gif"] if tagged else [])
    p.update(md5=md5, file_ext="gif", file_size=len(data), tag_string=" ".join(sorted(set(tags))), has_large=False,
             **_file_urls(md5, "gif"))
    p["media_asset"].update(md5=md5, file_ext="gif", file_size=len(data),
                            variants=[{"type": "original", "url": p["file_url"], "width": w, "height": h, "file_ext": "gif"}])
    return p


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        try:
            self._get()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (a killed scraper): nothing to answer

    def _get(self) -> None:
        owner = self.server.owner
        owner._log(self.path)
        with owner._lock:
            owner.user_agents.add(self.headers.get("User-Agent", ""))
        if owner.latency:
            time.sleep(owner.latency)
        parts = urlsplit(self.path)
        if parts.path == "/posts.json":
            fault = owner._next_fault("api")
            if fault is None or not self._fault(fault, b"[]", "application/json"):
                self._posts(parts.query)
        elif parts.path.startswith(("/original/", "/data/", "/sample/")):
            key = parts.path.rsplit("/", 1)[-1].split(".", 1)[0]  # <md5> or sample-<md5>
            data = file_bytes(key)
            if data is None:
                return self._json(404, {"success": False, "error": "ActiveRecord::RecordNotFound", "message": "That record was not found."})
            fault = owner._next_fault(key)
            if fault is None or not self._fault(fault, data, "image/png"):
                self._send(200, data, "image/png", rate=owner.file_bytes_per_s)
        else:
            self._json(404, {"success": False, "error": "ActiveRecord::RecordNotFound", "message": "That record was not found."})

    # -- answers ---------------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, ctype: str, headers: dict | None = None, *, rate: float | None = None,
              length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        owner = self.server.owner
        if not rate:
            self.wfile.write(body)
        else:
            chunk = max(1, int(rate / 20))
            with owner._lock:
                owner.active_transfers += 1
            try:
                for i in range(0, len(body), chunk):
                    self.wfile.write(body[i:i + chunk])
                    self.wfile.flush()
                    owner.file_progress.set()
                    time.sleep(chunk / rate)
            finally:
                with owner._lock:
                    owner.active_transfers -= 1
        if status == 200 and length is None:
            with owner._lock:
                owner.completed.append(self.path)

    def _json(self, status: int, obj, headers: dict | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json; charset=utf-8", headers)

    def _fault(self, fault, body: bytes, ctype: str) -> bool:
        """Answer with a fault; False when the fault only delays and the normal answer follows."""
        if isinstance(fault, int) and 520 <= fault <= 524:  # Cloudflare's page: HTML, no cf-mitigated
            self._send(fault, cloudflare_origin_page(fault), "text/html; charset=UTF-8", {"Server": "cloudflare"})
        elif isinstance(fault, int):
            # the error and message application_controller.rb gives for each
            errors = {429: ("RateLimiter::RateLimitError", "You're doing that too fast. Wait a minute and try again."),
                      500: ("ActiveRecord::QueryCanceled", "The database timed out running your query."),
                      502: ("Error", "Bad Gateway"), 504: ("Error", "Gateway Timeout"),
                      503: ("PG::ConnectionBad", "The database is unavailable. Try again later."),
                      404: ("ActiveRecord::RecordNotFound", "That record was not found."),
                      403: ("User::PrivilegeError", "Access denied"), 401: ("SessionLoader::AuthenticationFailure",
                                                                            "AuthenticationFailure"),
                      410: ("Error", "Gone")}
            error, message = errors.get(fault, ("Error", "error"))
            self._json(fault, {"success": False, "error": error, "message": message})
        elif isinstance(fault, tuple) and fault[0] == "redirect":  # 302 to fault[1] (placeholders rewritten)
            self._send(302, b"", "text/html", {"Location": self.server.owner._rewrite(fault[1])})
        elif fault == "reset":  # abortive close: the client sees "connection reset by peer"
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
        elif fault == "truncate":  # promise the whole body, send half, hang up
            self._send(200, body[: len(body) // 2], ctype, length=len(body))
            self.close_connection = True
        elif fault == "corrupt":  # a complete answer with different bytes: md5 mismatch
            bad = bytearray(body)
            bad[len(bad) // 2] ^= 0xFF
            self._send(200, bytes(bad), ctype)
        elif fault in ("challenge", "challenge503"):
            self._send(403 if fault == "challenge" else 503, CHALLENGE_HTML, "text/html; charset=UTF-8",
                       {"cf-mitigated": "challenge", "Server": "cloudflare"})
        elif fault == "html":  # an HTML page without the header (a proxy's error page)
            self._send(200, CHALLENGE_HTML, "text/html; charset=UTF-8")
        elif isinstance(fault, tuple) and fault[0] == "delay":
            time.sleep(fault[1])
            return False
        else:
            raise ValueError(f"unknown fault {fault!r}")
        return True

    def _auth(self) -> tuple[bool, str | None]:
        """(ok, login): anonymous is fine; wrong credentials are not."""
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return True, None
        login, _, key = base64.b64decode(header[6:]).decode().partition(":")
        owner = self.server.owner
        return (owner.credentials is not None and (login, key) == owner.credentials), login

    def _posts(self, query: str) -> None:
        owner = self.server.owner
        ok, login = self._auth()
        if not ok:
            return self._json(401, {"success": False, "error": "SessionLoader::AuthenticationFailure",
                                    "message": "AuthenticationFailure"})
        q = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        tags = q.get("tags", "").split()
        counted = [t for t in tags if t.lstrip("-").split(":", 1)[0].lower() not in FREE_METATAGS or ":" not in t]
        limit_tags = owner.member_tag_limit if login else owner.tag_limit
        if len(counted) > limit_tags:
            return self._json(422, {"success": False, "error": "PostQuery::TagLimitError",
                                    "message": f"You cannot search for more than {limit_tags} tags at a time."})
        try:
            limit = min(200, owner.page_cap or 200, max(1, int(q.get("limit") or 20)))
        except ValueError:
            limit = 20
        page = q.get("page", "1") or "1"
        with owner._lock:
            posts = [p for p in owner._posts.values() if _matches(p, tags)]
        posts.sort(key=lambda p: -p["id"])
        if page[0] in "ab" and page[1:].isdigit():
            cursor = int(page[1:])
            if page[0] == "b":
                chosen = [p for p in posts if p["id"] < cursor][:limit]
            else:
                chosen = sorted((p for p in posts if p["id"] > cursor), key=lambda p: p["id"])[:limit][::-1]
        elif page.isdigit():
            n = int(page)
            if n > 1000:
                return self._json(410, {"success": False, "error": "PaginationExtension::PaginationError",
                                        "message": "You cannot go beyond page 1000."})
            chosen = posts[(n - 1) * limit: n * limit]
        else:
            return self._json(422, {"success": False, "error": "PaginationExtension::PaginationError",
                                    "message": f"Invalid page {page!r}"})
        self._json(200, [owner._public(restricted(p) if p["id"] in owner.members_only and not login else p)
                         for p in chosen])


def _matches(post: dict, tags: list[str]) -> bool:
    have = set((post.get("tag_string") or "").split())
    for tag in tags:
        neg = tag.startswith("-")
        name = tag.lstrip("-")
        if name.startswith("rating:"):
            ok = post.get("rating") in name[7:].split(",")
        elif name.startswith("id:"):
            ok = str(post["id"]) in name[3:].split(",")
        elif name.startswith("status:"):
            value = name[7:].lower()
            ok = {"deleted": bool(post.get("is_deleted")), "banned": bool(post.get("is_banned")), "any": True,
                  "active": not post.get("is_deleted") and not post.get("is_pending")}.get(value, True)
        elif ":" in name and name.split(":", 1)[0] in FREE_METATAGS:
            ok = True  # other metatags are not modelled: they match everything
        else:
            ok = name in have
        if ok == neg:
            return False
    return True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: DanbooruServer


class DanbooruServer:
    """A real ThreadingHTTPServer on 127.0.0.1 (ephemeral port) in a thread; a context manager.

    Faults (keyword arguments, all optional):
      api_faults:   list, one entry per successive /posts.json request: None (answer normally), an
                    HTTP status (429, 500, 502, 503, 504, 403, 404), "reset", "truncate", "corrupt",
                    "challenge" (403 + cf-mitigated), "challenge503", "html", ("delay", seconds).
      file_faults:  {md5: [fault, ...]} the same, per successive request of that file.
      file_bytes_per_s: stream every file at this rate (for killing a run mid-file).
      credentials:  (login, api_key) accepted by HTTP Basic; wrong credentials get 401.
      tag_limit:    non-free tags an anonymous search may use (default 2; 422 beyond).
      member_tag_limit: the same for a logged-in caller (default 6, Gold).
      page_cap:     posts per page at most (a mirror that caps below Danbooru's 200).
      members_only: ids an anonymous caller sees restricted (no md5, no file URLs); logged in, whole.
    File faults also take 401/403/404/410 and ("redirect", url); api faults 520-524 (Cloudflare's
    HTML page for an origin that did not answer).
    More faults can be queued while it runs: ``fault_api(...)``, ``fault_file(md5, ...)``.
    """

    _KNOWN = {"api_faults", "file_faults", "file_bytes_per_s", "credentials", "tag_limit", "member_tag_limit", "page_cap",
              "members_only"}

    def __init__(self, posts: list[dict] | None = None, *, latency: float = 0.0, **faults):
        unknown = set(faults) - self._KNOWN
        if unknown:
            raise TypeError(f"unknown DanbooruServer fault(s) {sorted(unknown)}; known: {sorted(self._KNOWN)}")
        self.latency = latency
        self.file_bytes_per_s: float | None = faults.get("file_bytes_per_s")
        self.credentials: tuple[str, str] | None = tuple(faults["credentials"]) if faults.get("credentials") else None
        self.tag_limit: int = faults.get("tag_limit", 2)
        self.member_tag_limit: int = faults.get("member_tag_limit", 6)
        self.page_cap: int | None = faults.get("page_cap")
        self.members_only: set[int] = set(faults.get("members_only") or [])
        self.user_agents: set[str] = set()
        self.requests: list[str] = []
        self.request_times: list[tuple[float, str]] = []  # (time.monotonic(), path), for rate checks
        self.file_progress = threading.Event()  # set once a throttled file transfer has sent bytes
        self.active_transfers = 0               # throttled transfers under way
        self.completed: list[str] = []          # paths whose whole 200 answer was sent
        self._lock = threading.Lock()
        self._posts: dict[int, dict] = {}
        self._faults: dict[str, deque] = defaultdict(deque)
        self._faults["api"].extend(faults.get("api_faults") or [])
        for md5, items in (faults.get("file_faults") or {}).items():
            self._faults[md5].extend(items)
        self.add_posts(posts or [])
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- state -----------------------------------------------------------------------------------

    def add_posts(self, posts: list[dict]) -> None:
        """Newer posts appear (for incremental runs); a post with a known id replaces it."""
        with self._lock:
            for p in posts:
                self._posts[int(p["id"])] = copy.deepcopy(p)

    def fault_api(self, *items) -> None:
        with self._lock:
            self._faults["api"].extend(items)

    def fault_file(self, md5: str, *items) -> None:
        with self._lock:
            self._faults[md5].extend(items)

    def file_url(self, post: dict) -> str:
        return self._rewrite(post["file_url"])

    @property
    def api_requests(self) -> list[str]:
        return [r for r in self.requests if r.startswith("/posts.json")]

    @property
    def file_requests(self) -> list[str]:
        return [r for r in self.requests if not r.startswith("/posts.json")]

    def _log(self, path: str) -> None:
        with self._lock:
            self.requests.append(path)
            self.request_times.append((time.monotonic(), path))

    def _next_fault(self, key: str):
        with self._lock:
            queue = self._faults.get(key)
            return queue.popleft() if queue else None

    def _rewrite(self, text: str) -> str:
        return text.replace(ALT_PLACEHOLDER, self.url.replace("127.0.0.1", "localhost")).replace(PLACEHOLDER, self.url)

    def _public(self, post: dict) -> dict:
        return json.loads(self._rewrite(json.dumps(post)))

    def file_times(self) -> list[float]:
        """When each file request arrived (retries and redirect hops included)."""
        with self._lock:
            return [t for t, p in self.request_times if not p.startswith("/posts.json")]

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> DanbooruServer:
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="danbooru-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> DanbooruServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":  # serve a few hundred posts for manual tries: python tests/fakes/danbooru_server.py
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    with DanbooruServer(make_posts(n)) as s:
        print(f"serving {n} posts at {s.url}  (scrape -S scrape.danbooru.base_url={s.url})", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
