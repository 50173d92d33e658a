"""Danbooru scraper speed against the project's local Danbooru-compatible server.

1. API rate: a walk whose posts are all too small to download (pure paging), per configured
   ``scrape.danbooru.rate``; the achieved rate is (requests - 1) / (last - first request time) as the
   server saw them. It must stay <= the configured rate and reach >= 90 % of it.
2. Download throughput: files/s and MB/s per ``download_concurrency`` with the same per-request
   latency on every file.

    python bench/scrape_speed.py                     # defaults below, about a minute
    python bench/scrape_speed.py --rates 1 2 5 --latency 0.1 --concurrency 1 4 8
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fakes.danbooru_server import DanbooruServer, make_posts  # noqa: E402
from pipeline.params import load_params  # noqa: E402
from pipeline.scrape.stage import scrape  # noqa: E402


def params(url: str, *extra: str):
    return load_params(ROOT / "params.yaml", [
        "scrape.source=danbooru", f"scrape.danbooru.base_url={url}", "scrape.danbooru.tags=",
        "scrape.danbooru.min_height=0", "scrape.danbooru.retry_backoff=0.01", *extra]).scrape


def server_rate(server: DanbooruServer) -> float:
    t = [t for t, path in server.request_times if path.startswith("/posts.json")]
    return (len(t) - 1) / (t[-1] - t[0])


def api_rate(rate: float, pages: int, latency: float, posts: list[dict]) -> dict:
    with DanbooruServer(posts, latency=latency) as server, tempfile.TemporaryDirectory() as tmp:
        # every post is under min_width: pure paging, nothing downloaded; the walk ends on the short last page
        p = params(server.url, f"scrape.danbooru.rate={rate}", f"scrape.danbooru.page_size={len(posts) // pages}",
                   "scrape.danbooru.min_width=100000", f"scrape.danbooru.limit={len(posts)}")
        t0 = time.perf_counter()
        try:
            scrape(p, Path(tmp) / "raw")
        except Exception as e:  # noqa: BLE001 - "no usable post" is expected: nothing was meant to be kept
            assert "no usable post" in str(e), e
        elapsed = time.perf_counter() - t0
        achieved = server_rate(server)
        return {"configured": rate, "requests": len(server.api_requests), "achieved": achieved,
                "ratio": achieved / rate, "wall_s": elapsed}


def downloads(concurrency: int, latency: float, posts: list[dict]) -> dict:
    with DanbooruServer(posts, latency=latency) as server, tempfile.TemporaryDirectory() as tmp:
        p = params(server.url, "scrape.danbooru.rate=10", "scrape.danbooru.min_width=0",
                   f"scrape.danbooru.download_concurrency={concurrency}", f"scrape.danbooru.limit={len(posts)}")
        result = scrape(p, Path(tmp) / "raw")
        files = [t for t, path in server.request_times if not path.startswith("/posts.json")]
        span = files[-1] - files[0] + latency  # from the first file request to the last answer
        return {"concurrency": concurrency, "files": result.new, "files_per_s": result.new / span,
                "mb_per_s": result.stats["bytes"] / 1e6 / span, "mb": result.stats["bytes"] / 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", type=float, nargs="+", default=[1.0, 2.0, 5.0])
    ap.add_argument("--pages", type=int, default=8, help="API requests per rate measurement (+1 short last page)")
    ap.add_argument("--latency", type=float, default=0.05, help="seconds the server waits before every answer")
    ap.add_argument("--files", type=int, default=120)
    ap.add_argument("--size", type=int, default=256, help="image side in px")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    posts = make_posts(args.pages * 25 + 5, size=32)
    print(f"## API rate (latency {args.latency * 1000:.0f} ms per request, {args.pages * 25 + 5} posts, nothing downloaded)\n")
    print("| configured req/s | requests | achieved req/s | achieved / configured | wall s |")
    print("|---|---|---|---|---|")
    ok = True
    for rate in args.rates:
        r = api_rate(rate, args.pages, args.latency, posts)
        ok &= 0.9 <= r["ratio"] <= 1.0
        print(f"| {rate:g} | {r['requests']} | {r['achieved']:.3f} | {r['ratio']:.3f} | {r['wall_s']:.1f} |", flush=True)

    files = make_posts(args.files, start_id=100_000, size=args.size)
    print(f"\n## Downloads ({args.files} files of {args.size}px PNG, latency {args.latency * 1000:.0f} ms per request)\n")
    print("| download_concurrency | files | files/s | MB/s |")
    print("|---|---|---|---|")
    for c in args.concurrency:
        d = downloads(c, args.latency, files)
        print(f"| {c} | {d['files']} | {d['files_per_s']:.1f} | {d['mb_per_s']:.2f} |", flush=True)
    print(f"\nAPI rate within [0.9, 1.0] x configured: {'yes' if ok else 'NO'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
