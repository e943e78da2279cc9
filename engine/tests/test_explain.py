"""``cors explain`` and ``cors show``: the verdict, the reason, the fix, the exit status."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .service import ALLOWED, BAD_INPUT, PACKAGE, REFUSED, SERVICE, Settings, main

pytestmark = pytest.mark.usefixtures("clean_environment")

ENVIRONMENT = next(iter(SERVICE.profiles))
ORIGINS = Settings.env_name("cors_allow_origins")
METHODS = Settings.env_name("cors_allow_methods")
HEADERS = Settings.env_name("cors_allow_headers")
CREDENTIALS = Settings.env_name("cors_allow_credentials")


def explain(capsys: pytest.CaptureFixture[str], *arguments: str) -> tuple[int, str]:
    status = main(["explain", "--env", ENVIRONMENT, *arguments])
    captured = capsys.readouterr()
    return status, captured.out + captured.err


@pytest.fixture
def policy(clean_environment: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ORIGINS, "https://app.example.com,https://*.preview.example.com")
    monkeypatch.setenv(METHODS, "GET,POST")
    monkeypatch.setenv(HEADERS, "Authorization")
    monkeypatch.setenv(CREDENTIALS, "false")


@pytest.mark.usefixtures("policy")
@pytest.mark.parametrize(
    ("arguments", "decided_by"),
    [
        (["--origin", "https://app.example.com"], "the entry 'https://app.example.com'"),
        (["--origin", "https://pr-1.preview.example.com"], "the pattern"),
        (["--origin", "HTTPS://App.Example.com:443/"], "the entry 'https://app.example.com'"),
        (["--origin", "https://app.example.com", "--method", "post"], "the entry"),
        (["--origin", "https://app.example.com", "--header", "authorization"], "the entry"),
    ],
)
def test_allowed_request_exits_0(
    capsys: pytest.CaptureFixture[str], arguments: list[str], decided_by: str
) -> None:
    status, output = explain(capsys, *arguments)
    assert status == ALLOWED, output
    assert f"ALLOWED: origin allowed by {decided_by}" in output
    assert f"{ORIGINS}  " in output  # the effective policy is printed


@pytest.mark.usefixtures("policy")
@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        (["--origin", "https://preview.example.com"], "does not cover the bare domain"),
        (["--origin", "http://app.example.com"], "in its scheme: serve the page over https"),
        (["--origin", "https://app.example.com:8443"], "in its port"),
        (["--origin", "http://pr-1.preview.example.com"], "requires the scheme 'https'"),
        (["--origin", "https://app.example.com.evil.test"], f"is not in {ORIGINS}"),
        (["--origin", "null"], "sandboxed iframes"),
        (["--origin", "https://app.example.com", "--method", "DELETE"], f"not in {METHODS}"),
        (["--origin", "https://app.example.com", "--header", "X-Trace"], f"not in {HEADERS}"),
        (["--origin", "https://app.example.com", "--credentials"], f"{CREDENTIALS} is false"),
        (["--origin", "https://app.example.com", "--method", "patch"], "exactly as written"),
    ],
)
def test_refused_request_exits_1_with_reason_and_fix(
    capsys: pytest.CaptureFixture[str], arguments: list[str], reason: str
) -> None:
    status, output = explain(capsys, *arguments)
    assert status == REFUSED, output
    assert "REFUSED:" in output
    assert reason in output


@pytest.mark.usefixtures("policy")
def test_refusal_names_the_variable_to_set(capsys: pytest.CaptureFixture[str]) -> None:
    _, output = explain(capsys, "--origin", "https://new.example.com")
    expected = (
        f"{ORIGINS}=https://app.example.com,https://*.preview.example.com,https://new.example.com"
    )
    assert expected in output


@pytest.mark.usefixtures("policy")
def test_page_url_is_reduced_to_its_origin(capsys: pytest.CaptureFixture[str]) -> None:
    status, output = explain(capsys, "--origin", "https://app.example.com/orders?id=1")
    assert status == ALLOWED
    assert "has a trailing path" in output


@pytest.mark.parametrize(
    "arguments",
    [
        ["--origin", "localhost:3000"],
        ["--origin", "https://*.example.com"],
        ["--origin", "*"],
        ["--origin", "ftp://files.example.com"],
    ],
)
def test_bad_origin_exits_2(capsys: pytest.CaptureFixture[str], arguments: list[str]) -> None:
    status, output = explain(capsys, *arguments)
    assert status == BAD_INPUT
    assert arguments[1] in output


def test_unknown_environment_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["explain", "--env", "no-such-env", "--origin", "https://a.example.com"])
    assert status == BAD_INPUT
    error = capsys.readouterr().err
    assert "--env 'no-such-env' is not an environment of this app: use one of " in error


def test_invalid_configuration_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ORIGINS, "http://localhost:3000/app")
    status, output = explain(capsys, "--origin", "http://localhost:3000")
    assert status == BAD_INPUT
    assert f"{ORIGINS}='http://localhost:3000/app'" in output


def test_show_prints_every_environment_after_overrides(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ORIGINS, "https://override.example.com")
    assert main(["show"]) == ALLOWED
    output = capsys.readouterr().out
    for environment in SERVICE.profiles:
        assert f"{environment}:" in output
    assert output.count("https://override.example.com") == len(SERVICE.profiles)


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / PACKAGE
    result = subprocess.run(  # noqa: S603 (the project's own console script)
        [str(script), "explain", "--env", ENVIRONMENT, "--origin", "null"],
        cwd=Path(__file__).parent.parent,
        env={**os.environ, ORIGINS: "https://app.example.com"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == REFUSED, result.stderr
    assert "REFUSED" in result.stdout


@pytest.mark.usefixtures("policy")
def test_explain_reads_the_environment_from_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = list(SERVICE.profiles)[-1]
    monkeypatch.setenv("ENVIRONMENT", environment)
    status = main(["explain", "--origin", "https://app.example.com"])
    assert status == ALLOWED
    assert f"Effective policy of {environment} " in capsys.readouterr().out


@pytest.mark.usefixtures("policy")
def test_explain_without_an_environment_says_how_to_give_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = main(["explain", "--origin", "https://app.example.com"])
    assert status == BAD_INPUT
    assert "needs the deployment's environment: pass --env" in capsys.readouterr().err
