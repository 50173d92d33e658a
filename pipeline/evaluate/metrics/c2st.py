"""Classifier two-sample test (Lopez-Paz & Oquab 2017): how well a small classifier tells generated
from real features on a held-out split. 0.5 = indistinguishable, 1.0 = always told apart.

Fixed budget (steps, width, sample cap) and fixed seeds, so numbers compare across models. It
saturates at 1.0 for most GANs: report it, don't rank by it.
"""

from __future__ import annotations

import numpy as np


def _split(n: int, test_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    perm = rng.permutation(n)
    k = max(1, int(round(n * test_fraction)))
    return perm[k:], perm[:k]


def c2st_once(a: np.ndarray, b: np.ndarray, *, seed: int, test_fraction: float = 0.3, steps: int = 300,
              hidden: int = 64, lr: float = 1e-2, device: str = "cpu") -> float:
    import torch

    rng = np.random.default_rng(seed)
    (ta, va), (tb, vb) = _split(len(a), test_fraction, rng), _split(len(b), test_fraction, rng)
    x_tr, y_tr = np.concatenate([a[ta], b[tb]]), np.r_[np.zeros(len(ta)), np.ones(len(tb))]
    x_te, y_te = np.concatenate([a[va], b[vb]]), np.r_[np.zeros(len(va)), np.ones(len(vb))]
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-8  # standardise on the training split only
    t = lambda v: torch.as_tensor((v - mu) / sd, dtype=torch.float32, device=device)  # noqa: E731
    torch.manual_seed(seed)  # the init is drawn on the CPU, so a seed gives the same net on any device
    net = torch.nn.Sequential(torch.nn.Linear(a.shape[1], hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-4)
    xt, yt = t(x_tr), torch.as_tensor(y_tr, dtype=torch.float32, device=device)
    # balance the classes so unequal set sizes do not move the chance level away from 0.5
    w = torch.where(yt > 0, len(y_tr) / (2 * len(tb)), len(y_tr) / (2 * len(ta)))
    for _ in range(steps):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(xt).squeeze(1), yt, weight=w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = (net(t(x_te)).squeeze(1) > 0).cpu().numpy()
    correct = pred == (y_te > 0)
    return float(0.5 * correct[y_te == 0].mean() + 0.5 * correct[y_te == 1].mean())  # balanced accuracy


def c2st_accuracy(a: np.ndarray, b: np.ndarray, *, seeds: list[int], max_per_class: int = 2000,
                  test_fraction: float = 0.3, steps: int = 300, hidden: int = 64, lr: float = 1e-2,
                  device: str = "cpu") -> tuple[float, float]:
    """(mean, std) held-out balanced accuracy over ``seeds`` (each: its own subsample, split and init)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if min(len(a), len(b)) < 4:
        raise ValueError(f"C2ST needs at least 4 samples per set, got {len(a)} and {len(b)}")
    accs = []
    for s in seeds:
        rng = np.random.default_rng(10_000 + s)
        sa = a[rng.permutation(len(a))[:max_per_class]]
        sb = b[rng.permutation(len(b))[:max_per_class]]
        accs.append(c2st_once(sa, sb, seed=s, test_fraction=test_fraction, steps=steps, hidden=hidden, lr=lr,
                              device=device))
    return float(np.mean(accs)), float(np.std(accs))
