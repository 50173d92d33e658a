"""The fast path's choices and the pieces of it that run on a CPU (bf16 autocast, channels_last).
The CUDA pieces (fused Adam, the CUDA graph) need a GPU: ``bench/train_speed.py`` checks them there."""

import csv
import logging

import pytest
import torch
from test_trainer import FACES, _snapshot, run, spec_for

from pipeline.train.families import Batch
from pipeline.train.fastpath import FastOptions, choose
from pipeline.train.loop import gan_step, make_gan, update

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_off_on_the_cpu_by_default_and_says_why(tmp_path, caplog):
    assert choose(FastOptions(), device=CPU).describe() == "fast path off: device is cpu"
    assert choose(FastOptions(fast="off"), device=CUDA).describe() == "fast path off: train.fast is off"
    with caplog.at_level(logging.INFO, logger="pipeline.train.loop"):
        summary = run(spec_for("dcgan", steps=1), tmp_path)
    assert summary["fast_path"] == "fast path off: device is cpu"
    assert "fast path off: device is cpu" in caplog.text


def test_on_cuda_every_piece_unless_something_rules_it_out(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)  # choose() only asks; nothing runs on a GPU
    full = choose(FastOptions(), device=CUDA)
    assert full.describe() == ("fast path on: bf16 autocast, channels_last, fused Adam, cuDNN autotune, "
                               "CUDA graph of the whole step")
    ddp = choose(FastOptions(), device=CUDA, world=2)
    assert not ddp.graph and ddp.fused_adam and "CUDA graph off: DDP" in ddp.describe()
    dragan = choose(FastOptions(), device=CUDA, dragan=True)
    assert not dragan.graph and dragan.amp == torch.bfloat16 and "CUDA graph off: the DRAGAN penalty" in dragan.describe()
    knobs = choose(FastOptions(amp="off", cuda_graph="off", channels_last="off"), device=CUDA)
    assert (knobs.amp, knobs.graph, knobs.channels_last) == (None, False, False) and knobs.fused_adam
    assert "train.amp is off" in knobs.describe() and "train.cuda_graph is off" in knobs.describe()
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert "autocast off: this GPU has no bf16" in choose(FastOptions(), device=CUDA).describe()


def test_on_the_cpu_when_asked_and_channels_last_only_where_it_convolves():
    plan = choose(FastOptions(fast="on"), device=CPU)
    assert plan.describe() == ("fast path on: bf16 autocast, channels_last; fused Adam and CUDA graph off: device is cpu")
    gan = make_gan(spec_for("dcgan"), 32, 3, CPU, seed=0)
    plan.prepare(gan.G, gan.D)
    assert gan.D.main[0].weight.is_contiguous(memory_format=torch.channels_last)
    mlp = choose(FastOptions(fast="on"), device=CPU)
    gan = make_gan(spec_for("gan_mlp"), 32, 3, CPU, seed=0)
    mlp.prepare(gan.G, gan.D)
    assert not mlp.channels_last and "channels_last off: no convolutions" in mlp.describe()


@pytest.mark.parametrize("threshold, d_moves", [(100.0, False), (0.0, True)])
def test_threshold_skip_stays_exact_under_autocast_and_channels_last(threshold, d_moves):
    plan = choose(FastOptions(fast="on"), device=CPU)
    gan = make_gan(spec_for("dcgan", d_threshold=threshold, g_threshold=100.0), 32, 3, CPU, seed=0)
    plan.prepare(gan.G, gan.D)
    real = plan.images(torch.from_numpy(FACES.images[:16]).permute(0, 3, 1, 2).float() / 127.5 - 1)
    for _ in range(2):  # the second step has Adam momentum a zeroed gradient would still apply
        before = _snapshot(gan)
        stats = gan_step(gan, Batch(real, z=torch.randn(16, 8)), plan.autocast)
        after = _snapshot(gan)
        assert stats.dtype == torch.float32 and stats[4].item() == float(d_moves) and stats[5].item() == 0.0
        d_same = all(torch.equal(before["D"][k], after["D"][k]) for k in before["D"])
        state_same = all(torch.equal(a, b) for p in before["opt_d"]["state"]
                         for a, b in zip(before["opt_d"]["state"][p].values(), after["opt_d"]["state"][p].values()))
        assert d_same is (not d_moves) and state_same is (not d_moves)
        assert all(torch.equal(before["G"][k], after["G"][k]) for k in before["G"])


def test_a_threshold_decides_on_the_loss_averaged_over_ranks():
    """Under DDP ``update`` gets the ranks' mean: every rank steps or skips alike."""
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([p], lr=0.1)
    kept = update(opt, (p * 0).sum(), threshold=5.0, mean=lambda t: t + 6.0)  # this rank's loss 0, the mean 6
    assert kept.item() == 1.0


def _curves(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return torch.tensor([[float(r["loss_d"]), float(r["loss_g"])] for r in rows])


# bf16 keeps 8 bits of mantissa (relative error ~0.4% per op), so over 30 steps the two runs drift
# apart a little, as two machines' fp32 runs would. Measured on the 2-core dev CPU (torch 2.14): the
# largest difference of any step's loss between the paths was 0.009 for dcgan (losses 0.7-1.4) and
# 0.022 for acgan (3.4-9.1). Training something else moves them further: dropping the 0.1 label
# smoothing changed them by 0.12-0.14, a D threshold of 1.0 (skipped updates) by 0.22. 0.06 sits
# between: ~3x the bf16 drift, half the smallest real change.
LOSS_TOLERANCE = 0.06


@pytest.mark.parametrize("arch", ["dcgan", "acgan"])
def test_loss_curves_track_the_fp32_path(arch, tmp_path):
    eager = run(spec_for(arch, steps=30, label_smoothing=0.1), tmp_path / "eager")
    fast = run(spec_for(arch, steps=30, label_smoothing=0.1), tmp_path / "fast", fast=FastOptions(fast="on"))
    assert fast["fast_path"].startswith("fast path on: bf16 autocast, channels_last")
    a, b = _curves(tmp_path / "eager" / "losses.csv"), _curves(tmp_path / "fast" / "losses.csv")
    assert a.shape == b.shape == (30, 2)
    assert not torch.equal(a, b)  # autocast really ran
    assert (a - b).abs().max() < LOSS_TOLERANCE, (a - b).abs().max()
    assert eager["weights_sha256"] != fast["weights_sha256"]
