"""Adding a stage is one entry in pipeline/stages.py: a test adds a dummy one and finds it as a
command (with its result's line printed), as a Prefect task, and in the DVC deps check."""

from __future__ import annotations

import pytest
import test_structure
import yaml

from pipeline import stages
from pipeline.cli import build_parser, main

import importgraph
from conftest import ROOT


def hello(params, **options):
    return {"greeted": params.crop.size}


DUMMY = stages.Stage("hello", hello, False, False, "greet the faces", reads=("paths", "crop"), package="pipeline.report")


@pytest.fixture
def with_dummy(monkeypatch):
    monkeypatch.setattr(stages, "STAGES", (*stages.STAGES, DUMMY))
    return DUMMY


def test_a_stage_without_a_printer_is_a_command_and_prints_its_summary(with_dummy, capsys):
    parser = build_parser()
    assert "greet the faces" in parser.format_help()
    code = main(["hello", "--params", str(ROOT / "params.yaml"), "-S", "crop.size=48", "-S", "tracking.enabled=false"])
    assert code == 0
    assert capsys.readouterr().out.strip() == "hello: {'greeted': 48}"


def test_stage_results_share_one_type():
    from pipeline.params import load_params

    result = DUMMY.execute(load_params(ROOT / "params.yaml"))
    assert isinstance(result, stages.StageResult)
    assert (result.label, result.summary, result.line) == ("hello", {"greeted": 64}, "hello: {'greeted': 64}")


def test_the_flows_have_a_task_for_it(with_dummy):
    from flows.tasks import tasks

    assert list(tasks()) == [s.name for s in stages.STAGES] and "hello" in tasks()


def test_the_dvc_check_sees_it(with_dummy, tmp_path, monkeypatch):
    """The deps check asks dvc.yaml for the new stage, and is content once dvc.yaml has it with the
    deps importgraph computes (its package, the settings modules of the sections it reads)."""
    assert "hello" in importgraph.stage_table()
    deps = importgraph.code_deps("hello")
    assert deps[0] == "pipeline/report" and "pipeline/crop/params.py" in deps and "pipeline/params.py" in deps
    assert "pipeline/train/params.py" not in deps
    monkeypatch.setattr(test_structure, "ROOT", tmp_path)
    (tmp_path / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    with pytest.raises(AssertionError):
        test_structure.test_dvc_code_deps_are_each_stages_import_closure()
    tree = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    tree["stages"]["hello"] = {"cmd": "python -m pipeline hello", "deps": deps}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    test_structure.test_dvc_code_deps_are_each_stages_import_closure()
