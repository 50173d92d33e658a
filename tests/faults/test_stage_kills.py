"""A kill -9 of each downstream stage (tag, labels, evaluate, report) while it rewrites its outputs
after a change of its params: every output file is then the previous one or the new one, never a
part of either, and the next start ends where an uninterrupted run ends.

The world: 48 toy faces of 32 px, tiny i2v weights made here (tests/fakes/i2v_tiny.py), a 4-step
tiny dcgan, evaluated and reported, all in-process (set-up is not what is tested). The fault is a
real ``python -m pipeline <stage>`` killed with SIGKILL at a seeded share (40-95%) of the time an
uninterrupted run of the same command took (most of which is starting up: the later shares land in
the stage's work and writes).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from faults import harness

from conftest import ROOT, tiny_overrides
from fakes.i2v_tiny import tag_names, write_weights

# stage -> (its outputs under the world root, the -S change that makes it write new ones)
STAGES = {
    "tag": (["data/tags.parquet"], "tag.threshold=0.6"),
    "labels": (["data/labels.parquet", "data/labels_vocab.json", "data/label_conflicts.csv"], "labels.threshold=0.6"),
    "evaluate": (["metrics"], "evaluate.num_samples=48"),
    "report": (["reports"], "report.title=after"),
}


def _overrides(root: Path, weights: Path, *extra: str) -> list[str]:
    return [*tiny_overrides(root), "tag.enabled=true", f"tag.weights_dir={weights}", "tag.device=cpu",
            "tag.batch_size=8", "tracking.enabled=false", "train.num_threads=1", "train.enabled=[dcgan]",
            *extra]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, Path]:
    from pipeline.evaluate.stage import run_evaluate
    from pipeline.params import VocabularyParams, load_params
    from pipeline.report.stage import run_report
    from pipeline.train.stage import run_train

    from conftest import run_data_stages

    base = tmp_path_factory.mktemp("stage-kills")
    weights = write_weights(base / "i2v", tag_names(VocabularyParams().tags()), seed=3)
    root = base / "world"
    params = load_params(ROOT / "params.yaml", _overrides(root, weights))
    run_data_stages(params)
    run_train(params, "dcgan")
    run_evaluate(params, "dcgan")
    run_report(params)
    return root, weights


def _outputs(root: Path, outs: list[str]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for o in outs:
        p = root / o
        if p.is_file():
            files[o] = p.read_bytes()
        elif p.is_dir():
            files.update({f"{o}/{k}": v for k, v in harness.tree(p).items()})
    return files


def _copy(src: Path, dst: Path) -> Path:
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, symlinks=True)
    return dst


def _stable(files: dict[str, bytes]) -> dict[str, bytes]:
    """Outputs without what differs between two runs of the same inputs: a table's encoding (a rerun
    that reuses rows writes the same values with other Parquet bytes: compared as CSV)."""
    import io

    import pandas as pd

    def canon(name: str, data: bytes) -> bytes:
        if name.endswith(".parquet"):
            return pd.read_parquet(io.BytesIO(data)).to_csv(index=False).encode()
        return data

    return {k: canon(k, v) for k, v in files.items()}


@pytest.mark.parametrize("stage", list(STAGES))
def test_a_stage_killed_while_it_rewrites_leaves_each_output_old_or_new(stage, world, tmp_path):
    root, weights = world
    outs, change = STAGES[stage]
    args = [stage, "dcgan"] if stage == "evaluate" else [stage]
    # the uninterrupted new outputs, on a copy, and how long the command takes
    ref = _copy(root, tmp_path / "ref")
    t0 = time.monotonic()
    harness.run(harness.cli(*args, params=ROOT / "params.yaml", overrides=_overrides(ref, weights, change)))
    took = time.monotonic() - t0
    new = _stable(_outputs(ref, outs))
    # the kill, on another copy whose outputs are the previous ones, at a seeded point of that time
    work = _copy(root, tmp_path / "work")
    old = _stable(_outputs(work, outs))
    assert old != new, f"the change {change} must make {stage} write other outputs, or the test proves nothing"
    at = harness.rng(f"stage-kill:{stage}").uniform(0.4, 0.95) * took
    cmd = harness.cli(*args, params=ROOT / "params.yaml", overrides=_overrides(work, weights, change))
    harness.kill_when(cmd, at, timeout=240)
    after = _stable(_outputs(work, outs))
    for name, data in after.items():
        assert data in (old.get(name), new.get(name)), f"{stage}: {name} is neither the previous nor the new output"
    # the next start sweeps what the kill left and ends like the uninterrupted run
    harness.run(cmd)
    assert _stable(_outputs(work, outs)) == new
    assert not (harness.stray_tmp(work / "data") + harness.stray_tmp(work / "metrics") + harness.stray_tmp(work / "reports"))
