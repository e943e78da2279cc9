"""Why a browser would be allowed or refused: the logic behind ``corsguard explain``.

The verdict is the CORS layer's own: the requests a browser would send go through the
layer ``add_cors`` installs, in process, and the answers decide (see :func:`ask_layer`).
This module only adds the words: which policy and rule decided, and what to change when
the answer is no. It holds no rule of its own, so it cannot disagree with the layer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.middleware.cors import SAFELISTED_HEADERS
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .middleware import SAFE_METHODS, CORSPolicies, CORSPolicy, install_cors, runtime_origins
from .origins import WILDCARD, OriginError, is_pattern, parse_origin
from .settings import CORSSettings
from .store import RuntimeOrigins, counted, redacted

# Requests a browser sends without a preflight (when they carry only safelisted headers).
SIMPLE_METHODS = frozenset({"GET", "HEAD", "POST"})
_SAFELISTED = frozenset(name.lower() for name in SAFELISTED_HEADERS)


@dataclass(frozen=True)
class Verdict:
    """Whether a browser would let the page read the response, and why."""

    origin: str
    policy: str
    allowed: bool
    decided_by: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def origin_of(text: str) -> tuple[str, list[str]]:
    """The origin a browser would send from ``text`` (an origin or a page URL).

    Raises :class:`OriginError` when ``text`` is no usable origin at all.
    """
    notes = []
    value = text.strip()
    parts = urlsplit(value)
    has_tail = parts.path not in ("", "/") or parts.query or parts.fragment
    if parts.scheme and parts.netloc and has_tail:
        trimmed = f"{parts.scheme}://{parts.netloc}"
        notes.append(
            f"{value!r} has a trailing path, query or fragment: a page there sends the origin "
            f"{trimmed!r}, which is what is checked below (allowed origins take no path)"
        )
        value = trimmed
    origin = parse_origin(value)
    if origin == WILDCARD or is_pattern(origin):
        raise OriginError(f"{text!r} is not an origin a browser sends: give one page's origin")
    if origin != value:
        notes.append(f"browsers send {value!r} as {origin!r}")
    return origin, notes


# Fetch upper-cases these method names and sends every other name exactly as written.
NORMALIZED_METHODS = frozenset({"DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"})


def sent_method(method: str) -> tuple[str, list[str]]:
    """The method as a browser sends it, and a note when that differs from the input."""
    given = method.strip()
    if given.upper() in NORMALIZED_METHODS:
        return given.upper(), []
    if given != given.upper():
        return given, [
            f"browsers send the method {given!r} exactly as written (only DELETE, GET, HEAD, "
            f"OPTIONS, POST and PUT are upper-cased): write {given.upper()!r} in the page"
        ]
    return given, []


def policy_label(policies: CORSPolicies, path: str) -> tuple[str | None, str]:
    """The name of the policy for ``path`` (None: default) and how to call it."""
    prefix = policies.prefix_for(path)
    if prefix is None:
        return None, f"the default policy (no path prefix covers {path})"
    name = policies.owners[prefix]
    return name, f"the path policy {name!r} (prefix {prefix})"


def explain(
    settings: CORSSettings,
    origin_text: str,
    method: str = "GET",
    headers: Sequence[str] = (),
    credentials: bool = False,
    path: str = "/",
    runtime: RuntimeOrigins | None = None,
) -> Verdict:
    """Judge one cross-origin request to ``path`` by asking the CORS layer itself.

    The requests a browser would send go through the layer ``add_cors`` installs, in
    process (see :func:`ask_layer`); the verdict is what a browser concludes from the
    answers. The policy only supplies the words: which rule, why, and the fix.
    """
    origin, notes = origin_of(origin_text)
    if runtime is None:  # read from the store, as the app does when it starts
        runtime = runtime_origins(settings)
    policies = CORSPolicies.from_settings(settings)
    if runtime is not None:
        policies = policies.with_runtime(runtime.snapshot)
        if runtime.problem:
            notes.append(f"{runtime.problem}: judged without run-time origins")
    name, label = policy_label(policies, path)
    policy = policies.for_path(path)
    method, method_note = sent_method(method)
    notes += method_note
    request = BrowserRequest(origin, method, tuple(h.strip() for h in headers), path)
    answers = ask_layer(settings, request, runtime)

    def variable(field_name: str) -> str:
        return settings.policy_env_name(name, field_name)

    problems: list[str] = []
    decided_by = _origin_rule(policy, origin) or "the CORS layer's answer"
    readable = answers.readable
    if not reads_origin(readable, origin):
        problems.append(_origin_problem(policy, origin, variable("allow_origins")))
        decided_by = f"no entry of {variable('allow_origins')}"
    if answers.preflight is not None:
        notes.append("the browser sends a preflight (OPTIONS) first")
        if problems:
            notes.append("the method and headers are judged once the origin is allowed")
        else:
            problems += preflight_problems(
                answers.preflight, request, credentials, policy, variable
            )
    if answers.write_refused and not problems:
        problems.append(_write_problem(answers, policy, method, variable("allow_methods")))
    if credentials and not problems and not reads_credentials(readable):
        flag = variable("allow_credentials")
        problems.append(
            f"the request sends credentials (cookies or HTTP auth) but {flag} is false: the "
            f"browser hides the response; set {flag}=true (not possible together with the "
            "origin '*')"
        )
    notes += write_protection_notes(settings, policies, path, method, answers.write_refused)
    return Verdict(origin, label, not problems, decided_by, problems, notes)


@dataclass(frozen=True)
class BrowserRequest:
    """The cross-origin request explained: what the page's browser sends."""

    origin: str
    method: str
    headers: tuple[str, ...]
    path: str

    @property
    def unsafelisted(self) -> list[str]:
        """The named headers that need a preflight, as the browser lists them in
        ``Access-Control-Request-Headers``: lower-case, sorted, once each."""
        return sorted({h.lower() for h in self.headers if h.lower() not in _SAFELISTED})

    @property
    def needs_preflight(self) -> bool:
        return self.method not in SIMPLE_METHODS or bool(self.unsafelisted)

    def preflight_headers(self) -> dict[str, str]:
        sent = {**self.sent_headers(), "Access-Control-Request-Method": self.method}
        if self.unsafelisted:
            sent["Access-Control-Request-Headers"] = ",".join(self.unsafelisted)
        return sent

    def sent_headers(self) -> dict[str, str]:
        """What a browser adds to every cross-origin request: the Origin, and the
        ``Sec-Fetch-Site`` that cross-origin write protection reads."""
        return {"Origin": self.origin, "Sec-Fetch-Site": "cross-site"}


@dataclass(frozen=True)
class Answer:
    """One answer of the layer: its status, headers and body."""

    status: int
    headers: Headers
    body: bytes


@dataclass(frozen=True)
class LayerAnswers:
    """The CORS layer's answers to a :class:`BrowserRequest`."""

    preflight: Answer | None  # None: the request needs none
    actual: Answer  # the request itself, as a form or a fetch sends it
    readable: Headers  # the headers that say whether the page may read the answer

    @property
    def write_refused(self) -> bool:
        """Whether cross-origin write protection refused the request (the catch-all app
        behind the layer answers 200 to everything, so a 403 is the layer's)."""
        return self.actual.status == FORBIDDEN

    @property
    def refusal_detail(self) -> str:
        return self.actual.body.decode(errors="replace") if self.write_refused else ""


FORBIDDEN = 403
ALLOW_ORIGIN = "access-control-allow-origin"
ALLOW_CREDENTIALS = "access-control-allow-credentials"
# No request leaves the process; the name only fills the Host header.
LAYER_HOST = "service.invalid"


async def _empty(scope: Scope, receive: Receive, send: Send) -> None:
    """The app behind the layer: an empty 200 for every method and path."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def ask_layer(
    settings: CORSSettings, request: BrowserRequest, runtime: RuntimeOrigins | None = None
) -> LayerAnswers:
    """Send ``request`` as a browser would through the layer ``add_cors`` installs, in
    front of an app that answers everything: the preflight when one is needed, then the
    request itself (a form, ``sendBeacon`` or a no-cors fetch sends an unsafe method
    without a preflight), then a GET for the origin's answer when the request got the
    layer's 403, which carries no CORS headers. In process, over ASGI: no network."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.mount("", _empty)
    install_cors(app, settings, runtime)

    async def ask() -> LayerAnswers:
        preflight = None
        if request.needs_preflight:
            asked = request.preflight_headers()
            preflight = await asgi_request(app, "OPTIONS", request.path, asked)
        sent = request.sent_headers()
        actual = await asgi_request(app, request.method, request.path, sent)
        readable = actual
        if actual.status == FORBIDDEN:
            readable = await asgi_request(app, "GET", request.path, sent)
        return LayerAnswers(preflight, actual, readable.headers)

    return run(ask())


async def asgi_request(app: ASGIApp, method: str, target: str, headers: dict[str, str]) -> Answer:
    """One bodiless request to ``app`` over ASGI. The method goes as written: browsers
    send ``patch`` in lower case, and HTTP clients would upper-case it."""
    path, _, query = target.partition("?")
    raw = [(b"host", LAYER_HOST.encode())]
    raw += [(name.lower().encode("latin-1"), value.encode()) for name, value in headers.items()]
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(path),
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": raw,
        "server": (LAYER_HOST, 80),
        "client": ("127.0.0.1", 0),
    }
    sent: list[Message] = []
    requests: list[Message] = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> Message:
        return requests.pop() if requests else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(message for message in sent if message["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return Answer(start["status"], Headers(raw=list(start.get("headers", []))), body)


T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to its end, also when called from async code (in a thread of its
    own then, as ``asyncio.run`` refuses to run inside a running loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def reads_origin(headers: Headers, origin: str) -> bool:
    """Whether the answer lets a page on ``origin`` read it: its origin echoed, or '*'."""
    allowed: str | None = headers.get(ALLOW_ORIGIN)
    return allowed in (origin, WILDCARD)


def reads_credentials(headers: Headers) -> bool:
    """Whether the answer lets a page read it after sending credentials: a browser wants
    ``Access-Control-Allow-Credentials: true`` and its origin echoed, not '*'."""
    credentials: str | None = headers.get(ALLOW_CREDENTIALS)
    return credentials == "true" and headers.get(ALLOW_ORIGIN) != WILDCARD


def listed(headers: Headers, name: str) -> list[str]:
    return [item.strip() for value in headers.getlist(name) for item in value.split(",")]


def preflight_problems(
    answer: Answer,
    request: BrowserRequest,
    credentials: bool,
    policy: CORSPolicy,
    variable: Callable[[str], str],
) -> list[str]:
    """What a browser finds missing in the layer's answer to the preflight, in words:
    the method and each header it lacks (a refused origin is judged before)."""
    problems = []
    methods = listed(answer.headers, "access-control-allow-methods")
    any_method = WILDCARD in methods and not credentials
    if request.method not in methods and request.method not in SIMPLE_METHODS and not any_method:
        problems.append(_method_problem(policy, request.method, variable("allow_methods")))
    granted = {name.lower() for name in listed(answer.headers, "access-control-allow-headers")}
    for header in request.headers:
        lowered = header.lower()
        star = WILDCARD in granted and not credentials and lowered != "authorization"
        if lowered not in _SAFELISTED and lowered not in granted and not star:
            allowed = ", ".join(policy.allow_headers) or "none besides the safelisted ones"
            names = variable("allow_headers")
            problems.append(
                f"request header {header} is not in {names} ({allowed}): add it, "
                f"e.g. {names}={','.join((*policy.allow_headers, header))}"
            )
    if not problems and not 200 <= answer.status < 300:
        problems.append(f"the CORS layer refused the preflight with {answer.status}")
    return problems


def _method_problem(policy: CORSPolicy, method: str, methods: str, why: str = "") -> str:
    """The method is not allowed: where it is missing, why that matters, and the fix."""
    fix = (
        f"write {method.upper()!r} in the page ({methods} is upper-cased)"
        if method != method.upper()
        else f"add it, e.g. {methods}={','.join((*policy.allow_methods, method))}"
    )
    because = f"{why}; " if why else ""
    allowed = ", ".join(policy.allow_methods)
    return f"method {method} is not in {methods} ({allowed}): {because}{fix}"


def _write_problem(answers: LayerAnswers, policy: CORSPolicy, method: str, methods: str) -> str:
    """Why the layer refused the request with 403 though it allows the origin: the method
    (the layer's own words, should it ever refuse for another reason)."""
    if policy.allows_method(method):
        return f"the CORS layer refused this {method} with 403: {answers.refusal_detail}"
    return _method_problem(
        policy,
        method,
        methods,
        "cross-origin write protection refuses it with 403 before any handler runs, also "
        "when the browser sends it without a preflight",
    )


def write_protection_notes(
    settings: CORSSettings, policies: CORSPolicies, path: str, method: str, refused: bool
) -> list[str]:
    """What cross-origin write protection did with this request, for unsafe methods:
    ``refused`` is the layer's answer; the settings only name the rule."""
    if method in SAFE_METHODS:
        return []
    if refused:
        return [
            f"cross-origin write protection refuses this {method} with 403 before any handler "
            "runs, also when the browser sends it without a preflight (a form, sendBeacon, a "
            "no-cors fetch)"
        ]
    switch = settings.env_name("cors_cross_origin_protection")
    if not policies.protect_writes:
        return [
            f"cross-origin write protection is off ({switch}=false): a {method} that needs no "
            "preflight (a form, sendBeacon, a no-cors fetch) from any site reaches the handler"
        ]
    if not policies.writes_protected(path):
        bypass = settings.env_name("cors_cross_origin_bypass")
        return [f"{path} is under {bypass}: cross-origin {method} requests reach the handler"]
    return [
        f"cross-origin write protection lets this {method} through: the policy allows its "
        "origin and method"
    ]


def _origin_rule(policy: CORSPolicy, origin: str) -> str | None:
    if policy.allows_any_origin:
        return "the entry '*' (any origin)"
    if origin in policy.origins:
        kind = "run-time entry" if origin in policy.runtime else "entry"
        return f"the {kind} {origin!r}"
    pattern = policy.patterns.match(origin)
    if pattern is None:
        return None
    kind = "run-time pattern" if str(pattern) in policy.runtime else "pattern"
    return f"the {kind} {str(pattern)!r}"


def _origin_problem(policy: CORSPolicy, origin: str, variable: str) -> str:
    """The policy's reason for refusing ``origin``, then the fix."""
    fix = f"add it: {variable}={','.join((*policy.entries, origin))}"
    refusal = policy.refusal(origin)
    if refusal.kind == "null":
        return f"{refusal.reason}: serve the page from a real origin instead"
    if refusal.kind in ("too-long", "host-too-long"):
        return f"{refusal.reason}: such an origin cannot be allowed"
    if refusal.kind == "scheme":
        return f"{refusal.reason}: serve the page over {refusal.detail}, or {fix}"
    if refusal.kind == "port":
        return f"{refusal.reason}: a port is part of the origin; {fix}"
    if refusal.kind == "unlisted":
        listed = ", ".join(policy.entries) or "nothing"
        return f"origin {origin!r} is not in {variable} ({listed}): {fix}"
    return f"{refusal.reason}: {fix}"


def describe_policies(settings: CORSSettings, runtime: RuntimeOrigins | None = None) -> list[str]:
    """The effective policies, one ``VARIABLE  value`` line per field; with ``runtime``,
    the store and each policy's run-time origins too."""
    rows: dict[str, str] = {}
    policies = [(None, settings.default_policy), *settings.cors_path_policies.items()]
    for name, policy in policies:
        for field_name, value in (
            ("prefixes", _listed(policy.prefixes)),
            ("allow_origins", _listed(policy.allow_origins)),
            *_runtime_row(runtime, name),
            ("allow_credentials", _flag(policy.allow_credentials)),
            ("allow_methods", ", ".join(policy.allow_methods)),
            ("allow_headers", _listed(policy.allow_headers)),
            ("expose_headers", _listed(policy.expose_headers)),
            ("max_age", str(policy.max_age)),
            ("allow_private_network", _flag(policy.allow_private_network)),
        ):
            if name is not None or field_name != "prefixes":
                base, _, note = field_name.partition(" ")
                rows[f"{settings.policy_env_name(name, base)} {note}".rstrip()] = value
    protection = settings.env_name("cors_cross_origin_protection")
    rows[protection] = _flag(settings.cors_cross_origin_protection)
    rows[settings.env_name("cors_cross_origin_bypass")] = _listed(settings.cors_cross_origin_bypass)
    if settings.cors_origin_store:
        store = settings.env_name("cors_origin_store")
        rows[store] = redacted(settings.cors_origin_store)
        if runtime is not None and runtime.problem:
            rows[store] += f" (unreachable: {runtime.problem})"
        elif runtime is not None:
            rows[store] += f" ({counted(runtime.snapshot.count)} in force"
            skipped = len(runtime.snapshot.skipped)
            noun = "row" if skipped == 1 else "rows"
            listed = f", {skipped} {noun} skipped: corsguard origins list" if skipped else ""
            rows[store] += f"{listed})"
    width = max(len(variable) for variable in rows)
    return [f"  {variable:<{width}}  {value}" for variable, value in rows.items()]


def _runtime_row(runtime: RuntimeOrigins | None, name: str | None) -> list[tuple[str, str]]:
    """The run-time origins of one policy, as a row shown below its allow_origins."""
    if runtime is None:
        return []
    return [("allow_origins (run-time)", _listed(runtime.snapshot.entries.get(name, ())))]


def _listed(values: Sequence[str]) -> str:
    return ", ".join(values) or "(none)"


def _flag(value: bool) -> str:
    return "true" if value else "false"
