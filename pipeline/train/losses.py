"""The adversarial losses a model can train with, apart from its architecture and family.

- ``bce``: the non-saturating loss of Goodfellow et al. (D: real -> 1, fake -> 0; G: fake -> 1), as
  the DCGAN reference; with ``label_smoothing`` the real target is 1 - s.
- ``rpgan``: the relativistic pairing loss (Jolicoeur-Martineau 2019) as R3GAN uses it (Huang et al.
  2024): each real image is paired with a generated one, D: softplus(-(D(x_r) - D(x_f))), G:
  softplus(-(D(x_f) - D(x_r))). Its landscape has no bad local optima that drop modes; with the
  zero-centred gradient penalties R1 on real and R2 on generated data (``r1``, ``r2``: the gamma of
  each, as gamma / 2 x E||grad_x D||^2) it converges locally (the paper's Theorem), where either
  penalty alone does not train stably (their Fig. 2).

Every loss reads the logits in fp32 (autocast may give bf16) and returns a scalar.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    """In fp32 whatever autocast gave the logits (a bf16 target of 0.9 would be 0.898)."""
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def nonsaturating_d(real: torch.Tensor, fake: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    return bce(real, 1.0 - smoothing) + bce(fake, 0.0)


def nonsaturating_g(real: torch.Tensor | None, fake: torch.Tensor) -> torch.Tensor:
    return bce(fake, 1.0)


def rpgan_d(real: torch.Tensor, fake: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    return F.softplus(-(real.float() - fake.float())).mean()


def rpgan_g(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.softplus(-(fake.float() - real.float())).mean()


def zero_centred_penalty(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """E ||grad_x D(x)||^2 (``x`` must require grad; the graph is kept so the penalty trains D).
    Double backward: it runs in eager autograd and inside a CUDA graph, not under compiled autograd."""
    (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    grad = grad.to(torch.promote_types(grad.dtype, torch.float32))  # at least fp32 for the square sums
    return grad.square().flatten(1).sum(1).mean()


LOSSES = {"bce": (nonsaturating_d, nonsaturating_g), "rpgan": (rpgan_d, rpgan_g)}
