"""The labelling page's API against a real uvicorn server on 127.0.0.1: only indexed faces, no
path from a request reaching the disk, values checked against the vocabulary, and saves from two
clients at once both kept in labels/manual.csv (read back with the labels stage's own reader)."""

from __future__ import annotations

import http.client
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import pytest
import requests

from pipeline.labels.manual import manual_csv, read_manual
from pipeline.params import Params

from conftest import ROOT
from fakes.label_world import face_ids, label_server, toy_params


@pytest.fixture
def world(tmp_path):
    params = toy_params(tmp_path)
    return params, face_ids(params)


def manual(params) -> dict[str, dict[str, str]]:
    index = pd.read_parquet(Path(params.paths.faces) / "index.parquet")
    return {f: label.values for f, label in read_manual(params.labels.manual, params.tag.vocabulary, index).items()}


def raw_get(url: str, path: str) -> tuple[int, bytes]:
    """GET ``path`` exactly as written (no client-side normalisation of ../ or %2F)."""
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, body


def test_manual_csv_round_trips_through_the_stage_reader(world):
    params, ids = world
    rows = {ids[0]: {"hair_color": "blonde", "smile": "no"}, ids[1]: {"eye_color": "aqua", "hair_style": "twin_tail"},
            ids[2]: {}}
    text = manual_csv(rows, params.tag.vocabulary)
    assert text.splitlines()[0] == "face_id,hair_color,hair_style,eye_color,blush,smile,open_mouth,hat,ribbon,glasses"
    assert len(text.splitlines()) == 3  # a face without values is left out
    path = Path(params.labels.manual)
    path.parent.mkdir(parents=True)
    path.write_text(text)
    assert manual(params) == {ids[0]: rows[ids[0]], ids[1]: rows[ids[1]]}
    with pytest.raises(ValueError, match="hair_colour"):
        manual_csv({ids[0]: {"hair_colour": "red"}}, params.tag.vocabulary)


def test_unknown_face_ids_are_refused(world):
    params, ids = world
    with label_server(params) as url:
        for method, path in [("GET", "api/faces/nope"), ("GET", "api/faces/nope/image"), ("PUT", "api/faces/nope"),
                             ("GET", "api/faces/index.parquet/image")]:  # a file in faces/, not a face id
            r = requests.request(method, url + path, json={"values": {"hair_color": "red"}}, timeout=10)
            assert r.status_code == 404, (path, r.text)
            assert "no face" in r.json()["error"]
        ok = requests.get(f"{url}api/faces/{ids[0]}/image", timeout=10)
        assert ok.status_code == 200 and ok.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert not Path(params.labels.manual).exists()


def test_path_traversal_never_reaches_the_disk(world):
    params, ids = world
    secret = (ROOT / "params.yaml").read_bytes()[:40]
    faces = Path(params.paths.faces)
    attempts = ["/api/faces/../../../etc/passwd/image", "/api/faces/..%2F..%2F..%2Fetc%2Fpasswd/image",
                "/api/faces/%2e%2e%2f%2e%2e%2fparams.yaml/image", "/../params.yaml", "/app.js/../../params.yaml",
                "/%2e%2e/%2e%2e/params.yaml", f"/api/faces/{ids[0]}/..%2f..%2findex.parquet",
                f"/api/faces/{faces}%2Findex.parquet/image", "/static/../pipeline/cli.py", "/app.py", "/server.py"]
    with label_server(params) as url:
        for path in attempts:
            status, body = raw_get(url, path)
            assert status in (400, 404, 405), (path, status)
            assert b"/bin/" not in body and secret not in body and b"PAR1" not in body, path
        r = requests.get(f"{url}api/faces/{ids[0]}/image", headers={"Host": "rebound.example:80"}, timeout=10)
        assert r.status_code == 400  # loopback-only: another Host header (DNS rebinding) is refused


def test_values_outside_the_vocabulary_are_refused_with_what_is_allowed(world):
    params, ids = world
    with label_server(params) as url:
        ok = requests.put(f"{url}api/faces/{ids[0]}", json={"values": {"hair_color": "blonde"}}, timeout=10)
        assert ok.status_code == 200 and ok.json()["face"]["attrs"]["hair_color"]["source"] == "manual"
        before = Path(params.labels.manual).read_bytes()
        for values, words in [({"hair_color": "plaid"}, ["'plaid' is not in the vocabulary", "blonde", "grey"]),
                              ({"hair_colour": "red"}, ["unknown attribute 'hair_colour'", "hair_color"]),
                              ({"smile": "maybe"}, ["'maybe' is not in the vocabulary", "yes", "no"]),
                              ({"hair_color": 3}, ["3 is not in the vocabulary"]), ({}, ["at least one attribute"])]:
            r = requests.put(f"{url}api/faces/{ids[0]}", json={"values": values}, timeout=10)
            assert r.status_code == 422, (values, r.text)
            assert all(w in r.json()["error"] for w in words), r.json()["error"]
        r = requests.get(f"{url}api/faces", params={"attr": "hair_color", "value": "plaid"}, timeout=10)
        assert r.status_code == 422 and "plaid" in r.json()["error"]
        assert Path(params.labels.manual).read_bytes() == before
        # clearing a value ("unknown") removes it; a face with no values leaves the file
        r = requests.put(f"{url}api/faces/{ids[0]}", json={"values": {"hair_color": "unknown"}}, timeout=10)
        assert r.status_code == 200 and r.json()["counts"]["labelled"] == 0
    assert manual(params) == {}


def test_concurrent_saves_from_two_clients_both_survive(world):
    params, ids = world
    colours = ["blonde", "brown", "black", "blue", "pink", "purple"]
    errors: list[str] = []
    with label_server(params) as url:
        start = threading.Barrier(2)

        def client(attr: str, values: list[str]) -> None:
            s = requests.Session()
            start.wait()
            for i, face in enumerate(ids):  # both clients write every face, each its own attribute
                r = s.put(f"{url}api/faces/{face}", json={"values": {attr: values[i % len(values)]}}, timeout=20)
                if r.status_code != 200:
                    errors.append(r.text)

        threads = [threading.Thread(target=client, args=("hair_color", colours)),
                   threading.Thread(target=client, args=("smile", ["yes", "no"]))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors
        counts = requests.get(f"{url}api/faces", timeout=10).json()["counts"]
    assert counts["labelled"] == len(ids)
    assert manual(params) == {f: {"hair_color": colours[i % 6], "smile": ["yes", "no"][i % 2]} for i, f in enumerate(ids)}
    assert not list(Path(params.labels.manual).parent.glob("*.tmp"))


def test_a_broken_manual_file_is_never_overwritten(world):
    params, ids = world
    with label_server(params) as url:
        path = Path(params.labels.manual)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("face_id,hair_color\nsomeone_else,blonde\n")  # edited by hand while the server runs
        r = requests.put(f"{url}api/faces/{ids[0]}", json={"values": {"hair_color": "red"}}, timeout=10)
        assert r.status_code == 409 and "unknown face_id 'someone_else'" in r.json()["error"]
        assert path.read_text() == "face_id,hair_color\nsomeone_else,blonde\n"


def test_filters_use_the_tagger_and_the_stage_rules(world):
    from pipeline.core.layout import PROB_PREFIX
    from pipeline.tag.stage import empty_table

    params, ids = world
    vocab = params.tag.vocabulary
    probs = {t: 0.01 for t in vocab.tags()}
    rows = [{**{PROB_PREFIX + t: p for t, p in probs.items()}, PROB_PREFIX + "blonde hair": 0.95, PROB_PREFIX + "long hair": 0.9,
             PROB_PREFIX + "blue eyes": 0.9},  # confident
            {**{PROB_PREFIX + t: p for t, p in probs.items()}, PROB_PREFIX + "pink hair": 0.4, PROB_PREFIX + "short hair": 0.9,
             PROB_PREFIX + "red eyes": 0.9, PROB_PREFIX + "smile": 0.5}]  # unsure of hair colour and smile
    table = empty_table(params.tag)
    extra = pd.DataFrame([{"face_id": f, **r} for f, r in zip(ids[:2], rows)])
    pd.concat([table, extra], ignore_index=True).to_parquet(params.paths.tags)
    with label_server(params) as url:
        def listed(**q):
            return [f["face_id"] for f in requests.get(f"{url}api/faces", params={"limit": 100, **q}, timeout=10).json()["items"]]

        first = requests.get(f"{url}api/faces/{ids[0]}", timeout=10).json()["attrs"]
        assert first["hair_color"] == {"value": "blonde", "source": "i2v", "manual": None, "i2v": "blonde", "p": 0.95,
                                       "conflict": False}
        assert listed(filter="low_confidence") == [ids[1]]
        assert listed(attr="hair_color", value="blonde") == [ids[0]]
        assert listed(attr="hair_color", value="pink") == [ids[1]]
        requests.put(f"{url}api/faces/{ids[0]}", json={"values": {"hair_color": "red"}}, timeout=10)  # against p=0.95
        requests.put(f"{url}api/faces/{ids[1]}", json={"values": {"hair_color": "pink"}}, timeout=10)
        assert listed(filter="conflicts") == [ids[0]]
        assert listed(filter="labelled") == ids[:2]
        assert listed(filter="unlabelled") == ids[2:]
        page = requests.get(f"{url}api/faces", params={"filter": "unlabelled", "offset": 8}, timeout=10).json()
        assert page["total"] == len(ids) - 2 and [f["face_id"] for f in page["items"]] == ids[10:]  # page_size 8
        assert requests.get(f"{url}api/faces", params={"filter": "nope"}, timeout=10).status_code == 422


def test_pages_are_anchored_on_faces_so_labelling_skips_nothing(world):
    params, ids = world  # 12 faces, page_size 8
    with label_server(params) as url:
        def page(**q):
            r = requests.get(f"{url}api/faces", params=q, timeout=10).json()
            return r["offset"], [f["face_id"] for f in r["items"]]

        assert page(start=ids[3]) == (3, ids[3:11])
        assert page(before=ids[9]) == (1, ids[1:9])
        for f in ids[:8]:  # label the whole first page of "unlabelled"
            assert requests.put(f"{url}api/faces/{f}", json={"values": {"hat": "no"}}, timeout=10).ok
        assert page(filter="unlabelled", offset=8) == (8, [])  # what plain offsets would show
        assert page(filter="unlabelled", after=ids[7]) == (0, ids[8:])
        assert page(filter="labelled", before=ids[8]) == (0, ids[:8])
        r = requests.get(f"{url}api/faces", params={"after": "../../etc/passwd"}, timeout=10)
        assert r.status_code == 404 and "no face" in r.json()["error"]


def test_cli_binds_loopback_by_default_and_prints_the_url(world, tmp_path):
    params, ids = world
    assert Params().label.host == "127.0.0.1"
    args = [f"{k}={v}" for k, v in [("paths.faces", params.paths.faces), ("paths.raw", params.paths.raw),
                                    ("paths.tags", params.paths.tags), ("labels.manual", params.labels.manual)]]
    cmd = [sys.executable, "-m", "pipeline", "label", "-S", "label.port=0", "-S", "tracking.enabled=false"]
    proc = subprocess.Popen(cmd + [a for s in args for a in ("-S", s)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("label: open http://127.0.0.1:"), line
        url = line.split()[2]
        page = requests.get(url, timeout=10)
        assert page.status_code == 200 and "app.js" in page.text
        assert requests.get(url + "app.js", timeout=10).headers["content-type"].startswith("text/javascript")
    finally:
        proc.terminate()
        proc.wait(10)


def test_faces_cropped_without_files_are_served_from_the_packed_store(tmp_path):
    """crop.pngs off: the page draws each face from faces.u8, the same pixels a PNG would hold."""
    import io

    import numpy as np
    from PIL import Image

    from pipeline.core.datasets import load_faces

    params = toy_params(tmp_path, count=6, extra=["crop.pngs=false"])
    assert not list(Path(params.paths.faces).glob("*.png"))
    faces = load_faces(params.paths.faces)
    with label_server(params) as url:
        for k in (0, 5):
            r = requests.get(f"{url}api/faces/{faces.ids[k]}/image", timeout=10)
            assert r.status_code == 200 and r.headers["content-type"] == "image/png"
            np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB")), faces.images[k])
        assert requests.get(f"{url}api/faces/nope/image", timeout=10).status_code == 404
