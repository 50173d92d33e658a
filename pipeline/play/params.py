"""Settings of ``boorugan play`` (``play:`` in params.yaml)."""

from __future__ import annotations

from pydantic import Field

from pipeline.core.settings import Strict


class PlayParams(Strict):
    """``boorugan play``: the local page that draws from every trained model in ``paths.runs``."""

    host: str = Field("127.0.0.1", description="bind address; anything but loopback exposes the models to the network")
    port: int = Field(8766, ge=0, le=65535, description="0 = any free port")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$", description="where generation runs: auto | cpu | cuda")
    max_models: int = Field(4, ge=1, le=64, description="models kept loaded at once (least recently used is dropped)")
    mlflow_ui: str = Field("http://127.0.0.1:5000", description="the MLflow UI that links to a model's run point at "
                           "(make ui); a tracking server's own URL is used when MLFLOW_TRACKING_URI is http(s)")
