"""What the command line tells a user about a failure: one paragraph that names the input (a file, a
knob, an argument) and what to do, and an exit code; never a traceback (``--debug`` shows it).

Pure: :func:`explain` turns an exception into a :class:`Failure`; the CLI prints it. Classes of
libraries that are lazily imported (torch, PIL, requests) are recognised by name, so explaining a
failure never imports them.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# exit codes (docs/troubleshooting.md): 1 a stage could not go on, 2 a bad param or argument, 70 a bug (sysexits'
# EX_SOFTWARE), 128 + the signal for an interrupted run
EXIT_STAGE, EXIT_PARAMS, EXIT_BUG, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 2, 70, 130, 143
DEBUG_ENV = "BOORUGAN_DEBUG"
FULL = (errno.ENOSPC, errno.EDQUOT)
FULL_WORDS = ("database or disk is full", "no space left on device", "disk quota exceeded")
OOM_WORDS = ("can't allocate memory", "cannot allocate memory", "out of memory", "failed to allocate")


class Terminated(BaseException):
    """SIGTERM (a scheduler, DVC or a user's ``kill``): unwinds like Ctrl-C, so runs end KILLED and
    temporary files go."""


@dataclass(frozen=True)
class Failure:
    message: str
    code: int


def debug_wanted(flag: bool = False) -> bool:
    return flag or os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it was raised from or during (a worker's error reaches us wrapped)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _named(exc: BaseException, *names: str) -> bool:
    return any(c.__name__ in names for c in type(exc).__mro__)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def knob_for(path: str | Path | None, params: Any) -> str | None:
    """The ``paths.*`` knob whose folder (or file) holds ``path``: what a user points elsewhere."""
    if path is None or params is None:
        return None
    try:
        target = Path(path).resolve()
        best = None
        for key, value in params.paths.model_dump().items():
            root = Path(value).resolve()
            if (target == root or root in target.parents) and (best is None or len(root.parts) > best[1]):
                best = (key, len(root.parts))
    except (OSError, RuntimeError):
        return None
    return f"paths.{best[0]}" if best else None


def _disk_full(exc: BaseException, params: Any) -> str | None:
    for e in _chain(exc):
        filename = getattr(e, "filename", None) if isinstance(e, OSError) else None
        if isinstance(e, OSError) and e.errno in FULL:
            break
        if any(w in str(e).lower() for w in FULL_WORDS):
            break
    else:
        return None
    if filename is None and "database or disk is full" in str(e).lower():  # SQLite: the MLflow store
        uri = os.environ.get("MLFLOW_TRACKING_URI") or (params.tracking.tracking_uri if params else None) or "mlflow.db"
        return (f"the disk holding the MLflow store ({uri}) is full: free space there, or point MLFLOW_TRACKING_URI "
                "at another disk; outputs written before are kept, run the command again")
    if filename is None:
        return ("a disk is full (No space left on device); free space on the disk of the folders this command "
                "writes (paths.* in params.yaml), or point them at another disk with -S paths.<name>=DIR; "
                "outputs written before are kept, run the command again")
    knob = knob_for(filename, params)
    where = f"point {knob} at another disk (-S {knob}=DIR)" if knob else "write to another disk"
    return (f"the disk holding {filename} is full ({os.strerror(errno.ENOSPC)}): free space there or {where}; "
            "what was written before is kept, run the command again")


def _memory_advice(command: str, model: str | None) -> str:
    m = model or "<model>"
    return {
        "train": f"lower -S train.models.{m}.batch_size or the net widths (train.models.{m}.net.ngf / ndf / hidden / nz)",
        "evaluate": f"lower -S evaluate.batch_size or evaluate.num_samples (or the model's net widths, "
                    f"train.models.{m}.net.*)",
        "sample": "lower --n (fewer faces per grid)",
        "play": "lower the count of faces asked for, or play.max_models",
        "crop": "lower -S crop.workers or crop.detect_max_side / crop.retry_side",
        "tag": "lower -S tag.batch_size",
    }.get(command, "lower the batch sizes or the sizes in params.yaml")


def _out_of_memory(exc: BaseException, command: str, model: str | None) -> str | None:
    for e in _chain(exc):
        gpu = _named(e, "OutOfMemoryError") or "cuda out of memory" in str(e).lower()
        if isinstance(e, MemoryError) or gpu or (isinstance(e, RuntimeError)
                                                 and any(w in str(e).lower() for w in OOM_WORDS)):
            what = "the GPU ran out of memory" if gpu else "out of memory"
            return f"{what} ({_first_line(e)[:200]}): {_memory_advice(command, model)}, then run the command again"
    return None


def _os_error(e: OSError, params: Any) -> str:
    name = e.filename if e.filename is not None else None
    target = f"{name}" + (f" -> {e.filename2}" if e.filename2 else "")
    knob = knob_for(name, params)
    elsewhere = f", or point {knob} elsewhere (-S {knob}=DIR)" if knob else ""
    if e.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied: {target}; make it readable and writable for this user{elsewhere}"
    if e.errno == errno.EROFS:
        return f"{target} is on a read-only file system: mount it writable{elsewhere or ', or write elsewhere'}"
    if e.errno == errno.ENOENT:
        return f"{target} does not exist; check the path{elsewhere}"
    if e.errno == errno.EISDIR:
        return f"{target} is a folder where a file was expected; check the path{elsewhere}"
    if e.errno == errno.ENOTDIR:
        return f"a part of {target} is a file where a folder was expected; check the path{elsewhere}"
    return f"{target}: {e.strerror or _first_line(e)}; check the file and its disk{elsewhere}"


def explain(exc: BaseException, command: str, params: Any = None, model: str | None = None) -> Failure:
    """The paragraph and exit code for ``exc`` raised by ``boorugan <command> [model]``."""
    from pipeline.core.errors import StageError
    from pipeline.core.settings import ParamsError

    if isinstance(exc, KeyboardInterrupt):
        return Failure("interrupted; what was written is kept, run the same command again to go on", EXIT_INTERRUPTED)
    if isinstance(exc, Terminated):
        return Failure("terminated (SIGTERM); what was written is kept, run the same command again to go on",
                       EXIT_TERMINATED)
    if isinstance(exc, ParamsError):
        return Failure(str(exc), EXIT_PARAMS)
    if isinstance(exc, StageError):
        return Failure(str(exc), EXIT_STAGE)
    if text := _disk_full(exc, params):
        return Failure(text, EXIT_STAGE)
    if text := _out_of_memory(exc, command, model):
        return Failure(text, EXIT_STAGE)
    if _named(exc, "OperationalError") and "already exists" in str(exc):  # a store a kill cut while it was made
        uri = os.environ.get("MLFLOW_TRACKING_URI") or (params.tracking.tracking_uri if params else None) or "mlflow.db"
        return Failure(f"the MLflow store {uri} was left half-created by a run killed while it made it "
                       f"({_first_line(exc)[:160]}); move that file away (it holds no run yet) and run again",
                       EXIT_STAGE)
    if _named(exc, "DecompressionBombError"):
        return Failure(f"a picture declares more pixels than allowed ({_first_line(exc)}): a decompression bomb or a "
                       "damaged file; use a smaller picture (scrape: scrape.max_pixels sets the limit)", EXIT_STAGE)
    if _named(exc, "DownloadError", "GaveUp", "ConnectionError", "Timeout", "TimeoutError"):
        return Failure(f"a network transfer failed ({_first_line(exc)}); check the connection and the server, then "
                       "run the command again: finished downloads are kept", EXIT_STAGE)
    if isinstance(exc, FileNotFoundError) and exc.errno is None:  # the project's own "X does not exist; run Y"
        return Failure(str(exc), EXIT_STAGE)
    if isinstance(exc, OSError) and exc.filename is not None:
        return Failure(_os_error(exc, params), EXIT_STAGE)
    return Failure(f"unexpected error ({type(exc).__name__}: {_first_line(exc)[:300]}). This is a bug in boorugan, "
                   f"not in what you did: please report it at {issues_url()} with the command and the traceback "
                   f"(run it again with --debug, or {DEBUG_ENV}=1, to see it)", EXIT_BUG)


def issues_url() -> str:
    """pyproject's [project.urls] Issues (the checkout's, else the installed metadata's)."""
    import tomllib
    from importlib import metadata

    toml = Path(__file__).resolve().parents[2] / "pyproject.toml"
    try:
        url = tomllib.loads(toml.read_text()).get("project", {}).get("urls", {}).get("Issues")
        if url:
            return url
    except (OSError, tomllib.TOMLDecodeError):
        pass
    try:
        for entry in metadata.metadata("boorugan").get_all("Project-URL") or []:
            label, _, url = entry.partition(",")
            if label.strip().lower() == "issues":
                return url.strip()
    except metadata.PackageNotFoundError:
        pass
    return "the project's issue tracker"
