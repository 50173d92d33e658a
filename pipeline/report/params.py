"""Settings of the ``report`` stage (``report:`` in params.yaml)."""

from __future__ import annotations

from pydantic import Field

from pipeline.core.settings import Strict


class ReportParams(Strict):
    title: str = Field("boorugan: model comparison", description="the report's heading")
    clear_margin: float = Field(0.1, ge=0, lt=1, description="a model is marked best in a column only when it beats "
                                "the runner-up by this share (lower-better: best <= (1 - m) x next; "
                                "higher: best >= next / (1 - m))")
    near_noise: float | None = Field(0.5, gt=0, le=1, description="every model at or above this share of uniform "
                                     "noise's ssl_fd has learned nothing yet: the report says so and marks no best (null: off)")
