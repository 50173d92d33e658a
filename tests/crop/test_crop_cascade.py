"""The lbpcascade loader: download from a real HTTP server on 127.0.0.1, sha256 check, cache,
local file, and the failed-download message that says where to put the file."""

import hashlib
import http.server
import json
import socket
import threading
from pathlib import Path

import pytest

from pipeline.core.errors import StageError
from pipeline.crop.cascade import cached_cascade, ensure_cascade

BODY = b'<?xml version="1.0"?>\n<opencv_storage><!-- not a real cascade, just bytes to serve --></opencv_storage>\n' * 50
SHA = hashlib.sha256(BODY).hexdigest()


@pytest.fixture
def server():
    """A real HTTP server: /cascade.xml serves BODY, anything else is 404; requests are counted."""
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            hits.append(self.path)
            if self.path != "/cascade.xml":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    httpd.shutdown()
    httpd.server_close()


def test_downloads_verifies_and_caches(server, tmp_path):
    base, hits = server
    path = ensure_cascade(f"{base}/cascade.xml", SHA, cache=tmp_path)
    assert path == cached_cascade(tmp_path) and path.read_bytes() == BODY
    assert ensure_cascade(f"{base}/cascade.xml", SHA, cache=tmp_path) == path
    assert hits == ["/cascade.xml"]  # the second call used the cache
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary files left


def test_a_damaged_cached_copy_is_downloaded_again(server, tmp_path):
    base, hits = server
    dest = cached_cascade(tmp_path)
    dest.parent.mkdir(parents=True)
    dest.write_bytes(BODY[:100])
    assert ensure_cascade(f"{base}/cascade.xml", SHA, cache=tmp_path).read_bytes() == BODY
    assert len(hits) == 1


def test_wrong_checksum_is_refused_and_nothing_is_cached(server, tmp_path):
    base, _ = server
    with pytest.raises(StageError, match="sha256") as e:
        ensure_cascade(f"{base}/cascade.xml", "0" * 64, cache=tmp_path)
    assert str(cached_cascade(tmp_path)) in str(e.value)
    assert not list(cached_cascade(tmp_path).parent.iterdir())


def test_http_error_says_where_to_put_the_file(server, tmp_path):
    base, _ = server
    with pytest.raises(StageError) as e:
        ensure_cascade(f"{base}/missing.xml", SHA, cache=tmp_path)
    msg = str(e.value)
    assert "404" in msg and str(cached_cascade(tmp_path)) in msg and "crop.cascade_file" in msg and SHA in msg
    assert not cached_cascade(tmp_path).exists()


def test_offline_says_where_to_put_the_file(tmp_path):
    with socket.socket() as s:  # a port nobody listens on: connection refused, as offline
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(StageError, match="Offline") as e:
        ensure_cascade(f"http://127.0.0.1:{port}/cascade.xml", SHA, cache=tmp_path, timeout=5)
    assert str(cached_cascade(tmp_path)) in str(e.value)


def test_a_local_file_is_used_as_is_without_network(tmp_path):
    local = tmp_path / "mine.xml"
    local.write_bytes(b"<opencv_storage/>")
    assert ensure_cascade("http://127.0.0.1:9/never", SHA, local=local, cache=tmp_path) == local
    with pytest.raises(StageError, match="does not exist"):
        ensure_cascade("http://127.0.0.1:9/never", SHA, local=tmp_path / "absent.xml", cache=tmp_path)


def test_lbpcascade_rejects_a_file_opencv_cannot_load(tmp_path):
    from pipeline.crop.detectors import lbpcascade_detector

    bad = tmp_path / "bad.xml"
    bad.write_text("not xml")
    with pytest.raises(StageError, match="could not load"):
        lbpcascade_detector(bad)


@pytest.mark.shared_data
def test_real_cascade_from_a_local_file_finds_the_face(shared_data):
    """The pinned sha256 is the real file's, and the detector finds the verified box."""
    from PIL import Image

    from pipeline.crop.detectors import Box, get_detector, iou
    from pipeline.params import CropParams

    xml = shared_data / "cascade" / "lbpcascade_animeface.xml"
    assert hashlib.sha256(xml.read_bytes()).hexdigest() == CropParams().cascade_sha256
    path = ensure_cascade("http://127.0.0.1:9/never", CropParams().cascade_sha256, local=xml)
    truth = json.loads((shared_data / "illustrations" / "face_boxes.json").read_text())["images"]
    detect = get_detector("lbpcascade", None, path)
    for name in ("getchu_yuheng_00001.jpg", "grapeot_204032.jpg"):
        with Image.open(shared_data / "illustrations" / name) as im:
            boxes = detect(im.convert("RGB"))
        (gt,) = truth[name]["verified_face_boxes"]
        assert max(iou(b, Box(*gt)) for b in boxes) >= 0.3, name


def test_pinned_url_is_a_commit_not_a_branch():
    from pipeline.params import CropParams

    url = CropParams().cascade_url
    assert Path(url).name == "lbpcascade_animeface.xml" and "/master/" not in url
