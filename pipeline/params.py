"""Typed, validated view of ``params.yaml``.

Every knob of every stage lives here as a pydantic field, so a typo or a bad value stops the run
before any work with a message that names the key, the value and what is allowed.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "gif", "bmp")
# Upper bounds no real run reaches: they stop a typo (1e12 for 1e4) before it allocates or runs for ages.
# Their reasons go into the fields' descriptions, which a bound's error message quotes.
BATCH_WHY = "BigGAN's 2048 is the largest GAN batch published; 16,384 64 px faces take 200 MB per tensor"
MAX_STEPS = 100_000_000
STEPS_WHY = ("at most 1e8: 100x the longest published GAN trainings (about 1e6 steps); at 330 steps/s, DCGAN at batch "
             "128 with the fast path on an H200, 1e8 steps take 3.5 days")
MAX_IMAGES_SHOWN = 10_000_000_000
IMAGES_WHY = ("at most 1e10: 400x the 25 million of StyleGAN2-ADA's longest runs; 42 hours at the fastest rate measured "
              "here, 66,000 images/s")


class ParamsError(ValueError):
    """A params file or override that cannot be used; the message says what to fix."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PathsParams(Strict):
    """Where stages read and write, relative to the repository root."""

    raw: str = Field("data/raw", description="scrape: images named by content md5 + manifest.parquet")
    faces: str = Field("data/faces", description="crop: face crops + index.parquet")
    tags: str = Field("data/tags.parquet", description="tag: probabilities per face")
    labels: str = Field("data/labels.parquet", description="labels: one row per face, a value per attribute")
    labels_vocab: str = Field("data/labels_vocab.json", description="labels: the vocabulary the table was made with")
    label_conflicts: str = Field("data/label_conflicts.csv", description="labels: manual values a confident tagger "
                                 "disagrees with (in data/: the report stage owns reports/)")
    runs: str = Field("runs", description="train: runs/<model>/ checkpoint, samples, losses")
    metrics: str = Field("metrics", description="evaluate: metrics/<model>.json")
    reports: str = Field("reports", description="report: report.md, index.html")


class ToySource(Strict):
    count: int = Field(512, ge=1, le=1_000_000, description="pictures to draw (at most 1,000,000: toy faces are for "
                       "trying the pipeline, and train holds every face in memory)")
    size: int = Field(64, ge=16, le=1024, description="side in px (16..1024, as crop.size)")
    seed: int = 0


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
    min_width: int = Field(0, ge=0)
    min_height: int = Field(0, ge=0)
    extensions: list[str] = Field(default_factory=lambda: ["jpg", "png", "webp", "avif"])
    exclude_deleted: bool = Field(True, description="sends -status:deleted (a free metatag): the site drops them")
    rate: float = Field(1.0, gt=0, le=10, description="API requests per second (token bucket, no bursts)")
    files_rate: float = Field(2.0, gt=0, le=50, description="file requests per second, shared by all downloads")
    download_concurrency: int = Field(4, ge=1, le=32)
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
    mode: Literal["backfill", "incremental"] = "backfill"
    page_size: int = Field(200, ge=1, le=200, description="posts per API request (Danbooru's max is 200)")
    max_retries: int = Field(5, ge=0, le=20)
    retry_backoff: float = Field(2.0, ge=0, description="first retry wait in s; doubles, +-50% jitter")
    retry_backoff_max: float = Field(120.0, ge=0)
    timeout: float = Field(60.0, gt=0, description="seconds per HTTP read")
    max_file_bytes: int = Field(64 * 1024 * 1024, ge=1024)

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
    source: Literal["danbooru", "folder", "toy"] = "danbooru"
    folder: str | None = None
    folder_attribute: str | None = Field(None, description="plain class folders (ImageFolder style) under scrape.folder "
                                         "hold values of this attribute, e.g. hair_color; null: only <attribute>=<value> folders")
    folder_labels: str | None = Field("labels.csv", description="a CSV in scrape.folder: a file column (path in the folder) "
                                      "then attribute columns or tags; read when present; null: never")
    extensions: list[str] = Field(default_factory=lambda: ["jpg", "jpeg", "png", "webp", "gif"])
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


class CropParams(Strict):
    """How faces are found and cut; see pipeline/crop/stage.py and pipeline/crop/geometry.py."""

    detector: Literal["animeface", "lbpcascade", "ensemble", "none"] = "animeface"
    size: int = Field(64, ge=8, le=1024, description="output side in px (64 default; 128, 256 for bigger GANs; at "
                      "most 1024: train holds every face in memory, 3 MB each at 1024 px)")
    margin: float = Field(1.5, ge=1.0, le=4.0, description="square side = margin x the longer box side")
    min_score: float = Field(0.5, ge=0.0, le=1.0)
    min_face: int = Field(24, ge=1, description="px in the source image; smaller faces are dropped")
    detect_max_side: int | None = Field(512, ge=64, description="detect on a copy no larger than this (null: full size)")
    detect_min_side: int | None = Field(512, ge=64, description="a picture smaller than this is upscaled to it for "
                                        "detection (small faces); null: never upscale")
    retry_side: int | None = Field(1024, ge=64, description="a picture with no face at the detect side is searched "
                                   "again at this longest side; null: one pass")
    ensemble_iou: float = Field(0.3, gt=0.0, le=1.0, description="detector ensemble: boxes overlapping this much are one face")
    max_faces: int = Field(8, ge=1)
    border: Literal["shift", "pad_reflect", "pad_constant", "drop"] = "shift"
    pad_value: int = Field(0, ge=0, le=255, description="grey level of pad_constant")
    format: Literal["png", "webp", "jpg"] = Field("png", description="png and webp are lossless")
    jpg_quality: int = Field(95, ge=1, le=100)
    workers: int = Field(0, ge=0, description="parallel processes; 0 = all cores")
    dedupe_distance: int | None = Field(None, ge=0, le=16, description="drop a face whose 64-bit dHash is this "
                                        "close to a better face's (e.g. 4); null keeps all")
    cascade_file: str | None = Field(None, description="a local lbpcascade_animeface.xml instead of the download")
    cascade_url: str = ("https://raw.githubusercontent.com/nagadomi/lbpcascade_animeface/"
                        "4433ab1ae1166ea75acfe99eb0f18709dac329a0/lbpcascade_animeface.xml")
    cascade_sha256: str = Field("9376d30ac38db6bda2a68b88b3b76bbd7e6aa33af47f7f5c76bc88ca75f1ce30",
                                pattern=r"^[0-9a-f]{64}$")


class FeatureNetParams(Strict):
    """Self-supervised (rotation prediction) feature network for the offline Fréchet distance."""

    epochs: int = Field(10, ge=1, le=10_000, description="at most 10,000: the features settle within tens")
    max_images: int = Field(5000, ge=8, le=1_000_000, description="at most 1,000,000 (held in memory)")
    batch_size: int = Field(128, ge=2, le=16_384, description=f"at most 16,384: {BATCH_WHY}")
    lr: float = Field(1e-3, gt=0)
    width: int = Field(64, ge=4, le=1024, description="channels of the first conv; features are 8x this (at most "
                       "1024: 8192-d features, 16x those of Inception's 512)")
    seed: int = 0


class InceptionParams(Strict):
    """The standard FID/KID/IS/PR feature network (torch-fidelity's port of the 2015 TF Inception)."""

    url: str = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{8,64}$",
                               description="full sha256 or a prefix; null: the hex suffix of the file name "
                                           "(torch.hub convention)")
    weights_path: str | None = Field(None, description="an offline copy of the weights; "
                                                       "default $BOORUGAN_CACHE/inception/<file name>")
    download: bool = Field(True, description="fetch missing weights on first use; false: report the metrics unavailable")
    retries: int = Field(1, ge=0)
    kid_subsets: int = Field(100, ge=1, le=10_000, description="at most 10,000 (the reference uses 100)")
    kid_subset_size: int = Field(1000, ge=2, le=200_000, description="clamped to the smaller set (at most "
                                 "200,000, as evaluate.num_samples)")
    isc_splits: int = Field(10, ge=1, le=1000, description="at most 1000 (the reference uses 10)")
    prc_neighborhood: int = Field(3, ge=1, le=1000, description="k of Kynkäänniemi et al. precision/recall (at most 1000)")


class C2STParams(Strict):
    """Classifier two-sample test on the ssl features: fixed budget so runs compare."""

    test_fraction: float = Field(0.3, gt=0, lt=1)
    max_per_class: int = Field(2000, ge=4, le=200_000, description="at most 200,000, as evaluate.num_samples")
    steps: int = Field(300, ge=1, le=1_000_000, description="full-batch Adam steps of the MLP (at most 1e6)")
    hidden: int = Field(64, ge=1, le=16_384, description="at most 16,384 units")
    lr: float = Field(1e-2, gt=0)
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)


class DiversityParams(Strict):
    near_duplicate_quantile: float = Field(0.01, gt=0, lt=1, description="a sample is a near-duplicate when its nearest "
                                           "other sample is closer than this quantile of real faces' nearest-neighbour distances")
    max_samples: int = Field(2000, ge=4, le=20_000, description="at most 20,000: every pair is compared, 2e8 "
                             "distances of 12,288 values at 20,000 faces of 64 px")


# The names of pipeline.evaluate.metrics.registry.METRICS (a test keeps the two equal): spelled
# here so that loading params never imports the evaluate stage.
MetricName = Literal["ssl_fd", "ssl_kid", "c2st", "diversity", "inception", "attr_acc"]


class EvaluateParams(Strict):
    metrics: list[str] = Field(default_factory=lambda: ["ssl_fd"], description="names from pipeline.evaluate.metrics.registry")
    num_samples: int = Field(5000, ge=2, le=200_000, description="generated faces compared with the real set (at most "
                             "200,000: 4x FID's customary 50,000; every face is held in memory)")
    batch_size: int = Field(256, ge=1, le=16_384, description=f"at most 16,384: {BATCH_WHY}")
    seed: int = 0
    use_ema: bool = True
    every_epochs: int | None = Field(None, ge=1, description="also evaluate runs/<model>/checkpoints/epoch_<N>.pt for N "
                                     "divisible by this (metric-vs-step plot); null: the final checkpoint only")
    feature_net: FeatureNetParams = Field(default_factory=FeatureNetParams)
    inception: InceptionParams = Field(default_factory=InceptionParams)
    c2st: C2STParams = Field(default_factory=C2STParams)
    diversity: DiversityParams = Field(default_factory=DiversityParams)

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, v: list[str]) -> list[str]:
        known = get_args(MetricName)
        unknown = [m for m in v if m not in known]
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; known: {sorted(known)}")
        return v


class ReportParams(Strict):
    title: str = "boorugan: model comparison"
    clear_margin: float = Field(0.1, ge=0, lt=1, description="a model is marked best in a column only when it beats "
                                "the runner-up by this share (lower-better: best <= (1 - m) x next; "
                                "higher: best >= next / (1 - m))")
    near_noise: float | None = Field(0.5, gt=0, le=1, description="every model at or above this share of uniform "
                                     "noise's ssl_fd has learned nothing yet: the report says so and marks no best (null: off)")


class TrackingParams(Strict):
    enabled: bool = True
    experiment: str = "boorugan"
    tracking_uri: str | None = Field(None, description="default sqlite:///<repo>/mlflow.db; env MLFLOW_TRACKING_URI wins")


class SketchParams(Strict):
    """XDoG knobs; the defaults give clean outlines on 32-128 px faces."""

    sigma: float = Field(0.6, gt=0, description="inner Gaussian (px); the outer is k x sigma")
    k: float = Field(1.6, gt=1)
    tau: float = Field(0.98, gt=0, le=1, description="weight of the outer Gaussian")
    eps: float = Field(-0.01, description="edge threshold on the normalised difference")
    phi: float = Field(200.0, gt=0, description="softness of the threshold")


class ModelSpec(Strict):
    """One named entry of ``train.models``: an architecture plus how to train it.

    The AnimeFacesWithGAN variants are entries, not code: v3 is ``d_threshold: 0.2``, v4.3 adds
    ``g_threshold: 4.0``. A threshold skips the update (network and optimizer state untouched)
    when that network's loss is not above it.
    """

    arch: str
    epochs: int = Field(5, ge=0, le=1_000_000, description="passes over the faces (at most 1e6; for longer runs on few "
                        "faces set steps)")
    steps: int | None = Field(None, ge=1, le=MAX_STEPS, description=f"stop after this many steps (overrides epochs; "
                              f"{STEPS_WHY})")
    batch_size: int = Field(64, ge=1, le=16_384, description=f"faces per step (at most 16,384: {BATCH_WHY})")
    lr: float = Field(2e-4, gt=0)
    beta1: float = Field(0.5, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    log_every: int = Field(10, ge=1, description="steps between reads of the losses from the device (one host sync "
                           "each) and MLflow points; losses.csv still gets a row for every step")
    checkpoint_every: int | None = Field(None, ge=1, description="steps between checkpoints (default: every epoch)")
    label_smoothing: float = Field(0.0, ge=0, lt=0.5, description="real target is 1 - this (one-sided)")
    d_threshold: float | None = Field(None, ge=0, description="update D only when its loss > this")
    g_threshold: float | None = Field(None, ge=0, description="update G only when its loss > this")
    ema: bool = Field(True, description="keep an EMA copy of G (used for sampling and evaluation)")
    ema_decay: float = Field(0.999, ge=0, lt=1)
    collapse_std: float = Field(1e-3, ge=0, description="stop when the fixed-noise samples vary less than this (0: off)")
    conditioning: list[str] = Field(default_factory=list, description="label attributes (columns of data/labels.parquet)")
    aux_weight: float = Field(1.0, ge=0, description="acgan: weight of the attribute classification loss")
    dragan: float = Field(0.0, ge=0, description="acgan: DRAGAN gradient penalty weight (0 = off)")
    augment: list[Literal["color", "translation", "cutout"]] = Field(
        default_factory=list, description="DiffAugment (Zhao et al. 2020): ops applied to every image D sees, real and "
        "generated alike, in both losses; keeps D from memorising a small set (a few thousand faces). [] = off")
    aux_fake: bool = Field(True, description="acgan: D's classifier also learns the labels G was given from its fakes "
                                             "(Odena et al.); false: from real faces only, so it cannot learn G's mistakes")
    l1_weight: float = Field(100.0, ge=0, description="sketch2image: weight of the L1 loss to the real face")
    sketch: SketchParams = Field(default_factory=SketchParams, description="sketch2image: XDoG extractor")
    net: dict[str, Any] = Field(default_factory=dict, validate_default=True, description="architecture params, see models/")

    @field_validator("net")
    @classmethod
    def _net_fits_arch(cls, net: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        from models.registry import validate_net

        if "arch" not in info.data:  # arch itself failed; that error is reported
            return net
        return validate_net(info.data["arch"], net)

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, arch: str) -> str:
        from models.registry import ARCHS

        if arch not in ARCHS:
            raise ValueError(f"unknown arch {arch!r}; known: {sorted(ARCHS)}")
        return arch

    @model_validator(mode="after")
    def _conditioning_fits_family(self) -> ModelSpec:
        from models.registry import CONDITIONED, family

        needs = family(self.arch) in CONDITIONED
        if needs and not self.conditioning:
            raise ValueError(f"arch {self.arch!r} is conditional: set conditioning to label attributes, e.g. [hair_color]")
        if not needs and self.conditioning:
            raise ValueError(f"arch {self.arch!r} takes no labels, but conditioning is {self.conditioning}")
        return self

    @property
    def family(self) -> str:
        from models.registry import family

        return family(self.arch)


def _yaml_switch(value: Any) -> Any:
    """YAML 1.1 reads on/off/yes/no/true/false as booleans, in params.yaml and in ``-S`` values alike:
    a knob spelled with the words ``on``/``off`` takes them back however YAML read them."""
    return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value


_T = TypeVar("_T")
Switch = Annotated[_T, BeforeValidator(_yaml_switch)]  # Switch[Literal["auto", "off"]]: YAML's booleans taken back


class TrainBudget(Strict):
    """How long a model whose entry sets no ``steps`` trains, in images shown, by the device it runs
    on: a GPU has the time to draw faces, a CPU keeps ``dvc repro`` short (each entry's epochs)."""

    cpu: int | None = Field(None, ge=1, le=MAX_IMAGES_SHOWN, description=f"images shown on a CPU; null: each model's "
                            f"epochs ({IMAGES_WHY})")
    cuda: int | None = Field(500_000, ge=1, le=MAX_IMAGES_SHOWN, description=f"images shown on a GPU; null: each "
                             f"model's epochs ({IMAGES_WHY})")

    def steps_for(self, device_type: str, batch: int) -> int | None:
        images = getattr(self, device_type, None)
        return None if images is None else max(1, -(-images // batch))


class TrainParams(Strict):
    enabled: list[str] = Field(default_factory=list)
    budget: TrainBudget = Field(default_factory=TrainBudget)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 0
    num_threads: int | None = Field(None, ge=1, le=4096, description="torch CPU threads (default: torch's)")
    resume: Literal["auto", "never"] = Field("auto", description="auto: continue from runs/<model>/checkpoint.pt when it fits")
    on_damaged: Literal["restart", "stop"] = Field(
        "restart", description="a runs/<model>/checkpoint.pt that does not load (truncated, not ours, refused because it "
                               "contains code). restart: set it aside as checkpoint.pt.damaged-<UTC time> and train from "
                               "scratch; stop: leave it where it is and stop with a message")
    fast: Switch[Literal["auto", "on", "off"]] = Field(
        "auto", description="the trainer's fast path (pipeline/train/fastpath.py). auto: on CUDA, bf16 autocast, channels_last, "
                            "fused Adam and the whole step in one CUDA graph, as the knobs below allow; on: also on the "
                            "CPU, where only autocast and channels_last apply (for comparisons; slower there); off: the "
                            "plain fp32 eager loop everywhere")
    amp: Switch[Literal["bf16", "off"]] = Field(
        "bf16", description="fast path: autocast dtype of the forward passes (losses stay fp32)")
    channels_last: Switch[Literal["auto", "off"]] = Field(
        "auto", description="fast path: channels_last weights and batches (auto: nets with convolutions)")
    cuda_graph: Switch[Literal["auto", "off"]] = Field(
        "auto", description="fast path: capture the whole training step in one CUDA graph when the model allows it "
                            "(not with DDP or the DRAGAN penalty; the log says why when it is off)")
    deterministic: bool = Field(
        False, description="cuDNN's deterministic algorithms, no cuDNN autotuning, a fixed cuBLAS workspace: a GPU run "
                           "that resumes ends on the uninterrupted run's weights, bit for bit (slower; the CPU is always so)")
    models: dict[str, ModelSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _enabled_exist(self) -> TrainParams:
        missing = [m for m in self.enabled if m not in self.models]
        if missing:
            raise ValueError(f"train.enabled names {missing}, which are not in train.models "
                             f"(defined: {sorted(self.models)})")
        return self


def _make_girls_moe_groups() -> dict[str, dict[str, str]]:
    """make.girls.moe's exclusive groups (Jin et al. 2017) as value -> i2v tag name."""
    hair = "blonde brown black blue pink purple green red silver white orange aqua grey".split()
    eyes = "blue red brown green purple yellow pink aqua black orange".split()
    return {
        "hair_color": {c: f"{c} hair" for c in hair},
        "hair_style": {"long": "long hair", "short": "short hair", "twin_tail": "twintails",
                       "drill": "drill hair", "ponytail": "ponytail"},
        "eye_color": {c: f"{c} eyes" for c in eyes},
    }


def _make_girls_moe_binary() -> dict[str, str]:
    return {"blush": "blush", "smile": "smile", "open_mouth": "open mouth", "hat": "hat",
            "ribbon": "ribbon", "glasses": "glasses"}


_NAME_RE = r"^[a-z][a-z0-9_]*$"
_RESERVED = {"face_id", "multi_hot", "known", "content"}


class VocabularyParams(Strict):
    """The attributes labels are made of: exclusive groups (attribute -> {value: tag}) and
    independent binary attributes (attribute -> tag). Tag names are the tagger's own ("grey hair");
    whether they exist is checked against the tagger's tag list when it loads (pipeline.core.vocab)."""

    groups: dict[str, dict[str, str]] = Field(default_factory=_make_girls_moe_groups)
    binary: dict[str, str] = Field(default_factory=_make_girls_moe_binary)

    @model_validator(mode="after")
    def _well_formed(self) -> VocabularyParams:
        import re

        names = list(self.groups) + list(self.binary)
        for n in names:
            if not re.match(_NAME_RE, n) or n in _RESERVED or n.startswith("source_"):
                raise ValueError(f"attribute name {n!r} must match {_NAME_RE} and not be one of "
                                 f"{sorted(_RESERVED)} or start with 'source_' (it becomes a column name)")
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"attribute(s) {dup} are both a group and a binary attribute")
        for g, values in self.groups.items():
            if len(values) < 2:
                raise ValueError(f"group {g!r} needs at least 2 values, got {list(values)}")
            bad = [v for v in values if not v.strip() or v in ("unknown", "yes", "no")]
            if bad:
                raise ValueError(f"group {g!r}: value name(s) {bad} are reserved or empty")
        tags = [t for vs in self.groups.values() for t in vs.values()] + list(self.binary.values())
        reused = sorted({t for t in tags if tags.count(t) > 1})
        if reused:
            raise ValueError(f"tag(s) {reused} are used by more than one attribute value")
        return self

    def tags(self) -> list[str]:
        """Every tag the vocabulary uses, in vocabulary order (groups, then binary)."""
        return [t for vs in self.groups.values() for t in vs.values()] + list(self.binary.values())


class TagParams(Strict):
    """Stage ``tag``: a tagger (illustration2vec) over the face crops -> ``paths.tags``."""

    enabled: bool = Field(False, description="off: the stage writes an empty table and says how to turn it on")
    tagger: Literal["i2v"] = "i2v"
    weights_dir: str | None = Field(None, description="folder with the caffemodel and tag list; default $BOORUGAN_CACHE/i2v")
    download: bool = Field(True, description="download missing weights from the release URLs")
    checksums: dict[str, str] = Field(default_factory=dict, description="file name -> sha256, checked after download")
    threshold: float = Field(0.25, ge=0.0, le=1.0, description="general tags with p > threshold are listed")
    batch_size: int = Field(32, ge=1, le=4096, description="faces per forward pass of the 224 px tagger (at most "
                            "4096: 2.4 GB of input alone)")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    half: bool = Field(True, description="fp16 on the GPU (never on CPU)")
    num_threads: int | None = Field(None, ge=1)
    vocabulary: VocabularyParams = Field(default_factory=VocabularyParams)


class LabelsParams(Strict):
    """Stage ``labels``: manual labels merged with the tagger's into one table per face."""

    manual: str = Field("labels/manual.csv", description="CSV keyed by face_id, md5 or file; absent file = no manual labels")
    precedence: list[Literal["manual", "folder", "danbooru", "i2v"]] = Field(
        ["manual", "folder", "danbooru", "i2v"], min_length=1, description="label sources, the first that knows an attribute "
        "wins; a source left out is not used (folder: a labelled scrape.folder; danbooru: the post's own tags, for faces "
        "alone on a Danbooru post)")

    @field_validator("precedence")
    @classmethod
    def _unique_sources(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"each source at most once, got {v}")
        return v
    threshold: float = Field(0.25, ge=0.0, le=1.0, description="tagger probability needed for a value")
    conflict_confidence: float = Field(0.75, ge=0.0, le=1.0,
                                       description="tagger probability that makes a disagreement a conflict")
    min_known: int = Field(0, ge=0, description="drop faces with fewer known attributes (0 keeps all)")


class LabelUIParams(Strict):
    """``boorugan label``: the local labelling page that writes ``labels.manual``."""

    host: str = Field("127.0.0.1", description="bind address; anything but loopback exposes the page to the network")
    port: int = Field(8765, ge=0, le=65535, description="0 = any free port")
    page_size: int = Field(48, ge=1, le=1000, description="faces per page")
    low_confidence: float = Field(0.6, ge=0.0, le=1.0, description="a tagged attribute less sure than this "
                                  "(best group value's p, or max(p, 1-p) for yes/no) puts the face in the "
                                  "'low confidence' filter")

class PlayParams(Strict):
    """``boorugan play``: the local page that draws from every trained model in ``paths.runs``."""

    host: str = Field("127.0.0.1", description="bind address; anything but loopback exposes the models to the network")
    port: int = Field(8766, ge=0, le=65535, description="0 = any free port")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$", description="where generation runs: auto | cpu | cuda")
    max_models: int = Field(4, ge=1, le=64, description="models kept loaded at once (least recently used is dropped)")
    mlflow_ui: str = Field("http://127.0.0.1:5000", description="the MLflow UI that links to a model's run point at "
                           "(make ui); a tracking server's own URL is used when MLFLOW_TRACKING_URI is http(s)")


class OrchestrationParams(Strict):
    """How the Prefect flows run the stages (flows/): where crop and tag shards go, and overlaps."""

    dask_address: str | None = Field(None, description="tcp://host:8786 of an existing Dask scheduler: crop and tag "
                                     "run as shards on it (prefect-dask); null runs them locally")
    shards: int = Field(0, ge=0, description="shards per sharded stage; 0 = one per Dask worker thread")
    overlap: Literal["wait", "skip"] = Field("wait", description="a flow run that finds another running: wait for it, or skip")
    lock_timeout: float = Field(21600.0, gt=0, description="s a waiting flow run waits for the running one before failing")
    dvc_commit: bool = Field(True, description="in a DVC project run without overrides, record the stages a flow "
                             "ran in dvc.lock (dvc commit) so dvc status is clean afterwards")


class Params(Strict):
    paths: PathsParams = Field(default_factory=PathsParams)
    scrape: ScrapeParams = Field(default_factory=ScrapeParams)
    crop: CropParams = Field(default_factory=CropParams)
    tag: TagParams = Field(default_factory=TagParams)
    labels: LabelsParams = Field(default_factory=LabelsParams)
    label: LabelUIParams = Field(default_factory=LabelUIParams)
    play: PlayParams = Field(default_factory=PlayParams)
    train: TrainParams = Field(default_factory=TrainParams)
    evaluate: EvaluateParams = Field(default_factory=EvaluateParams)
    report: ReportParams = Field(default_factory=ReportParams)
    tracking: TrackingParams = Field(default_factory=TrackingParams)
    orchestration: OrchestrationParams = Field(default_factory=OrchestrationParams)

    def model(self, name: str) -> ModelSpec:
        try:
            return self.train.models[name]
        except KeyError:
            raise ParamsError(f"no model {name!r} in train.models; defined: {sorted(self.train.models)}") from None


# ---------------------------------------------------------------------------------------------
# loading and overrides


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> (["a", "b", "c"], value), the value parsed as YAML (so 3, 1e-3, true, [a, b])."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ParamsError(f"override -S {text!r} is not of the form key.sub=value "
                          f"(e.g. -S train.models.dcgan.lr=1e-4)")
    keys = key.strip().split(".")
    if not all(k.strip() for k in keys):
        raise ParamsError(f"override -S {text!r}: the key {key.strip()!r} has an empty part; "
                          "spell it as section.knob, e.g. train.models.dcgan.lr")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        why = " ".join(str(getattr(e, "problem", None) or e).split())
        raise ParamsError(f"override -S {text!r}: the value {raw!r} is not valid YAML ({why}); write a number, "
                          "a word, [a, b] or {key: value} with its brackets and quotes closed, e.g. "
                          "-S 'train.enabled=[dcgan, acgan]'") from None
    if isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string; the command line means a number
        try:
            value = float(value) if any(c in value for c in ".eE") else value
        except ValueError:
            pass
    return [k.strip() for k in keys], value


def apply_override(tree: dict, keys: list[str], value: Any) -> None:
    node = tree
    for i, k in enumerate(keys[:-1]):
        nxt = node.get(k)
        if nxt is None:
            nxt = node[k] = {}
        if not isinstance(nxt, dict):
            raise ParamsError(f"cannot set {'.'.join(keys)}: {'.'.join(keys[:i + 1])} is {nxt!r}, not a mapping")
        node = nxt
    node[keys[-1]] = value


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names allowed at the location of an error, for 'did you mean' messages."""
    cls: Any = model
    for part in loc[:-1]:
        fields = getattr(cls, "model_fields", None)
        if not fields or part not in fields:
            return []
        ann = fields[part].annotation
        cls = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if cls is None:
            return []
    return sorted(getattr(cls, "model_fields", {}))


def _field_at(loc: tuple) -> tuple[Any, Any]:
    """(the pydantic FieldInfo at ``loc``, the params class expected there or None); keys of a dict
    field, such as a model's name, are stepped over."""
    from typing import get_origin

    cls: Any = Params
    info = None
    parts = list(loc)
    while parts:
        fields = getattr(cls, "model_fields", None)
        if not fields or parts[0] not in fields:
            return None, None
        info = fields[parts.pop(0)]
        ann = info.annotation
        if get_origin(ann) is dict and parts:
            parts.pop(0)
            ann = get_args(ann)[1]
        cls = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if cls is None and parts:
            return None, None
    return info, cls


BOUND_ERRORS = ("less_than_equal", "less_than", "greater_than_equal", "greater_than", "too_long", "too_short")


def _set_by(key: str, overrides: tuple[str, ...]) -> str | None:
    """The override that set ``key`` (or a mapping above it), for the message."""
    found = None
    for text in overrides:
        k = text.partition("=")[0].strip()
        if key == k or key.startswith(k + ".") or k.startswith(key + "."):
            found = text
    return found


def format_validation_error(err: ValidationError, source: str, overrides: tuple[str, ...] = ()) -> str:
    lines = [f"invalid params in {source}:"]
    for e in err.errors():
        loc = tuple(str(p) for p in e["loc"])
        key = ".".join(loc) or "<root>"
        if e["type"] == "extra_forbidden":
            allowed = _allowed_keys(Params, loc)
            hint = difflib.get_close_matches(loc[-1], allowed, n=1)
            msg = f"unknown key {key!r}"
            if hint:
                msg += f" (did you mean {'.'.join(loc[:-1] + (hint[0],))!r}?)"
            if allowed:
                msg += f"; allowed here: {', '.join(allowed)}"
        elif e["type"] in ("model_type", "model_attributes_type", "dict_type"):
            msg = f"{key} = {e.get('input')!r}: must be a mapping of knobs (key: value), not {type(e.get('input')).__name__}"
            if (cls := _field_at(loc)[1]) is not None:
                msg += f"; its knobs: {', '.join(cls.model_fields)}"
        else:
            msg = f"{key} = {e.get('input')!r}: {e['msg']}"
            info = _field_at(loc)[0] if e["type"] in BOUND_ERRORS else None
            if info is not None and info.description:
                msg += f"; {info.description}"
        if by := _set_by(key, tuple(overrides)):
            msg += f" [from -S {by}]"
        lines.append(f"  - {msg}")
    return "\n".join(lines)


def load_params(path: str | Path = "params.yaml", overrides: list[str] | tuple[str, ...] = ()) -> Params:
    """Read, override (``-S`` style) and validate; raise ParamsError with a readable message."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"params file {path} does not exist (run from the project folder, pass --params, or write "
                          "the starter with `boorugan init`)")
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ParamsError(f"{path} is not valid YAML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:  # a folder, no permission, not text
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ParamsError(f"params file {path} cannot be read ({why}); pass a YAML file with --params") from None
    if not isinstance(tree, dict):
        raise ParamsError(f"{path} must hold a mapping of sections (scrape:, crop:, ...), got {type(tree).__name__}")
    for text in overrides:
        keys, value = parse_override(text)
        apply_override(tree, keys, value)
    try:
        return Params.model_validate(tree)
    except ValidationError as e:
        source = str(path) + (" with overrides " + " ".join(overrides) if overrides else "")
        raise ParamsError(format_validation_error(e, source, tuple(overrides))) from None
