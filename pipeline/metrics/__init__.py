"""Metric registry: name -> function(EvalContext) -> {metric: value}.

Each metric is a pure function of real and generated faces (uint8 NHWC) and its params, so
evaluate can run any subset and new metrics register without touching the stage. A metric that
cannot be computed here raises ``MetricUnavailable``; ``compute`` records the reason instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from pipeline.params import EvaluateParams


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


log = logging.getLogger(__name__)
MetricFn = Callable[[EvalContext], dict[str, float]]
METRICS: dict[str, MetricFn] = {}


def register(name: str) -> Callable[[MetricFn], MetricFn]:
    def deco(fn: MetricFn) -> MetricFn:
        METRICS[name] = fn
        return fn
    return deco


def ssl_feature_pair(ctx: EvalContext) -> tuple[np.ndarray, np.ndarray]:
    if "ssl" not in ctx.cache:
        from pipeline.metrics.ssl_features import extract, load_or_train

        net = load_or_train(ctx.real, ctx.real_digest, ctx.params.feature_net, ctx.device)
        ctx.cache["ssl"] = (extract(net, ctx.real, ctx.params.batch_size, ctx.device),
                            extract(net, ctx.fake, ctx.params.batch_size, ctx.device))
    return ctx.cache["ssl"]


@register("ssl_fd")
def ssl_fd(ctx: EvalContext) -> dict[str, float]:
    """Fréchet distance in the rotation-net feature space, beside real-vs-real (two halves) for scale."""
    from pipeline.metrics.frechet import frechet_between

    real, fake = ssl_feature_pair(ctx)
    perm = np.random.default_rng(ctx.params.seed).permutation(len(real))
    half = len(real) // 2
    return {"ssl_fd": frechet_between(real, fake),
            "ssl_fd_real_halves": frechet_between(real[perm[:half]], real[perm[half:2 * half]])}


def compute(names: list[str], ctx: EvalContext) -> tuple[dict[str, float], dict[str, str]]:
    """(values, unavailable): each metric's numbers, or the reason it has none."""
    from pipeline.metrics.errors import MetricUnavailable

    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; known: {sorted(METRICS)}")
    out: dict[str, float] = {}
    unavailable: dict[str, str] = {}
    for n in names:
        try:
            out.update(METRICS[n](ctx))
        except MetricUnavailable as e:
            log.warning("metric %s unavailable: %s", n, e)
            unavailable[n] = str(e)
    return out, unavailable


from pipeline.metrics import builtin  # noqa: E402,F401  (registers the other metrics)
