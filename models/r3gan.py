"""The R3GAN backbone (Huang, Gokaslan, Kuleshov, Tompkin, "The GAN is dead; long live the GAN! A
Modern GAN Baseline", NeurIPS 2024), written here in plain PyTorch (no custom CUDA ops).

A ResNet G and D of modernised blocks and nothing else: no normalisation layers, no noise inputs, no
mapping network, no tanh at G's end. Each residual block is an inverted bottleneck (1x1 conv up by
``expansion``, a grouped 3x3 conv of ``group_width`` channels per group, 1x1 conv back down), with
biased leaky ReLUs between; its last conv starts at zero and the others are scaled by
L^(-1/4) for L blocks in the net (a fix-up initialisation), so every block is the identity at the
start and the net's output variance does not grow with depth. Resolution changes between stages are
a 1x1 conv (where the width changes) and a [1, 2, 1] low-pass filter applied as a stride-2
(transposed) convolution. G starts from a learned 4x4 basis modulated by a linear map of z; D ends
in a depthwise 4x4 "basis" convolution and a linear map to one logit.

Sizes follow the paper's presets: ``width`` channels at every resolution up to 32 px, halved at each
doubling above (FFHQ-64: 768 at 4-32 px, 384 at 64; FFHQ-256 down to 96 at 256), ``blocks`` = 2 per
stage, ``expansion`` = 2 and 16 channels per group (their cardinalities 96/48/24/12), z of 64.
The conditional variant (arch ``r3gan_tags``) embeds the one-hot labels to ``nz`` values
concatenated to z in G, and projects in D: the logit is the inner product of D's last features with
a linear embedding of the labels (as the paper's conditional models; Miyato and Koyama 2018).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.registry import R3GANNet

LEAK = 0.2
ACT_GAIN = math.sqrt(2 / (1 + LEAK ** 2))  # keeps unit variance through a leaky ReLU


def msr_init(layer: nn.Module, gain: float = 1.0) -> nn.Module:
    """He-style N(0, gain / sqrt(fan_in)) weights, zero bias; gain 0 makes a layer start silent."""
    fan_in = layer.weight[0].numel()
    nn.init.normal_(layer.weight, 0.0, gain / math.sqrt(fan_in))
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)
    return layer


def conv(cin: int, cout: int, k: int, groups: int = 1, gain: float = 1.0) -> nn.Conv2d:
    return msr_init(nn.Conv2d(cin, cout, k, padding=(k - 1) // 2, groups=groups, bias=False), gain)


class BiasedLeakyReLU(nn.Module):
    """The bias of the preceding (bias-free) conv, then the activation: one place for both."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.bias.to(x.dtype).view(1, -1, 1, 1), LEAK)


class Block(nn.Module):
    """x + (1x1 up, grouped kxk, 1x1 down), zero-initialised last layer (identity at the start)."""

    def __init__(self, channels: int, expansion: int, group_width: int, total_blocks: int, kernel: int = 3):
        super().__init__()
        wide = channels * expansion
        gain = ACT_GAIN * total_blocks ** (-1 / 4)  # L^(-1/(2m-2)) with m = 3 layers per block
        self.up = conv(channels, wide, 1, gain=gain)
        self.act1 = BiasedLeakyReLU(wide)
        self.mix = conv(wide, wide, kernel, groups=max(1, wide // group_width), gain=gain)
        self.act2 = BiasedLeakyReLU(wide)
        self.down = conv(wide, channels, 1, gain=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.down(self.act2(self.mix(self.act1(self.up(x)))))


def _lowpass(channels: int) -> torch.Tensor:
    """The [1, 2, 1] filter convolved with a box of 2 ([1, 3, 3, 1]), outer product, unit sum, one per channel."""
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    k = torch.outer(k, k)
    return (k / k.sum()).expand(channels, 1, 4, 4).contiguous()


class Upsample(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.proj = conv(cin, cout, 1) if cin != cout else nn.Identity()
        self.register_buffer("kernel", _lowpass(cout) * 4, persistent=False)  # x4: the 4 output pixels share one input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        return F.conv_transpose2d(x, self.kernel.to(x.dtype), stride=2, padding=1, groups=x.shape[1])


class Downsample(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.register_buffer("kernel", _lowpass(cin), persistent=False)
        self.proj = conv(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.kernel.to(x.dtype), stride=2, padding=1, groups=x.shape[1])
        return self.proj(x)


def stage_widths(net: R3GANNet, image_size: int) -> list[int]:
    """Channels per stage, 4 px up to ``image_size``: ``width`` up to 32 px, halved per doubling above."""
    n = int(math.log2(image_size)) - 1
    if 2 ** (n + 1) != image_size or n < 2:
        raise ValueError(f"R3GAN needs a power-of-two image size >= 8, got {image_size}")
    return [max(net.group_width, net.width >> max(0, s + 2 - 5)) for s in range(n)]  # stage s works at 2^(s+2) px


class Generator(nn.Module):
    def __init__(self, net: R3GANNet, image_size: int, channels: int = 3, cond_dim: int = 0):
        super().__init__()
        widths = stage_widths(net, image_size)
        total = net.blocks * len(widths)
        self.nz, self.cond_dim = net.nz, cond_dim
        self.embed = msr_init(nn.Linear(cond_dim, net.nz, bias=False)) if cond_dim else None
        zin = net.nz * (2 if cond_dim else 1)
        self.basis = nn.Parameter(torch.randn(widths[0], 4, 4))
        self.modulate = msr_init(nn.Linear(zin, widths[0], bias=False))
        stages = []
        for s, w in enumerate(widths):
            layers = [] if s == 0 else [Upsample(widths[s - 1], w)]
            layers += [Block(w, net.expansion, net.group_width, total) for _ in range(net.blocks)]
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.to_rgb = conv(widths[-1], channels, 1)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(c.to(z.dtype))], 1)
        x = self.basis.unsqueeze(0) * self.modulate(z)[:, :, None, None]
        return self.to_rgb(self.stages(x))


class Discriminator(nn.Module):
    def __init__(self, net: R3GANNet, image_size: int, channels: int = 3, cond_dim: int = 0):
        super().__init__()
        widths = stage_widths(net, image_size)[::-1]  # full resolution first
        total = net.blocks * len(widths)
        self.from_rgb = conv(channels, widths[0], 1)
        stages = []
        for s, w in enumerate(widths):
            layers = [Block(w, net.expansion, net.group_width, total) for _ in range(net.blocks)]
            if s + 1 < len(widths):
                layers.append(Downsample(w, widths[s + 1]))
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        last = widths[-1]
        self.basis = msr_init(nn.Conv2d(last, last, 4, groups=last, bias=False))  # 4x4 -> 1x1, per channel
        out = last if cond_dim else 1
        self.head = msr_init(nn.Linear(last, out, bias=False))
        self.embed = msr_init(nn.Linear(cond_dim, last, bias=False), gain=1 / math.sqrt(last)) if cond_dim else None
        self.cond_dim = cond_dim

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        h = self.basis(self.stages(self.from_rgb(x))).flatten(1)
        out = self.head(h)
        if self.embed is not None:  # projection: <features, embedding of the labels>
            return (out * self.embed(c.to(out.dtype))).sum(1)
        return out.flatten()


def build(net: R3GANNet, image_size: int, channels: int = 3, cond_dim: int = 0) -> tuple[Generator, Discriminator]:
    return Generator(net, image_size, channels, cond_dim), Discriminator(net, image_size, channels, cond_dim)
