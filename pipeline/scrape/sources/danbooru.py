"""``scrape.source: danbooru``: walk a search with cursor pages, download the kept posts' files,
and never lose or repeat one, even across ``kill -9``.

State lives in an append-only, fsync'd journal beside the files (``danbooru.jsonl``): one record per
decision about a post (kept, counted again under another search, skipped with a reason, failed) and
a cursor per finished page. A file is renamed into place before its record is written, and a file
already on disk under its md5 name is adopted instead of fetched again, so a kill between the two
costs nothing. ``manifest.parquet`` is rebuilt from the journal at the end of every run.

Backfill walks older posts (``page=b<lowest id done>``) until ``limit`` posts of this search are held;
incremental walks newer ones (``page=a<highest id done>``), at most ``limit`` per run. Before the
walk, posts whose skip no longer holds (a setting or the login changed; a passing refusal or a
failed download, within ``max_post_tries``) are fetched again by id (danbooru_skips.py says which).
A walk ends on an empty page, or a short one where the site's per-page cap is documented (Danbooru
itself: 200), and stops early after ``stop_after_barren_pages`` pages in a row that kept nothing.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.core.errors import StageError
from pipeline.core.layout import DANBOORU_JOURNAL
from pipeline.scrape.params import ScrapeParams
from pipeline.scrape.sources import danbooru_api as api
from pipeline.scrape.sources import danbooru_skips as skips

log = logging.getLogger(__name__)
JOURNAL = DANBOORU_JOURNAL
_MD5_NAME = re.compile(r"^[0-9a-f]{32}\.[a-z0-9]{2,5}$")
_ID_BATCH = 100  # posts re-fetched per request (id:a,b,c is a free metatag), asked with limit=len(batch)


def project_url() -> str | None:
    """The first [project.urls] entry of pyproject.toml (the checkout's, else the installed metadata's)."""
    import tomllib
    from importlib import metadata

    toml = Path(__file__).resolve().parents[3] / "pyproject.toml"
    if toml.is_file():
        try:
            urls = tomllib.loads(toml.read_text()).get("project", {}).get("urls", {})
            if urls:
                return next(iter(urls.values()))
        except (tomllib.TOMLDecodeError, OSError):
            pass
    try:
        return next((u.split(",", 1)[1].strip() for u in metadata.metadata("boorugan").get_all("Project-URL") or []), None)
    except metadata.PackageNotFoundError:
        return None


def default_user_agent() -> str:
    """``boorugan/<version> (+<project url>)``: a name and a contact, as site operators ask."""
    from importlib import metadata

    try:
        version = metadata.version("boorugan")
    except metadata.PackageNotFoundError:
        version = "dev"
    url = project_url()
    return f"boorugan/{version}" + (f" (+{url})" if url else "")


@dataclass
class QueryState:
    """What the journal says about one search."""

    members: set[int] = field(default_factory=set)   # posts held for it (kept or already held)
    last: dict[int, dict] = field(default_factory=dict)  # the latest post/also/skip/fail record per post
    tries: Counter = field(default_factory=Counter)  # passing skips and failures per post, every run
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
    detail: str = ""


class DanbooruScrape:
    """One run of the Danbooru source into ``out``; ``run()`` returns the counts. Only the records
    of ``searches`` (the folder's Danbooru owners) are read; None: every record."""

    def __init__(self, params: ScrapeParams, out: Path, result, searches: set[str] | None = None,
                 kept_sources: set[str] = frozenset({"danbooru", "folder"})):
        from pipeline.core.journal import read_journal
        from pipeline.scrape.sources.danbooru_owned import owned_records, searches_in

        self.params, self.cfg, self.out, self.result = params, params.danbooru, out, result
        self.auth = api.credentials()
        api.check_search(self.cfg, logged_in=self.auth is not None)
        self.query = api.query_key(self.cfg)
        self.records = read_journal(out / JOURNAL)
        self.foreign = False  # records of searches that do not own the folder (a killed --add or --replace)
        if searches is not None:
            self.foreign = not set(searches_in(self.records)) <= searches
            self.records = owned_records(self.records, searches)
        self.rows: dict[int, dict] = {}               # kept posts by id, every search
        self.state = QueryState()
        for r in self.records:
            self._apply(r)
        self.md5s = ({m for row in self.rows.values() for m in (row["md5"], row.get("post_md5"))}
                     | held_elsewhere(out, kept_sources))
        self.md5s.discard(None)
        self.touched: set[int] = set()               # posts decided in this run
        self.new = 0
        self.requests = 0
        self.request_times: list[float] = []
        self.file_times: list[float] = []
        self.bytes = 0
        self.stop_message: str | None = None
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
        if t in ("post", "also", "skip", "fail"):
            s.last[pid] = r
        if t == "fail" or (t == "skip" and skips.kind(r.get("reason", "")) == skips.PASSING):
            s.tries[pid] += 1
        elif t == "cursor":
            s.low = r["low"] if s.low is None else min(s.low, r["low"])
            s.high = r["high"] if s.high is None else max(s.high, r["high"])

    def _record(self, r: dict[str, Any]) -> None:
        r = {"q": self.query, **r}
        self.journal.append(r)
        self._apply(r)

    def _condition(self, reason: str) -> str | None:
        return skips.condition(reason, self.cfg, self.params.max_pixels, self.auth)

    def decided(self, pid: int) -> bool:
        """Nothing to do for this post now: kept, final, or a skip whose condition still holds."""
        r = self.state.last.get(pid)
        if r is None:
            return False
        if r["t"] in ("post", "also"):
            return True
        if r["t"] == "fail":
            return self.state.tries[pid] >= self.cfg.max_post_tries
        kind = skips.kind(r.get("reason", ""))
        if kind == skips.SETTING:
            return r.get("cond") == self._condition(r["reason"])
        if kind == skips.PASSING:
            return self.state.tries[pid] >= self.cfg.max_post_tries
        return True

    def to_recheck(self) -> list[int]:
        """Posts of this search seen before whose skip or failure no longer holds, newest first."""
        return sorted((pid for pid in self.state.last if not self.decided(pid)), reverse=True)

    def _skip(self, pid: int, reason: str, detail: str = "") -> None:
        rec = {"t": "skip", "id": pid, "reason": reason}
        kind = skips.kind(reason)
        if kind == skips.SETTING:
            rec["cond"] = self._condition(reason)
        elif kind == skips.PASSING:
            rec["try"] = self.state.tries[pid] + 1
        if detail:
            rec["detail"] = detail[:200]
        self._record(rec)
        self.result.skipped[reason] += 1

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

    def _file_request(self) -> None:
        with self._lock:
            self.file_times.append(time.monotonic())

    def fetch_page(self, page: str | None, tags: str | None = None, limit: int | None = None) -> list[dict]:
        from pipeline.core.httpclient import RETRY_STATUS, GaveUp, Retry, get_with_retries

        params = {"tags": tags if tags is not None else api.search_tags(self.cfg), "limit": limit or self.cfg.page_size}
        if page:
            params["page"] = page

        def before() -> None:
            self.bucket.acquire()
            self.requests += 1
            self.request_times.append(time.monotonic())

        def check(resp) -> None:
            if api.is_challenge(resp):
                raise api.challenge_error(resp, len(self.rows))
            if resp.status_code in RETRY_STATUS:  # 429, 5xx, Cloudflare's 52x pages
                raise Retry(api.retry_reason(resp))
            if resp.status_code != 200:
                raise api.api_error(resp, self.cfg, self.auth is not None)

        def read(resp) -> list[dict]:
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
            raise api.gave_up_error(self.cfg, e.tries, e.reason) from None

    def download(self, post: dict) -> Outcome:
        """Fetch, verify and store one post's file. Runs in a worker thread."""
        from pipeline.core.atomic import write_bytes
        from pipeline.scrape.sources.danbooru_files import FileFail, FileSkip

        pid = post["id"]
        try:
            got = self.fetcher.fetch(post)
        except FileSkip as e:
            if e.reason in ("file_unavailable", "redirect_not_allowed", "md5_mismatch"):
                log.warning("post %s: file %s: %s (%s); skipped", pid, post.get("file_url"), e.reason, e.detail)
            return Outcome(pid, "skip", e.reason, detail=e.detail)
        except FileFail as e:
            log.warning("post %s: %s", pid, e)
            return Outcome(pid, "fail", str(e))
        name = f"{got.md5}.{got.ext}"  # only an md5 and a whitelisted extension reach the path
        if got.downloaded or not (self.out / name).is_file():
            write_bytes(self.out / name, got.data)
        row = {**api.post_columns(post, self.cfg.base_url), "md5": got.md5, "post_md5": str(post["md5"]).lower(),
               "variant": got.variant, "first_frame": got.first_frame, "file_url": got.url, "ext": got.ext,
               "width": got.width, "height": got.height, "source": "danbooru", "path": name,
               "fetched_at": datetime.now(UTC).isoformat(timespec="seconds")}
        return Outcome(pid, "kept", row=row, nbytes=len(got.data) if got.downloaded else 0, downloaded=got.downloaded)

    def api_rate(self) -> float:
        """Requests per second between the first and the last (what the token bucket bounds)."""
        return _rate(self.request_times)

    def files_rate(self) -> float:
        return _rate(self.file_times)

    # -- the walk --------------------------------------------------------------------------------

    def _needed(self) -> int:
        if self.cfg.mode == "incremental":
            return self.cfg.limit - self.new
        return self.cfg.limit - len(self.state.members)

    def _finish(self, o: Outcome) -> None:
        self.touched.add(o.post_id)
        if o.kind == "kept":
            if {o.row["md5"], o.row["post_md5"]} & self.md5s:  # the same file under two ids in one batch
                self._skip(o.post_id, "duplicate_md5")
                return
            self.rows[o.post_id] = o.row
            self.md5s |= {o.row["md5"], o.row["post_md5"]}
            self._record({"t": "post", "id": o.post_id, "row": o.row})
            self.new += 1
            self.result.stats[f"kept_{o.row['variant']}"] = self.result.stats.get(f"kept_{o.row['variant']}", 0) + 1
            if o.row["first_frame"]:
                self.result.stats["kept_first_frame"] = self.result.stats.get("kept_first_frame", 0) + 1
            self.bytes += o.nbytes
            if self._bar is not None:
                self._bar.update(1)
                elapsed = max(time.monotonic() - self.started, 1e-9)
                self._bar.set_postfix(MB=f"{self.bytes / 1e6:.2f}", MBps=f"{self.bytes / 1e6 / elapsed:.2f}",
                                      api=f"{self.api_rate():.2f}/s", files=f"{self.files_rate():.2f}/s", refresh=False)
        elif o.kind == "skip":
            self._skip(o.post_id, o.reason, o.detail)
        else:
            self._record({"t": "fail", "id": o.post_id, "reason": o.reason, "try": self.state.tries[o.post_id] + 1})
            self.result.failed[o.reason] += 1

    def process(self, posts: list[dict], pool: ThreadPoolExecutor) -> tuple[list[int], int, Counter]:
        """Decide ``posts`` in order until enough are kept. Returns the ids decided (a prefix of
        them), how many of them this search holds now, and the reasons of those skipped."""
        pending: dict[Future, str] = {}  # download -> md5
        inflight: set[str] = set()
        done: list[int] = []
        members_before = len(self.state.members)
        skipped_before = Counter(self.result.skipped)

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
                if pid in self.touched or self.decided(pid):
                    continue
                reason = api.screen(post, self.cfg, self.params.max_pixels)
                if reason is None and pid in self.rows:  # held already, from another search
                    self._record({"t": "also", "id": pid})
                    self.touched.add(pid)
                    self.result.skipped["already_held"] += 1
                    continue
                md5 = str(post.get("md5", "")).lower()
                if reason is None and (md5 in self.md5s or md5 in inflight):
                    reason = "duplicate_md5"
                if reason is not None:
                    self._skip(pid, reason)
                    self.touched.add(pid)
                    continue
                inflight.add(md5)
                pending[pool.submit(self.download, post)] = md5
            settle(1)
        except BaseException:
            for f in pending:
                f.cancel()
            raise
        held = len(self.state.members) - members_before
        return done, held, Counter(self.result.skipped) - skipped_before

    def walk(self, pool: ThreadPoolExecutor) -> None:
        s = self.state
        upward = self.cfg.mode == "incremental" and s.high is not None
        cursor = (f"a{s.high}" if upward else (f"b{s.low}" if s.low is not None else None))
        cap = api.page_cap(self.cfg.base_url)
        barren, barren_posts, barren_reasons = 0, 0, Counter()
        while self._needed() > 0:
            page = self.fetch_page(cursor)
            if not page:
                log.info("no more posts for %r", api.search_tags(self.cfg))
                break
            page.sort(key=lambda p: p["id"], reverse=not upward)
            done, held, reasons = self.process(page, pool)
            if done:
                self._record({"t": "cursor", "low": min(done), "high": max(done)})
            cursor = f"a{page[-1]['id']}" if upward else f"b{page[-1]['id']}"
            if cap is not None and len(page) < min(self.cfg.page_size, cap):
                break  # short of the site's documented cap: the last page (elsewhere only an empty page is)
            if held:
                barren, barren_posts, barren_reasons = 0, 0, Counter()
                continue
            barren, barren_posts, barren_reasons = barren + 1, barren_posts + len(page), barren_reasons + reasons
            if barren >= self.cfg.stop_after_barren_pages:
                self.stop_message = skips.barren_message(barren, barren_posts, barren_reasons, api.search_tags(self.cfg))
                self.result.stats["stopped_barren"] = 1
                log.warning("scrape: %s", self.stop_message)
                break

    def recheck(self, pool: ThreadPoolExecutor) -> None:
        """Posts seen before whose skip no longer holds or whose download failed: fetched again by
        id, ``limit`` = the ids asked, before the walk goes on. A post is journaled
        ``no_longer_listed`` only when an answer that could hold it (none of the asked ids came
        back, so no cap cut it off) leaves it out."""
        ids = self.to_recheck()
        if ids:
            log.info("scrape: %d posts seen before are looked at again (a setting changed, or a passing failure)", len(ids))
        for i in range(0, len(ids), _ID_BATCH):
            asked = ids[i:i + _ID_BATCH]
            while asked and self._needed() > 0:
                tags = " ".join(t for t in (f"id:{','.join(map(str, asked))}", api.search_tags(self.cfg)) if t)
                page = [p for p in self.fetch_page(None, tags=tags, limit=len(asked)) if p["id"] in set(asked)]
                if not page:  # nothing of what was asked is listed any more: deleted or retagged since
                    for pid in asked:
                        self._skip(pid, "no_longer_listed")
                        self.touched.add(pid)
                    break
                page.sort(key=lambda p: p["id"], reverse=True)
                self.process(page, pool)
                listed = {p["id"] for p in page}
                asked = [pid for pid in asked if pid not in listed]  # a capped answer: ask for the rest
            if self._needed() <= 0:
                return

    def run(self) -> None:
        from tqdm import tqdm

        from pipeline.core.journal import Journal
        from pipeline.core.ratelimit import TokenBucket
        from pipeline.scrape.sources.danbooru_files import FileFetcher

        if self.cfg.mode == "backfill" and self._needed() <= 0:
            log.info("scrape: %d posts held for %s already (limit %d); no request made",
                     len(self.state.members), self.query, self.cfg.limit)
            return
        self.bucket = TokenBucket(self.cfg.rate)
        self.fetcher = FileFetcher(self.cfg, self.params.max_pixels, self.out, session=lambda: self._session(False),
                                   bucket=TokenBucket(self.cfg.files_rate), policy=self._policy(),
                                   on_retry=self._retried, on_request=self._file_request, saved=lambda: len(self.rows))
        with Journal(self.out / JOURNAL) as self.journal, \
                ThreadPoolExecutor(self.cfg.download_concurrency, thread_name_prefix="download") as pool, \
                tqdm(total=max(self._needed(), 0), desc="scrape (danbooru)", unit="post") as self._bar:
            self.recheck(pool)
            self.walk(pool)


def _rate(times: list[float]) -> float:
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0


def held_elsewhere(out: Path, sources: set[str]) -> set[str]:
    """md5s the manifest lists from ``sources`` (other owners, or runs the journal forgot), files present."""
    from pipeline.scrape.workspace import read_manifest

    m = read_manifest(out, ["md5", "path", "source"])
    if m is None:
        return set()
    return {md5 for md5, path, src in zip(m["md5"], m["path"], m["source"]) if src in sources and (out / path).is_file()}


def scrape_danbooru(params: ScrapeParams, out_dir: str | Path, result, plan) -> Any:
    """Add the search's posts to ``out_dir`` and rebuild its manifest: the rows of the folder's other
    owners stay, those of owners this run replaces go (``plan``, pipeline/scrape/workspace.py)."""
    import pandas as pd

    from pipeline.core.layout import MANIFEST
    from pipeline.scrape import workspace

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    kept_sources = plan.kept_sources()
    run = DanbooruScrape(params, out, result, plan.danbooru_searches(), kept_sources)  # checks the search first
    error: BaseException | None = None
    try:
        run.run()
    except BaseException as e:  # noqa: BLE001 - save what was done, then re-raise
        error = e
    rows = [dict(r) for r in run.rows.values()]
    journal_md5 = {r["md5"] for r in rows}
    old = workspace.read_manifest(out)
    if old is not None:  # other owners' rows (and any a lost journal forgot) stay; toy faces never do
        for r in old.to_dict("records"):
            if r.get("source") in kept_sources and r["md5"] not in journal_md5 and (out / r["path"]).is_file():
                rows.append(r)
                journal_md5.add(r["md5"])
    if rows:
        df = pd.DataFrame(rows)
        df["id"] = df["id"].astype(str)
        # the files of records this run did not read go below, so the records go too
        workspace.commit(out, df, plan, compact=run.foreign)
        listed = set(df["path"])
        for p in out.iterdir():  # a file no record names (killed mid-run on a skipped post): remove
            if p.is_file() and _MD5_NAME.match(p.name) and p.name not in listed:
                p.unlink()
    result.kept = len(rows)
    result.new = run.new
    result.manifest = out / MANIFEST if rows else None
    result.stats.update(api_requests=run.requests, file_requests=len(run.file_times), bytes=run.bytes,
                        api_rate=round(run.api_rate(), 3), files_rate=round(run.files_rate(), 3))
    log.info("scrape (danbooru): %d new, %d held in all; skipped %s; failed %s; %d API requests, %.1f MB",
             run.new, len(rows), dict(result.skipped), dict(result.failed), run.requests, run.bytes / 1e6)
    if error is not None:
        raise error
    if not rows:
        why = f" The walk stopped: {run.stop_message}" if run.stop_message else ""
        raise StageError(f"scrape found no usable post for {api.search_tags(params.danbooru)!r} on "
                         f"{params.danbooru.base_url} (skipped: {dict(result.skipped)}, failed: {dict(result.failed)}).{why}")
    return result
