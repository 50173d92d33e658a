"""Settings of the ``scrape`` stage (``scrape:`` in params.yaml): the source and its knobs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from pipeline.core.settings import IMAGE_EXTENSIONS, Strict


class ToySource(Strict):
    count: int = Field(512, ge=1, le=1_000_000, description="pictures to draw (at most 1,000,000: toy faces are for "
                       "trying the pipeline, and train holds every face in memory)")
    size: int = Field(64, ge=16, le=1024, description="side in px (16..1024, as crop.size)")
    seed: int = Field(0, description="the same seed draws the same toy faces")


DANBOORU_RATINGS = ("g", "s", "q", "e")
DANBOORU_EXTENSIONS = ("jpg", "png", "webp", "gif", "avif")  # images Pillow decodes; never video, zip, swf


class DanbooruSource(Strict):
    """``scrape.source: danbooru`` (pipeline/scrape/sources/danbooru.py). Credentials never live here: they
    come from the environment (DANBOORU_LOGIN, DANBOORU_API_KEY)."""

    base_url: str = Field("https://danbooru.donmai.us", description="any Danbooru-compatible site or mirror")
    tags: str = Field("", description="search tags, space-separated, e.g. '1girl solo'")
    ratings: list[str] = Field(default_factory=lambda: ["g"], description="subset of g, s, q, e")
    limit: int = Field(1000, ge=1, le=100_000_000, description="backfill: posts to hold for this search; incremental: "
                       "most new posts per run (at most 1e8: Danbooru holds under 1e7 posts)")
    min_width: int = Field(
        0, ge=0, description="px; narrower pictures are skipped before any download (width from the post JSON)")
    min_height: int = Field(0, ge=0, description="px; lower pictures are skipped before any download")
    extensions: list[str] = Field(
        default_factory=lambda: ["jpg", "png", "webp", "avif"], description="file types kept (jpg, png, webp, gif, avif); never "
                                                                            "video, ugoira zip or flash")
    exclude_deleted: bool = Field(True, description="sends -status:deleted (a free metatag): the site drops them")
    rate: float = Field(1.0, gt=0, le=10, description="API requests per second (token bucket, no bursts)")
    files_rate: float = Field(2.0, gt=0, le=50, description="file requests per second, shared by all downloads")
    download_concurrency: int = Field(4, ge=1, le=32, description="file downloads at once; they share files_rate")
    variant: Literal["original", "sample"] = Field("sample", description="sample: the 850 px sample where the "
                                                   "post has one (wider pictures), else the original")
    animated: Literal["skip", "first_frame"] = Field("skip", description="animated GIF/PNG/WebP: skip, or keep "
                                                     "their first frame as a PNG")
    stop_after_barren_pages: int = Field(25, ge=1, description="stop a walk after this many pages in a row "
                                         "that kept nothing, naming the skip reason")
    max_post_tries: int = Field(3, ge=1, le=20, description="runs that try a post whose file failed or was "
                                "refused (401/403/404/410) before its skip is final")
    user_agent: str | None = Field(None, description="default boorugan/<version> (+<project url>)")
    allowed_hosts: list[str] = Field(default_factory=lambda: ["*.donmai.us"],
                                     description="file hosts besides the API host; '*.' matches subdomains")
    mode: Literal["backfill", "incremental"] = Field(
        "backfill", description="backfill: older posts until limit are held (page=b<id>); incremental: only posts newer than the "
                                "newest held (page=a<id>), at most limit per run")
    page_size: int = Field(200, ge=1, le=200, description="posts per API request (Danbooru's max is 200)")
    max_retries: int = Field(
        5, ge=0, le=20, description="retries of a request on 429, 5xx, Cloudflare 52x, timeouts, resets, truncated bodies (an "
                                    "md5 mismatch: once)")
    retry_backoff: float = Field(2.0, ge=0, description="first retry wait in s; doubles, +-50% jitter")
    retry_backoff_max: float = Field(120.0, ge=0, description="s, the longest wait between two retries")
    timeout: float = Field(60.0, gt=0, description="seconds per HTTP read")
    max_file_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="bytes; larger files are skipped before any download (file_size from the post "
                                               "JSON)")

    @field_validator("base_url")
    @classmethod
    def _plain_http_url(cls, v: str) -> str:
        from urllib.parse import urlsplit

        u = urlsplit(v)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError("must be an http(s) URL such as https://danbooru.donmai.us")
        if u.username or u.password:
            raise ValueError("must not hold credentials: set DANBOORU_LOGIN and DANBOORU_API_KEY in the environment")
        if u.query or u.fragment:
            raise ValueError("must be the site's root URL, without ?query or #fragment")
        return v.rstrip("/")

    @field_validator("ratings")
    @classmethod
    def _known_ratings(cls, v: list[str]) -> list[str]:
        v = [r.strip().lower() for r in v]
        bad = [r for r in v if r not in DANBOORU_RATINGS]
        if bad or not v:
            raise ValueError(f"unknown rating(s) {bad or v}; allowed: {list(DANBOORU_RATINGS)} "
                             "(g general, s sensitive, q questionable, e explicit)")
        return sorted(set(v), key=DANBOORU_RATINGS.index)

    @field_validator("extensions")
    @classmethod
    def _image_extensions(cls, v: list[str]) -> list[str]:
        v = ["jpg" if e.lower().lstrip(".") == "jpeg" else e.lower().lstrip(".") for e in v]
        bad = [e for e in v if e not in DANBOORU_EXTENSIONS]
        if bad or not v:
            raise ValueError(f"extension(s) {bad or v} not allowed; allowed: {list(DANBOORU_EXTENSIONS)} "
                             "(videos, ugoira zips and flash are never scraped)")
        return sorted(set(v), key=v.index)

    @field_validator("tags")
    @classmethod
    def _cursor_pageable(cls, v: str) -> str:
        if any(t.lower().lstrip("-").startswith(("order:", "ordfav:", "rating:")) for t in v.split()):
            raise ValueError("must not hold order:/ordfav: (paging walks posts by id) or rating: "
                             "(use scrape.danbooru.ratings)")
        return " ".join(v.split())


class ScrapeParams(Strict):
    source: Literal["danbooru", "folder", "toy"] = Field(
        "danbooru", description="where pictures come from: danbooru (a search, needs internet), folder (every image under "
                                "scrape.folder) or toy (procedural faces with known hair and eye colours, no data or network)")
    folder: str | None = Field(None, description="scrape.source=folder: the folder of pictures, read recursively")
    folder_attribute: str | None = Field(None, description="plain class folders (ImageFolder style) under scrape.folder "
                                         "hold values of this attribute, e.g. hair_color; null: only <attribute>=<value> folders")
    folder_labels: str | None = Field("labels.csv", description="a CSV in scrape.folder: a file column (path in the folder) "
                                      "then attribute columns or tags; read when present; null: never")
    extensions: list[str] = Field(
        default_factory=lambda: ["jpg", "jpeg", "png", "webp", "gif"], description="file types a folder import reads")
    max_pixels: int = Field(89_478_485, ge=1, le=1_000_000_000, description="decompression-bomb limit (Pillow's "
                            "default; at most 1e9: one such picture takes 3 GB to decode)")
    toy: ToySource = Field(default_factory=ToySource)
    danbooru: DanbooruSource = Field(default_factory=DanbooruSource)

    @field_validator("extensions")
    @classmethod
    def _known_extensions(cls, v: list[str]) -> list[str]:
        v = [e.lower().lstrip(".") for e in v]
        bad = [e for e in v if e not in IMAGE_EXTENSIONS]
        if bad:
            raise ValueError(f"unknown extension(s) {bad}; allowed: {list(IMAGE_EXTENSIONS)}")
        return v

    @model_validator(mode="after")
    def _folder_needed(self) -> ScrapeParams:
        if self.source == "folder" and not self.folder:
            raise ValueError("scrape.source is 'folder' but scrape.folder is not set; "
                             "set it to a directory of images, e.g. -S scrape.folder=path/to/images")
        return self
