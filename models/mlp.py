"""Fully connected GAN (Goodfellow et al. 2014), and CGAN (Mirza and Osindero 2014) when
``cond_dim`` > 0: the one-hot labels are concatenated to z in G and to the flattened image in D.

The seeds train this "basic GAN" beside a DCGAN to show what convolutions buy; it is kept plain
(BatchNorm1d in G, LeakyReLU + dropout in D) rather than tuned.
"""

from __future__ import annotations

import torch
from torch import nn

from models.dcgan import init_weights
from models.registry import MLPNet


class Generator(nn.Module):
    def __init__(self, nz: int, hidden: int, layers: int, image_size: int, channels: int, cond_dim: int = 0):
        super().__init__()
        dims = [nz + cond_dim] + [hidden * 2 ** i for i in range(layers)]
        mods: list[nn.Module] = []
        for a, b in zip(dims, dims[1:]):
            mods += [nn.Linear(a, b, bias=False), nn.BatchNorm1d(b), nn.ReLU(True)]
        mods += [nn.Linear(dims[-1], channels * image_size ** 2), nn.Tanh()]
        self.main = nn.Sequential(*mods)
        self.nz, self.cond_dim, self.shape = nz, cond_dim, (channels, image_size, image_size)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        z = z.flatten(1)
        if self.cond_dim:
            z = torch.cat([z, c], 1)
        return self.main(z).view(z.shape[0], *self.shape)


class Discriminator(nn.Module):
    def __init__(self, hidden: int, layers: int, image_size: int, channels: int, dropout: float, cond_dim: int = 0):
        super().__init__()
        dims = [channels * image_size ** 2 + cond_dim] + [hidden * 2 ** i for i in reversed(range(layers))]
        mods: list[nn.Module] = []
        for a, b in zip(dims, dims[1:]):
            mods += [nn.Linear(a, b), nn.LeakyReLU(0.2, True), nn.Dropout(dropout)]
        mods += [nn.Linear(dims[-1], 1)]
        self.main = nn.Sequential(*mods)
        self.cond_dim = cond_dim

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        x = x.flatten(1)
        if self.cond_dim:
            x = torch.cat([x, c], 1)
        return self.main(x).flatten()


def build(net: MLPNet, image_size: int, channels: int = 3, cond_dim: int = 0):
    g = Generator(net.nz, net.hidden, net.layers, image_size, channels, cond_dim)
    d = Discriminator(net.hidden, net.layers, image_size, channels, net.dropout, cond_dim)
    g.apply(init_weights)
    d.apply(init_weights)
    return g, d
