"""Stage ``train@<model>``: train one entry of ``train.models`` on the cropped faces.

Writes ``runs/<model>/`` (checkpoint.pt, samples/epoch_NNN.png, losses.csv, losses.png, train.json,
and checkpoints/epoch_NNN.pt when ``evaluate.every_epochs`` asks for a metric-vs-step curve)
and one MLflow run with the params, the losses over steps and the sample grids. Conditional models
get the labels of ``conditioning``; sketch2image gets XDoG sketches of the faces.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.core.errors import StageError
from pipeline.train.params import ModelSpec

if TYPE_CHECKING:
    from pipeline.params import Params
    from pipeline.train.distributed import Dist
    from pipeline.train.fastpath import FastOptions


def run_train(params: Params, name: str) -> dict[str, Any]:
    """Under ``torchrun --nproc_per_node=N -m pipeline train <model>`` each of the N processes runs
    this; they train one model with DDP (pipeline/train/distributed.py)."""
    import torch

    from pipeline.core.atomic import sweep_outputs
    from pipeline.core.device import resolve_device
    from pipeline.train import distributed
    from pipeline.train.fastpath import FastOptions

    spec = params.model(name)
    sweep_outputs(Path(params.paths.runs) / name, recursive=True)  # temporaries a killed run left
    t = params.train
    fast = FastOptions(fast=t.fast, amp=t.amp, channels_last=t.channels_last, cuda_graph=t.cuda_graph,
                       deterministic=t.deterministic)
    if t.num_threads:
        torch.set_num_threads(t.num_threads)
    with distributed.session(resolve_device(t.device)) as dist:
        return _train(params, name, spec, fast, dist)


def _train(params: Params, name: str, spec: ModelSpec, fast: FastOptions, dist: Dist) -> dict[str, Any]:
    """One process's share: every rank trains; rank 0 alone tracks and writes (pipeline/train/distributed.py)."""
    from pipeline.core.atomic import write_json
    from pipeline.core.datasets import holdout_mask, load_faces, sketches_of
    from pipeline.core.inputs import read_parquet
    from pipeline.core.layout import index_path
    from pipeline.core.plots import plot_losses
    from pipeline.core.tracking import MLflowCallback, stage_run
    from pipeline.train.families import FAMILIES
    from pipeline.train.loop import train

    read_parquet(index_path(params.paths.faces), made_by="crop", columns=["face_id"])  # missing or damaged: say so
    faces = load_faces(params.paths.faces)
    held = holdout_mask(faces.ids, params.evaluate.holdout)
    if held.any() and not held.all():  # evaluation's held-out faces (its memorisation check) are never trained on
        faces = faces.subset(~held)
    labels = None
    if spec.conditioning:
        spec, labels, skipped = conditioning_labels(params, name, spec, faces)
        if skipped:
            return skip(params, name, skipped, dist)
    spec = budgeted(params, name, spec, dist)
    sketches = sketches_of(faces.images, spec.sketch) if FAMILIES[spec.family].sketches else None
    data_id = faces.digest if labels is None else f"{faces.digest}:{hashlib.md5(labels.codes.tobytes()).hexdigest()}"
    out = Path(params.paths.runs) / name
    source = init_source(params, name, spec)
    kw = dict(init_from=source, labels=labels, sketches=sketches, seed=params.train.seed, device=params.train.device,
              resume=params.train.resume, data_id=data_id, snapshot_every=params.evaluate.every_epochs, fast=fast, dist=dist,
              on_damaged=params.train.on_damaged, cache_bytes=int(params.train.cache_gb * 1e9))
    if not dist.main:
        return train(faces.images, spec, out, **kw)
    logged = {"model": name, "seed": params.train.seed, "device": params.train.device, "fast": fast.fast,
              "world_size": dist.world, **spec.model_dump()}
    tags = {"model": name, "arch": spec.arch, "family": spec.family, "data_hash": faces.digest,
            **({"init_from": str(source)} if source is not None else {})}
    with stage_run("train", params, logged, tags, run_name=f"train@{name}") as mlflow:
        callbacks = (ProgressBar(name), *((MLflowCallback(mlflow),) if mlflow else ()))
        summary = train(faces.images, spec, out, callbacks=callbacks, **kw)
        plot_losses(out / "losses.csv", out / "losses.png", title=name)
        summary.update(model=name, data_hash=faces.digest,
                       mlflow_run_id=mlflow.active_run().info.run_id if mlflow else None)
        if mlflow:
            mlflow.log_artifact(str(out / "losses.png"))
        write_json(out / "train.json", summary)
    return summary


def init_source(params: Params, name: str, spec: ModelSpec) -> Path | None:
    """The checkpoint ``spec.init_from`` names: another entry of train.models (its run folder's
    checkpoint, which it must have trained) or a path."""
    from pipeline.core.layout import checkpoint_path

    if spec.init_from is None:
        return None
    if spec.init_from == name:
        raise StageError(f"train.models.{name}.init_from is the model itself; name the model (or checkpoint) it starts from")
    if spec.init_from in params.train.models:
        path = checkpoint_path(params.paths.runs, spec.init_from)
        todo = f"train it first: python -m pipeline train {spec.init_from}"
    else:
        path = Path(spec.init_from)
        todo = f"it is neither a checkpoint file nor a model of train.models ({', '.join(sorted(params.train.models))})"
    if not path.is_file():
        raise StageError(f"train.models.{name}.init_from: no checkpoint at {path}; {todo}")
    return path


def budgeted(params: Params, name: str, spec: ModelSpec, dist: Dist) -> ModelSpec:
    """``spec`` with the device's budget (``train.budget``) as its steps, unless the entry sets steps;
    where there is none (a CPU by default) the entry's epochs stand, and the log says how to raise them."""
    import logging

    from pipeline.core.device import resolve_device

    if spec.steps is not None:
        return spec
    device = resolve_device(params.train.device).type
    steps = params.train.budget.steps_for(device, spec.batch_size * dist.world)
    if steps is None:
        if dist.main:
            logging.getLogger(__name__).warning(
                "train@%s: %d epoch(s), a short %s run; for faces raise -S train.models.%s.epochs=N, or set "
                "-S train.budget.%s=<images shown> (a GPU trains train.budget.cuda images by default)",
                name, spec.epochs, device.upper(), name, device)
        return spec
    return spec.model_copy(update={"steps": steps})


NO_LABELS_HINT = "label faces with `boorugan label`, a labels CSV or a labelled folder, or turn on the tagger"


def conditioning_labels(params: Params, name: str, spec: ModelSpec, faces):
    """(spec, labels, skip reason) of a conditional model: it is conditioned on the attributes of its
    ``conditioning`` that some face knows (the others are left out with a warning); when no face
    knows any of them, labels is None and the reason says how to get labels."""
    import logging

    from pipeline.core.datasets import load_labels
    from pipeline.core.inputs import missing_message

    where = (params.paths.labels, params.paths.faces, params.paths.raw)
    known, unknown = [], []
    for attr in spec.conditioning:
        try:
            load_labels(faces, [attr], *where)
        except FileNotFoundError:  # neither labels.parquet nor a raw manifest
            raise StageError(missing_message(params.paths.labels, "labels")) from None
        except ValueError:  # no face knows it, or no label source has the column
            unknown.append(attr)
        else:
            known.append(attr)
    if not known:
        return spec, None, f"no labels for {', '.join(unknown)}: {NO_LABELS_HINT}"
    if unknown:
        logging.getLogger(__name__).warning("train@%s: no face knows %s; conditioning on %s only (%s)",
                                            name, ", ".join(unknown), ", ".join(known), NO_LABELS_HINT)
        spec = spec.model_copy(update={"conditioning": known})
    return spec, load_labels(faces, known, *where), None


def skip(params: Params, name: str, reason: str, dist: Dist) -> dict[str, Any]:
    """A conditional model nobody can condition: not trained, yet the stage succeeds (``dvc repro``
    and the flows go on with the other models) and ``runs/<model>/train.json`` records why, for
    evaluate and the report. Files of an earlier training stay (a resume once labels are back)."""
    import logging

    from pipeline.core.atomic import write_json

    summary = {"model": name, "skipped": reason, "steps": 0, "world_size": dist.world}
    if dist.main:
        logging.getLogger(__name__).warning("train@%s: skipped: %s", name, reason)
        write_json(Path(params.paths.runs) / name / "train.json", summary)
    return summary


class ProgressBar:
    """Trainer callback: a tqdm bar of steps with the latest losses, moved at each log point (the
    trainer reads losses from the device only then, so the bar adds no host sync)."""

    def __init__(self, name: str):
        self.name, self.bar = name, None

    def on_start(self, total_steps: int, done_steps: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total_steps, initial=done_steps, desc=f"train@{self.name}", unit="step")

    def on_log(self, step: int, stats: dict[str, float]) -> None:
        self.bar.update(step - self.bar.n)
        self.bar.set_postfix({k: f"{v:.3g}" for k, v in stats.items() if k.startswith("loss")}, refresh=False)

    def on_epoch_end(self, epoch: int, step: int, grid_path: Path) -> None:
        pass

    def on_end(self, summary: dict[str, Any], checkpoint: Path) -> None:
        self.bar.close()
