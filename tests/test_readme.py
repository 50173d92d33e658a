"""The README is the front door: short, its links resolve, and its commands run as written.

Blocks marked ``<!-- cheap ... -->`` run here as they are; the block marked ``<!-- dvc-exp ... -->`` runs
in tests/e2e/test_readme_exp_dvc.py (a temporary git repository, tiny data).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

README = ROOT / "README.md"
BIN = Path(sys.executable).parent
MAX_BYTES = 12 * 1024


def blocks(marker: str) -> list[list[str]]:
    """The commands of each fenced bash block that follows ``<!-- <marker>...-->``, continuations joined."""
    text = README.read_text(encoding="utf-8")
    found = re.findall(rf"<!-- {marker}\b[^>]*-->\s*```bash\n(.*?)```", text, flags=re.S)
    out = []
    for body in found:
        joined = re.sub(r"\\\n\s*", " ", body)
        out.append([line.split("  #")[0].strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")])
    return out


def _env() -> dict[str, str]:
    return dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="1", NO_MKDOCS_2_WARNING="1",
                PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


def _argv(command: str) -> list[str]:
    argv = shlex.split(command)
    if argv[0].startswith(".venv/bin/"):  # the venv this test runs in (the shared one in a worktree, .venv in CI)
        argv[0] = str(BIN / argv[0].removeprefix(".venv/bin/"))
    return argv


def test_readme_is_a_front_door():
    assert README.stat().st_size <= MAX_BYTES, f"README.md is {README.stat().st_size} bytes; topic text goes to docs/"
    text = README.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert any(link.endswith("getting-started.md") for link in links)
    broken = [link for link in links if not link.startswith("http") and not (ROOT / link.split("#")[0]).exists()]
    assert not broken, f"README links to missing files: {broken}"
    assert "make demo" in text and "make test" in text


def test_readme_cheap_commands_run():
    (commands,) = blocks("cheap")
    assert commands
    for command in commands:
        out = subprocess.run(_argv(command), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, (command, out.stdout[-2000:], out.stderr[-2000:])
        assert "usage: boorugan" in out.stdout


def test_demo_and_run_end_by_naming_the_report_play_and_the_mlflow_ui():
    from pipeline.params import load_params

    def recipe(target: str) -> str:
        out = subprocess.run(["make", "-n", "-o", ".venv/.installed", target], cwd=ROOT, capture_output=True, text=True,
                             timeout=60, check=True).stdout
        return out[out.index("pipeline flow" if target == "demo" else "dvc repro"):]

    reports = load_params(ROOT / "params.yaml").paths.reports
    run = recipe("run")
    assert f"{reports}/report.md" in run and "boorugan play" in run and "make ui" in run
    demo = recipe("demo")
    demo_reports = re.search(r"-S paths\.reports=(\S+)", demo).group(1)  # the demo's own workspace
    tail = demo[demo.index("printf"):]
    assert f"{demo_reports}/report.md" in tail and "make demo-play" in tail and "make ui" in tail
