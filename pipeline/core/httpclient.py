"""GET with bounded retries: exponential backoff with jitter on transient failures (429, 5xx,
Cloudflare's 52x origin errors, timeouts, resets, truncated bodies), the reason logged each time;
callers decide what is fatal.

``check(response)`` sees every answer first and raises to stop (a ``StageError``) or to retry
(``Retry``); ``read(response)`` turns a good answer into a value and may raise ``Retry`` too (a body
that fails its checksum). After ``max_retries`` the last reason is raised as ``GaveUp``.

With ``redirect(url)`` given, redirects are followed here, one hop at a time: each target is shown
to ``redirect`` first (which raises to refuse it, e.g. a host outside an allow-list) and ``before``
runs before each hop too, so a rate limit counts every request the server sees.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
# 520-524: Cloudflare's own pages for an origin that failed to answer (unknown error, down,
# connection timed out, unreachable, answer timed out): passing, like a 502/504.
CLOUDFLARE_ORIGIN_STATUS = frozenset({520, 521, 522, 523, 524})
RETRY_STATUS = frozenset({429, 500, 502, 503, 504}) | CLOUDFLARE_ORIGIN_STATUS
MAX_REDIRECTS = 5


class Retry(Exception):
    """A transient failure worth another try; the message is the reason that gets logged."""


class GaveUp(Exception):
    """Every try failed; ``reason`` is the last failure."""

    def __init__(self, url: str, reason: str, tries: int):
        super().__init__(f"{url}: gave up after {tries} tries ({reason})")
        self.url, self.reason, self.tries = url, reason, tries


@dataclass
class RetryPolicy:
    max_retries: int = 5
    backoff: float = 2.0        # first wait in seconds; doubles per retry
    backoff_max: float = 120.0
    jitter: float = 0.5         # the wait is scaled by a random factor in [1 - jitter, 1 + jitter]
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        base = min(self.backoff_max, self.backoff * 2 ** retry)
        wait = base * self.rng.uniform(1 - self.jitter, 1 + self.jitter)
        if retry_after is not None:  # the server's own hint wins when it asks for longer
            wait = max(wait, min(retry_after, self.backoff_max))
        return wait


def _retry_after(response) -> float | None:
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class TooManyRedirects(Exception):
    """More than MAX_REDIRECTS hops: a loop, not a passing failure."""


def _get_following(session, url: str, *, timeout: float, before, redirect, **kwargs):
    """One try: GET, following redirects hop by hop when ``redirect`` is given."""
    from urllib.parse import urljoin

    if redirect is None:
        if before is not None:
            before()
        return session.get(url, timeout=timeout, stream=True, **kwargs)
    for _ in range(MAX_REDIRECTS + 1):
        if before is not None:
            before()
        response = session.get(url, timeout=timeout, stream=True, allow_redirects=False, **kwargs)
        location = response.headers.get("Location")
        if not (300 <= response.status_code < 400 and location):
            return response
        response.close()
        url = urljoin(url, location)
        redirect(url)
    raise TooManyRedirects(f"more than {MAX_REDIRECTS} redirects")


def get_with_retries(session, url: str, *, policy: RetryPolicy, timeout: float, read: Callable[[Any], T],
                     check: Callable[[Any], None] = lambda r: None, before: Callable[[], Any] | None = None,
                     sleep: Callable[[float], None] = time.sleep, on_retry: Callable[[str], None] | None = None,
                     redirect: Callable[[str], None] | None = None, **kwargs) -> T:
    """GET ``url`` until ``read`` returns, a ``check`` stops it, or the retries run out.

    ``before`` runs before every request (a token bucket), so retries and redirect hops are rate
    limited too."""
    import requests

    for attempt in range(policy.max_retries + 1):
        response = None
        try:
            response = _get_following(session, url, timeout=timeout, before=before, redirect=redirect, **kwargs)
            try:
                check(response)
                if response.status_code in RETRY_STATUS:
                    raise Retry(f"HTTP {response.status_code}")
                return read(response)
            finally:
                response.close()
        except Retry as e:
            reason = str(e)
        except requests.Timeout:
            reason = "timeout"
        except requests.exceptions.ChunkedEncodingError:
            reason = "truncated body"
        except requests.ConnectionError as e:
            reason = "connection reset" if "reset" in str(e).lower() or "aborted" in str(e).lower() else "connection error"
        except (requests.exceptions.ContentDecodingError, requests.exceptions.InvalidHeader) as e:
            reason = f"bad answer ({type(e).__name__})"
        if attempt == policy.max_retries:
            raise GaveUp(url, reason, attempt + 1)
        told = _retry_after(response) if response is not None and response.status_code in (429, 503) else None
        wait = policy.delay(attempt, told)
        log.warning("%s: %s; retry %d/%d in %.1f s", url, reason, attempt + 1, policy.max_retries, wait)
        if on_retry is not None:
            on_retry(reason)
        sleep(wait)
    raise AssertionError("unreachable")
