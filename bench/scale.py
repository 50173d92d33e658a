"""How the data stages grow with the number of faces (issue 26): synthetic 64 px faces at each N,
and per N the wall time, CPU time and peak RAM (each operation in its own process, measured with
wait4) of

- crop: first run, no-op rerun, rerun with 1 % new images (``crop.detector=none``: the cost of
  reading, cutting, writing the store and the PNGs, not of a detector);
- train: data load + the first 100 steps of a small DCGAN on the CPU, with the faces on the device
  (``train.cache_gb`` large) and streamed from the mapped store (``train.cache_gb=0``), side by side;
- evaluate's data load: ``load_faces`` + the dataset id from the store, against decoding every PNG
  (the path before the store);
- a folder import (``scrape.source=folder``) of N files: first run and a rerun with nothing new;
- ``dvc status`` of the whole pipeline in a scratch git+DVC repo whose scrape and crop outputs are
  committed (so DVC compares hashes, from its state cache on the second call).

Then the growth exponent of each (log-log slope between the smallest and largest N) and the
extrapolation to 10^6. Run: ``python bench/scale.py --sizes 10000 100000`` (about 25 minutes at
10^5 on 2 cores); ``--keep DIR`` keeps the data sets.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
DVC = str(Path(PY).with_name("dvc"))
STEPS = 100
TINY = ["train.models.dcgan.net.ngf=16", "train.models.dcgan.net.ndf=16", "train.models.dcgan.net.nz=32",
        "train.models.dcgan.batch_size=64", f"train.models.dcgan.checkpoint_every={10 * STEPS}"]  # one checkpoint, at the end


class Runner:
    """Runs each operation under a fresh wrapper process (``_child``), whose children's rusage is
    that operation's alone: CPU of it and every process it waited for, peak RSS of the largest."""

    def run(self, cmd: list[str], cwd: Path = ROOT, env: dict | None = None) -> dict:
        wrapped = [PY, __file__, "_child", json.dumps({"cmd": cmd, "cwd": str(cwd), "env": env or {}})]
        r = subprocess.run(wrapped, capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
        return json.loads(r.stdout.strip().splitlines()[-1])


def child(spec: str) -> None:
    """In a wrapper process: run one command, then print its wall, CPU and peak RSS (the wrapper's
    only child, so RUSAGE_CHILDREN is that command's alone)."""
    import resource

    s = json.loads(spec)
    env = {**os.environ, "PYTHONPATH": str(ROOT), **s["env"]}
    t0 = time.perf_counter()
    r = subprocess.run(s["cmd"], cwd=s["cwd"], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode:
        sys.stderr.write(r.stderr[-3000:])
        sys.exit(r.returncode)
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    extra = {}
    lines = r.stdout.strip().splitlines()
    if lines and lines[-1].startswith("{"):
        extra = json.loads(lines[-1])
    print(json.dumps({"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "peak_mb": ru.ru_maxrss / 1024, **extra}))


# --- the operations that run inside measured processes ----------------------------------------

def train_op(faces: str, cache_gb: str) -> None:
    """Data load, then the first STEPS steps of a small DCGAN on the CPU; prints the timings."""
    from pipeline.core.datasets import load_faces
    from pipeline.params import load_params
    from pipeline.train.loop import train

    t0 = time.perf_counter()
    f = load_faces(faces)
    data_id = f.digest
    load = time.perf_counter() - t0
    params = load_params(ROOT / "params.yaml", [*TINY, f"train.models.dcgan.steps={STEPS}", "train.models.dcgan.log_every=50"])
    spec = params.model("dcgan")
    with tempfile.TemporaryDirectory() as out:
        t1 = time.perf_counter()
        s = train(f.images, spec, out, seed=0, device="cpu", data_id=data_id, cache_bytes=int(float(cache_gb) * 1e9))
        steps = time.perf_counter() - t1
    print(json.dumps({"load_s": load, "steps_s": steps, "images_per_s": STEPS * spec.batch_size / steps,
                      "train_images_per_s": s["images_per_second"]}))


def eval_load_op(faces: str, how: str) -> None:
    """What evaluate does before it scores: the real faces and their id; ``png`` decodes every face
    file and hashes the pixels (the path before the store)."""
    import numpy as np
    import pandas as pd

    from pipeline.core.datasets import Faces, _decode, load_faces
    from pipeline.core.layout import INDEX

    if how == "store":
        f = load_faces(faces)
        n = len(f.images)
        digest = f.digest
        total = sum(int(f.images[i:i + 4096].sum(dtype=np.uint64)) for i in range(0, n, 4096))  # touch every face once
    else:
        index = pd.read_parquet(Path(faces) / INDEX, columns=["face_id", "path"])
        f = Faces(_decode(Path(faces), index["path"]), index["face_id"].tolist())
        digest, total = f.digest, int(f.images.sum(dtype=np.uint64))
    print(json.dumps({"faces": len(f.ids), "digest": digest, "checksum": total}))


# --- building the data sets -------------------------------------------------------------------

def make_raw(raw: Path, n: int, start: int = 0) -> None:
    """``n`` synthetic 64 px pictures (PNG, coloured noise over a gradient: they compress like
    drawings, not like pure noise) and the manifest a scrape writes; appends to an existing one."""
    import hashlib

    import numpy as np
    import pandas as pd
    from PIL import Image

    from pipeline.core.layout import MANIFEST

    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(start)
    grad = np.linspace(0, 200, 64, dtype=np.float32)
    rows = []
    for i in range(start, start + n):
        base = (grad[None, :, None] + grad[:, None, None] * rng.random(3)).astype(np.uint8)
        arr = np.clip(base + rng.integers(0, 24, (64, 64, 3), dtype=np.uint8), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
        data = buf.getvalue()
        md5 = hashlib.md5(data).hexdigest()
        (raw / f"{md5}.png").write_bytes(data)
        rows.append({"id": str(i), "md5": md5, "ext": "png", "width": 64, "height": 64, "source": "toy",
                     "origin": f"bench:{i}", "path": f"{md5}.png"})
    frame = pd.DataFrame(rows)
    if (raw / MANIFEST).is_file() and start:
        frame = pd.concat([pd.read_parquet(raw / MANIFEST), frame], ignore_index=True)
    frame.to_parquet(raw / MANIFEST, index=False)


def dvc_repo(root: Path, data: Path) -> Path:
    """A scratch git+DVC repo with this project's code and params, its data/ linked to ``data``
    (scrape and crop committed: their outputs are hashed once here, not in the measured status)."""
    repo = root / "repo"
    if repo.exists():
        shutil.rmtree(repo)
    repo.mkdir()
    for name in ("pipeline", "models", "flows", "labels", "dvc.yaml", "params.yaml", "pyproject.toml", ".gitignore"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, repo / name)
    (repo / "data").mkdir()
    for sub in ("raw", "faces"):
        os.rename(data / sub, repo / "data" / sub)
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([DVC, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True, capture_output=True)
    subprocess.run([*git, "commit", "-qm", "bench"], cwd=repo, check=True)
    subprocess.run([DVC, "commit", "-f", "scrape", "crop"], cwd=repo, check=True, capture_output=True)
    return repo


# --- the run ----------------------------------------------------------------------------------

def bench_size(n: int, root: Path, runner: Runner) -> dict[str, dict]:
    """Every operation at ``n`` faces, in a folder of its own under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    raw, faces = root / "raw", root / "faces"
    cli = [PY, "-m", "pipeline"]
    crop = [*cli, "crop", "-S", f"paths.raw={raw}", "-S", f"paths.faces={faces}", "-S", "crop.detector=none",
            "-S", "crop.size=64"]
    env = {"BOORUGAN_CACHE": str(root / "cache")}
    out: dict[str, dict] = {}
    print(f"[{n}] making {n} raw pictures", flush=True)
    make_raw(raw, n)
    out["crop first"] = runner.run(crop, env=env)
    out["crop no-op"] = runner.run(crop, env=env)
    make_raw(raw, max(1, n // 100), start=n)
    out["crop +1%"] = runner.run(crop, env=env)
    print(f"[{n}] crop done", flush=True)
    for mode, gb in (("resident", "1000"), ("streamed", "0")):
        out[f"train 100 steps ({mode})"] = runner.run([PY, __file__, "_train", str(faces), gb], env=env)
    for how in ("store", "png"):
        out[f"evaluate data load ({how})"] = runner.run([PY, __file__, "_eval_load", str(faces), how], env=env)
    assert out["evaluate data load (store)"]["digest"] == out["evaluate data load (png)"]["digest"]
    print(f"[{n}] train/evaluate done", flush=True)
    folder = [*cli, "scrape", "-S", "scrape.source=folder", "-S", f"scrape.folder={raw}", "-S", f"paths.raw={root / 'imported'}"]
    out["folder import first"] = runner.run(folder, env=env)
    out["folder rerun, nothing new"] = runner.run(folder, env=env)
    shutil.rmtree(root / "imported")
    print(f"[{n}] folder done", flush=True)
    repo = dvc_repo(root, root)
    out["dvc status (first)"] = runner.run([DVC, "status"], cwd=repo, env=env)
    out["dvc status"] = runner.run([DVC, "status"], cwd=repo, env=env)
    return out


def exponent(a: float, b: float, na: int, nb: int) -> float:
    return math.log(max(b, 1e-3) / max(a, 1e-3)) / math.log(nb / na)


def table(results: dict[int, dict[str, dict]]) -> str:
    sizes = sorted(results)
    ops = list(results[sizes[0]])
    head = "| operation | " + " | ".join(f"N={n:,} wall s / CPU s / peak MB" for n in sizes)
    if len(sizes) > 1:
        head += " | exponent (wall, RAM) | 10^6 extrapolated (wall s, peak MB)"
    lines = [head + " |", "|" + "---|" * (head.count("|") - 0)]
    for op in ops:
        cells = [f"{results[n][op]['wall']:.1f} / {results[n][op]['cpu']:.1f} / {results[n][op]['peak_mb']:.0f}" for n in sizes]
        if len(sizes) > 1:
            a, b = results[sizes[0]][op], results[sizes[-1]][op]
            ew = exponent(a["wall"], b["wall"], sizes[0], sizes[-1])
            em = exponent(a["peak_mb"], b["peak_mb"], sizes[0], sizes[-1])
            k = 1e6 / sizes[-1]
            cells += [f"{ew:.2f}, {em:.2f}", f"{b['wall'] * k ** ew:.0f}, {b['peak_mb'] * k ** em:.0f}"]
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    speed = []
    for n in sizes:
        r, s = results[n]["train 100 steps (resident)"], results[n]["train 100 steps (streamed)"]
        speed.append(f"N={n:,}: resident {r['images_per_s']:.0f} img/s, streamed {s['images_per_s']:.0f} img/s "
                     f"(load {r['load_s']:.2f} s / {s['load_s']:.2f} s)")
    return "\n".join(lines) + "\n\nCPU training speed, 100 steps of a small DCGAN (ngf=ndf=16), batch 64:\n" + "\n".join(speed)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        return child(sys.argv[2])
    if len(sys.argv) > 1 and sys.argv[1] == "_train":
        return train_op(*sys.argv[2:4])
    if len(sys.argv) > 1 and sys.argv[1] == "_eval_load":
        return eval_load_op(*sys.argv[2:4])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--keep", type=Path, default=None, help="build the data sets here and keep them")
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="boorugan-scale-"))
    results = {}
    try:
        for n in args.sizes:
            results[n] = bench_size(n, base / f"n{n}", Runner())
            print(json.dumps({n: results[n]}), flush=True)
            if args.json:
                args.json.write_text(json.dumps(results, indent=1))
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    print(table(results))


if __name__ == "__main__":
    main()
