"""Stage ``report``: one page comparing every trained model (metrics table, last samples, losses)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from pipeline.params import Params

LOWER_IS_BETTER = ("ssl_fd",)


def collect(params: Params) -> list[dict[str, Any]]:
    """Per enabled model: its metrics and the paths of its latest sample grid and loss chart."""
    rows = []
    for name in params.train.enabled:
        metrics_path = Path(params.paths.metrics) / f"{name}.json"
        if not metrics_path.exists():
            raise FileNotFoundError(f"{metrics_path} is missing; run python -m pipeline evaluate {name}")
        run = Path(params.paths.runs) / name
        grids = sorted((run / "samples").glob("epoch_*.png"))
        rows.append({"model": name, "arch": params.model(name).arch, "metrics": json.loads(metrics_path.read_text()),
                     "grid": grids[-1] if grids else None, "losses": run / "losses.png"})
    return rows


def render_markdown(title: str, rows: list[dict[str, Any]], image_names: dict[str, dict[str, str]]) -> str:
    keys = sorted({k for r in rows for k in r["metrics"]})
    best = {}
    for k in keys:
        vals = [r["metrics"][k] for r in rows if isinstance(r["metrics"].get(k), (int, float))]
        if vals and k in LOWER_IS_BETTER:
            best[k] = min(vals)
    lines = [f"# {title}", "", "Lower is better for: " + ", ".join(LOWER_IS_BETTER) + " (best in **bold**). "
             "`ssl_fd_real_halves` is the same distance between two halves of the real faces: the floor a perfect "
             "generator would reach.", "",
             "| model | arch | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    for r in rows:
        cells = []
        for k in keys:
            v = r["metrics"].get(k)
            s = "n/a" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))
            cells.append(f"**{s}**" if k in best and v == best[k] and len(rows) > 1 else s)
        lines.append(f"| {r['model']} | {r['arch']} | " + " | ".join(cells) + " |")
    for r in rows:
        lines += ["", f"## {r['model']}", ""]
        for label, key in (("latest samples", "grid"), ("losses", "losses")):
            if key in image_names[r["model"]]:
                lines.append(f"![{r['model']} {label}]({image_names[r['model']][key]})")
    return "\n".join(lines) + "\n"


def run_report(params: Params) -> Path:
    from pipeline.atomic import atomic_dir
    from pipeline.tracking import stage_run

    rows = collect(params)
    out = Path(params.paths.reports)
    with stage_run("report", params, {"models": ",".join(r["model"] for r in rows)}) as mlflow:
        with atomic_dir(out) as tmp:
            names: dict[str, dict[str, str]] = {}
            for r in rows:
                names[r["model"]] = {}
                for key in ("grid", "losses"):
                    if r[key] is not None and Path(r[key]).exists():
                        dst = f"{r['model']}_{key}.png"
                        shutil.copyfile(r[key], tmp / dst)
                        names[r["model"]][key] = dst
            (tmp / "report.md").write_text(render_markdown(params.report.title, rows, names))
        if mlflow:
            mlflow.log_artifacts(str(out), artifact_path="report")
    return out / "report.md"
