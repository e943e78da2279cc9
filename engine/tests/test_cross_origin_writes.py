"""Cross-origin write protection: CORS hides responses; this stops the requests' effects.

A form POST, ``navigator.sendBeacon`` or a ``no-cors`` fetch needs no preflight, so a
page on any site can make the browser send one, with the user's cookies. The CORS layer
refuses such an unsafe request before any handler runs when the browser marks it as
cross-origin and the path's policy does not allow its origin and method.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi import FastAPI, Request

from .service import ConfigError, Settings, create_app
from .support import send

ALLOWED = "https://app.example.com"
REFUSED = "https://evil.example.net"
CORS_LOGGER = "corsguard.refusals"


def app_with(**values: Any) -> tuple[FastAPI, list[str]]:
    """The service with a known policy, and the requests its handlers ran for."""
    policy: dict[str, Any] = {
        "cors_allow_origins": [ALLOWED, "https://*.preview.example.com"],
        "cors_allow_credentials": True,
        "cors_allow_methods": ["GET", "POST", "PUT"],
        "cors_allow_headers": [],
        "cors_expose_headers": [],
        "cors_path_policies": {},
    }
    app = create_app(Settings(_env_file=None, **{**policy, **values}))
    ran: list[str] = []

    @app.post("/transfer")
    @app.put("/transfer")
    @app.delete("/transfer")
    @app.post("/webhooks/payments")
    @app.post("/public/vote")
    async def handler(request: Request) -> dict[str, str]:
        ran.append(f"{request.method} {request.url.path}")
        return {"status": "done"}

    return app, ran


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Origin": REFUSED, "Sec-Fetch-Site": "cross-site"}, id="form-post"),
        pytest.param({"Origin": REFUSED, "Sec-Fetch-Site": "same-site"}, id="sibling-site"),
        pytest.param({"Origin": REFUSED}, id="no-sec-fetch-site"),
        pytest.param({"Origin": "null", "Sec-Fetch-Site": "cross-site"}, id="sandboxed-null"),
        pytest.param({"Sec-Fetch-Site": "cross-site"}, id="no-origin"),
        pytest.param(
            {"Origin": ALLOWED + ".evil.test", "Sec-Fetch-Site": "cross-site"}, id="suffix"
        ),
    ],
)
def test_a_cross_origin_write_from_a_refused_origin_never_runs(headers: dict[str, str]) -> None:
    app, ran = app_with()
    response = send(app, "POST", "/transfer", headers={**FORM, **headers})
    assert response.status_code == 403
    assert "Cross-origin POST refused" in response.json()["detail"]
    assert not [name for name in response.headers if name.startswith("access-control-")]
    assert ran == []


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_every_unsafe_method_is_protected(method: str) -> None:
    app, ran = app_with()
    response = send(app, method, "/transfer", headers={"Origin": REFUSED})
    assert (response.status_code, ran) == (403, [])


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Origin": ALLOWED, "Sec-Fetch-Site": "cross-site"}, id="allowed-origin"),
        pytest.param(
            {"Origin": "https://pr-7.preview.example.com", "Sec-Fetch-Site": "same-site"},
            id="allowed-pattern",
        ),
        pytest.param(
            {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}, id="own-page"
        ),
        pytest.param({"Origin": "https://testserver"}, id="own-host-behind-tls-proxy"),
        pytest.param({"Sec-Fetch-Site": "none"}, id="typed-in-the-address-bar"),
        pytest.param({}, id="not-a-browser"),
    ],
)
def test_allowed_origins_own_pages_and_other_clients_still_write(headers: dict[str, str]) -> None:
    app, ran = app_with()
    response = send(app, "POST", "/transfer", headers={**FORM, **headers})
    assert response.status_code == 200, response.text
    assert ran == ["POST /transfer"]


def test_a_method_the_policy_does_not_allow_is_refused_even_from_an_allowed_origin() -> None:
    app, ran = app_with()
    response = send(app, "DELETE", "/transfer", headers={"Origin": ALLOWED})
    assert response.status_code == 403
    assert "method 'DELETE' not allowed" in response.json()["detail"]
    assert ran == []


def test_a_public_read_only_path_does_not_accept_writes_from_any_site() -> None:
    public = {"prefixes": ["/public"], "allow_origins": ["*"], "allow_methods": ["GET", "HEAD"]}
    app, ran = app_with(cors_path_policies={"public": public})
    response = send(app, "POST", "/public/vote", headers={"Origin": REFUSED})
    assert (response.status_code, ran) == (403, [])


def test_bypass_prefixes_let_cross_origin_writes_through() -> None:
    app, ran = app_with(cors_cross_origin_bypass=["/webhooks"])
    hook = send(app, "POST", "/webhooks/payments", headers={"Origin": REFUSED})
    other = send(app, "POST", "/transfer", headers={"Origin": REFUSED})
    assert (hook.status_code, other.status_code) == (200, 403)
    assert ran == ["POST /webhooks/payments"]


def test_the_protection_can_be_turned_off() -> None:
    app, ran = app_with(cors_cross_origin_protection=False)
    response = send(app, "POST", "/transfer", headers={"Origin": REFUSED})
    assert response.status_code == 200
    assert ran == ["POST /transfer"]


def test_a_refusal_is_logged_once_on_one_line(caplog: pytest.LogCaptureFixture) -> None:
    app, _ = app_with()
    with caplog.at_level(logging.INFO, logger=CORS_LOGGER):
        send(app, "POST", "/transfer%0d%0aforged", headers={"Origin": REFUSED + "\x1b[31m"})
    [message] = [r.getMessage() for r in caplog.records if r.name == CORS_LOGGER]
    assert message == (
        "CORS refused POST '/transfer\\r\\nforged' from origin "
        "'https://evil.example.net\\x1b[31m': origin not allowed (cross-origin write)"
    )


def test_bypass_prefixes_are_validated() -> None:
    with pytest.raises(ConfigError, match="would exempt every path"):
        Settings(_env_file=None, cors_cross_origin_bypass=["/"])
