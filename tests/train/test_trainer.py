"""The one trainer: every family trains, resume is exact, thresholds skip, guards stop (tiny, CPU)."""

import pickle

import pytest
import torch

from pipeline.core.datasets import Labels, sketches_of, toy_labelled_faces
from pipeline.params import ModelSpec
from pipeline.train import loop as trainer
from pipeline.train.checkpoint import DamagedCheckpoint, load_generator, load_state
from pipeline.train.families import Batch
from pipeline.train.loop import TrainingDiverged, gan_step, make_gan, train, update

from conftest import ROOT

FACES, LABELS = toy_labelled_faces(48, 32, seed=0)
SKETCHES = sketches_of(FACES.images)
NETS = {"dcgan": {"nz": 8, "ngf": 8, "ndf": 8}, "dcgan_tags": {"nz": 8, "ngf": 8, "ndf": 8},
        "acgan": {"nz": 8, "ngf": 8, "ndf": 8}, "gan_mlp": {"nz": 8, "hidden": 16}, "cgan": {"nz": 8, "hidden": 16},
        "sketch2image": {"ngf": 8, "ndf": 8, "blocks": 2}}
COND = {"dcgan_tags", "acgan", "cgan"}


def spec_for(arch: str, **kw) -> ModelSpec:
    kw.setdefault("steps", 4)
    return ModelSpec(arch=arch, batch_size=16, log_every=2, net=NETS[arch],
                     conditioning=["hair_color", "eye_color"] if arch in COND else [], **kw)


def run(spec: ModelSpec, out, **kw):
    return train(FACES.images, spec, out, labels=LABELS if spec.conditioning else None,
                 sketches=SKETCHES if spec.family == "sketch" else None, seed=0, device="cpu", **kw)


def state_of(path):
    s = load_state(path)
    return {k: s[k] for k in ("G", "D", "G_ema", "opt_g", "opt_d", "step", "epoch", "gen")}


def assert_same(a, b, where="state"):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    else:
        assert a == b, where


@pytest.mark.parametrize("arch", sorted(NETS))
def test_every_family_trains(arch, tmp_path):
    summary = run(spec_for(arch), tmp_path)
    assert summary["steps"] == 4 and summary["epochs"] == 2  # 48 faces / 16 = 3 steps per epoch
    assert summary["final_loss_d"] == pytest.approx(summary["final_loss_d"])  # finite
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["epoch_001.png", "epoch_002.png"]
    assert [r.split(",")[0] for r in (tmp_path / "losses.csv").read_text().splitlines()] == ["step", "1", "2", "3", "4"]  # every step, read every 2
    G, meta = load_generator(tmp_path / "checkpoint.pt")
    assert meta["family"] == spec_for(arch).family
    sketches = torch.zeros(2, 1, 32, 32) if arch == "sketch2image" else None
    assert G.sample(2, sketches=sketches).shape == (2, 3, 32, 32)


@pytest.mark.parametrize("arch, extra", [("dcgan", {"d_threshold": 0.9}), ("acgan", {"dragan": 0.5}), ("cgan", {}),
                                         ("sketch2image", {})])
def test_resume_is_exact(arch, extra, tmp_path):
    """4 steps == 2 steps + resume + 2 steps, mid-epoch, to the last bit of every tensor."""
    run(spec_for(arch, steps=4, **extra), tmp_path / "full")
    run(spec_for(arch, steps=2, **extra), tmp_path / "split")
    assert run(spec_for(arch, steps=4, **extra), tmp_path / "split")["resumed_from"] == 2
    assert_same(state_of(tmp_path / "full" / "checkpoint.pt"), state_of(tmp_path / "split" / "checkpoint.pt"))
    full = (tmp_path / "full" / "losses.csv").read_text()
    assert full == (tmp_path / "split" / "losses.csv").read_text()


def test_resume_starts_over_when_training_params_change(tmp_path):
    run(spec_for("dcgan", steps=2), tmp_path)
    assert run(spec_for("dcgan", steps=4, lr=1e-3), tmp_path)["resumed_from"] == 0
    assert run(spec_for("dcgan", steps=4), tmp_path, resume="never")["resumed_from"] == 0


def _snapshot(gan):
    return {"D": {k: v.clone() for k, v in gan.D.named_parameters()}, "G": {k: v.clone() for k, v in gan.G.named_parameters()},
            "opt_d": pickle.loads(pickle.dumps(gan.opt_d.state_dict())), "opt_g": pickle.loads(pickle.dumps(gan.opt_g.state_dict()))}


@pytest.mark.parametrize("threshold, d_moves", [(100.0, False), (0.0, True)])
def test_threshold_skips_the_update(threshold, d_moves):
    spec = spec_for("dcgan", d_threshold=threshold, g_threshold=100.0)
    torch.manual_seed(0)
    gan = make_gan(spec, 32, 3, torch.device("cpu"), seed=0)
    real = torch.from_numpy(FACES.images[:16]).permute(0, 3, 1, 2).float() / 127.5 - 1
    for _ in range(2):  # the second step has Adam momentum that a zeroed gradient would still apply
        before = _snapshot(gan)
        stats = gan_step(gan, Batch(real, z=torch.randn(16, 8)))
        after = _snapshot(gan)
        assert stats[4].item() == float(d_moves) and stats[5].item() == 0.0  # d_updated, g_updated
        d_params_same = all(torch.equal(before["D"][k], after["D"][k]) for k in before["D"])
        d_state_same = all(torch.equal(a, b) for p in before["opt_d"]["state"]
                           for a, b in zip(before["opt_d"]["state"][p].values(), after["opt_d"]["state"][p].values()))
        assert d_params_same is (not d_moves) and d_state_same is (not d_moves)
        assert_same(before["G"], after["G"])  # G's loss is never above 100
        assert_same(before["opt_g"], after["opt_g"])


def test_update_decides_on_the_device():
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([p], lr=0.1)
    trainer.init_adam_state(opt)
    kept = update(opt, (p * 2).sum(), threshold=5.0)  # loss 6 > 5: step taken
    assert isinstance(kept, torch.Tensor) and kept.item() == 1.0 and p[0].item() < 1
    snap = p.detach().clone(), {k: v.clone() for k, v in opt.state[p].items()}
    kept = update(opt, (p * 0).sum(), threshold=5.0)  # loss 0: skipped, although Adam's momentum would move p
    assert kept.item() == 0.0 and torch.equal(p.detach(), snap[0])
    assert all(torch.equal(opt.state[p][k], v) for k, v in snap[1].items())


def test_ema_is_what_sampling_uses(tmp_path):
    run(spec_for("dcgan", steps=6, ema_decay=0.9), tmp_path)
    state = load_state(tmp_path / "checkpoint.pt")
    assert any(not torch.equal(state["G"][k], state["G_ema"][k]) for k in state["G"] if k.endswith("weight"))
    ema, _ = load_generator(tmp_path / "checkpoint.pt", ema=True)
    raw, _ = load_generator(tmp_path / "checkpoint.pt", ema=False)
    key = next(k for k in state["G"] if k.endswith("weight"))
    assert torch.equal(ema.G.state_dict()[key], state["G_ema"][key]) and torch.equal(raw.G.state_dict()[key], state["G"][key])


def test_nan_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    run(spec_for("dcgan", steps=3), tmp_path)  # one epoch: checkpoint at step 3
    real_step = trainer.gan_step

    def poisoned(gan, b, *args):
        stats = real_step(gan, b, *args)
        with torch.no_grad():
            for p in gan.G.parameters():
                p.fill_(float("nan"))
        return stats * float("nan")

    monkeypatch.setattr(trainer, "gan_step", poisoned)
    with pytest.raises(TrainingDiverged, match="last good checkpoint"):
        run(spec_for("dcgan", steps=8), tmp_path)
    state = load_state(tmp_path / "checkpoint.pt")
    assert state["step"] == 3 and all(torch.isfinite(v).all() for v in state["G"].values())


def test_collapse_guard(tmp_path):
    with pytest.raises(TrainingDiverged, match="collapsed"):
        run(spec_for("dcgan", steps=3, collapse_std=10.0), tmp_path)  # no G varies that much: always "collapsed"
    assert not (tmp_path / "checkpoint.pt").exists()


def test_checkpoints_load_weights_only(tmp_path):
    run(spec_for("dcgan", steps=1), tmp_path)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    state["meta"]["evil"] = Labels  # a class: unpickling it would need code
    torch.save(state, tmp_path / "evil.pt")
    with pytest.raises(DamagedCheckpoint, match="refused: contains code"):  # weights_only refused it; the loader says so
        load_generator(tmp_path / "evil.pt")


def test_trainer_imports_without_tracking_libraries():
    """The GPU box has torch but no MLflow/Prefect/DVC: tracking reaches the loop only as callbacks."""
    import subprocess
    import sys

    code = ("import sys, pipeline.train.loop, pipeline.evaluate.sample, pipeline.train.sampling; "
            "print(sorted(m for m in ('mlflow', 'prefect', 'dvc', 'pandas', 'matplotlib') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_a_checkpoint_of_other_layers_is_not_resumed(tmp_path):
    """DVC reruns train when models/ changes; the persisted checkpoint of the old code must not crash it."""
    run(spec_for("cgan", steps=2), tmp_path)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    state["G"]["main.0.weight"] = torch.zeros(3, 3)  # as if written by another version of models/mlp.py
    state["G_ema"]["main.0.weight"] = torch.zeros(3, 3)
    torch.save(state, tmp_path / "checkpoint.pt")
    with pytest.raises(trainer.StageError, match="does not fit the current models/ code"):
        load_generator(tmp_path / "checkpoint.pt")
    assert run(spec_for("cgan", steps=4), tmp_path)["resumed_from"] == 0
    assert load_state(tmp_path / "checkpoint.pt")["step"] == 4
