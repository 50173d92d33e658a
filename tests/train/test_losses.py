"""The adversarial losses against their closed forms, and the gradient penalties on functions whose
input gradient is known."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pipeline.train.losses import LOSSES, rpgan_d, rpgan_g, zero_centred_penalty


def test_rpgan_gradients_are_the_closed_form():
    """d/dr softplus(-(r - f)) = -sigmoid(f - r) per pair (/ n for the mean), and the opposite for f."""
    torch.manual_seed(0)
    r = torch.randn(16, dtype=torch.float64, requires_grad=True)
    f = torch.randn(16, dtype=torch.float64, requires_grad=True)
    rpgan_d(r, f).backward()
    s = torch.sigmoid(f - r).detach()
    assert torch.allclose(r.grad, -s / 16) and torch.allclose(f.grad, s / 16)
    r.grad = f.grad = None
    rpgan_g(r, f).backward()
    t = torch.sigmoid(r - f).detach()
    assert torch.allclose(f.grad, -t / 16) and torch.allclose(r.grad, t / 16)


def test_rpgan_values_and_the_nonsaturating_pair():
    r, f = torch.tensor([2.0, -1.0]), torch.tensor([0.0, 1.0])
    assert torch.allclose(rpgan_d(r, f), F.softplus(torch.tensor([-2.0, 2.0])).mean())
    assert torch.allclose(rpgan_g(r, f), F.softplus(torch.tensor([2.0, -2.0])).mean())
    d, g = LOSSES["bce"]
    assert torch.allclose(d(r, f), F.softplus(-r).mean() + F.softplus(f).mean())
    assert torch.allclose(g(r, f), F.softplus(-f).mean())


def test_penalty_of_a_linear_and_a_quadratic_critic():
    """D(x) = <w, x>: the gradient is w everywhere, the penalty ||w||^2; D(x) = ||x||^2 / 2: the
    gradient is x, the penalty the mean of ||x||^2. Both keep the graph: the penalty trains w."""
    torch.manual_seed(1)
    x = torch.randn(5, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 4, 4, dtype=torch.float64, requires_grad=True)
    linear = (x * w).flatten(1).sum(1)
    pen = zero_centred_penalty(linear, x)
    assert torch.allclose(pen, w.square().sum())
    pen.backward()
    assert torch.allclose(w.grad, 2 * w.detach())
    quad = 0.5 * x.square().flatten(1).sum(1)
    assert torch.allclose(zero_centred_penalty(quad, x), x.detach().square().flatten(1).sum(1).mean())
