"""``python -m pipeline compare``: the training runs of the experiment side by side, from MLflow.

One row per ``train`` run (evaluate logs its numbers into that run as ``eval_*``): model, the params
that differ between the runs shown, the metrics, the git commit and the date.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pipeline.params import Params


def parse_since(text: str) -> datetime:
    """``2026-11-23`` or an ISO timestamp; naive means UTC."""
    try:
        d = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since {text!r} is not a date; use YYYY-MM-DD or an ISO timestamp like 2026-11-23T04:00") from None
    return d if d.tzinfo else d.replace(tzinfo=timezone.utc)


def filter_string(model: str | None, since: datetime | None) -> str:
    parts = ["tags.stage = 'train'"]
    if model:
        parts.append(f"tags.model = '{model.replace(chr(39), '')}'")
    if since:
        parts.append(f"attributes.start_time >= {int(since.timestamp() * 1000)}")
    return " and ".join(parts)


def tidy(df) -> Any:
    """search_runs' frame -> the comparison table (params that are equal in every row are dropped)."""
    import pandas as pd

    if df.empty:
        return pd.DataFrame(columns=["model", "date", "commit"])
    params = [c for c in df.columns if c.startswith("params.") and df[c].astype(str).nunique(dropna=False) > 1]
    metrics = sorted((c for c in df.columns if c.startswith("metrics.") and df[c].notna().any()),
                     key=lambda c: (not c.startswith("metrics.eval_"), c))
    out = pd.DataFrame({
        "model": df.get("tags.model", pd.Series([""] * len(df))).fillna(""),
        "date": pd.to_datetime(df["start_time"]).dt.strftime("%Y-%m-%d %H:%M"),
        "commit": df.get("tags.git_commit", pd.Series([""] * len(df))).fillna("").str[:8],
        "run_id": df["run_id"].str[:8],
    })
    for c in params:
        out[c.removeprefix("params.")] = df[c].values
    for c in metrics:
        out[c.removeprefix("metrics.")] = df[c].values
    return out


def compare_runs(params: Params, model: str | None = None, since: str | None = None):
    import mlflow

    from pipeline.core.tracking import repo_root, tracking_uri

    mlflow.set_tracking_uri(tracking_uri(params, repo_root()))
    if mlflow.get_experiment_by_name(params.tracking.experiment) is None:
        raise FileNotFoundError(f"no MLflow experiment {params.tracking.experiment!r} at {mlflow.get_tracking_uri()}; "
                                "train a model first")
    df = mlflow.search_runs(experiment_names=[params.tracking.experiment],
                            filter_string=filter_string(model, parse_since(since) if since else None),
                            order_by=["attributes.start_time DESC"])
    return tidy(df)
