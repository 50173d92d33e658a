"""ACGAN (Odena et al. 2017): G(z, c) as the conditional DCGAN; D sees only the image and, beside
the real/fake logit, classifies the attributes (one logit per label value, grouped per attribute
by the trainer). make.girls.moe trained this on i2v labels with a DRAGAN penalty (a trainer option).
"""

from __future__ import annotations

import torch
from torch import nn

from models.dcgan import Generator, d_trunk, init_weights
from models.registry import DCGANNet


class Discriminator(nn.Module):
    def __init__(self, ndf: int, image_size: int, channels: int, extra_layers: int, bn_first: bool, cond_dim: int):
        super().__init__()
        self.trunk, ch = d_trunk(ndf, image_size, channels, extra_layers, bn_first)
        self.adv = nn.Conv2d(ch, 1, 4, 1, 0, bias=False)
        self.cls = nn.Conv2d(ch, cond_dim, 4, 1, 0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        return self.adv(h).flatten(), self.cls(h).flatten(1)


def build(net: DCGANNet, image_size: int, channels: int = 3, cond_dim: int = 0):
    if cond_dim < 1:
        raise ValueError("ACGAN needs labels: set train.models.<m>.conditioning")
    g = Generator(net.nz, net.ngf, image_size, channels, net.extra_layers, net.g_act, cond_dim)
    d = Discriminator(net.ndf, image_size, channels, net.extra_layers, net.d_bn_first, cond_dim)
    g.apply(init_weights)
    d.apply(init_weights)
    return g, d
