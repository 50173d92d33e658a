"""Test fixtures. The whole suite runs offline on 2 CPU cores: tiny data, few steps, one MLflow
store and one Prefect harness per session (each costs seconds to create)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# ../shared/data from the project root; a git worktree elsewhere points BOORUGAN_SHARED_DATA at it
SHARED_DATA = Path(os.environ.get("BOORUGAN_SHARED_DATA") or ROOT.parent / "shared" / "data")

_SESSION_TMP = Path(tempfile.mkdtemp(prefix="boorugan-tests-"))
# Before anything imports mlflow/prefect: every test logs to a throwaway store, never the repo's.
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{_SESSION_TMP / 'mlflow.db'}"
os.environ["BOORUGAN_CACHE"] = str(_SESSION_TMP / "cache")
os.environ["PREFECT_HOME"] = str(_SESSION_TMP / "prefect")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
os.environ["MPLBACKEND"] = "Agg"
os.environ.pop("BOORUGAN_PIPELINE_RUN", None)


def pytest_sessionfinish(session, exitstatus):
    """The session's stores and caches go with it (about 100 MB a run); BOORUGAN_KEEP_TEST_TMP=1 keeps
    them to look at."""
    if os.environ.get("BOORUGAN_KEEP_TEST_TMP") != "1":
        shutil.rmtree(_SESSION_TMP, ignore_errors=True)


def path_overrides(root: Path) -> list[str]:
    """Every output location (all live under ``paths:``) moved below ``root``, as in params.yaml."""
    from pipeline.params import PathsParams

    return [f"paths.{key}={root}/{value}" for key, value in PathsParams().model_dump().items()]


def tiny_overrides(root: Path) -> list[str]:
    """-S overrides that make every stage take seconds: few small toy faces, few steps."""
    return ["scrape.source=toy", "crop.detector=none", *path_overrides(root),
            "scrape.toy.count=48", "scrape.toy.size=32", "crop.size=32",
            "train.device=cpu", "train.models.dcgan.steps=4", "train.models.dcgan.batch_size=16",
            "train.models.dcgan.log_every=2", "train.models.dcgan.net.ngf=8", "train.models.dcgan.net.ndf=8",
            "train.models.dcgan.net.nz=16",
            "evaluate.num_samples=32", "evaluate.feature_net.epochs=1", "evaluate.feature_net.width=8",
            "evaluate.inception.download=false", "evaluate.c2st.steps=50", "tag.download=false",  # never fetch weights in tests
            "evaluate.holdout=0"]  # worlds sized in whole batches of all 48 faces (tests/evaluate/test_memorization_stage.py holds out)


def tiny_model_overrides(nets: dict[str, str], steps: int = 3) -> list[str]:
    """-S overrides that train each of ``nets`` (model -> "net.key=value ...") for a few tiny steps."""
    out = []
    for model, net in nets.items():
        out += [f"train.models.{model}.steps={steps}", f"train.models.{model}.batch_size=16",
                f"train.models.{model}.log_every=1", *(f"train.models.{model}.{kv}" for kv in net.split())]
    return out


def run_data_stages(params) -> None:
    """scrape -> crop -> tag -> labels with the stage functions, as dvc repro runs them before train."""
    from pipeline.crop.stage import run_crop
    from pipeline.labels.stage import run_labels
    from pipeline.scrape.stage import run_scrape
    from pipeline.tag.stage import run_tag

    run_scrape(params)
    run_crop(params)
    run_tag(params)
    run_labels(params)


@pytest.fixture
def tiny_params(tmp_path):
    from pipeline.params import load_params

    return load_params(ROOT / "params.yaml", tiny_overrides(tmp_path))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent (internal test data; a fresh clone elsewhere has none)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect server for every flow test of the session (each costs 10-20 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture(scope="session")
def session_tmp() -> Path:
    return _SESSION_TMP


from fakes.browser import browser  # noqa: E402,F401  (fixture for the page tests)
from fakes.play_world import play_world  # noqa: E402,F401  (tiny trained models for the play tests, once per session)
