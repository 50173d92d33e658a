"""The modern choices in the one trainer (tiny, CPU): the pairing loss with R1/R2 on any arch, the
R3GAN nets, adaptive augmentation steered by D's overfitting signal, exact resume with p and with a
transfer start, and FreezeD keeping D's first layers where the source left them."""

import csv

import pytest
import torch
from test_trainer import FACES, LABELS, assert_same, state_of

from pipeline.core.errors import StageError
from pipeline.params import ModelSpec
from pipeline.train.checkpoint import load_state
from pipeline.train.loop import train

R3 = {"nz": 8, "width": 16, "blocks": 1, "expansion": 2, "group_width": 8}
DC = {"nz": 8, "ngf": 8, "ndf": 8}
OPS = ["color", "translation", "cutout"]


def spec(arch="r3gan", **kw) -> ModelSpec:
    kw.setdefault("steps", 6)
    net = R3 if arch.startswith("r3gan") else DC
    cond = ["hair_color", "eye_color"] if arch.endswith("_tags") else []
    return ModelSpec(arch=arch, batch_size=16, log_every=1, net=net, conditioning=cond, **kw)


def run(s: ModelSpec, out, **kw):
    return train(FACES.images, s, out, labels=LABELS if s.conditioning else None, seed=0, device="cpu", **kw)


def column(out, name) -> list[float]:
    with open(out / "losses.csv") as f:
        return [float(row[name]) for row in csv.DictReader(f)]


@pytest.mark.parametrize("arch", ["r3gan", "r3gan_tags"])
def test_r3gan_trains_with_the_pairing_loss_and_both_penalties(arch, tmp_path):
    summary = run(spec(arch, loss="rpgan", r1=0.05, r2=0.05, beta1=0.0, beta2=0.99), tmp_path)
    assert summary["steps"] == 6 and torch.isfinite(torch.tensor(summary["final_loss_d"]))
    assert summary["cuda_graph"] == "off"


def test_the_loss_is_a_choice_apart_from_the_arch(tmp_path):
    bce, rp = run(spec("dcgan"), tmp_path / "bce"), run(spec("dcgan", loss="rpgan"), tmp_path / "rp")
    assert bce["weights_sha256"] != rp["weights_sha256"]
    # softplus(-(r - f)) at D's start, where r ~ f, is near log 2; bce's pair is near 2 log 2
    assert column(tmp_path / "rp", "loss_d")[0] == pytest.approx(0.693, abs=0.15)
    assert column(tmp_path / "bce", "loss_d")[0] == pytest.approx(1.386, abs=0.3)


def test_penalties_change_the_d_step_only_when_asked(tmp_path):
    plain = run(spec("dcgan", steps=2), tmp_path / "a")
    zero = run(spec("dcgan", steps=2, r1=0.0, r2=0.0), tmp_path / "b")
    r1 = run(spec("dcgan", steps=2, r1=10.0), tmp_path / "c")
    assert plain["weights_sha256"] == zero["weights_sha256"] != r1["weights_sha256"]


def test_adaptive_p_rises_when_d_is_sure_of_the_reals_and_falls_when_it_is_not(tmp_path):
    """A target of 0.01 is below any D that calls the reals real more often than not: p must rise
    from 0. A target of 0.99 is above what a few steps of D reach: p must fall from 1."""
    ada_up = {"target": 0.01, "interval": 1, "kimg": 0.1, "start": 0.0}
    ada_down = {"target": 0.99, "interval": 1, "kimg": 0.1, "start": 1.0}
    run(spec("dcgan", steps=12, augment=OPS, augment_p="auto", ada=ada_up, lr=2e-3), tmp_path / "up")
    run(spec("dcgan", steps=12, augment=OPS, augment_p="auto", ada=ada_down), tmp_path / "down")
    up, down = column(tmp_path / "up", "augment_p"), column(tmp_path / "down", "augment_p")
    assert up[0] == 0.0 and up[-1] > 0.5, up
    assert down[0] == 1.0 and down[-1] < 0.5, down


def test_a_fixed_p_and_the_default_log_their_value(tmp_path):
    run(spec("dcgan", steps=2, augment=OPS, augment_p=0.3), tmp_path / "p")
    run(spec("dcgan", steps=2, augment=OPS), tmp_path / "always")
    run(spec("dcgan", steps=2), tmp_path / "none")
    assert [column(tmp_path / d, "augment_p")[0] for d in ("p", "always", "none")] == pytest.approx([0.3, 1.0, 0.0])


def test_augment_p_needs_ops_and_a_probability():
    with pytest.raises(ValueError, match="augment lists no ops"):
        spec("dcgan", augment_p="auto")
    with pytest.raises(ValueError, match="probability"):
        spec("dcgan", augment=OPS, augment_p=1.5)


def test_resume_is_exact_with_adaptive_p(tmp_path):
    s = spec("dcgan", steps=9, augment=OPS, augment_p="auto", ada={"target": 0.01, "interval": 2, "kimg": 0.1})
    run(s, tmp_path / "straight")
    run(s.model_copy(update={"steps": 4}), tmp_path / "resumed")
    summary = run(s, tmp_path / "resumed")
    assert summary["resumed_from"] == 4
    a, b = load_state(tmp_path / "straight" / "checkpoint.pt"), load_state(tmp_path / "resumed" / "checkpoint.pt")
    assert_same(state_of(tmp_path / "straight" / "checkpoint.pt"), state_of(tmp_path / "resumed" / "checkpoint.pt"))
    assert_same(a["ada"], b["ada"], "ada")
    assert column(tmp_path / "straight", "augment_p") == column(tmp_path / "resumed", "augment_p")


def test_transfer_starts_from_the_source_and_freeze_d_keeps_its_first_layers(tmp_path):
    run(spec("r3gan", steps=4, loss="rpgan", r1=0.05, r2=0.05), tmp_path / "source")
    source = tmp_path / "source" / "checkpoint.pt"
    fine = spec("r3gan", steps=3, loss="rpgan", r1=0.05, r2=0.05, freeze_d=2, init_from=str(source))
    summary = run(fine, tmp_path / "fine", init_from=source)
    assert summary["init_from"] == str(source) and summary["init_step"] == 4
    src, out = load_state(source), load_state(tmp_path / "fine" / "checkpoint.pt")
    d_weights = [k for k, v in src["D"].items() if v.dim() >= 2]  # conv and linear weights, image side first
    frozen, moved = d_weights[:2], d_weights[2:]
    assert all(torch.equal(src["D"][k], out["D"][k]) for k in frozen)
    assert any(not torch.equal(src["D"][k], out["D"][k]) for k in moved)
    scratch = run(fine.model_copy(update={"init_from": None}), tmp_path / "scratch")
    assert scratch["weights_sha256"] != summary["weights_sha256"]


def test_resume_with_init_from_continues_its_own_run(tmp_path):
    run(spec("dcgan", steps=3), tmp_path / "source")
    source = tmp_path / "source" / "checkpoint.pt"
    s = spec("dcgan", steps=6, init_from=str(source))
    run(s, tmp_path / "straight", init_from=source)
    run(s.model_copy(update={"steps": 2}), tmp_path / "resumed", init_from=source)
    summary = run(s, tmp_path / "resumed", init_from=source)
    assert summary["resumed_from"] == 2 and "init_step" not in summary  # its own checkpoint, not the source again
    assert_same(state_of(tmp_path / "straight" / "checkpoint.pt"), state_of(tmp_path / "resumed" / "checkpoint.pt"))


def test_a_transfer_between_different_nets_is_refused_with_the_reason(tmp_path):
    run(spec("dcgan", steps=2), tmp_path / "source")
    wider = ModelSpec(arch="dcgan", batch_size=16, steps=2, net={"nz": 8, "ngf": 16, "ndf": 8})
    with pytest.raises(StageError, match="init_from: .* has net"):
        run(wider, tmp_path / "fine", init_from=tmp_path / "source" / "checkpoint.pt")


def test_a_transfer_model_is_refused_in_train_enabled_with_the_way_to_train_it(tmp_path):
    from pipeline.params import ParamsError, load_params

    from conftest import ROOT

    with pytest.raises(ParamsError, match=r"dvc repro cannot order them.*python -m pipeline train dcgan_few"):
        load_params(ROOT / "params.yaml", ["train.models.dcgan_few={arch: dcgan, init_from: dcgan}",
                                           "train.enabled=[dcgan, dcgan_few]"])


def test_the_train_stage_resolves_init_from_by_model_name_and_says_what_is_missing(tmp_path):
    from pipeline.params import load_params
    from pipeline.train.stage import init_source

    from conftest import ROOT, tiny_overrides

    params = load_params(ROOT / "params.yaml", tiny_overrides(tmp_path) + ["train.models.dcgan_few={arch: dcgan, init_from: dcgan}"])
    with pytest.raises(StageError, match=r"no checkpoint at .*runs/dcgan/checkpoint.pt; train it first: python -m pipeline train dcgan"):
        init_source(params, "dcgan_few", params.model("dcgan_few"))
    (tmp_path / "runs" / "dcgan").mkdir(parents=True)
    (tmp_path / "runs" / "dcgan" / "checkpoint.pt").write_bytes(b"x")
    assert init_source(params, "dcgan_few", params.model("dcgan_few")) == tmp_path / "runs" / "dcgan" / "checkpoint.pt"
    wrong = params.model("dcgan_few").model_copy(update={"init_from": "nowhere.pt"})
    with pytest.raises(StageError, match="neither a checkpoint file nor a model of train.models"):
        init_source(params, "dcgan_few", wrong)
