"""The trainer's fast path: what it turns on, why not when it doesn't, and the CUDA graph runner.

On CUDA, by default (``train.fast: auto``): bf16 autocast around the forward passes (D returns
logits and the losses are ``*_with_logits``, which autocast keeps in fp32), channels_last weights
and batches for convolutional nets, fused Adam, cuDNN autotuning, and the whole step (batch drawn
from the face tensor already on the GPU, D on real and fake, D's update, G's update) captured once
in a CUDA graph and replayed. Each piece falls back on its own and ``Plan.describe`` says which and
why; the trainer logs it. On the CPU everything is off ("fast path off: device is cpu") unless
``train.fast: on``, which turns on what runs there (bf16 autocast, channels_last): the tests use it
to check that those pieces keep threshold skips exact and losses close to the fp32 path.

Exactness: a threshold skip is decided on the device (trainer.update), so it runs inside the graph
unchanged. Graph replay repeats the recorded kernels, so nothing the graph does may depend on the
host: the batch indices and z are copied into static buffers before each replay, drawn from the
same generator as the eager path (the same z, step for step). Draws made inside the step (DiffAugment)
come from the training generator, registered with the graph so that each replay draws anew. DRAGAN's penalty draws its
perturbation from the training generator inside the step and needs double backward: it runs
eager. Under DDP the graph stays off (collectives are not captured); the rest stays on.

Correct by construction (each piece a CUDA kernel would otherwise refuse at step 1): the trainer
applies channels_last (``Plan.prepare``) before the optimisers and their state exist, so Adam's
state has its parameter's strides (CUDA's fused Adam requires one layout for params, grads and
state); Adam is ``capturable`` only when a graph is captured (its eager steps are slower); a
capture that fails runs in the thread-local error mode, is synchronised, and leaves fresh
gradients, and the run says why in train.json. ``train.deterministic`` (``Plan.backend``): cuDNN's
deterministic algorithms, no autotuning, a fixed cuBLAS workspace, so a GPU run resumes bit-exact;
the global flags are put back when the run ends.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FastOptions:
    """``train.fast`` / ``amp`` / ``channels_last`` / ``cuda_graph`` (pipeline/train/params.py), as plain
    values so the trainer and the bench need no params file."""

    fast: str = "auto"            # auto (CUDA only) | on (also CPU: autocast, channels_last) | off
    amp: str = "bf16"             # bf16 | off
    channels_last: str = "auto"   # auto (nets with convolutions) | off
    cuda_graph: str = "auto"      # auto | off
    deterministic: bool = False   # cuDNN deterministic, no autotune, cuBLAS workspace: bit-exact GPU resume


@dataclass
class Plan:
    device: torch.device
    amp: torch.dtype | None = None
    channels_last: bool = False
    fused_adam: bool = False
    cudnn_benchmark: bool = False
    graph: bool = False
    deterministic: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def on(self) -> bool:
        return bool(self.amp or self.channels_last or self.fused_adam or self.graph)

    def describe(self) -> str:
        det = ["deterministic algorithms (train.deterministic)"] if self.deterministic else []
        if not self.on:
            return "fast path off: " + "; ".join((self.notes or ["nothing to turn on"]) + det)
        parts = [name for name, on in (("bf16 autocast", self.amp), ("channels_last", self.channels_last),
                                       ("fused Adam", self.fused_adam), ("cuDNN autotune", self.cudnn_benchmark),
                                       ("CUDA graph of the whole step", self.graph)) if on]
        return "fast path on: " + ", ".join(parts) + "".join(f"; {n}" for n in self.notes + det)

    def autocast(self) -> contextlib.AbstractContextManager:
        """Context for forward passes (backward runs outside it, as autocast wants). The weight-cast
        cache is off under graph capture, where cached casts would outlive the capture."""
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp, cache_enabled=not self.graph)

    @contextlib.contextmanager
    def backend(self):
        """The run's global backend flags (cuDNN autotune; deterministic mode), put back afterwards so
        a later run in the same process (the bench's next row) starts from the same settings. The
        cuBLAS workspace setting takes effect only before the process's first cuBLAS call: a
        process that trains more than once sets CUBLAS_WORKSPACE_CONFIG=:4096:8 itself first."""
        cudnn = torch.backends.cudnn
        saved = (cudnn.benchmark, cudnn.deterministic, torch.are_deterministic_algorithms_enabled(),
                 torch.is_deterministic_algorithms_warn_only_enabled(), os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
        try:
            if self.cudnn_benchmark:
                cudnn.benchmark = True
            if self.deterministic:
                cudnn.benchmark, cudnn.deterministic = False, True
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
                torch.use_deterministic_algorithms(True, warn_only=True)  # ops with no deterministic kernel warn, not fail
            yield
        finally:
            cudnn.benchmark, cudnn.deterministic = saved[0], saved[1]
            torch.use_deterministic_algorithms(saved[2], warn_only=saved[3])
            if saved[4] is None:
                os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
            else:
                os.environ["CUBLAS_WORKSPACE_CONFIG"] = saved[4]

    def prepare(self, *nets: torch.nn.Module) -> None:
        """channels_last for nets that convolve (a fully connected net gains nothing from it). Call
        it before the optimisers exist: their state then takes the parameters' layout."""
        if not self.channels_last:
            return
        if not any(isinstance(m, torch.nn.modules.conv._ConvNd) for net in nets for m in net.modules()):
            self.channels_last = False
            self.notes.append("channels_last off: no convolutions")
            return
        for net in nets:
            net.to(memory_format=torch.channels_last)

    def images(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def choose(opts: FastOptions, *, device: torch.device, dragan: bool = False, penalties: bool = False,
           world: int = 1) -> Plan:
    """Which pieces of the fast path this run gets, with the reason for each one left out."""
    plan = Plan(device, deterministic=opts.deterministic)
    if opts.fast == "off":
        plan.notes.append("train.fast is off")
        return plan
    cuda = device.type == "cuda"
    if not cuda and opts.fast != "on":
        plan.notes.append(f"device is {device.type}")
        return plan
    if opts.amp == "off":
        plan.notes.append("autocast off: train.amp is off")
    elif cuda and not torch.cuda.is_bf16_supported():
        plan.notes.append("autocast off: this GPU has no bf16")
    else:
        plan.amp = torch.bfloat16
    if opts.channels_last == "off":
        plan.notes.append("channels_last off: train.channels_last is off")
    else:
        plan.channels_last = True
    if not cuda:
        plan.notes.append(f"fused Adam and CUDA graph off: device is {device.type}")
        return plan
    plan.fused_adam = True
    if opts.deterministic:
        plan.notes.append("cuDNN autotune off: train.deterministic")
    else:
        plan.cudnn_benchmark = True
    if opts.cuda_graph == "off":
        plan.notes.append("CUDA graph off: train.cuda_graph is off")
    elif world > 1:
        plan.notes.append("CUDA graph off: DDP (its collectives are not captured); steps run eager")
    elif dragan:
        plan.notes.append("CUDA graph off: the DRAGAN penalty draws noise from the training generator inside the "
                          "step and needs double backward; steps run eager")
    elif penalties:
        plan.notes.append("CUDA graph off: the R1/R2 penalties need double backward, not yet checked under "
                          "capture on a GPU; steps run eager")
    else:
        plan.graph = True
    return plan


def _why(e: BaseException) -> str:
    """The first line of an error, and of the one it happened during: a step that fails while being
    captured makes the capture's end fail too, and the first error is the reason."""
    def line(x: BaseException) -> str:
        return f"{type(x).__name__}: {str(x).splitlines()[0] if str(x) else ''}"

    first = e.__context__
    return line(e) if first is None else f"{line(first)} (then, ending the capture: {line(e)})"


class GraphedStep:
    """``fn(*inputs) -> stats`` run as one CUDA graph: the first ``warmup`` calls are ordinary
    training steps on a side stream (cuDNN/cuBLAS pick their kernels, autograd and the optimisers
    settle), the next one captures ``fn`` on static copies of the inputs, and every call after that
    copies its inputs into them and replays. Nothing is run twice and nothing is skipped: each call
    is exactly one training step. A capture that fails (an op that syncs with the host, say) logs
    why and leaves every later call eager."""

    def __init__(self, fn: Callable[..., torch.Tensor], before_capture: Callable[[], None], warmup: int = 3,
                 generators: tuple[torch.Generator, ...] = ()):
        self.fn, self.before_capture, self.warmup = fn, before_capture, warmup
        self.generators = generators  # drawn from inside the step: registered with the graph (see capture)
        self.static: list[torch.Tensor | None] | None = None
        self.graph: torch.cuda.CUDAGraph | None = None
        self.out: torch.Tensor | None = None
        self.eager_calls = 0
        self.failed: str | None = None

    def _load(self, inputs) -> list[torch.Tensor | None]:
        if self.static is None:
            self.static = [None if x is None else x.clone() for x in inputs]  # fixed addresses from here on
        else:
            for s, x in zip(self.static, inputs):
                if s is not None:
                    s.copy_(x)
        return self.static

    def __call__(self, *inputs: torch.Tensor | None) -> torch.Tensor:
        if self.failed is not None:
            return self.fn(*inputs)
        static = self._load(inputs)
        if self.graph is not None:
            self.graph.replay()
            return self.out
        if self.eager_calls < self.warmup:
            main, side = torch.cuda.current_stream(), torch.cuda.Stream()
            side.wait_stream(main)
            with torch.cuda.stream(side):
                out = self.fn(*static)
            main.wait_stream(side)
            self.eager_calls += 1
            return out
        graph = torch.cuda.CUDAGraph()
        try:
            self.before_capture()
            # A user generator drawn from inside a capture must be registered first, or the capture
            # fails ("generator not in capture mode"); registered, every replay advances its offset by
            # the graph's total, so replays draw new numbers and eager steps after them continue alike.
            for gen in self.generators:
                graph.register_generator_state(gen)
            # thread_local: an error in this thread does not leave the capture poisoned for later launches
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                out = self.fn(*static)
        except Exception as e:  # noqa: BLE001  any failure to capture means: train on without a graph
            self.failed = _why(e)
            log.warning("CUDA graph capture failed (%s); the steps run eager from here on", self.failed)
            with contextlib.suppress(Exception):  # an error the capture left behind surfaces here, once
                torch.cuda.synchronize()
            self.graph = self.out = None
            self.before_capture()  # fresh gradients: none of the failed capture's half-recorded ones survive
            return self.fn(*inputs)
        self.graph, self.out = graph, out
        log.info("CUDA graph captured after %d eager steps", self.eager_calls)
        graph.replay()
        return out

    @property
    def status(self) -> str:
        """What train.json says of the graph: captured, failed (why), or not yet (fewer steps than the warm-up)."""
        if self.failed is not None:
            return f"capture failed, eager instead: {self.failed}"
        return "captured" if self.graph is not None else f"not captured: the run ended within the {self.warmup} warm-up steps"
