"""GET with bounded retries: exponential backoff with jitter on transient failures (429, 5xx,
timeouts, resets, truncated bodies), the reason logged each time; callers decide what is fatal.

``check(response)`` sees every answer first and raises to stop (a ``StageError``) or to retry
(``Retry``); ``read(response)`` turns a good answer into a value and may raise ``Retry`` too (a body
that fails its checksum). After ``max_retries`` the last reason is raised as ``GaveUp``.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


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


def get_with_retries(session, url: str, *, policy: RetryPolicy, timeout: float, read: Callable[[Any], T],
                     check: Callable[[Any], None] = lambda r: None, before: Callable[[], Any] | None = None,
                     sleep: Callable[[float], None] = time.sleep, on_retry: Callable[[str], None] | None = None,
                     **kwargs) -> T:
    """GET ``url`` until ``read`` returns, a ``check`` stops it, or the retries run out.

    ``before`` runs before every try (the API's token bucket), so retries are rate limited too."""
    import requests

    for attempt in range(policy.max_retries + 1):
        if before is not None:
            before()
        response = None
        try:
            response = session.get(url, timeout=timeout, stream=True, **kwargs)
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
        wait = policy.delay(attempt, _retry_after(response) if response is not None and response.status_code in (429, 503) else None)
        log.warning("%s: %s; retry %d/%d in %.1f s", url, reason, attempt + 1, policy.max_retries, wait)
        if on_retry is not None:
            on_retry(reason)
        sleep(wait)
    raise AssertionError("unreachable")
