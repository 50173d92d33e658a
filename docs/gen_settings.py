"""The settings reference, generated from the pydantic models, so a setting is described once, in code.

The rows are ``pipeline.core.settings_doc.rows`` over the composed ``pipeline.params.Params`` (the same
rows every command's ``--help`` lists) and, for ``train.models.<name>.net``, over the architectures' net
models of ``models/registry.py``. ``hooks.py`` (mkdocs) turns it into the page
``reference/settings.md`` at build time; ``python docs/gen_settings.py`` prints it.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from pydantic import BaseModel

from pipeline.core import settings_doc
from pipeline.core.settings_doc import Row


def rows(model_cls: type[BaseModel], prefix: str = "") -> list[Row]:
    """The value rows of ``model_cls`` (the group rows of sub-models become the page's headings)."""
    return [r for r in settings_doc.rows(model_cls, prefix) if not r.group]


def net_rows(prefix: str = "train.models.<name>.net") -> Iterator[tuple[str, list[str], list[Row]]]:
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
    return text.replace("|", "\\|").replace("\n", " ")


def _table(items: list[Row]) -> list[str]:
    out = ["| setting | type | default | range | description |", "|---|---|---|---|---|"]
    for r in items:
        default = f"`{_cell(r.default)}`" if r.default else ""
        out.append(f"| `{r.name}` | {_cell(r.type)} | {default} | {_cell(r.range)} | {_cell(r.description)} |")
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
        cls = field.annotation if inspect.isclass(field.annotation) and issubclass(field.annotation, BaseModel) else None
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
