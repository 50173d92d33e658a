"""GEN_1, sketch to image: a ResNet generator at full resolution (7x7 conv, residual blocks, 7x7
conv + tanh) mapping a 1-channel sketch to RGB, against a PatchGAN discriminator that scores
(sketch, image) pairs on a grid, as in pix2pix. InstanceNorm in G, so a single sketch samples the
same as a batch of them.
"""

from __future__ import annotations

import torch
from torch import nn

from models.dcgan import init_weights
from models.registry import Sketch2ImageNet


class ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3, bias=False), nn.InstanceNorm2d(ch, affine=True),
                                  nn.ReLU(True), nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3, bias=False),
                                  nn.InstanceNorm2d(ch, affine=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Generator(nn.Module):
    def __init__(self, ngf: int, blocks: int, channels: int = 3):
        super().__init__()
        self.main = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(1, ngf, 7, bias=False), nn.InstanceNorm2d(ngf, affine=True),
                                  nn.ReLU(True), *[ResBlock(ngf) for _ in range(blocks)],
                                  nn.ReflectionPad2d(3), nn.Conv2d(ngf, channels, 7), nn.Tanh())
        self.nz = 0

    def forward(self, sketch: torch.Tensor) -> torch.Tensor:
        return self.main(sketch)


class PatchDiscriminator(nn.Module):
    """Three convs; each output logit judges one receptive-field patch of the (sketch, image) pair."""

    def __init__(self, ndf: int, channels: int = 3):
        super().__init__()
        self.main = nn.Sequential(nn.Conv2d(1 + channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True),
                                  nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, True),
                                  nn.Conv2d(ndf * 2, 1, 4, 1, 1))

    def forward(self, sketch: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.main(torch.cat([sketch, image], 1)).flatten(1)


def build(net: Sketch2ImageNet, image_size: int, channels: int = 3, cond_dim: int = 0):
    g, d = Generator(net.ngf, net.blocks, channels), PatchDiscriminator(net.ndf, channels)
    g.apply(init_weights)
    d.apply(init_weights)
    return g, d
