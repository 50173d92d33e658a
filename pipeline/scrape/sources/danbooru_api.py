"""What the scraper knows about Danbooru's API: the search it sends, the answers that stop a run,
and which posts are worth a download. Pure functions over post dicts and responses; no I/O here."""

from __future__ import annotations

import fnmatch
import json
import os
from urllib.parse import urlsplit

from pipeline.core.errors import StageError
from pipeline.params import DANBOORU_RATINGS, DanbooruSource

LOGIN_ENV, API_KEY_ENV = "DANBOORU_LOGIN", "DANBOORU_API_KEY"
ANONYMOUS_TAG_LIMIT = 2  # anonymous and basic accounts (Gold: 6); 422 beyond
# Metatags that do not count toward the tag limit (order: does count, and is refused anyway).
FREE_METATAGS = frozenset({"rating", "status", "score", "width", "height", "md5", "filetype", "id", "date",
                           "age", "mpixels", "ratio", "filesize", "is", "has", "limit"})
TAG_CATEGORIES = ("general", "character", "copyright", "artist", "meta")


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


def search_tags(cfg: DanbooruSource) -> str:
    """The tags sent: the user's plus the rating filter (a free metatag), so the site filters for us."""
    ratings = "" if set(cfg.ratings) == set(DANBOORU_RATINGS) else f"rating:{','.join(cfg.ratings)}"
    return " ".join(t for t in (cfg.tags, ratings) if t)


def query_key(cfg: DanbooruSource) -> str:
    """Names one search in the journal: site, tags, ratings and the filters that decide what is
    kept, so a changed filter looks at skipped posts again. The limit counts posts per search."""
    tags = " ".join(sorted(cfg.tags.split()))
    return (f"{urlsplit(cfg.base_url).netloc}|{tags}|rating:{','.join(cfg.ratings)}|ext:{','.join(sorted(cfg.extensions))}"
            f"|min:{cfg.min_width}x{cfg.min_height}|deleted:{'no' if cfg.exclude_deleted else 'yes'}")


def host_allowed(url: str, api_url: str, patterns: list[str]) -> bool:
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        return False
    api = urlsplit(api_url)
    if u.hostname == api.hostname and (u.port or 0) == (api.port or 0):
        return True
    return any(fnmatch.fnmatchcase(u.hostname, p.lower()) or (p.startswith("*.") and u.hostname == p[2:].lower())
               for p in patterns)


def file_ext(post: dict) -> str:
    ext = str(post.get("file_ext") or "").lower()
    return "jpg" if ext == "jpeg" else ext


def screen(post: dict, cfg: DanbooruSource) -> str | None:
    """Why a post is skipped before its file is fetched, or None if it is a candidate."""
    if not post.get("md5") or not post.get("file_url"):
        return "restricted"
    if cfg.exclude_deleted and post.get("is_deleted"):
        return "deleted"
    if post.get("is_banned"):
        return "banned"
    if post.get("rating") not in cfg.ratings:
        return "rating"
    if file_ext(post) not in cfg.extensions:
        return "extension"
    if int(post.get("image_width") or 0) < cfg.min_width or int(post.get("image_height") or 0) < cfg.min_height:
        return "too_small"
    if not host_allowed(post["file_url"], cfg.base_url, cfg.allowed_hosts):
        return "host_not_allowed"
    md5 = str(post["md5"]).lower()
    if len(md5) != 32 or any(c not in "0123456789abcdef" for c in md5):
        return "bad_md5"
    return None


def post_columns(post: dict, base_url: str) -> dict:
    """The manifest's Danbooru columns of a post."""
    return {"id": str(post["id"]), "origin": f"{base_url}/posts/{post['id']}", "rating": post.get("rating"),
            "score": int(post.get("score") or 0), "file_url": post.get("file_url"),
            **{f"tags_{c}": post.get(f"tag_string_{c}", "") or "" for c in TAG_CATEGORIES}}


# -- answers ---------------------------------------------------------------------------------------

def is_challenge(response) -> bool:
    """Cloudflare's bot check: the cf-mitigated header, or an HTML page where an error JSON belongs."""
    if response.headers.get("cf-mitigated", "").lower() == "challenge":
        return True
    html = "text/html" in response.headers.get("Content-Type", "").lower()
    return html and response.status_code in (403, 429, 503)


def error_message(response) -> str:
    try:
        body = json.loads(response.content[:65536])
        if isinstance(body, dict):
            return str(body.get("message") or body.get("error") or body)[:300]
    except Exception:  # noqa: BLE001 - any unreadable body: show its start
        pass
    return response.content[:200].decode("utf-8", "replace").strip() or response.reason or ""


def challenge_error(response, saved: int) -> StageError:
    host = urlsplit(response.url).netloc
    how = "cf-mitigated: challenge" if response.headers.get("cf-mitigated") else "an HTML page"
    return StageError(
        f"{host} answered HTTP {response.status_code} with a Cloudflare challenge ({how}) instead of data: the site "
        f"takes this client for a bot. Stopped at once rather than retry into a ban. Nothing is lost ({saved} posts "
        "are saved). Wait a few hours, lower scrape.danbooru.rate, check scrape.danbooru.user_agent, then run the "
        "scrape stage again: it resumes where it stopped.")


def api_error(response, cfg: DanbooruSource, logged_in: bool) -> StageError:
    """The run-stopping answer to a search, as a message saying what to fix."""
    status, msg, site = response.status_code, error_message(response), cfg.base_url
    if status == 401:
        return StageError(f"{site} rejected the credentials (HTTP 401: {msg}); check {LOGIN_ENV} and {API_KEY_ENV} "
                          "(the API key is on your Danbooru profile page), or unset both to search anonymously.")
    if status == 422:
        level = "your account" if logged_in else "an anonymous search (2 tags; Gold accounts 6)"
        return StageError(f"{site} refused the search {search_tags(cfg)!r} (HTTP 422: {msg}). Too many tags for {level}? "
                          "Use fewer tags in scrape.danbooru.tags (rating:, score:, width: metatags are free).")
    if status == 403:
        return StageError(f"{site} denied the search (HTTP 403: {msg}); some tags need a higher account level. "
                          f"Change scrape.danbooru.tags or use {LOGIN_ENV}/{API_KEY_ENV} of an account allowed them.")
    if status == 404:
        return StageError(f"{site}/posts.json answered 404 ({msg}): is scrape.danbooru.base_url a Danbooru-compatible site?")
    return StageError(f"{site} answered the search with HTTP {status} ({msg}); the run stopped. Run again to resume.")
