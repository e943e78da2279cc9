"""The CORS policy built from the settings, and the middleware that applies it.

Validation and normalization happen once, when the settings load. Per request, the
middleware only looks things up: exact origins in a frozenset, patterns by walking the
labels of the requested host. The header work is Starlette's ``CORSMiddleware``; the
thin subclass below adds what the stock middleware leaves out:

- no CORS headers at all for a refused origin (stock sends
  ``Access-Control-Allow-Credentials`` and exposed headers to everyone);
- WebSocket handshakes checked against the same origins (stock lets them all through);
- one log record per refused request on the ``<package>.cors`` logger, at INFO, with
  the reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import SAFELISTED_HEADERS, CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .origins import WILDCARD, OriginPattern, PatternSet, is_pattern
from .settings import Settings

logger = logging.getLogger(__name__)

# Close code for a handshake refused before it was accepted: servers answer 403.
POLICY_VIOLATION = 1008


@dataclass(frozen=True)
class CORSPolicy:
    """What browsers on other origins may do. Built from validated settings."""

    origins: frozenset[str]
    patterns: PatternSet
    allow_credentials: bool
    allow_methods: tuple[str, ...]
    allow_headers: tuple[str, ...]
    expose_headers: tuple[str, ...]
    max_age: int
    allow_private_network: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> CORSPolicy:
        entries = settings.cors_allow_origins
        return cls(
            origins=frozenset(entry for entry in entries if not is_pattern(entry)),
            patterns=PatternSet(
                OriginPattern.parse(entry) for entry in entries if is_pattern(entry)
            ),
            allow_credentials=settings.cors_allow_credentials,
            allow_methods=settings.cors_allow_methods,
            allow_headers=settings.cors_allow_headers,
            expose_headers=settings.cors_expose_headers,
            max_age=settings.cors_max_age,
            allow_private_network=settings.cors_allow_private_network,
        )

    @property
    def allows_any_origin(self) -> bool:
        return WILDCARD in self.origins

    def allows_origin(self, origin: str) -> bool:
        """Whether a request carrying this ``Origin`` header may read the response."""
        return (
            self.allows_any_origin
            or origin in self.origins
            or self.patterns.match(origin) is not None
        )

    def allows_method(self, method: str) -> bool:
        return WILDCARD in self.allow_methods or method in self.allow_methods

    def allows_header(self, header: str) -> bool:
        """Whether a preflight may ask for ``header`` (names compare case-insensitively)."""
        allowed = {name.lower() for name in (*self.allow_headers, *SAFELISTED_HEADERS)}
        return WILDCARD in self.allow_headers or header.strip().lower() in allowed


class PolicyCORSMiddleware(CORSMiddleware):
    """Starlette's ``CORSMiddleware`` deciding with a :class:`CORSPolicy`."""

    def __init__(self, app: ASGIApp, policy: CORSPolicy) -> None:
        super().__init__(
            app,
            allow_origins=policy.origins,
            allow_methods=policy.allow_methods,
            allow_headers=policy.allow_headers,
            allow_credentials=policy.allow_credentials,
            allow_private_network=policy.allow_private_network,
            expose_headers=policy.expose_headers,
            max_age=policy.max_age,
        )
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            origin = Headers(scope=scope).get("origin")
            # Browsers always send Origin on a handshake; clients without one are not
            # browsers, so CORS does not apply to them (authenticate them as usual).
            if origin is not None and not self.is_allowed_origin(origin):
                log_refusal(f"WebSocket {scope['path']}", origin, "origin not allowed")
                await send({"type": "websocket.close", "code": POLICY_VIOLATION, "reason": ""})
                return
        await super().__call__(scope, receive, send)

    def is_allowed_origin(self, origin: str) -> bool:
        return self.policy.allows_origin(origin)

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 200:
            if not self.is_allowed_origin(request_headers["origin"]):
                # Stock answers a refused origin with Allow-Credentials, Allow-Methods, ...
                for name in [n for n in response.headers if n.startswith("access-control-")]:
                    del response.headers[name]
            refused = bytes(response.body).decode().removeprefix("Disallowed CORS ")
            method = request_headers["access-control-request-method"]
            requested = request_headers.get("access-control-request-headers", "")
            log_refusal(
                "preflight",
                request_headers["origin"],
                f"{refused} not allowed (method {method!r}, headers {requested!r})",
            )
        return response

    async def send(self, message: Message, send: Send, request_headers: Headers) -> None:
        origin = request_headers.get("origin")
        if (
            message["type"] == "http.response.start"
            and origin is not None
            and not self.is_allowed_origin(origin)
        ):
            # A refused origin gets no CORS header at all, only Vary for caches.
            MutableHeaders(scope=message).add_vary_header("Origin")
            log_refusal("request", origin, "origin not allowed")
            await send(message)
            return
        await super().send(message, send, request_headers)


def log_refusal(kind: str, origin: str, reason: str) -> None:
    """One record per refused request; %r keeps hostile header values on one line."""
    logger.info("CORS refused %s from origin %r: %s", kind, origin, reason)


def add_cors(app: FastAPI, policy: CORSPolicy) -> None:
    """Install the CORS middleware. Call it last: middleware added later would wrap it,
    and the responses those produce would reach browsers without CORS headers."""
    app.add_middleware(PolicyCORSMiddleware, policy=policy)
