"""Stage ``report``: every trained model side by side.

``reports/report.md`` (images copied beside it) and ``reports/index.html`` (self-contained: images
embedded as data URIs, so the one file can be mailed or opened from an artefact store): a model x
metric table with the best per column marked, the latest sample grid, loss curves, and metric vs
training step where several checkpoints were evaluated (``evaluate.every_epochs``).
"""

from __future__ import annotations

import base64
import csv
import html
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.core.layout import closest_path, status_path
from pipeline.report.params import ReportParams
from pipeline.report.table import UNRANKED_NOTE, cell, columns, direction, is_best, reason_notes, unranked_note, verdict

if TYPE_CHECKING:
    from pipeline.params import Params

STEP_PLOT_KEYS = ("ssl_fd", "fid", "ssl_kid", "kid", "c2st_acc", "diversity_ratio", "attr_acc")


# each model's pictures, in the order shown: (caption, key in collect()'s rows / the images dict)
FIGURES = (("latest samples", "grid"), ("losses", "losses"), ("metrics vs step", "steps"),
           ("samples beside their nearest training faces (memorization)", "closest"))


def collect(params: Params) -> list[dict[str, Any]]:
    """Per enabled model: its metrics, history rows and the paths of its latest sample grid and loss chart."""
    from pipeline.core.inputs import require

    rows = []
    for name in params.train.enabled:
        metrics_path = Path(params.paths.metrics) / f"{name}.json"
        require(metrics_path, made_by=f"evaluate@{name}")
        run = Path(params.paths.runs) / name
        grids = sorted((run / "samples").glob("*.png"))
        hist_path = Path(params.paths.metrics) / f"{name}_history.csv"
        history = list(csv.DictReader(hist_path.open())) if hist_path.exists() else []
        spec = params.model(name)
        metrics = json.loads(metrics_path.read_text())
        status_file = status_path(params.paths.metrics, name)  # reasons live beside the numbers, not in them
        status = json.loads(status_file.read_text()) if status_file.exists() else {}
        metrics["unavailable"] = {**metrics.get("unavailable", {}), **status.get("unavailable", {})}
        rows.append({"model": name, "arch": spec.arch, "ranked": spec.family != "sketch", "metrics": metrics,
                     "skipped": status.get("skipped"), "grid": grids[-1] if grids else None, "losses": run / "losses.png",
                     # the pairs only where they were found (else metrics/<model>_closest.png says why, and so does the report)
                     "closest": closest_path(params.paths.metrics, name) if "memorization_share" in metrics else None,
                     "history": history})
    return rows


def plot_history(history: list[dict[str, str]], png: Path, title: str) -> Path | None:
    """Metric vs training step (one panel per metric present); None with fewer than two checkpoints."""
    keys = [k for k in STEP_PLOT_KEYS if history and any(h.get(k) not in (None, "") for h in history)]
    if len(history) < 2 or not keys:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3), squeeze=False)
    for ax, k in zip(axes[0], keys):
        pts = [(int(h["step"]), float(h[k])) for h in history if h.get(k) not in (None, "")]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o")
        ax.set_title(f"{k} ({direction(k) or 'unranked'})", fontsize=9)
        ax.set_xlabel("step")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(png, format="png", dpi=80)
    plt.close(fig)
    return png


def render_markdown(title: str, rows: list[dict[str, Any]], images: dict[str, dict[str, str]],
                    cfg: ReportParams | None = None) -> str:
    cfg = cfg or ReportParams()
    keys = columns(rows)
    marks, warning = verdict(rows, keys, cfg.clear_margin, cfg.near_noise)
    shared, own = reason_notes(rows)
    lines = [f"# {title}", ""] + ([f"> **{warning}**", ""] if warning else [])
    if shared:  # each distinct reason once, before the numbers it explains
        lines += ["Not measured here:", "", *(f"- {k} unavailable for {who}: {reason}" for k, reason, who in shared), ""]
    lines += ["Best per column in **bold** (" + "; ".join(
        f"{k}: {direction(k)}" for k in keys if direction(k)) + f"), only where it beats the next by {cfg.clear_margin:.0%}. "
        + UNRANKED_NOTE + unranked_note(rows), "",
        "| model | arch | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    for r in rows:
        if r.get("skipped"):
            lines.append(f"| {r['model']} | {r['arch']} | not trained: {r['skipped']} |" + " |" * max(len(keys) - 1, 0))
            continue
        cells = []
        for k in keys:
            text, _ = cell(r, k)
            cells.append(f"**{text}**" if is_best(r, k, marks) else text)
        lines.append(f"| {r['model']} | {r['arch']} | " + " | ".join(cells) + " |")
    for r in rows:
        lines += ["", f"## {r['model']}", ""]
        if r.get("skipped"):
            lines += [f"Not trained: {r['skipped']}", ""]
        lines += [f"- {k} unavailable: {reason}" for k, reason in own.get(r["model"], [])]
        for label, key in FIGURES:
            if key in images[r["model"]]:
                lines.append(f"![{r['model']} {label}]({images[r['model']][key]})")
    return "\n".join(lines) + "\n"


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def render_html(title: str, rows: list[dict[str, Any]], images: dict[str, dict[str, Path]],
                cfg: ReportParams | None = None) -> str:
    e = html.escape
    cfg = cfg or ReportParams()
    keys = columns(rows)
    marks, warning = verdict(rows, keys, cfg.clear_margin, cfg.near_noise)
    head = "".join(f'<th title="{e(direction(k) or "not ranked")} is better">{e(k)}</th>' for k in keys)
    shared, own = reason_notes(rows)
    body = []
    for r in rows:
        if r.get("skipped"):
            body.append(f"<tr><th>{e(r['model'])}</th><td>{e(r['arch'])}</td>"
                        f'<td class="skipped" colspan="{max(len(keys), 1)}">not trained: {e(r["skipped"])}</td></tr>')
            continue
        tds = []
        for k in keys:
            text, reason = cell(r, k)
            top = is_best(r, k, marks)
            attrs = (' class="best"' if top else "") + (f' class="na" title="{e(reason)}"' if reason else "")
            tds.append(f"<td{attrs}>{'<b>' + e(text) + '</b>' if top else e(text)}</td>")
        body.append(f"<tr><th>{e(r['model'])}</th><td>{e(r['arch'])}</td>{''.join(tds)}</tr>")
    sections = []
    for r in rows:
        figs = "".join(f'<figure><img alt="{e(r["model"])} {label}" src="{_data_uri(images[r["model"]][key])}">'
                       f"<figcaption>{label}</figcaption></figure>"
                       for label, key in FIGURES
                       if key in images[r["model"]])
        reasons = "".join(f"<li>{e(m)} unavailable: {e(why)}</li>" for m, why in own.get(r["model"], []))
        if r.get("skipped"):
            reasons = f"<li>not trained: {e(r['skipped'])}</li>" + reasons
        sections.append(f'<section id="model-{e(r["model"])}"><h2>{e(r["model"])}</h2>'
                        f"{'<ul>' + reasons + '</ul>' if reasons else ''}{figs}</section>")
    top_list = "".join(f"<li>{e(k)} unavailable for {e(who)}: {e(reason)}</li>" for k, reason, who in shared)
    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
             "padding:.3em .6em;text-align:right}td.best{background:#dfd}td.na{color:#999}td.skipped{text-align:left;color:#a40}"
             ".warning{background:#fee;border:1px solid #c66;padding:.6em;font-weight:bold}"
             "figure{display:inline-block;margin:.5em;vertical-align:top}img{max-width:640px;image-rendering:pixelated}")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>'
            f"<style>{style}</style></head><body><h1>{e(title)}</h1>"
            + (f'<p id="no-best" class="warning">{e(warning)}</p>' if warning else "")
            + (f'<div id="unavailable"><p>Not measured here:</p><ul>{top_list}</ul></div>' if shared else "") +
            f"<p>Best per column in bold on green, only where it beats the next by {cfg.clear_margin:.0%}. "
            f"{e(UNRANKED_NOTE + unranked_note(rows))}</p>"
            f'<div style="overflow-x:auto"><table id="metrics"><thead><tr><th>model</th><th>arch</th>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>{''.join(sections)}</body></html>\n")


def run_report(params: Params) -> Path:
    from pipeline.core.atomic import atomic_dir, sweep_outputs
    from pipeline.core.tracking import stage_run

    sweep_outputs(params.paths.reports)  # temporaries (and a swap cut in half) a killed run left
    rows = collect(params)
    out = Path(params.paths.reports)
    with stage_run("report", params, {"models": ",".join(r["model"] for r in rows)}) as mlflow:
        with atomic_dir(out) as tmp:
            images: dict[str, dict[str, Path]] = {}
            for r in rows:
                images[r["model"]] = {}
                for key in ("grid", "losses", "closest"):
                    if r[key] is not None and Path(r[key]).exists():
                        dst = tmp / f"{r['model']}_{key}.png"
                        shutil.copyfile(r[key], dst)
                        images[r["model"]][key] = dst
                if steps := plot_history(r["history"], tmp / f"{r['model']}_steps.png", f"{r['model']}: metrics vs step"):
                    images[r["model"]]["steps"] = steps
            names = {m: {k: p.name for k, p in d.items()} for m, d in images.items()}
            (tmp / "report.md").write_text(render_markdown(params.report.title, rows, names, params.report))
            (tmp / "index.html").write_text(render_html(params.report.title, rows, images, params.report))
        if mlflow:
            mlflow.log_artifacts(str(out), artifact_path="report")
    return out / "report.md"
