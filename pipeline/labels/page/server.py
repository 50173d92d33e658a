"""The labelling page's HTTP API (FastAPI, served by uvicorn on 127.0.0.1 by default).

Nothing in a request becomes a file path: images are looked up by face id in the crop index
(an unknown id is a 404), the page's three static files are served from a fixed table, and every
value is checked against ``tag.vocabulary`` before ``labels.manual`` is rewritten.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path

from pipeline.core.errors import StageError
from pipeline.core.localweb import LOOPBACK, bind, local_app, url_of

log = logging.getLogger(__name__)
IMAGE_TYPES = {".png": "image/png", ".webp": "image/webp", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def create_app(params):
    """The app for ``params`` (paths.faces, paths.tags, labels.*, label.*); reads the index once."""
    import pandas as pd
    from fastapi import Body, HTTPException, Query
    from fastapi.responses import FileResponse, Response

    from pipeline.core.inputs import read_parquet
    from pipeline.core.layout import INDEX, MANIFEST
    from pipeline.labels.page.faces import FILTERS, face_view, load_predictions, matches
    from pipeline.labels.page.store import LabelValueError, ManualStore, allowed_values
    from pipeline.labels.stage import danbooru_labels, folder_labels

    faces_dir = Path(params.paths.faces).resolve()
    index_path = faces_dir / INDEX
    index = read_parquet(index_path, made_by="crop")  # missing or damaged: names the stage to run, as every stage does
    manifest_path = Path(params.paths.raw) / MANIFEST
    manifest = pd.read_parquet(manifest_path) if manifest_path.is_file() else None
    vocab, lp, ui = params.tag.vocabulary, params.labels, params.label
    store = ManualStore(lp.manual, vocab, index, manifest)
    store.read()  # a broken manual.csv stops the server at start, with its line numbers
    # a face cropped with crop.pngs off has no file (path ""): its image is drawn from the packed store
    images = {str(f): faces_dir / Path(str(p)).name if p else None for f, p in zip(index["face_id"], index["path"])}
    rows = dict(zip(index["face_id"].astype(str), index["row"])) if "row" in index else {}
    predictions = load_predictions(params.paths.tags, vocab, lp.threshold)
    booru = danbooru_labels(index, manifest, vocab) if "danbooru" in lp.precedence else {}
    folder = folder_labels(index, manifest, vocab) if "folder" in lp.precedence else {}  # bad ones stop it here
    app = local_app("boorugan labelling", ui.host, "pipeline.labels.page", "label")

    def view(fid: str, manual: dict) -> dict:
        return face_view(fid, manual.get(fid, {}), predictions.get(fid), vocab, lp, ui.low_confidence, booru.get(fid),
                         folder.get(fid))

    def counts(manual: dict) -> dict:
        return {"faces": len(images), "labelled": sum(1 for f in manual if f in images and manual[f]),
                "tagged": sum(1 for f in images if f in predictions)}

    def manual_or_500() -> dict:
        try:
            return store.read()
        except StageError as e:
            raise HTTPException(500, f"{lp.manual} cannot be read; fix it and reload: {e}") from None

    @app.get("/api/vocabulary")
    def vocabulary():
        return {"attributes": allowed_values(vocab), "groups": list(vocab.groups), "binary": list(vocab.binary),
                "tags": {a: (vs if isinstance(vs, str) else dict(vs)) for a, vs in {**vocab.groups, **vocab.binary}.items()},
                "filters": FILTERS, "page_size": ui.page_size, "manual_path": str(lp.manual),
                "tagged": bool(predictions)}

    position = {f: i for i, f in enumerate(images)}

    def anchor(fid: str, name: str) -> int:
        if fid not in position:
            raise HTTPException(404, f"{name}: no face {fid!r} in {index_path}")
        return position[fid]

    @app.get("/api/faces")
    def faces(filter: str = "all", attr: str | None = None, value: str | None = None,
              offset: int = Query(0, ge=0), limit: int = Query(ui.page_size, ge=1, le=1000),
              start: str | None = None, after: str | None = None, before: str | None = None):
        """One page of the faces that match, in index order. ``start``/``after``/``before`` (face
        ids) anchor the page on a face instead of ``offset``, so labelling faces out of a filter
        (say "unlabelled") does not make the next page skip the ones that moved up."""
        if filter not in FILTERS:
            raise HTTPException(422, f"unknown filter {filter!r}; one of {list(FILTERS)}")
        allowed = allowed_values(vocab)
        if attr and attr not in allowed:
            raise HTTPException(422, f"unknown attribute {attr!r}; one of {list(allowed)}")
        if attr and value not in (None, "", "unknown", *allowed[attr]):
            raise HTTPException(422, f"{attr}: {value!r} is not in the vocabulary; allowed: {allowed[attr] + ['unknown']}")
        manual = manual_or_500()
        chosen = [v for v in (view(f, manual) for f in images) if matches(v, filter, attr, value)]
        if before is not None:
            pos = anchor(before, "before")
            offset = max(0, sum(position[v["face_id"]] < pos for v in chosen) - limit)
        elif after is not None or start is not None:
            pos = anchor(after, "after") + 1 if after is not None else anchor(start, "start")
            offset = sum(position[v["face_id"]] < pos for v in chosen)
        return {"total": len(chosen), "offset": offset, "items": chosen[offset:offset + limit], "counts": counts(manual)}

    @app.get("/api/faces/{face_id}")
    def face(face_id: str):
        if face_id not in images:
            raise HTTPException(404, f"no face {face_id!r} in {index_path}")
        return view(face_id, manual_or_500())

    @app.get("/api/faces/{face_id}/image")
    def image(face_id: str):
        if face_id not in images:
            raise HTTPException(404, f"no face {face_id!r} in {index_path}")
        path = images[face_id]
        if path is None:
            return Response(store_png(faces_dir, int(rows[face_id])), media_type="image/png",
                            headers={"Cache-Control": "max-age=3600"})
        if not path.is_file():
            raise HTTPException(410, f"face {face_id!r} is in the index but {path.name} is gone: run the crop stage again")
        return FileResponse(path, media_type=IMAGE_TYPES.get(path.suffix.lower(), "application/octet-stream"),
                            headers={"Cache-Control": "max-age=3600"})

    @app.put("/api/faces/{face_id}")
    def save(face_id: str, body: dict = Body(...)):
        if face_id not in images:
            raise HTTPException(404, f"no face {face_id!r} in {index_path}; only indexed faces can be labelled")
        try:
            store.update(face_id, body.get("values"))
        except LabelValueError as e:
            raise HTTPException(422, str(e)) from None
        except StageError as e:
            raise HTTPException(409, str(e)) from None
        manual = store.read()
        return {"face": view(face_id, manual), "counts": counts(manual)}

    return app


def make_server(params, sock: socket.socket):
    """A uvicorn server for the app (run with ``server.run(sockets=[sock])``)."""
    import uvicorn

    return uvicorn.Server(uvicorn.Config(create_app(params), log_level="warning", access_log=False,
                                         lifespan="off"))


def run_label(params) -> None:
    """``boorugan label``: serve the page until Ctrl-C."""
    ui = params.label
    if ui.host not in LOOPBACK:
        log.warning("label: listening on %s: anyone who can reach it can read the faces and change %s",
                    ui.host, params.labels.manual)
    sock = bind(ui.host, ui.port, "label.port")
    server = make_server(params, sock)
    print(f"label: open {url_of(sock)} (saving to {params.labels.manual}; Ctrl-C stops)", flush=True)
    server.run(sockets=[sock])


def store_png(faces_dir: Path, row: int) -> bytes:
    """One face of the packed store (pipeline/core/facestore.py) as PNG bytes."""
    import io

    from PIL import Image

    from pipeline.core.facestore import committed_store, open_store

    buf = io.BytesIO()
    Image.fromarray(open_store(*committed_store(faces_dir))[row]).save(buf, format="PNG")
    return buf.getvalue()
