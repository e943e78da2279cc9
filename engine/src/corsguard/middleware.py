"""The CORS policy built from the settings, and the middleware that applies it.

Validation and normalization happen once, when the settings load. Per request, the
middleware only looks things up: exact origins in a dict of ready-encoded response
headers, patterns by walking the labels of the requested host. The layer answers
preflights itself and writes the CORS headers of every other response, from the policy
and Starlette's public interface only (not its ``CORSMiddleware``, whose attributes and
answers change between releases), and does what Starlette's ``CORSMiddleware`` does not:

- no CORS headers at all for a refused origin (stock sends
  ``Access-Control-Allow-Credentials`` and exposed headers to everyone), and a route's
  own ``Access-Control-*`` headers replaced by the policy's;
- a JSON 500 with the CORS headers for an unhandled exception (stock's 500 comes from
  outside every middleware, so the browser reports a CORS failure instead), the
  exception raised again afterwards for the server to log;
- WebSocket handshakes checked against the same origins (stock lets them all through);
- cross-origin write protection: CORS only hides responses, so an unsafe request (a
  form POST, ``sendBeacon``, a ``no-cors`` fetch) that a browser marks as cross-origin,
  from an origin the path's policy does not allow, is refused with 403 before any
  handler runs (see :meth:`PolicyCORSMiddleware.write_refusal`);
- bounded work per request: an ``Origin`` longer than any a browser sends is refused
  before it is matched;
- a log record per refused request on the ``corsguard.refusals`` logger, at INFO, with
  the reason, every request-derived value escaped and cut, up to
  ``REFUSAL_LOG_BOUND`` records per ``REFUSAL_LOG_INTERVAL``; past that, refusals are
  counted and summed up in one record per interval (see :class:`RefusalLog`).
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property
from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.middleware.cors import ALL_METHODS, SAFELISTED_HEADERS
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import LOGGED_LENGTH, internal_error, loggable
from .origins import (
    MAX_HOST_LENGTH,
    MAX_LABEL_LENGTH,
    NULL,
    WILDCARD,
    OriginPattern,
    PatternSet,
    is_pattern,
)
from .settings import ConfigError, CORSSettings, PathPolicy
from .store import RuntimeOrigins, Snapshot, StoreError

# Refused requests, at INFO (configure_logging sets the level of "corsguard").
logger = logging.getLogger("corsguard.refusals")
startup_logger = logging.getLogger("corsguard.startup")

# Close code for a handshake refused before it was accepted: servers answer 403.
POLICY_VIOLATION = 1008
# The longest Origin a browser sends: 'https://', a host name of at most 253 characters
# (MAX_HOST_LENGTH), ':65535': 267, rounded up. A cheap pre-check: anything longer is
# refused before it is hashed or matched, so its cost is bounded. The host's own limits
# (253 characters, labels of 63) are then applied where a pattern could allow it.
MAX_ORIGIN_LENGTH = 300
# Refusal records (see RefusalLog): at most REFUSAL_LOG_BOUND records of their own per
# REFUSAL_LOG_INTERVAL seconds, per app (one per worker process); the refusals past the
# bound are counted, by origin for the first REFUSAL_ORIGINS_TRACKED distinct origins of
# the interval, and one summary record names the REFUSAL_SUMMARY_TOP most frequent.
REFUSAL_LOG_BOUND = 20
REFUSAL_LOG_INTERVAL = 60.0
REFUSAL_ORIGINS_TRACKED = 1000
REFUSAL_SUMMARY_TOP = 5
# Methods whose requests must not change anything (RFC 9110); every other one is unsafe.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


@dataclass(frozen=True)
class Refusal:
    """Why a policy refuses an origin: a kind, the words, and a detail for the fix."""

    kind: str  # too-long, host-too-long, null, scheme, port, pattern or unlisted
    reason: str
    detail: str = ""


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
    # The entries of ``entries`` that came from the origin store (corsguard.store).
    runtime: tuple[str, ...] = ()
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
    def from_settings(cls, settings: CORSSettings) -> CORSPolicy:
        """The default policy: every path that no path policy claims."""
        return cls.from_path_policy(settings.default_policy)

    @classmethod
    def from_path_policy(cls, policy: PathPolicy) -> CORSPolicy:
        return cls(
            entries=policy.allow_origins,
            allow_credentials=policy.allow_credentials,
            allow_methods=policy.allow_methods,
            allow_headers=policy.allow_headers,
            expose_headers=policy.expose_headers,
            max_age=policy.max_age,
            allow_private_network=policy.allow_private_network,
        )

    @property
    def allows_any_origin(self) -> bool:
        return self.any_origin

    def allows_origin(self, origin: str) -> bool:
        """Whether a request carrying this ``Origin`` header may read the response."""
        if len(origin) > MAX_ORIGIN_LENGTH:
            return False  # no browser sends it; refused before any matching
        return self.any_origin or origin in self.origins or self.patterns.match(origin) is not None

    @property
    def methods(self) -> tuple[str, ...]:
        """The methods a preflight may ask for: '*' stands for Starlette's ``ALL_METHODS``
        (on Starlette 1.10: DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT and QUERY, which
        1.7 added), and methods listed beside it are added to those. Compared
        case-sensitively, as browsers send them."""
        if WILDCARD not in self.allow_methods:
            return self.allow_methods
        listed = [method for method in self.allow_methods if method != WILDCARD]
        return tuple(dict.fromkeys([*ALL_METHODS, *listed]))

    def allows_method(self, method: str) -> bool:
        return method in self.methods

    @cached_property
    def _by_host(self) -> dict[str, tuple[str, ...]]:
        """Exact origins by host name, built on the first refusal that needs it."""
        hosts: dict[str, list[str]] = {}
        for entry in sorted(self.origins):
            hosts.setdefault(urlsplit(entry).hostname or "", []).append(entry)
        return {host: tuple(entries) for host, entries in hosts.items()}

    def refusal(self, origin: str) -> Refusal:
        """Why this policy refuses ``origin``, in words: what ``cors explain`` says before
        its fix, and what a refusal log record says. Bounded work: one look-up by host
        name, then the patterns."""
        if len(origin) > MAX_ORIGIN_LENGTH:
            return Refusal("too-long", TOO_LONG)
        if origin == NULL:
            return Refusal(
                "null",
                "the origin 'null' comes from sandboxed iframes, file: and data: pages, which "
                "any site can create",
            )
        try:
            parts = urlsplit(origin)
            host, port = parts.hostname or "", parts.port
        except ValueError:
            return Refusal("unlisted", "origin not allowed")
        if len(host) > MAX_HOST_LENGTH:
            return Refusal("host-too-long", host_too_long(f"{len(host)} characters"))
        if any(len(label) > MAX_LABEL_LENGTH for label in host.split(".")):
            longest = max(len(label) for label in host.split("."))
            return Refusal("host-too-long", host_too_long(f"a label of {longest} characters"))
        for entry in self._by_host.get(host, ()):
            other = urlsplit(entry)
            if other.scheme != parts.scheme:
                reason = f"origin {origin!r} differs from the allowed {entry!r} in its scheme"
                return Refusal("scheme", reason, other.scheme)
            if other.port != port:
                reason = f"origin {origin!r} differs from the allowed {entry!r} in its port"
                return Refusal("port", reason)
        for pattern in self.patterns:
            if host == pattern.parent:
                return Refusal(
                    "pattern",
                    f"pattern {str(pattern)!r} does not cover the bare domain {host!r} ('*' "
                    "stands for one or more labels)",
                )
            if host.endswith(f".{pattern.parent}"):
                wanted = f"port {pattern.port}" if pattern.port else "the default port"
                return Refusal(
                    "pattern",
                    f"origin {origin!r} is below {pattern.parent!r} but pattern "
                    f"{str(pattern)!r} requires the scheme {pattern.scheme!r} and {wanted}",
                )
        return Refusal("unlisted", "origin not in the allowed origins")

    def with_runtime(self, added: tuple[str, ...]) -> CORSPolicy:
        """This policy with the run-time entries ``added`` beside its configured ones."""
        configured = tuple(entry for entry in self.entries if entry not in self.runtime)
        extra = tuple(entry for entry in added if entry not in configured)
        return replace(self, entries=(*configured, *extra), runtime=extra)

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
    protect_writes: bool = True
    write_bypass: tuple[str, ...] = ()  # path prefixes exempt from write protection

    @classmethod
    def from_settings(cls, settings: CORSSettings) -> CORSPolicies:
        path_policies = settings.cors_path_policies
        return cls(
            default=CORSPolicy.from_settings(settings),
            named={
                name: CORSPolicy.from_path_policy(policy) for name, policy in path_policies.items()
            },
            owners={
                prefix: name for name, policy in path_policies.items() for prefix in policy.prefixes
            },
            protect_writes=settings.cors_cross_origin_protection,
            write_bypass=settings.cors_cross_origin_bypass,
        )

    def with_runtime(self, snapshot: Snapshot) -> CORSPolicies:
        """These policies with the run-time entries of ``snapshot`` added to each."""
        return replace(
            self,
            default=self.default.with_runtime(snapshot.entries.get(None, ())),
            named={
                name: policy.with_runtime(snapshot.entries.get(name, ()))
                for name, policy in self.named.items()
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

    def writes_protected(self, path: str) -> bool:
        """Whether cross-origin write protection applies to ``path`` (whole segments)."""
        return self.protect_writes and not any(
            path == prefix or path.startswith(prefix + "/") for prefix in self.write_bypass
        )


class PolicyCORSMiddleware:
    """The CORS layer of one :class:`CORSPolicy`: preflights, responses, WebSockets.

    Starlette's ``CORSMiddleware`` is not used: the layer answers from the policy alone,
    so it depends only on Starlette's public interface, and a Starlette release that
    changes its own CORS answers (1.7 changed the preflight's Vary and requests without
    Origin) changes nothing here. Per request the origin is decided once, before the app
    runs, and every header is encoded when the middleware is built.
    """

    def __init__(
        self,
        app: ASGIApp,
        policy: CORSPolicy,
        policies: CORSPolicies | None = None,
        refusals: RefusalLog | None = None,
        runtime: RuntimeOrigins | None = None,
    ) -> None:
        """``policies`` brings the cross-origin write protection settings; without it the
        layer applies CORS only. ``refusals`` is the bounded refusal log to write to
        (shared by the layers of one app); without it the layer has its own.
        ``runtime`` brings origins added while the app runs: their watcher runs with the
        app's lifespan, and each change rebuilds the policy (with ``policies`` as the
        configured one)."""
        self.app = app
        self.policies = policies
        self.refusals = RefusalLog() if refusals is None else refusals
        self.other_headers = (VARY_ORIGIN,)
        self.runtime = runtime
        if runtime is not None and policies is not None:
            configured = policies
            self.use(policy.with_runtime(runtime.snapshot.entries.get(None, ())))
            runtime.subscribers.append(
                lambda snapshot: self.prepare(
                    configured.default.with_runtime(snapshot.entries.get(None, ()))
                )
            )
        else:
            self.use(policy)

    def use(self, policy: CORSPolicy) -> None:
        """Apply ``policy`` from now on."""
        self.prepare(policy)()

    def prepare(self, policy: CORSPolicy) -> Callable[[], None]:
        """Build what ``policy``'s answers are made of (every header encoded, so that
        requests only look them up), and return the step that puts it in force. The
        watcher of run-time origins builds in a thread (a set of 100,000 origins takes a
        while) and puts it in force in the event loop, between two requests."""
        preflight = PreflightAnswers(policy, self.refusals)
        # The headers that end every response to an allowed origin, and to any other
        # request; exact origins map straight to theirs.
        allowed = (*simple_headers(policy), VARY_ORIGIN)
        encoded = (origin.encode("latin-1") for origin in policy.origins if origin != WILDCARD)
        exact = {
            origin: allowed_origin_headers(origin, allowed, preflight.explicit_origin)
            for origin in encoded
        }

        def commit() -> None:
            self.policy, self.preflight = policy, preflight
            self.allowed_headers, self.exact_headers = allowed, exact

        return commit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan" and self.runtime is not None:
                await with_watcher(self.runtime, self.app, scope, receive, send)
                return
            await self.other(scope, receive, send)
            return
        origin = request_origin(scope["headers"])
        method = scope["method"]
        if origin is not None and method == "OPTIONS":
            asked = PreflightRequest.read(scope["headers"])
            if asked is not None:
                await self.preflight.answer(origin, asked, send)
                return
        if method not in SAFE_METHODS and self.policies and self.policies.protect_writes:
            reason = self.write_refusal(scope, origin)
            if reason is not None:
                await write_refused(scope, origin, reason, self.refusals)(scope, receive, send)
                return
        # Run the app with the CORS headers on its response (written out here, not in a
        # method of its own: this is every request's path, and a call costs).
        added = self.response_headers(origin)
        started = False

        async def send_with_cors(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = with_headers(message.get("headers", ()), added)
            await send(message)

        # An exception the app raises before its response starts gets a JSON 500 with the
        # CORS headers (Starlette's own 500 comes from outside this layer, without them),
        # then is raised again, as Starlette's ServerErrorMiddleware does: the server logs
        # its one traceback, and TestClient raises it in the owner's test.
        try:
            await self.app(scope, receive, send_with_cors)
        except Exception:
            if not started:  # else too late for another response: the server closes
                await internal_error()(scope, receive, send_with_cors)
            raise

    async def other(self, scope: Scope, receive: Receive, send: Send) -> None:
        """WebSocket handshakes checked against the same origins; lifespan passed on."""
        if scope["type"] == "websocket":
            headers = Headers(scope=scope)
            origin = headers.get("origin")
            # Browsers always send Origin on a handshake; clients without one are not
            # browsers, so CORS does not apply to them (authenticate them as usual).
            if origin is not None and origin != own_origin(scope, headers):
                if not self.is_allowed_origin(origin):
                    self.refusals.refused(
                        f"WebSocket {loggable(scope['path'])}",
                        origin,
                        lambda: self.why_refused(origin),
                    )
                    await send({"type": "websocket.close", "code": POLICY_VIOLATION, "reason": ""})
                    return
                if not self.policy.allow_credentials:
                    # Browsers send cookies on every handshake; a policy without
                    # credentials must not let another site use them.
                    scope = {**scope, "headers": without_credentials(scope["headers"])}
        await self.app(scope, receive, send)

    def is_allowed_origin(self, origin: str) -> bool:
        return self.policy.allows_origin(origin)

    def why_refused(self, origin: str) -> str:
        """The policy's reason, worked out only for a refusal that gets a record."""
        return self.policy.refusal(origin).reason

    def write_refusal(self, scope: Scope, origin: bytes | None) -> str | None:
        """Why an unsafe request must not reach the app, or None when it may.

        The algorithm of Go's ``CrossOriginProtection``, with this path's policy as the
        trusted origins: ``Sec-Fetch-Site: same-origin`` or ``none`` passes; without
        ``Sec-Fetch-Site``, an ``Origin`` whose host is the request's ``Host`` passes, and
        a request with neither header is not from a browser and passes; any other request
        passes only from an origin the policy allows, with a method it allows, or under a
        bypass prefix.
        """
        site = header_value(scope["headers"], b"sec-fetch-site")
        if site in (b"same-origin", b"none"):
            return None
        if site is None:
            if origin is None:
                return None  # not a browser: CORS and this check do not apply
            if same_host(origin, header_value(scope["headers"], b"host")):
                return None
        if self.policies is None or not self.policies.writes_protected(route_path(scope)):
            return None
        if origin is None:
            return "a cross-site request without an Origin header"
        text = origin.decode("latin-1")
        if not self.is_allowed_origin(text):
            return "origin not allowed"
        if not self.policy.allows_method(scope["method"]):
            return f"method {scope['method']!r} not allowed"
        return None

    def headers_for_allowed(self, origin: bytes) -> RawHeaders:
        return allowed_origin_headers(origin, self.allowed_headers, self.preflight.explicit_origin)

    def response_headers(self, origin: bytes | None) -> RawHeaders:
        """The CORS headers of the response to a request with this ``Origin``."""
        if origin is None:
            return self.other_headers
        if len(origin) > MAX_ORIGIN_LENGTH:  # bounded work: not even hashed
            shown = origin[: LOGGED_LENGTH + 1].decode("latin-1")  # loggable marks the cut
            self.refusals.refused("request", shown, TOO_LONG)
            return self.other_headers
        found = self.exact_headers.get(origin)
        if found is not None:
            return found
        text = origin.decode("latin-1")
        if self.is_allowed_origin(text):  # a pattern, or '*'
            return self.headers_for_allowed(origin)
        self.refusals.refused("request", text, lambda: self.why_refused(text))
        return self.other_headers


def allowed_origin_headers(origin: bytes, allowed: RawHeaders, explicit: bool) -> RawHeaders:
    """The CORS headers of a response to an allowed ``origin``: ``allowed`` after the
    origin itself, unless the policy is a plain '*' (``explicit`` false)."""
    if explicit:
        return ((b"access-control-allow-origin", origin), *allowed)
    return allowed


REQUEST_METHOD = b"access-control-request-method"  # ASGI servers send names lower-case
REQUEST_HEADERS = b"access-control-request-headers"
REQUEST_PRIVATE_NETWORK = b"access-control-request-private-network"


@dataclass(frozen=True)
class PreflightRequest:
    """What a preflight asks for, read from its headers in one pass."""

    method: bytes
    headers: bytes | None  # every Access-Control-Request-Headers line, joined
    private_network: bool

    @classmethod
    def read(cls, headers: Iterable[tuple[bytes, bytes]]) -> PreflightRequest | None:
        """The preflight's questions; None when the request is no preflight (an OPTIONS
        without ``Access-Control-Request-Method``). Some gateways split
        ``Access-Control-Request-Headers`` over several field lines: all are read."""
        method: bytes | None = None
        lines: list[bytes] = []
        private_network = False
        for name, value in headers:
            if name == REQUEST_METHOD:
                method = value if method is None else method
            elif name == REQUEST_HEADERS:
                lines.append(value)
            elif name == REQUEST_PRIVATE_NETWORK:
                private_network = True
        if method is None:
            return None
        asked = lines[0] if len(lines) == 1 else b", ".join(lines) if lines else None
        return cls(method, asked, private_network)


# A preflight's answer varies on all it asks; `corsguard check` recognizes the layer's
# answers by it (nothing in front of the service adds these names).
PREFLIGHT_VARY = (
    b"vary",
    b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers, "
    b"Access-Control-Request-Private-Network",
)
PLAIN_TEXT = (b"content-type", b"text/plain; charset=utf-8")
REFUSED_PREFIX = "Disallowed CORS "


class PreflightAnswers:
    """The answers to preflights, from a :class:`CORSPolicy`, with their headers encoded
    once: 200 ``OK`` with the policy's ``Access-Control-*`` headers, or 400 naming what is
    not allowed (origin, method, headers, private-network). A refused origin gets no
    ``Access-Control-*`` header at all; an allowed one keeps them on a 400, so that a
    browser's console names the method or header it lacks."""

    def __init__(self, policy: CORSPolicy, refusals: RefusalLog | None = None) -> None:
        self.policy = policy
        self.refusals = RefusalLog() if refusals is None else refusals
        # '*' is answered as '*' only without credentials; otherwise the origin is echoed.
        self.explicit_origin = not policy.any_origin or policy.allow_credentials
        self.methods = frozenset(method.encode("latin-1") for method in policy.methods)
        listed = sorted(SAFELISTED_HEADERS | set(policy.allow_headers))
        self.any_header = WILDCARD in policy.allow_headers
        self.headers = frozenset(name.lower() for name in listed)
        self.policy_headers = policy_preflight_headers(policy, listed, self.explicit_origin)

    async def answer(self, origin: bytes, asked: PreflightRequest, send: Send) -> None:
        text = origin.decode("latin-1")
        allowed = self.policy.allows_origin(text)
        headers = [PREFLIGHT_VARY]
        if allowed:
            headers += self.policy_headers
            if self.explicit_origin:
                headers.append((b"access-control-allow-origin", origin))
            if self.any_header and asked.headers is not None:
                headers.append((b"access-control-allow-headers", asked.headers))
        failures = self.failures(allowed, asked)
        if asked.private_network and self.policy.allow_private_network and allowed:
            headers.append((b"access-control-allow-private-network", b"true"))
        if failures:
            method = asked.method.decode("latin-1")
            requested = (asked.headers or b"").decode("latin-1")
            detail = f"(method {method!r}, headers {requested!r})"
            self.refusals.refused("preflight", text, f"{', '.join(failures)} not allowed {detail}")
        body = (REFUSED_PREFIX + ", ".join(failures)).encode() if failures else b"OK"
        headers += [(b"content-length", str(len(body)).encode()), PLAIN_TEXT]
        status = 400 if failures else 200
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def failures(self, origin_allowed: bool, asked: PreflightRequest) -> list[str]:
        """What the policy does not allow of what the preflight asks, in the order the
        400's text names them."""
        failures = [] if origin_allowed else ["origin"]
        if asked.method not in self.methods:
            failures.append("method")
        if asked.headers is not None and not self.any_header:
            names = asked.headers.decode("latin-1").split(",")
            if any(name.strip().lower() not in self.headers for name in names):
                failures.append("headers")
        if asked.private_network and not self.policy.allow_private_network:
            failures.append("private-network")
        return failures


def policy_preflight_headers(
    policy: CORSPolicy, listed: list[str], explicit_origin: bool
) -> RawHeaders:
    """The ``Access-Control-*`` headers of every preflight answer to an allowed origin
    (the origin itself, when echoed, comes after them)."""
    headers = [] if explicit_origin else [(b"access-control-allow-origin", b"*")]
    headers.append((b"access-control-allow-methods", ", ".join(policy.methods).encode("latin-1")))
    headers.append((b"access-control-max-age", str(policy.max_age).encode()))
    if WILDCARD not in policy.allow_headers:  # '*': the asked headers are echoed instead
        headers.append((b"access-control-allow-headers", ", ".join(listed).encode("latin-1")))
    if policy.allow_credentials:
        headers.append((b"access-control-allow-credentials", b"true"))
    return tuple(headers)


def simple_headers(policy: CORSPolicy) -> RawHeaders:
    """The ``Access-Control-*`` headers of a response to an allowed origin, but the echoed
    origin: '*' for a plain '*' policy, credentials, exposed headers."""
    headers = []
    if policy.any_origin and not policy.allow_credentials:
        headers.append((b"access-control-allow-origin", b"*"))
    if policy.allow_credentials:
        headers.append((b"access-control-allow-credentials", b"true"))
    if policy.expose_headers:
        exposed = ", ".join(policy.expose_headers).encode("latin-1")
        headers.append((b"access-control-expose-headers", exposed))
    return tuple(headers)


RawHeaders = tuple[tuple[bytes, bytes], ...]
VARY_ORIGIN = (b"vary", b"Origin")


def request_origin(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The request's ``Origin`` header (the first, as Starlette reads it)."""
    return header_value(headers, b"origin")


def header_value(headers: Iterable[tuple[bytes, bytes]], wanted: bytes) -> bytes | None:
    """The first value of the request header ``wanted``. ASGI servers send request header
    names in lower case (the spec requires it, and Starlette relies on it), so names are
    compared as they are: this runs on every request."""
    for name, value in headers:
        if name == wanted:
            return value
    return None


def same_host(origin: bytes, host: bytes | None) -> bool:
    """Whether ``origin`` names the host (and port) the request was sent to.

    The scheme is not compared: behind a TLS-terminating proxy the service sees http
    while the page's origin is https. The proxy must pass the original ``Host`` on.
    """
    if host is None:
        return False
    _, _, authority = origin.lower().partition(b"://")
    host = host.lower()
    for default in (b":80", b":443"):
        host = host.removesuffix(default)
        authority = authority.removesuffix(default)
    return authority == host


TOO_LONG = f"origin longer than {MAX_ORIGIN_LENGTH} characters, which no browser sends"


def host_too_long(what: str) -> str:
    """The refusal reason for a host beyond DNS's limits (``what`` says how)."""
    return (
        f"host name with {what}: DNS names have at most {MAX_HOST_LENGTH} characters and "
        f"labels at most {MAX_LABEL_LENGTH}, so no browser sends it"
    )


def write_refused(
    scope: Scope, origin: bytes | None, reason: str, refusals: RefusalLog | None = None
) -> Response:
    """The 403 for a refused cross-origin write, with no CORS headers: the page learns
    nothing, and the handler never ran."""
    method = scope["method"]
    shown = "-" if origin is None else origin.decode("latin-1")
    (refusals or RefusalLog()).refused(
        f"{method} {loggable(scope['path'])}", shown, f"{reason} (cross-origin write)"
    )
    detail = (
        f"Cross-origin {method} refused: {reason} by this API's CORS policy. Requests from "
        "other sites that could change data are refused before they run."
    )
    return JSONResponse({"detail": detail}, status_code=403, headers={"Vary": "Origin"})


def with_headers(
    headers: Iterable[tuple[bytes, bytes]], added: RawHeaders
) -> list[tuple[bytes, bytes]]:
    """The response headers, then ``added`` (which ends with ``Vary: Origin``).

    The app's own ``Access-Control-*`` headers are dropped: the policy alone decides
    what browsers may do. Its ``Vary`` values are kept, before ``Origin``. Names compare
    case-insensitively: a mounted ASGI app may send ``Access-Control-Allow-Origin``.
    """
    headers = headers if isinstance(headers, list) else list(headers)
    for name, _ in headers:
        lowered = name.lower()
        if lowered[:15] == b"access-control-" or lowered == b"vary":
            break
    else:
        return [*headers, *added]  # the usual case: nothing to drop or merge
    kept = [(n, v) for n, v in headers if not is_cors_or_vary(n)]
    vary = [v for n, v in headers if n.lower() == b"vary"] + [b"Origin"]
    return [*kept, *added[:-1], (b"vary", b", ".join(vary))]


def is_cors_or_vary(name: bytes) -> bool:
    lowered = name.lower()
    return lowered[:15] == b"access-control-" or lowered == b"vary"


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


def log_refusal(kind: str, origin: str, reason: str) -> None:
    """The record of one refused request, on one line: the origin is escaped and cut like
    every request-derived value (``kind`` and ``reason`` quote theirs already). The layer
    writes it through :meth:`RefusalLog.refused`, which bounds how many it writes."""
    if len(reason) > 2 * LOGGED_LENGTH:
        reason = reason[: 2 * LOGGED_LENGTH] + "..."
    logger.info("CORS refused %s from origin %s: %s", kind, loggable(origin), reason)


class PathScopedCORSMiddleware:
    """One :class:`PolicyCORSMiddleware` per policy; the request path picks which.

    Preflights and actual requests to the same path meet the same policy, because the
    choice depends on the path only.
    """

    def __init__(
        self, app: ASGIApp, policies: CORSPolicies, runtime: RuntimeOrigins | None = None
    ) -> None:
        self.app = app
        self.runtime = runtime
        configured = policies
        if runtime is not None:
            policies = configured.with_runtime(runtime.snapshot)
        self.policies = policies
        refusals = RefusalLog()  # one bound for the whole app, whatever the path
        self.default = PolicyCORSMiddleware(app, policies.default, policies, refusals)
        self.named = {
            name: PolicyCORSMiddleware(app, policy, policies, refusals)
            for name, policy in policies.named.items()
        }
        if runtime is not None:
            runtime.subscribers.append(
                lambda snapshot: self.prepare(configured.with_runtime(snapshot))
            )

    def prepare(self, policies: CORSPolicies) -> Callable[[], None]:
        """Build the layers' answers for ``policies`` (the same paths, new origins);
        the step returned puts them in force (see :meth:`PolicyCORSMiddleware.prepare`)."""
        steps = [self.default.prepare(policies.default)]
        steps += [layer.prepare(policies.named[name]) for name, layer in self.named.items()]

        def commit() -> None:
            for step in steps:
                step()
            for layer in (self.default, *self.named.values()):
                layer.policies = policies
            self.policies = policies

        return commit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" and self.runtime is not None:
            await with_watcher(self.runtime, self.app, scope, receive, send)
            return
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


async def with_watcher(
    runtime: RuntimeOrigins, app: ASGIApp, scope: Scope, receive: Receive, send: Send
) -> None:
    """Pass the lifespan on, running the watcher of run-time origins while the app is up."""

    async def receive_and_watch() -> Message:
        message = await receive()
        if message["type"] == "lifespan.startup":
            runtime.start()
        elif message["type"] == "lifespan.shutdown":
            await runtime.stop()
        return message

    await app(scope, receive_and_watch, send)


def add_cors(app: FastAPI, settings: CORSSettings) -> None:
    """Install the CORS layer of ``settings``. Call it last in ``create_app``: middleware
    added later would wrap it, and the responses that middleware produces or rejects would
    reach browsers without CORS headers.

    With ``cors_origin_store`` set, the run-time origins are read here, once, before the
    app serves (a store that cannot be read: see :func:`runtime_origins`), and are
    ``app.state.cors_origins`` (a :class:`~corsguard.store.RuntimeOrigins`) for the
    owner's admin routes."""
    install_cors(app, settings, runtime_origins(settings))


def install_cors(app: FastAPI, settings: CORSSettings, runtime: RuntimeOrigins | None) -> None:
    """:func:`add_cors` with the run-time origins already read (or None)."""
    policies = CORSPolicies.from_settings(settings)
    app.state.cors_settings = settings  # for the start-up line
    app.state.cors_origins = runtime
    if policies.named:
        app.add_middleware(PathScopedCORSMiddleware, policies=policies, runtime=runtime)
    else:
        app.add_middleware(
            PolicyCORSMiddleware, policy=policies.default, policies=policies, runtime=runtime
        )


def runtime_origins(settings: CORSSettings) -> RuntimeOrigins | None:
    """The run-time origins of ``settings``, read from the store; None without a store.

    A store that cannot be read refuses the start (:class:`ConfigError`) with
    ``cors_origin_store_required``; otherwise the app serves the configured profile, says
    so loudly, and its watcher keeps trying."""
    if not settings.cors_origin_store:
        return None
    required = settings.env_name("cors_origin_store_required")
    try:
        runtime = RuntimeOrigins(settings)
    except StoreError as error:
        raise ConfigError(f"Invalid configuration; the service cannot start:\n  {error}") from None
    try:
        runtime.load()
    except StoreError as error:
        if settings.cors_origin_store_required:
            raise ConfigError(
                f"The service cannot start: {error}, and {required}=true: start the store "
                f"(or fix {settings.env_name('cors_origin_store')}), or set {required}=false "
                "to serve the configured profile until the store is back"
            ) from None
        startup_logger.error(
            "%s: serving the configured profile WITHOUT run-time origins until the store "
            "is back (set %s=true to refuse to start instead)",
            error,
            required,
        )
    return runtime


class RefusalLog:
    """The refusal records of one app, bounded whatever the rate of refusals.

    The first ``bound`` refusals of an interval of ``interval`` seconds get a record each,
    at once, with the policy's reason (what ``cors explain`` says). Past the bound, a
    refusal is only counted: by origin for the first ``tracked`` distinct origins of the
    interval, the others in one number, so memory stays bounded too. The first refusal
    after the interval ends writes one summary record for it (how many were refused, the
    ``top`` origins with their counts, how many more origins), then starts the next
    interval with a fresh bound, so a new origin's first refusal after a quiet spell is
    logged at once with its reason. No thread or timer runs: when refusals stop, the
    summary of the last interval comes with the next refusal, late, or never.

    So at most ``bound + 1`` records per interval. Only refusals reach this class: an
    allowed request pays nothing. The counters sit behind a lock, for apps used from
    several threads (tests; the server runs one event loop per process, where the lock
    is never contended). ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        *,
        bound: int = REFUSAL_LOG_BOUND,
        interval: float = REFUSAL_LOG_INTERVAL,
        tracked: int = REFUSAL_ORIGINS_TRACKED,
        top: int = REFUSAL_SUMMARY_TOP,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bound, self.interval, self.tracked, self.top = bound, interval, tracked, top
        self.clock = clock
        self._lock = threading.Lock()
        self._start: float | None = None  # the current interval's first refusal
        self._logged = 0  # records written in the current interval
        self._counts: dict[str, int] = {}  # refusals by origin (cut), at most `tracked`
        self._untracked = 0  # refusals from origins past the first `tracked`

    def refused(self, kind: str, origin: str, reason: str | Callable[[], str]) -> None:
        """Record or count one refusal; ``reason`` may be a callable, called only when the
        refusal gets a record of its own."""
        if not logger.isEnabledFor(logging.INFO):
            return
        now = self.clock()
        key = origin[: LOGGED_LENGTH + 1]  # loggable() cuts at LOGGED_LENGTH and marks it
        with self._lock:
            summary = self._next_interval(now)
            if key in self._counts or len(self._counts) < self.tracked:
                self._counts[key] = self._counts.get(key, 0) + 1
            else:
                self._untracked += 1
            own_record = self._logged < self.bound
            self._logged += own_record
        if summary is not None:
            logger.info("%s", summary)
        if own_record:
            log_refusal(kind, origin, reason if isinstance(reason, str) else reason())

    @property
    def tracked_origins(self) -> int:
        """How many distinct origins the current interval holds counts for."""
        return len(self._counts)

    def _next_interval(self, now: float) -> str | None:
        """Start a new interval when the current one is over; the summary of the one that
        ended, if any of its refusals went without a record of their own."""
        if self._start is not None and now - self._start < self.interval:
            return None
        summary = self._summary() if self._start is not None else None
        self._start, self._logged, self._counts, self._untracked = now, 0, {}, 0
        return summary

    def _summary(self) -> str | None:
        total = sum(self._counts.values()) + self._untracked
        unlogged = total - min(total, self.bound)
        if unlogged == 0:
            return None
        top = heapq.nlargest(self.top, self._counts.items(), key=lambda item: item[1])
        shown = ", ".join(f"{loggable(origin)} {count}" for origin, count in top)
        more = len(self._counts) - len(top)
        text = (
            f"CORS refused {total} requests in {self.interval:g} s, {unlogged} of them "
            f"without a record of their own (at most {self.bound} per {self.interval:g} s); "
            f"by origin: {shown}"
        )
        if more:
            text += f", and {more} more origins"
        if self._untracked:
            text += (
                f", and {self._untracked} requests from further origins (past the first "
                f"{self.tracked}, not counted by origin)"
            )
        return text
