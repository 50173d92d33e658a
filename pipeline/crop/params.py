"""Settings of the ``crop`` stage (``crop:`` in params.yaml)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipeline.core.settings import Strict


class CropParams(Strict):
    """How faces are found and cut; see pipeline/crop/stage.py and pipeline/crop/geometry.py."""

    detector: Literal["animeface", "lbpcascade", "ensemble", "none"] = Field(
        "animeface", description="animeface (AnimeFace 2009), lbpcascade (OpenCV cascade), ensemble (both, boxes merged) or none "
                                 "(the pictures already are faces, e.g. the toy source)")
    size: int = Field(64, ge=8, le=1024, description="output side in px (64 default; 128, 256 for bigger GANs; at "
                      "most 1024: train holds every face in memory, 3 MB each at 1024 px)")
    margin: float = Field(1.5, ge=1.0, le=4.0, description="square side = margin x the longer box side")
    min_score: float = Field(
        0.5, ge=0.0, le=1.0, description="faces under this detector score are dropped (animeface's likelihood; lbpcascade boxes "
                                         "score 1.0)")
    min_face: int = Field(24, ge=1, description="px in the source image; smaller faces are dropped")
    detect_max_side: int | None = Field(512, ge=64, description="detect on a copy no larger than this (null: full size)")
    detect_min_side: int | None = Field(512, ge=64, description="a picture smaller than this is upscaled to it for "
                                        "detection (small faces); null: never upscale")
    retry_side: int | None = Field(1024, ge=64, description="a picture with no face at the detect side is searched "
                                   "again at this longest side; null: one pass")
    ensemble_iou: float = Field(0.3, gt=0.0, le=1.0, description="detector ensemble: boxes overlapping this much are one face")
    max_faces: int = Field(8, ge=1, description="faces kept per picture, best first")
    border: Literal["shift", "pad_reflect", "pad_constant", "drop"] = Field(
        "shift", description="a square past the picture's edge: shift it inside, pad_reflect (mirror), pad_constant (pad_value) "
                             "or drop the face")
    pad_value: int = Field(0, ge=0, le=255, description="grey level of pad_constant")
    format: Literal["png", "webp", "jpg"] = Field("png", description="png and webp are lossless")
    jpg_quality: int = Field(95, ge=1, le=100, description="quality of crop.format=jpg")
    workers: int = Field(0, ge=0, description="parallel processes; 0 = all cores")
    window: int = Field(4, ge=1, le=1024, description="images in flight per worker process (bounds the "
                        "parent's memory: results are taken in order)")
    pngs: bool = Field(True, description="also write each face as a file (the labelling page and the tagger read "
                       "them; train and evaluate read the packed store faces.u8 only)")
    dedupe_distance: int | None = Field(None, ge=0, le=16, description="drop a face whose 64-bit dHash is this "
                                        "close to a better face's (e.g. 4); null keeps all")
    cascade_file: str | None = Field(None, description="a local lbpcascade_animeface.xml instead of the download")
    cascade_url: str = Field("https://raw.githubusercontent.com/nagadomi/lbpcascade_animeface/"
                             "4433ab1ae1166ea75acfe99eb0f18709dac329a0/lbpcascade_animeface.xml",
                             description="where lbpcascade_animeface.xml is downloaded from once (a pinned commit)")
    cascade_sha256: str = Field("9376d30ac38db6bda2a68b88b3b76bbd7e6aa33af47f7f5c76bc88ca75f1ce30",
                                pattern=r"^[0-9a-f]{64}$", description="the cascade file is used only when it has this sha256")
