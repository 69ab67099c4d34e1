"""Every Python snippet of the README and docs/ passes ``mypy --strict``, as a user's own module would.

For each page, its ``>>>`` examples become one module (``<page>_examples.py``)
and each ```` ```python ```` block that opens with ``# name.py`` becomes that
file, side by side in a folder of the page's own (so ``drive.py`` imports
``orders.py`` as it does in the walk-through). mypy runs on them in-process
with statewright importable and the shared cache of this module. A Python
block that is neither a doctest nor a named file is refused: it would be a
snippet nobody checks. Pages with no Python at all are listed in
`test_readme.NO_EXAMPLES`.
"""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest
from mypy import api

import statewright
from tests.test_readme import NO_EXAMPLES, PAGES, ROOT

BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
NAMED = re.compile(r"# ([\w]+\.py)\n")


def sources(page: str) -> dict[str, str]:
    """The modules a page's Python makes: its examples as one module, and its named files."""
    text = (ROOT / page).read_text()
    out: dict[str, str] = {}
    examples = doctest.DocTestParser().get_examples(text)
    if examples:
        out[f"{Path(page).stem.lower().replace('-', '_')}_examples.py"] = "".join(e.source for e in examples)
    for block in BLOCK.findall(text):
        named = NAMED.match(block)
        if named:
            out[named.group(1)] = block
        else:
            assert block.lstrip().startswith(">>>"), f"{page}: a python block that is neither a doctest nor a file"
    return out


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mypy cache for every page: statewright itself is analysed once."""
    return tmp_path_factory.mktemp("mypy_cache")


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_snippets_pass_mypy_strict(page: str, tmp_path: Path, cache: Path) -> None:
    files = sources(page)
    if page in NO_EXAMPLES:
        assert not files, f"{page} has Python now: drop it from test_readme.NO_EXAMPLES"
        return
    assert files, f"{page} has no Python; list it in test_readme.NO_EXAMPLES"
    for name, body in files.items():
        (tmp_path / name).write_text(body)
    root = Path(statewright.__file__).resolve().parent.parent
    # an editable checkout is invisible to mypy's import search; an installed wheel is found as it is
    path = f"mypy_path = {root}\n" if (root / "pyproject.toml").exists() else ""
    config = tmp_path / "mypy.ini"
    config.write_text(f"[mypy]\n{path}follow_imports = silent\n")
    out, err, _ = api.run(["--strict", "--config-file", str(config), "--cache-dir", str(cache),
                           "--no-error-summary", *(str(tmp_path / name) for name in files)])
    assert not err, err
    errors = [line.replace(f"{tmp_path}/", "") for line in out.splitlines() if ": error:" in line]
    assert not errors, f"{page}:\n" + "\n".join(errors)
