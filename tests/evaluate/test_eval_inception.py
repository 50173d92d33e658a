"""Inception metrics: the weights fetcher against a real HTTP server on 127.0.0.1, the feature path
on randomly initialised Inception weights made here (no real weights are ever downloaded), and
the unavailable path."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from pipeline.evaluate.metrics.context import EvalContext
from pipeline.evaluate.metrics.errors import MetricUnavailable
from pipeline.evaluate.metrics.registry import compute
from pipeline.evaluate.metrics.weights import expected_sha256, inception_weights
from pipeline.params import EvaluateParams, InceptionParams

from fakes.file_server import PAYLOAD, Server

SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def server():
    s = Server({f"weights-inception-{SHA[:8]}.pth": PAYLOAD, "weights-inception-00000000.pth": PAYLOAD})
    yield s
    s.close()


def test_expected_sha_comes_from_params_or_the_file_name():
    assert expected_sha256(InceptionParams()) == "6726825d"
    assert expected_sha256(InceptionParams(sha256="ab" * 32)) == "ab" * 32
    assert expected_sha256(InceptionParams(url="http://x/plain.pth")) is None


def test_good_file_is_downloaded_verified_and_then_served_from_the_cache(server, tmp_path):
    cfg = InceptionParams(url=f"{server.url}weights-inception-{SHA[:8]}.pth", sha256=SHA)
    path = inception_weights(cfg, cache=tmp_path)
    assert path.read_bytes() == PAYLOAD and path.parent == tmp_path
    n = len(server.requests)
    assert inception_weights(cfg, cache=tmp_path) == path and len(server.requests) == n  # no second fetch


def test_file_name_prefix_is_checked_when_no_sha_is_given(server, tmp_path):
    ok = inception_weights(InceptionParams(url=f"{server.url}weights-inception-{SHA[:8]}.pth"), cache=tmp_path)
    assert ok.exists()
    with pytest.raises(MetricUnavailable, match="does not match the expected 00000000"):
        inception_weights(InceptionParams(url=f"{server.url}weights-inception-00000000.pth"), cache=tmp_path)
    assert not (tmp_path / "weights-inception-00000000.pth").exists()
    assert not list(tmp_path.glob("*00000000*"))  # the bad bytes are deleted, not kept as a part file


def test_bad_checksum_leaves_nothing_behind(server, tmp_path):
    cfg = InceptionParams(url=f"{server.url}weights-inception-{SHA[:8]}.pth", sha256="0" * 64)
    with pytest.raises(MetricUnavailable, match="does not match"):
        inception_weights(cfg, cache=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_download_resumes_and_verifies(server, tmp_path):
    server.cut_after = 300_000
    cfg = InceptionParams(url=f"{server.url}weights-inception-{SHA[:8]}.pth", sha256=SHA, retries=1)
    assert inception_weights(cfg, cache=tmp_path).read_bytes() == PAYLOAD
    first, second = (r for _, r in server.requests)
    assert first is None and 0 < int(second.removeprefix("bytes=").rstrip("-")) <= 300_000  # resumed, not restarted


def test_interrupted_without_retries_is_unavailable_and_resumes_next_time(server, tmp_path):
    server.cut_after = 300_000
    cfg = InceptionParams(url=f"{server.url}weights-inception-{SHA[:8]}.pth", sha256=SHA, retries=0)
    with pytest.raises(MetricUnavailable, match="could not be fetched"):
        inception_weights(cfg, cache=tmp_path)
    assert not (tmp_path / f"weights-inception-{SHA[:8]}.pth").exists()
    assert inception_weights(cfg, cache=tmp_path).read_bytes() == PAYLOAD


def test_offline_without_download_or_with_a_missing_copy_is_unavailable(tmp_path):
    with pytest.raises(MetricUnavailable, match="download is false"):
        inception_weights(InceptionParams(download=False), cache=tmp_path)
    with pytest.raises(MetricUnavailable, match="does not exist"):
        inception_weights(InceptionParams(weights_path=str(tmp_path / "nope.pth")))


def test_unreachable_server_is_unavailable_not_zero(tmp_path):
    ctx = EvalContext(np.zeros((4, 8, 8, 3), np.uint8), np.zeros((4, 8, 8, 3), np.uint8), "d",
                      EvaluateParams(inception=InceptionParams(url="http://127.0.0.1:9/weights-inception-6726825d.pth",
                                                               retries=0)))
    values, unavailable = compute(["inception"], ctx)
    assert values == {} and "could not be fetched" in unavailable["inception"]


@pytest.fixture(scope="session")
def random_inception(session_tmp):
    """A randomly initialised torch-fidelity Inception state_dict (same keys and shapes as the real one)."""
    import torch
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class Fresh(FeatureExtractorInceptionV3):
        def load_state_dict(self, *args, **kwargs):  # keep the random initialisation
            return None

    empty = session_tmp / "empty.pth"
    torch.save({}, empty)
    torch.manual_seed(0)
    net = Fresh("fresh", ["2048"], feature_extractor_weights_path=str(empty))
    for m in net.modules():  # variance-preserving init, so random features still differ between images
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    path = session_tmp / "inception-random.pth"
    torch.save(net.state_dict(), path)
    return path


def test_feature_path_on_random_weights(random_inception, tmp_path, monkeypatch):
    monkeypatch.setenv("BOORUGAN_CACHE", str(tmp_path))
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    noisy = np.clip(real.astype(int) + rng.integers(-60, 60, real.shape), 0, 255).astype(np.uint8)
    params = EvaluateParams(inception=InceptionParams(weights_path=str(random_inception), kid_subset_size=8,
                                                      kid_subsets=5, isc_splits=2))
    same, un = compute(["inception"], EvalContext(real, real.copy(), "digest-a", params))
    assert un == {}
    assert set(same) == {"fid", "kid", "kid_std", "is", "is_std", "precision", "recall"}
    assert abs(same["fid"]) < 1e-3 and same["precision"] == same["recall"] == 1.0
    cached = list((tmp_path / "inception" / "reference").glob("real-*.npz"))
    assert len(cached) == 1  # the real set's features, reused for the next model
    other, _ = compute(["inception"], EvalContext(real, noisy, "digest-a", params))
    assert other["fid"] > 1e-3 and other["is"] >= 1.0
    assert list((tmp_path / "inception" / "reference").glob("real-*.npz")) == cached


def test_a_file_that_is_no_state_dict_is_unavailable(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    ctx = EvalContext(np.zeros((4, 8, 8, 3), np.uint8), np.zeros((4, 8, 8, 3), np.uint8), "d",
                      EvaluateParams(inception=InceptionParams(weights_path=str(junk))))
    _, unavailable = compute(["inception"], ctx)
    assert "not a usable Inception state_dict" in unavailable["inception"]


def test_a_pickle_that_runs_code_is_refused_before_torch_fidelity_loads_it(tmp_path):
    import pickle

    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    bad = tmp_path / "evil.pth"
    bad.write_bytes(pickle.dumps({"fc.weight": Evil()}, protocol=2))
    ctx = EvalContext(np.zeros((4, 8, 8, 3), np.uint8), np.zeros((4, 8, 8, 3), np.uint8), "d",
                      EvaluateParams(inception=InceptionParams(weights_path=str(bad))))
    _, unavailable = compute(["inception"], ctx)
    assert "not a usable Inception state_dict" in unavailable["inception"] and not marker.exists()
