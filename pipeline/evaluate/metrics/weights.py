"""The Inception weights on disk: an offline copy, the cache, or a checksum-verified download.

Anything that stops us from having the exact file raises ``WeightsUnavailable`` with the reason and
what to do, so evaluate reports the Inception metrics as unavailable instead of failing or faking them.
The reason holds for every model evaluated with the same params, so the registry tries once per
process (and per pipeline run) and reports it once.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from pipeline.evaluate.metrics.errors import MetricUnavailable
from pipeline.evaluate.params import InceptionParams

log = logging.getLogger(__name__)


class WeightsUnavailable(MetricUnavailable):
    """The metric's weights cannot be had here: the same for every model, so tried and reported once."""


def expected_sha256(cfg: InceptionParams) -> str | None:
    """The configured sha256 (full or prefix), else the hex suffix torch.hub puts in file names."""
    if cfg.sha256:
        return cfg.sha256.lower()
    m = re.search(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$", cfg.url.rsplit("/", 1)[-1])
    return m.group(1) if m else None


def verify(path: Path, sha: str | None) -> None:
    from pipeline.core.download import ChecksumError, sha256_of

    if sha is None:
        return
    got = sha256_of(path)
    if not got.startswith(sha):
        raise ChecksumError(f"{path}: sha256 {got} does not match the expected {sha}")


def inception_weights(cfg: InceptionParams, cache: Path | None = None) -> Path:
    """Path to verified weights, downloading into ``cache`` (default $BOORUGAN_CACHE/inception) once."""
    from pipeline.core.cache import cache_dir
    from pipeline.core.download import DownloadError, download

    sha = expected_sha256(cfg)
    if cfg.weights_path:
        path = Path(cfg.weights_path)
        if not path.is_file():
            raise WeightsUnavailable(f"evaluate.inception.weights_path {path} does not exist")
        try:
            verify(path, sha if cfg.sha256 else None)  # an offline copy may be any file name: check only a given sha
        except DownloadError as e:
            raise WeightsUnavailable(str(e)) from None
        return path
    name = cfg.url.rsplit("/", 1)[-1]
    path = (cache or cache_dir() / "inception") / name
    if path.is_file():
        return path
    if not cfg.download:
        raise WeightsUnavailable(f"Inception weights not found at {path} and evaluate.inception.download is false; "
                                f"put {name} there or set evaluate.inception.weights_path")
    staging = path.with_name(name + ".unverified")
    try:
        download(cfg.url, staging, retries=cfg.retries)
        verify(staging, sha)
    except DownloadError as e:
        staging.unlink(missing_ok=True)
        raise WeightsUnavailable(f"Inception weights could not be fetched ({e}); copy {name} to {path} or set "
                                "evaluate.inception.weights_path") from None
    staging.replace(path)
    log.info("Inception weights verified and cached at %s", path)
    return path
