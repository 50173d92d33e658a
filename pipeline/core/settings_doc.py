"""The settings reference, generated from the pydantic models: one row per setting with its name,
type, default, allowed range and description, so a setting is described once, in code. The CLI's
``<stage> --help`` prints a section's rows; the docs site's reference page is made from the same rows.

    rows(Params)                         # every setting, names like "crop.size"
    rows(CropParams, "crop")             # one section
    section_rows("train")                # the rows of params.yaml's ``train:`` section
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

REQUIRED = "required"


@dataclass(frozen=True)
class Row:
    name: str         # dotted key as in params.yaml and -S, e.g. "train.budget.cuda"; "<name>" stands for a free key
    type: str         # "int", "float or null", "one of: png, webp, jpg", "list of str", "mapping", ...
    default: str      # the default in YAML/JSON spelling ("null", "[]", "\"sample\""), or "required"
    range: str        # bounds and patterns ("1..16384", "> 0", "pattern ^[0-9a-f]{64}$"), "" if none
    description: str  # the field's description, "" if none
    group: bool = False  # a sub-model (a mapping of further settings) rather than a value


def _type_name(ann: Any) -> str:
    origin, args = get_origin(ann), get_args(ann)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is Literal:
        return "one of: " + ", ".join(str(a) for a in args)
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        name = " or ".join(_type_name(a) for a in rest)
        return f"{name} or null" if len(rest) < len(args) else name
    if origin in (list, tuple, set):
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"mapping of {_type_name(args[0])} to {_type_name(args[1])}" if args else "mapping"
    if ann is Any:
        return "any"
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return "mapping"
    return getattr(ann, "__name__", str(ann))


def _number(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)


def _range(info: Any) -> str:
    low = high = ""
    other = []
    for m in info.metadata:
        for attr, sign in (("ge", ">="), ("gt", ">")):
            if getattr(m, attr, None) is not None:
                low = f"{sign} {_number(getattr(m, attr))}"
        for attr, sign in (("le", "<="), ("lt", "<")):
            if getattr(m, attr, None) is not None:
                high = f"{sign} {_number(getattr(m, attr))}"
        if getattr(m, "min_length", None) is not None:
            other.append(f"at least {m.min_length} item(s)")
        if getattr(m, "pattern", None) is not None:
            other.append(f"pattern {m.pattern}")
    return ", ".join([b for b in (low, high) if b] + other)


def _default(info: Any) -> str:
    if info.default is PydanticUndefined and info.default_factory is None:
        return REQUIRED
    value = info.default_factory() if info.default_factory is not None else info.default
    if isinstance(value, BaseModel):
        return ""
    return json.dumps(value, ensure_ascii=False, default=str)


def _model_of(ann: Any) -> tuple[type[BaseModel] | None, bool]:
    """(the settings model ``ann`` holds, whether it is the values of a mapping keyed by free names)."""
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann, False
    if get_origin(ann) is dict:
        value = get_args(ann)[1] if get_args(ann) else None
        if isinstance(value, type) and issubclass(value, BaseModel):
            return value, True
    return None, False


def rows(model_cls: type[BaseModel], prefix: str = "") -> list[Row]:
    """Every setting of ``model_cls``, depth first in declaration order; a sub-model gives a group row
    and then its own rows, a mapping of sub-models (``train.models``) rows under ``<prefix>.<name>``."""
    out: list[Row] = []
    for name, info in model_cls.model_fields.items():
        key = f"{prefix}.{name}" if prefix else name
        sub, keyed = _model_of(info.annotation)
        description = " ".join((info.description or "").split())
        if sub is not None:
            doc = " ".join((sub.__doc__ or "").split()) if sub.__doc__ and sub.__doc__ != BaseModel.__doc__ else ""
            out.append(Row(key, "mapping of <name> to settings" if keyed else "mapping", _default(info) if keyed else "",
                           "", description or doc, group=True))
            out.extend(rows(sub, f"{key}.<name>" if keyed else key))
            continue
        out.append(Row(key, _type_name(info.annotation), _default(info), _range(info), description))
    return out


def section_rows(section: str) -> list[Row]:
    """The rows of one top-level section of params.yaml (``crop``, ``train``, ...)."""
    from pipeline.params import Params

    info = Params.model_fields[section]
    return rows(info.annotation, section)


def help_text(section: str, width: int = 110) -> str:
    """The settings of ``section`` for a command's ``--help``: name, type, default and range on one
    line, the description wrapped below it."""
    import textwrap

    from pipeline.params import Params

    if section not in Params.model_fields:  # a command with no params section of its own
        return ""
    lines = [f"settings ({section}: in params.yaml; change one for a run with -S {section}.<key>=<value>):"]
    for r in section_rows(section):
        if r.group:
            continue
        head = f"  {r.name}: {r.type}"
        if r.default:
            default = r.default if len(r.default) <= 40 else r.default[:37] + "..."
            head += f" = {default}"
        if r.range:
            head += f" ({r.range})"
        lines.append(head)
        if r.description:
            lines.extend(textwrap.wrap(r.description, width, initial_indent="      ", subsequent_indent="      "))
    return "\n".join(lines) + "\n"
