"""The trained models ``boorugan play`` draws from: discovery under ``paths.runs``, a small LRU of
loaded generators, and every drawing the page asks for (grids, walks, sketches).

This is the one module of the page that touches the trainer's code (loading a checkpoint, the
sampler), so a change there is mended here only. Every drawing goes through
pipeline/train/sampling.py (inputs, their random order, sketches), so a grid is drawn exactly as
``python -m pipeline sample`` draws it (same seed, tags, EMA G, 8 per row) and a downloaded PNG can
be reproduced from the command in its text chunks.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.layout import CHECKPOINT, TRAIN_SUMMARY

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")  # what a model folder may be called to be listed
RANDOM = "random"
MAX_SKETCH_BYTES = 4 << 20  # an uploaded drawing, before it is decoded
MAX_SKETCH_PIXELS = 4096 * 4096


class PlayError(ValueError):
    """A request the models cannot answer (unknown attribute value, a sketch for a noise model): a 422."""


class UnknownModel(LookupError):
    """No such model under paths.runs: a 404."""


def _load_generator(path: Path, device):
    """The trainer's checkpoint loader (``weights_only=True`` inside; a damaged file raises
    ``pipeline.train.checkpoint.DamagedCheckpoint``, a StageError naming the file and what is wrong)."""
    from pipeline.train.checkpoint import load_generator

    with _readable(path):
        return load_generator(path, device, ema=True)


@contextlib.contextmanager
def _readable(path: Path):
    """A checkpoint that does not load (truncated, not this project's, refused) is a StageError naming
    it, which the page answers as JSON, not an error of the page."""
    from pipeline.core.errors import StageError

    try:
        yield
    except StageError:
        raise
    except Exception as e:  # noqa: BLE001 - torch's reasons vary (zip reader, unpickler, missing keys)
        why = " ".join(str(e).split())[:300] or type(e).__name__
        raise StageError(f"{path} cannot be loaded ({type(e).__name__}: {why}); train the model again "
                         f"(python -m pipeline train {path.parent.name}) or move the file away") from None


def discover(runs_dir: str | Path) -> dict[str, Path]:
    """name -> checkpoint for every ``<runs>/<name>/checkpoint.pt`` that really lies under ``runs``
    (a symlink out of it is skipped): the only files the page ever loads."""
    root = Path(runs_dir).resolve()
    found: dict[str, Path] = {}
    if not root.is_dir():
        return found
    for d in sorted(root.iterdir()):
        ckpt = d / CHECKPOINT
        if not (NAME.fullmatch(d.name) and ckpt.is_file()):
            continue
        real = ckpt.resolve()
        if real.is_relative_to(root):
            found[d.name] = real
    return found


@dataclass
class Loaded:
    sampler: Any
    meta: dict
    step: int
    stamp: tuple[int, int]


@dataclass
class Drawn:
    """Faces (N x H x W x 3 uint8), what each was asked for, and how to draw them again."""

    faces: np.ndarray
    requested: list[dict[str, str]]
    model: str
    step: int
    extra: dict[str, Any] = field(default_factory=dict)


class Models:
    """The models under ``runs_dir``, loaded on first use onto ``device``, at most ``max_models`` at once."""

    def __init__(self, runs_dir: str | Path, device: str = "auto", max_models: int = 4):
        from pipeline.core.device import resolve_device

        self.runs_dir = Path(runs_dir)
        self.device = resolve_device(device, knob="play.device")
        self.max_models = max_models
        self.cache: OrderedDict[str, Loaded] = OrderedDict()
        self.infos: dict[str, tuple[tuple[int, int], dict]] = {}
        self.lock = threading.RLock()  # one drawing at a time: torch threads are shared anyway

    # ---- listing

    def names(self) -> dict[str, Path]:
        return discover(self.runs_dir)

    def checkpoint(self, name: str) -> Path:
        found = self.names()
        if name not in found:
            raise UnknownModel(f"no model {name!r} under {self.runs_dir}; known: {', '.join(found) or 'none (train one first)'}")
        return found[name]

    def info(self, name: str) -> dict[str, Any]:
        """What the page shows and validates against, read from the checkpoint's meta (memory-mapped:
        D and the optimiser state are not read) and train.json."""
        from pipeline.train.checkpoint import load_state

        ckpt = self.checkpoint(name)
        st = ckpt.stat()
        stamp = (st.st_mtime_ns, st.st_size)
        with self.lock:
            hit = self.infos.get(name)
            if hit and hit[0] == stamp:
                return hit[1]
            summary_path = ckpt.parent / TRAIN_SUMMARY
            try:
                summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
            except ValueError:
                summary = {}
            with _readable(ckpt):  # a damaged file: the trainer's DamagedCheckpoint; a file of another shape too
                state = load_state(ckpt, mmap=True)
                meta = state["meta"]
                info = {"name": name, "family": meta["family"], "arch": meta["arch"], "image_size": meta["image_size"],
                        "vocab": meta.get("vocab") or {}, "step": int(state.get("step", -1)), "epoch": state.get("epoch"),
                        "sketch": meta["family"] == "sketch", "ema": state.get("G_ema") is not None,
                        "mlflow_run_id": summary.get("mlflow_run_id"),
                        "images_per_second": summary.get("images_per_second")}
            info["conditional"] = bool(info["vocab"])
            del state
            self.infos[name] = (stamp, info)
            return info

    def all_infos(self) -> list[dict[str, Any]]:
        out = []
        for name in self.names():
            try:
                out.append(self.info(name))
            except Exception as e:  # noqa: BLE001 - a broken checkpoint is listed with its reason, not a 500
                out.append({"name": name, "error": f"{type(e).__name__}: {e}"})
        return out

    # ---- loading

    def load(self, name: str) -> Loaded:
        ckpt = self.checkpoint(name)
        st = ckpt.stat()
        stamp = (st.st_mtime_ns, st.st_size)
        with self.lock:
            hit = self.cache.get(name)
            if hit is not None and hit.stamp == stamp:
                self.cache.move_to_end(name)
                return hit
            sampler, meta = _load_generator(ckpt, self.device)
            loaded = Loaded(sampler, meta, self.info(name)["step"], stamp)
            self.cache[name] = loaded
            self.cache.move_to_end(name)
            while len(self.cache) > self.max_models:
                self.cache.popitem(last=False)
            return loaded

    # ---- inputs

    def fixed_codes(self, name: str, attributes: dict[str, str] | None) -> dict[str, str]:
        """{attribute: value} for the attributes that are not "random", checked against the model's vocabulary."""
        info = self.info(name)
        vocab = info["vocab"]
        fixed = {}
        for attr, value in (attributes or {}).items():
            if value in (None, "", RANDOM):
                continue
            if attr not in vocab:
                known = ", ".join(vocab) or "none (unconditional)"
                raise PlayError(f"{name} is not conditioned on {attr!r}; its attributes: {known}")
            if value not in vocab[attr]:
                raise PlayError(f"{name}: {attr}={value!r} is not in its vocabulary; allowed: {', '.join(vocab[attr])} or random")
            fixed[attr] = value
        return fixed

    def _noise_model(self, name: str) -> Loaded:
        m = self.load(name)
        if m.meta["family"] == "sketch":
            raise PlayError(f"{name} draws from sketches, not from noise: use the sketch panel")
        return m

    @staticmethod
    def _requested(m: Loaded, codes, n: int) -> list[dict[str, str]]:
        if codes is None:
            return [{} for _ in range(n)]
        asked = m.sampler.requested(codes)
        return [{a: values[i] for a, values in asked.items()} for i in range(n)]

    # ---- drawings: inputs, their random order and G's way of drawing are the sampler's
    # (pipeline/train/sampling.py), so a face here is the face ``sample`` and evaluation draw

    def grid(self, name: str, seed: int, count: int, attributes: dict[str, str] | None = None) -> Drawn:
        """``count`` faces of ``seed``: the sampler's own draw, as ``python -m pipeline sample`` makes it."""
        from pipeline.core.images import to_uint8

        fixed = self.fixed_codes(name, attributes)
        with self.lock, _asked():
            m = self._noise_model(name)
            images, codes = m.sampler.draw(count, seed=seed, tags=_as_tags(fixed))
            return Drawn(to_uint8(images), self._requested(m, codes, count), name, m.step, {"fixed": fixed})

    def walk(self, name: str, start: tuple[int, int, int], end: tuple[int, int, int], steps: int, mode: str = "slerp",
             attributes: dict[str, str] | None = None) -> Drawn:
        """``steps`` faces from face (seed, index, count) ``start`` to ``end``, linear or spherical in z;
        a conditional model keeps the start face's attributes along the way."""
        from pipeline.core.images import to_uint8

        fixed = self.fixed_codes(name, attributes)
        with self.lock, _asked():
            m = self._noise_model(name)
            s = m.sampler
            inputs = s.walk(s.face(*start, _as_tags(fixed)), s.face(*end, _as_tags(fixed)), steps, mode)
            return Drawn(to_uint8(s.render(inputs)), self._requested(m, inputs.codes, steps), name, m.step,
                         {"mode": mode, "start": start, "end": end})

    def near(self, name: str, start: tuple[int, int, int], count: int, strength: float, variation_seed: int,
             attributes: dict[str, str] | None = None) -> Drawn:
        """"More like this": the start face, then ``count - 1`` small random moves of its latent vector."""
        from pipeline.core.images import to_uint8

        fixed = self.fixed_codes(name, attributes)
        with self.lock, _asked():
            m = self._noise_model(name)
            s = m.sampler
            inputs = s.near(s.face(*start, _as_tags(fixed)), count, strength, variation_seed)
            return Drawn(to_uint8(s.render(inputs)), self._requested(m, inputs.codes, count), name, m.step,
                         {"strength": strength, "variation_seed": variation_seed, "start": start})

    def sketch(self, name: str, picture: bytes) -> tuple[np.ndarray, np.ndarray, Drawn]:
        """(the sketch as the model saw it, H x W uint8; the share of its pixels with ink, darker than 224;
        the face drawn from it)."""
        from pipeline.core.images import to_uint8
        from pipeline.train.sampling import read_sketch, sketch_tensor

        if len(picture) > MAX_SKETCH_BYTES:
            raise PlayError(f"the sketch is {len(picture)} bytes; at most {MAX_SKETCH_BYTES}")
        with self.lock, _asked():
            m = self.load(name)
            if m.meta["family"] != "sketch":
                raise PlayError(f"{name} draws from noise, not from sketches; sketch models: "
                                f"{', '.join(i['name'] for i in self.all_infos() if i.get('sketch')) or 'none'}")
            grey = read_sketch(picture, m.meta["image_size"], max_pixels=MAX_SKETCH_PIXELS)
            face = m.sampler.sample(1, sketches=sketch_tensor(grey[None]))
            return grey, float((grey < 224).mean()), Drawn(to_uint8(face), [{}], name, m.step)


def _as_tags(fixed: dict[str, str]) -> list[str]:
    """The sampler's spelling of fixed attributes (what ``sample --tags`` takes)."""
    return [f"{a}={v}" for a, v in fixed.items()]


@contextlib.contextmanager
def _asked():
    """The sampler's refusals (a face index outside its grid, a drawing PIL cannot read) are the
    request's fault: a 422 that says why."""
    try:
        yield
    except PlayError:
        raise
    except ValueError as e:
        raise PlayError(str(e)) from None

