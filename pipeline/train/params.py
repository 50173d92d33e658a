"""Settings of the ``train`` stage (``train:`` in params.yaml): the model zoo's entries and how they train."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from pipeline.core.settings import BATCH_WHY, IMAGES_WHY, MAX_IMAGES_SHOWN, MAX_STEPS, STEPS_WHY, Strict, Switch, did_you_mean


class SketchParams(Strict):
    """XDoG knobs; the defaults give clean outlines on 32-128 px faces."""

    sigma: float = Field(0.6, gt=0, description="inner Gaussian (px); the outer is k x sigma")
    k: float = Field(1.6, gt=1, description="XDoG: ratio of the two Gaussians' widths")
    tau: float = Field(0.98, gt=0, le=1, description="weight of the outer Gaussian")
    eps: float = Field(-0.01, description="edge threshold on the normalised difference")
    phi: float = Field(200.0, gt=0, description="softness of the threshold")


class AdaParams(Strict):
    """Adaptive augmentation (ADA, Karras et al. 2020), read when a model's augment_p is auto."""

    target: float = Field(0.6, gt=0, lt=1, description="the overfitting signal E[sign(D(real))] p is steered to "
                          "(the paper's 0.6)")
    interval: int = Field(4, ge=1, le=10_000, description="steps between adjustments of p (the paper's 4)")
    kimg: float = Field(100.0, gt=0, le=100_000, description="thousands of images over which p can go from 0 to 1 "
                        "(the paper's 500 suits its 25M-image runs; 100 lets p settle within this project's "
                        "budgets of a few hundred thousand images)")
    start: float = Field(0.0, ge=0, le=1, description="p at the first step")


class ModelSpec(Strict):
    """One named entry of ``train.models``: an architecture plus how to train it.

    The AnimeFacesWithGAN variants are entries, not code: v3 is ``d_threshold: 0.2``, v4.3 adds
    ``g_threshold: 4.0``. A threshold skips the update (network and optimizer state untouched)
    when that network's loss is not above it.
    """

    arch: str = Field(description="the architecture: a name of models/registry.py (dcgan, dcgan_tags, acgan, cgan, gan_mlp, "
                                  "sketch2image, r3gan, r3gan_tags)")
    epochs: int = Field(5, ge=0, le=1_000_000, description="passes over the faces (at most 1e6; for longer runs on few "
                        "faces set steps)")
    steps: int | None = Field(None, ge=1, le=MAX_STEPS, description=f"stop after this many steps (overrides epochs; "
                              f"{STEPS_WHY})")
    batch_size: int = Field(64, ge=1, le=16_384, description=f"faces per step (at most 16,384: {BATCH_WHY})")
    lr: float = Field(2e-4, gt=0, description="Adam learning rate of G and D")
    beta1: float = Field(0.5, ge=0, lt=1, description="Adam beta1")
    beta2: float = Field(0.999, ge=0, lt=1, description="Adam beta2")
    log_every: int = Field(10, ge=1, description="steps between reads of the losses from the device (one host sync "
                           "each) and MLflow points; losses.csv still gets a row for every step")
    checkpoint_every: int | None = Field(None, ge=1, description="steps between checkpoints (default: every epoch)")
    label_smoothing: float = Field(0.0, ge=0, lt=0.5, description="real target is 1 - this (one-sided)")
    d_threshold: float | None = Field(None, ge=0, description="update D only when its loss > this")
    g_threshold: float | None = Field(None, ge=0, description="update G only when its loss > this")
    ema: bool = Field(True, description="keep an EMA copy of G (used for sampling and evaluation)")
    ema_decay: float = Field(0.999, ge=0, lt=1, description="per-step decay of the EMA copy of G")
    collapse_std: float = Field(1e-3, ge=0, description="stop when the fixed-noise samples vary less than this (0: off)")
    conditioning: list[str] = Field(default_factory=list, description="label attributes (columns of data/labels.parquet)")
    aux_weight: float = Field(1.0, ge=0, description="acgan: weight of the attribute classification loss")
    dragan: float = Field(0.0, ge=0, description="acgan: DRAGAN gradient penalty weight (0 = off)")
    augment: list[Literal["color", "translation", "cutout"]] = Field(
        default_factory=list, description="DiffAugment (Zhao et al. 2020): ops applied to every image D sees, real and "
        "generated alike, in both losses; keeps D from memorising a small set (a few thousand faces). [] = off")
    augment_p: float | Literal["auto"] = Field(1.0, description="how often each augment op reaches an image: 1 = "
        "always (DiffAugment), a number in (0, 1) = that probability, auto = tuned during training from D's "
        "overfitting signal (ADA, see ada)")
    ada: AdaParams = Field(default_factory=AdaParams, description="adaptive augmentation, when augment_p is auto")
    loss: Literal["bce", "rpgan"] = Field("bce", description="adversarial loss: bce = non-saturating (DCGAN), rpgan = "
                                          "relativistic pairing (R3GAN; pair it with r1 and r2)")
    r1: float = Field(0.0, ge=0, le=1e4, description="R1: gamma/2 x E||grad D(real)||^2, zero-centred on real faces "
                      "(0 = off; R3GAN's presets set r1 = r2 = gamma, starting at 2 for FFHQ-64 and 0.05 for CIFAR-10)")
    r2: float = Field(0.0, ge=0, le=1e4, description="R2: the same penalty on generated faces (0 = off)")
    init_from: str | None = Field(None, description="start G, D and the EMA from this model's checkpoint (a name in "
                                  "train.models, trained first, or a checkpoint path): transfer from a bigger scrape")
    freeze_d: int = Field(0, ge=0, le=64, description="keep D's first this many weight layers (from the image side) "
                          "frozen: FreezeD (Mo et al. 2020), for fine-tuning from init_from")
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
            raise ValueError(f"unknown arch {arch!r}{did_you_mean(arch, ARCHS)}; known: {sorted(ARCHS)}")
        return arch

    @field_validator("augment_p")
    @classmethod
    def _probability(cls, p: float | str) -> float | str:
        if p != "auto" and not 0 < p <= 1:
            raise ValueError(f"augment_p must be auto or a probability in (0, 1], got {p}")
        return p

    @model_validator(mode="after")
    def _augment_p_has_ops(self) -> ModelSpec:
        if self.augment_p != 1.0 and not self.augment:
            raise ValueError(f"augment_p is {self.augment_p} but augment lists no ops: set augment, e.g. "
                             "[color, translation, cutout]")
        return self

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
    enabled: list[str] = Field(
        default_factory=list, description="the entries of train.models that dvc repro and the flows train and evaluate")
    budget: TrainBudget = Field(default_factory=TrainBudget)
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when torch sees it")
    seed: int = Field(0, description="seed of every draw of training: data order, noise, initial weights")
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
    cache_gb: float = Field(4.0, ge=0, le=4096, description="faces up to this size (GB of uint8 pixels) are copied "
                            "onto the training device once (fastest; 10^5 64 px faces are 1.2 GB); a larger set is read "
                            "from crop's mapped store a batch at a time, so memory does not grow with the faces (0: always "
                            "stream)")
    models: dict[str, ModelSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _enabled_exist(self) -> TrainParams:
        missing = [m for m in self.enabled if m not in self.models]
        if missing:
            hints = "".join(did_you_mean(m, self.models) for m in missing)
            raise ValueError(f"train.enabled names {missing}, which are not in train.models{hints} "
                             f"(defined: {sorted(self.models)})")
        transfers = [m for m in self.enabled if self.models[m].init_from is not None]
        if transfers:  # dvc.yaml's train stages are one foreach over enabled: no stage can depend on another's checkpoint
            raise ValueError(f"train.enabled includes {transfers}, which start from another model (init_from): dvc repro "
                             f"cannot order them after their source nor rerun them when it changes. Leave them out of "
                             f"train.enabled and train them after the source: python -m pipeline train {transfers[0]}")
        return self
