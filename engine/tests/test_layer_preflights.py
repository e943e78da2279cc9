"""The layer answers preflights itself, from the policy, on every supported Starlette.

It no longer subclasses Starlette's ``CORSMiddleware`` nor reads its private attributes
or the text of its refusal: a Starlette release that changes them (1.7 changed the
preflight's Vary and the handling of requests without Origin) changes nothing here.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from starlette.middleware import cors

from .service import PathScopedCORSMiddleware, PolicyCORSMiddleware, Settings, create_app
from .support import send

ALLOWED = "https://app.example.com"
REFUSED = "https://evil.example.net"
PREFLIGHT_VARY = (
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers, "
    "Access-Control-Request-Private-Network"
)


def app_with(**values: Any) -> Any:
    policy: dict[str, Any] = {
        "cors_allow_origins": [ALLOWED, "https://*.preview.example.com"],
        "cors_allow_credentials": True,
        "cors_allow_methods": ["GET", "POST"],
        "cors_allow_headers": ["Authorization"],
        "cors_expose_headers": ["X-Request-ID"],
        "cors_max_age": 600,
    }
    return create_app(Settings(_env_file=None, **{**policy, **values}))


def preflight(
    app: Any, origin: str, method: str = "POST", extra: dict[str, str] | None = None
) -> httpx.Response:
    headers = {"Origin": origin, "Access-Control-Request-Method": method, **(extra or {})}
    return send(app, "OPTIONS", "/health", headers=headers)


def test_the_layer_is_not_starlette_s_cors_middleware() -> None:
    assert not issubclass(PolicyCORSMiddleware, cors.CORSMiddleware)
    assert not issubclass(PathScopedCORSMiddleware, cors.CORSMiddleware)


def test_the_layer_works_without_starlette_s_cors_middleware(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unusable(*args: object, **kwargs: object) -> None:
        raise AssertionError("the layer must not depend on CORSMiddleware")

    monkeypatch.setattr(cors.CORSMiddleware, "__init__", unusable)
    monkeypatch.setattr(cors.CORSMiddleware, "preflight_response", unusable)
    app = app_with()
    assert preflight(app, ALLOWED).status_code == 200
    assert preflight(app, REFUSED).status_code == 400
    got = send(app, "GET", headers={"Origin": ALLOWED})
    assert got.headers["access-control-allow-origin"] == ALLOWED


def test_an_allowed_preflight_is_answered_from_the_policy() -> None:
    response = preflight(
        app_with(), ALLOWED, extra={"Access-Control-Request-Headers": "authorization"}
    )
    assert response.status_code == 200
    assert response.text == "OK"
    assert {k: v for k, v in response.headers.items() if k != "content-length"} == {
        "vary": PREFLIGHT_VARY,
        "access-control-allow-methods": "GET, POST",
        "access-control-max-age": "600",
        "access-control-allow-headers": (
            "Accept, Accept-Language, Authorization, Content-Language, Content-Type"
        ),
        "access-control-allow-credentials": "true",
        "access-control-allow-origin": ALLOWED,
        "content-type": "text/plain; charset=utf-8",
    }


def test_a_public_preflight_answers_star_and_mirrors_any_headers() -> None:
    app = app_with(
        cors_allow_origins=["*"],
        cors_allow_credentials=False,
        cors_allow_headers=["*"],
        cors_expose_headers=[],
    )
    response = preflight(app, REFUSED, extra={"Access-Control-Request-Headers": "x-one, x-two"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["access-control-allow-headers"] == "x-one, x-two"
    assert "access-control-allow-credentials" not in response.headers
    assert response.headers["vary"] == PREFLIGHT_VARY


def test_a_refused_origin_gets_a_400_without_any_cors_header(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="corsguard.refusals"):
        response = preflight(app_with(), REFUSED, "DELETE")
    assert response.status_code == 400
    assert response.text == "Disallowed CORS origin, method"
    assert not [name for name in response.headers if name.startswith("access-control-")]
    assert response.headers["vary"] == PREFLIGHT_VARY
    assert [r.getMessage() for r in caplog.records] == [
        f"CORS refused preflight from origin {REFUSED!r}: origin, method not allowed "
        "(method 'DELETE', headers '')"
    ]


def test_an_allowed_origin_refused_for_a_header_keeps_the_policy_s_headers() -> None:
    response = preflight(app_with(), ALLOWED, extra={"Access-Control-Request-Headers": "x-secret"})
    assert response.status_code == 400
    assert response.text == "Disallowed CORS headers"
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert response.headers["access-control-allow-methods"] == "GET, POST"


@pytest.mark.parametrize(("allowed", "status"), [(True, 200), (False, 400)])
def test_private_network_access_follows_the_policy(allowed: bool, status: int) -> None:
    app = app_with(cors_allow_private_network=allowed)
    response = preflight(
        app, ALLOWED, "GET", extra={"Access-Control-Request-Private-Network": "true"}
    )
    assert response.status_code == status
    expected = "true" if allowed else None
    assert response.headers.get("access-control-allow-private-network") == expected


def test_a_request_without_origin_gets_vary_and_no_cors_headers() -> None:
    response = send(app_with(), "GET")
    assert response.headers["vary"] == "Origin"
    assert not [name for name in response.headers if name.startswith("access-control-")]


def test_an_options_request_without_origin_reaches_the_app() -> None:
    response = send(app_with(), "OPTIONS", headers={"Access-Control-Request-Method": "GET"})
    assert response.status_code == 405  # the app's answer: /health has no OPTIONS route
