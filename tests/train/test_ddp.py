"""DDP through the real command line: ``torchrun --nproc_per_node=2 -m pipeline train dcgan`` on the
CPU (gloo). The ranks train on different shards with different noise, so only the averaged
gradients keep them equal; every file write, rename and mkdir of each rank under the runs folder
is recorded by a Python audit hook (a sitecustomize on PYTHONPATH), so "only rank 0 writes" is
observed, not assumed."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.params import load_params

from conftest import ROOT, tiny_overrides

AUDIT = '''
import atexit, os, sys

RUNS = os.environ["BOORUGAN_AUDIT_RUNS"]
seen = []


def hook(event, args):
    path = None
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        mode, flags = args[1], args[2] or 0
        if (mode and any(c in mode for c in "wax+")) or flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            path = args[0]
    elif event == "os.rename":  # also os.replace: the destination is what gets written
        path = args[1]
    elif event in ("os.mkdir", "os.remove", "os.unlink"):
        path = args[0]
    if path is not None and os.path.abspath(os.fsdecode(path)).startswith(RUNS):
        seen.append(f"{event} {os.fsdecode(path)}")


def report():
    with open(os.path.join(os.environ["BOORUGAN_AUDIT_OUT"], "rank%s.txt" % os.environ["RANK"]), "w") as f:
        f.write("\\n".join(["mlflow imported: %s" % ("mlflow" in sys.modules)] + seen))


if "RANK" in os.environ:  # torchrun's workers, not its launcher
    sys.addaudithook(hook)
    atexit.register(report)
'''


@pytest.fixture(scope="module")
def faces_root(tmp_path_factory):
    from pipeline.crop.stage import run_crop
    from pipeline.scrape.stage import run_scrape

    root = tmp_path_factory.mktemp("ddp")
    params = load_params(ROOT / "params.yaml", tiny_overrides(root))
    run_scrape(params)
    run_crop(params)
    (root / "audit_py").mkdir()
    (root / "audit_py" / "sitecustomize.py").write_text(AUDIT)
    return root


def torchrun(root: Path, runs: str, *overrides: str, model: str = "dcgan") -> tuple[dict[str, str], dict[str, list[str]], str]:
    """Run 2 ranks; returns ({rank: weights digest}, {rank: audit lines}, output)."""
    audit = root / f"audit_{runs}"
    shutil.rmtree(audit, ignore_errors=True)
    audit.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "audit_py"), str(ROOT)]),
           "BOORUGAN_AUDIT_RUNS": str(root / runs), "BOORUGAN_AUDIT_OUT": str(audit), "OMP_NUM_THREADS": "1"}
    sets = [*tiny_overrides(root), f"paths.runs={root / runs}", *overrides]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "pipeline", "train", model, *[a for s in sets for a in ("-S", s)]]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    digests = dict(re.findall(r"rank (\d) of 2, weights sha256 ([0-9a-f]{64})", out))
    audits = {k: (audit / f"rank{k}.txt").read_text().splitlines() for k in ("0", "1")}
    return digests, audits, out


@pytest.fixture(scope="module")
def full_run(faces_root):
    return torchrun(faces_root, "runs_full", "tracking.enabled=true")


def test_two_ranks_hold_identical_weights(full_run):
    digests, _, out = full_run
    assert "DDP: rank 1 of 2 (gloo)" in out
    assert set(digests) == {"0", "1"} and digests["0"] == digests["1"], out[-2000:]


def test_only_rank_0_writes(full_run, faces_root):
    _, audits, _ = full_run
    runs = faces_root / "runs_full" / "dcgan"
    assert audits["1"] == ["mlflow imported: False"]  # rank 1: no file under runs/, no tracking
    assert audits["0"][0] == "mlflow imported: True"
    written = " ".join(audits["0"])
    for name in ("checkpoint.pt", "losses.csv", "train.json", "samples/epoch_001.png"):  # a new run's first files: in .next/
        assert str(runs / name) in written or str(runs / ".next" / name) in written, (name, audits["0"])
    rows = (runs / "losses.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["step", "1", "2", "3", "4"]


def test_resume_under_ddp_is_exact(full_run, faces_root):
    """2 steps, then resumed to 4, ends on the weights of the straight 4-step run."""
    first, _, _ = torchrun(faces_root, "runs_split", "train.models.dcgan.steps=2", "tracking.enabled=false")
    assert first["0"] != full_run[0]["0"]
    digests, audits, out = torchrun(faces_root, "runs_split", "tracking.enabled=false")
    assert "resuming" in out and digests == full_run[0]
    assert audits["1"] == ["mlflow imported: False"]


MLP = ["tracking.enabled=false", "train.models.gan_mlp.batch_size=16", "train.models.gan_mlp.log_every=2",
       "train.models.gan_mlp.net.hidden=16", "train.models.gan_mlp.net.nz=8"]


def test_resume_under_ddp_is_exact_with_dropout(faces_root):
    """gan_mlp's D has dropout, drawn from each rank's global generator: seeded per rank (the ranks'
    masks differ) and saved per rank in the checkpoint, so the resumed run draws the masks the
    straight run drew on every rank."""
    full, _, _ = torchrun(faces_root, "runs_mlp_full", *MLP, "train.models.gan_mlp.steps=4", model="gan_mlp")
    torchrun(faces_root, "runs_mlp_split", *MLP, "train.models.gan_mlp.steps=2", model="gan_mlp")
    split, _, out = torchrun(faces_root, "runs_mlp_split", *MLP, "train.models.gan_mlp.steps=4", model="gan_mlp")
    assert "resuming" in out and full["0"] == full["1"] and split == full, out[-2000:]
