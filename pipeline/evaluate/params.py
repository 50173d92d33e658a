"""Settings of the ``evaluate`` stage (``evaluate:`` in params.yaml): metrics and their networks."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, field_validator

from pipeline.core.settings import BATCH_WHY, Strict


class FeatureNetParams(Strict):
    """Self-supervised (rotation prediction) feature network for the offline Fréchet distance."""

    epochs: int = Field(10, ge=1, le=10_000, description="at most 10,000: the features settle within tens")
    max_images: int = Field(5000, ge=8, le=1_000_000, description="at most 1,000,000 (held in memory)")
    batch_size: int = Field(128, ge=2, le=16_384, description=f"at most 16,384: {BATCH_WHY}")
    lr: float = Field(1e-3, gt=0, description="learning rate of the rotation-prediction feature net")
    width: int = Field(64, ge=4, le=1024, description="channels of the first conv; features are 8x this (at most "
                       "1024: 8192-d features, 16x those of Inception's 512)")
    seed: int = Field(0, description="its seed (the net is cached per dataset and these settings)")


class InceptionParams(Strict):
    """The standard FID/KID/IS/PR feature network (torch-fidelity's port of the 2015 TF Inception)."""

    url: str = Field("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
                     description="where the Inception weights are downloaded from on first use")
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{8,64}$",
                               description="full sha256 or a prefix; null: the hex suffix of the file name "
                                           "(torch.hub convention)")
    weights_path: str | None = Field(None, description="an offline copy of the weights; "
                                                       "default $BOORUGAN_CACHE/inception/<file name>")
    download: bool = Field(True, description="fetch missing weights on first use; false: report the metrics unavailable")
    retries: int = Field(1, ge=0, description="download attempts after the first")
    kid_subsets: int = Field(100, ge=1, le=10_000, description="at most 10,000 (the reference uses 100)")
    kid_subset_size: int = Field(1000, ge=2, le=200_000, description="clamped to the smaller set (at most "
                                 "200,000, as evaluate.num_samples)")
    isc_splits: int = Field(10, ge=1, le=1000, description="at most 1000 (the reference uses 10)")
    prc_neighborhood: int = Field(3, ge=1, le=1000, description="k of Kynkäänniemi et al. precision/recall (at most 1000)")


class C2STParams(Strict):
    """Classifier two-sample test on the ssl features: fixed budget so runs compare."""

    test_fraction: float = Field(0.3, gt=0, lt=1, description="share of the features held out to score the classifier")
    max_per_class: int = Field(2000, ge=4, le=200_000, description="at most 200,000, as evaluate.num_samples")
    steps: int = Field(300, ge=1, le=1_000_000, description="full-batch Adam steps of the MLP (at most 1e6)")
    hidden: int = Field(64, ge=1, le=16_384, description="at most 16,384 units")
    lr: float = Field(1e-2, gt=0, description="the classifier's learning rate")
    seeds: list[int] = Field(
        default_factory=lambda: [0, 1, 2], min_length=1, description="one classifier per seed; the accuracy is their mean")


class DiversityParams(Strict):
    near_duplicate_quantile: float = Field(0.01, gt=0, lt=1, description="a sample is a near-duplicate when its nearest "
                                           "other sample is closer than this quantile of real faces' nearest-neighbour distances")
    max_samples: int = Field(2000, ge=4, le=20_000, description="at most 20,000: every pair is compared, 2e8 "
                             "distances of 12,288 values at 20,000 faces of 64 px")


# The names of pipeline.evaluate.metrics.registry.METRICS (a test keeps the two equal): spelled
# here so that loading params never imports the evaluate stage.
MetricName = Literal["ssl_fd", "ssl_kid", "c2st", "diversity", "inception", "attr_acc", "memorization", "prdc"]


class MemorizationParams(Strict):
    quantile: float = Field(0.01, gt=0, lt=1, description="a sample closer to a training face than this quantile of "
                            "held-out faces' nearest-training distances counts as a copy (a model drawing new faces "
                            "scores about this)")
    pairs: int = Field(8, ge=1, le=64, description="closest (sample, training face) pairs drawn in metrics/<model>_closest.png")


class PRDCParams(Strict):
    k: int = Field(5, ge=1, le=100, description="neighbours that set each point's ball (Naeem et al. use 5)")


class EvaluateParams(Strict):
    metrics: list[str] = Field(default_factory=lambda: ["ssl_fd"], description="names from pipeline.evaluate.metrics.registry")
    num_samples: int = Field(5000, ge=2, le=200_000, description="generated faces compared with the real set (at most "
                             "200,000: 4x FID's customary 50,000; every face is held in memory)")
    batch_size: int = Field(256, ge=1, le=16_384, description=f"at most 16,384: {BATCH_WHY}")
    seed: int = Field(0, description="seed of the samples drawn for scoring")
    use_ema: bool = Field(True, description="score the EMA copy of G, as sample and play draw it")
    every_epochs: int | None = Field(None, ge=1, description="also evaluate runs/<model>/checkpoints/epoch_<N>.pt for N "
                                     "divisible by this (metric-vs-step plot); null: the final checkpoint only")
    feature_net: FeatureNetParams = Field(default_factory=FeatureNetParams)
    inception: InceptionParams = Field(default_factory=InceptionParams)
    c2st: C2STParams = Field(default_factory=C2STParams)
    diversity: DiversityParams = Field(default_factory=DiversityParams)
    holdout: float = Field(0.05, ge=0, le=0.5, description="share of the faces train never sees, chosen by face id: "
                           "the memorisation metric compares samples' distances to the training faces with theirs "
                           "(0: train on every face; memorization is then unavailable)")
    memorization: MemorizationParams = Field(default_factory=MemorizationParams)
    prdc: PRDCParams = Field(default_factory=PRDCParams)

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, v: list[str]) -> list[str]:
        known = get_args(MetricName)
        unknown = [m for m in v if m not in known]
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; known: {sorted(known)}")
        return v
