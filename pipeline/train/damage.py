"""What is wrong with a checkpoint file that did not load, in words a user can act on.

Asked only after ``torch.load`` failed (or returned something that is not ours), so a healthy load
costs nothing. Nothing here unpickles: the pickle stream is read with ``pickletools``, which lists
opcodes without running them, so a hostile file is named, never executed.
"""

from __future__ import annotations

import io
import pickletools
import re
import zipfile
from pathlib import Path

TRUNCATED = "truncated"
INCOMPLETE = "incomplete"
CORRUPT = "corrupt"
FOREIGN = "not a checkpoint of this project"
CODE = "refused: contains code"

_ZIP_MAGIC = b"PK\x03\x04"
_READ_LIMIT = 64 << 20  # a bare (non-archive) file is scanned up to here: ours are archives, others need not be read whole
_STRING_OPS = {"UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "STRING", "BINSTRING", "SHORT_BINSTRING"}
_PUT_OPS = {"PUT", "BINPUT", "LONG_BINPUT"}
_GET_OPS = {"GET", "BINGET", "LONG_BINGET"}
CHECKPOINT_KEYS = ("G", "meta", "step")
META_KEYS = ("arch", "net", "image_size", "channels")


def diagnose(path: Path, error: BaseException) -> str:
    """Why ``path`` failed to load with ``error``: one of the kinds above, with the detail."""
    size = path.stat().st_size
    if size == 0:
        return f"{TRUNCATED} (the file is empty: an interrupted write or copy, or a full disk)"
    with open(path, "rb") as f:
        head = f.read(len(_ZIP_MAGIC))
        if head != _ZIP_MAGIC:
            code = code_in(head + f.read(_READ_LIMIT))
            if code:
                return _code(code)
            return f"{FOREIGN} (not a PyTorch archive)"
    return _archive(path, error)


def _code(name: str) -> str:
    return f"{CODE} (loading it would call {name}; nothing in it was run)"


def _archive(path: Path, error: BaseException) -> str:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        return f"{TRUNCATED} (the end of the archive is missing: an interrupted write or copy, or a full disk)"
    with zf:
        names = zf.namelist()
        pickles = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
        if not pickles:
            if not any("/data/" in n or n.endswith(".format_version") for n in names):
                return f"{FOREIGN} (a zip archive, not a PyTorch one)"
            return f"{INCOMPLETE} (the archive lacks data.pkl)"
        try:
            bad = zf.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            bad = f"? ({e})"
        if bad:
            return f"{CORRUPT} ({bad.split('/', 1)[-1]} in it fails its checksum)"
        code = code_in(zf.read(pickles[0]))
    if code:
        return _code(code)
    missing = re.search(r"failed locating file (\S+?):? file not found", str(error))
    if missing:
        return f"{INCOMPLETE} (the archive lacks {missing.group(1)})"
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if "weights_only" in first:  # torch's own advice is to load it unsafely: not ours to pass on
        first = type(error).__name__
    return f"{CORRUPT} ({first[:200]})"


def code_in(stream: bytes) -> str | None:
    """The first callable a pickle would import that is not torch's own (what ``weights_only``
    refuses), as ``module.name``; None when there is none or it is no pickle."""
    last_str: str | None = None
    strings: list[str | None] = []
    memo: dict[int, str | None] = {}
    try:
        for op, arg, _ in pickletools.genops(io.BytesIO(stream)):
            name = op.name
            found = None
            if name in ("GLOBAL", "INST"):
                module, _, attr = str(arg).partition(" ")
                found = f"{module}.{attr}"
            elif name == "STACK_GLOBAL":
                found = ".".join(s or "?" for s in strings[-2:]) if len(strings) >= 2 else "an unnamed callable"
            elif name in _STRING_OPS:
                strings.append(str(arg))
            elif name == "MEMOIZE":
                memo[len(memo)] = last_str
            elif name in _PUT_OPS:
                memo[int(arg)] = last_str
            elif name in _GET_OPS:
                strings.append(memo.get(int(arg)))
            if name in _STRING_OPS:
                last_str = str(arg)
            elif name in _GET_OPS:
                last_str = memo.get(int(arg))
            elif name != "MEMOIZE" and name not in _PUT_OPS:
                last_str = None
            if found is not None and not _torch_own(found):
                return found
    except Exception:  # noqa: BLE001 - the stream ends or turns to garbage: what was read so far is the answer
        pass
    return None


def _torch_own(name: str) -> bool:
    return name.startswith("torch.") or name == "collections.OrderedDict"


def not_ours(state: object) -> str | None:
    """Why a file that loaded is still not a checkpoint of this project (None: it is)."""
    if not isinstance(state, dict):
        return f"{FOREIGN} (it holds a {type(state).__name__}, not a checkpoint)"
    missing = [k for k in CHECKPOINT_KEYS if k not in state]
    if missing:
        return f"{FOREIGN} (a PyTorch file without {', '.join(missing)})"
    meta = state["meta"]
    lacks = [k for k in META_KEYS if not isinstance(meta, dict) or k not in meta]
    if lacks:
        return f"{FOREIGN} (its meta lacks {', '.join(lacks)})"
    return None
