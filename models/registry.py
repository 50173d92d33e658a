"""Architecture registry: ``arch`` name -> (typed net params, builder).

Torch-free on purpose: params validation imports this to check ``train.models.*.net`` before any
work, and ``--help`` must stay instant. Builders are named as ``module:function`` and imported only
when a model is built.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class NetParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DCGANNet(NetParams):
    """pytorch/examples DCGAN geometry; ``extra_layers`` adds constant-resolution 3x3 convs."""

    nz: int = Field(100, ge=1)
    ngf: int = Field(64, ge=1)
    ndf: int = Field(64, ge=1)
    extra_layers: int = Field(0, ge=0, le=8)


@dataclass(frozen=True)
class Arch:
    net: type[NetParams]
    builder: str  # "module:function", called as builder(net, image_size, channels) -> (G, D)
    family: str   # which trainer step function drives it


ARCHS: dict[str, Arch] = {
    "dcgan": Arch(DCGANNet, "models.dcgan:build", family="unconditional"),
}


def validate_net(arch: str, net: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults and check ``net`` against the arch's params; errors name the bad key."""
    try:
        return ARCHS[arch].net.model_validate(net).model_dump()
    except ValidationError as e:
        msgs = []
        for err in e.errors():
            key = ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                msgs.append(f"unknown key net.{key} for arch {arch!r} (allowed: {', '.join(ARCHS[arch].net.model_fields)})")
            else:
                msgs.append(f"net.{key} = {err.get('input')!r}: {err['msg']}")
        raise ValueError("; ".join(msgs)) from None


def build(arch: str, net: dict[str, Any], image_size: int, channels: int = 3):
    """Construct (G, D) for ``arch``; imports torch."""
    module, func = ARCHS[arch].builder.split(":")
    params = ARCHS[arch].net.model_validate(net)
    return getattr(importlib.import_module(module), func)(params, image_size, channels)
