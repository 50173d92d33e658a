"""The docs site builds with ``mkdocs build --strict`` (a broken link or a page left out of the nav
fails it), and its generated settings reference names every setting of params.yaml."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "docs"))  # docs/gen_settings.py, as the mkdocs hook imports it


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-5000:]
    return out


def documented(site: Path) -> dict[str, str]:
    """Setting name -> type cell, read back from the built page (what a reader sees)."""
    page = (site / "reference/settings/index.html").read_text(encoding="utf-8")
    rows = re.findall(r"<tr>\s*<td><code>([^<]+)</code></td>\s*<td>(.*?)</td>", page, flags=re.S)
    return {html.unescape(name): html.unescape(kind) for name, kind in rows}


def leaves(tree: object, prefix: str = "") -> list[str]:
    if isinstance(tree, dict) and tree:
        return [leaf for k, v in tree.items() for leaf in leaves(v, f"{prefix}.{k}" if prefix else str(k))]
    return [prefix]


def test_every_setting_of_params_yaml_is_on_the_settings_page(site):
    from pipeline.params import load_params

    shown = documented(site)
    assert len(shown) > 150
    missing = []
    for leaf in leaves(load_params(ROOT / "params.yaml").model_dump(mode="json")):
        parts = leaf.split(".")
        if parts[:2] == ["train", "models"]:
            parts[2] = "<name>"
        # a mapping-valued setting (tag.vocabulary.groups, ...) is documented as a whole
        prefixes = [".".join(parts[:i]) for i in range(len(parts), 0, -1)]
        hit = next((p for p in prefixes if p in shown), None)
        if hit is None or (hit != ".".join(parts) and "mapping" not in shown[hit]):
            missing.append(leaf)
    assert not missing, f"settings without a row on the reference page: {missing}"


def test_the_reference_shows_types_defaults_ranges_and_descriptions(site):
    page = (site / "reference/settings/index.html").read_text(encoding="utf-8")
    row = re.search(r"<code>train\.models\.&lt;name&gt;\.steps</code>.*?</tr>", page, flags=re.S)
    assert row, "train.models.<name>.steps is missing"
    kind, default, bounds, description = (html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
                                          for c in re.findall(r"<td>(.*?)</td>", row.group(0), re.S))
    assert (kind, default, bounds) == ("int or null", "null", ">= 1, <= 100,000,000")
    assert "overrides epochs" in description
    assert "train.models.&lt;name&gt;.net.ngf" in page  # the architectures' own settings


def test_every_command_is_on_the_cli_page(site):
    from pipeline.cli import commands

    page = html.unescape((site / "reference/cli/index.html").read_text(encoding="utf-8"))
    assert not [c for c in commands() if f"usage: boorugan {c}" not in page]


def test_the_site_has_a_page_per_topic(site):
    for topic in ("getting-started", "stages", "scrape", "crop", "tags-and-labels", "zoo", "evaluation", "own-data",
                  "danbooru", "gpu", "pages", "scheduling", "scale", "troubleshooting"):
        assert (site / topic / "index.html").is_file(), topic


def test_every_setting_is_described_in_code():
    """The description lives in the setting's Field, once: the reference page and every --help show it."""
    from gen_settings import net_rows, rows

    from pipeline.params import Params

    undescribed = [r.name for r in rows(Params) if not r.description]
    undescribed += [r.name for _, _, items in net_rows() for r in items if not r.description]
    assert not undescribed, f"settings without a description= in their Field: {undescribed}"
