"""Where raw images come from, by ``scrape.source`` name.

A snapshot source (toy, folder) yields ``Candidate`` items that the scrape stage checks, dedupes
and stores, so the folder then holds exactly its images. An accumulating source (danbooru) keeps
what earlier runs stored and runs its own resumable loop with the same file guarantees: it is a
function ``(params, out_dir, result, plan) -> result`` (``plan``: pipeline/scrape/workspace.py).
``check`` refuses bad params of the source before the folder's owners are looked at.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.scrape.sources.danbooru import scrape_danbooru
from pipeline.scrape.sources.danbooru_api import check_params
from pipeline.scrape.sources.folder import check_folder, iter_folder, remember_folder
from pipeline.scrape.sources.toy import iter_toy


@dataclass(frozen=True)
class Source:
    function: Callable[..., Any]  # the source itself (none imports more than numpy at import time)
    accumulates: bool     # False: yields Candidates (a snapshot); True: stores into out_dir itself
    checker: Callable[[Any], None] | None = None  # (params) -> None, raising StageError; no I/O beyond a stat
    remember: Callable[[Any, list[tuple]], None] | None = None  # (params, scan rows): what a snapshot run learnt

    def load(self) -> Callable[..., Any]:
        return self.function

    def check(self, params) -> None:
        if self.checker:
            self.checker(params)


SOURCES: dict[str, Source] = {
    "toy": Source(iter_toy, accumulates=False),
    "folder": Source(iter_folder, accumulates=False, checker=check_folder, remember=remember_folder),
    "danbooru": Source(scrape_danbooru, accumulates=True, checker=check_params),
}


def get_source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise ValueError(f"unknown scrape.source {name!r}; known: {sorted(SOURCES)}") from None
