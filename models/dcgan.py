"""DCGAN (Radford et al. 2015) in the geometry of pytorch/examples ``dcgan/main.py``.

Differences from the reference, both deliberate: D returns logits (the loss applies the sigmoid,
which is the same math and stays stable under autocast), and the number of up/down blocks follows
the image size so 32, 64, 128 and 256 px all work (64 px gives the reference layers exactly).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from models.registry import DCGANNet


def _blocks(image_size: int) -> int:
    n = int(math.log2(image_size)) - 3
    if 2 ** (n + 3) != image_size or n < 1:
        raise ValueError(f"DCGAN needs a power-of-two image size >= 16, got {image_size}")
    return n


def init_weights(m: nn.Module) -> None:
    """N(0, 0.02) for convs, N(1, 0.02) for BatchNorm scales, as in the DCGAN paper."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class Generator(nn.Module):
    def __init__(self, nz: int, ngf: int, image_size: int, channels: int = 3, extra_layers: int = 0):
        super().__init__()
        n = _blocks(image_size)
        ch = ngf * 2 ** n
        layers: list[nn.Module] = [nn.ConvTranspose2d(nz, ch, 4, 1, 0, bias=False), nn.BatchNorm2d(ch), nn.ReLU(True)]
        for _ in range(n):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        for _ in range(extra_layers):
            layers += [nn.Conv2d(ch, ch, 3, 1, 1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        self.nz = nz

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.view(z.shape[0], self.nz, 1, 1))


class Discriminator(nn.Module):
    def __init__(self, ndf: int, image_size: int, channels: int = 3, extra_layers: int = 0):
        super().__init__()
        n = _blocks(image_size)
        ch = ndf
        layers: list[nn.Module] = [nn.Conv2d(channels, ch, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        for _ in range(extra_layers):
            layers += [nn.Conv2d(ch, ch, 3, 1, 1, bias=False), nn.BatchNorm2d(ch), nn.LeakyReLU(0.2, inplace=True)]
        for _ in range(n):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch * 2), nn.LeakyReLU(0.2, inplace=True)]
            ch *= 2
        layers += [nn.Conv2d(ch, 1, 4, 1, 0, bias=False)]
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).flatten()


def build(net: DCGANNet, image_size: int, channels: int = 3) -> tuple[Generator, Discriminator]:
    g = Generator(net.nz, net.ngf, image_size, channels, net.extra_layers)
    d = Discriminator(net.ndf, image_size, channels, net.extra_layers)
    g.apply(init_weights)
    d.apply(init_weights)
    return g, d
