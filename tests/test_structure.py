"""The layout keeps its promises: no import circles, DVC deps equal to each stage's import closure,
one table of stages behind the CLI, DVC and Prefect, and the metric names spelled once per side."""

from __future__ import annotations

import re
from typing import get_args

import yaml

import importgraph
from conftest import ROOT

CODE = ("pipeline/", "models", "flows/")


def dvc_code_deps() -> dict[str, list[str]]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    out = {}
    for name, stage in stages.items():
        deps = (stage.get("do") or stage)["deps"]
        out[name] = [d for d in deps if isinstance(d, str) and d.startswith(CODE)]
    return out


def test_no_import_cycles():
    assert importgraph.cycles() == []


def test_the_graph_sees_lazy_imports_and_skips_type_checking_ones():
    """The closure is only as good as the graph: imports inside functions must show up, or a stage's
    deps would miss code it runs; imports under ``if TYPE_CHECKING:`` never run and must not (the
    stages name ``Params`` for annotations only, so they do not depend on every stage's settings)."""
    assert "pipeline.scrape.sources.danbooru" in importgraph.imports_of("pipeline.scrape.sources.registry")
    assert "pipeline.train.loop" in importgraph.imports_of("pipeline.train.stage")  # imported inside run_train
    assert "pipeline.scrape.stage" in importgraph.imports_of("pipeline.stages")
    assert "pipeline.params" not in importgraph.imports_of("pipeline.train.stage")
    assert "pipeline.train.params" in importgraph.imports_of("pipeline.train.stage")


def test_dvc_code_deps_are_each_stages_import_closure():
    declared = dvc_code_deps()
    assert set(declared) == set(importgraph.stage_table())
    for stage, deps in declared.items():
        want = importgraph.code_deps(stage)
        missing, extra = sorted(set(want) - set(deps)), sorted(set(deps) - set(want))
        assert not missing and not extra, (
            f"dvc.yaml stage {stage!r}: missing code deps {missing}, deps it does not import {extra}; "
            f"`python tests/importgraph.py --write` puts the right lists there")


def test_a_removed_dep_line_is_caught(tmp_path, monkeypatch):
    """The deps test can fail: drop one core module from the crop stage and it names it."""
    text = (ROOT / "dvc.yaml").read_text()
    crop = text.index("  crop:")
    line = re.compile(r"^\s+- pipeline/core/layout\.py\n", re.M)
    broken = text[:crop] + line.sub("", text[crop:], count=1)
    assert broken != text
    (tmp_path / "dvc.yaml").write_text(broken)
    monkeypatch.setattr("test_structure.ROOT", tmp_path)
    try:
        test_dvc_code_deps_are_each_stages_import_closure()
    except AssertionError as e:
        assert "'crop'" in str(e) and "pipeline/core/layout.py" in str(e)
    else:
        raise AssertionError("the deps test passed with a dep missing")


def test_stage_table_matches_dvc_and_packages():
    from pipeline.stages import STAGES

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert [s.name for s in STAGES] == list(stages)
    for s in STAGES:
        assert s.package == f"pipeline.{s.name}.stage".rsplit(".", 1)[0]
        assert ("foreach" in stages[s.name]) == s.per_model
        assert stages[s.name].get("do", stages[s.name])["cmd"].startswith(f"python -m pipeline {s.name}")
        assert callable(s.function())


def test_metric_names_in_params_are_the_registry():
    from pipeline.evaluate.metrics.registry import METRICS
    from pipeline.params import MetricName

    assert set(get_args(MetricName)) == set(METRICS)


def test_every_output_location_is_under_paths():
    """Stage sections hold knobs, not output locations (tests move every output with paths.*)."""
    tree = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, values in tree.items():
        if section == "paths" or not isinstance(values, dict):
            continue
        for key in values:
            assert key not in ("out", "vocab_out", "conflicts"), f"{section}.{key} is an output: move it to paths"


def test_each_stages_dvc_params_are_sections_it_reads():
    """``Stage.reads`` (which settings modules are a stage's code deps) covers every params section
    dvc.yaml tracks for the stage."""
    from pipeline.stages import STAGES

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for s in STAGES:
        tracked = {str(k).split(".")[0] for k in stages[s.name].get("do", stages[s.name]).get("params", [])}
        assert tracked <= set(s.reads), f"{s.name}: dvc.yaml tracks {sorted(tracked - set(s.reads))}, not in its reads"
