"""docs/runs.md's table of the sources names real code: every `path.py:symbol` it cites exists.

The table says where each item of the source documents lives; a rename that
left it pointing at nothing would make the page lie, so each reference is
imported and looked up here.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "runs.md"
REFERENCE = re.compile(r"`((?:kernel|machines|specs|adapters)/[\w/]+)\.py:(\w+)`")


def references() -> list[tuple[str, str]]:
    text = PAGE.read_text()
    table = text[text.index("## What of the sources is here"):]
    return sorted(set(REFERENCE.findall(table)))


def test_the_table_cites_code() -> None:
    assert len(references()) >= 80


@pytest.mark.parametrize(("path", "symbol"), references())
def test_each_reference_exists(path: str, symbol: str) -> None:
    module = importlib.import_module("statewright." + path.replace("/", "."))
    assert hasattr(module, symbol), f"{path}.py has no {symbol}"
