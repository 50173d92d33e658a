"""Toy faces and a real labelling server on 127.0.0.1 for the labelling-page tests."""

from __future__ import annotations

from pathlib import Path

from conftest import ROOT, tiny_overrides


def toy_params(root: Path, count: int = 12, extra: list[str] | None = None):
    """Params over toy faces under ``root`` (scraped and cropped here), manual labels in root/labels."""
    from pipeline.crop.stage import crop
    from pipeline.params import load_params
    from pipeline.scrape.stage import scrape

    params = load_params(ROOT / "params.yaml", tiny_overrides(root) + [
        f"scrape.toy.count={count}", f"labels.manual={root}/labels/manual.csv", "tracking.enabled=false",
        "label.page_size=8", *(extra or [])])
    scrape(params.scrape, params.paths.raw)
    crop(params.crop, params.paths.raw, params.paths.faces)
    return params


def face_ids(params) -> list[str]:
    import pandas as pd

    return [str(f) for f in pd.read_parquet(Path(params.paths.faces) / "index.parquet")["face_id"]]


def label_server(params):
    """The real uvicorn server of ``boorugan label`` on a free port, in a thread; yields its URL."""
    from pipeline.labels.page.server import make_server

    from fakes.local_server import serving

    return serving(lambda sock: make_server(params, sock), "labelling")
