"""The packed face store: every face of ``data/faces`` as one uint8 array file ``faces.u8``
(a 64-byte header, then N rows of H x W x 3 bytes) that readers map with ``numpy.memmap``.

Why a flat array and not PNGs, a zip (stylegan2-ada's dataset) or LMDB: a reader gets a batch of
rows with one slice of a mapping, no decode and no per-face file or key (bench/scale.py measures
reading faces from the store against decoding the PNGs); appending is a write at the end; DVC
tracks two files instead of a million. Faces are raw pixels, so the store is larger than PNGs
(12 KB per 64 px face, about 2.5x the PNGs of drawn faces).

The header names a generation (a hash of the contents it was written with): crop
(pipeline/crop/state.py) appends to the committed store in place, or writes a new generation
beside it and swaps it in after the index commit; the index's
commit record says which generation and how many rows are committed, so a reader never trusts
rows beyond that and a killed run's tail is cut off by the next one.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"BGFACES1"
HEADER = 64
_LAYOUT = struct.Struct("<8s16sIII")  # magic, generation (hex), height, width, channels


@dataclass(frozen=True)
class StoreHeader:
    gen: str
    height: int
    width: int
    channels: int = 3

    @property
    def row_bytes(self) -> int:
        return self.height * self.width * self.channels

    def pack(self) -> bytes:
        return _LAYOUT.pack(MAGIC, self.gen.encode(), self.height, self.width, self.channels).ljust(HEADER, b"\0")


PENDING = "0" * 16  # the generation of a store still being written: no commit ever names it


def read_header(path: str | Path) -> StoreHeader | None:
    """The header of a store file; None when there is no file or it is not a store."""
    try:
        with open(path, "rb") as f:
            raw = f.read(HEADER)
    except (FileNotFoundError, IsADirectoryError):
        return None
    if len(raw) < _LAYOUT.size:
        return None
    magic, gen, h, w, c = _LAYOUT.unpack_from(raw)
    return StoreHeader(gen.decode(errors="replace"), h, w, c) if magic == MAGIC else None


def open_store(path: str | Path, rows: int | None = None) -> np.ndarray:
    """The store's first ``rows`` faces (all whole rows when None) as a read-only N x H x W x C memmap."""
    path = Path(path)
    head = read_header(path)
    if head is None:
        raise FileNotFoundError(f"{path} is not a face store (no {MAGIC.decode()} header); run the crop stage again")
    have = (path.stat().st_size - HEADER) // head.row_bytes
    rows = have if rows is None else rows
    if rows > have:
        raise ValueError(f"{path} holds {have} faces but its index names {rows}; run the crop stage again")
    shape = (rows, head.height, head.width, head.channels)
    if rows == 0:
        return np.zeros(shape, np.uint8)
    return np.memmap(path, np.uint8, "r", offset=HEADER, shape=shape)


def face_content(pixels: np.ndarray) -> str:
    """Content id of one face (its pixels and shape): the dataset id is built from these."""
    h = hashlib.md5(str(pixels.shape).encode())
    h.update(np.ascontiguousarray(pixels, np.uint8).data)
    return h.hexdigest()


def dataset_id(shape: tuple[int, ...], contents) -> str:
    """Content id of a dataset from its faces' content ids, in order: computed from the index
    alone for a store, from the pixels for faces in memory, the same either way."""
    h = hashlib.md5(f"faces:{tuple(shape[1:])}:{shape[0]}".encode())
    for c in contents:
        h.update(bytes.fromhex(c))
    return h.hexdigest()


class StoreWriter:
    """Appends faces to a store. ``rows`` > 0 (or ``fresh`` False): continue the file at ``path``
    after its first ``rows`` committed rows (anything beyond them is a killed run's tail and is
    overwritten; its generation stays). Fresh: a new file whose generation, written when it is
    closed, is a hash of its contents, so two runs that end alike write the same bytes and a
    staged file can only carry the committed generation when it holds the same faces."""

    def __init__(self, path: str | Path, height: int, width: int, channels: int = 3, *, rows: int = 0,
                 fresh: bool = True):
        self.path, self.rows, self.fresh = Path(path), rows, fresh
        if fresh:
            self.header = StoreHeader(PENDING, height, width, channels)
            self.f = open(self.path, "wb")  # noqa: SIM115 - closed by close()
            self.f.write(self.header.pack())
            self._hash = hashlib.md5(f"{height}x{width}x{channels}".encode())
        else:
            head = read_header(self.path)
            if head is None or (head.height, head.width, head.channels) != (height, width, channels):
                raise ValueError(f"{self.path} is not a store of {height}x{width}x{channels} faces")
            self.header = head
            self.f = open(self.path, "r+b")  # noqa: SIM115 - closed by close()
            self.f.seek(HEADER + rows * head.row_bytes)
            self.f.truncate()

    def append(self, pixels: np.ndarray) -> int:
        """Write one H x W x C uint8 face; its row number."""
        want = (self.header.height, self.header.width, self.header.channels)
        if pixels.shape != want or pixels.dtype != np.uint8:
            raise ValueError(f"a face of shape {pixels.shape} {pixels.dtype} does not fit a store of {want} uint8")
        data = np.ascontiguousarray(pixels).data
        self.f.write(data)
        if self.fresh:
            self._hash.update(data)
        self.rows += 1
        return self.rows - 1

    def close(self, sync: bool = True) -> None:
        """Finish the file: a fresh one gets its generation; then flush (and fsync: the rows reach
        the disk before an index names them). ``sync`` False: abandon it as it is (a failed run)."""
        if self.f.closed:
            return
        if sync and self.fresh:
            self._hash.update(str(self.rows).encode())
            self.header = StoreHeader(self._hash.hexdigest()[:16], self.header.height, self.header.width,
                                      self.header.channels)
            self.f.seek(0)
            self.f.write(self.header.pack())
        self.f.flush()
        if sync:
            os.fsync(self.f.fileno())
        self.f.close()


def truncate_to(path: str | Path, header: StoreHeader, rows: int) -> None:
    """Cut a store back to its committed ``rows`` (a killed or failed run's appended tail)."""
    want = HEADER + rows * header.row_bytes
    if Path(path).stat().st_size > want:
        os.truncate(path, want)


def committed_store(faces_dir: str | Path) -> tuple[Path, int] | None:
    """(file, committed rows) of the store the index names: ``faces.u8``, or its staged next
    generation while a crop is between its commit and moving it into place; None when the index
    has no store (a folder cropped before there was one: read its face files)."""
    import json

    import pyarrow.parquet as pq

    from pipeline.core.layout import CROP_RECORD, INDEX, STAGED, STORE

    faces_dir = Path(faces_dir)
    meta = pq.read_schema(faces_dir / INDEX).metadata or {}
    store = json.loads(meta[CROP_RECORD]).get("store") if CROP_RECORD in meta else None
    if not store:
        return None
    for path in (faces_dir / STORE, faces_dir / f".{STORE}{STAGED}"):
        head = read_header(path)
        if head is not None and head.gen == store["gen"]:
            return path, int(store["rows"])
    raise FileNotFoundError(f"{faces_dir / STORE} is not the face store {faces_dir / INDEX} names (generation "
                            f"{store['gen']}); run the crop stage again")


class StoreView:
    """Faces of a mapped store in index order, usable where an N x H x W x C uint8 array is: a
    batch (``view[idx]``) reads only its rows; ``np.asarray(view)`` copies them all into memory."""

    def __init__(self, store: np.ndarray, rows):
        self.store, self.rows = store, np.asarray(rows, dtype=np.int64)
        self.shape = (len(self.rows), *store.shape[1:])
        self.dtype, self.ndim = np.dtype(np.uint8), 4
        self.nbytes = int(np.prod(self.shape))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        if isinstance(key, tuple):
            return self[key[0]][(slice(None), *key[1:])] if not isinstance(key[0], (int, np.integer)) \
                else self[key[0]][key[1:]]
        rows = self.rows[key]
        if np.ndim(rows) == 0:
            return np.asarray(self.store[int(rows)])
        order = np.argsort(rows, kind="stable")  # read in file order, hand back in the asked order
        out = np.empty((len(rows), *self.shape[1:]), np.uint8)
        out[order] = self.store[rows[order]]
        return out

    def __array__(self, dtype=None, copy=None):
        out = np.empty(self.shape, np.uint8)
        for i in range(0, len(self), 4096):
            out[i:i + 4096] = self[i:i + 4096]
        return out if dtype is None else out.astype(dtype)
