"""``boorugan play``: a local page over every trained model (FastAPI, served by uvicorn on 127.0.0.1).

Nothing in a request becomes a file path: a model is named, looked up among the checkpoints found
under ``paths.runs`` (pipeline/play/models.py) and refused otherwise; the page's static files come
from a fixed table; every number is range-checked and every attribute value checked against the
model's own vocabulary before anything is drawn (a 422 that says what is allowed).
"""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.core.errors import StageError
from pipeline.core.localweb import LOOPBACK, bind, local_app, url_of

log = logging.getLogger(__name__)
ModelName = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$", description="a model found under paths.runs")
Seed = Field(0, ge=0, le=2**31 - 1)


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GenerateRequest(Request):
    model: str = ModelName
    seed: int = Seed
    count: int = Field(16, ge=1, le=256)
    attributes: dict[str, str] = Field(default_factory=dict, description='attribute -> a value or "random"')


class CompareRequest(Request):
    models: list[str] = Field(min_length=1, max_length=8)
    seed: int = Seed
    count: int = Field(8, ge=1, le=64)
    attributes: dict[str, str] = Field(default_factory=dict)


class Face(Request):
    seed: int = Seed
    index: int = Field(0, ge=0, le=255)
    count: int = Field(1, ge=1, le=256)


class WalkRequest(Request):
    model: str = ModelName
    mode: Literal["lerp", "slerp", "near"] = "slerp"
    start: Face = Field(default_factory=Face)
    end: Face = Field(default_factory=lambda: Face(seed=1))
    steps: int = Field(8, ge=2, le=64, description="faces in the strip")
    strength: float = Field(0.3, gt=0, le=3, description="near: how far the latent moves (std of the noise added)")
    variation_seed: int = Seed
    attributes: dict[str, str] = Field(default_factory=dict)


class SketchRequest(Request):
    model: str = ModelName
    image: str = Field(max_length=6_000_000, description="data:image/png;base64,... of a drawing")


def create_app(params, models=None):
    """The app over ``params.paths.runs`` (``models``: a ready ``Models``, for tests)."""
    from fastapi import HTTPException
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    from pipeline.play.models import Models, PlayError, UnknownModel
    from pipeline.play.png import data_url, decode_data_url, file_name, png_bytes, sample_command, tags_of
    from pipeline.play.runs import RunInfo

    ui = params.play
    models = models or Models(params.paths.runs, ui.device, ui.max_models)
    runs = RunInfo(params)
    app = local_app("boorugan play", ui.host, "pipeline.play", "play")

    def guarded(fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UnknownModel as e:
            raise HTTPException(404, str(e)) from None
        except PlayError as e:
            raise HTTPException(422, str(e)) from None
        except StageError as e:  # a checkpoint that does not fit the models/ code
            raise HTTPException(409, str(e)) from None

    def faces_json(drawn, seed: int | None, what: str, text: dict) -> list[dict]:
        out = []
        for i, (face, asked) in enumerate(zip(drawn.faces, drawn.requested)):
            meta = {**text, "index": i, "attributes": tags_of(asked)}
            out.append({"index": i, "requested": asked, "filename": file_name(drawn.model, drawn.step, seed, asked, f"{what}{i}"),
                        "png": data_url(png_bytes(face, meta))})
        return out

    def grid_json(drawn, seed: int, count: int, fixed: dict[str, str]) -> dict:
        from pipeline.core.images import grid

        command = sample_command(drawn.model, seed, count, fixed)
        text = {"model": drawn.model, "checkpoint_step": drawn.step, "seed": seed, "count": count,
                "tags": tags_of(fixed), "command": command, "software": "boorugan play"}
        return {"model": drawn.model, "step": drawn.step, "seed": seed, "count": count, "attributes": fixed,
                "command": command, "faces": faces_json(drawn, seed, "face", text),
                "grid": {"filename": file_name(drawn.model, drawn.step, seed, fixed, f"grid{count}"),
                         "png": data_url(png_bytes(grid(drawn.faces), text))}}

    def strip_json(drawn, what: str, text: dict) -> dict:
        from pipeline.core.images import grid

        text = {"model": drawn.model, "checkpoint_step": drawn.step, **text, "software": "boorugan play"}
        return {"model": drawn.model, "step": drawn.step, "faces": faces_json(drawn, None, what, text),
                "strip": {"filename": file_name(drawn.model, drawn.step, None, None, what + "_" + "_".join(
                    f"{k}{v}" for k, v in text.items() if k in ("mode", "from", "to", "strength"))),
                    "png": data_url(png_bytes(grid(drawn.faces, nrow=len(drawn.faces)), text))}}

    @app.get("/api/models")
    def list_models():
        return {"models": models.all_infos(), "runs": str(params.paths.runs), "device": str(models.device)}

    @app.get("/api/models/{name}/run")
    def model_run(name: str):
        info = guarded(models.info, name)
        return runs.describe(info.get("mlflow_run_id"))

    @app.post("/api/generate")
    def generate(req: GenerateRequest):
        drawn = guarded(models.grid, req.model, req.seed, req.count, req.attributes)
        return grid_json(drawn, req.seed, req.count, drawn.extra["fixed"])

    @app.post("/api/compare")
    def side_by_side(req: CompareRequest):
        """The same seed across models; an attribute applies to the models conditioned on it."""
        infos = [guarded(models.info, n) for n in dict.fromkeys(req.models)]
        noise = [i for i in infos if not i["sketch"]]
        if not noise:
            raise HTTPException(422, "pick at least one model that draws from noise (sketch models have their own panel)")
        known = {a for i in noise for a in i["vocab"]}
        stray = sorted(a for a, v in req.attributes.items() if v not in ("", "random") and a not in known)
        if stray:
            raise HTTPException(422, f"no chosen model is conditioned on {', '.join(stray)}; their attributes: "
                                f"{', '.join(sorted(known)) or 'none'}")
        columns = []
        for i in noise:
            mine = {a: v for a, v in req.attributes.items() if a in i["vocab"]}
            drawn = guarded(models.grid, i["name"], req.seed, req.count, mine)
            columns.append(grid_json(drawn, req.seed, req.count, drawn.extra["fixed"]))
        return {"seed": req.seed, "count": req.count, "columns": columns,
                "left_out": [i["name"] for i in infos if i["sketch"]]}

    @app.post("/api/walk")
    def walk(req: WalkRequest):
        start, end = (req.start.seed, req.start.index, req.start.count), (req.end.seed, req.end.index, req.end.count)
        if req.mode == "near":
            drawn = guarded(models.near, req.model, start, req.steps, req.strength, req.variation_seed, req.attributes)
            text = {"mode": "near", "from": f"seed{start[0]}-face{start[1]}of{start[2]}", "strength": req.strength,
                    "variation_seed": req.variation_seed}
        else:
            drawn = guarded(models.walk, req.model, start, end, req.steps, req.mode, req.attributes)
            text = {"mode": req.mode, "from": f"seed{start[0]}-face{start[1]}of{start[2]}",
                    "to": f"seed{end[0]}-face{end[1]}of{end[2]}"}
        text["tags"] = tags_of(drawn.requested[0]) if drawn.requested else ""
        return {"mode": req.mode, "steps": req.steps, **strip_json(drawn, "walk" if req.mode != "near" else "near", text)}

    @app.post("/api/sketch")
    def sketch(req: SketchRequest):
        try:
            picture = decode_data_url(req.image)
        except ValueError as e:
            raise HTTPException(422, str(e)) from None
        grey, ink, drawn = guarded(models.sketch, req.model, picture)
        text = {"model": drawn.model, "checkpoint_step": drawn.step, "input": "sketch", "software": "boorugan play",
                "command": f"python -m pipeline sample {drawn.model} --sketch <this sketch>"}
        return {"model": drawn.model, "step": drawn.step, "ink": round(ink, 4),
                "sketch": data_url(png_bytes(grey, {**text, "what": "the sketch as the model saw it"})),
                "face": {"filename": file_name(drawn.model, drawn.step, None, None, "from_sketch"),
                         "png": data_url(png_bytes(drawn.faces[0], text))}}

    @app.exception_handler(RequestValidationError)
    def _invalid(request, exc: RequestValidationError):
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"] if p != "body") or "body"
            parts.append(f"{where}: {err['msg']}")
        return JSONResponse({"error": "; ".join(parts)}, status_code=422)

    return app


def make_server(params, models=None):
    """A uvicorn server for the app (run with ``server.run(sockets=[sock])``)."""
    import uvicorn

    return uvicorn.Server(uvicorn.Config(create_app(params, models), log_level="warning", access_log=False,
                                         lifespan="off"))


def run_play(params) -> None:
    """``boorugan play``: serve the page until Ctrl-C."""
    ui = params.play
    if ui.host not in LOOPBACK:
        log.warning("play: listening on %s: anyone who can reach it can draw from the models in %s", ui.host, params.paths.runs)
    sock = bind(ui.host, ui.port, "play.port")
    server = make_server(params)
    print(f"play: open {url_of(sock)} (models in {params.paths.runs}; Ctrl-C stops)", flush=True)
    server.run(sockets=[sock])
