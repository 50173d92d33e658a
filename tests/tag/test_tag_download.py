"""The downloader against a real HTTP server on 127.0.0.1 (standard library): progress, resume
after an interrupted transfer, servers without Range support, checksum failure, HTTP errors."""

from __future__ import annotations

import hashlib

import pytest

from pipeline.core.download import ChecksumError, DownloadError, download
from pipeline.core.errors import StageError
from pipeline.params import TagParams
from pipeline.tag import i2v

from fakes.file_server import PAYLOAD, Server


@pytest.fixture
def server():
    s = Server({"w.bin": PAYLOAD})
    yield s
    s.close()


def test_download_with_progress_and_checksum(server, tmp_path):
    seen = []
    out = download(server.url + "w.bin", tmp_path / "w.bin", sha256=hashlib.sha256(PAYLOAD).hexdigest(),
                   progress=lambda done, total: seen.append((done, total)), chunk=64 * 1024)
    assert out.read_bytes() == PAYLOAD and not (tmp_path / "w.bin.part").exists()
    assert seen[0] == (0, len(PAYLOAD)) and seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert len(seen) > 5 and [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_interrupted_transfer_resumes_with_a_range_request(server, tmp_path):
    server.cut_after = 300_000
    seen = []
    out = download(server.url + "w.bin", tmp_path / "w.bin", progress=lambda d, t: seen.append(d), backoff=0, chunk=1 << 14)
    assert out.read_bytes() == PAYLOAD
    first, second = (r for _, r in server.requests)
    resumed_at = int(second.removeprefix("bytes=").rstrip("-"))
    assert first is None and 300_000 - (1 << 14) < resumed_at <= 300_000  # at most one chunk lost
    assert max(seen) == len(PAYLOAD) and resumed_at in seen


def test_a_part_file_left_by_an_earlier_run_is_resumed(server, tmp_path):
    (tmp_path / "w.bin.part").write_bytes(PAYLOAD[:1000])
    download(server.url + "w.bin", tmp_path / "w.bin", progress=lambda d, t: None)
    assert (tmp_path / "w.bin").read_bytes() == PAYLOAD and server.requests == [("/w.bin", "bytes=1000-")]


def test_server_without_range_support_restarts_cleanly(tmp_path):
    s = Server({"w.bin": PAYLOAD}, ranges=False)
    try:
        (tmp_path / "w.bin.part").write_bytes(b"garbage that must not survive")
        download(s.url + "w.bin", tmp_path / "w.bin", progress=lambda d, t: None)
        assert (tmp_path / "w.bin").read_bytes() == PAYLOAD
    finally:
        s.close()


def test_checksum_failure_deletes_the_download(server, tmp_path):
    with pytest.raises(ChecksumError, match="does not match"):
        download(server.url + "w.bin", tmp_path / "w.bin", sha256="0" * 64, progress=lambda d, t: None)
    assert not (tmp_path / "w.bin").exists() and not (tmp_path / "w.bin.part").exists()


def test_http_error_and_unreachable_server(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(server.url + "missing.bin", tmp_path / "m.bin", progress=lambda d, t: None)
    with pytest.raises(DownloadError, match="run again to resume"):
        download("http://127.0.0.1:9/x", tmp_path / "x.bin", retries=0, timeout=2, progress=lambda d, t: None)


def test_weights_are_fetched_into_the_weights_dir_and_offline_says_where(tmp_path, monkeypatch):
    files = {i2v.CAFFEMODEL: b"model bytes", i2v.TAG_LIST: b"tags"}
    s = Server(files)
    try:
        monkeypatch.setattr(i2v, "RELEASE", s.url)
        params = TagParams(weights_dir=str(tmp_path / "w"), checksums={i2v.CAFFEMODEL: hashlib.sha256(b"model bytes").hexdigest()})
        model, tags = i2v.ensure_files(params)
        assert model.read_bytes() == b"model bytes" and tags.read_bytes() == b"tags"
    finally:
        s.close()
    offline = TagParams(weights_dir=str(tmp_path / "none"), download=False)
    with pytest.raises(StageError) as e:
        i2v.ensure_files(offline)
    msg = str(e.value)
    assert f"{i2v.RELEASE}{i2v.CAFFEMODEL}" in msg and f"{i2v.RELEASE}{i2v.TAG_LIST}" in msg and str(tmp_path / "none") in msg
