"""The settings reference, generated from the pydantic models, so a setting is described once, in code.

Walks the composed ``pipeline.params.Params`` recursively through pydantic's ``model_fields`` (so it
keeps working wherever the stage settings classes live) and, for ``train.models.<name>.net``, the
architectures' net models of ``models/registry.py``. ``hooks.py`` (mkdocs) turns it into the page
``reference/settings.md`` at build time; ``python docs/gen_settings.py`` prints it.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

DICT_KEY = {"models": "<name>"}  # dict[str, Model] fields: how the key is written in a setting's name


@dataclass(frozen=True)
class Row:
    name: str
    type: str
    default: str
    range: str
    description: str


def _args(tp: Any) -> tuple[Any, ...]:
    return typing.get_args(tp)


def _strip(tp: Any) -> Any:
    """Annotated[X, ...] -> X (the validators the params add do not change what a user writes)."""
    while typing.get_origin(tp) is typing.Annotated:
        tp = _args(tp)[0]
    return tp


def type_text(tp: Any) -> str:
    tp = _strip(tp)
    origin = typing.get_origin(tp)
    if tp is type(None):
        return "null"
    if origin is typing.Literal:
        return " \\| ".join(str(a).lower() if isinstance(a, bool) else str(a) for a in _args(tp))
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(type_text(a) for a in _args(tp))
    if origin in (list, tuple):
        return f"list of {type_text(_args(tp)[0])}" if _args(tp) else "list"
    if origin is dict:
        return "mapping" if not _args(tp) else f"mapping of {type_text(_args(tp)[0])} to {type_text(_args(tp)[1])}"
    if inspect.isclass(tp) and issubclass(tp, BaseModel):
        return "section"
    return {int: "integer", float: "number", str: "text", bool: "true \\| false"}.get(tp, getattr(tp, "__name__", str(tp)))


def _model_in(tp: Any) -> type[BaseModel] | None:
    tp = _strip(tp)
    if inspect.isclass(tp) and issubclass(tp, BaseModel):
        return tp
    return None


def _dict_of_models(tp: Any) -> type[BaseModel] | None:
    tp = _strip(tp)
    if typing.get_origin(tp) is dict and len(_args(tp)) == 2:
        return _model_in(_args(tp)[1])
    return None


def default_text(field) -> str:
    if field.default_factory is not None:
        try:
            value = field.default_factory()
        except TypeError:  # a factory that wants the validated data
            return "(computed)"
    elif field.default is PydanticUndefined:
        return "(required)"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return "(section)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict) and len(str(value)) > 60:
        return f"{len(value)} entries"
    return str(value)


def range_text(field) -> str:
    bounds = []
    for m in field.metadata:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            value = getattr(m, attr, None)
            if value is not None:
                bounds.append(f"{sign} {value:,}" if isinstance(value, int) and not isinstance(value, bool) else
                              f"{sign} {value}")
        for attr in ("min_length", "max_length"):
            value = getattr(m, attr, None)
            if value is not None:
                bounds.append(f"{attr.replace('_', ' ')} {value}")
    return ", ".join(bounds)


def rows(model_cls: type[BaseModel], prefix: str = "") -> Iterator[Row]:
    """Every leaf setting of ``model_cls`` (sections recursed into), in declaration order."""
    for key, field in model_cls.model_fields.items():
        name = f"{prefix}{key}"
        inner = _model_in(field.annotation)
        if inner is not None:
            yield from rows(inner, f"{name}.")
            continue
        entries = _dict_of_models(field.annotation)
        if entries is not None:
            yield from rows(entries, f"{name}.{DICT_KEY.get(key, '<key>')}.")
            continue
        yield Row(name, type_text(field.annotation), default_text(field), range_text(field),
                  " ".join((field.description or "").split()))


def net_rows(prefix: str = "train.models.<name>.net.") -> Iterator[tuple[str, list[str], list[Row]]]:
    """Per net model of models/registry.py: its docstring's first line, the archs using it, its rows."""
    from models.registry import ARCHS

    by_net: dict[type, list[str]] = {}
    for arch, spec in ARCHS.items():
        by_net.setdefault(spec.net, []).append(arch)
    for net, archs in by_net.items():
        yield (inspect.getdoc(net) or net.__name__).split("\n")[0], archs, list(rows(net, prefix))


def yaml_comments(path: str | Path) -> dict[str, str]:
    """``key: value  # comment`` lines of params.yaml by dotted name, for settings whose field has no
    description yet (the bridge until every description lives in its Field; entries of train.models
    are read as ``train.models.<name>``)."""
    found: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        match = re.match(r"^(\s*)([A-Za-z_][\w]*):(.*)$", line)
        if not match:
            continue
        indent, key, rest = len(match[1]), match[2], match[3]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        names = [k for _, k in stack] + [key]
        if len(names) >= 3 and names[:2] == ["train", "models"]:
            names[2] = "<name>"
        if "#" in rest and not rest.strip().startswith(("'", '"')):
            comment = rest.split("#", 1)[1].strip()
            found.setdefault(".".join(names), comment)
        stack.append((indent, key))
    return found


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") if "\\|" not in text else text


def _table(items: list[Row]) -> list[str]:
    out = ["| setting | type | default | range | description |", "|---|---|---|---|---|"]
    for r in items:
        out.append(f"| `{r.name}` | {r.type} | `{_cell(r.default)}` | {r.range} | {_cell(r.description)} |")
    return out


def settings_markdown(params_yaml: str | Path = Path(__file__).resolve().parents[1] / "params.yaml") -> str:
    """The whole page: one table per top-level section of params.yaml, then the nets per architecture."""
    from pipeline.params import Params

    comments = yaml_comments(params_yaml)

    lines = ["# Settings reference", "",
             "Every setting of `params.yaml`, generated from the settings models in the code when the site is built "
             "(`docs/gen_settings.py`), so this page cannot drift from what the pipeline validates. Override any of "
             "them for one run with `-S name=value` (`boorugan <stage> -S ...` or `dvc exp run -S ...`); a value "
             "outside its range or an unknown name stops the run before any work, naming the setting.", "",
             "`<name>` is an entry of `train.models` (e.g. `dcgan`); `null` means unset.", ""]
    all_rows = [r if r.description else replace(r, description=comments.get(r.name, "")) for r in rows(Params)]
    for section, field in Params.model_fields.items():
        cls = _model_in(field.annotation)
        doc = " ".join(inspect.cleandoc(cls.__dict__.get("__doc__") or "").split("\n\n")[0].split()) if cls else ""
        lines += [f"## `{section}`", ""] + ([doc, ""] if doc else [])
        lines += _table([r for r in all_rows if r.name.split(".")[0] == section]) + [""]
    lines += ["## `train.models.<name>.net`", "",
              "The architecture's own settings, checked against the entry's `arch` (`models/registry.py`).", ""]
    for doc, archs, items in net_rows():
        lines += [f"### arch {', '.join(f'`{a}`' for a in archs)}", "", doc, ""] + _table(items) + [""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(settings_markdown())
