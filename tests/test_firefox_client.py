"""One WebDriver BiDi client, two copies: the template suite's and the engine's harness.

The engine's opt-in browser tests (engine/tests/test_browser.py) cannot import the
template's tests, so they carry the client themselves. The two copies must stay the same
code; only the ``noqa`` comments differ, which the engine's stricter ruff rules need.
"""

from __future__ import annotations

import re

from .conftest import ROOT

BEGIN = "# --- begin WebDriver BiDi client ---"
END = "# --- end WebDriver BiDi client ---"
COPIES = (
    ROOT / "tests" / "firefox_support.py",
    ROOT / "engine" / "tests" / "test_browser.py",
)


def client_code(text: str) -> str:
    assert text.count(BEGIN) == 1 and text.count(END) == 1, "one marked client per file"
    block = text[text.index(BEGIN) : text.index(END)]
    return re.sub(r"  # noqa: [^\n]*", "", block)


def test_both_copies_of_the_bidi_client_are_the_same_code() -> None:
    suite, harness = (client_code(path.read_text(encoding="utf-8")) for path in COPIES)
    assert "{{" not in harness and "{%" not in harness, "no Jinja inside the client"
    assert suite == harness
