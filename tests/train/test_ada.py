"""The ADA controller: p rises while D is sure of the real images, falls while it is not, at the
paper's speed; p applies each op to about p of the images; its state round-trips."""

from __future__ import annotations

import torch

from pipeline.train.ada import AdaptiveP
from pipeline.train.augment import OPS, augment


def _run(ada: AdaptiveP, signal, steps: int, batch: int = 64) -> list[float]:
    ps = []
    for s in range(1, steps + 1):
        ada.observe(signal(batch))
        ada.step(s, batch)
        ps.append(float(ada.p))
    return ps


def test_p_rises_on_an_overfitting_d_and_falls_on_an_unsure_one():
    gen = torch.Generator().manual_seed(0)
    ada = AdaptiveP(torch.device("cpu"), target=0.6, interval=4, speed_kimg=10)
    up = _run(ada, lambda n: torch.full((n,), 3.0), 400)  # D sure of every real image: r_t = 1
    # 100 updates of +256/10,000 each: p climbs linearly, reaching 1 after 40 updates (160 steps)
    assert abs(up[3] - 256 / 10_000) < 1e-7 and up[155] < 1.0 and up[159] == 1.0 and up[-1] == 1.0
    down = _run(ada, lambda n: torch.randn(n, generator=gen), 400)  # D at chance: r_t ~ 0 < 0.6
    assert down[-1] == 0.0 and all(b <= a for a, b in zip(down[3::4], down[7::4]))


def test_p_settles_where_the_signal_crosses_the_target():
    """A D whose certainty falls as p rises (as augmentation makes real images harder to tell):
    p settles where r_t = target, within one adjustment."""
    ada = AdaptiveP(torch.device("cpu"), target=0.6, interval=4, speed_kimg=5)
    gen = torch.Generator().manual_seed(1)

    def signal(n):  # share of positive signs = 1 - 0.5 p: r_t = 1 - p, crossing 0.6 at p = 0.4
        return torch.where(torch.rand(n, generator=gen) < 1 - 0.5 * float(ada.p), 1.0, -1.0)

    ps = _run(ada, signal, 2000)
    assert abs(sum(ps[-400:]) / 400 - 0.4) < 0.08


def test_p_is_the_share_of_images_each_op_reaches_and_zero_is_identity():
    x = torch.rand(4000, 3, 8, 8) * 2 - 1
    for p, share in ((0.0, 0.0), (0.3, 0.3), (1.0, 1.0)):
        y = augment(x, ["cutout"], torch.Generator().manual_seed(2), p=torch.tensor(p))
        changed = (y != x).flatten(1).any(1).float().mean().item()
        assert abs(changed - share) < 0.03
    same = augment(x, list(OPS), torch.Generator().manual_seed(3), p=torch.tensor(0.0))
    assert torch.equal(same, x)


def test_state_round_trips():
    a = AdaptiveP(torch.device("cpu"), speed_kimg=1)
    _run(a, lambda n: torch.ones(n), 9)
    b = AdaptiveP(torch.device("cpu"), speed_kimg=1)
    b.load_state_dict(a.state_dict())
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in ("p", "signs", "count"))
    assert _run(a, lambda n: torch.ones(n), 7) == _run(b, lambda n: torch.ones(n), 7)
