"""Stage ``evaluate@<model>``: generated faces against real ones, offline feature spaces and (where
the weights are present) Inception.

Writes ``metrics/<model>.json`` (a DVC metric: numbers only, so ``dvc metrics show`` stays a table),
``metrics/<model>.status.json`` (metrics that cannot be computed here, with the reason, never given a
number; read by the report and ``compare``), ``metrics/<model>_history.csv`` (one
row per evaluated checkpoint, a DVC plot), logs an ``evaluate`` MLflow run and adds the same
numbers to the model's training run so runs compare side by side.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.core.datasets import holdout_mask
from pipeline.core.layout import HISTORY_SUFFIX, closest_path, status_path

if TYPE_CHECKING:
    from pipeline.params import Params


def checkpoints_to_score(run_dir: Path, every_epochs: int | None) -> list[tuple[int | None, Path]]:
    """[(epoch or None for the final one, path)]: snapshots ``checkpoints/epoch_<N>.pt`` with N a
    multiple of ``every_epochs`` (oldest first), then ``checkpoint.pt``. The last epoch's snapshot
    (``train.json``'s ``epochs``) is the final checkpoint's G at the same step, so it is left out."""
    out: list[tuple[int | None, Path]] = []
    if every_epochs:
        info = run_dir / "train.json"
        final_epoch = json.loads(info.read_text())["epochs"] if info.exists() else None
        for p in sorted((run_dir / "checkpoints").glob("epoch_*.pt")):
            m = re.fullmatch(r"epoch_(\d+)\.pt", p.name)
            if m and int(m.group(1)) % every_epochs == 0 and int(m.group(1)) != final_epoch:
                out.append((int(m.group(1)), p))
    out.append((None, run_dir / "checkpoint.pt"))
    return out


def readers_for(params: Params, device) -> dict:
    """Attribute readers for generated images of this dataset: the toy faces' own colour check, else
    the tagger (loaded only if a conditional model asks)."""
    from pipeline.evaluate.metrics.attributes import TaggerReaders, toy_readers

    if params.scrape.source == "toy":
        return toy_readers()
    return TaggerReaders(params.tag, str(device)).readers()


def evaluate_checkpoint(params: Params, ckpt: Path, real, names: list[str],
                        device) -> tuple[dict[str, float], dict[str, str], int, np.ndarray | None]:
    """(values, unavailable, step, closest-pairs picture or None) of one checkpoint: the pure part of the stage."""
    from pipeline.evaluate.metrics.context import EvalContext
    from pipeline.evaluate.metrics.registry import compute
    from pipeline.evaluate.sample import drawn_faces
    from pipeline.train.checkpoint import load_state

    cfg = params.evaluate
    if not ckpt.exists():
        raise FileNotFoundError(f"{ckpt} does not exist; train the model first (python -m pipeline train {ckpt.parent.name})")
    step = int(load_state(ckpt, mmap=True).get("step", -1))  # a damaged file: DamagedCheckpoint, naming it
    fake, requested = drawn_faces(ckpt, cfg.num_samples, device, seed=cfg.seed, batch_size=cfg.batch_size,
                                  ema=cfg.use_ema, real=real.images)
    if requested and "attr_acc" not in names:
        names = [*names, "attr_acc"]
    ctx = EvalContext(real.images, fake, real.digest, cfg, str(device), requested=requested,
                      readers=readers_for(params, device), holdout=holdout_mask(real.ids, cfg.holdout))
    values, unavailable = compute(names, ctx)
    values.update(num_real=len(real.images), num_fake=len(fake))
    closest = ctx.cache.get("closest")
    return values, unavailable, step, closest_pairs(fake, real.images, closest) if closest else None


def closest_pairs(fake: np.ndarray, real: np.ndarray, pairs: list[tuple[int, int, float]]) -> np.ndarray:
    """The memorisation check to look at: each row a sample beside the training face nearest to it
    in the evaluation features, closest pair first (uint8 H x W x 3)."""
    gap = 4
    h, w = fake.shape[1:3]
    out = np.full((len(pairs) * (h + gap) - gap, 2 * w + gap, 3), 255, np.uint8)
    for row, (s, r, _) in enumerate(pairs):
        y = row * (h + gap)
        out[y:y + h, :w], out[y:y + h, w + gap:] = fake[s], real[r]
    return out


def unavailable_picture(size: int, reason: str) -> np.ndarray:
    """What metrics/<model>_closest.png shows when there are no pairs: the reason, in words."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (max(size * 4, 256), max(size, 64)), "white")
    words, lines = reason.split(), [""]
    for word in words:
        lines[-1:] = [f"{lines[-1]} {word}".strip()] if len(lines[-1]) + len(word) < 48 else [lines[-1], word]
    ImageDraw.Draw(im).multiline_text((6, 6), "\n".join(lines[:6]), fill="black")
    return np.asarray(im)


def evaluate_all(params: Params, name: str) -> list[dict[str, Any]]:
    """One metrics dict per checkpoint scored (final last), each with ``step`` and ``unavailable``."""
    from pipeline.core.datasets import load_faces
    from pipeline.core.device import resolve_device
    from pipeline.core.inputs import read_parquet
    from pipeline.core.layout import index_path
    from pipeline.train.checkpoint import DamagedCheckpoint, load_state

    device = resolve_device(params.train.device)
    read_parquet(index_path(params.paths.faces), made_by="crop", columns=["face_id"])  # missing or damaged: say so
    scored = checkpoints_to_score(Path(params.paths.runs) / name, params.evaluate.every_epochs)
    if scored[-1][1].exists():
        load_state(scored[-1][1], mmap=True)  # a damaged final checkpoint is said now, not after scoring the snapshots
    real = load_faces(params.paths.faces)
    rows = []
    for epoch, ckpt in scored:
        try:
            values, unavailable, step, closest = evaluate_checkpoint(params, ckpt, real, list(params.evaluate.metrics), device)
        except DamagedCheckpoint as e:
            if epoch is None:  # the final checkpoint: nothing to score without it
                raise
            logging.getLogger(__name__).warning("evaluate@%s: skipping the epoch %d snapshot %s: %s; the metric-vs-step "
                                                "curve leaves it out", name, epoch, e.path, e.problem)
            continue
        rows.append({**values, "step": step, **({"epoch": epoch} if epoch is not None else {}),
                     "unavailable": unavailable, "closest": closest})
    return rows


def history_csv(rows: list[dict[str, Any]]) -> str:
    """Numeric metrics per evaluated step, for ``dvc plots`` and the report's metric-vs-step chart."""
    keys = sorted({k for r in rows for k, v in r.items() if isinstance(v, (int, float)) and k not in ("step", "epoch")})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["step", *keys])
    for r in sorted(rows, key=lambda r: r["step"]):
        w.writerow([r["step"], *[r.get(k, "") for k in keys]])
    return buf.getvalue()


def write_skipped(params: Params, name: str, reason: str) -> dict[str, Any]:
    """A model train skipped (no labels to condition on): no numbers in ``metrics/<model>.json`` (``{}``,
    so ``dvc metrics show`` stays numeric), the reason in ``metrics/<model>.status.json``, an empty history."""
    from pipeline.core.atomic import atomic_open, write_json
    from pipeline.core.images import save_png

    out = Path(params.paths.metrics)
    write_json(out / f"{name}.json", {})
    write_status(out, name, {}, skipped=reason)
    save_png(unavailable_picture(64, f"Not trained: {reason}"), closest_path(out, name))
    with atomic_open(out / f"{name}{HISTORY_SUFFIX}") as f:
        f.write(history_csv([]))
    return {"skipped": reason}


def numbers_only(metrics: dict[str, Any]) -> dict[str, float | int]:
    """What goes into the DVC metrics file: numeric leaves only (reasons go to the status sidecar)."""
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def write_status(metrics_dir: str | Path, name: str, unavailable: dict[str, str], skipped: str | None = None) -> Path:
    """``metrics/<model>.status.json``: {"unavailable": {metric: reason}} and, for a model that was
    not trained, {"skipped": reason}."""
    from pipeline.core.atomic import write_json

    path = status_path(metrics_dir, name)
    write_json(path, {"unavailable": dict(unavailable), **({"skipped": skipped} if skipped else {})})
    return path


def run_evaluate(params: Params, name: str) -> dict[str, Any]:
    from pipeline.core.atomic import atomic_open, sweep_outputs, write_json
    from pipeline.core.images import save_png
    from pipeline.core.inputs import read_json
    from pipeline.core.layout import history_path, metrics_path
    from pipeline.core.tracking import log_into_run, stage_run

    m = params.paths.metrics
    # temporaries a killed run left
    sweep_outputs(metrics_path(m, name), status_path(m, name), history_path(m, name), closest_path(m, name))
    train_info = read_json(Path(params.paths.runs) / name / "train.json", made_by=f"train@{name}")
    if train_info.get("skipped"):
        return write_skipped(params, name, train_info["skipped"])
    tags = {"model": name, "data_hash": train_info.get("data_hash", "")}
    if train_info.get("mlflow_run_id"):
        tags["train_run_id"] = train_info["mlflow_run_id"]
    logged = {"model": name, **params.evaluate.model_dump()}
    with stage_run("evaluate", params, logged, tags, run_name=f"evaluate@{name}") as mlflow:
        rows = evaluate_all(params, name)
        metrics = dict(rows[-1])
        picture = metrics.pop("closest")
        for r in rows:
            r.pop("closest", None)
        if picture is None:
            why = metrics["unavailable"].get("memorization", "the memorization metric is not in evaluate.metrics")
            picture = unavailable_picture(64, f"No closest pairs: {why}")
        save_png(picture, closest_path(m, name))
        metrics["train_steps"] = train_info["steps"]
        out = Path(params.paths.metrics)
        write_json(out / f"{name}.json", numbers_only(metrics))
        write_status(out, name, metrics["unavailable"])
        with atomic_open(out / f"{name}{HISTORY_SUFFIX}") as f:
            f.write(history_csv(rows))
        numeric = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if mlflow:
            for r in rows[:-1]:  # earlier checkpoints: the curve over training steps
                mlflow.log_metrics({k: float(v) for k, v in r.items() if isinstance(v, (int, float)) and k != "step"},
                                   step=r["step"])
            mlflow.log_metrics(numeric, step=metrics["step"])
            if metrics["unavailable"]:
                mlflow.set_tag("unavailable", json.dumps(metrics["unavailable"])[:5000])
            if train_info.get("mlflow_run_id"):
                log_into_run(params, train_info["mlflow_run_id"], {f"eval_{k}": v for k, v in numeric.items()})
    return metrics
