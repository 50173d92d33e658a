"""Read ``labels/manual.csv``: hand-given attribute values, keyed to faces.

Format (UTF-8, a header row): one key column -- ``face_id`` (as in data/faces/index.parquet),
``md5`` (the source image: labels every face cropped from it) or ``file`` (a face file name, a
stored source file name or the source's original file name) -- then value columns, either
- one per attribute: a group value (``blonde``, or the tag ``blonde hair``/``Blonde_Hair``) or, for
  a binary attribute, yes/no (also true/false, 1/0); empty or ``unknown`` = not given; or
- ``tags``: vocabulary tags separated by ``,`` ``;`` or ``|``; a binary attribute not listed stays
  unknown (a list says what is there, not what is not).
An optional ``comment`` column is ignored. Spelling is normalised (case, ``_`` vs space, gray/grey).

Every problem in the file (bad encoding, wrong field count, unknown ids, unknown tags or values,
two values for one group, a face labelled twice) is collected with its line number and reported
at once, before anything is written.
"""

from __future__ import annotations

import csv
import difflib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core.csvrows import numbered_rows
from pipeline.core.errors import StageError
from pipeline.core.vocab import UNKNOWN, normalise_tag
from pipeline.tag.params import VocabularyParams

KEYS = ("face_id", "md5", "file")
YES, NO = {"yes", "y", "true", "1"}, {"no", "n", "false", "0"}
MAX_SHOWN = 50


class ManualLabelsError(StageError):
    def __init__(self, path: Path, problems: list[str]):
        self.problems = problems
        shown = problems[:MAX_SHOWN] + ([f"... and {len(problems) - MAX_SHOWN} more"] if len(problems) > MAX_SHOWN else [])
        super().__init__(f"{path}: {len(problems)} problem(s); nothing was written:\n" + "\n".join(f"  {p}" for p in shown))


@dataclass
class ManualLabel:
    line: int
    values: dict[str, str] = field(default_factory=dict)  # attribute -> value ("blonde", "yes", "no")


def decode_lines(data: bytes) -> tuple[str, list[str]]:
    """UTF-8 text (undecodable bytes replaced) and a problem for every line that had any."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    problems = []
    for n, raw in enumerate(data.split(b"\n"), start=1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as e:
            problems.append(f"line {n}: not UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1}); save the file as UTF-8")
    return data.decode("utf-8", errors="replace"), problems


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


class _Lookup:
    """Spellings -> (attribute, value) for a vocabulary."""

    def __init__(self, vocab: VocabularyParams):
        self.vocab = vocab
        self.by_tag: dict[str, tuple[str, str]] = {}
        self.group_values: dict[str, dict[str, str]] = {}
        for g, values in vocab.groups.items():
            spell = self.group_values[g] = {}
            for v, t in values.items():
                self.by_tag[normalise_tag(t)] = (g, v)
                for s in (v, v.replace("_", " "), t):
                    spell[normalise_tag(s)] = v
        for b, t in vocab.binary.items():
            self.by_tag[normalise_tag(t)] = (b, "yes")

    def tag_values(self, cell: str) -> tuple[list[tuple[str, str]], list[str]]:
        """A ``tags`` cell ("blonde hair, smile"; also ; or | between tags) -> the (attribute, value) of
        each tag the vocabulary knows, and a problem (with a suggestion) for each it does not."""
        found, problems = [], []
        for raw in re.split(r"[,;|]", cell):
            t = normalise_tag(raw)
            if not t:
                continue
            if t in self.by_tag:
                found.append(self.by_tag[t])
            else:
                problems.append(f"unknown tag {raw.strip()!r}{_suggest(t, self.by_tag)}")
        return found, problems

    def column_value(self, attr: str, text: str) -> str | None:
        """None when not given; raises ValueError with a hint when not understood."""
        t = normalise_tag(text)
        if t in ("", UNKNOWN):
            return None
        if attr in self.vocab.binary:
            if t in YES:
                return "yes"
            if t in NO:
                return "no"
            raise ValueError(f"{attr}: {text!r} is not yes/no")
        if t in self.group_values[attr]:
            return self.group_values[attr][t]
        raise ValueError(f"{attr}: unknown value {text!r}{_suggest(t, self.group_values[attr])}")


def face_keys(index, manifest=None) -> dict[str, dict[str, list[str]]]:
    """key column -> spelling -> face ids."""
    keys: dict[str, dict[str, list[str]]] = {"face_id": {}, "md5": {}, "file": {}}
    for fid, md5, path in zip(index["face_id"], index["md5"], index["path"]):
        keys["face_id"].setdefault(str(fid), []).append(fid)
        keys["md5"].setdefault(str(md5).lower(), []).append(fid)
        # the face file's name, and the name it had before names carried the crop config
        # (<face_id>.<format>), which manual files written then still use
        for name in dict.fromkeys((Path(path).name, f"{fid}{Path(path).suffix}")):
            keys["file"].setdefault(name, []).append(fid)
    if manifest is not None:
        by_md5 = keys["md5"]
        for md5, path, origin in zip(manifest["md5"], manifest["path"], manifest.get("origin", manifest["path"])):
            for name in {Path(str(path)).name, Path(str(origin)).name}:
                for fid in by_md5.get(str(md5).lower(), []):
                    keys["file"].setdefault(name, [])
                    if fid not in keys["file"][name]:
                        keys["file"][name].append(fid)
    return keys


def read_manual(path: str | Path, vocab: VocabularyParams, index, manifest=None) -> dict[str, ManualLabel]:
    """face id -> its manual label; an absent file means no manual labels."""
    path = Path(path)
    if not path.exists():
        return {}
    text, problems = decode_lines(path.read_bytes())
    lookup = _Lookup(vocab)
    rows = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(rows)
    except StopIteration:
        return {}
    except csv.Error as e:
        raise ManualLabelsError(path, problems + [f"line 1: {e}"]) from None
    cols = [re.sub(r"[\s-]+", "_", h.strip().lower()) for h in header]
    present = [k for k in KEYS if k in cols]
    allowed = set(KEYS) | set(vocab.groups) | set(vocab.binary) | {"tags", "comment"}
    if len(present) != 1:
        problems.append(f"line 1: the header needs exactly one key column of {list(KEYS)}, found {present or 'none'}")
    for c in cols:
        if c not in allowed:
            problems.append(f"line 1: unknown column {c!r}{_suggest(c, allowed)}; columns are a key "
                            f"({', '.join(KEYS)}), attributes ({', '.join(sorted(allowed - set(KEYS)))})")
    if problems and any(p.startswith("line 1:") for p in problems):
        raise ManualLabelsError(path, problems)
    key_col = cols.index(present[0])
    keys = face_keys(index, manifest)[present[0]]
    labels: dict[str, ManualLabel] = {}
    for start, row in numbered_rows(rows, len(cols), problems):
        key = row[key_col].strip()
        key = key.lower() if present[0] == "md5" else Path(key).name if present[0] == "file" else key
        fids = keys.get(key)
        if not fids:
            hint = _suggest(key, keys) if len(keys) < 20000 else ""
            problems.append(f"line {start}: unknown {present[0]} {row[key_col].strip()!r}{hint}")
            continue
        values: dict[str, str] = {}
        row_problems = []

        def put(attr: str, value: str, values=values, row_problems=row_problems, start=start) -> None:
            if values.get(attr, value) != value:
                row_problems.append(f"line {start}: {attr} given as both {values[attr]!r} and {value!r}")
            values[attr] = value

        for c, cell in zip(cols, row):
            if c in KEYS or c == "comment":
                continue
            if c == "tags":
                found, unknown = lookup.tag_values(cell)
                row_problems += [f"line {start}: {p}" for p in unknown]
                for attr, value in found:
                    put(attr, value)
                continue
            try:
                v = lookup.column_value(c, cell)
            except ValueError as e:
                row_problems.append(f"line {start}: {e}")
                continue
            if v is not None:
                put(c, v)
        problems += row_problems
        for fid in fids:
            if fid in labels:
                problems.append(f"line {start}: face {fid} is already labelled on line {labels[fid].line} (duplicate)")
            else:
                labels[fid] = ManualLabel(start, values)
    if problems:
        raise ManualLabelsError(path, problems)
    return labels


def manual_values(labels: dict[str, ManualLabel]) -> dict[str, dict[str, str]]:
    """face id -> attribute -> value, as :func:`write_manual` takes it."""
    return {fid: dict(label.values) for fid, label in labels.items()}


def manual_csv(rows: dict[str, dict[str, str]], vocab: VocabularyParams) -> str:
    """The canonical form of the file: a ``face_id`` column, then one column per attribute in
    vocabulary order (empty = not given); faces without any value are left out. What
    :func:`read_manual` reads back to the same values (the labelling page writes this)."""
    attrs = list(vocab.groups) + list(vocab.binary)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["face_id", *attrs])
    for fid, values in rows.items():
        unknown = sorted(set(values) - set(attrs))
        if unknown:
            raise ValueError(f"face {fid}: attribute(s) {unknown} are not in tag.vocabulary ({attrs})")
        if any(values.get(a) for a in attrs):
            w.writerow([fid, *(values.get(a) or "" for a in attrs)])
    return out.getvalue()


def write_manual(path: str | Path, rows: dict[str, dict[str, str]], vocab: VocabularyParams) -> None:
    """Replace ``path`` atomically with :func:`manual_csv` of ``rows`` (a crash leaves the old file)."""
    from pipeline.core.atomic import write_bytes

    write_bytes(path, manual_csv(rows, vocab).encode("utf-8"))
