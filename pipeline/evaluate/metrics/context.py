"""What every metric sees: the real and generated faces, their params, and features computed once
and shared between metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.evaluate.params import EvaluateParams


@dataclass
class EvalContext:
    real: np.ndarray
    fake: np.ndarray
    real_digest: str
    params: EvaluateParams
    device: str = "cpu"
    cache: dict[str, Any] = field(default_factory=dict)  # features shared between metrics
    requested: dict[str, list[str | None]] | None = None  # conditional models: attribute -> value asked per sample
    readers: dict[str, Callable[[np.ndarray], list[str]]] | None = None  # attribute -> reads it off N images
    holdout: np.ndarray | None = None  # per real face: True if train never saw it (evaluate.holdout)


MetricFn = Callable[["EvalContext"], dict[str, float]]


def ssl_net(ctx: EvalContext):
    """The rotation-prediction feature net of this real set (trained once, cached on disk)."""
    if "ssl_net" not in ctx.cache:
        from pipeline.evaluate.metrics.ssl_features import load_or_train

        ctx.cache["ssl_net"] = load_or_train(ctx.real, ctx.real_digest, ctx.params.feature_net, ctx.device)
    return ctx.cache["ssl_net"]


def ssl_feature_pair(ctx: EvalContext) -> tuple[np.ndarray, np.ndarray]:
    if "ssl" not in ctx.cache:
        from pipeline.evaluate.metrics.ssl_features import extract

        net = ssl_net(ctx)
        ctx.cache["ssl"] = (extract(net, ctx.real, ctx.params.batch_size, ctx.device),
                            extract(net, ctx.fake, ctx.params.batch_size, ctx.device))
    return ctx.cache["ssl"]
