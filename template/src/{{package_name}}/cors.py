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
from dataclasses import dataclass, field

from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import ALL_METHODS, SAFELISTED_HEADERS, CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .origins import WILDCARD, OriginPattern, PatternSet, is_pattern
from .settings import PathPolicy, Settings

logger = logging.getLogger(__name__)

# Close code for a handshake refused before it was accepted: servers answer 403.
POLICY_VIOLATION = 1008


@dataclass(frozen=True)
class CORSPolicy:
    """What browsers on other origins may do. Built from validated settings."""

    entries: tuple[str, ...]
    allow_credentials: bool
    allow_methods: tuple[str, ...]
    allow_headers: tuple[str, ...]
    expose_headers: tuple[str, ...]
    max_age: int
    allow_private_network: bool = False
    origins: frozenset[str] = field(init=False)
    patterns: PatternSet = field(init=False)
    any_origin: bool = field(init=False)

    def __post_init__(self) -> None:
        # Derived once here, so that the per-request lookups are ready-made.
        exact = frozenset(entry for entry in self.entries if not is_pattern(entry))
        wild = PatternSet(OriginPattern.parse(entry) for entry in self.entries if is_pattern(entry))
        object.__setattr__(self, "origins", exact)
        object.__setattr__(self, "patterns", wild)
        object.__setattr__(self, "any_origin", WILDCARD in exact)

    @classmethod
    def from_settings(cls, settings: Settings) -> CORSPolicy:
        """The default policy: every path that no path policy claims."""
        return cls.from_path_policy(settings.default_policy, settings.cors_allow_private_network)

    @classmethod
    def from_path_policy(cls, policy: PathPolicy, allow_private_network: bool) -> CORSPolicy:
        return cls(
            entries=policy.allow_origins,
            allow_credentials=policy.allow_credentials,
            allow_methods=policy.allow_methods,
            allow_headers=policy.allow_headers,
            expose_headers=policy.expose_headers,
            max_age=policy.max_age,
            allow_private_network=allow_private_network,
        )

    @property
    def allows_any_origin(self) -> bool:
        return self.any_origin

    def allows_origin(self, origin: str) -> bool:
        """Whether a request carrying this ``Origin`` header may read the response."""
        return self.any_origin or origin in self.origins or self.patterns.match(origin) is not None

    def allows_method(self, method: str) -> bool:
        # Starlette turns '*' into its fixed list of methods, compared case-sensitively.
        allowed = ALL_METHODS if WILDCARD in self.allow_methods else self.allow_methods
        return method in allowed

    def allows_header(self, header: str) -> bool:
        """Whether a preflight may ask for ``header`` (names compare case-insensitively)."""
        allowed = {name.lower() for name in (*self.allow_headers, *SAFELISTED_HEADERS)}
        return WILDCARD in self.allow_headers or header.strip().lower() in allowed


@dataclass(frozen=True)
class CORSPolicies:
    """The default policy and the path policies, by path prefix."""

    default: CORSPolicy
    named: dict[str, CORSPolicy]
    owners: dict[str, str]  # path prefix -> policy name

    @classmethod
    def from_settings(cls, settings: Settings) -> CORSPolicies:
        path_policies = settings.cors_path_policies
        network = settings.cors_allow_private_network
        return cls(
            default=CORSPolicy.from_settings(settings),
            named={
                name: CORSPolicy.from_path_policy(policy, network)
                for name, policy in path_policies.items()
            },
            owners={
                prefix: name for name, policy in path_policies.items() for prefix in policy.prefixes
            },
        )

    def prefix_for(self, path: str) -> str | None:
        """The longest path prefix that covers ``path``, matching whole segments:
        ``/public`` covers ``/public`` and ``/public/x``, not ``/publicity``."""
        candidate = path
        while candidate:
            if candidate in self.owners:
                return candidate
            candidate = candidate.rpartition("/")[0]
        return None

    def name_for(self, path: str) -> str | None:
        """The path policy that decides for ``path``; None for the default policy."""
        prefix = self.prefix_for(path) if self.owners else None
        return None if prefix is None else self.owners[prefix]

    def for_path(self, path: str) -> CORSPolicy:
        name = self.name_for(path)
        return self.default if name is None else self.named[name]


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
        # Starlette's dispatch, plus the WebSocket handshake check it leaves out.
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            if (
                scope["method"] == "OPTIONS"
                and "origin" in headers
                and "access-control-request-method" in headers
            ):
                response = self.preflight_response(request_headers=headers)
                await response(scope, receive, send)
            else:
                await self.simple_response(scope, receive, send, request_headers=headers)
            return
        if scope["type"] == "websocket":
            headers = Headers(scope=scope)
            origin = headers.get("origin")
            # Browsers always send Origin on a handshake; clients without one are not
            # browsers, so CORS does not apply to them (authenticate them as usual).
            if origin is not None and origin != own_origin(scope, headers):
                if not self.is_allowed_origin(origin):
                    log_refusal(f"WebSocket {scope['path']}", origin, "origin not allowed")
                    await send({"type": "websocket.close", "code": POLICY_VIOLATION, "reason": ""})
                    return
                if not self.allow_credentials:
                    # Browsers send cookies on every handshake; a policy without
                    # credentials must not let another site use them.
                    scope = {**scope, "headers": without_credentials(scope["headers"])}
        await self.app(scope, receive, send)

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
        # Stock sends Access-Control-Allow-Credentials and exposed headers to refused
        # origins too, and checks the origin twice; here it is checked once, and a refused
        # origin gets no CORS header at all, only Vary for caches.
        if message["type"] == "http.response.start":
            origin = request_headers.get("origin")
            message.setdefault("headers", [])
            headers = MutableHeaders(scope=message)
            if origin is not None and self.is_allowed_origin(origin):
                headers.update(self.simple_headers)
                if self.preflight_explicit_allow_origin:  # not a plain '*' policy
                    headers["Access-Control-Allow-Origin"] = origin
            elif origin is not None:
                log_refusal("request", origin, "origin not allowed")
            headers.add_vary_header("Origin")
        await send(message)


def own_origin(scope: Scope, headers: Headers) -> str | None:
    """The origin of the service itself, as a page it serves would send it."""
    host = headers.get("host")
    if host is None:
        return None
    scheme = "https" if scope.get("scheme") in ("wss", "https") else "http"
    default_port = ":443" if scheme == "https" else ":80"
    return f"{scheme}://{host.lower().removesuffix(default_port)}"


CREDENTIAL_HEADERS = frozenset({b"cookie", b"authorization"})


def without_credentials(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(name, value) for name, value in headers if name.lower() not in CREDENTIAL_HEADERS]


LOGGED_LENGTH = 200


def log_refusal(kind: str, origin: str, reason: str) -> None:
    """One record per refused request; %r keeps hostile header values on one line, and
    long values are cut so that a request cannot write kilobytes to the log."""
    if len(origin) > LOGGED_LENGTH:
        origin = origin[:LOGGED_LENGTH] + "..."
    if len(reason) > 2 * LOGGED_LENGTH:
        reason = reason[: 2 * LOGGED_LENGTH] + "..."
    logger.info("CORS refused %s from origin %r: %s", kind, origin, reason)


class PathScopedCORSMiddleware:
    """One :class:`PolicyCORSMiddleware` per policy; the request path picks which.

    Preflights and actual requests to the same path meet the same policy, because the
    choice depends on the path only.
    """

    def __init__(self, app: ASGIApp, policies: CORSPolicies) -> None:
        self.policies = policies
        self.default = PolicyCORSMiddleware(app, policies.default)
        self.named = {
            name: PolicyCORSMiddleware(app, policy) for name, policy in policies.named.items()
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = None
        if scope["type"] in ("http", "websocket"):
            name = self.policies.name_for(route_path(scope))
        middleware = self.default if name is None else self.named[name]
        await middleware(scope, receive, send)


def route_path(scope: Scope) -> str:
    """The path as routing sees it: without the ``root_path`` a proxy or
    ``--root-path`` mounts the app under (as Starlette's router strips it)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :]
    return path


def add_cors(app: FastAPI, policies: CORSPolicies) -> None:
    """Install the CORS middleware. Call it last: middleware added later would wrap it,
    and the responses those produce would reach browsers without CORS headers."""
    if policies.named:
        app.add_middleware(PathScopedCORSMiddleware, policies=policies)
    else:
        app.add_middleware(PolicyCORSMiddleware, policy=policies.default)
