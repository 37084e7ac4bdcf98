"""The README and docs stay true to the code: every setting documented, every command listed,
every local link resolving."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from api.cli.main import app
from atelier.settings import Settings

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_every_setting_is_in_the_readme():
    missing = [f"ATELIER_{n.upper()}" for n in Settings.model_fields]
    missing = [name for name in missing if f"`{name}`" not in README]
    assert not missing, f"document these settings in README.md: {missing}"


def test_every_command_is_in_the_readme():
    names = [c.name for c in typer.main.get_command(app).commands.values()]
    assert len(names) >= 13
    missing = [name for name in names if f"`atelier {name}" not in README]
    assert not missing, f"list these commands in README.md: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_local_links_resolve(doc: Path):
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text())
    local = [link for link in links if "://" not in link]
    assert all((doc.parent / link).exists() for link in local), local


# A repository path in prose: a top-level folder of the tree, then a path (`api/cli/beat.py`).
TREE_PATH = re.compile(
    r"(?<![\w/.:-])((?:atelier|api|workers|scheduler|bench|tests|docs|deploy|scripts|samples)"
    r"/[\w./-]*[\w/])"
)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_path_the_docs_name_exists(doc: Path):
    named = TREE_PATH.findall(doc.read_text())
    assert named, "the pattern should find the paths the docs name"
    missing = [path for path in named if not (REPO / path).exists()]
    assert not missing, f"{doc.name} names paths the tree does not have: {missing}"
