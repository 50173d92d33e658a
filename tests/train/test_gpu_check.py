"""bench/gpu_check.py, the one prepared device check, run end to end on the CPU (its CUDA checks
skipped, with the reason), and the peak table the speed rows' MFU divides by."""

import json
import subprocess
import sys
import time

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import train_speed  # noqa: E402

GPUS = [("NVIDIA H100 80GB HBM3", "H100"), ("NVIDIA H100 PCIe", "H100 PCIe"), ("NVIDIA H100 NVL", "H100 NVL"),
        ("NVIDIA H200", "H200"), ("NVIDIA A100-SXM4-80GB", "A100"), ("NVIDIA A10", "A10"), ("NVIDIA L40S", "L40S"),
        ("NVIDIA L40", "L40"), ("NVIDIA L4", "L4"), ("NVIDIA GH200 480GB", None)]


@pytest.mark.parametrize("name, key", GPUS)
def test_each_gpu_name_finds_its_own_peak(name, key):
    """A substring match gave an L40 the L4's peak and an H100 NVL the SXM's."""
    assert train_speed.gpu_model(name) == key


def test_fp32_rows_are_held_to_the_tf32_peak_and_the_fast_path_to_bf16():
    peaks = {"bf16": 989.0, "tf32": 494.5}
    assert train_speed.mfu(10_000, 2.48e9, peaks, "tf32") == pytest.approx(100 * 10_000 * 2.48e9 / 494.5e12, abs=0.01)
    assert train_speed.mfu(10_000, 2.48e9, peaks, "bf16") == pytest.approx(100 * 10_000 * 2.48e9 / 989e12, abs=0.01)
    assert train_speed.mfu(10_000, 2.48e9, {}, "bf16") is None


def test_it_refuses_what_the_gpu_machine_lacks():
    code = "import sys; sys.argv = ['x']; sys.path.insert(0, 'bench'); import gpu_check; import pandas"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "must not import pandas (the GPU machine has no pandas)" in r.stderr


@pytest.mark.slow
def test_the_quick_run_works_end_to_end_on_the_cpu(tmp_path):
    started = time.perf_counter()
    r = subprocess.run([sys.executable, "bench/gpu_check.py", "--device", "cpu", "--quick", "--out", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - started
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    checks = report["checks"]
    assert set(checks) == {"environment", "families", "graph_vs_eager", "graph_rng", "threshold_skip", "resume",
                           "speed"}
    for cuda_only in ("graph_vs_eager", "graph_rng"):
        assert checks[cuda_only] == {"status": "skipped", "reason": "needs CUDA graphs; device is cpu",
                                     "seconds": checks[cuda_only]["seconds"]}
    assert {c["status"] for n, c in checks.items() if n not in ("graph_vs_eager", "graph_rng")} == {"pass"}
    assert checks["resume"]["resumed_from"] == 5 and checks["resume"]["straight_sha256"] == checks["resume"]["resumed_sha256"]
    assert checks["threshold_skip"]["d_params_moved"] == [] and checks["threshold_skip"]["nonzero_adam_state_values"] == 0
    assert [r["model"] for r in checks["families"]["rows"]] == ["dcgan", "dcgan_v3", "dcgan_tags", "acgan", "cgan", "gan_mlp",
                                                                 "sketch2image", "r3gan", "r3gan_tags"]
    assert report["forbidden_modules_imported"] == []
    md = (tmp_path / "gpu_check.md").read_text()
    assert "| graph_vs_eager | skipped | needs CUDA graphs; device is cpu |" in md and "| sketch2image | sketch |" in md
    assert seconds < 240, seconds  # the issue asks for under 2 minutes; the shared 2-core CPU runs it in about 65 s
