"""Import every image under a local folder, recursively (the seeds' "create local dataset"), with
the labels the folder carries, if any:

- subfolders named ``<attribute>=<value>``, nested for several (``hair_color=blue/eye_color=red/``);
- plain class folders (ImageFolder style): the top-level folder name is a value of
  ``scrape.folder_attribute``;
- a CSV in the folder (``scrape.folder_labels``, default ``labels.csv``): a ``file`` column (the
  image's path inside the folder, or its bare name where that is unique) then attribute columns or
  ``tags``, as ``labels/manual.csv``.

Values are stored raw in the manifest (``label:<attribute>`` columns and ``label_origin``, where
they were read); the labels stage checks them against the vocabulary (``labels.precedence`` source
``folder``). Here only the CSV's shape is checked: every problem with its line, before anything is stored.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

from pipeline.core.csvrows import numbered_rows
from pipeline.core.errors import StageError
from pipeline.core.layout import FOLDER_LABEL, FOLDER_LABEL_ORIGIN
from pipeline.scrape.filescan import load_scan, save_scan
from pipeline.scrape.params import ScrapeParams
from pipeline.scrape.sources.base import Candidate, Skip

MAX_SHOWN = 50


def folder_values(rel: Path, folder_attribute: str | None) -> tuple[dict[str, str], list[str]]:
    """(attribute -> raw value, problems) from the folders of ``rel`` (a path inside the root)."""
    values: dict[str, str] = {}
    problems = []
    for depth, part in enumerate(rel.parts[:-1]):
        if "=" in part:
            attr, value = (s.strip() for s in part.split("=", 1))
        elif depth == 0 and folder_attribute:
            attr, value = folder_attribute, part.strip()
        else:
            continue
        if not attr or not value:
            problems.append(f"folder {part!r} is not <attribute>=<value>")
        elif values.get(attr, value) != value:
            problems.append(f"{attr} given as both {values[attr]!r} and {value!r} by its folders")
        else:
            values[attr] = value
    return values, problems


def _column(name: str) -> str:
    return re.sub(r"[\s-]+", "_", name.strip().lower())


def read_folder_csv(path: Path, files: list[Path]) -> dict[Path, tuple[int, dict[str, str]]]:
    """image path (relative) -> (line, column -> raw value) from the CSV beside the images."""
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise StageError(f"{path}: line {line}: not UTF-8 (byte 0x{data[e.start]:02x}); save the file as UTF-8") from None
    by_rel = {p.as_posix(): p for p in files}
    by_name: dict[str, list[Path]] = {}
    for p in files:
        by_name.setdefault(p.name, []).append(p)
    rows = csv.reader(io.StringIO(text, newline=""))
    problems: list[str] = []
    out: dict[Path, tuple[int, dict[str, str]]] = {}
    try:
        header = [_column(h) for h in next(rows)]
    except StopIteration:
        return {}
    except csv.Error as e:
        raise StageError(f"{path}: line 1: {e}") from None
    if header.count("file") != 1:
        raise StageError(f"{path}: line 1: the header needs one 'file' column (the image's path inside the folder), "
                         f"then attribute columns or tags; found {header}")
    key = header.index("file")
    for start, row in numbered_rows(rows, len(header), problems):
        name = row[key].strip().replace("\\", "/").removeprefix("./")
        target = by_rel.get(name)
        if target is None:
            named = by_name.get(Path(name).name, [])
            if len(named) > 1:
                some = ", ".join(p.as_posix() for p in named[:3])
                problems.append(f"line {start}: {name!r} names {len(named)} images ({some}); give its path inside the folder")
                continue
            target = named[0] if named else None
        if target is None:
            problems.append(f"line {start}: no image {name!r} in {path.parent}")
            continue
        if target in out:
            problems.append(f"line {start}: {target.as_posix()} is already labelled on line {out[target][0]} (duplicate)")
            continue
        out[target] = (start, {c: v.strip() for c, v in zip(header, row) if c not in ("file", "comment") and v.strip()})
    if problems:
        shown = problems[:MAX_SHOWN] + ([f"... and {len(problems) - MAX_SHOWN} more"] if len(problems) > MAX_SHOWN else [])
        raise StageError(f"{path}: {len(problems)} problem(s); nothing was stored:\n" + "\n".join(f"  {p}" for p in shown))
    return out


def folder_labels(root: Path, files: list[Path], params: ScrapeParams) -> dict[Path, dict[str, str]]:
    """relative path -> manifest label columns (``label:<attr>`` and ``label_origin``) of each labelled image."""
    csv_rows = {}
    csv_path = root / params.folder_labels if params.folder_labels else None
    if csv_path is not None and csv_path.is_file():
        csv_rows = read_folder_csv(csv_path, files)
    out: dict[Path, dict[str, str]] = {}
    problems: dict[str, None] = {}  # ordered set: a bad folder is reported once, not once per image
    for rel in files:
        values, bad = folder_values(rel, params.folder_attribute)
        origin = f"{root / rel.parent}/" if values else ""
        problems.update((f"{root / rel.parent}/: {b}", None) for b in bad)
        if rel in csv_rows:
            line, given = csv_rows[rel]
            for attr, value in given.items():
                if attr in values and _column(values[attr]) != _column(value):
                    problems[f"{csv_path}: line {line}: {attr} is {value!r}, but its folder says {values[attr]!r}"] = None
            values = {**values, **given}
            origin = f"{csv_path}: line {line}"
        if values:
            out[rel] = {**{FOLDER_LABEL + a: v for a, v in values.items()}, FOLDER_LABEL_ORIGIN: origin}
    if problems:
        listed = list(problems)[:MAX_SHOWN]
        raise StageError(f"the labels of scrape.folder {str(root)!r} have {len(problems)} problem(s); nothing was stored:\n"
                         + "\n".join(f"  {p}" for p in listed))
    return out


def check_folder(params: ScrapeParams) -> None:
    root = Path(params.folder).expanduser()
    if not root.is_dir():
        raise StageError(f"scrape.folder {str(root)!r} is not a directory; point -S scrape.folder=... at a folder of images")


def iter_folder(params: ScrapeParams) -> Iterator[Candidate | Skip]:
    check_folder(params)
    root = Path(params.folder).expanduser()
    allowed = {e.lower() for e in params.extensions}
    csv_name = (root / params.folder_labels) if params.folder_labels else None
    paths = sorted(p for p in root.rglob("*") if p.is_file() and p != csv_name)
    images = [p.relative_to(root) for p in paths if p.suffix.lower().lstrip(".") in allowed]
    labels = folder_labels(root, images, params)
    scan = load_scan(root, params.max_pixels)
    where = scan.index.get_indexer([str(p) for p in paths])  # each file's row in the last run's scan, or -1
    last = {c: scan[c].to_numpy() for c in scan.columns}
    for path, k in zip(paths, where):
        ext = path.suffix.lower().lstrip(".")
        if ext not in allowed:
            yield Skip("extension", str(path))
            continue
        st = path.stat()
        stat = (st.st_size, st.st_mtime_ns, st.st_ino)
        known = None
        if k >= 0 and (int(last["size"][k]), int(last["mtime_ns"][k]), int(last["ino"][k])) == stat:
            # unchanged since the last run: not read again (pipeline/scrape/filescan.py)
            known = {c: last[c][k] for c in ("md5", "width", "height", "reason")}
        yield Candidate(None if known else path.read_bytes(), "jpg" if ext == "jpeg" else ext, str(path),
                        labels.get(path.relative_to(root), {}), stat=stat, known=known)


def remember_folder(params: ScrapeParams, rows: list[tuple]) -> None:
    """Keep what this run learnt of each file for the next (``iter_folder`` reads it)."""
    save_scan(Path(params.folder).expanduser(), params.max_pixels, rows)
