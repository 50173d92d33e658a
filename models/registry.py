"""Architecture registry: ``arch`` name -> (typed net params, builder, family).

Torch-free on purpose: params validation imports this to check ``train.models.*.net`` before any
work, and ``--help`` must stay instant. Each arch names its module under ``models/``, imported (by models/zoo.py) only
when a model is built, so params (and every stage but train and evaluate) never depends on the
architectures' code. The family says how the trainer feeds G and D and which losses it takes
(the table of families: pipeline/train/families.py):

- ``unconditional``: G(z), D(x) -> logit
- ``conditional``:   G(z, c), D(x, c) -> logit           (c: one-hot labels, concatenated)
- ``acgan``:         G(z, c), D(x) -> (logit, class logits)
- ``sketch``:        G(sketch) -> image, D(sketch, image) -> grid of logits (PatchGAN)
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_NZ = 4096
NZ_WHY = "at most 4096: StyleGAN's is 512"


class NetParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DCGANNet(NetParams):
    """pytorch/examples DCGAN geometry, plus the knobs the AnimeFacesWithGAN variants turn.

    ``extra_layers`` adds constant-resolution 3x3 convs to G and D; ``g_act: leaky`` is variant
    v2; ``d_bn_first`` puts BatchNorm on every D layer, the first included (variant v1).
    """

    nz: int = Field(100, ge=1, le=MAX_NZ, description=f"latent size ({NZ_WHY})")
    ngf: int = Field(64, ge=1, le=1024, description="G's width: its first layer has 8 x ngf channels (at most 1024: "
                     "that layer's weights alone are then 2 GB; the DCGAN paper used 128)")
    ndf: int = Field(64, ge=1, le=1024, description="D's width: its last conv has 8 x ndf channels (at most 1024, as ngf)")
    extra_layers: int = Field(0, ge=0, le=8, description="constant-resolution 3x3 convs added to G and D (dcgan_deep)")
    g_act: Literal["relu", "leaky"] = Field("relu", description="G's activation; leaky is the AnimeFacesWithGAN variant v2")
    d_bn_first: bool = Field(False, description="BatchNorm on every D layer, the first included (variant v1)")


class MLPNet(NetParams):
    """Fully connected G and D (the seeds' "basic GAN"; CGAN of Mirza and Osindero when conditioned)."""

    nz: int = Field(100, ge=1, le=MAX_NZ, description=f"latent size ({NZ_WHY})")
    hidden: int = Field(256, ge=1, le=4096, description="width of the first hidden layer; doubles per layer in G (at "
                        "most 4096: G's last layer then has up to 131,072 units, 1.6e9 weights at 64 px)")
    layers: int = Field(3, ge=1, le=6, description="hidden layers in each of G and D")
    dropout: float = Field(0.3, ge=0, lt=1, description="dropout in D (Goodfellow et al. used it)")
    d_labels: Literal["joint", "projection"] = Field(
        "joint", description="cgan: how D sees the labels: its own hidden layer joined to the image's (Mirza and "
                             "Osindero), or a projection, the inner product of a label embedding with D's features "
                             "(Miyato and Koyama 2018)")


class Sketch2ImageNet(NetParams):
    """GEN_1: 7x7 conv, ``blocks`` residual blocks, 7x7 conv + tanh; PatchGAN D of 3 convs."""

    ngf: int = Field(32, ge=1, le=1024, description="G's width: every residual block runs ngf channels at "
                     "full resolution (at most 1024: 64 faces of 64 px then take 1 GB per activation)")
    ndf: int = Field(64, ge=1, le=1024, description="D's width (at most 1024, as ngf)")
    blocks: int = Field(6, ge=0, le=16, description="residual blocks between G's encoder and decoder")


class R3GANNet(NetParams):
    """R3GAN (Huang et al. 2024): the paper's FFHQ-64 preset is width 768, blocks 2, expansion 2, 16
    channels per group, nz 64 (models/r3gan.py). Defaults here are that preset; params.yaml's entries
    choose narrower nets that train in reasonable time on one GPU or a CPU."""

    nz: int = Field(64, ge=1, le=MAX_NZ, description=f"latent size ({NZ_WHY})")
    width: int = Field(768, ge=8, le=4096, description="channels per stage up to 32 px, halved per doubling above (at "
                       "most 4096: 5x the paper's FFHQ-64 preset, with up to 8x that inside each block)")
    blocks: int = Field(2, ge=1, le=8, description="residual blocks per resolution")
    expansion: int = Field(2, ge=1, le=8, description="inverted bottleneck: inner width = expansion x width")
    group_width: int = Field(16, ge=1, le=4096, description="channels per group of the grouped 3x3 conv (at most "
                             "4096, as width)")


@dataclass(frozen=True)
class Arch:
    net: type[NetParams]
    module: str   # models.<module>.build(net, image_size, channels, cond_dim) -> (G, D), via models/zoo.py
    family: str   # which trainer step function drives it


ARCHS: dict[str, Arch] = {
    "dcgan": Arch(DCGANNet, "dcgan", family="unconditional"),
    "dcgan_tags": Arch(DCGANNet, "dcgan", family="conditional"),
    "acgan": Arch(DCGANNet, "acgan", family="acgan"),
    "gan_mlp": Arch(MLPNet, "mlp", family="unconditional"),
    "cgan": Arch(MLPNet, "mlp", family="conditional"),
    "sketch2image": Arch(Sketch2ImageNet, "sketch2image", family="sketch"),
    "r3gan": Arch(R3GANNet, "r3gan", family="unconditional"),
    "r3gan_tags": Arch(R3GANNet, "r3gan", family="conditional"),
}
CONDITIONED = ("conditional", "acgan")  # families that need train.models.<m>.conditioning


def family(arch: str) -> str:
    return ARCHS[arch].family


BOUNDS = ("less_than_equal", "less_than", "greater_than_equal", "greater_than")


def validate_net(arch: str, net: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults and check ``net`` against the arch's params; errors name the bad key."""
    try:
        return ARCHS[arch].net.model_validate(net).model_dump()
    except ValidationError as e:
        msgs = []
        for err in e.errors():
            key = ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                close = difflib.get_close_matches(str(err["loc"][-1]), list(ARCHS[arch].net.model_fields), n=1)
                hint = f" (did you mean 'net.{close[0]}'?)" if close else ""
                msgs.append(f"unknown key net.{key} for arch {arch!r}{hint} (allowed: {', '.join(ARCHS[arch].net.model_fields)})")
            else:
                field = ARCHS[arch].net.model_fields.get(str(err["loc"][0])) if err["loc"] else None
                why = f"; {field.description}" if field is not None and field.description and err["type"] in BOUNDS else ""
                msgs.append(f"net.{key} = {err.get('input')!r}: {err['msg']}{why}")
        raise ValueError("; ".join(msgs)) from None
