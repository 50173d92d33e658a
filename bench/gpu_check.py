"""The device check: every question about the CUDA path that a CPU cannot answer, in one short run.

Needs torch, numpy, pillow, pyyaml and pydantic only (what the GPU machine has): MLflow, Prefect,
DVC and pandas are blocked from importing, so a CPU run proves the GPU run will not reach them.
Writes ``gpu_check.json`` and ``gpu_check.md`` under ``--out``; exits 1 when a check fails.

1. ``families``: every model of ``train.enabled`` (one of each family and the threshold variant
   dcgan_v3) with the fast path and in fp32 eager: whether the CUDA graph is captured (or why
   not), seconds per step, peak GPU memory, and the speed-up over eager fp32 (target >= 3x).
2. ``graph_vs_eager``: under ``train.deterministic``, the graph-captured run ends on the eager
   run's weights, bit for bit (dcgan and dcgan_v3, whose threshold is decided inside the graph).
3. ``threshold_skip``: a D threshold that always skips leaves D's parameters and Adam state as
   they were initialised (inside the graph on CUDA).
   Also ``dcgan_augment`` (DiffAugment, drawn from the training generator inside the graph).
3b. ``graph_rng``: draws from the training generator inside a captured graph: two replays draw
   different augmentations, the first replay draws what an eager call from the same state draws,
   and the generator's offset after replays equals the eager one's.
4. ``resume``: 5 steps, then a fresh process resuming to 10 (mid-epoch), ends on the weights of
   10 uninterrupted steps in a third process (deterministic mode).
5. ``speed``: DCGAN at batch 128 and 1024: the pytorch/examples reference as it ships (PNG files,
   DataLoader, cudnn.benchmark), the same fp32 nets on faces already on the GPU, and the trainer's
   fast path; images/s, ratios, MFU against the peak of each run's data type (targets: >= 12x the
   reference at batch 128, >= 60,000 images/s at batch 1024).

    python bench/gpu_check.py --out gpu_check                         # on a GPU: under 8 minutes on an H100
    python bench/gpu_check.py --device cpu --quick --out /tmp/check  # the script itself, on a CPU: under 2 minutes

``--quick`` shrinks everything (tiny nets at 32 px, a few steps, 64 faces) so the script's every path
runs in a minute; on a CPU the checks that need CUDA are reported as skipped, with the reason.
"""

from __future__ import annotations

import argparse
import importlib.abc
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("mlflow", "prefect", "dvc", "pandas")  # absent on the GPU machine


class _Blocked(importlib.abc.MetaPathFinder):
    """Refuse to import the modules the GPU machine does not have, so a CPU run fails where the GPU run
    would. A mere probe (``importlib.util.find_spec``, as torch._dynamo makes for optional libraries)
    is let through: it imports nothing (the report still lists any forbidden module that got imported)."""

    def find_spec(self, name, path=None, target=None):
        if sys._getframe(2).f_code.co_name == "find_spec":  # importlib.util.find_spec -> _find_spec -> here
            return None
        if name.split(".")[0] in FORBIDDEN:
            raise ModuleNotFoundError(f"bench/gpu_check.py must not import {name} (the GPU machine has no "
                                      f"{name.split('.')[0]}); something on its path does", name=name)
        return None


sys.meta_path.insert(0, _Blocked())
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before torch's first cuBLAS call: deterministic checks
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import numpy as np  # noqa: E402
import torch  # noqa: E402
import train_speed as ts  # noqa: E402

from pipeline.core.datasets import Labels, sketches_of  # noqa: E402
from pipeline.params import load_params  # noqa: E402
from pipeline.train.augment import OPS, augment  # noqa: E402
from pipeline.train.checkpoint import load_state  # noqa: E402
from pipeline.train.families import FAMILIES  # noqa: E402
from pipeline.train.fastpath import FastOptions  # noqa: E402
from pipeline.train.loop import make_gan, train  # noqa: E402

TINY = {"dcgan": {"nz": 8, "ngf": 8, "ndf": 8}, "dcgan_tags": {"nz": 8, "ngf": 8, "ndf": 8},
        "acgan": {"nz": 8, "ngf": 8, "ndf": 8}, "gan_mlp": {"nz": 8, "hidden": 16}, "cgan": {"nz": 8, "hidden": 16},
        "sketch2image": {"ngf": 8, "ndf": 8, "blocks": 2},
        "r3gan": {"nz": 8, "width": 16, "blocks": 1, "expansion": 2, "group_width": 8},
        "r3gan_tags": {"nz": 8, "width": 16, "blocks": 1, "expansion": 2, "group_width": 8}}


class Setup:
    """Sizes of this run (full on a GPU, --quick anywhere) and the data every check shares."""

    def __init__(self, args):
        self.quick, self.dev = args.quick, ts.resolve_device(args.device)
        self.cuda = self.dev.type == "cuda"
        self.params = load_params(args.params)
        self.size = 32 if args.quick else 64
        self.steps, self.warmup = (3, 1) if args.quick else (60, 10)
        self.data = ts.toy_data(64 if args.quick else args.faces, self.size)

    def sketches(self):
        if "sketches" not in self.data:
            self.data["sketches"] = sketches_of(self.data["images"])
        return self.data["sketches"]

    def spec(self, name: str, **update):
        spec = self.params.model(name)
        if self.quick:
            update = {"net": TINY[spec.arch], "batch_size": 16, **update}
        return spec.model_copy(update=update)

    def run(self, spec, out: Path, fast: FastOptions, **kw) -> dict:
        labels = Labels(self.data["codes"], self.data["vocab"]) if spec.conditioning else None
        sketches = self.sketches() if FAMILIES[spec.family].sketches else None
        return train(self.data["images"], spec, out, labels=labels, sketches=sketches, device=str(self.dev), fast=fast, **kw)


def skipped(reason: str) -> dict:
    return {"status": "skipped", "reason": reason}


def no_cuda(setup: Setup) -> dict | None:
    return None if setup.cuda else skipped(f"needs CUDA graphs; device is {setup.dev.type}")


# ---------------------------------------------------------------------------------------------
# the checks


def check_environment(setup: Setup) -> dict:
    info = {"torch": torch.__version__, "numpy": np.__version__, "python": sys.version.split()[0],
            "device": str(setup.dev), "cuda_available": torch.cuda.is_available()}
    if setup.cuda:
        props = torch.cuda.get_device_properties(setup.dev)
        info.update(gpu=torch.cuda.get_device_name(setup.dev), gpu_model=ts.gpu_model(torch.cuda.get_device_name(setup.dev)),
                    memory_gib=round(props.total_memory / 2 ** 30, 1), capability=f"{props.major}.{props.minor}",
                    bf16=torch.cuda.is_bf16_supported(), cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    return {"status": "pass", **info}


def check_families(setup: Setup) -> dict:
    """Each enabled model: fast path vs fp32 eager at its batch size; graph capture, s/step, peak memory."""
    fast = FastOptions(fast="auto" if setup.cuda else "on")
    rows, failed = [], []
    for name in setup.params.train.enabled:
        spec = setup.spec(name)
        if FAMILIES[spec.family].sketches:
            setup.sketches()
        row = {"model": name, "family": spec.family, "batch": spec.batch_size}
        for label, opts in (("eager_fp32", FastOptions(fast="off")), ("fast", fast)):
            if setup.cuda:
                torch.cuda.reset_peak_memory_stats(setup.dev)
            ips, summary = ts.project(spec, setup.data, spec.batch_size, setup.steps, setup.warmup, str(setup.dev), opts)
            row[f"{label}_ips"] = round(ips, 1)
            row[f"{label}_s_per_step"] = round(spec.batch_size / ips, 5)
            row[f"{label}_peak_mib"] = (round(torch.cuda.max_memory_allocated(setup.dev) / 2 ** 20, 1)
                                        if setup.cuda else None)
            if label == "fast":
                row["cuda_graph"], row["fast_path"] = summary["cuda_graph"], summary["fast_path"]
        row["ratio"] = round(row["fast_ips"] / row["eager_fp32_ips"], 2)
        print(f"  {name}: {row['cuda_graph']}, {row['fast_s_per_step']:.4g} s/step fast, {row['ratio']:.2f}x eager fp32",
              flush=True)
        row["target_3x"] = row["ratio"] >= 3 if setup.cuda else None
        if setup.cuda and row["cuda_graph"].startswith("capture failed"):
            failed.append(f"{name}: {row['cuda_graph']}")
        rows.append(row)
    out = {"status": "fail" if failed else "pass", "rows": rows}
    if failed:
        out["reason"] = "; ".join(failed)
    if not setup.cuda:
        out["note"] = "on the CPU the fast path is autocast + channels_last only; no graph, no memory counter"
    return out


def _weights(path: Path) -> dict[str, torch.Tensor]:
    state = load_state(path)
    return {f"{net}.{k}": v for net in ("G", "D") for k, v in state[net].items()}


def _max_diff(a: dict, b: dict) -> float:
    return max(float((a[k].float() - b[k].float()).abs().max()) if a[k].numel() else 0.0 for k in a)


def check_graph_vs_eager(setup: Setup, tmp: Path) -> dict:
    if (why := no_cuda(setup)) is not None:
        return why
    results = {}
    for name, base, extra in (("dcgan", "dcgan", {}), ("dcgan_v3", "dcgan_v3", {}),
                              ("dcgan_augment", "dcgan", {"augment": list(OPS)})):
        spec = setup.spec(base, steps=setup.steps + setup.warmup, checkpoint_every=None, **extra)
        graph = setup.run(spec, tmp / f"graph_{name}", FastOptions(deterministic=True), resume="never")
        eager = setup.run(spec, tmp / f"eager_{name}", FastOptions(cuda_graph="off", deterministic=True), resume="never")
        a, b = _weights(tmp / f"graph_{name}" / "checkpoint.pt"), _weights(tmp / f"eager_{name}" / "checkpoint.pt")
        results[name] = {"graph": graph["cuda_graph"], "equal": graph["weights_sha256"] == eager["weights_sha256"],
                         "max_abs_diff": _max_diff(a, b)}
    ok = all(r["equal"] and r["graph"] == "captured" for r in results.values())
    return {"status": "pass" if ok else "fail", "models": results}


def check_graph_rng(setup: Setup) -> dict:
    """DiffAugment's draws inside a CUDA graph, with the generator registered as the trainer does it."""
    if (why := no_cuda(setup)) is not None:
        return why
    dev = setup.dev
    x = torch.rand(64, 3, setup.size, setup.size, device=dev) * 2 - 1
    gen = torch.Generator(device=dev).manual_seed(123)
    ref = torch.Generator(device=dev).manual_seed(123)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up, as GraphedStep does: both generators draw once
        augment(x, OPS, gen)
        augment(x, OPS, ref)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    graph.register_generator_state(gen)
    with torch.cuda.graph(graph):
        out = augment(x, OPS, gen)
    graph.replay()
    first = out.clone()
    graph.replay()
    second = out.clone()
    eager1, eager2 = augment(x, OPS, ref), augment(x, OPS, ref)
    offsets_equal = bool(torch.equal(gen.get_state(), ref.get_state()))
    result = {"replays_differ": not torch.equal(first, second), "first_equals_eager": bool(torch.equal(first, eager1)),
              "second_equals_eager": bool(torch.equal(second, eager2)), "generator_state_equal": offsets_equal}
    ok = all(result[k] for k in ("replays_differ", "first_equals_eager", "second_equals_eager", "generator_state_equal"))
    return {"status": "pass" if ok else "fail", **result}


def check_threshold_skip(setup: Setup, tmp: Path) -> dict:
    """d_threshold so high D never steps: D's parameters and Adam state end as initialised."""
    spec = setup.spec("dcgan", d_threshold=1e9, g_threshold=None, steps=setup.steps + setup.warmup)
    summary = setup.run(spec, tmp / "skip", FastOptions(fast="auto" if setup.cuda else "on"), resume="never", seed=0)
    torch.manual_seed(0)  # the trainer seeds so before building the nets: the same initial D
    init = make_gan(spec, setup.size, 3, torch.device("cpu"), seed=0)
    state = load_state(tmp / "skip" / "checkpoint.pt")
    params = dict(init.D.named_parameters())
    moved = [k for k, p in params.items() if not torch.equal(state["D"][k].float(), p.detach().float())]
    adam = [t for s in state["opt_d"]["state"].values() for t in s.values()]
    adam_moved = sum(int(torch.count_nonzero(t)) for t in adam)  # exp_avg, exp_avg_sq and step all stay 0
    ok = not moved and adam_moved == 0
    return {"status": "pass" if ok else "fail", "where": "inside the CUDA graph" if summary["cuda_graph"] == "captured"
            else f"eager ({summary['cuda_graph']})", "d_params_moved": moved, "nonzero_adam_state_values": adam_moved}


CHILD = """
import json, sys
sys.argv = ["gpu_check.py", *json.loads(sys.argv[1])]
sys.path.insert(0, {bench!r})
import gpu_check
print("SUMMARY " + json.dumps(gpu_check.child_train()))
"""


def child_train() -> dict:
    """In a fresh process: train dcgan to --child-steps in --child-out (resuming what is there)."""
    ap = _parser()
    ap.add_argument("--child-out")
    ap.add_argument("--child-steps", type=int)
    args = ap.parse_args()
    setup = Setup(args)
    spec = setup.spec("dcgan", steps=args.child_steps)
    return setup.run(spec, Path(args.child_out), FastOptions(fast="auto" if setup.cuda else "on", deterministic=True))


def check_resume(setup: Setup, tmp: Path, args) -> dict:
    """5 steps + a fresh process resuming to 10 == 10 steps straight, each in its own process."""
    base = ["--device", str(setup.dev), "--params", args.params, "--faces", "512"] + (["--quick"] if setup.quick else [])
    summaries = {}
    for label, out, steps in (("straight", "straight", 10), ("first", "split", 5), ("resumed", "split", 10)):
        argv = base + ["--child-out", str(tmp / out), "--child-steps", str(steps), "--out", str(tmp)]
        r = subprocess.run([sys.executable, "-c", CHILD.format(bench=str(ROOT / "bench")), json.dumps(argv)],
                           capture_output=True, text=True, cwd=ROOT, timeout=600)
        line = next((ln for ln in r.stdout.splitlines() if ln.startswith("SUMMARY ")), None)
        if r.returncode != 0 or line is None:
            return {"status": "error", "reason": f"{label} run failed: {(r.stderr or r.stdout)[-1500:]}"}
        summaries[label] = json.loads(line[len("SUMMARY "):])
    ok = (summaries["resumed"]["resumed_from"] == 5
          and summaries["resumed"]["weights_sha256"] == summaries["straight"]["weights_sha256"])
    return {"status": "pass" if ok else "fail", "resumed_from": summaries["resumed"]["resumed_from"],
            "straight_sha256": summaries["straight"]["weights_sha256"], "resumed_sha256": summaries["resumed"]["weights_sha256"],
            "cuda_graph": summaries["resumed"]["cuda_graph"], "fast_path": summaries["resumed"]["fast_path"]}


def check_speed(setup: Setup, tmp: Path, args) -> dict:
    """The DCGAN table of bench/train_speed.py, at 64 px (the reference's geometry) whatever --quick says."""
    data = setup.data if setup.size == 64 else ts.toy_data(64, 64)
    dcgan = setup.params.model("dcgan").model_copy(update=dict(net={"nz": 100, "ngf": 64, "ndf": 64}))
    flops = ts.flops_per_image(dcgan, 64)
    peaks, note = ts.peak_tflops(setup.dev, args.peak_tflops)
    batches = [16] if setup.quick else [128, 1024]
    steps, warmup = (2, 1) if setup.quick else (100, 10)
    fast = FastOptions(fast="auto" if setup.cuda else "on")
    dataset, how = ts.png_dataset(data["images"], tmp / "png")
    rows = [ts.dcgan_row(dataset, data, dcgan, b, steps, warmup, setup.dev, args.workers, fast, flops, peaks) for b in batches]
    targets = {}
    if setup.cuda:
        by = {r["batch"]: r for r in rows}
        targets = {"12x_reference_at_128": by[128]["trainer_vs_reference"] >= 12,
                   "60k_images_per_s_at_1024": by[1024]["trainer_ips"] >= 60_000}
    return {"status": "pass", "gflop_per_image": round(flops / 1e9, 3), "peaks": note, "loader": how, "rows": rows,
            "targets": targets, "steps": steps, "warmup": warmup, "faces": len(data["images"])}


# ---------------------------------------------------------------------------------------------
# the report


def markdown(report: dict) -> str:
    env = report["checks"]["environment"]
    lines = [f"# Device check, {report['started']}", "",
             f"Device: {env.get('gpu', env['device'])}; torch {env['torch']}; mode: {'quick' if report['quick'] else 'full'}; "
             f"{report['seconds']:.0f} s in all.", "", "| check | status | detail |", "|---|---|---|"]
    for name, c in report["checks"].items():
        detail = c.get("reason") or ", ".join(f"{k}={v}" for k, v in c.items()
                                              if k not in ("status", "traceback") and not isinstance(v, (list, dict)))
        lines.append(f"| {name} | {c['status']} | {detail} |")
    fam = report["checks"].get("families", {})
    if fam.get("rows"):
        lines += ["", "| model | family | batch | CUDA graph | fast s/step | eager fp32 s/step | ratio | fast peak MiB | "
                      "fast path |", "|---|---|---|---|---|---|---|---|---|"]
        for r in fam["rows"]:
            lines.append(f"| {r['model']} | {r['family']} | {r['batch']} | {r['cuda_graph']} | {r['fast_s_per_step']:.4g} | "
                         f"{r['eager_fp32_s_per_step']:.4g} | {r['ratio']:.2f}x | {r['fast_peak_mib'] or 'n/a'} | "
                         f"{r['fast_path']} |")
    graph = report["checks"].get("graph_vs_eager", {})
    for name, r in graph.get("models", {}).items():
        lines.append(f"\ngraph vs eager, {name}: {r['graph']}; equal weights: {r['equal']} (max |diff| {r['max_abs_diff']:.3g})")
    speed = report["checks"].get("speed", {})
    if speed.get("rows"):
        lines += ["", f"DCGAN speed ({speed['gflop_per_image']} GFLOP per image per step; MFU against {speed['peaks']}; "
                      f"{speed['faces']} faces, {speed['steps']} timed steps after {speed['warmup']}):", "", *ts.DCGAN_TABLE]
        lines += [ts.dcgan_line(r) for r in speed["rows"]]
        if speed["targets"]:
            lines += ["", "Targets: " + ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in speed["targets"].items())]
    return "\n".join(lines) + "\n"


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: check the script itself (a CPU: under 2 minutes)")
    ap.add_argument("--out", required=True, help="folder for gpu_check.json and gpu_check.md")
    ap.add_argument("--faces", type=int, default=10_000, help="toy faces (PNG files for the reference), full mode")
    ap.add_argument("--workers", type=int, default=2, help="the reference's DataLoader workers")
    ap.add_argument("--peak-tflops", type=float, help="the GPU's dense peak, if not in bench/train_speed.py's table")
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--only", help="comma-separated checks to run (default: all)")
    ap.add_argument("--budget", type=float, default=450, help="seconds; a check not begun by then is skipped, saying so")
    return ap


def main() -> int:
    args = _parser().parse_args()
    started, t0 = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), time.perf_counter()
    setup = Setup(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    checks: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        todo = {"environment": lambda: check_environment(setup), "families": lambda: check_families(setup),
                "graph_vs_eager": lambda: check_graph_vs_eager(setup, tmp / "graph"),
                "graph_rng": lambda: check_graph_rng(setup),
                "threshold_skip": lambda: check_threshold_skip(setup, tmp / "skip"),
                "resume": lambda: check_resume(setup, tmp / "resume", args),
                "speed": lambda: check_speed(setup, tmp / "speed", args)}
        only = set(args.only.split(",")) if args.only else set(todo)
        for name, fn in todo.items():
            if name not in only and name != "environment":
                continue
            c0 = time.perf_counter()
            if c0 - t0 > args.budget:
                checks[name] = {**skipped(f"the time budget ({args.budget:g} s, --budget) was spent before it began"),
                                "seconds": 0.0}
                print(f"{name}: skipped (time budget)", flush=True)
                continue
            try:
                checks[name] = fn()
            except Exception as e:  # noqa: BLE001  one check's crash is that check's result; the rest still run
                checks[name] = {"status": "error", "reason": f"{type(e).__name__}: {str(e)[:500]}",
                                "traceback": traceback.format_exc()[-3000:]}
            checks[name]["seconds"] = round(time.perf_counter() - c0, 1)
            print(f"{name}: {checks[name]['status']} ({checks[name]['seconds']} s)"
                  f"{' - ' + checks[name]['reason'] if checks[name].get('reason') else ''}", flush=True)
    leaked = sorted(m for m in FORBIDDEN if m in sys.modules)
    report = {"started": started, "quick": args.quick, "seconds": round(time.perf_counter() - t0, 1), "checks": checks,
              "forbidden_modules_imported": leaked}
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "gpu_check.md").write_text(markdown(report))
    print(f"wrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'} ({report['seconds']:.0f} s)")
    return 1 if leaked or any(c["status"] in ("fail", "error") for c in checks.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
