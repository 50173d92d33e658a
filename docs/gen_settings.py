"""The settings reference, generated from the pydantic models, so a setting is described once, in code.

The rows are ``pipeline.core.settings_doc.rows`` over the composed ``pipeline.params.Params`` (the same
rows every command's ``--help`` lists) and, for ``train.models.<name>.net``, over the architectures' net
models of ``models/registry.py``. ``hooks.py`` (mkdocs) turns it into the page
``reference/settings.md`` at build time; ``python docs/gen_settings.py`` prints it.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator

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


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(items: list[Row]) -> list[str]:
    out = ["| setting | type | default | range | description |", "|---|---|---|---|---|"]
    for r in items:
        default = f"`{_cell(r.default)}`" if r.default else ""
        out.append(f"| `{r.name}` | {_cell(r.type)} | {default} | {_cell(r.range)} | {_cell(r.description)} |")
    return out


def settings_markdown() -> str:
    """The whole page: one table per top-level section of params.yaml, then the nets per architecture."""
    from pipeline.params import Params

    lines = ["# Settings reference", "",
             "Every setting of `params.yaml`, generated from the settings models in the code when the site is built "
             "(`docs/gen_settings.py`), so this page cannot drift from what the pipeline validates. Override any of "
             "them for one run with `-S name=value` (`boorugan <stage> -S ...` or `dvc exp run -S ...`); a value "
             "outside its range or an unknown name stops the run before any work, naming the setting.", "",
             "`<name>` is an entry of `train.models` (e.g. `dcgan`); `null` means unset.", ""]
    all_rows = rows(Params)
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
