"""``labels/manual.csv`` as the labelling page edits it: validated partial updates applied by
read-modify-write under a lock, the file replaced atomically.

The lock is both a thread lock (uvicorn runs handlers in a thread pool) and an ``flock`` on a
sidecar ``.<name>.lock`` file (two servers, or the page and a script, on one file), and the file is
re-read inside it, so two tabs saving at once each see the other's edit and neither is lost.
Values are validated against the vocabulary before anything is touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
from pathlib import Path

from pipeline.core.errors import StageError
from pipeline.core.vocab import UNKNOWN
from pipeline.labels.manual import manual_values, read_manual, write_manual
from pipeline.tag.params import VocabularyParams

BINARY_VALUES = ("yes", "no")


class LabelValueError(ValueError):
    """A value or attribute outside the vocabulary; the message says what is allowed."""


def allowed_values(vocab: VocabularyParams) -> dict[str, list[str]]:
    """attribute -> the values a label may take (``unknown``/empty clears it)."""
    return {**{g: list(vs) for g, vs in vocab.groups.items()}, **{b: list(BINARY_VALUES) for b in vocab.binary}}


def check_changes(changes: dict, vocab: VocabularyParams) -> dict[str, str | None]:
    """attribute -> value, or None to clear; raises LabelValueError naming the bad input."""
    if not isinstance(changes, dict) or not changes:
        raise LabelValueError("send {\"values\": {attribute: value}} with at least one attribute")
    allowed = allowed_values(vocab)
    out: dict[str, str | None] = {}
    for attr, value in changes.items():
        if attr not in allowed:
            raise LabelValueError(f"unknown attribute {attr!r}; the vocabulary has {list(allowed)}")
        if value is None or value in ("", UNKNOWN):
            out[attr] = None
        elif not isinstance(value, str) or value not in allowed[attr]:
            raise LabelValueError(f"{attr}: {value!r} is not in the vocabulary; allowed: "
                                  f"{allowed[attr] + [UNKNOWN]} (tag.vocabulary in params.yaml)")
        else:
            out[attr] = value
    return out


class ManualStore:
    """The manual labels of one file, keyed by face id (the ids of ``index``)."""

    def __init__(self, path: str | Path, vocab: VocabularyParams, index, manifest=None):
        self.path = Path(path)
        self.vocab = vocab
        self.index = index
        self.manifest = manifest
        self.order = {str(f): i for i, f in enumerate(index["face_id"])}
        self._thread_lock = threading.Lock()
        self._cache: tuple[tuple[int, int] | None, dict[str, dict[str, str]]] = (None, {})

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size

    def _read(self) -> dict[str, dict[str, str]]:
        return manual_values(read_manual(self.path, self.vocab, self.index, self.manifest))

    def read(self) -> dict[str, dict[str, str]]:
        """face id -> values; re-read only when the file changed (someone may edit it by hand)."""
        stamp = self._stamp()
        if stamp is None or stamp != self._cache[0]:
            self._cache = (stamp, self._read())
        return self._cache[1]

    @contextlib.contextmanager
    def _locked(self):
        lock_path = self.path.with_name(f".{self.path.name}.lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with self._thread_lock, open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def update(self, face_id: str, changes: dict) -> dict[str, str]:
        """Apply ``changes`` (attribute -> value or None) to one face; returns its manual values.

        Raises KeyError for a face id not in the index, LabelValueError for a value outside the
        vocabulary, StageError when the file on disk has problems (it is then left as it is)."""
        if face_id not in self.order:
            raise KeyError(face_id)
        checked = check_changes(changes, self.vocab)
        with self._locked():
            try:
                rows = self._read()
            except StageError as e:
                raise StageError(f"not saved: {self.path} cannot be read, fix it first.\n{e}") from None
            values = dict(rows.get(face_id, {}))
            for attr, value in checked.items():
                if value is None:
                    values.pop(attr, None)
                else:
                    values[attr] = value
            rows[face_id] = values
            ordered = dict(sorted(rows.items(), key=lambda kv: self.order.get(kv[0], len(self.order))))
            write_manual(self.path, ordered, self.vocab)
            self._cache = (self._stamp(), {f: v for f, v in ordered.items() if v})
        return values
