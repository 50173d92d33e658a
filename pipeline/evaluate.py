"""Stage ``evaluate@<model>``: generated faces against real ones, in feature spaces that work offline.

Writes ``metrics/<model>.json`` (a DVC metric), logs an ``evaluate`` MLflow run and adds the same
numbers to the model's training run so runs compare side by side.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.params import Params


def evaluate_generator(params: Params, name: str) -> dict[str, Any]:
    """Metrics of the trained ``name`` (no tracking, no files): the pure part of the stage."""
    from pipeline.datasets import load_faces
    from pipeline.metrics import EvalContext, compute
    from pipeline.sample import generated_faces
    from pipeline.trainer import resolve_device

    cfg = params.evaluate
    device = resolve_device(params.train.device)
    real = load_faces(params.paths.faces)
    ckpt = Path(params.paths.runs) / name / "checkpoint.pt"
    if not ckpt.exists():
        raise FileNotFoundError(f"{ckpt} does not exist; train the model first (python -m pipeline train {name})")
    fake = generated_faces(ckpt, cfg.num_samples, device, seed=cfg.seed, batch_size=cfg.batch_size, ema=cfg.use_ema, real=real.images)
    ctx = EvalContext(real.images, fake, real.digest, cfg, str(device))
    metrics = compute(cfg.metrics, ctx)
    metrics.update(num_real=len(real.images), num_fake=len(fake))
    return metrics


def run_evaluate(params: Params, name: str) -> dict[str, Any]:
    from pipeline.atomic import write_json
    from pipeline.tracking import log_into_run, stage_run

    train_info = json.loads((Path(params.paths.runs) / name / "train.json").read_text())
    tags = {"model": name, "data_hash": train_info.get("data_hash", "")}
    if train_info.get("mlflow_run_id"):
        tags["train_run_id"] = train_info["mlflow_run_id"]
    with stage_run("evaluate", params, {"model": name, **params.evaluate.model_dump()}, tags, run_name=f"evaluate@{name}") as mlflow:
        metrics = evaluate_generator(params, name)
        metrics["train_steps"] = train_info["steps"]
        write_json(Path(params.paths.metrics) / f"{name}.json", metrics)
        if mlflow:
            mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
            if train_info.get("mlflow_run_id"):
                log_into_run(params, train_info["mlflow_run_id"], {f"eval_{k}": float(v) for k, v in metrics.items()})
    return metrics
