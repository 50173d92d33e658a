"""The families of the zoo (models/registry.py names each arch's): what a batch of each carries,
how G is fed, how D judges an image, and D's and G's losses. The loop, the checkpoint loader and
the sampler all read ``FAMILIES``; nothing else tells families apart.

- ``unconditional``: G(z), D(x) -> logit; samples with batch statistics (as the reference DCGAN)
- ``conditional``:   G(z, c), D(x, c) -> logit   (c: one-hot labels, concatenated)
- ``acgan``:         G(z, c), D(x) -> (logit, class logits), plus an optional DRAGAN penalty
- ``sketch``:        G(sketch) -> image, D(sketch, image) -> grid of logits (PatchGAN), plus L1

D returns logits everywhere and the losses (pipeline/train/losses.py) read them in fp32: stable
under autocast. The adversarial loss (``spec.loss``: bce or rpgan) and the zero-centred penalties
(``spec.r1``, ``spec.r2``) are choices of their own, apart from the family and the architecture.
A loss takes ``(gan, batch, fake)``: ``gan`` is the loop's GAN (G/D as the step calls them as
``gan.g``/``gan.d``, the bare D as ``gan.D``, ``spec``, ``sizes``, ``gen``, ``dist``, ``ada`` and
``augment_p``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.train.augment import augment
from pipeline.train.losses import LOSSES, zero_centred_penalty


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
    generated images alike, in D's and G's losses both, each op with probability ``gan.augment_p``
    (None: always); labels are untouched, a sketch moves with its picture. Draws come from the
    training generator, so resume stays exact."""
    ops = gan.spec.augment
    if not ops:
        return fam.judge(gan.d, b, x)
    if fam.sketches:
        pair = augment(torch.cat([b.sketch.to(x.dtype), x], 1), ops, gan.gen, colour_channels=x.shape[1], p=gan.augment_p)
        return fam.judge(gan.d, replace(b, sketch=pair[:, :1]), pair[:, 1:])
    return fam.judge(gan.d, b, augment(x, ops, gan.gen, p=gan.augment_p))


def _adv(out):
    """The real/fake logits of D's output (ACGAN's D also returns class logits)."""
    return out[0] if isinstance(out, tuple) else out


# ---------------------------------------------------------------------------------------------
# losses: (family, gan, batch, fake) -> D: (loss, real logits, fake logits); G: loss


def judged_pair(fam: Family, gan: Any, b: Batch, fake: torch.Tensor):
    """D's outputs on the real batch and on ``fake`` (detached) for D's update, with the R1 / R2
    penalties of ``spec``: zero-centred, on the images as they were before augmentation (as
    stylegan2-ada's and R3GAN's code take the gradient through their augmentation), gamma / 2 x
    E||grad||^2. ADA's overfitting signal is observed here, once per D update."""
    spec = gan.spec
    real = b.real.detach().requires_grad_(True) if spec.r1 else b.real
    fake = fake.requires_grad_(True) if spec.r2 else fake
    r, f = judged(fam, gan, b, real), judged(fam, gan, b, fake)
    penalty = None
    if spec.r1:
        penalty = spec.r1 / 2 * zero_centred_penalty(_adv(r), real)
    if spec.r2:
        term = spec.r2 / 2 * zero_centred_penalty(_adv(f), fake)
        penalty = term if penalty is None else penalty + term
    if gan.ada is not None:  # rpgan's logits mean something only in pairs: its signal is the pair's difference
        gan.ada.observe(_adv(r) if spec.loss == "bce" else _adv(r) - _adv(f))
    return r, f, penalty


def adversarial_d_loss(gan: Any, r: torch.Tensor, f: torch.Tensor, penalty: torch.Tensor | None) -> torch.Tensor:
    loss = LOSSES[gan.spec.loss][0](_adv(r), _adv(f), gan.spec.label_smoothing)
    return loss if penalty is None else loss + penalty


def adversarial_g_loss(fam: Family, gan: Any, b: Batch, f: torch.Tensor) -> torch.Tensor:
    """G's adversarial term on D's output ``f`` for its fakes; the pairing loss also needs D on the real batch."""
    real = _adv(judged(fam, gan, b, b.real)).detach() if gan.spec.loss == "rpgan" else None
    return LOSSES[gan.spec.loss][1](real, _adv(f))


def adversarial_d(fam: Family, gan: Any, b: Batch, fake: torch.Tensor):
    r, f, penalty = judged_pair(fam, gan, b, fake)
    return adversarial_d_loss(gan, r, f, penalty), r, f


def adversarial_g(fam: Family, gan: Any, b: Batch, fake: torch.Tensor) -> torch.Tensor:
    return adversarial_g_loss(fam, gan, b, judged(fam, gan, b, fake))


def acgan_d(fam: Family, gan: Any, b: Batch, fake: torch.Tensor):
    """Real/fake plus the attributes of real faces (and of fakes, with ``aux_fake``), plus DRAGAN."""
    (r, rc), (f, fc), penalty = judged_pair(fam, gan, b, fake)
    aux = grouped_ce(rc, b.codes, gan.sizes)
    if gan.spec.aux_fake:
        aux = aux + grouped_ce(fc, b.codes, gan.sizes)
    loss = adversarial_d_loss(gan, r, f, penalty) + gan.spec.aux_weight * aux
    if gan.spec.dragan:  # the bare D: its parameters' gradients still reach DDP's hooks in the one backward
        seen = (lambda x: gan.D(augment(x, gan.spec.augment, gan.gen, p=gan.augment_p))) if gan.spec.augment else gan.D
        loss = loss + gan.spec.dragan * dragan_penalty(seen, b.real, gan.gen, gan.dist.rank, gan.dist.world)
    return loss, r, f


def acgan_g(fam: Family, gan: Any, b: Batch, fake: torch.Tensor) -> torch.Tensor:
    f, fc = judged(fam, gan, b, fake)
    return adversarial_g_loss(fam, gan, b, f) + gan.spec.aux_weight * grouped_ce(fc, b.codes, gan.sizes)


def pix2pix_g(fam: Family, gan: Any, b: Batch, fake: torch.Tensor) -> torch.Tensor:
    return adversarial_g(fam, gan, b, fake) + gan.spec.l1_weight * F.l1_loss(fake.float(), b.real)


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
