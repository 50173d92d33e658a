"""mkdocs hooks: the generated reference pages (settings from the pydantic models, commands from the
CLI's parser) are added to the site at build time, never written into docs/ or committed."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for path in (str(ROOT), str(ROOT / "docs")):
    if path not in sys.path:
        sys.path.insert(0, path)

from gen_settings import settings_markdown  # noqa: E402  (docs/gen_settings.py; mkdocs drops its own sys.path entry after loading hooks)


def cli_markdown() -> str:
    """Every command's ``--help``, as argparse prints it."""
    from pipeline.cli import build_parser, commands

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    lines = ["# Command line", "",
             "`boorugan <command>` (or `python -m pipeline <command>`); generated from the parser at build time. "
             "Every command but `init` takes `--params FILE` and any number of `-S name=value` overrides "
             "(the names: [settings reference](settings.md)).", "", "```text", parser.format_help().rstrip(), "```", ""]
    for name in commands():
        lines += [f"## `{name}`", "", "```text", sub.choices[name].format_help().rstrip(), "```", ""]
    return "\n".join(lines)


def on_files(files, config):
    from mkdocs.structure.files import File

    for uri, text in (("reference/settings.md", settings_markdown()),
                      ("reference/cli.md", cli_markdown())):
        files.append(File.generated(config, uri, content=text))
    return files
