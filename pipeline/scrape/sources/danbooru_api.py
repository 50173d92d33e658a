"""What the scraper knows about Danbooru's API: the search it sends, the answers that stop a run,
and which posts are worth a download. Pure functions over post dicts and responses; no I/O here."""

from __future__ import annotations

import fnmatch
import json
import os
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from pipeline.core.errors import StageError
from pipeline.scrape.params import DANBOORU_RATINGS, DanbooruSource

LOGIN_ENV, API_KEY_ENV = "DANBOORU_LOGIN", "DANBOORU_API_KEY"
ANONYMOUS_TAG_LIMIT = 2  # anonymous and basic accounts (Gold: 6); 422 beyond (app/models/user.rb tag_query_limit)
# Metatags that do not count toward the tag limit: exactly UNLIMITED_METATAGS of the site's
# app/logical/post_query.rb ("downvotes" is spelled so there). Every other metatag counts (has:, order:, ...).
FREE_METATAGS = frozenset({"status", "rating", "limit", "is", "id", "date", "age", "filesize", "filetype", "parent",
                           "child", "md5", "width", "height", "duration", "mpixels", "ratio", "score", "upvote",
                           "downvotes", "favcount", "embedded", "tagcount", "pixiv_id", "pixiv"})
TAG_CATEGORIES = ("general", "character", "copyright", "artist", "meta")
# Danbooru's per-page cap (app/logical/post_sets/post.rb MAX_PER_PAGE): on its own hosts a page
# shorter than min(page_size, this) is the last one; elsewhere (mirrors, forks) only an empty page is.
DANBOORU_PAGE_CAP = 200
DANBOORU_HOSTS = ("donmai.us",)
# Samples are 850 px wide (media_asset.rb: Variant#max_dimensions [850, nil]; danbooru_default_config.rb
# large_image_width), made for still images wider than that and for ugoira (a webm: not used here).
SAMPLE_WIDTH = 850
STILL_EXTS = ("jpg", "png", "webp", "avif", "gif")
ANIMATED_TAGS = frozenset({"animated_gif", "animated_png", "animated"})


def credentials() -> tuple[str, str] | None:
    """(login, api_key) from the environment, or None for anonymous; half a pair is an error."""
    login, key = os.environ.get(LOGIN_ENV, "").strip(), os.environ.get(API_KEY_ENV, "").strip()
    if bool(login) != bool(key):
        missing = API_KEY_ENV if login else LOGIN_ENV
        raise StageError(f"{LOGIN_ENV} and {API_KEY_ENV} go together; {missing} is not set. "
                         "Set both (your Danbooru name and the API key from your profile page) or neither.")
    return (login, key) if login else None


def counted_tags(tags: str) -> list[str]:
    """The search terms that count toward the account's tag limit."""
    out = []
    for t in tags.split():
        name, sep, _ = t.lstrip("-~").partition(":")
        if not (sep and name.lower() in FREE_METATAGS):
            out.append(t)
    return out


def check_search(cfg: DanbooruSource, logged_in: bool) -> None:
    """Refuse, before any request, a search the site would answer with 422."""
    counted = counted_tags(cfg.tags)
    if not logged_in and len(counted) > ANONYMOUS_TAG_LIMIT:
        raise StageError(f"scrape.danbooru.tags {cfg.tags!r} has {len(counted)} searched tags ({', '.join(counted)}); "
                         f"an anonymous search may use {ANONYMOUS_TAG_LIMIT} (metatags such as rating:, score:, "
                         f"width: are free). Use fewer tags, or set {LOGIN_ENV} and {API_KEY_ENV} of an account "
                         "allowed more (Gold: 6).")


def check_params(params) -> None:
    """The refusals a Danbooru run makes before anything else: half a credential pair, too many tags."""
    check_search(params.danbooru, logged_in=credentials() is not None)


def search_tags(cfg: DanbooruSource) -> str:
    """The tags sent: the user's, the rating filter and ``-status:deleted`` (free metatags), so the
    site filters for us instead of sending posts to skip one by one."""
    ratings = "" if set(cfg.ratings) == set(DANBOORU_RATINGS) else f"rating:{','.join(cfg.ratings)}"
    deleted = "-status:deleted" if cfg.exclude_deleted else ""
    return " ".join(t for t in (cfg.tags, ratings, deleted) if t)


def query_key(cfg: DanbooruSource) -> str:
    """Names one search in the journal: site, tags, ratings and the filters that are facts about a
    post (extension, size in pixels, deleted), so a changed filter walks again. Skips that depend on
    other settings carry those settings in their own record (pipeline/scrape/sources/danbooru_skips.py)."""
    tags = " ".join(sorted(cfg.tags.split()))
    return (f"{urlsplit(cfg.base_url).netloc}|{tags}|rating:{','.join(cfg.ratings)}|ext:{','.join(sorted(cfg.extensions))}"
            f"|min:{cfg.min_width}x{cfg.min_height}|deleted:{'no' if cfg.exclude_deleted else 'yes'}")


def search_key(cfg: DanbooruSource) -> str:
    """Names the search a folder belongs to: the site and the sorted tags. Ratings, extensions,
    sizes and ``exclude_deleted`` refine the same search (``query_key`` tells those walks apart)."""
    return f"{urlsplit(cfg.base_url).netloc}|{' '.join(sorted(cfg.tags.split()))}"


def search_of_query(query: str) -> str:
    """``search_key`` of a journal's ``query_key``: its first two fields (the other four are filters)."""
    return query.rsplit("|", 4)[0] if query.count("|") >= 5 else query


def page_cap(base_url: str) -> int | None:
    """The documented per-page cap of the site, None where unknown (a mirror may cap lower)."""
    host = (urlsplit(base_url).hostname or "").lower()
    return DANBOORU_PAGE_CAP if any(host == h or host.endswith("." + h) for h in DANBOORU_HOSTS) else None


def resolve(url: str, base_url: str) -> str:
    """A file URL as the client fetches it: relative ones (some forks) are on the API host."""
    return urljoin(base_url + "/", url)


def host_allowed(url: str, api_url: str, patterns: list[str]) -> bool:
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        return False
    api = urlsplit(api_url)
    if u.hostname == api.hostname:  # the API host itself, any port or scheme (http -> https redirects)
        return True
    return any(fnmatch.fnmatchcase(u.hostname, p.lower()) or (p.startswith("*.") and u.hostname == p[2:].lower())
               for p in patterns)


def file_ext(post: dict) -> str:
    ext = str(post.get("file_ext") or "").lower()
    return "jpg" if ext == "jpeg" else ext


def _url_ext(url: str) -> str:
    ext = urlsplit(url).path.rsplit(".", 1)[-1].lower() if "." in urlsplit(url).path.rsplit("/", 1)[-1] else ""
    return "jpg" if ext == "jpeg" else ext


def is_animated(post: dict) -> bool:
    """What the JSON says: Danbooru tags animated files (animated_gif, animated_png, animated)."""
    return bool(ANIMATED_TAGS & set(str(post.get("tag_string") or "").split()))


@dataclass(frozen=True)
class FileChoice:
    """The one file of a post that is fetched, and what it must turn out to be."""

    url: str
    variant: str          # original | sample
    ext: str
    width: int            # expected pixels (a sample: 850 x the original's aspect)
    height: int
    md5: str | None       # the original's md5; samples have none in the JSON
    size: int | None      # bytes, known for the original only


def _sample(post: dict) -> tuple[str, int, int, str] | None:
    """(url, width, height, ext) of the post's still 850 px sample, if it has one."""
    w, h = int(post.get("image_width") or 0), int(post.get("image_height") or 0)
    for v in (post.get("media_asset") or {}).get("variants") or []:  # 2022+ JSON
        if isinstance(v, dict) and v.get("type") == "sample" and v.get("url"):
            ext = str(v.get("file_ext") or _url_ext(v["url"])).lower()
            if ext in STILL_EXTS:
                return v["url"], int(v.get("width") or 0), int(v.get("height") or 0), ext
            return None  # ugoira: its sample is a webm
    large, orig = post.get("large_file_url"), post.get("file_url")
    if large and large != orig and w > SAMPLE_WIDTH and _url_ext(large) in STILL_EXTS:  # older JSON: no variants
        return large, SAMPLE_WIDTH, max(1, round(h * SAMPLE_WIDTH / w)), _url_ext(large)
    return None


def choose_file(post: dict, cfg: DanbooruSource) -> FileChoice:
    """The sample where asked for and present (never for animated posts), else the original."""
    if cfg.variant == "sample" and not is_animated(post):
        s = _sample(post)
        if s is not None:
            url, w, h, ext = s
            return FileChoice(resolve(url, cfg.base_url), "sample", ext, w, h, None, None)
    size = post.get("file_size")
    return FileChoice(resolve(post["file_url"], cfg.base_url), "original", file_ext(post), int(post.get("image_width") or 0),
                      int(post.get("image_height") or 0), str(post["md5"]).lower(), int(size) if size else None)


def avif_decodable() -> bool:
    from PIL import features

    return bool(features.check("avif"))


def screen(post: dict, cfg: DanbooruSource, max_pixels: int) -> str | None:
    """Why a post is skipped before its file is fetched, or None if it is a candidate. Everything
    here is read from the JSON, so no byte is downloaded for a post that cannot be kept."""
    if post.get("is_banned"):
        return "banned"  # hidden from most callers too; a takedown, not a level
    if not post.get("md5") or not post.get("file_url"):
        return "restricted"  # post_policy.rb: md5 and file URLs are left out for a caller who may not see it
    if cfg.exclude_deleted and post.get("is_deleted"):
        return "deleted"
    if post.get("rating") not in cfg.ratings:
        return "rating"
    ext = file_ext(post)
    if ext not in cfg.extensions:
        return "extension"
    if cfg.animated == "skip" and is_animated(post):
        return "animated"
    if ext == "avif" and not avif_decodable():
        return "avif_unsupported"
    if int(post.get("image_width") or 0) < cfg.min_width or int(post.get("image_height") or 0) < cfg.min_height:
        return "too_small"
    md5 = str(post["md5"]).lower()
    if len(md5) != 32 or any(c not in "0123456789abcdef" for c in md5):
        return "bad_md5"
    choice = choose_file(post, cfg)
    if not host_allowed(choice.url, cfg.base_url, cfg.allowed_hosts):
        return "host_not_allowed"
    if choice.size is not None and choice.size > cfg.max_file_bytes:
        return "too_large"
    if choice.width * choice.height > max_pixels:
        return "too_many_pixels"
    return None


def post_columns(post: dict, base_url: str) -> dict:
    """The manifest's Danbooru columns of a post."""
    return {"id": str(post["id"]), "origin": f"{base_url}/posts/{post['id']}", "rating": post.get("rating"),
            "score": int(post.get("score") or 0),
            **{f"tags_{c}": post.get(f"tag_string_{c}", "") or "" for c in TAG_CATEGORIES}}


# -- answers ---------------------------------------------------------------------------------------

def is_challenge(response) -> bool:
    """Cloudflare's bot check: the cf-mitigated header, or an HTML page where an error JSON belongs.
    (52x origin errors are HTML pages too, without the header: passing, retried.)"""
    if response.headers.get("cf-mitigated", "").lower() == "challenge":
        return True
    html = "text/html" in response.headers.get("Content-Type", "").lower()
    return html and response.status_code in (403, 429, 503)


def error_message(response) -> str:
    """The server's own words: ``message`` of Danbooru's error JSON
    ({"success": false, "error": <exception class>, "message": ...}), else the body's start."""
    try:
        body = json.loads(response.content[:65536])
        if isinstance(body, dict):
            return str(body.get("message") or body.get("error") or body)[:300]
    except Exception:  # noqa: BLE001 - any unreadable body: show its start
        pass
    return response.content[:200].decode("utf-8", "replace").strip() or response.reason or ""


def retry_reason(response) -> str:
    """How a passing answer is logged and, after the last try, reported: with the server's message."""
    status = response.status_code
    if status in (520, 521, 522, 523, 524):
        return f"HTTP {status} (Cloudflare: the site's server did not answer)"
    msg = error_message(response) if "json" in response.headers.get("Content-Type", "").lower() else ""
    return f"HTTP {status}: {msg}" if msg else f"HTTP {status}"


def challenge_error(response, saved: int) -> StageError:
    host = urlsplit(response.url).netloc
    how = "cf-mitigated: challenge" if response.headers.get("cf-mitigated") else "an HTML page"
    return StageError(
        f"{host} answered HTTP {response.status_code} with a Cloudflare challenge ({how}) instead of data: the site "
        f"takes this client for a bot. Stopped at once rather than retry into a ban. Nothing is lost ({saved} posts "
        "are saved). Wait a few hours, lower scrape.danbooru.rate and scrape.danbooru.files_rate, check "
        "scrape.danbooru.user_agent, then run the scrape stage again: it resumes where it stopped.")


def gave_up_error(cfg: DanbooruSource, tries: int, reason: str) -> StageError:
    """Every try of a search failed: say what the site said, and what that means."""
    site = cfg.base_url
    if reason.startswith("HTTP 500"):
        hint = ("The site's database could not answer this search in time: a search of very common tags, or "
                "metatags such as score:/favcount: over many posts, can time out. Narrow scrape.danbooru.tags, or run "
                "again later.")
    elif reason.startswith(("HTTP 429",)):
        hint = "The site is rate limiting this client: lower scrape.danbooru.rate, wait a while, run again."
    else:
        hint = "The site may be down or this machine offline (`make demo` runs without a network)."
    return StageError(f"{site} could not be searched: {tries} tries failed ({reason}). {hint} Nothing is lost: run the "
                      "scrape stage again to resume.")


def api_error(response, cfg: DanbooruSource, logged_in: bool) -> StageError:
    """The run-stopping answer to a search, as a message quoting the site and saying what to fix."""
    status, msg, site = response.status_code, error_message(response), cfg.base_url
    if status == 401:
        return StageError(f"{site} rejected the credentials (HTTP 401: {msg}); check {LOGIN_ENV} and {API_KEY_ENV} "
                          "(the API key is on your Danbooru profile page), or unset both to search anonymously.")
    if status == 422:
        level = "your account" if logged_in else "an anonymous search (2 tags; Gold accounts 6)"
        return StageError(f"{site} refused the search {search_tags(cfg)!r} (HTTP 422: {msg}). Too many tags for {level}? "
                          "Use fewer tags in scrape.danbooru.tags (free metatags such as rating:, score:, width:, "
                          "favcount: do not count; has: and order: do).")
    if status == 403:
        if logged_in:
            return StageError(f"{site} denied the search (HTTP 403: {msg}). With credentials this usually means the API "
                              f"key may not read posts (its permissions) or is limited to other IP addresses: check the "
                              f"key on your Danbooru profile page (API keys), or unset {LOGIN_ENV}/{API_KEY_ENV}.")
        return StageError(f"{site} denied the search (HTTP 403: {msg}). Some searches need an account: change "
                          f"scrape.danbooru.tags or set {LOGIN_ENV}/{API_KEY_ENV}.")
    if status == 404:
        return StageError(f"{site}/posts.json answered 404 ({msg}): is scrape.danbooru.base_url a Danbooru-compatible site?")
    if status == 410:
        return StageError(f"{site} refused the page (HTTP 410: {msg}); numbered pages end at 1000 (Gold 5000). This "
                          "scraper walks cursor pages (b<id>/a<id>), which have no cap: is this a Danbooru-compatible site?")
    return StageError(f"{site} answered the search with HTTP {status} ({msg}); the run stopped. Run again to resume.")
