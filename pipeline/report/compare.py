"""``python -m pipeline compare``: which model is best, and by how much, from the MLflow runs.

One row per model (its latest ``train`` run; evaluate logs its numbers into that run as ``eval_*``,
so the column names are the MLflow UI's and its compare view shows the same numbers), sorted by the
primary metric (``eval_fid`` when any row has it, else ``eval_ssl_fd``; lower is better), with the
few columns a reader needs and each metric's floor and noise beside it where known, fitted to 120
columns. ``--params`` adds the params that differ between the rows shown, ``--all`` every param and
metric; ``--format csv|json|markdown`` for scripts. Reasons a metric is missing come from the
evaluate stage's sidecars (``metrics/<model>.status.json``) and are printed once below the table.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.params import Params

WIDTH = 120
BASE = ("model", "arch", "steps", "images_seen", "date", "commit")
PRIMARY = ("eval_fid", "eval_ssl_fd")  # the first one any row has sorts the table
# metric columns of the default view, in the order shown; floors (what a perfect generator reaches),
# noise values (what uniform noise gets) and std over subsets/seeds sit right after their metric
SHOWN = ("eval_fid", "eval_ssl_fd", "eval_ssl_fd_real_halves", "eval_ssl_fd_noise", "eval_kid", "eval_kid_std",
         "eval_ssl_kid", "eval_ssl_kid_std", "eval_attr_acc")
# when the table is too wide, the last of these goes first
KEEP_ORDER = ("eval_fid", "eval_ssl_fd", "eval_ssl_fd_real_halves", "eval_ssl_fd_noise", "eval_attr_acc", "eval_kid",
              "eval_kid_std", "eval_ssl_kid", "eval_ssl_kid_std")
LEGEND = {"eval_ssl_fd_real_halves": "floor of eval_ssl_fd (two halves of the real faces)",
          "eval_ssl_fd_noise": "eval_ssl_fd of uniform noise on the same faces (nothing learned)",
          "eval_kid_std": "noise of eval_kid (std over subsets)", "eval_ssl_kid_std": "noise of eval_ssl_kid"}
FORMATS = ("table", "csv", "json", "markdown")


def parse_since(text: str) -> datetime:
    """``2026-11-23`` or an ISO timestamp; naive means UTC."""
    try:
        d = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since {text!r} is not a date; use YYYY-MM-DD or an ISO timestamp like 2026-11-23T04:00") from None
    return d if d.tzinfo else d.replace(tzinfo=UTC)


def filter_string(model: str | None, since: datetime | None) -> str:
    parts = ["tags.stage = 'train'"]
    if model:
        parts.append(f"tags.model = '{model.replace(chr(39), '')}'")
    if since:
        parts.append(f"attributes.start_time >= {int(since.timestamp() * 1000)}")
    return " and ".join(parts)


def _col(df, name: str):
    import pandas as pd

    return df[name] if name in df.columns else pd.Series([None] * len(df), index=df.index, dtype=object)


def tidy(df, show: str = "default", latest: bool = True) -> Any:
    """search_runs' frame -> the comparison table. ``show``: default (the few columns), params (plus
    the params that differ between the rows), all (every param and metric)."""
    import pandas as pd

    if df.empty:
        return pd.DataFrame(columns=list(BASE))
    df = df.sort_values("start_time", ascending=False)
    if latest:
        df = df.drop_duplicates(subset=["tags.model"] if "tags.model" in df.columns else None, keep="first")
    steps = pd.to_numeric(_col(df, "metrics.steps"), errors="coerce")
    batch = pd.to_numeric(_col(df, "metrics.batch_size"), errors="coerce")
    world = pd.to_numeric(_col(df, "metrics.world_size"), errors="coerce").fillna(1)
    out = pd.DataFrame({
        "model": _col(df, "tags.model").fillna("").values,
        "arch": _col(df, "tags.arch").fillna(_col(df, "params.arch")).fillna("").values,
        "steps": steps.astype("Int64").values,
        "images_seen": (steps * batch * world).astype("Int64").values,
        "date": pd.to_datetime(df["start_time"]).dt.strftime("%Y-%m-%d %H:%M").values,
        "commit": _col(df, "tags.git_commit").fillna("").str[:8].values,
    })
    family = _col(df, "tags.family").fillna("").values
    metrics = {c.removeprefix("metrics."): df[c].values for c in df.columns if c.startswith("metrics.") and df[c].notna().any()}
    params = {c.removeprefix("params."): df[c].values for c in df.columns if c.startswith("params.")}
    if show == "all":
        out["run_id"] = df["run_id"].values
        for k in sorted(params):
            out[k] = params[k]
        for k in sorted(metrics, key=lambda k: (not k.startswith("eval_"), k)):
            out[k] = metrics[k]
    else:
        if show == "params":
            for k in sorted(params):
                if k not in BASE and pd.Series(params[k]).astype(str).nunique(dropna=False) > 1:
                    out[k] = params[k]
        for k in SHOWN:
            if k in metrics:
                out[k] = metrics[k]
    primary = next((k for k in PRIMARY if k in out.columns), None)
    # reconstruction models (sketch2image) are not ranked against models that draw from noise: last
    key = pd.DataFrame({"sketch": family == "sketch",
                        "primary": pd.to_numeric(out[primary], errors="coerce") if primary else 0.0})
    order = key.sort_values(["sketch", "primary"], na_position="last", kind="stable").index
    out = out.iloc[list(order)].reset_index(drop=True)
    out.attrs.update(primary=primary, unranked=sorted(set(out["model"][family[list(order)] == "sketch"])))
    return out


def _text(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    try:
        import pandas as pd

        if pd.isna(v):
            return ""
    except (TypeError, ValueError):
        pass
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def fit(table, width: int = WIDTH) -> tuple[list[str], list[str]]:
    """(columns kept, columns left out) so the text table is at most ``width`` wide: metric columns
    go in reverse ``KEEP_ORDER``; the base columns always stay."""
    cols = list(table.columns)
    dropped: list[str] = []
    droppable = [c for c in reversed(KEEP_ORDER) if c in cols]
    droppable += [c for c in reversed(cols) if c not in BASE and c not in KEEP_ORDER]
    while _width(table, cols) > width and droppable:
        c = droppable.pop(0)
        cols.remove(c)
        dropped.append(c)
    return cols, dropped


def _width(table, cols: list[str]) -> int:
    return sum(max([len(c), *(len(_text(v)) for v in table[c])]) for c in cols) + 2 * (len(cols) - 1)


def render_text(table, cols: list[str]) -> str:
    widths = {c: max([len(c), *(len(_text(v)) for v in table[c])]) for c in cols}
    numeric = {c: table[c].dtype.kind in "iuf" or str(table[c].dtype) == "Int64" for c in cols}

    def line(cells: list[str]) -> str:
        return "  ".join(t.rjust(widths[c]) if numeric[c] else t.ljust(widths[c]) for c, t in zip(cols, cells)).rstrip()

    return "\n".join([line(cols), *(line([_text(r[c]) for c in cols]) for _, r in table.iterrows())])


def render_markdown(table) -> str:
    cols = list(table.columns)
    rows = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    rows += ["| " + " | ".join(_text(r[c]) for c in cols) + " |" for _, r in table.iterrows()]
    return "\n".join(rows)


def render_json(table) -> str:
    records = [{c: (None if _text(r[c]) == "" and not isinstance(r[c], str) else
                    (int(r[c]) if table[c].dtype.kind in "iu" or str(table[c].dtype) == "Int64" else
                     float(r[c]) if table[c].dtype.kind == "f" else r[c])) for c in table.columns} for _, r in table.iterrows()]
    return json.dumps(records, indent=1, default=str)


def render(table, fmt: str = "table", notes: list[str] | None = None, width: int = WIDTH, fit_width: bool = True) -> str:
    """The table in ``fmt``; the text table is fitted to ``width`` and followed by ``notes``."""
    if fmt not in FORMATS:
        raise ValueError(f"--format {fmt!r}: one of {', '.join(FORMATS)}")
    if fmt == "csv":
        return table.to_csv(index=False).rstrip("\n")
    if fmt == "json":
        return render_json(table)
    if fmt == "markdown":
        return render_markdown(table)
    cols, dropped = fit(table, width) if fit_width else (list(table.columns), [])
    lines = [render_text(table, cols)]
    primary = table.attrs.get("primary")
    if primary:
        lines.append(f"sorted by {primary}, lower is better"
                     + (f"; {', '.join(table.attrs['unranked'])} last: drawn from sketches of real faces, not ranked"
                        if table.attrs.get("unranked") else ""))
    lines += [f"{k}: {LEGEND[k]}" for k in cols if k in LEGEND]
    for k in list(dropped):  # a scale shared by every row (a dataset's noise value) is said once, not dropped
        values = table[k].dropna().unique() if k in table else []
        if len(values) == 1 and table[k].notna().all():
            lines.append(f"{k} = {_text(values[0])} for every row" + (f": {LEGEND[k]}" if k in LEGEND else ""))
            dropped.remove(k)
    if dropped:
        lines.append(f"left out to fit {width} columns: {', '.join(dropped)} (--all shows every column)")
    import textwrap

    for note in notes or []:  # long reasons (a URL, a cache path) wrap under their first line
        lines += textwrap.wrap(note, width, subsequent_indent="    ", break_long_words=False, break_on_hyphens=False)
    return "\n".join(lines)


def status_notes(params: Params, models: list[str], also: list[str] = ()) -> list[str]:
    """The evaluate sidecars' reasons for the models shown, each distinct one once; of the models in
    ``also`` (enabled, with no run shown), only why they were not trained."""
    from pipeline.core.layout import status_path
    from pipeline.report.table import reason_notes

    rows = []
    for m in models:
        p = status_path(params.paths.metrics, m)
        try:
            status = json.loads(Path(p).read_text()) if Path(p).is_file() else {}
        except (OSError, ValueError):
            status = {}
        rows.append({"model": m, "metrics": {"unavailable": status.get("unavailable", {})}, "skipped": status.get("skipped")})
    if not rows:
        return []
    shared, own = reason_notes(rows)
    notes = [f"{k} unavailable for {who}: {why}" for k, why, who in shared]
    notes += [f"{k} unavailable for {m}: {why}" for m, items in own.items() for k, why in items]
    notes += [f"{r['model']} not trained: {r['skipped']}" for r in rows if r["skipped"]]
    for m in also:
        p = status_path(params.paths.metrics, m)
        try:
            skipped = json.loads(Path(p).read_text()).get("skipped") if Path(p).is_file() else None
        except (OSError, ValueError):
            skipped = None
        if skipped:
            notes.append(f"{m} not trained: {skipped}")
    return notes


def search(params: Params, model: str | None = None, since: str | None = None):
    import mlflow

    from pipeline.core.tracking import repo_root, tracking_uri

    mlflow.set_tracking_uri(tracking_uri(params, repo_root()))
    if mlflow.get_experiment_by_name(params.tracking.experiment) is None:
        raise FileNotFoundError(f"no MLflow experiment {params.tracking.experiment!r} at {mlflow.get_tracking_uri()}; "
                                "train a model first")
    return mlflow.search_runs(experiment_names=[params.tracking.experiment],
                              filter_string=filter_string(model, parse_since(since) if since else None),
                              order_by=["attributes.start_time DESC"])


def compare_runs(params: Params, model: str | None = None, since: str | None = None, show: str = "default",
                 latest: bool = True):
    """The comparison table (a pandas DataFrame; ``attrs['primary']`` is the metric it is sorted by)."""
    return tidy(search(params, model, since), show=show, latest=latest)
