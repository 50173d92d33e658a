"""What a scrape run reports: counts by outcome, shared by every source."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ScrapeResult:
    kept: int = 0                # images the manifest lists
    duplicates: int = 0
    skipped: Counter = field(default_factory=Counter)
    manifest: Path | None = None
    new: int | None = None       # accumulating sources (danbooru): posts added by this run
    failed: Counter = field(default_factory=Counter)  # downloads that gave up (retried next run)
    stats: dict = field(default_factory=dict)         # requests, bytes, rates

    def summary(self) -> dict[str, int]:
        out = {"kept": self.kept, "duplicates": self.duplicates, **{f"skipped_{k}": v for k, v in sorted(self.skipped.items())}}
        if self.new is not None:
            out["new"] = self.new
        out.update({f"failed_{k.replace(' ', '_')}": v for k, v in sorted(self.failed.items())})
        out.update(self.stats)
        return out
