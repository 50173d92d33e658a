"""DCGAN (Radford et al. 2015) in the geometry of pytorch/examples ``dcgan/main.py``.

Differences from the reference, both deliberate: D returns logits (the loss applies the sigmoid,
which is the same math and stays stable under autocast: the v1 variant's "sigmoid output" is this),
and the number of up/down blocks follows the image size so 32, 64, 128 and 256 px all work (64 px
gives the reference layers exactly). With ``cond_dim`` > 0 (arch ``dcgan_tags``) the one-hot tags
are concatenated to z in G and, as constant feature maps, to the image at D's input.
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
    elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class Generator(nn.Module):
    def __init__(self, nz: int, ngf: int, image_size: int, channels: int = 3, extra_layers: int = 0,
                 g_act: str = "relu", cond_dim: int = 0):
        super().__init__()
        act = (lambda: nn.ReLU(True)) if g_act == "relu" else (lambda: nn.LeakyReLU(0.2, True))
        n = _blocks(image_size)
        ch = ngf * 2 ** n
        layers: list[nn.Module] = [nn.ConvTranspose2d(nz + cond_dim, ch, 4, 1, 0, bias=False), nn.BatchNorm2d(ch), act()]
        for _ in range(n):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), act()]
            ch //= 2
        for _ in range(extra_layers):
            layers += [nn.Conv2d(ch, ch, 3, 1, 1, bias=False), nn.BatchNorm2d(ch), act()]
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        self.nz, self.cond_dim = nz, cond_dim

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if self.cond_dim:
            z = torch.cat([z, c], 1)
        return self.main(z.view(z.shape[0], -1, 1, 1))


def d_trunk(ndf: int, image_size: int, in_ch: int, extra_layers: int = 0, bn_first: bool = False) -> tuple[nn.Sequential, int]:
    """D's convolutions down to 4x4; returns (trunk, channels). Shared by DCGAN and ACGAN."""
    n = _blocks(image_size)
    ch = ndf
    layers: list[nn.Module] = [nn.Conv2d(in_ch, ch, 4, 2, 1, bias=False)]
    layers += [nn.BatchNorm2d(ch)] if bn_first else []
    layers += [nn.LeakyReLU(0.2, inplace=True)]
    for _ in range(extra_layers):
        layers += [nn.Conv2d(ch, ch, 3, 1, 1, bias=False), nn.BatchNorm2d(ch), nn.LeakyReLU(0.2, inplace=True)]
    for _ in range(n):
        layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch * 2), nn.LeakyReLU(0.2, inplace=True)]
        ch *= 2
    return nn.Sequential(*layers), ch


class Discriminator(nn.Module):
    def __init__(self, ndf: int, image_size: int, channels: int = 3, extra_layers: int = 0,
                 bn_first: bool = False, cond_dim: int = 0):
        super().__init__()
        trunk, ch = d_trunk(ndf, image_size, channels + cond_dim, extra_layers, bn_first)
        self.main = nn.Sequential(*trunk, nn.Conv2d(ch, 1, 4, 1, 0, bias=False))
        self.cond_dim = cond_dim

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if self.cond_dim:
            x = torch.cat([x, c[:, :, None, None].expand(-1, -1, *x.shape[2:])], 1)
        return self.main(x).flatten()


def build(net: DCGANNet, image_size: int, channels: int = 3, cond_dim: int = 0) -> tuple[Generator, Discriminator]:
    g = Generator(net.nz, net.ngf, image_size, channels, net.extra_layers, net.g_act, cond_dim)
    d = Discriminator(net.ndf, image_size, channels, net.extra_layers, net.d_bn_first, cond_dim)
    g.apply(init_weights)
    d.apply(init_weights)
    return g, d
