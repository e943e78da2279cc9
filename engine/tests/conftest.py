"""Test isolation: the tests describe settings.toml, not the shell that runs them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .pgserver import PostgresServer
from .service import ENVIRONMENT_VARIABLE, Settings

_CORS_PREFIX = Settings.env_name("cors_")


def _is_own_variable(name: str) -> bool:
    return name.upper() == ENVIRONMENT_VARIABLE or name.upper().startswith(_CORS_PREFIX)


# The corsguard command finds the test service's settings by this variable.
os.environ["CORSGUARD_SETTINGS"] = "tests.sample:Settings"

# Test cases are collected from the profiles at import time, so variables exported in
# the shell are removed before any test module is imported.
for _name in [name for name in os.environ if _is_own_variable(name)]:
    del os.environ[_name]


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Run in an empty directory (no .env) with none of the service's variables set."""
    monkeypatch.chdir(tmp_path)
    for name in [name for name in os.environ if _is_own_variable(name)]:
        monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throw-away PostgreSQL server for the session (see tests/pgserver.py)."""
    with PostgresServer() as server:
        yield server
