"""The trained models ``boorugan play`` draws from: discovery under ``paths.runs``, a small LRU of
loaded generators, and every drawing the page asks for (grids, walks, sketches).

This is the one module of the page that touches the trainer's code (loading a checkpoint, the
sampler's way of turning a seed and tags into G's inputs), so a change there is mended here only.
A grid is drawn exactly as ``python -m pipeline sample`` draws it (same seed, tags, EMA G, 8 per
row), so a downloaded PNG can be reproduced from the command in its text chunks.
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

    def _inputs(self, m: Loaded, seed: int, count: int, fixed: dict[str, str]):
        """(z, codes or None) exactly as the sampler draws them for (seed, count, tags): the latent of
        face i of a grid is z[i], so a walk or "more like this" starts from the face that was clicked."""
        import torch

        s = m.sampler
        dev = next(s.G.parameters()).device
        gen = torch.Generator(device=dev).manual_seed(seed)
        z = torch.randn(count, s.nz, generator=gen, device=dev)
        if not s.vocab:
            return z, None
        codes = s.random_codes(count, gen, s.codes_of_tags([f"{a}={v}" for a, v in fixed.items()]))
        return z, codes

    def _forward(self, m: Loaded, z, codes):
        """G on given noise (and codes), through the trainer's one sampling function (the family's
        own mode: unconditional G on the batch's statistics, as the reference DCGAN samples)."""
        from pipeline.train.families import Batch, one_hot
        from pipeline.train.sampling import outputs

        s = m.sampler
        c = None if codes is None else one_hot(codes, s.sizes)
        return outputs(s.G, s.fam, Batch(None, z=z, codes=codes, c=c))

    @staticmethod
    def _requested(m: Loaded, codes, n: int) -> list[dict[str, str]]:
        if codes is None:
            return [{} for _ in range(n)]
        vocab = m.sampler.vocab
        return [{a: vocab[a][int(k)] for a, k in zip(vocab, row)} for row in codes.tolist()]

    # ---- drawings

    def grid(self, name: str, seed: int, count: int, attributes: dict[str, str] | None = None) -> Drawn:
        """``count`` faces of ``seed``: the sampler's own draw, as ``python -m pipeline sample`` makes it."""
        from pipeline.core.images import to_uint8

        fixed = self.fixed_codes(name, attributes)
        with self.lock:
            m = self._noise_model(name)
            images, codes = m.sampler.draw(count, seed=seed, tags=[f"{a}={v}" for a, v in fixed.items()])
            return Drawn(to_uint8(images), self._requested(m, codes, count), name, m.step, {"fixed": fixed})

    def walk(self, name: str, start: tuple[int, int, int], end: tuple[int, int, int], steps: int, mode: str = "slerp",
             attributes: dict[str, str] | None = None) -> Drawn:
        """``steps`` faces from face (seed, index, count) ``start`` to ``end``, linear or spherical in z;
        a conditional model keeps the start face's attributes along the way."""
        import torch

        from pipeline.core.images import to_uint8

        fixed = self.fixed_codes(name, attributes)
        with self.lock:
            m = self._noise_model(name)
            za, ca = self._pick(m, start, fixed)
            zb, _ = self._pick(m, end, fixed)
            t = torch.linspace(0, 1, steps, device=za.device)[:, None]
            z = lerp(za, zb, t) if mode == "lerp" else slerp(za, zb, t)
            codes = None if ca is None else ca.expand(steps, -1)
            return Drawn(to_uint8(self._forward(m, z, codes)), self._requested(m, codes, steps), name, m.step,
                         {"mode": mode, "start": start, "end": end})

    def near(self, name: str, start: tuple[int, int, int], count: int, strength: float, variation_seed: int,
             attributes: dict[str, str] | None = None) -> Drawn:
        """"More like this": the start face, then ``count - 1`` small random moves of its latent vector."""
        import torch

        from pipeline.core.images import to_uint8

        fixed = self.fixed_codes(name, attributes)
        with self.lock:
            m = self._noise_model(name)
            z0, c0 = self._pick(m, start, fixed)
            gen = torch.Generator(device=z0.device).manual_seed(variation_seed)
            moves = torch.randn(count - 1, z0.shape[1], generator=gen, device=z0.device) * strength
            z = torch.cat([z0, z0 + moves])
            codes = None if c0 is None else c0.expand(count, -1)
            return Drawn(to_uint8(self._forward(m, z, codes)), self._requested(m, codes, count), name, m.step,
                         {"strength": strength, "variation_seed": variation_seed, "start": start})

    def _pick(self, m: Loaded, face: tuple[int, int, int], fixed: dict[str, str]):
        seed, index, count = face
        if not 0 <= index < count:
            raise PlayError(f"face index {index} is outside a grid of {count}")
        z, codes = self._inputs(m, seed, count, fixed)
        return z[index:index + 1], None if codes is None else codes[index:index + 1]

    def sketch(self, name: str, picture: bytes) -> tuple[np.ndarray, np.ndarray, Drawn]:
        """(the sketch as the model saw it, H x W uint8; the share of its pixels with ink, darker than 224;
        the face drawn from it)."""
        import torch

        from pipeline.core.images import to_uint8

        with self.lock:
            m = self.load(name)
            if m.meta["family"] != "sketch":
                raise PlayError(f"{name} draws from noise, not from sketches; sketch models: "
                                f"{', '.join(i['name'] for i in self.all_infos() if i.get('sketch')) or 'none'}")
            size = m.meta["image_size"]
            grey = read_sketch(picture, size)
            x = torch.from_numpy(grey.copy())[None, None].float().div(127.5).sub(1)
            face = m.sampler.sample(1, sketches=x)
            return grey, float((grey < 224).mean()), Drawn(to_uint8(face), [{}], name, m.step)


def lerp(a, b, t):
    return a + (b - a) * t


def slerp(a, b, t):
    """Spherical interpolation between the rows ``a`` and ``b`` (1 x nz) at the fractions ``t`` (k x 1):
    Gaussian latents live near a sphere, so this keeps the norm that linear steps shrink midway."""
    import torch

    an, bn = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    omega = torch.arccos((an * bn).sum(1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    if float(so) < 1e-6:  # the same direction: nothing to curve around
        return lerp(a, b, t)
    return torch.sin((1 - t) * omega) / so * a + torch.sin(t * omega) / so * b


MAX_SKETCH_BYTES = 4 << 20
MAX_SKETCH_PIXELS = 4096 * 4096


def read_sketch(picture: bytes, size: int) -> np.ndarray:
    """A drawing (PNG/JPEG/WebP bytes, dark lines on light; transparent counts as paper) as the
    model's size x size grey, as ``sample --sketch`` reads a file."""
    import io

    from PIL import Image, UnidentifiedImageError

    if len(picture) > MAX_SKETCH_BYTES:
        raise PlayError(f"the sketch is {len(picture)} bytes; at most {MAX_SKETCH_BYTES}")
    try:
        with Image.open(io.BytesIO(picture)) as im:
            if im.width * im.height > MAX_SKETCH_PIXELS:
                raise PlayError(f"the sketch is {im.width}x{im.height}; at most {MAX_SKETCH_PIXELS} pixels")
            if im.mode in ("RGBA", "LA", "P"):
                rgba = im.convert("RGBA")
                paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                im = Image.alpha_composite(paper, rgba)
            grey = im.convert("L").resize((size, size), Image.Resampling.LANCZOS)
    except Image.DecompressionBombError as e:  # a header that declares more pixels than any drawing has
        raise PlayError(f"the sketch declares too many pixels ({e}); upload a drawing of at most "
                        f"{MAX_SKETCH_PIXELS} pixels (it becomes {size} px)") from None
    except (UnidentifiedImageError, OSError) as e:
        raise PlayError(f"the sketch is not a picture PIL can read: {e}") from None
    return np.asarray(grey)
