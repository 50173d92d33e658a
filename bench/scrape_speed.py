"""Danbooru scraper speed against the project's local Danbooru-compatible server.

1. API rate: a walk whose posts are all too small to download (pure paging), per configured
   ``scrape.danbooru.rate``; the achieved rate is (requests - 1) / (last - first request time) as the
   server saw them. It must stay <= the configured rate and reach >= 90 % of it.
2. File rate: ``scrape.danbooru.files_rate`` configured vs achieved, as the server saw the file
   requests, with ``download_concurrency`` threads sharing the bucket (it must never be exceeded).
3. Download throughput: files/s and MB/s per ``download_concurrency`` (files_rate out of the way).
4. Bytes per kept post, ``variant: original`` vs ``sample``, on posts of realistic sizes: the
   dimensions and formats of the real 2020 search page in ``danbooru-posts`` (when the shared data
   is there; else the same built-in list), files generated with grain so they weigh about what the
   JSON's ``file_size`` says the real ones weigh.

    python bench/scrape_speed.py                     # defaults below, about two minutes
    python bench/scrape_speed.py --rates 1 2 5 --latency 0.1 --concurrency 1 4 8 --files-rates 1 2 4
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from pipeline.params import load_params  # noqa: E402
from pipeline.scrape.stage import scrape  # noqa: E402

from fakes.danbooru_server import PLACEHOLDER, DanbooruServer, _picture, encode, make_posts, register_file, sample_of  # noqa: E402


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


def files_rate(rate: float, concurrency: int, latency: float, posts: list[dict]) -> dict:
    with DanbooruServer(posts, latency=latency) as server, tempfile.TemporaryDirectory() as tmp:
        p = params(server.url, "scrape.danbooru.rate=10", "scrape.danbooru.min_width=0", f"scrape.danbooru.files_rate={rate}",
                   f"scrape.danbooru.download_concurrency={concurrency}", f"scrape.danbooru.limit={len(posts)}")
        result = scrape(p, Path(tmp) / "raw")
        t = server.file_times()
        gaps = [b - a for a, b in zip(t, t[1:])]
        return {"configured": rate, "files": result.new, "achieved": (len(t) - 1) / (t[-1] - t[0]),
                "min_gap": min(gaps), "client": result.stats["files_rate"]}


# (width, height, ext, file_size) of the real 2020 page's posts, used when the shared data is absent
_REALISTIC = [(1037, 988, "png", 913112), (1300, 1300, "jpg", 1319554), (800, 1179, "jpg", 584361),
              (515, 706, "png", 652779), (1232, 1648, "png", 1625333), (1000, 1400, "jpg", 484986),
              (700, 1149, "jpg", 93188), (684, 905, "png", 962601), (778, 1254, "png", 954930),
              (1800, 1069, "jpg", 793684)]


def realistic_shapes() -> tuple[list[tuple[int, int, str, int]], str]:
    data = Path(os.environ.get("BOORUGAN_SHARED_DATA", ROOT.parent / "shared" / "data")) / "danbooru-posts"
    page = data / "imgbrd_search_2020.json"
    if page.is_file():
        posts = json.loads(page.read_text())
        return [(p["image_width"], p["image_height"], p["file_ext"], p["file_size"]) for p in posts], str(page.name)
    return _REALISTIC, "built-in list (shared data absent)"


def realistic_posts(shapes, noise: float) -> list[dict]:
    """Posts of those sizes and formats; grain so the files weigh about what real ones do."""
    posts = []
    for i, (w, h, ext, _) in enumerate(shapes):
        post = make_posts(1, start_id=200_000 + i, size=8)[0]
        data = encode(_picture(200_000 + i, 1, w, h, noise), ext)
        md5 = register_file(data)
        has_large = w > 850
        if has_large:
            register_file(sample_of(data), key=f"sample-{md5}")
        path = f"{md5[:2]}/{md5[2:4]}/{md5}"
        post.update(md5=md5, file_ext=ext, file_size=len(data), image_width=w, image_height=h, has_large=has_large,
                    file_url=f"{PLACEHOLDER}/original/{path}.{ext}",
                    large_file_url=(f"{PLACEHOLDER}/sample/{md5[:2]}/{md5[2:4]}/sample-{md5}.jpg" if has_large
                                    else f"{PLACEHOLDER}/original/{path}.{ext}"))
        post.pop("media_asset")  # 2020 JSON: samples found from large_file_url
        posts.append(post)
    return posts


def bytes_per_post(variant: str, posts: list[dict]) -> dict:
    with DanbooruServer(posts) as server, tempfile.TemporaryDirectory() as tmp:
        p = params(server.url, "scrape.danbooru.rate=10", "scrape.danbooru.files_rate=20", "scrape.danbooru.min_width=0",
                   f"scrape.danbooru.variant={variant}", f"scrape.danbooru.limit={len(posts)}")
        t0 = time.perf_counter()
        result = scrape(p, Path(tmp) / "raw")
        return {"variant": variant, "kept": result.new, "bytes": result.stats["bytes"],
                "per_post": result.stats["bytes"] / max(result.new, 1), "samples": result.stats.get("kept_sample", 0),
                "wall_s": time.perf_counter() - t0}


def downloads(concurrency: int, latency: float, posts: list[dict]) -> dict:
    with DanbooruServer(posts, latency=latency) as server, tempfile.TemporaryDirectory() as tmp:
        p = params(server.url, "scrape.danbooru.rate=10", "scrape.danbooru.files_rate=50", "scrape.danbooru.min_width=0",
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
    ap.add_argument("--files-rates", type=float, nargs="+", default=[1.0, 2.0, 5.0], help="files_rate values to measure")
    ap.add_argument("--rate-files", type=int, default=16, help="files per files_rate measurement")
    ap.add_argument("--noise", type=float, default=4.0, help="grain of the realistic posts' pictures")
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

    small = make_posts(args.rate_files, start_id=300_000, size=32)
    print(f"\n## File rate ({args.rate_files} files, download_concurrency 4, latency {args.latency * 1000:.0f} ms; "
          "as the server saw the requests)\n")
    print("| configured files/s | files | achieved files/s | achieved / configured | smallest gap s (1/rate) |")
    print("|---|---|---|---|---|")
    files_ok = True
    for rate in args.files_rates:
        r = files_rate(rate, 4, args.latency, small)
        files_ok &= r["achieved"] <= rate
        print(f"| {rate:g} | {r['files']} | {r['achieved']:.3f} | {r['achieved'] / rate:.3f} | {r['min_gap']:.3f} "
              f"({1 / rate:.3f}) |", flush=True)

    shapes, origin = realistic_shapes()
    posts = realistic_posts(shapes, args.noise)
    real = sum(s[3] for s in shapes) / len(shapes)
    made = sum(p["file_size"] for p in posts) / len(posts)
    wide = sum(s[0] > 850 for s in shapes)
    print(f"\n## Bytes per kept post ({len(posts)} posts shaped as {origin}: {wide} wider than 850 px; originals "
          f"generated {made / 1e6:.2f} MB on average, the real ones {real / 1e6:.2f} MB)\n")
    print("| variant | kept | samples | MB downloaded | KB per kept post | vs original |")
    print("|---|---|---|---|---|---|")
    base = None
    for variant in ("original", "sample"):
        b = bytes_per_post(variant, posts)
        base = base or b["per_post"]
        print(f"| {variant} | {b['kept']} | {b['samples']} | {b['bytes'] / 1e6:.2f} | {b['per_post'] / 1e3:.0f} | "
              f"{b['per_post'] / base:.2f}x |", flush=True)
    print(f"\nAPI rate within [0.9, 1.0] x configured: {'yes' if ok else 'NO'}; file rate never over files_rate: "
          f"{'yes' if files_ok else 'NO'}")
    sys.exit(0 if ok and files_ok else 1)


if __name__ == "__main__":
    main()
