"""Shared fixtures: the template as a tagged git repository, and rendering helpers."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import copier
import pytest

if TYPE_CHECKING:
    from .browser_support import Engine

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_FILES = ("copier.yml", "template", "validators")
EXAMPLE_ANSWERS_FILE = ROOT / "docs" / "examples" / "answers.yml"
# Questions asked under a short name that feed a recorded answer (copier.yml): a data file
# may give them, the answers file never keeps them.
PROMPTED = frozenset(
    {
        "development",
        "test",
        "staging",
        "production",
        "request_headers",
        "response_headers",
        "max_age",
        "public_paths",
    }
)
GIT_IDENTITY = ("-c", "user.name=Template Tests", "-c", "user.email=tests@example.invalid")


def git(cwd: Path, *args: str) -> str:
    """Run git with a fixed identity; return its output."""
    result = subprocess.run(
        ["git", *GIT_IDENTITY, *args], cwd=cwd, check=True, capture_output=True, text=True
    )
    return result.stdout


def copy_template_files(destination: Path) -> None:
    """The template's files as they are on disk, into ``destination``."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in TEMPLATE_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(
                source, destination / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            shutil.copy2(source, destination / name)


def copy_template(destination: Path, tag: str = "v1") -> Path:
    """A git repository holding the template as it is on disk, committed and tagged."""
    copy_template_files(destination)
    git(destination, "init", "-q", "-b", "main")
    git(destination, "add", "-A")
    git(destination, "commit", "-q", "-m", "template")
    git(destination, "tag", tag)
    return destination


def pytest_configure(config: pytest.Config) -> None:
    """corsguard as an index would serve it, built from the working tree (engine/): the
    services these tests generate install it from there, never from the package index.
    Each xdist worker builds its own copy; uv's index strategy takes corsguard from that
    index only."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    index = Path(tempfile.gettempdir()) / f"corsguard-index-{os.getpid()}-{worker}"
    result = subprocess.run(
        ["bash", str(ROOT / ".ci" / "local-index"), str(index)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise pytest.UsageError(f"building corsguard failed:\n{result.stderr}")
    name, _, value = result.stdout.strip().removeprefix("export ").partition("=")
    os.environ[name] = value
    config.stash[ENGINE_INDEX] = index


def pytest_unconfigure(config: pytest.Config) -> None:
    index = config.stash.get(ENGINE_INDEX, None)
    if index is not None:
        shutil.rmtree(index, ignore_errors=True)


ENGINE_INDEX = pytest.StashKey[Path]()


@pytest.fixture(scope="session")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_template(tmp_path_factory.mktemp("template"))


def render(template: Path, destination: Path, data: Mapping[str, Any] | None = None) -> Path:
    """``copier copy --defaults`` with ``data`` as the scripted answers."""
    copier.run_copy(
        str(template),
        str(destination),
        data=dict(data or {}),
        defaults=True,
        vcs_ref="HEAD",
        quiet=True,
    )
    return destination


def owner_environment() -> dict[str, str]:
    """The environment of an owner's shell: nothing of this test run's own."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VIRTUAL_ENV", "UV_PROJECT", "PYTEST_")) and key != "ENVIRONMENT"
    }


def run(cwd: Path, *command: str, env: Mapping[str, str] | None = None) -> str:
    """Run a command as a user would; fail with its output when it fails."""
    environment = owner_environment()
    environment.update(env or {})
    result = subprocess.run(
        command, cwd=cwd, env=environment, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, (
        f"{' '.join(command)} failed in {cwd} ({result.returncode}):\n"
        f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result.stdout


def check_project(project: Path) -> None:
    """Set up a generated project and run its own checks, as its owner would."""
    setup = subprocess.run(
        ["uv", "sync"], cwd=project, env=owner_environment(), capture_output=True, text=True
    )
    assert setup.returncode == 0, setup.stderr[-4000:]
    assert "warning" not in setup.stderr.lower(), setup.stderr  # a new owner's first command
    tests = run(project, "uv", "run", "--no-sync", "pytest", "-q", "-p", "no:cacheprovider")
    assert re.search(r"\b\d+ passed\b", tests) and "skipped" not in tests, tests
    run(project, "uv", "run", "--no-sync", "ruff", "check", ".")
    run(project, "uv", "run", "--no-sync", "ruff", "format", "--check", ".")
    run(project, "uv", "run", "--no-sync", "mypy")


# --- Browsers ----------------------------------------------------------------------------

ENGINES = [
    pytest.param("chromium", marks=pytest.mark.browser, id="chromium"),
    pytest.param("firefox", marks=[pytest.mark.browser, pytest.mark.firefox], id="firefox"),
]


@pytest.fixture(scope="session", params=ENGINES)
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """One browser per engine (and per xdist worker), launched when first needed and
    shared by every browser test module: Playwright's sync API runs one per thread."""
    from .browser_support import FIREFOX_PREFS, ChromiumEngine
    from .firefox_support import FirefoxEngine

    launched: Engine = (
        ChromiumEngine() if request.param == "chromium" else FirefoxEngine(FIREFOX_PREFS)
    )
    try:
        yield launched
    finally:
        launched.close()
