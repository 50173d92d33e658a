"""The metrics evaluate can run, registered by name. Heavy imports stay inside the functions so
loading params (which validates metric names) stays instant."""

from __future__ import annotations

import numpy as np

from pipeline.metrics import EvalContext, register, ssl_feature_pair
from pipeline.metrics.errors import MetricUnavailable


@register("ssl_kid")
def ssl_kid(ctx: EvalContext) -> dict[str, float]:
    """KID on the rotation-net features (unbiased: ~0 for a generator matching the data)."""
    from pipeline.metrics.kid import kid

    real, fake = ssl_feature_pair(ctx)
    inc = ctx.params.inception
    mean, std = kid(real, fake, inc.kid_subsets, inc.kid_subset_size, ctx.params.seed, ctx.device)
    return {"ssl_kid": mean, "ssl_kid_std": std}


@register("c2st")
def c2st(ctx: EvalContext) -> dict[str, float]:
    from pipeline.metrics.c2st import c2st_accuracy

    real, fake = ssl_feature_pair(ctx)
    c = ctx.params.c2st
    mean, std = c2st_accuracy(real, fake, seeds=c.seeds, max_per_class=c.max_per_class, test_fraction=c.test_fraction,
                              steps=c.steps, hidden=c.hidden, lr=c.lr, device=ctx.device)
    return {"c2st_acc": mean, "c2st_acc_std": std}


@register("diversity")
def diversity(ctx: EvalContext) -> dict[str, float]:
    from pipeline.metrics.diversity import diversity as div

    real, fake = ssl_feature_pair(ctx)
    d = ctx.params.diversity
    return div(real, fake, d.near_duplicate_quantile, d.max_samples, ctx.params.seed)


@register("inception")
def inception(ctx: EvalContext) -> dict[str, float]:
    """FID, KID, IS, precision/recall (torch-fidelity); unavailable without the weights."""
    from pipeline.cache import cache_dir
    from pipeline.metrics import inception as inc
    from pipeline.metrics.weights import inception_weights

    cfg = ctx.params.inception
    weights = inception_weights(cfg)
    try:
        net = inc.load_extractor(weights, ctx.device)
    except Exception as e:  # a truncated or foreign file that passed no checksum (offline copies)
        raise MetricUnavailable(f"{weights} is not a usable Inception state_dict: {type(e).__name__}: {e}") from None
    bs = min(ctx.params.batch_size, 64)
    real = inc.real_features_cached(net, ctx.real, ctx.real_digest, weights, bs, ctx.device,
                                    cache_dir() / "inception" / "reference")
    fake = inc.extract(net, ctx.fake, bs, ctx.device)
    return inc.scores(real, fake, cfg, ctx.params.seed)


@register("attr_acc")
def attr_acc(ctx: EvalContext) -> dict[str, float]:
    """Conditional models only: share of samples showing the requested attribute value."""
    from pipeline.metrics.attributes import attribute_accuracy

    if not ctx.requested:
        raise MetricUnavailable("the model is unconditional: no requested attributes to check")
    if ctx.readers is None:
        raise MetricUnavailable("no attribute reader for this data (toy faces have one; real faces need the tagger)")
    return attribute_accuracy(np.asarray(ctx.fake), ctx.requested, ctx.readers)
