"""``scrape.source: danbooru``: walk a search with cursor pages, download the kept posts' files,
and never lose or repeat one, even across ``kill -9``.

State lives in an append-only, fsync'd journal beside the files (``danbooru.jsonl``): one record per
decided post (kept, counted again under another search, skipped with a reason, failed) and a cursor
per finished page. A file is renamed into place before its record is written, and a file already on
disk under its md5 name is adopted instead of fetched again, so a kill between the two costs
nothing. ``manifest.parquet`` is rebuilt from the journal at the end of every run.

Backfill walks older posts (``page=b<lowest id done>``) until ``limit`` posts of this search are held;
incremental walks newer ones (``page=a<highest id done>``), at most ``limit`` per run.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipeline.core.errors import StageError
from pipeline.params import ScrapeParams
from pipeline.scrape.sources import danbooru_api as api

log = logging.getLogger(__name__)
JOURNAL = "danbooru.jsonl"
_MD5_NAME = re.compile(r"^[0-9a-f]{32}\.[a-z0-9]{2,5}$")
_FAILED_BATCH = 100  # failed posts re-fetched per request (id:a,b,c is a free metatag)


def default_user_agent() -> str:
    from importlib import metadata

    try:
        meta = metadata.metadata("boorugan")
        version = meta["Version"]
        url = next((u.split(",", 1)[1].strip() for u in meta.get_all("Project-URL") or []), None)
    except metadata.PackageNotFoundError:
        version, url = "dev", None
    return f"boorugan/{version}" + (f" (+{url})" if url else "")


@dataclass
class QueryState:
    """What the journal says about one search."""

    members: set[int] = field(default_factory=set)   # posts held for it (kept or already held)
    decided: set[int] = field(default_factory=set)   # posts with a final decision
    failed: set[int] = field(default_factory=set)    # gave up; retried first next run
    low: int | None = None                           # walked range [low, high], contiguous
    high: int | None = None


@dataclass
class Outcome:
    post_id: int
    kind: str                    # kept | skip | fail
    reason: str = ""
    row: dict | None = None
    nbytes: int = 0
    downloaded: bool = False


class _TooLarge(Exception):
    """The body grew past scrape.danbooru.max_file_bytes."""


class _Gone(Exception):
    """The file host refuses or lacks the file (401/403/404/410, a redirect): not worth a retry."""


class DanbooruScrape:
    """One run of the Danbooru source into ``out``; ``run()`` returns the counts."""

    def __init__(self, params: ScrapeParams, out: Path, result):
        from pipeline.core.journal import read_journal

        self.params, self.cfg, self.out, self.result = params, params.danbooru, out, result
        self.auth = api.credentials()
        api.check_search(self.cfg, logged_in=self.auth is not None)
        self.query = api.query_key(self.cfg)
        self.records = read_journal(out / JOURNAL)
        self.rows: dict[int, dict] = {}               # kept posts by id, every search
        self.state = QueryState()
        for r in self.records:
            self._apply(r)
        self.md5s = {row["md5"] for row in self.rows.values()} | held_elsewhere(out)
        self.new = 0
        self.requests = 0
        self.request_times: list[float] = []
        self.bytes = 0
        self.started = time.monotonic()
        self._bar = None
        self._local = threading.local()
        self._lock = threading.Lock()

    # -- journal ---------------------------------------------------------------------------------

    def _apply(self, r: dict[str, Any]) -> None:
        s, mine = self.state, r.get("q") == self.query
        t, pid = r.get("t"), r.get("id")
        if t == "post":
            self.rows[pid] = r["row"]
        if not mine:
            return
        if t in ("post", "also"):
            s.members.add(pid)
        if t in ("post", "also", "skip"):
            s.decided.add(pid)
            s.failed.discard(pid)
        elif t == "fail":
            s.failed.add(pid)
        elif t == "cursor":
            s.low = r["low"] if s.low is None else min(s.low, r["low"])
            s.high = r["high"] if s.high is None else max(s.high, r["high"])

    def _record(self, r: dict[str, Any]) -> None:
        r = {"q": self.query, **r}
        self.journal.append(r)
        self._apply(r)

    # -- HTTP ------------------------------------------------------------------------------------

    def _session(self, api_session: bool):
        import requests

        key = "api" if api_session else "files"
        s = getattr(self._local, key, None)
        if s is None:
            s = requests.Session()
            s.headers["User-Agent"] = self.cfg.user_agent or default_user_agent()
            if api_session and self.auth:
                s.auth = self.auth  # HTTP Basic, to the API host only: never to file hosts
            setattr(self._local, key, s)
        return s

    def _policy(self):
        from pipeline.core.httpclient import RetryPolicy

        return RetryPolicy(max_retries=self.cfg.max_retries, backoff=self.cfg.retry_backoff,
                           backoff_max=self.cfg.retry_backoff_max)

    def _retried(self, reason: str) -> None:
        with self._lock:  # called from download threads
            self.result.stats["retries"] = self.result.stats.get("retries", 0) + 1

    def fetch_page(self, page: str | None, tags: str | None = None) -> list[dict]:
        from pipeline.core.httpclient import GaveUp, get_with_retries

        params = {"tags": tags if tags is not None else api.search_tags(self.cfg), "limit": self.cfg.page_size}
        if page:
            params["page"] = page

        def before() -> None:
            self.bucket.acquire()
            self.requests += 1
            self.request_times.append(time.monotonic())

        def check(resp) -> None:
            if api.is_challenge(resp):
                raise api.challenge_error(resp, len(self.rows))
            if resp.status_code != 200 and resp.status_code not in (429, 500, 502, 503, 504):
                raise api.api_error(resp, self.cfg, self.auth is not None)

        def read(resp) -> list[dict]:
            from pipeline.core.httpclient import Retry

            if "text/html" in resp.headers.get("Content-Type", "").lower():
                raise api.challenge_error(resp, len(self.rows))
            try:
                body = resp.json()
            except ValueError:
                raise Retry("unreadable JSON") from None
            if not isinstance(body, list):
                raise StageError(f"{self.cfg.base_url}/posts.json answered {str(body)[:200]!r}, not a list of posts: "
                                 "is scrape.danbooru.base_url a Danbooru-compatible site?")
            return [p for p in body if isinstance(p, dict) and isinstance(p.get("id"), int)]

        try:
            return get_with_retries(self._session(True), f"{self.cfg.base_url}/posts.json", params=params,
                                    policy=self._policy(), timeout=self.cfg.timeout, read=read, check=check,
                                    before=before, on_retry=self._retried)
        except GaveUp as e:
            raise StageError(f"{self.cfg.base_url} could not be searched: {e.tries} tries failed ({e.reason}). The site "
                             "may be down or this machine offline (`make demo` runs without a network). Nothing is "
                             "lost: run the scrape stage again later to resume.") from None

    def download(self, post: dict) -> Outcome:
        """Fetch, verify (md5, decode) and store one post's file. Runs in a worker thread."""
        from pipeline.core.atomic import write_bytes
        from pipeline.core.httpclient import GaveUp, Retry, get_with_retries
        from pipeline.scrape.probe import probe_image

        pid, md5, ext = post["id"], post["md5"].lower(), api.file_ext(post)
        name = f"{md5}.{ext}"  # only the md5 and a whitelisted extension reach the path
        path = self.out / name
        data, downloaded = None, False
        if path.is_file():  # written by a run killed before its journal record: adopt it
            on_disk = path.read_bytes()
            if hashlib.md5(on_disk).hexdigest() == md5:
                data = on_disk
        if data is None:
            cap = self.cfg.max_file_bytes

            def check(resp) -> None:
                if api.is_challenge(resp):
                    raise api.challenge_error(resp, len(self.rows))
                if resp.status_code in (401, 403, 404, 410) or 300 <= resp.status_code < 400:
                    raise _Gone(f"HTTP {resp.status_code}")

            def read(resp) -> bytes:
                if resp.status_code != 200:
                    raise Retry(f"HTTP {resp.status_code}")
                buf, h = bytearray(), hashlib.md5()
                for chunk in resp.iter_content(64 * 1024):
                    buf += chunk
                    h.update(chunk)
                    if len(buf) > cap:
                        raise _TooLarge()
                if h.hexdigest() != md5:
                    raise Retry(f"md5 mismatch ({len(buf)} bytes)")
                return bytes(buf)

            try:
                data = get_with_retries(self._session(False), post["file_url"], policy=self._policy(),
                                        timeout=self.cfg.timeout, read=read, check=check, on_retry=self._retried,
                                        allow_redirects=False)
                downloaded = True
            except _TooLarge:
                return Outcome(pid, "skip", "too_large")
            except _Gone as e:
                log.warning("post %s: file %s answered %s; skipped", pid, post["file_url"], e)
                return Outcome(pid, "skip", "file_unavailable")
            except GaveUp as e:
                log.warning("post %s: %s", pid, e)
                if e.reason.startswith("md5 mismatch"):
                    return Outcome(pid, "skip", "md5_mismatch")
                return Outcome(pid, "fail", e.reason)
        probed = probe_image(data, self.params.max_pixels)
        if isinstance(probed, str):
            return Outcome(pid, "skip", probed)
        if downloaded:
            write_bytes(path, data)
        row = {**api.post_columns(post, self.cfg.base_url), "md5": md5, "ext": ext, "width": probed[0],
               "height": probed[1], "source": "danbooru", "path": name,
               "fetched_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        return Outcome(pid, "kept", row=row, nbytes=len(data), downloaded=downloaded)

    def api_rate(self) -> float:
        """Requests per second between the first and the last (what the token bucket bounds)."""
        t = self.request_times
        return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else 0.0

    # -- the walk --------------------------------------------------------------------------------

    def _needed(self) -> int:
        if self.cfg.mode == "incremental":
            return self.cfg.limit - self.new
        return self.cfg.limit - len(self.state.members)

    def _finish(self, o: Outcome) -> None:
        if o.kind == "kept":
            if o.row["md5"] in self.md5s:  # the same file under two ids in one batch
                self._record({"t": "skip", "id": o.post_id, "reason": "duplicate_md5"})
                self.result.skipped["duplicate_md5"] += 1
                return
            self.rows[o.post_id] = o.row
            self.md5s.add(o.row["md5"])
            self._record({"t": "post", "id": o.post_id, "row": o.row})
            self.new += 1
            self.bytes += o.nbytes if o.downloaded else 0
            if self._bar is not None:
                self._bar.update(1)
                elapsed = max(time.monotonic() - self.started, 1e-9)
                self._bar.set_postfix(MB=f"{self.bytes / 1e6:.2f}", MBps=f"{self.bytes / 1e6 / elapsed:.2f}",
                                      api=f"{self.api_rate():.2f}/s", refresh=False)
        elif o.kind == "skip":
            self._record({"t": "skip", "id": o.post_id, "reason": o.reason})
            self.result.skipped[o.reason] += 1
        else:
            self._record({"t": "fail", "id": o.post_id, "reason": o.reason})
            self.result.failed[o.reason] += 1

    def process(self, posts: list[dict], pool: ThreadPoolExecutor) -> list[int]:
        """Decide ``posts`` in order until enough are kept; returns the ids decided, a prefix of them."""
        pending: dict[Future, str] = {}  # download -> md5
        inflight: set[str] = set()
        done: list[int] = []

        def settle(block_until: int) -> None:
            while pending and len(pending) >= block_until:
                finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for f in finished:
                    inflight.discard(pending.pop(f))
                    self._finish(f.result())  # a StageError (Cloudflare) from a worker stops the run here

        try:
            for post in posts:
                pid = post["id"]
                # never more in flight than the posts still needed
                while pending and len(pending) >= min(self.cfg.download_concurrency, max(self._needed(), 0)):
                    settle(len(pending))
                if self._needed() <= 0:
                    break
                done.append(pid)
                if pid in self.state.decided:
                    continue
                reason = api.screen(post, self.cfg)
                if reason is None and pid in self.rows:  # held already, from another search
                    self._record({"t": "also", "id": pid})
                    self.result.skipped["already_held"] += 1
                    continue
                md5 = str(post.get("md5", "")).lower()
                if reason is None and (md5 in self.md5s or md5 in inflight):
                    reason = "duplicate_md5"
                if reason is not None:
                    self._record({"t": "skip", "id": pid, "reason": reason})
                    self.result.skipped[reason] += 1
                    continue
                inflight.add(md5)
                pending[pool.submit(self.download, post)] = md5
            settle(1)
        except BaseException:
            for f in pending:
                f.cancel()
            raise
        return done

    def walk(self, pool: ThreadPoolExecutor) -> None:
        s = self.state
        upward = self.cfg.mode == "incremental" and s.high is not None
        cursor = (f"a{s.high}" if upward else (f"b{s.low}" if s.low is not None else None))
        while self._needed() > 0:
            page = self.fetch_page(cursor)
            if not page:
                log.info("no more posts for %r", api.search_tags(self.cfg))
                break
            page.sort(key=lambda p: p["id"], reverse=not upward)
            done = self.process(page, pool)
            if done:
                self._record({"t": "cursor", "low": min(done), "high": max(done)})
            cursor = f"a{page[-1]['id']}" if upward else f"b{page[-1]['id']}"
            if len(page) < self.cfg.page_size:
                break  # a short page is the last one

    def retry_failed(self, pool: ThreadPoolExecutor) -> None:
        """Posts whose download gave up last time: fetched again by id, before the walk goes on."""
        ids = sorted(self.state.failed - self.state.decided, reverse=True)
        for i in range(0, len(ids), _FAILED_BATCH):
            if self._needed() <= 0:
                return
            batch = ids[i:i + _FAILED_BATCH]
            tags = " ".join(t for t in (f"id:{','.join(map(str, batch))}", api.search_tags(self.cfg)) if t)
            page = sorted(self.fetch_page(None, tags=tags), key=lambda p: p["id"], reverse=True)
            listed = {p["id"] for p in page}
            for pid in batch:  # deleted or retagged since: the search no longer lists it
                if pid not in listed:
                    self._record({"t": "skip", "id": pid, "reason": "no_longer_listed"})
                    self.result.skipped["no_longer_listed"] += 1
            self.process(page, pool)

    def run(self) -> None:
        from tqdm import tqdm

        from pipeline.core.journal import Journal
        from pipeline.core.ratelimit import TokenBucket

        if self.cfg.mode == "backfill" and self._needed() <= 0:
            log.info("scrape: %d posts held for %s already (limit %d); no request made",
                     len(self.state.members), self.query, self.cfg.limit)
            return
        self.bucket = TokenBucket(self.cfg.rate)
        with Journal(self.out / JOURNAL) as self.journal, \
                ThreadPoolExecutor(self.cfg.download_concurrency, thread_name_prefix="download") as pool, \
                tqdm(total=max(self._needed(), 0), desc="scrape (danbooru)", unit="post") as self._bar:
            self.retry_failed(pool)
            self.walk(pool)


def held_elsewhere(out: Path) -> set[str]:
    """md5s the manifest lists from other sources (or runs the journal forgot), files present."""
    import pandas as pd

    from pipeline.core.layout import MANIFEST

    if not (out / MANIFEST).is_file():
        return set()
    m = pd.read_parquet(out / MANIFEST, columns=["md5", "path", "source"])
    return {md5 for md5, path, src in zip(m["md5"], m["path"], m["source"]) if src != "toy" and (out / path).is_file()}


def _stray(out: Path) -> list[Path]:
    """Temporary files of a killed write."""
    return [p for p in out.iterdir() if p.is_file() and p.name.startswith(".") and p.name.endswith(".tmp")]


def scrape_danbooru(params: ScrapeParams, out_dir: str | Path, result) -> Any:
    """Add the search's posts to ``out_dir`` and rebuild its manifest (other sources' rows stay)."""
    import pandas as pd

    from pipeline.core.atomic import write_parquet
    from pipeline.core.layout import MANIFEST

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for p in _stray(out):
        p.unlink()
    run = DanbooruScrape(params, out, result)  # checks the search before any request
    error: BaseException | None = None
    try:
        run.run()
    except BaseException as e:  # noqa: BLE001 - save what was done, then re-raise
        error = e
    rows = [dict(r) for r in run.rows.values()]
    journal_md5 = {r["md5"] for r in rows}
    if (out / MANIFEST).is_file():  # other sources' rows (and any a lost journal forgot) stay
        old = pd.read_parquet(out / MANIFEST)
        for r in old.to_dict("records"):
            # toy faces are a stand-in for data (make demo): never mixed into a real dataset
            if r.get("source") != "toy" and r["md5"] not in journal_md5 and (out / r["path"]).is_file():
                rows.append(r)
                journal_md5.add(r["md5"])
    if rows:
        df = pd.DataFrame(rows)
        df["id"] = df["id"].astype(str)
        write_parquet(out / MANIFEST, df)
        listed = set(df["path"])
        for p in out.iterdir():  # a file no record names (killed mid-run on a skipped post): remove
            if p.is_file() and _MD5_NAME.match(p.name) and p.name not in listed:
                p.unlink()
    result.kept = len(rows)
    result.new = run.new
    result.manifest = out / MANIFEST if rows else None
    result.stats.update(api_requests=run.requests, bytes=run.bytes, api_rate=round(run.api_rate(), 3))
    log.info("scrape (danbooru): %d new, %d held in all; skipped %s; failed %s; %d API requests, %.1f MB",
             run.new, len(rows), dict(result.skipped), dict(result.failed), run.requests, run.bytes / 1e6)
    if error is not None:
        raise error
    if not rows:
        raise StageError(f"scrape found no usable post for {api.search_tags(params.danbooru)!r} on "
                         f"{params.danbooru.base_url} (skipped: {dict(result.skipped)}, failed: {dict(result.failed)})")
    return result
