"""One Danbooru post's file: fetched politely, verified, made storable. Runs in a download thread.

Every request (each retry and each redirect hop) first takes a token of the files' own bucket
(``scrape.danbooru.files_rate``), shared by all download threads. Redirects are followed one hop at
a time, each target checked against ``allowed_hosts`` (a fork whose files redirect http -> https
works; one that sends them elsewhere is refused by name). The original is checked against its md5
(a mismatch is fetched once more, then final); a sample has no md5 in the JSON, so it is checked by
decoding, its size cap and its expected dimensions (850 px wide, the original's aspect), and the
original is taken instead if the sample fails that.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from pipeline.scrape.params import DanbooruSource
from pipeline.scrape.sources import danbooru_api as api

log = logging.getLogger(__name__)
SAMPLE_TOLERANCE = 1  # px: the sample's computed side may round either way


class FileSkip(Exception):
    """The post is skipped; ``reason`` is a key of danbooru_skips.SKIPS."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason, self.detail = reason, detail


class FileFail(Exception):
    """Every try failed for a passing reason: tried again on a later run."""


class _TooLarge(Exception):
    pass


class _Gone(Exception):
    pass


class _Refused(Exception):
    pass


class _Mismatch(Exception):
    pass


@dataclass
class Stored:
    data: bytes
    ext: str
    variant: str           # original | sample
    width: int
    height: int
    md5: str               # of ``data``: the stored file's name
    downloaded: bool
    first_frame: bool = False
    url: str = ""


class FileFetcher:
    """What every download shares: settings, the files' token bucket, the HTTP policy."""

    def __init__(self, cfg: DanbooruSource, max_pixels: int, out: Path, *, session, bucket, policy, on_retry,
                 on_request, saved):
        self.cfg, self.max_pixels, self.out = cfg, max_pixels, out
        self.session, self.bucket, self.policy = session, bucket, policy
        self.on_retry, self.on_request, self.saved = on_retry, on_request, saved

    def _get(self, url: str, md5: str | None) -> bytes:
        from pipeline.core.httpclient import GaveUp, Retry, TooManyRedirects, get_with_retries

        cap, mismatches = self.cfg.max_file_bytes, [0]

        def before() -> None:
            self.bucket.acquire()
            self.on_request()

        def redirect(target: str) -> None:
            if not api.host_allowed(target, self.cfg.base_url, self.cfg.allowed_hosts):
                raise _Refused(target)

        def check(resp) -> None:
            if api.is_challenge(resp):
                raise api.challenge_error(resp, self.saved())
            if resp.status_code in (401, 403, 404, 410) or 300 <= resp.status_code < 400:
                raise _Gone(f"HTTP {resp.status_code}")

        def read(resp) -> bytes:
            if resp.status_code != 200:
                raise Retry(f"HTTP {resp.status_code}")
            length = resp.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > cap:
                raise _TooLarge()
            buf, h = bytearray(), hashlib.md5()
            for chunk in resp.iter_content(64 * 1024):
                buf += chunk
                h.update(chunk)
                if len(buf) > cap:
                    raise _TooLarge()
            if md5 is not None and h.hexdigest() != md5:
                mismatches[0] += 1
                if mismatches[0] >= 2:  # twice the same wrong bytes: not passing; four more downloads would not help
                    raise _Mismatch(f"{len(buf)} bytes")
                raise Retry(f"md5 mismatch ({len(buf)} bytes)")
            return bytes(buf)

        try:
            return get_with_retries(self.session(), url, policy=self.policy, timeout=self.cfg.timeout, read=read,
                                    check=check, before=before, on_retry=self.on_retry, redirect=redirect)
        except _TooLarge:
            raise FileSkip("too_large") from None
        except _Mismatch as e:
            raise FileSkip("md5_mismatch", str(e)) from None
        except _Refused as e:
            raise FileSkip("redirect_not_allowed", f"redirect to {e}") from None
        except _Gone as e:
            raise FileSkip("file_unavailable", str(e)) from None
        except TooManyRedirects as e:
            raise FileSkip("file_unavailable", str(e)) from None
        except GaveUp as e:
            if e.reason.startswith("md5 mismatch"):
                raise FileSkip("md5_mismatch", e.reason) from None
            raise FileFail(e.reason) from None

    def fetch(self, post: dict) -> Stored:
        """The post's chosen file, verified; raises FileSkip or FileFail."""
        from pipeline.scrape.probe import first_frame_png, probe

        choice = api.choose_file(post, self.cfg)
        stored = None
        if choice.variant == "sample":
            data = self._get(choice.url, None)
            p = probe(data, self.max_pixels)
            if not isinstance(p, str) and p.frames == 1 and self._sample_fits(p, choice):
                stored = Stored(data, choice.ext, "sample", p.width, p.height, hashlib.md5(data).hexdigest(), True,
                                url=choice.url)
            else:  # a sample that is not the promised picture: the original (with its md5) instead
                log.warning("post %s: sample %s is %s, not %dx%d; taking the original", post["id"], choice.url,
                            p if isinstance(p, str) else f"{p.width}x{p.height} ({p.frames} frames)",
                            choice.width, choice.height)
                choice = api.choose_file(post, self.cfg.model_copy(update={"variant": "original"}))
                if not api.host_allowed(choice.url, self.cfg.base_url, self.cfg.allowed_hosts):
                    raise FileSkip("host_not_allowed")
                if choice.size is not None and choice.size > self.cfg.max_file_bytes:
                    raise FileSkip("too_large", "the sample failed and the original is over max_file_bytes")
                if choice.width * choice.height > self.max_pixels:
                    raise FileSkip("too_many_pixels", "the sample failed and the original is over max_pixels")
        if stored is None:
            stored = self._original(post, choice)
        p = probe(stored.data, self.max_pixels)
        if isinstance(p, str):
            raise FileSkip("avif_unsupported" if p == "undecodable" and stored.ext == "avif" and not api.avif_decodable()
                           else p)
        if p.frames > 1:
            if self.cfg.animated == "skip":
                raise FileSkip("animated", f"{p.frames} frames")
            data = first_frame_png(stored.data)
            return Stored(data, "png", stored.variant, p.width, p.height, hashlib.md5(data).hexdigest(),
                          stored.downloaded, first_frame=True, url=stored.url)
        stored.width, stored.height = p.width, p.height
        return stored

    def _original(self, post: dict, choice) -> Stored:
        md5 = choice.md5
        path = self.out / f"{md5}.{choice.ext}"  # only the md5 and a whitelisted extension reach the path
        if path.is_file():  # written by a run killed before its journal record: adopt it
            on_disk = path.read_bytes()
            if hashlib.md5(on_disk).hexdigest() == md5:
                return Stored(on_disk, choice.ext, "original", 0, 0, md5, False, url=choice.url)
        return Stored(self._get(choice.url, md5), choice.ext, "original", 0, 0, md5, True, url=choice.url)

    @staticmethod
    def _sample_fits(p, choice) -> bool:
        if not (choice.width and choice.height):
            return p.width <= api.SAMPLE_WIDTH
        return abs(p.width - choice.width) <= SAMPLE_TOLERANCE and abs(p.height - choice.height) <= SAMPLE_TOLERANCE
