"""What the CUDA path needs, checked on the CPU: the invariants CUDA's kernels enforce (one memory
layout for a parameter and its Adam state, RNG states as CPU byte tensors), checkpoints across
device types, capturable Adam only under a graph, a clean capture-failure fallback, the
deterministic mode, YAML's on/off, and the families table that the loop and the sampler share."""

import contextlib
import logging
import os
import re
from typing import Literal, get_args, get_origin

import pytest
import torch
from pydantic import BaseModel
from test_trainer import run, spec_for

from models.registry import ARCHS, CONDITIONED
from pipeline.params import Params, load_params
from pipeline.train import checkpoint
from pipeline.train.checkpoint import load_generator, load_state
from pipeline.train.families import FAMILIES, dragan_penalty
from pipeline.train.fastpath import FastOptions, GraphedStep, Plan, choose
from pipeline.train.loop import adam_flags, make_gan

from conftest import ROOT

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
CONVOLUTIONAL = ["dcgan", "dcgan_tags", "acgan", "sketch2image"]
PARAMS = ROOT / "params.yaml"


@pytest.fixture
def layout_checked_adam(monkeypatch):
    """Wrap ``torch.optim.Adam.step``: before every step, each state tensor shaped like its parameter
    (and the gradient) must have the parameter's strides, as CUDA's ``_fused_adam_`` demands ("params,
    grads, exp_avgs, and exp_avg_sqs must have same dtype, device, and layout"). Returns the mismatches
    and the number of tensors checked."""
    seen = {"bad": [], "checked": 0}
    real_step = torch.optim.Adam.step

    def step(self, *args, **kwargs):
        for group in self.param_groups:
            for p in group["params"]:
                tensors = [(k, t) for k, t in self.state.get(p, {}).items() if isinstance(t, torch.Tensor) and t.dim()]
                if p.grad is not None:
                    tensors.append(("grad", p.grad))
                for k, t in tensors:
                    seen["checked"] += 1
                    if t.stride() != p.stride():
                        seen["bad"].append((k, tuple(p.shape), p.stride(), t.stride()))
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    return seen


@pytest.mark.parametrize("arch, extra", [(a, {}) for a in CONVOLUTIONAL] + [("dcgan", {"d_threshold": 0.5})])
def test_adam_state_has_its_parameters_layout_with_the_fast_path(arch, extra, layout_checked_adam, tmp_path):
    """Defect 1 of the first GPU run: channels_last applied after Adam's state existed. On the code
    before the fix this saw 32 mismatches in a 2-step dcgan run (a D weight (48,1,12,3), its exp_avg
    (48,16,4,1)). Also after a checkpoint round trip: 3 steps (one epoch, a checkpoint), resumed to 5."""
    fast = FastOptions(fast="on")
    first = run(spec_for(arch, steps=3, **extra), tmp_path, fast=fast)
    assert "channels_last" in first["fast_path"]
    assert run(spec_for(arch, steps=5, **extra), tmp_path, fast=fast)["resumed_from"] == 3
    assert layout_checked_adam["checked"] > 0
    assert layout_checked_adam["bad"] == []


def test_a_checkpoint_of_contiguous_state_takes_the_parameters_layout(tmp_path):
    """A checkpoint written without channels_last (train.fast: off) resumed with it on."""
    run(spec_for("dcgan", steps=3), tmp_path)
    gan = make_gan(spec_for("dcgan", steps=5), 32, 3, CPU, seed=0, plan=choose(FastOptions(fast="on"), device=CPU))
    checkpoint.restore(gan, load_state(tmp_path / "checkpoint.pt"))
    w = gan.D.main[0].weight
    assert w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
    for opt in (gan.opt_g, gan.opt_d):
        for p, state in opt.state.items():
            assert all(t.stride() == p.stride() for t in state.values() if t.dim()), p.shape


def test_checkpoints_always_load_to_the_cpu(tmp_path, monkeypatch):
    """Defect 2: loaded with map_location=<device>, the RNG states landed on the GPU, and
    ``Generator.set_state`` takes CPU byte tensors only. Whatever device the caller wants (here
    "meta", a device type that is not the CPU, as a GPU is not here), torch.load maps to the CPU."""
    run(spec_for("dcgan", steps=3), tmp_path)
    asked = []
    real_load = torch.load

    def load(*args, **kwargs):
        asked.append(str(kwargs.get("map_location")))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", load)
    sampler, _ = load_generator(tmp_path / "checkpoint.pt", device="meta")
    assert next(sampler.G.parameters()).device.type == "meta"
    assert run(spec_for("dcgan", steps=4), tmp_path)["resumed_from"] == 3
    state = load_state(tmp_path / "checkpoint.pt")
    assert asked and set(asked) == {"cpu"}
    for key in ("gen", "torch_rng"):
        assert state[key].device.type == "cpu" and state[key].dtype == torch.uint8


@pytest.mark.parametrize("how", ["device_type key", "older checkpoint: a CUDA RNG state"])
def test_a_checkpoint_of_another_device_type_is_not_resumed(how, tmp_path, caplog):
    """A CUDA generator's state is 16 bytes, a CPU one's 5,056: a checkpoint from the other device
    type is refused with the reason, and the run trains from scratch (README, GPU section)."""
    run(spec_for("dcgan", steps=3), tmp_path)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    state["gen"] = torch.zeros(16, dtype=torch.uint8)  # what a CUDA (Philox) generator's get_state returns
    state["cuda_rng"] = torch.zeros(16, dtype=torch.uint8)
    if how == "device_type key":
        state["device_type"] = "cuda"
    else:
        del state["device_type"]
    torch.save(state, tmp_path / "checkpoint.pt")
    with caplog.at_level(logging.INFO, logger="pipeline.train.loop"):
        summary = run(spec_for("dcgan", steps=4), tmp_path)
    assert summary["resumed_from"] == 0 and summary["steps"] == 4
    assert "it was written on cuda and this run is on cpu" in caplog.text and "training from scratch" in caplog.text


def test_a_checkpoint_of_this_device_type_still_resumes_without_the_new_key(tmp_path):
    """Checkpoints written before ``device_type`` was saved (the persisted runs/) still resume on the CPU."""
    run(spec_for("dcgan", steps=3), tmp_path)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    del state["device_type"]
    torch.save(state, tmp_path / "checkpoint.pt")
    assert run(spec_for("dcgan", steps=4), tmp_path)["resumed_from"] == 3


def _plan(monkeypatch, **opts) -> Plan:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)  # choose() only asks
    return choose(FastOptions(**opts), device=CUDA)


def test_adam_is_capturable_only_when_a_graph_captures_the_step(monkeypatch):
    """Capturable Adam keeps its step count on the device, slower eager; only a graph needs it."""
    made = []

    class Recorded(torch.optim.Adam):
        def __init__(self, params, **kw):
            made.append(dict(kw))
            super().__init__(params, **{**kw, "capturable": False, "fused": None})  # the CPU has neither

    monkeypatch.setattr(torch.optim, "Adam", Recorded)
    for opts, graph in (({}, True), ({"cuda_graph": "off"}, False), ({"fast": "off"}, False)):
        plan = _plan(monkeypatch, **opts)
        plan.device = CPU  # build on the CPU what the plan would build on CUDA
        made.clear()
        make_gan(spec_for("dcgan"), 32, 3, CPU, seed=0, plan=plan)
        assert plan.graph is graph and [m["capturable"] for m in made] == [graph, graph], opts
    p = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.Adam([p])
    opt.state[p]["step"] = torch.tensor(3.0)
    adam_flags(opt, fused=False, capturable=False)
    assert opt.param_groups[0]["capturable"] is False and opt.state[p]["step"].device.type == "cpu"


class FakeCuda:
    """Just enough of torch.cuda for GraphedStep's control flow on a CPU; ``graph`` fails to capture."""

    def __init__(self, monkeypatch, error: Exception):
        self.calls, self.error, self.modes = [], error, []
        fake = self

        class Graph:
            def replay(self):
                fake.calls.append("replay")

        class Capture:
            def __init__(self, graph, capture_error_mode="global"):
                fake.modes.append(capture_error_mode)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                raise fake.error  # as a capture that recorded a forbidden op fails when it ends

        class Stream:
            def wait_stream(self, other):
                pass

        monkeypatch.setattr(torch.cuda, "CUDAGraph", Graph)
        monkeypatch.setattr(torch.cuda, "graph", Capture)
        monkeypatch.setattr(torch.cuda, "Stream", Stream)
        monkeypatch.setattr(torch.cuda, "current_stream", lambda: Stream())
        monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
        monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: fake.calls.append("synchronize"))


def test_a_failed_capture_falls_back_to_eager_cleanly(monkeypatch):
    cuda = FakeCuda(monkeypatch, RuntimeError("operation not permitted when stream is capturing\nmore"))
    steps, zeroed = [], []

    def fn(x):
        steps.append(float(x))
        return x * 2

    g = GraphedStep(fn, lambda: zeroed.append(len(steps)), warmup=2)
    outs = [g(torch.tensor(float(i))).item() for i in range(6)]
    assert outs == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]  # every call one real step, none lost to the failed capture
    assert steps.count(2.0) == 2  # the capture's call (recorded, never run) and its eager rerun
    assert cuda.modes == ["thread_local"] and "synchronize" in cuda.calls and "replay" not in cuda.calls
    assert zeroed == [2, 3]  # gradients cleared before the capture and again after it failed
    assert g.failed == "RuntimeError: operation not permitted when stream is capturing"
    assert g.status == "capture failed, eager instead: RuntimeError: operation not permitted when stream is capturing"


def test_a_step_that_fails_under_capture_is_the_reason_given(monkeypatch):
    """The step's own error comes first; the capture's end failing after it is named too."""
    FakeCuda(monkeypatch, RuntimeError("capture invalidated"))
    calls = []

    def fn(x):
        calls.append(1)
        if len(calls) == 2:  # the call being captured
            raise RuntimeError("cudaErrorStreamCaptureUnsupported: a host sync")
        return x

    g = GraphedStep(fn, lambda: None, warmup=1)
    assert [g(torch.tensor(1.0)).item() for _ in range(3)] == [1.0, 1.0, 1.0]
    assert g.failed == ("RuntimeError: cudaErrorStreamCaptureUnsupported: a host sync "
                        "(then, ending the capture: RuntimeError: capture invalidated)")


def test_the_run_says_what_became_of_the_graph(tmp_path):
    summary = run(spec_for("dcgan", steps=1), tmp_path)
    assert summary["cuda_graph"] == "off" and summary["deterministic"] is False


def test_backend_flags_are_put_back_after_a_run(monkeypatch):
    """Plan.prepare used to set cudnn.benchmark for good: the bench's later rows ran with it on."""
    cudnn = torch.backends.cudnn
    monkeypatch.setattr(cudnn, "benchmark", False)
    plan = _plan(monkeypatch)
    assert plan.cudnn_benchmark
    with plan.backend():
        assert cudnn.benchmark is True
    assert cudnn.benchmark is False


def test_deterministic_mode(monkeypatch, tmp_path):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    det = _plan(monkeypatch, deterministic=True)
    assert not det.cudnn_benchmark and "cuDNN autotune off: train.deterministic" in det.describe()
    assert det.describe().endswith("deterministic algorithms (train.deterministic)")
    before = (torch.backends.cudnn.deterministic, torch.are_deterministic_algorithms_enabled())
    with det.backend():
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert torch.are_deterministic_algorithms_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert (torch.backends.cudnn.deterministic, torch.are_deterministic_algorithms_enabled()) == before
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    fast = FastOptions(fast="on", deterministic=True)
    run(spec_for("dcgan", steps=4), tmp_path / "full", fast=fast)
    run(spec_for("dcgan", steps=2), tmp_path / "split", fast=fast)
    summary = run(spec_for("dcgan", steps=4), tmp_path / "split", fast=fast)
    assert summary["resumed_from"] == 2 and summary["deterministic"] is True
    a, b = load_state(tmp_path / "full" / "checkpoint.pt"), load_state(tmp_path / "split" / "checkpoint.pt")
    assert all(torch.equal(a["G"][k], b["G"][k]) for k in a["G"])


def _switch_fields(model: type[BaseModel], prefix: str = ""):
    """Every params field whose allowed values include 'on' or 'off', with its dotted key."""
    for name, f in model.model_fields.items():
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            yield from _switch_fields(ann, f"{prefix}{name}.")
        elif get_origin(ann) is Literal and {"on", "off"} & set(get_args(ann)):
            yield f"{prefix}{name}", set(get_args(ann))


def test_on_and_off_however_yaml_spells_them(tmp_path):
    """Defect 6: YAML 1.1 reads on/off/yes/no as booleans, so ``-S train.fast=on`` was refused."""
    fields = dict(_switch_fields(Params))
    assert {"train.fast", "train.amp", "train.channels_last", "train.cuda_graph"} <= set(fields)
    for key, allowed in fields.items():
        for spelled, meant in (("off", "off"), ("no", "off"), ("false", "off"), ("on", "on"), ("yes", "on")):
            if meant in allowed:
                section, knob = key.split(".")
                assert getattr(getattr(load_params(PARAMS, [f"{key}={spelled}"]), section), knob) == meant, key
    yaml_text = PARAMS.read_text().replace("  fast: auto ", "  fast: on   ", 1)  # params.yaml as the README spells it
    assert "  fast: on " in yaml_text
    (tmp_path / "params.yaml").write_text(yaml_text)
    assert load_params(tmp_path / "params.yaml").train.fast == "on"
    with pytest.raises(ValueError, match="train.amp = 'on'"):
        load_params(PARAMS, ["train.amp=on"])  # bf16 | off: 'on' names nothing there, and says so
    assert load_params(PARAMS, ["train.deterministic=on"]).train.deterministic is True


def test_ddp_ranks_draw_their_own_dragan_perturbations():
    """Every rank draws all ranks' perturbations from the one generator and keeps its own slice:
    ranks differ, and a single process draws what it always drew."""
    D = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))

    def d(x):
        return (D(x),)

    real = torch.rand(4, 3, 2, 2) * 2 - 1
    pen = [dragan_penalty(d, real, torch.Generator().manual_seed(0), rank, 2) for rank in (0, 1)]
    assert not torch.equal(pen[0], pen[1])
    gen = torch.Generator().manual_seed(0)
    noise, alpha = torch.rand(real.shape, generator=gen), torch.rand(4, 1, 1, 1, generator=gen)
    x = (real + alpha * 0.5 * real.std() * noise).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x).sum(), x)
    single = dragan_penalty(d, real, torch.Generator().manual_seed(0))
    assert torch.allclose(single, ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean())


def test_the_families_table_covers_every_arch_and_agrees_with_the_registry():
    assert {a.family for a in ARCHS.values()} == set(FAMILIES)
    assert {f for f, fam in FAMILIES.items() if fam.labels} == set(CONDITIONED)
    assert [f for f, fam in FAMILIES.items() if fam.sketches] == ["sketch"]
    from models.zoo import BUILDERS

    assert {a.module for a in ARCHS.values()} == set(BUILDERS)


def test_no_family_is_told_apart_by_name_outside_the_table():
    """The loop, the checkpoint loader, the sampler, the stage, ``sample`` and the benches read FAMILIES,
    not family names."""
    for path in ["pipeline/train/loop.py", "pipeline/train/checkpoint.py", "pipeline/train/sampling.py",
                 "pipeline/train/stage.py", "pipeline/evaluate/sample.py", "bench/train_speed.py", "bench/gpu_check.py"]:
        text = (ROOT / path).read_text()
        assert not re.search(r"""family\s*(==|!=|in|not in)\s*[("']""", text), path
        if path.startswith("pipeline/"):  # the benches' tables of tiny nets are keyed by arch names ("acgan")
            assert not re.search(r"""["'](sketch|conditional|acgan|unconditional)["']""", text), path


def test_the_fast_path_module_keeps_no_global_flag(monkeypatch):
    """prepare() only lays out weights; the flags live in backend() (restored)."""
    cudnn = torch.backends.cudnn
    monkeypatch.setattr(cudnn, "benchmark", False)
    plan = Plan(CUDA, cudnn_benchmark=True)
    plan.prepare(torch.nn.Linear(2, 2))
    assert cudnn.benchmark is False
