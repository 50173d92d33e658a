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


# ---------------------------------------------------------------------------------------------
# in the trainer: every family's D sees augmented real and fake, labels untouched, resume exact

from test_trainer import FACES, LABELS, assert_same, run, spec_for, state_of  # noqa: E402  (same folder)

POLICY = ["color", "translation", "cutout"]


def _recorded_d_inputs(arch: str, augment: list[str]):
    from pipeline.train.families import FAMILIES, Batch, one_hot
    from pipeline.train.loop import gan_step, make_gan

    spec = spec_for(arch, augment=augment)
    vocab = {a: list(LABELS.vocab[a]) for a in spec.conditioning} if spec.conditioning else None
    gan = make_gan(spec, 32, 3, torch.device("cpu"), seed=0, vocab=vocab)
    real = torch.from_numpy(FACES.images[:16]).permute(0, 3, 1, 2).float() / 127.5 - 1
    b = Batch(real, z=torch.randn(16, gan.nz))
    if FAMILIES[spec.family].labels:
        b.codes = torch.from_numpy(LABELS.codes[:16]).long()
        b.c = one_hot(b.codes, gan.sizes)
    seen = []
    gan.D.register_forward_pre_hook(lambda mod, args: seen.append([a.detach().clone() for a in args]))
    gan_step(gan, b)
    return b, seen


@pytest.mark.parametrize("arch", ["dcgan", "cgan", "acgan"])
def test_d_sees_real_and_fake_augmented_and_labels_untouched(arch):
    b, plain = _recorded_d_inputs(arch, [])
    _, aug = _recorded_d_inputs(arch, POLICY)
    assert len(plain) == len(aug) >= 3  # D step: real, fake; G step: fake (acgan: same)
    assert torch.equal(plain[0][0], b.real)  # without a policy D gets the batch as it is
    real_seen = aug[0][0]
    assert real_seen.shape == b.real.shape and not torch.equal(real_seen, b.real)
    assert (real_seen == 0).float().mean() > 0.05  # cutout's and translation's zeros are there
    for call in aug[1:]:  # the fakes went through the same ops: cutout holes in every one
        assert ((call[0] == 0).flatten(1).float().mean(1) > 0).all()
    if arch != "acgan" and b.c is not None:  # conditional D takes (x, c): c exactly the batch's labels
        for call in aug:
            assert torch.equal(call[1], b.c)


def test_resume_is_exact_with_augmentation(tmp_path):
    """4 steps == 2 + resume + 2 with DiffAugment on (its draws come from the saved generator)."""
    for arch, extra in [("dcgan", {}), ("sketch2image", {}), ("acgan", {"dragan": 0.5})]:
        spec = dict(augment=POLICY, **extra)
        run(spec_for(arch, steps=4, **spec), tmp_path / arch / "full")
        run(spec_for(arch, steps=2, **spec), tmp_path / arch / "split")
        assert run(spec_for(arch, steps=4, **spec), tmp_path / arch / "split")["resumed_from"] == 2
        assert_same(state_of(tmp_path / arch / "full" / "checkpoint.pt"), state_of(tmp_path / arch / "split" / "checkpoint.pt"))


def test_augmentation_changes_training_and_the_policy_is_a_training_param(tmp_path):
    plain = run(spec_for("dcgan", steps=2), tmp_path / "plain")
    aug = run(spec_for("dcgan", steps=2, augment=POLICY), tmp_path / "aug")
    assert plain["final_loss_d"] != aug["final_loss_d"]
    # switching augmentation on is a different training run: no resume from the plain checkpoint
    assert run(spec_for("dcgan", steps=4, augment=POLICY), tmp_path / "plain")["resumed_from"] == 0


def test_the_budget_is_the_devices_unless_the_entry_sets_steps():
    from pipeline.params import TrainBudget, load_params
    from pipeline.train.distributed import Dist
    from pipeline.train.stage import budgeted

    from conftest import ROOT

    assert TrainBudget().steps_for("cpu", 64) is None  # a CPU keeps each entry's epochs
    assert TrainBudget().steps_for("cuda", 64) == 7813  # 500,000 images / 64, rounded up
    params = load_params(ROOT / "params.yaml", ["train.device=cpu", "train.budget.cpu=640"])
    spec = params.model("dcgan")
    assert budgeted(params, "dcgan", spec, Dist()).steps == 640 // spec.batch_size
    fixed = spec.model_copy(update={"steps": 3})
    assert budgeted(params, "dcgan", fixed, Dist()).steps == 3  # the entry's own steps win
    cpu = load_params(ROOT / "params.yaml", ["train.device=cpu"])
    assert budgeted(cpu, "dcgan", spec, Dist()).steps is None
