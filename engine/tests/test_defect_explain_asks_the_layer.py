"""``corsguard explain`` says what the CORS layer answers, because it asks the layer.

It used to re-implement the rules: with only GET allowed it called a POST from an allowed
origin ALLOWED ("write protection lets this POST through") while the layer refused the
same POST, sent by a form, with 403.
"""

from __future__ import annotations

from typing import Any

import pytest

from .service import ALLOWED, REFUSED, Settings, create_app, explain, main
from .support import send

pytestmark = pytest.mark.usefixtures("clean_environment")

ORIGIN = "http://localhost:3000"  # allowed by the development profile
METHODS = Settings.env_name("cors_allow_methods")
PROTECTION = Settings.env_name("cors_cross_origin_protection")


def run(capsys: pytest.CaptureFixture[str], *arguments: str) -> tuple[int, str]:
    status = main(["explain", "--env", "development", "--origin", ORIGIN, *arguments])
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def test_a_post_the_layer_refuses_is_refused_by_explain(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(METHODS, "GET")
    form_post = {"Origin": ORIGIN, "Sec-Fetch-Site": "cross-site"}
    settings = Settings.load(environment="development")
    assert send(create_app(settings), "POST", "/health", headers=form_post).status_code == 403

    status, output = run(capsys, "--method", "POST")
    assert status == REFUSED, output
    assert "lets this POST through" not in output
    assert f"method POST is not in {METHODS} (GET)" in output
    assert "403" in output
    assert f"{METHODS}=GET,POST" in output  # the fix


def test_without_write_protection_a_simple_post_needs_no_allowed_method(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A POST with safelisted headers has no preflight: the method list never applies."""
    monkeypatch.setenv(METHODS, "GET")
    monkeypatch.setenv(PROTECTION, "false")
    status, output = run(capsys, "--method", "POST")
    assert status == ALLOWED, output
    assert "write protection is off" in output


CASES: list[tuple[dict[str, Any], str, str, tuple[str, ...], bool]] = [
    ({}, "https://app.example.com", "GET", (), False),
    ({}, "https://evil.example.net", "POST", (), False),
    ({}, "https://app.example.com", "POST", (), True),
    ({"cors_allow_methods": ["GET"]}, "https://app.example.com", "POST", (), False),
    ({"cors_allow_methods": ["GET"]}, "https://app.example.com", "DELETE", (), False),
    ({"cors_allow_methods": ["*"]}, "https://app.example.com", "PATCH", (), False),
    ({"cors_allow_methods": ["*"]}, "https://app.example.com", "PROPFIND", (), False),
    ({}, "https://app.example.com", "GET", ("X-Trace",), False),
    ({}, "https://app.example.com", "GET", ("authorization",), True),
    ({"cors_allow_credentials": False}, "https://app.example.com", "GET", (), True),
    ({"cors_cross_origin_protection": False}, "https://evil.example.net", "POST", (), False),
    ({"cors_cross_origin_bypass": ["/hooks"]}, "https://evil.example.net", "POST", (), False),
]


def layer_allows(
    settings: Settings, origin: str, method: str, headers: tuple[str, ...], credentials: bool
) -> bool:
    """What a browser concludes from the layer's answers, worked out by hand here."""
    app = create_app(settings)
    sent = {"Origin": origin, "Sec-Fetch-Site": "cross-site"}
    if method not in ("GET", "HEAD", "POST") or headers:
        preflight = {**sent, "Access-Control-Request-Method": method}
        if headers:
            preflight["Access-Control-Request-Headers"] = ",".join(headers).lower()
        if send(app, "OPTIONS", "/hooks/x", headers=preflight).status_code != 200:
            return False
    answer = send(app, method, "/hooks/x", headers=sent)
    if answer.status_code == 403:
        return False
    if credentials and answer.headers.get("access-control-allow-credentials") != "true":
        return False
    return answer.headers.get("access-control-allow-origin") in (origin, "*")


@pytest.mark.parametrize(("values", "origin", "method", "headers", "credentials"), CASES)
def test_explain_agrees_with_the_layer(
    values: dict[str, Any], origin: str, method: str, headers: tuple[str, ...], credentials: bool
) -> None:
    policy = {
        "cors_allow_origins": ["https://app.example.com"],
        "cors_allow_credentials": True,
        "cors_allow_methods": ["GET", "POST", "PUT"],
        "cors_allow_headers": ["Authorization"],
        **values,
    }
    settings = Settings(_env_file=None, **policy)
    verdict = explain(settings, origin, method, headers, credentials, "/hooks/x")
    assert verdict.allowed == layer_allows(settings, origin, method, headers, credentials), verdict


def test_the_layer_is_asked_with_the_method_as_the_browser_sends_it() -> None:
    """Fetch sends ``patch`` as written, and the layer compares methods case-sensitively:
    its write protection refuses the lower-case method that the policy does not list."""
    settings = Settings(
        _env_file=None, cors_allow_origins=[ORIGIN], cors_allow_methods=["GET", "PATCH"]
    )
    assert explain(settings, ORIGIN, "PATCH").allowed
    verdict = explain(settings, ORIGIN, "patch")
    assert not verdict.allowed
    assert any("refuses this patch with 403" in note for note in verdict.notes), verdict
