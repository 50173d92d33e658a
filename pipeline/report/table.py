"""Which way each metric is better, and the model x metric table with the best per column marked.

Pure functions shared by the Markdown and HTML renderings of the report.
"""

from __future__ import annotations

from typing import Any

LOWER = ("ssl_fd", "ssl_kid", "fid", "kid", "near_duplicate_share", "memorization_share")
HIGHER = ("is", "precision", "recall", "ssl_precision", "ssl_recall", "ssl_coverage", "attr_acc")
CLOSEST_TO_ONE = ("diversity_ratio", "ssl_density")
UNRANKED_NOTE = ("c2st_acc is shown but not ranked: it saturates at 1.0 for most GANs (0.5 = indistinguishable). "
                 "ssl_fd_real_halves is ssl_fd between two halves of the real faces: the floor a perfect generator reaches; "
                 "ssl_fd_noise is ssl_fd of uniform noise: what drawing nothing gets.")
HIDDEN = ("step", "epoch", "unavailable")


def direction(key: str) -> str | None:
    if key in LOWER:
        return "lower"
    if key in HIGHER or key.startswith("attr_acc"):
        return "higher"
    if key in CLOSEST_TO_ONE:
        return "closest to 1"
    return None


def columns(rows: list[dict[str, Any]]) -> list[str]:
    """Metric keys in a stable order: ranked ones first, then the rest (std, counts) alphabetically."""
    keys = {k for r in rows for k, v in r["metrics"].items() if k not in HIDDEN}
    for r in rows:  # unavailable metrics still get their column, so the reason is visible
        keys.update(UNAVAILABLE_COLUMNS.get(n, n) for n in r["metrics"].get("unavailable", {}))
    ranked = [k for k in keys if direction(k)]
    order = {k: i for i, k in enumerate((*LOWER, *HIGHER, *CLOSEST_TO_ONE))}
    out = []
    for k in sorted(ranked, key=lambda k: (order.get(k, len(order)), k)):  # each with its scale right after it
        out += [k, *(s for s in (f"{k}_real_halves", f"{k}_noise") if s in keys)]
    return out + sorted(k for k in keys if not direction(k) and k not in out)


UNAVAILABLE_COLUMNS = {"inception": "fid", "attr_acc": "attr_acc"}  # metric name -> the column that shows its reason


def best(rows: list[dict[str, Any]], key: str, margin: float = 0.0) -> float | None:
    """The value to mark best in column ``key``, or None: with one model, a tie, or (``margin``,
    ``report.clear_margin``) a winner less than that share ahead of the runner-up (too close to call)."""
    d = direction(key)
    vals = [r["metrics"][key] for r in rows
            if r.get("ranked", True) and isinstance(r["metrics"].get(key), (int, float))]
    if d is None or len(set(vals)) < 2:  # one model, or a tie across all: nothing to mark
        return None
    # distance from ideal: smaller is better whatever the direction
    gap = {"lower": lambda v: v, "higher": lambda v: -v, "closest to 1": lambda v: abs(v - 1)}[d]
    first, second = sorted(set(vals), key=gap)[:2]
    if d == "higher":
        clear = first >= second / (1 - margin) if second > 0 else first > second
    else:
        clear = gap(first) <= (1 - margin) * gap(second)
    return first if clear else None


def near_noise(rows: list[dict[str, Any]], share: float | None) -> bool:
    """True when every ranked model's ssl_fd is at least ``share`` of what uniform noise gets on the
    same faces: none has learned to draw faces yet, so crowning one would mislead."""
    if share is None:
        return False
    scored = [r["metrics"] for r in rows if r.get("ranked", True) and not r.get("skipped")
              and isinstance(r["metrics"].get("ssl_fd"), (int, float)) and r["metrics"].get("ssl_fd_noise")]
    return bool(scored) and all(m["ssl_fd"] >= share * m["ssl_fd_noise"] for m in scored)


def verdict(rows: list[dict[str, Any]], keys: list[str], margin: float,
            share: float | None) -> tuple[dict[str, float | None], str]:
    """(the value to mark best per column, a warning for the top of the report or ''). No mark at all
    when every model is near the noise value; no mark in a column where the winner is not clear."""
    if near_noise(rows, share):
        worst = max(r["metrics"]["ssl_fd"] / r["metrics"]["ssl_fd_noise"] for r in rows
                    if isinstance(r["metrics"].get("ssl_fd"), (int, float)) and r["metrics"].get("ssl_fd_noise"))
        return {k: None for k in keys}, (
            f"No model has learned faces yet: every ssl_fd is at least {share:.0%} of what uniform noise gets on these "
            f"faces (up to {worst:.0%}), so no best is marked. Train longer: raise train.models.<model>.epochs, or "
            "train.budget on a GPU.")
    return {k: best(rows, k, margin) for k in keys}, ""


def is_best(row: dict[str, Any], key: str, marks: dict[str, float | None]) -> bool:
    return row.get("ranked", True) and marks[key] is not None and row["metrics"].get(key) == marks[key]


def unranked_note(rows: list[dict[str, Any]]) -> str:
    """Why some models' numbers are not ranked against the others ('' when all are)."""
    names = [r["model"] for r in rows if not r.get("ranked", True)]
    if not names:
        return ""
    return (f" {', '.join(names)}: drawn from the sketches of real faces, so their numbers measure reconstruction; "
            "shown, not ranked against models that draw from noise.")


def reason_notes(rows: list[dict[str, Any]]) -> tuple[list[tuple[str, str, str]], dict[str, list[tuple[str, str]]]]:
    """(shared, own): each distinct (metric, reason) once. A reason several models share (weights that
    cannot be fetched here) goes to the top of the page as (metric, reason, "every model" or their names);
    a reason only one model has stays with that model, as (metric, reason) under its name."""
    groups: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        for metric, reason in r["metrics"].get("unavailable", {}).items():
            groups.setdefault((metric, reason), []).append(r["model"])
    everyone = [r["model"] for r in rows if not r.get("skipped")]
    shared, own = [], {}
    for (metric, reason), models in groups.items():
        if len(models) > 1 or len(rows) == 1:
            every = "every trained model" if len(everyone) < len(rows) else "every model"
            who = every if models == everyone else ", ".join(models)
            shared.append((metric, reason, who))
        else:
            own.setdefault(models[0], []).append((metric, reason))
    return shared, own


def cell(row: dict[str, Any], key: str) -> tuple[str, str | None]:
    """(text, reason shown on hover / in a footnote when unavailable)."""
    v = row["metrics"].get(key)
    if isinstance(v, float):
        return f"{v:.4g}", None
    if isinstance(v, int):
        return str(v), None
    reasons = row["metrics"].get("unavailable", {})
    for metric, col in UNAVAILABLE_COLUMNS.items():
        if col == key and metric in reasons:
            return "unavailable", reasons[metric]
    return "n/a", None
