"""What stock CORSMiddleware gets wrong, and this service gets right."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Response, WebSocket
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .service import PACKAGE, PathScopedCORSMiddleware, PolicyCORSMiddleware, Settings, create_app
from .support import send

ALLOWED = "https://app.example.com"
REFUSED = "https://evil.example.net"
CORS_LOGGER = "corsguard.refusals"


def app_with(**values: Any) -> FastAPI:
    """The service with a known policy (not the profile's), plus routes that fail."""
    policy: dict[str, Any] = {
        "cors_allow_origins": [ALLOWED, "https://*.preview.example.com"],
        "cors_allow_credentials": True,
        "cors_allow_methods": ["GET", "POST"],
        "cors_allow_headers": ["Authorization"],
        "cors_expose_headers": ["X-Request-ID"],
        "cors_allow_private_network": False,
    }
    settings = Settings(_env_file=None, **{**policy, **values})
    app = create_app(settings)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret detail that must not leak")

    @app.get("/own-cors-headers")
    def own_cors_headers() -> Response:
        # A route that sets CORS headers itself, wider than the policy.
        headers = {"Access-Control-Allow-Origin": "*", "Vary": "Accept-Encoding"}
        return Response(headers=headers)

    @app.websocket("/ws")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hello")
        await websocket.close()

    return app


def cors_headers(headers: object) -> dict[str, str]:
    assert hasattr(headers, "items")
    return {k.lower(): v for k, v in headers.items() if k.lower().startswith("access-control-")}


def test_the_cors_layer_wraps_every_middleware_of_create_app() -> None:
    """Middleware added in create_app above add_cors is inside the CORS layer; any added
    after it would answer browsers without CORS headers."""
    settings = Settings(_env_file=None)
    stack: list[object] = [middleware.cls for middleware in create_app(settings).user_middleware]
    cors = PathScopedCORSMiddleware if settings.cors_path_policies else PolicyCORSMiddleware
    outside = [getattr(cls, "__name__", repr(cls)) for cls in stack[: stack.index(cors)]]
    assert not outside, (
        f"{', '.join(outside)} wraps the CORS layer: move its app.add_middleware(...) above "
        "add_cors(app, settings) in create_app"
    )


class RejectingMiddleware:
    """An owner's middleware that answers some requests itself (an auth or size check)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/health":
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await self.app(scope, receive, send)


@pytest.mark.parametrize(("origin", "allowed"), [(ALLOWED, True), (REFUSED, False)])
def test_a_response_of_owner_middleware_carries_the_cors_decision(
    origin: str, allowed: bool
) -> None:
    app = app_with()
    app.user_middleware.insert(1, Middleware(RejectingMiddleware))  # inside the CORS layer
    response = send(app, "GET", "/health", headers={"Origin": origin})
    assert response.status_code == 401
    assert response.headers.get("access-control-allow-origin") == (origin if allowed else None)
    assert "origin" in response.headers["vary"].lower()


def answer_to_failure(app: FastAPI, path: str, origin: str) -> httpx.Response:
    """The response a client gets when the app fails: the layer's 500. The exception the
    layer raises again after it (for the server to log) is not raised here."""

    async def one() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.get(path, headers={"Origin": origin})

    return asyncio.run(one())


def test_unhandled_error_is_a_json_500_with_cors_headers() -> None:
    response = answer_to_failure(app_with(), "/boom", ALLOWED)
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal Server Error"}
    assert "secret detail" not in response.text
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert response.headers["access-control-allow-credentials"] == "true"
    assert response.headers["access-control-expose-headers"] == "X-Request-ID"


def test_unhandled_error_reaches_the_server_after_the_500() -> None:
    """Raised again, as Starlette's ServerErrorMiddleware does: the server logs it."""
    with pytest.raises(RuntimeError, match="secret detail"):
        send(app_with(), "GET", "/boom", headers={"Origin": ALLOWED})


class FailingMiddleware:
    """An owner's middleware, added in ``create_app`` above ``add_cors``, that fails."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raise RuntimeError("middleware failed")
        await self.app(scope, receive, send)


def test_an_error_in_middleware_inside_cors_is_a_500_with_cors_headers() -> None:
    app = app_with()
    app.user_middleware.insert(1, Middleware(FailingMiddleware))  # inside the CORS layer
    response = answer_to_failure(app, "/health", ALLOWED)
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal Server Error"}
    assert response.headers["access-control-allow-origin"] == ALLOWED


def test_unhandled_error_for_a_refused_origin_has_no_cors_headers() -> None:
    response = answer_to_failure(app_with(), "/boom", REFUSED)
    assert response.status_code == 500
    assert cors_headers(response.headers) == {}


@pytest.mark.parametrize("path", ["/health", "/missing"])
def test_refused_origin_gets_no_cors_header_at_all(path: str) -> None:
    response = send(app_with(), "GET", path, headers={"Origin": REFUSED})
    assert cors_headers(response.headers) == {}
    assert "Origin" in response.headers["vary"]


def test_the_policy_replaces_cors_headers_set_by_a_route() -> None:
    allowed = send(app_with(), "GET", "/own-cors-headers", headers={"Origin": ALLOWED})
    assert allowed.headers.get_list("access-control-allow-origin") == [ALLOWED]
    assert allowed.headers.get_list("vary") == ["Accept-Encoding, Origin"]
    refused = send(app_with(), "GET", "/own-cors-headers", headers={"Origin": REFUSED})
    assert cors_headers(refused.headers) == {}
    assert refused.headers.get_list("vary") == ["Accept-Encoding, Origin"]


def test_http_errors_carry_cors_headers_for_allowed_origins() -> None:
    response = send(app_with(), "GET", "/missing", headers={"Origin": ALLOWED})
    assert response.status_code == 404
    assert response.headers["access-control-allow-origin"] == ALLOWED


def handshake(app: FastAPI, origin: str | None, path: str = "/ws") -> list[Message]:
    """Open a WebSocket through the ASGI interface; return what the app sent."""
    headers = [(b"host", b"testserver")]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "scheme": "ws",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 1234),
        "subprotocols": [],
    }
    incoming: list[Message] = [{"type": "websocket.connect"}]
    sent: list[Message] = []

    async def receive() -> Message:
        if incoming:
            return incoming.pop(0)
        return {"type": "websocket.disconnect", "code": 1000}

    async def send_message(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send_message))
    return sent


def test_websocket_from_allowed_origin_connects() -> None:
    sent = handshake(app_with(), ALLOWED)
    assert sent[0]["type"] == "websocket.accept"
    assert {"type": "websocket.send", "text": "hello"} in sent


def test_websocket_from_pattern_origin_connects() -> None:
    assert (
        handshake(app_with(), "https://pr-7.preview.example.com")[0]["type"] == "websocket.accept"
    )


def test_websocket_from_refused_origin_is_closed_before_the_handler(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger=CORS_LOGGER):
        sent = handshake(app_with(), REFUSED)
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": ""}]
    assert [r.getMessage() for r in caplog.records if r.name == CORS_LOGGER] == [
        f"CORS refused WebSocket '/ws' from origin {REFUSED!r}: origin not in the allowed origins"
    ]


def test_websocket_without_origin_is_not_a_browser_and_connects() -> None:
    assert handshake(app_with(), None)[0]["type"] == "websocket.accept"


def refusal_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == CORS_LOGGER]


def test_refusals_are_logged_once_per_request_with_the_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = app_with()
    with caplog.at_level(logging.INFO, logger=CORS_LOGGER):
        send(app, "GET", headers={"Origin": REFUSED})
        send(
            app,
            "OPTIONS",
            headers={
                "Origin": ALLOWED,
                "Access-Control-Request-Method": "DELETE",
                "Access-Control-Request-Headers": "X-Secret",
            },
        )
        send(app, "GET", headers={"Origin": ALLOWED})
    assert refusal_logs(caplog) == [
        f"CORS refused request from origin {REFUSED!r}: origin not in the allowed origins",
        f"CORS refused preflight from origin {ALLOWED!r}: method, headers not allowed "
        "(method 'DELETE', headers 'X-Secret')",
    ]


def test_refusals_are_silent_at_the_default_level(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        send(app_with(), "GET", headers={"Origin": REFUSED})
    assert refusal_logs(caplog) == []


def test_log_level_setting_turns_refusal_logs_on(caplog: pytest.LogCaptureFixture) -> None:
    app = app_with(log_level="info")
    caplog.set_level(logging.NOTSET)
    send(app, "GET", headers={"Origin": REFUSED})
    assert len(refusal_logs(caplog)) == 1
    create_app(Settings(_env_file=None))  # back to the default level for other tests


PRIVATE_NETWORK_PREFLIGHT = {
    "Origin": ALLOWED,
    "Access-Control-Request-Method": "GET",
    "Access-Control-Request-Private-Network": "true",
}


def test_private_network_access_is_off_by_default() -> None:
    response = send(app_with(), "OPTIONS", headers=PRIVATE_NETWORK_PREFLIGHT)
    assert response.status_code == 400
    assert "access-control-allow-private-network" not in response.headers


def test_private_network_access_can_be_turned_on() -> None:
    app = app_with(cors_allow_private_network=True)
    response = send(app, "OPTIONS", headers=PRIVATE_NETWORK_PREFLIGHT)
    assert response.status_code == 200
    assert response.headers["access-control-allow-private-network"] == "true"


def test_websocket_from_the_service_own_origin_connects() -> None:
    """A page served by the API itself needs no entry in the allowed origins."""
    app = app_with()
    sent = handshake(app, "http://testserver")
    assert sent[0]["type"] == "websocket.accept"
    assert handshake(app, "http://testserver:8080")[0]["type"] == "websocket.close"


def test_long_refused_origins_are_cut_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    origin = "https://" + "a" * 5000 + ".example.net"
    with caplog.at_level(logging.INFO, logger=CORS_LOGGER):
        send(app_with(), "GET", headers={"Origin": origin})
    [message] = refusal_logs(caplog)
    assert len(message) < 400


def test_request_values_cannot_forge_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    """Paths arrive percent-decoded: CR, LF and ESC must not reach the log as they are."""
    app = app_with()
    cross_site = {"Origin": REFUSED, "Sec-Fetch-Site": "cross-site"}

    with caplog.at_level(logging.INFO, logger=PACKAGE):
        handshake(app, REFUSED, "/ws\r\nINFO: forged\x1b[2J")
        send(app, "POST", "/fail/x%1b%5b2J%09", headers=cross_site)
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("corsguard.")]
    assert messages[0] == (
        "CORS refused WebSocket '/ws\\r\\nINFO: forged\\x1b[2J' from origin "
        f"{REFUSED!r}: origin not in the allowed origins"
    )
    assert messages[1] == (
        f"CORS refused POST '/fail/x\\x1b[2J\\t' from origin {REFUSED!r}: origin not allowed "
        "(cross-origin write)"
    )
    assert all("\n" not in message and "\x1b" not in message for message in messages)
    assert len(messages) == 2


def test_an_origin_longer_than_any_browser_sends_is_refused_before_matching(
    caplog: pytest.LogCaptureFixture,
) -> None:
    origin = "https://" + "a." * 100_000 + "preview.example.com"
    with caplog.at_level(logging.INFO, logger=CORS_LOGGER):
        response = send(app_with(), "GET", headers={"Origin": origin})
    assert "access-control-allow-origin" not in response.headers
    [message] = refusal_logs(caplog)
    assert message.endswith("origin longer than 300 characters, which no browser sends")


def test_an_origin_under_a_pattern_with_a_host_over_253_characters_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """286 characters pass the cheap length pre-check (300) but no DNS name is that long."""
    origin = "https://" + "a" * 60 + "." + "b" * 60 + "." + "c" * 60 + "." + "d" * 60
    origin += "." + "e" * 14 + ".preview.example.com"
    assert len(origin) == 286
    with caplog.at_level(logging.INFO, logger=CORS_LOGGER):
        response = send(app_with(), "GET", headers={"Origin": origin})
    assert "access-control-allow-origin" not in response.headers
    [message] = refusal_logs(caplog)
    assert message.endswith(
        "host name with 278 characters: DNS names have at most 253 characters and labels at "
        "most 63, so no browser sends it"
    )


def test_an_origin_under_a_pattern_with_a_host_of_253_characters_is_allowed() -> None:
    host = "a" * 60 + "." + "b" * 60 + "." + "c" * 60 + "." + "d" * 50 + ".preview.example.com"
    assert len(host) == 253
    origin = f"https://{host}"
    response = send(app_with(), "GET", headers={"Origin": origin})
    assert response.headers["access-control-allow-origin"] == origin


def test_an_origin_under_a_pattern_with_a_label_over_63_characters_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    origin = "https://" + "a" * 64 + ".preview.example.com"
    with caplog.at_level(logging.INFO, logger=CORS_LOGGER):
        response = send(app_with(), "GET", headers={"Origin": origin})
    assert "access-control-allow-origin" not in response.headers
    [message] = refusal_logs(caplog)
    assert "host name with a label of 64 characters" in message


class CapitalizedCORSHeaders:
    """A mounted ASGI app that writes CORS headers itself, in mixed case."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"Access-Control-Allow-Origin", b"*"), (b"Vary", b"Accept-Encoding")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"{}"})


def test_cors_headers_of_a_mounted_app_are_replaced_whatever_their_case() -> None:
    app = app_with()
    app.mount("/legacy", CapitalizedCORSHeaders())
    refused = send(app, "GET", "/legacy/x", headers={"Origin": REFUSED})
    allowed = send(app, "GET", "/legacy/x", headers={"Origin": ALLOWED})
    assert "access-control-allow-origin" not in refused.headers
    assert allowed.headers["access-control-allow-origin"] == ALLOWED
    assert allowed.headers["vary"] == "Accept-Encoding, Origin"


@pytest.mark.parametrize(
    ("lines", "status"),
    [
        pytest.param(["authorization", "x-not-allowed"], 400, id="second-line-refused"),
        pytest.param(["authorization", "content-type"], 200, id="both-allowed"),
    ],
)
def test_request_headers_split_over_several_lines_are_read_whole(
    lines: list[str], status: int
) -> None:
    headers = [("Origin", ALLOWED), ("Access-Control-Request-Method", "POST")]
    headers += [("Access-Control-Request-Headers", line) for line in lines]
    response = send(app_with(), "OPTIONS", headers=headers)
    assert response.status_code == status


def test_methods_star_allows_the_standard_methods_and_those_listed_beside_it() -> None:
    app = app_with(cors_allow_methods=["*", "PROPFIND"])

    def preflight(method: str) -> int:
        headers = {"Origin": ALLOWED, "Access-Control-Request-Method": method}
        return send(app, "OPTIONS", headers=headers).status_code

    assert [preflight(m) for m in ("DELETE", "PATCH", "PROPFIND", "REPORT")] == [200, 200, 200, 400]


@pytest.mark.parametrize(
    ("origin", "reason"),
    [
        ("http://app.example.com", f"differs from the allowed {ALLOWED!r} in its scheme"),
        ("https://app.example.com:8443", f"differs from the allowed {ALLOWED!r} in its port"),
        ("https://preview.example.com", "does not cover the bare domain 'preview.example.com'"),
        ("http://pr-1.preview.example.com", "requires the scheme 'https' and the default port"),
        ("null", "the origin 'null' comes from sandboxed iframes"),
    ],
)
def test_a_refusal_log_says_why_as_explain_would(
    caplog: pytest.LogCaptureFixture, origin: str, reason: str
) -> None:
    with caplog.at_level(logging.INFO, logger=CORS_LOGGER):
        send(app_with(), "GET", headers={"Origin": origin})
    [message] = refusal_logs(caplog)
    assert reason in message
