"""Journey 2 and 3: the generated service starts as its owner runs it, and says so.

On a bad configuration `fastapi dev` and `fastapi run` both end by themselves, with a
non-zero status and the message once (the reloader used to wait forever). On a good one,
one line at the default log level says which environment and policy are in force and
which values came from variables.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .conftest import owner_environment, render, run
from .test_generate import EXAMPLE

pytestmark = pytest.mark.slow

HANG = 60  # seconds: a command still running then is a hang, not a slow start
MESSAGE = "Invalid configuration; the service cannot start:"


@pytest.fixture(scope="module")
def project(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    rendered = render(template_repo, tmp_path_factory.mktemp("startup") / "svc", EXAMPLE)
    run(rendered, "uv", "sync", "--quiet")
    return rendered


@pytest.mark.parametrize(
    "command",
    [
        ["fastapi", "dev", "src/orders_api/main.py"],  # the README's command
        ["fastapi", "run"],
        ["fastapi", "run", "--workers", "2", "src/orders_api/main.py"],
    ],
    ids=["dev", "run", "run-workers"],
)
def test_a_bad_variable_ends_fastapi_with_the_message_once(
    project: Path, command: list[str]
) -> None:
    environment = {**owner_environment(), "CORS_MAX_AGE": "-1"}
    result = subprocess.run(
        ["uv", "run", "--no-sync", *command, "--port", "0"],
        cwd=project,
        env=environment,
        capture_output=True,
        text=True,
        timeout=HANG,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 3, output  # uvicorn's STARTUP_FAILURE; nothing was killed
    assert output.count(MESSAGE) == 1, output
    assert "CORS_MAX_AGE='-1' (set in the environment): write a number of seconds" in output


def import_the_app(project: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    """``python -c "import orders_api.main"`` in the service, with ``variables`` set."""
    return subprocess.run(
        ["uv", "run", "--no-sync", "python", "-c", "import orders_api.main"],
        cwd=project,
        env={**owner_environment(), **variables},
        capture_output=True,
        text=True,
        timeout=HANG,
        check=False,
    )


def test_start_up_says_which_policy_is_in_force(project: Path) -> None:
    result = import_the_app(project, ENVIRONMENT="production", CORS_MAX_AGE="60")
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stderr.splitlines() if "CORS policy in force" in line]
    assert line == (
        "INFO:     corsguard.startup: CORS policy in force: ENVIRONMENT=production; "
        "origins https://orders.example.com; credentials on; methods GET, POST, PUT, DELETE; "
        "write protection on; from variables: CORS_MAX_AGE"
    )


def test_a_misspelt_variable_stops_start_up(project: Path) -> None:
    result = import_the_app(project, CORS_ALLOWED_ORIGINS="https://a.example.com")
    assert result.returncode == 3  # uvicorn's STARTUP_FAILURE: supervisors do not restart it
    assert "CORS_ALLOWED_ORIGINS is not a setting of this service: did you mean " in result.stderr
