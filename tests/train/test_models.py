"""Architectures, the registry's validation, labels, tags and the sketch extractor (tiny sizes)."""

import numpy as np
import pandas as pd
import pytest
import torch

from models.registry import ARCHS
from models.zoo import build
from pipeline.core.datasets import encode_labels, toy_labelled_faces
from pipeline.core.sketch import xdog
from pipeline.params import ModelSpec
from pipeline.train.families import one_hot
from pipeline.train.sampling import Sampler

TINY = {"dcgan": {"nz": 8, "ngf": 8, "ndf": 8}, "dcgan_tags": {"nz": 8, "ngf": 8, "ndf": 8},
        "acgan": {"nz": 8, "ngf": 8, "ndf": 8}, "gan_mlp": {"nz": 8, "hidden": 16}, "cgan": {"nz": 8, "hidden": 16},
        "sketch2image": {"ngf": 8, "ndf": 8, "blocks": 2},
        "r3gan": {"nz": 8, "width": 16, "blocks": 1, "expansion": 2, "group_width": 8},
        "r3gan_tags": {"nz": 8, "width": 16, "blocks": 1, "expansion": 2, "group_width": 8}}


def test_every_arch_has_a_tiny_config():
    assert set(TINY) == set(ARCHS)


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_shapes(arch):
    torch.manual_seed(0)
    cond = 5 if ARCHS[arch].family in ("conditional", "acgan") else 0
    G, D = build(arch, TINY[arch], 32, 3, cond)
    c = one_hot(torch.tensor([[0, 1], [2, -1], [1, 0], [0, 1]]), [3, 2]) if cond else None
    if ARCHS[arch].family == "sketch":
        sketch = torch.rand(4, 1, 32, 32) * 2 - 1
        x = G(sketch)
        out = D(sketch, x)
        assert out.shape[0] == 4 and out.shape[1] > 1  # a grid of patch scores per image
    else:
        z = torch.randn(4, 8)
        x = G(z) if c is None else G(z, c)
        out = D(x) if ARCHS[arch].family != "conditional" else D(x, c)
        if ARCHS[arch].family == "acgan":
            adv, cls = out
            assert adv.shape == (4,) and cls.shape == (4, 5)
        else:
            assert out.shape == (4,)
    assert x.shape == (4, 3, 32, 32)
    if ARCHS[arch].module == "r3gan":  # linear output, as the paper's G; sampling.outputs clamps it
        assert torch.isfinite(x).all()
    else:
        assert x.abs().max() <= 1


@pytest.mark.parametrize("arch", ["dcgan_tags", "acgan", "cgan"])
def test_conditional_generator_depends_on_labels(arch):
    torch.manual_seed(0)
    G, D = build(arch, TINY[arch], 32, 3, 5)
    G.eval()
    z = torch.randn(4, 8)
    a = G(z, one_hot(torch.tensor([[0, 0]] * 4), [3, 2]))
    b = G(z, one_hot(torch.tensor([[2, 1]] * 4), [3, 2]))
    assert (a - b).abs().mean() > 0.05 * a.abs().mean()  # at init outputs are tiny; compare relatively
    if arch != "acgan":  # its D sees the image only
        x = torch.rand(4, 3, 32, 32)
        assert not torch.allclose(D.eval()(x, one_hot(torch.tensor([[0, 0]] * 4), [3, 2])),
                                  D(x, one_hot(torch.tensor([[2, 1]] * 4), [3, 2])))


def test_dcgan_variant_knobs_change_layers():
    G, D = build("dcgan", {"nz": 8, "ngf": 8, "ndf": 8, "g_act": "leaky", "d_bn_first": True, "extra_layers": 1}, 32)
    assert any(isinstance(m, torch.nn.LeakyReLU) for m in G.modules())
    assert isinstance(D.main[1], torch.nn.BatchNorm2d)
    n_plain = sum(isinstance(m, torch.nn.Conv2d) for m in build("dcgan", TINY["dcgan"], 32)[1].modules())
    assert sum(isinstance(m, torch.nn.Conv2d) for m in D.modules()) == n_plain + 1


def test_spec_validation_names_the_problem():
    with pytest.raises(ValueError, match="conditioning"):
        ModelSpec(arch="acgan")
    with pytest.raises(ValueError, match="takes no labels"):
        ModelSpec(arch="dcgan", conditioning=["hair_color"])
    with pytest.raises(ValueError, match="net.blocks"):
        ModelSpec(arch="dcgan", net={"blocks": 3})
    assert ModelSpec(arch="sketch2image").net["blocks"] == 6


def test_labels_encode_unknown_as_minus_one():
    labels = encode_labels(pd.DataFrame({"hair_color": ["blue", "unknown", "red", None], "smile": ["yes", "no", "yes", "yes"]}),
                           ["hair_color", "smile"])
    assert labels.vocab == {"hair_color": ["blue", "red"], "smile": ["no", "yes"]}
    assert labels.codes.tolist() == [[0, 1], [-1, 0], [1, 1], [-1, 1]]
    assert labels.dim == 4
    assert one_hot(torch.from_numpy(labels.codes), [2, 2])[1].tolist() == [0, 0, 1, 0]


def test_tags_to_codes():
    s = Sampler(torch.nn.Linear(1, 1), {"family": "conditional", "vocab": {"hair_color": ["blue", "red"], "eye_color": ["blue", "green"], "smile": ["no", "yes"]}})
    assert s.codes_of_tags(["blue hair", "green eyes", "smile"]) == {"hair_color": 0, "eye_color": 1, "smile": 1}
    assert s.codes_of_tags(["hair_color=red"]) == {"hair_color": 1}
    with pytest.raises(ValueError, match="not one this model"):
        s.codes_of_tags(["purple hair"])
    with pytest.raises(ValueError, match="two values"):
        s.codes_of_tags(["blue hair", "red hair"])


def test_the_samplers_random_order_is_z_then_each_free_attribute():
    """Saved seeds (a play link, a ``sample --seed`` in a PNG's text) redraw the same face only while
    this order holds: one generator seeded with the seed, z first, then a code per attribute not fixed."""
    net = torch.nn.Linear(1, 1)
    net.nz = 5
    s = Sampler(net, {"family": "conditional", "vocab": {"hair_color": ["blue", "red", "pink"], "eye_color": ["blue", "green"]}})
    b = s.inputs(4, seed=3, tags=["red hair"])
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(4, 5, generator=gen)
    eyes = torch.randint(0, 2, (4,), generator=gen)
    assert torch.equal(b.z, z) and b.codes.tolist() == [[1, int(e)] for e in eyes]
    assert b.c.tolist() == one_hot(b.codes, [3, 2]).tolist()
    one = s.face(3, 2, 4, tags=["red hair"])
    assert torch.equal(one.z, z[2:3]) and one.codes.tolist() == b.codes[2:3].tolist()
    with pytest.raises(ValueError, match="outside a grid of 4"):
        s.face(3, 4, 4)


def test_xdog_is_deterministic_and_draws_lines():
    faces, _ = toy_labelled_faces(6, 32, seed=1)
    a, b = xdog(faces.images), xdog(faces.images.copy())
    assert a.dtype == np.uint8 and a.shape == (6, 32, 32)
    assert np.array_equal(a, b)
    dark = (a < 128).mean()
    assert 0.02 < dark < 0.4  # mostly paper, some lines
    flat = np.full((1, 32, 32, 3), 200, np.uint8)
    assert (xdog(flat) > 250).all()  # no edges, no lines


@pytest.mark.parametrize("d_labels", ["joint", "projection"])
def test_cgan_discriminator_sees_the_labels(d_labels):
    torch.manual_seed(0)
    G, D = build("cgan", {**TINY["cgan"], "d_labels": d_labels}, 32, 3, 5)
    D.eval()
    x = torch.rand(4, 3, 32, 32)
    a, b = D(x, one_hot(torch.tensor([[0, 0]] * 4), [3, 2])), D(x, one_hot(torch.tensor([[2, 1]] * 4), [3, 2]))
    assert a.shape == (4,) and not torch.allclose(a, b)
    with pytest.raises(ValueError, match="d_labels"):
        build("cgan", {**TINY["cgan"], "d_labels": "concat"}, 32, 3, 5)
