"""Which skips of a Danbooru post are final, and which are looked at again.

A skip is final only when it is a fact about the post under this search (the journal's search key
holds tags, ratings, extensions, min size, deleted). A skip caused by another setting, the login or
the software carries that condition in its journal record and counts only while the condition
holds: change the setting (or log in) and the next run fetches those posts again by id. A skip
caused by a passing answer (a file host's 401/403/404/410) and a failed download are tried again
on later runs, ``scrape.danbooru.max_post_tries`` runs in all, each try a journal record.
"""

from __future__ import annotations

import hashlib
from collections import Counter

from pipeline.scrape.params import DanbooruSource

FINAL, SETTING, PASSING = "final", "setting", "passing"

# reason -> (kind, what to change when it dominates a walk that keeps nothing)
SKIPS: dict[str, tuple[str, str]] = {
    "deleted": (FINAL, "the posts are deleted (scrape.danbooru.exclude_deleted)"),
    "banned": (FINAL, "the posts are banned (taken down): search other tags"),
    "rating": (FINAL, "scrape.danbooru.ratings"),
    "extension": (FINAL, "scrape.danbooru.extensions (videos, ugoira zips and flash are never kept)"),
    "too_small": (FINAL, "scrape.danbooru.min_width / min_height"),
    "bad_md5": (FINAL, "nothing: the site lists posts without a valid md5"),
    "md5_mismatch": (FINAL, "nothing: the files never match their md5"),
    "duplicate_md5": (FINAL, "nothing: those files are held already"),
    "undecodable": (FINAL, "nothing: the files do not decode"),
    "no_longer_listed": (FINAL, "nothing: the posts left the search"),
    "restricted": (SETTING, "DANBOORU_LOGIN / DANBOORU_API_KEY (the posts are hidden from this caller's level)"),
    "host_not_allowed": (SETTING, "scrape.danbooru.allowed_hosts (the files are on another host)"),
    "redirect_not_allowed": (SETTING, "scrape.danbooru.allowed_hosts (the files redirect to another host)"),
    "too_large": (SETTING, "scrape.danbooru.max_file_bytes (or scrape.danbooru.variant=sample)"),
    "too_many_pixels": (SETTING, "scrape.max_pixels (or scrape.danbooru.variant=sample)"),
    "animated": (SETTING, "scrape.danbooru.animated=first_frame"),
    "avif_unsupported": (SETTING, "Pillow: install a build that decodes AVIF, or leave avif out of scrape.danbooru.extensions"),
    "file_unavailable": (PASSING, "nothing to set: the file host refused the files (401/403/404/410); later runs try again"),
}


def kind(reason: str) -> str:
    """Unknown reasons (older journals) are final, as they were when written."""
    return SKIPS.get(reason, (FINAL, ""))[0]


def advice(reason: str) -> str:
    return SKIPS.get(reason, (FINAL, "the search"))[1]


def login_key(auth: tuple[str, str] | None) -> str:
    """Names the caller in the journal without the credentials: a short hash of the login."""
    return "anonymous" if auth is None else "login:" + hashlib.sha256(auth[0].encode()).hexdigest()[:12]


def condition(reason: str, cfg: DanbooruSource, max_pixels: int, auth: tuple[str, str] | None) -> str | None:
    """The value of what a SETTING skip depended on (compared on later runs); None for the others."""
    if reason == "restricted":
        return login_key(auth)
    if reason in ("host_not_allowed", "redirect_not_allowed"):
        return ",".join(sorted(p.lower() for p in cfg.allowed_hosts))
    if reason == "too_large":
        return f"{cfg.max_file_bytes}|{cfg.variant}"
    if reason == "too_many_pixels":
        return f"{max_pixels}|{cfg.variant}"
    if reason == "animated":
        return cfg.animated
    if reason == "avif_unsupported":
        import PIL

        return f"pillow {PIL.__version__}"
    return None


def barren_message(pages: int, posts: int, reasons: Counter, tags: str) -> str:
    """Why a walk stopped: the dominant skip reason and the setting that would change it."""
    if not reasons:
        return (f"the last {pages} pages of {tags!r} ({posts} posts) kept nothing; stopped the walk "
                "(scrape.danbooru.stop_after_barren_pages)")
    top, n = reasons.most_common(1)[0]
    others = ", ".join(f"{r} {c}" for r, c in reasons.most_common()[1:4])
    return (f"the last {pages} pages of {tags!r} ({posts} posts) kept nothing: {n} skipped as {top!r}"
            + (f" (then {others})" if others else "") + f". Change {advice(top)}, then run again; "
            f"stopped the walk after scrape.danbooru.stop_after_barren_pages={pages} pages. Nothing is lost.")
