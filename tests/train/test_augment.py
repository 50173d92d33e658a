"""DiffAugment ops: differentiable, the same transform for what D sees together, reproducible from
the generator's state (exact resume), and each op really changes the picture as described."""

from __future__ import annotations

import pytest
import torch

from pipeline.train.augment import OPS, augment, check_policy, cutout, translation


def images(n=8, c=3, s=16, seed=0):
    return torch.rand(n, c, s, s, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("op", OPS)
def test_every_op_is_differentiable(op):
    x = images().requires_grad_()
    y = augment(x, [op], torch.Generator().manual_seed(1))
    y.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0 and torch.isfinite(x.grad).all()


def test_same_generator_state_same_transform():
    x = images()
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a = augment(x, list(OPS), g1)
    b = augment(x, list(OPS), g2)
    assert torch.equal(a, b)
    assert not torch.equal(augment(x, list(OPS), g1), a)  # the state moved on: the next batch differs
    state = g1.get_state()
    c = augment(x, list(OPS), g1)
    g1.set_state(state)
    assert torch.equal(augment(x, list(OPS), g1), c)  # restored state (a resumed run) repeats the draw


def test_translation_moves_content_without_scaling():
    x = torch.zeros(64, 1, 16, 16)
    x[:, :, 8, 8] = 1.0
    y = translation(x, torch.Generator().manual_seed(0))
    assert torch.equal(y.flatten(1).sum(1), torch.ones(64))  # the dot is still there, one pixel
    where = y[:, 0].flatten(1).argmax(1)
    dy, dx = where // 16 - 8, where % 16 - 8
    assert dy.abs().max() <= 2 and dx.abs().max() <= 2 and (dy != 0).any() and (dx != 0).any()


def test_cutout_zeroes_about_a_quarter_of_the_area():
    y = cutout(torch.ones(256, 3, 32, 32), torch.Generator().manual_seed(0))
    zero = (y == 0).float().mean().item()
    assert 0.1 < zero < 0.25  # half the side -> up to a quarter of the area, less where clipped


def test_a_sketch_stacked_with_its_picture_moves_with_it_but_keeps_its_colour():
    sketch = torch.ones(8, 1, 16, 16) * -1
    sketch[:, :, 4:12, 4:12] = 1
    pic = images(8)
    pair = torch.cat([sketch, pic], 1)
    out = augment(pair, ["color", "translation"], torch.Generator().manual_seed(5), colour_channels=3)
    g = torch.Generator().manual_seed(5)
    from pipeline.train.augment import color

    coloured = color(pic, g)  # the colour draw comes first, from the same generator
    moved = translation(torch.cat([sketch, coloured], 1), g)
    assert torch.equal(out, moved)
    assert set(out[:, 0].unique().tolist()) <= {-1.0, 0.0, 1.0}  # sketch values untouched by colour (0: padding)


def test_unknown_policy_is_refused_with_the_known_ops():
    with pytest.raises(ValueError, match="known: \\['color', 'translation', 'cutout'\\]"):
        check_policy(["color", "flip"])
