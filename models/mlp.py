"""Fully connected GAN (Goodfellow et al. 2014), and CGAN (Mirza and Osindero 2014) when
``cond_dim`` > 0. As in that paper, z and the labels each get their own hidden layer in G, and the
image and the labels each their own in D, before they are joined: a 13-wide one-hot concatenated
straight to 3,072 pixels is a rounding error D learns to ignore, and G then ignores the labels too
(measured on toy faces: hair colour obeyed no better than chance).

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
        self.z_in = self.c_in = None
        if cond_dim:  # z -> hidden and labels -> hidden, joined: the first layer sees 2 x hidden
            self.z_in = nn.Sequential(nn.Linear(nz, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(True))
            self.c_in = nn.Sequential(nn.Linear(cond_dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(True))
            dims[0] = 2 * hidden
        mods: list[nn.Module] = []
        for a, b in zip(dims, dims[1:]):
            mods += [nn.Linear(a, b, bias=False), nn.BatchNorm1d(b), nn.ReLU(True)]
        mods += [nn.Linear(dims[-1], channels * image_size ** 2), nn.Tanh()]
        self.main = nn.Sequential(*mods)
        self.nz, self.cond_dim, self.shape = nz, cond_dim, (channels, image_size, image_size)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        z = z.flatten(1)
        if self.cond_dim:
            z = torch.cat([self.z_in(z), self.c_in(c)], 1)
        return self.main(z).view(z.shape[0], *self.shape)


class Discriminator(nn.Module):
    def __init__(self, hidden: int, layers: int, image_size: int, channels: int, dropout: float, cond_dim: int = 0,
                 d_labels: str = "joint"):
        super().__init__()
        dims = [channels * image_size ** 2 + cond_dim] + [hidden * 2 ** i for i in reversed(range(layers))]
        self.x_in = self.c_in = self.embed = None
        self.projection = bool(cond_dim) and d_labels == "projection"
        if self.projection:  # logit = head(h) + <embed(c), h>, h the last hidden features of the image alone
            dims[0] -= cond_dim
            self.embed = nn.Linear(cond_dim, dims[-1], bias=False)
        elif cond_dim:  # image -> widest layer, labels -> a quarter of it, joined (240 and 50 units in the paper)
            wide, narrow = dims[1], max(16, dims[1] // 4)
            self.x_in = nn.Sequential(nn.Linear(dims[0] - cond_dim, wide), nn.LeakyReLU(0.2, True), nn.Dropout(dropout))
            self.c_in = nn.Sequential(nn.Linear(cond_dim, narrow), nn.LeakyReLU(0.2, True), nn.Dropout(dropout))
            dims = [wide + narrow] + dims[2:] if len(dims) > 2 else [wide + narrow]
        mods: list[nn.Module] = []
        for a, b in zip(dims, dims[1:]):
            mods += [nn.Linear(a, b), nn.LeakyReLU(0.2, True), nn.Dropout(dropout)]
        mods += [nn.Linear(dims[-1], 1)]
        self.main = nn.Sequential(*mods)
        self.cond_dim = cond_dim

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        x = x.flatten(1)
        if self.projection:
            h = self.main[:-1](x)
            return (self.main[-1](h) + (self.embed(c) * h).sum(1, keepdim=True)).flatten()
        if self.cond_dim:
            x = torch.cat([self.x_in(x), self.c_in(c)], 1)
        return self.main(x).flatten()


def build(net: MLPNet, image_size: int, channels: int = 3, cond_dim: int = 0):
    g = Generator(net.nz, net.hidden, net.layers, image_size, channels, cond_dim)
    d = Discriminator(net.hidden, net.layers, image_size, channels, net.dropout, cond_dim, net.d_labels)
    g.apply(init_weights)
    d.apply(init_weights)
    return g, d
