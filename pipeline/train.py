"""Stage ``train@<model>``: train one entry of ``train.models`` on the cropped faces.

Writes ``runs/<model>/`` (checkpoint.pt, samples/epoch_NNN.png, losses.csv, losses.png, train.json,
and checkpoints/epoch_NNN.pt when ``evaluate.every_epochs`` asks for a metric-vs-step curve)
and one MLflow run with the params, the losses over steps and the sample grids. Conditional models
get the labels of ``conditioning``; sketch2image gets XDoG sketches of the faces.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pipeline.params import Params


def run_train(params: Params, name: str) -> dict[str, Any]:
    from pipeline.atomic import write_json
    from pipeline.datasets import load_faces, load_labels, sketches_of
    from pipeline.plots import plot_losses
    from pipeline.tracking import MLflowCallback, stage_run
    from pipeline.trainer import train

    spec = params.model(name)
    faces = load_faces(params.paths.faces)
    labels = (load_labels(faces, spec.conditioning, params.labels.out, params.paths.faces, params.paths.raw)
              if spec.conditioning else None)
    sketches = sketches_of(faces.images, spec.sketch) if spec.family == "sketch" else None
    data_id = faces.digest if labels is None else f"{faces.digest}:{hashlib.md5(labels.codes.tobytes()).hexdigest()}"
    out = Path(params.paths.runs) / name
    if params.train.num_threads:
        import torch
        torch.set_num_threads(params.train.num_threads)
    logged = {"model": name, "seed": params.train.seed, "device": params.train.device, **spec.model_dump()}
    tags = {"model": name, "arch": spec.arch, "family": spec.family, "data_hash": faces.digest}
    with stage_run("train", params, logged, tags, run_name=f"train@{name}") as mlflow:
        callbacks = (MLflowCallback(mlflow),) if mlflow else ()
        summary = train(faces.images, spec, out, labels=labels, sketches=sketches, seed=params.train.seed,
                        device=params.train.device, resume=params.train.resume, data_id=data_id,
                        snapshot_every=params.evaluate.every_epochs, callbacks=callbacks)
        plot_losses(out / "losses.csv", out / "losses.png", title=name)
        summary.update(model=name, data_hash=faces.digest,
                       mlflow_run_id=mlflow.active_run().info.run_id if mlflow else None)
        if mlflow:
            mlflow.log_artifact(str(out / "losses.png"))
        write_json(out / "train.json", summary)
    return summary
