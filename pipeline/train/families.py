"""The families of the zoo (models/registry.py names each arch's): what a batch of each carries,
how G is fed, how D judges an image, and D's and G's losses. The loop, the checkpoint loader and
the sampler all read ``FAMILIES``; nothing else tells families apart.

- ``unconditional``: G(z), D(x) -> logit; samples with batch statistics (as the reference DCGAN)
- ``conditional``:   G(z, c), D(x, c) -> logit   (c: one-hot labels, concatenated)
- ``acgan``:         G(z, c), D(x) -> (logit, class logits), plus an optional DRAGAN penalty
- ``sketch``:        G(sketch) -> image, D(sketch, image) -> grid of logits (PatchGAN), plus L1

D returns logits everywhere and the losses are ``*_with_logits`` in fp32: stable under autocast.
A loss takes ``(gan, batch, fake)``: ``gan`` is the loop's GAN (G/D as the step calls them as
``gan.g``/``gan.d``, the bare D as ``gan.D``, ``spec``, ``sizes``, ``gen``, ``dist``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.train.augment import augment


@dataclass
class Batch:
    real: torch.Tensor                       # N x C x H x W in [-1, 1]
    z: torch.Tensor | None = None
    codes: torch.Tensor | None = None        # N x A, -1 unknown
    c: torch.Tensor | None = None            # one-hot of codes
    sketch: torch.Tensor | None = None       # N x 1 x H x W in [-1, 1]


def one_hot(codes: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """N x A integer codes (-1 unknown) -> N x sum(sizes) concatenated one-hots (unknown: all zeros)."""
    parts = [nn.functional.one_hot(codes[:, k].clamp_min(0), s).float() * (codes[:, k:k + 1] >= 0)
             for k, s in enumerate(sizes)]
    return torch.cat(parts, 1)


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    """In fp32 whatever autocast gave the logits (a bf16 target of 0.9 would be 0.898)."""
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def grouped_ce(logits: torch.Tensor, codes: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Cross-entropy per attribute (its slice of the logits), unknown codes ignored; NaN-free when a
    batch has no known value (the count is clamped on the device, not checked on the host)."""
    total = logits.new_zeros(())
    for k, chunk in enumerate(logits.float().split(sizes, 1)):
        y = codes[:, k]
        total = total + F.cross_entropy(chunk, y, ignore_index=-1, reduction="sum") / (y >= 0).sum().clamp_min(1)
    return total


def dragan_penalty(D: Callable, real: torch.Tensor, gen: torch.Generator, rank: int = 0, world: int = 1) -> torch.Tensor:
    """DRAGAN (Kodali et al. 2017): unit gradient norm of D around perturbed real images. Under DDP
    every rank draws the perturbations of all ranks from the one training generator and takes its
    own (as with z): the ranks' perturbations differ, and the generator's state stays the same on all."""
    n = real.shape[0]
    noise = torch.rand((world * n, *real.shape[1:]), generator=gen, device=real.device)[rank * n:(rank + 1) * n]
    alpha = torch.rand(world * n, 1, 1, 1, generator=gen, device=real.device)[rank * n:(rank + 1) * n]
    x = (real + alpha * 0.5 * real.std() * noise).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x)[0].sum(), x, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


# ---------------------------------------------------------------------------------------------
# how G is fed and how D judges an image x, per family


def _g_of_z(G: Callable, b: Batch) -> torch.Tensor:
    return G(b.z)


def _g_of_zc(G: Callable, b: Batch) -> torch.Tensor:
    return G(b.z, b.c)


def _g_of_sketch(G: Callable, b: Batch) -> torch.Tensor:
    return G(b.sketch)


def _d_of_x(D: Callable, b: Batch, x: torch.Tensor):
    return D(x)


def _d_of_xc(D: Callable, b: Batch, x: torch.Tensor):
    return D(x, b.c)


def _d_of_sketch_x(D: Callable, b: Batch, x: torch.Tensor):
    return D(b.sketch, x)


def judged(fam: Family, gan: Any, b: Batch, x: torch.Tensor):
    """D's output on ``x`` as D sees it: through the model's DiffAugment policy (``augment``), real and
    generated images alike, in D's and G's losses both; labels are untouched, a sketch moves with its
    picture. Draws come from the training generator, so resume stays exact."""
    ops = gan.spec.augment
    if not ops:
        return fam.judge(gan.d, b, x)
    if fam.sketches:
        pair = augment(torch.cat([b.sketch.to(x.dtype), x], 1), ops, gan.gen, colour_channels=x.shape[1])
        return fam.judge(gan.d, replace(b, sketch=pair[:, :1]), pair[:, 1:])
    return fam.judge(gan.d, b, augment(x, ops, gan.gen))


# ---------------------------------------------------------------------------------------------
# losses: (family, gan, batch, fake) -> D: (loss, real logits, fake logits); G: loss (non-saturating)


def adversarial_d(fam: Family, gan: Any, b: Batch, fake: torch.Tensor):
    r, f = judged(fam, gan, b, b.real), judged(fam, gan, b, fake)
    return bce(r, 1.0 - gan.spec.label_smoothing) + bce(f, 0.0), r, f


def adversarial_g(fam: Family, gan: Any, b: Batch, fake: torch.Tensor) -> torch.Tensor:
    return bce(judged(fam, gan, b, fake), 1.0)


def acgan_d(fam: Family, gan: Any, b: Batch, fake: torch.Tensor):
    """Real/fake plus the attributes of real faces (and of fakes, with ``aux_fake``), plus DRAGAN."""
    (r, rc), (f, fc) = judged(fam, gan, b, b.real), judged(fam, gan, b, fake)
    aux = grouped_ce(rc, b.codes, gan.sizes)
    if gan.spec.aux_fake:
        aux = aux + grouped_ce(fc, b.codes, gan.sizes)
    loss = bce(r, 1.0 - gan.spec.label_smoothing) + bce(f, 0.0) + gan.spec.aux_weight * aux
    if gan.spec.dragan:  # the bare D: its parameters' gradients still reach DDP's hooks in the one backward
        seen = (lambda x: gan.D(augment(x, gan.spec.augment, gan.gen))) if gan.spec.augment else gan.D  # what D sees
        loss = loss + gan.spec.dragan * dragan_penalty(seen, b.real, gan.gen, gan.dist.rank, gan.dist.world)
    return loss, r, f


def acgan_g(fam: Family, gan: Any, b: Batch, fake: torch.Tensor) -> torch.Tensor:
    f, fc = judged(fam, gan, b, fake)
    return bce(f, 1.0) + gan.spec.aux_weight * grouped_ce(fc, b.codes, gan.sizes)


def pix2pix_g(fam: Family, gan: Any, b: Batch, fake: torch.Tensor) -> torch.Tensor:
    return bce(judged(fam, gan, b, fake), 1.0) + gan.spec.l1_weight * F.l1_loss(fake.float(), b.real)


@dataclass(frozen=True)
class Family:
    labels: bool       # a batch carries attribute codes and their one-hot c
    sketches: bool     # a batch carries sketches, and G draws from them instead of from noise
    batch_stats: bool  # samples are drawn with G in train mode (BatchNorm on the batch) rather than eval
    feed: Callable[[Callable, Batch], torch.Tensor]               # (G, batch) -> fake
    judge: Callable[[Callable, Batch, torch.Tensor], Any]         # (D, batch, image) -> D's output
    d_loss_of: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    g_loss_of: Callable[..., torch.Tensor]

    def fake(self, G: Callable, b: Batch) -> torch.Tensor:
        return self.feed(G, b)

    def d_loss(self, gan: Any, b: Batch, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.d_loss_of(self, gan, b, fake)

    def g_loss(self, gan: Any, b: Batch, fake: torch.Tensor) -> torch.Tensor:
        return self.g_loss_of(self, gan, b, fake)


FAMILIES: dict[str, Family] = {
    # conditional G in eval mode: a batch that all shares one label would have BatchNorm subtract its effect away
    "unconditional": Family(False, False, True, _g_of_z, _d_of_x, adversarial_d, adversarial_g),
    "conditional": Family(True, False, False, _g_of_zc, _d_of_xc, adversarial_d, adversarial_g),
    "acgan": Family(True, False, False, _g_of_zc, _d_of_x, acgan_d, acgan_g),
    "sketch": Family(False, True, False, _g_of_sketch, _d_of_sketch_x, adversarial_d, pix2pix_g),
}
