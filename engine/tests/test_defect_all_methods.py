"""'*' in the allowed methods means Starlette's ``ALL_METHODS``, whatever its length on
the installed Starlette (eight since 1.7, which added QUERY): nothing counts them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.middleware.cors import ALL_METHODS

from .service import CORSPolicy, Settings, create_app, explain
from .support import send

ALLOWED = "https://app.example.com"
SOURCE = Path(__file__).parent.parent / "src"
COUNTS = re.compile(r"\b(seven|eight|nine)\b", re.IGNORECASE)


def star_settings() -> Settings:
    return Settings(_env_file=None, cors_allow_origins=[ALLOWED], cors_allow_methods=["*"])


@pytest.mark.parametrize("method", ALL_METHODS)
def test_star_allows_every_method_of_the_installed_starlette(method: str) -> None:
    preflight = {"Origin": ALLOWED, "Access-Control-Request-Method": method}
    response = send(create_app(star_settings()), "OPTIONS", headers=preflight)
    assert response.status_code == 200
    assert method in response.headers["access-control-allow-methods"].split(", ")
    assert explain(star_settings(), ALLOWED, method).allowed


def test_the_methods_docstring_names_no_count() -> None:
    doc = CORSPolicy.methods.__doc__ or ""
    assert "ALL_METHODS" in doc
    assert not COUNTS.search(doc), doc


def test_the_source_counts_no_methods() -> None:
    """A count in the words goes stale with the next Starlette; name ALL_METHODS instead."""
    stale = [
        f"{path.name}:{number}: {line.strip()}"
        for path in SOURCE.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if COUNTS.search(line) and "method" in line.lower()
    ]
    assert stale == []
