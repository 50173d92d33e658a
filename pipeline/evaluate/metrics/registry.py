"""Metric registry: name -> function(EvalContext) -> {metric: value}.

Each metric is a pure function of real and generated faces (uint8 NHWC) and its params, so
evaluate can run any subset. A metric that cannot be computed here raises ``MetricUnavailable``;
``compute`` records the reason instead. Heavy imports stay inside the functions. The names are
also the allowed values of ``evaluate.metrics`` (``pipeline.evaluate.params.MetricName``), checked equal by
a test.
"""

from __future__ import annotations

import logging

import numpy as np

from pipeline.evaluate.metrics.context import EvalContext, MetricFn, ssl_feature_pair, ssl_net
from pipeline.evaluate.metrics.errors import MetricUnavailable

log = logging.getLogger(__name__)


def ssl_fd(ctx: EvalContext) -> dict[str, float]:
    """Fréchet distance in the rotation-net feature space, with the scale to read it on: real vs real
    (two halves, the floor a perfect generator reaches) and uniform noise (what drawing nothing gets)."""
    from pipeline.evaluate.metrics.frechet import frechet_between
    from pipeline.evaluate.metrics.ssl_features import noise_distance

    real, fake = ssl_feature_pair(ctx)
    perm = np.random.default_rng(ctx.params.seed).permutation(len(real))
    half = len(real) // 2
    return {"ssl_fd": frechet_between(real, fake),
            "ssl_fd_real_halves": frechet_between(real[perm[:half]], real[perm[half:2 * half]]),
            "ssl_fd_noise": noise_distance(ssl_net(ctx), real, ctx.real_digest, ctx.params.feature_net, ctx.fake.shape,
                                           ctx.params.batch_size, ctx.device)}


def ssl_kid(ctx: EvalContext) -> dict[str, float]:
    """KID on the rotation-net features (unbiased: ~0 for a generator matching the data)."""
    from pipeline.evaluate.metrics.kid import kid

    real, fake = ssl_feature_pair(ctx)
    inc = ctx.params.inception
    mean, std = kid(real, fake, inc.kid_subsets, inc.kid_subset_size, ctx.params.seed, ctx.device)
    return {"ssl_kid": mean, "ssl_kid_std": std}


def c2st(ctx: EvalContext) -> dict[str, float]:
    from pipeline.evaluate.metrics.c2st import c2st_accuracy

    real, fake = ssl_feature_pair(ctx)
    c = ctx.params.c2st
    mean, std = c2st_accuracy(real, fake, seeds=c.seeds, max_per_class=c.max_per_class, test_fraction=c.test_fraction,
                              steps=c.steps, hidden=c.hidden, lr=c.lr, device=ctx.device)
    return {"c2st_acc": mean, "c2st_acc_std": std}


def diversity(ctx: EvalContext) -> dict[str, float]:
    from pipeline.evaluate.metrics.diversity import diversity as div

    real, fake = ssl_feature_pair(ctx)
    d = ctx.params.diversity
    return div(real, fake, d.near_duplicate_quantile, d.max_samples, ctx.params.seed)


def inception(ctx: EvalContext) -> dict[str, float]:
    """FID, KID, IS, precision/recall (torch-fidelity); unavailable without the weights."""
    from pipeline.core.cache import cache_dir
    from pipeline.evaluate.metrics import inception as inc
    from pipeline.evaluate.metrics.weights import WeightsUnavailable, inception_weights

    cfg = ctx.params.inception
    weights = inception_weights(cfg)
    try:
        net = inc.load_extractor(weights, ctx.device)
    except Exception as e:  # a truncated or foreign file that passed no checksum (offline copies)
        raise WeightsUnavailable(f"{weights} is not a usable Inception state_dict: {type(e).__name__}: {e}") from None
    bs = min(ctx.params.batch_size, 64)
    real = inc.real_features_cached(net, ctx.real, ctx.real_digest, weights, bs, ctx.device,
                                    cache_dir() / "inception" / "reference")
    fake = inc.extract(net, ctx.fake, bs, ctx.device)
    return inc.scores(real, fake, cfg, ctx.params.seed)


def attr_acc(ctx: EvalContext) -> dict[str, float]:
    """Conditional models only: share of samples showing the requested attribute value."""
    from pipeline.evaluate.metrics.attributes import attribute_accuracy

    if not ctx.requested:
        raise MetricUnavailable("the model is unconditional: no requested attributes to check")
    if ctx.readers is None:
        raise MetricUnavailable("no attribute reader for this data (toy faces have one; real faces need the tagger)")
    return attribute_accuracy(np.asarray(ctx.fake), ctx.requested, ctx.readers)


def memorization(ctx: EvalContext) -> dict[str, float]:
    """Copies of training faces: samples' nearest-training distances against held-out real faces'
    (pipeline/evaluate/metrics/memorization.py). The closest pairs go to ``ctx.cache["closest"]``
    as (sample index, real index, distance) for the stage to draw."""
    from pipeline.evaluate.metrics.memorization import memorization as mem

    held = ctx.holdout if ctx.holdout is not None else np.zeros(len(ctx.real), bool)
    if held.sum() < 2 or (~held).sum() < 1:
        raise MetricUnavailable(f"{int(held.sum())} of {len(held)} real faces are held out from training; it needs at "
                                f"least 2 (raise evaluate.holdout, now {ctx.params.holdout}, or crop more faces)")
    real, fake = ssl_feature_pair(ctx)
    m = ctx.params.memorization
    values, closest = mem(real[~held], real[held], fake, m.quantile, m.pairs)
    trained = np.flatnonzero(~held)
    ctx.cache["closest"] = [(s, int(trained[t]), d) for s, t, d in closest]
    return {**values, "memorization_holdout": int(held.sum())}


def prdc(ctx: EvalContext) -> dict[str, float]:
    """Precision, recall, density, coverage (Naeem et al. 2020) on the rotation-net features."""
    from pipeline.evaluate.metrics.prdc import prdc as pr

    real, fake = ssl_feature_pair(ctx)
    k = ctx.params.prdc.k
    if min(len(real), len(fake)) <= k:
        raise MetricUnavailable(f"needs more than k = {k} real and generated faces, got {len(real)} and {len(fake)}")
    return {f"ssl_{name}": v for name, v in pr(real, fake, k).items()}


METRICS: dict[str, MetricFn] = {
    "ssl_fd": ssl_fd,
    "ssl_kid": ssl_kid,
    "c2st": c2st,
    "diversity": diversity,
    "inception": inception,
    "attr_acc": attr_acc,
    "memorization": memorization,
    "prdc": prdc,
}


# Reasons that hold for every model (weights that cannot be fetched), keyed by metric and params:
# this process's, and with $BOORUGAN_PIPELINE_RUN set a marker in the cache shared by the stage
# processes of one pipeline run (`dvc repro` runs each evaluate@<model> in its own process).
_KNOWN: dict[str, str] = {}


def _key(name: str, ctx: EvalContext) -> str:
    """The metric under these params and this cache (where its weights would be)."""
    import hashlib

    from pipeline.core.cache import cache_dir

    blob = f"{ctx.params.model_dump_json()}|{cache_dir()}"
    return f"{name}:{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def _marker():
    import hashlib
    import os

    from pipeline.core.cache import cache_dir

    run = os.environ.get("BOORUGAN_PIPELINE_RUN")
    return cache_dir() / "unavailable" / f"{hashlib.sha256(run.encode()).hexdigest()[:24]}.json" if run else None


def known_unavailable(key: str) -> str | None:
    """The reason already found for ``key`` in this process or pipeline run, else None."""
    import json

    if key in _KNOWN:
        return _KNOWN[key]
    marker = _marker()
    if marker is not None and marker.is_file():
        try:
            found = json.loads(marker.read_text()).get(key)
        except (OSError, ValueError):
            return None
        if isinstance(found, str):
            _KNOWN[key] = found
            return found
    return None


def remember_unavailable(key: str, reason: str) -> None:
    import json

    from pipeline.core.atomic import write_json

    _KNOWN[key] = reason
    marker = _marker()
    if marker is None:
        return
    try:
        seen = json.loads(marker.read_text()) if marker.is_file() else {}
    except (OSError, ValueError):
        seen = {}
    write_json(marker, {**seen, key: reason})


def forget_unavailable() -> None:
    """Try every metric again (weights were put in place since)."""
    _KNOWN.clear()


def compute(names: list[str], ctx: EvalContext) -> tuple[dict[str, float], dict[str, str]]:
    """(values, unavailable): each metric's numbers, or the reason it has none. A metric whose
    weights cannot be had is tried and warned about once per process / pipeline run."""
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; known: {sorted(METRICS)}")
    from pipeline.evaluate.metrics.weights import WeightsUnavailable

    out: dict[str, float] = {}
    unavailable: dict[str, str] = {}
    for n in names:
        key = _key(n, ctx)
        if (why := known_unavailable(key)) is not None:
            log.info("metric %s unavailable (reported above, not tried again)", n)
            unavailable[n] = why
            continue
        try:
            out.update(METRICS[n](ctx))
        except WeightsUnavailable as e:
            log.warning("metric %s unavailable: %s", n, e)
            unavailable[n] = str(e)
            remember_unavailable(key, str(e))
        except MetricUnavailable as e:
            log.warning("metric %s unavailable: %s", n, e)
            unavailable[n] = str(e)
    return out, unavailable
