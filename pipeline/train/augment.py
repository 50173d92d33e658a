"""Differentiable augmentation of everything D sees (DiffAugment, Zhao et al. 2020).

On a thousand faces D memorises the real set within a few epochs and G's gradients turn to noise.
Transforming real and generated images alike, differentiably, before every D call keeps D from
telling them apart by memory while G still learns the untransformed distribution (the transforms
cover the image space, so G cannot win by drawing them).

Every op is plain tensor arithmetic driven by one ``torch.Generator`` on the images' device: no
host sync, no data-dependent shapes, so it runs inside a captured CUDA graph and the generator's
state (saved in checkpoints) makes resume exact. A batch of ``(sketch, image)`` pairs is
transformed as one: geometric ops move both identically; colour applies to the picture only (a
line drawing has no colour to jitter).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

OPS = ("color", "translation", "cutout")


def _uniform(n: int, gen: torch.Generator, device, dtype) -> torch.Tensor:
    """Drawn in fp32 whatever the images' dtype (bf16 under autocast), so the draw is the same either way."""
    return torch.rand(n, 1, 1, 1, generator=gen, device=device).to(dtype)


def color(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Brightness +-0.5, saturation x[0, 2], contrast x[0.5, 1.5] per image (images in [-1, 1])."""
    n = x.shape[0]
    x = x + (_uniform(n, gen, x.device, x.dtype) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_uniform(n, gen, x.device, x.dtype) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(n, gen, x.device, x.dtype) + 0.5) + mean


def _shift_index(size: int, shift: torch.Tensor) -> torch.Tensor:
    """N x size gather indices into a zero-padded axis (index 0 and size+1 are the zeros)."""
    pos = torch.arange(size, device=shift.device).unsqueeze(0) - shift.unsqueeze(1) + 1
    return pos.clamp(0, size + 1)


def translation(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its side in x and y, filling with zeros (mid grey)."""
    n, c, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (n,), generator=gen, device=x.device)
    dx = torch.randint(-sw, sw + 1, (n,), generator=gen, device=x.device)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    rows = _shift_index(h, dy)[:, None, :, None].expand(n, c, h, w + 2)
    x = padded.gather(2, rows)
    cols = _shift_index(w, dx)[:, None, None, :].expand(n, c, h, w)
    return x.gather(3, cols)


def cutout(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    """Zero a square of about ``ratio`` of the side centred anywhere in each image (clipped at the edges)."""
    n, _, h, w = x.shape
    cy = torch.randint(0, h, (n, 1, 1), generator=gen, device=x.device)
    cx = torch.randint(0, w, (n, 1, 1), generator=gen, device=x.device)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    inside = ((ys - cy).abs() * 2 < h * ratio) & ((xs - cx).abs() * 2 < w * ratio)
    return x * (~inside).unsqueeze(1).to(x.dtype)


def check_policy(policy: Sequence[str]) -> list[str]:
    unknown = [p for p in policy if p not in OPS]
    if unknown:
        raise ValueError(f"unknown augmentation(s) {unknown}; known: {list(OPS)}")
    return list(policy)


def _apply(op: str, x: torch.Tensor, gen: torch.Generator, colour_channels: int | None) -> torch.Tensor:
    if op == "color":
        if colour_channels is None or colour_channels == x.shape[1]:
            return color(x, gen)
        keep, pic = x[:, :-colour_channels], x[:, -colour_channels:]
        return torch.cat([keep, color(pic, gen)], 1)
    if op == "translation":
        return translation(x, gen)
    return cutout(x, gen)


def augment(x: torch.Tensor, policy: Sequence[str], gen: torch.Generator, colour_channels: int | None = None,
            p: torch.Tensor | None = None) -> torch.Tensor:
    """``x`` (N x C x H x W) through the ops of ``policy`` in order. ``colour_channels``: only the
    last that many channels take colour ops (a sketch stacked before its picture keeps its own).

    ``p`` (a 0-d tensor on ``x``'s device; adaptive augmentation, pipeline/train/ada.py): each op
    reaches each image with probability p, as in ADA, instead of always (DiffAugment). Every draw
    is made whatever p is, so the number of draws (and a CUDA graph of the step) does not depend on
    its value, and p can change between steps without a new capture."""
    for op in policy:
        y = _apply(op, x, gen, colour_channels)
        if p is None:
            x = y
        else:
            keep = torch.rand(x.shape[0], 1, 1, 1, generator=gen, device=x.device) < p
            x = torch.where(keep, y, x)
    return x
