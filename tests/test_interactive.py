"""Journey 1, interactively: a newcomer answers in plain text, in an 80-column terminal.

Copier runs in a pseudo-terminal of 80 columns and 24 rows, and a terminal emulator
(pyte) keeps the screen as the person sees it: every help text of copier.yml must be on
screen whole, and every refused answer must show, in its one line, the value and the fix.
"""

from __future__ import annotations

import re
import sys
import time
import tomllib
from pathlib import Path

import pexpect
import pyte
import pytest
import yaml

from .conftest import PROMPTED, ROOT

COPIER = str(Path(sys.executable).with_name("copier"))
QUESTIONS = yaml.safe_load((ROOT / "copier.yml").read_text(encoding="utf-8"))
COLUMNS, ROWS = 80, 24
KEY = "key:"  # a yes/no question takes a single key, without Enter
DOWN, ENTER = "\x1b[B", "\r"  # a choice question is answered with the arrow keys

# (question, what the person types, the line Copier shows when it refuses the answer or
# None when it takes it). "" accepts the default. A refused answer is typed over.
CONVERSATION: list[tuple[str, str, str | None]] = [
    ("project_name", "Shop Front", None),
    ("package_name", "Shop-Front", "'Shop-Front': try 'shop_front'"),
    ("package_name", "shop_front", None),
    ("environments", "", None),
    ("cors_allow_credentials", KEY + "y", None),
    ("development", "http://localhost:5173", None),
    ("staging", "https://staging.shop.example.com/app", "'staging.sh…ple.com/app': drop the path"),
    ("staging", "https://staging.shop.example.com, https://*.pr.shop.example.com", None),
    ("production", "*", "'*': credentials on: list origins"),
    (
        "production",
        "https://shop.example.com/, HTTPS://Shop.Example.com",
        "'shop.example.com': twice: keep one",
    ),
    ("production", "https://shop.example.com/", None),
    ("cors_allow_methods", "", None),
    ("request_headers", "Authorization X-Request-ID", "'Authoriz…quest-ID': use commas"),
    ("request_headers", "Authorization, X-Request-ID", None),
    ("response_headers", "X-Request-ID", None),
    ("max_age", "ten", "'ten': use 0 to 86400 seconds"),
    ("max_age", "900", None),
    ("public_paths", "status", "'status': start it with '/'"),
    ("public_paths", "/status", None),
    ("cors_public_origins", "", None),
    ("env_prefix", "shop", "'shop': try 'SHOP_'"),
    ("env_prefix", "SHOP_", None),
    ("cors_origin_store", KEY + DOWN + ENTER, None),  # the second choice: sqlite
    ("kubernetes", "", None),
]


class Terminal:
    """Copier in a pseudo-terminal, and the screen a person would see."""

    def __init__(self, *args: str) -> None:
        self.child = pexpect.spawn(
            COPIER, list(args), encoding="utf-8", timeout=30, dimensions=(ROWS, COLUMNS)
        )
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self.stream = pyte.Stream(self.screen)

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display]

    def wait_for(self, what: str, timeout: float = 20, whole: bool = False) -> list[str]:
        """Read until a screen line contains `what` (with `whole`: is `what`, after the
        pointer a choice list puts before one of them); return the screen's lines."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(
                (re.fullmatch(rf"\s*\W?\s*{re.escape(what)}", line) if whole else what in line)
                for line in self.lines()
            ):
                return self.lines()
            try:
                self.stream.feed(self.child.read_nonblocking(65536, timeout=0.2))
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF:
                break
        screen = "\n".join(self.lines())
        raise AssertionError(f"not on the screen: {what!r}\n{screen}")


def help_lines(question: str) -> list[str]:
    return [line.strip() for line in QUESTIONS[question]["help"].splitlines()]


@pytest.mark.slow  # a whole interactive copy in a terminal: about 20 s
def test_plain_text_answers_make_a_service_at_80_columns(
    template_repo: Path, tmp_path: Path
) -> None:
    destination = tmp_path / "shop"
    terminal = Terminal("copy", "--vcs-ref", "HEAD", str(template_repo), str(destination))
    asked: list[str] = []
    try:
        for question, answer, refusal in CONVERSATION:
            first, *rest = help_lines(question)
            screen = terminal.wait_for(first)
            if question not in asked:
                asked.append(question)
                # The help text is on screen whole: no line was cut at 80 columns.
                shown = [line for line in screen if line.endswith(first)]
                assert shown and all(len(line) <= COLUMNS for line in shown), screen
                for line in rest:
                    terminal.wait_for(line)  # never there whole if it was cut
                if not QUESTIONS[question].get("multiselect"):
                    for choice in QUESTIONS[question].get("choices", []):
                        # A choice question lists every choice, one a line.
                        terminal.wait_for(choice, whole=True)
            if answer.startswith(KEY):
                terminal.child.send(answer.removeprefix(KEY))
            else:
                terminal.child.send(
                    "\x15"
                )  # Ctrl-U: clear the pre-filled default or the refused answer
                terminal.child.sendline(answer)
            if refusal is not None:
                expected = f"Validation error for question '{question}': {refusal}"
                assert len(expected) <= COLUMNS
                terminal.wait_for(expected)
        terminal.child.expect(pexpect.EOF)
    finally:
        terminal.child.close()
    assert terminal.child.exitstatus == 0, terminal.child.before
    # Every question a person is asked was checked above, none twice in a row unasked.
    assert [name for name in QUESTIONS if name in asked] == asked

    settings = tomllib.loads((destination / "src/shop_front/settings.toml").read_text())
    profiles = settings["environments"]
    assert profiles["development"]["cors_allow_origins"] == ["http://localhost:5173"]
    assert profiles["staging"]["cors_allow_origins"] == [
        "https://staging.shop.example.com",
        "https://*.pr.shop.example.com",
    ]
    production = profiles["production"]
    assert production["cors_allow_origins"] == ["https://shop.example.com"]
    assert production["cors_allow_credentials"] is True
    assert production["cors_allow_headers"] == ["Authorization", "X-Request-ID"]
    assert production["cors_expose_headers"] == ["X-Request-ID"]
    assert production["cors_max_age"] == 900
    assert production["cors_path_policies"]["public"]["prefixes"] == ["/status"]
    assert settings["service"]["env_prefix"] == "SHOP_"
    # One record per answer: the recorded keys hold what was typed under the short
    # names, which are not kept; nothing was asked twice.
    answers = yaml.safe_load((destination / ".copier-answers.yml").read_text())
    assert answers["cors_origins"]["production"] == ["https://shop.example.com/"]
    assert answers["cors_allow_headers"] == ["Authorization", "X-Request-ID"]
    assert answers["cors_max_age"] == 900
    assert answers["cors_public_paths"] == ["/status"]
    assert not PROMPTED & set(answers)
    # Down once from the default (none) is sqlite: every profile names its file.
    assert answers["cors_origin_store"] == "sqlite"
    assert profiles["development"]["cors_origin_store"] == "sqlite:///origins.db"
    assert production["cors_origin_store"] == "sqlite:////var/lib/shop-front/origins.db"


@pytest.fixture(autouse=True)
def _copier_is_installed() -> None:
    assert Path(COPIER).exists(), f"copier is not installed beside {sys.executable}"
