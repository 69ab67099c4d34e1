"""The README and every page of docs/ run as written, and their links lead somewhere.

One test per page for each promise:

* its ``>>>`` examples pass doctest (ELLIPSIS), and a page with examples
  attempts at least one (the README's tour at least twenty); a page listed in
  `NO_EXAMPLES` has none, so the list stays honest;
* its ``console`` blocks, run as commands in an empty directory, print what
  the page shows and exit as it says (``# exits N``; otherwise 0).
  ``text`` blocks are shown output that needs a setup the page does not make
  (a PostgreSQL server, a recorded history). The guide's console blocks are
  its walk-through, which ``tests/test_user_project.py`` runs beside the
  files it writes;
* every relative link names a file that exists and, with ``#anchor``, a
  heading of that file (GitHub's anchors);
* no page tells users to install from PyPI, where statewright is not
  published, and no prose names a git revision (performance.md dates its
  rows instead).
"""

from __future__ import annotations

import doctest
import re
import sys
from pathlib import Path

import pytest

from tests.test_user_project import commands, run_commands

ROOT = Path(__file__).resolve().parent.parent
PAGES = ("README.md", *(f"docs/{page.name}" for page in sorted((ROOT / "docs").glob("*.md"))))
NO_EXAMPLES = {
    "docs/architecture.md": "design notes",
    "docs/cli.md": "commands, run as console blocks",
    "docs/layout.md": "the tree, checked by test_docs_layout.py",
    "docs/performance.md": "measured figures",
}
MIN_EXAMPLES = {"README.md": 20}
WALK_THROUGH = "docs/guide.md"
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} +(.+?) *$", re.M)
PYPI = re.compile(r"pip install +['\"]?statewright\b")
REVISION = re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}\b")


def prose(text: str) -> str:
    """The page without its fenced code blocks."""
    return FENCE.sub("", text)


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor of a markdown file (GitHub suffixes repeated headings with -1, -2, ...)."""
    seen: dict[str, int] = {}
    out = set()
    for heading in HEADING.findall(prose(path.read_text())):
        base = anchor(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


@pytest.mark.parametrize("page", PAGES)
def test_examples_run(page: str) -> None:
    result = doctest.testfile(str(ROOT / page), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    if page in NO_EXAMPLES:
        assert result.attempted == 0, f"{page} has examples now: drop it from NO_EXAMPLES"
    else:
        assert result.attempted >= MIN_EXAMPLES.get(page, 1)


def test_every_page_is_known() -> None:
    """The lists above name pages that exist, so none of them silently stops applying."""
    assert set(NO_EXAMPLES) <= set(PAGES)


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if p != WALK_THROUGH and "```console" in (ROOT / p).read_text()])
def test_console_examples_run(page: str, tmp_path: Path) -> None:
    cmds = commands((ROOT / page).read_text())
    assert cmds
    run_commands(cmds, tmp_path, Path(sys.executable).parent, source=page)


@pytest.mark.parametrize("page", PAGES)
def test_links_lead_somewhere(page: str) -> None:
    here = (ROOT / page).parent
    broken = []
    for target in LINK.findall(prose((ROOT / page).read_text())):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, fragment = target.partition("#")
        file = (here / path).resolve() if path else ROOT / page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif fragment and (file.suffix != ".md" or fragment not in anchors(file)):
            broken.append(f"{target}: no heading #{fragment} in {file.relative_to(ROOT)}")
    assert not broken, f"{page}: " + "; ".join(broken)


@pytest.mark.parametrize("page", PAGES)
def test_no_pypi_install_and_no_revision_ids(page: str) -> None:
    text = (ROOT / page).read_text()
    assert not PYPI.search(text), f"{page} tells users to pip install statewright, which is not on PyPI"
    assert not REVISION.findall(prose(text)), f"{page} names git revisions; give the date instead"


def test_the_readme_is_a_front_door() -> None:
    """At most 300 lines, with the four parts issue 16 asks for, linking into docs/."""
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 300
    for part in ("## Why statewright", "## Install", "## A five-minute tour", "## Where next"):
        assert part in text
    linked = {target.partition("#")[0] for target in LINK.findall(text)}
    assert {p for p in PAGES if p != "README.md"} <= linked, "every docs page is linked from the README"
