"""Posts scraped from a Danbooru-compatible server label their faces with their own tags, so a
conditional model trains on the default source with no tagger and no manual labels."""

from __future__ import annotations

import pandas as pd

from conftest import ROOT, tiny_overrides
from fakes.danbooru_server import FAST, DanbooruServer, make_posts


def test_conditional_model_trains_on_danbooru_tags(tmp_path):
    from pipeline.crop.stage import run_crop
    from pipeline.evaluate.stage import run_evaluate
    from pipeline.labels.stage import run_labels
    from pipeline.params import load_params
    from pipeline.scrape.stage import run_scrape
    from pipeline.tag.stage import run_tag
    from pipeline.train.stage import run_train

    posts = make_posts(40, size=32)
    with DanbooruServer(posts) as server:
        params = load_params(ROOT / "params.yaml", [
            *tiny_overrides(tmp_path), *FAST, f"scrape.danbooru.base_url={server.url}", "tracking.enabled=false",
            "train.enabled=[dcgan_tags]", "train.models.dcgan_tags.steps=2", "train.models.dcgan_tags.batch_size=16",
            "train.models.dcgan_tags.net={nz: 16, ngf: 8, ndf: 8}"])
        run_scrape(params)
    run_crop(params)
    run_tag(params)  # tag.enabled is false: an empty table
    result = run_labels(params)
    table = pd.read_parquet(params.paths.labels).set_index("face_id")
    index = pd.read_parquet(tmp_path / "data" / "faces" / "index.parquet")
    tags = {p["md5"]: set(p["tag_string_general"].split()) for p in posts}
    for fid, md5 in zip(index["face_id"], index["md5"]):
        colours = [t.removesuffix("_hair") for t in tags[md5] & {"blonde_hair", "black_hair"}]
        assert table.loc[fid, "hair_color"] == (colours[0] if len(colours) == 1 else "unknown")
        assert table.loc[fid, "smile"] == ("yes" if "smile" in tags[md5] else "no")
    assert result.danbooru_faces == len(index) == 40
    assert set(table["source_hair_color"]) <= {"danbooru", "none"} and "danbooru" in set(table["source_hair_color"])

    summary = run_train(params, "dcgan_tags")
    assert summary["steps"] == 2
    assert "ssl_fd" in run_evaluate(params, "dcgan_tags")
