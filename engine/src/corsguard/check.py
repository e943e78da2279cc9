"""Does the deployed service answer browsers as its policy says? ``corsguard check``.

From outside, through whatever stands in front of the service (a reverse proxy, an
ingress, a cache or CDN), it sends what a browser would send: for each origin, a
preflight (``OPTIONS`` with ``Access-Control-Request-Method`` and ``-Headers``) when the
policy allows requests that need one, and a ``GET``. The origins are the configured ones
(a pattern gets a sample host) and a few that must be refused. One more ``GET`` with the
trailing slash toggled shows where the service's own redirects lead.

Each answer is compared with the answer of the service's own CORS layer to the same
request (``add_cors``, as the app installs it, run in-process): this module holds
no CORS rule of its own. It knows how a browser reads an answer (the fetch standard's
CORS check, for the words a browser would print) and what usually causes a difference.

Bounded: at most ``MAX_ALLOWED`` allowed and ``MAX_REFUSED`` refused origins per path,
one request at a time with a timeout, redirects not followed, bodies not read, and the
first request without an answer ends the check (no retries).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Literal
from urllib.parse import urljoin, urlsplit

import httpx
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from .explain import SIMPLE_METHODS, policy_label
from .middleware import CORSPolicies, CORSPolicy, install_cors, runtime_origins
from .origins import NULL, WILDCARD, OriginPattern, is_pattern
from .settings import CORSSettings
from .store import RuntimeOrigins

PACKAGE = "corsguard"
AGREES, DISAGREES, BAD_INPUT = 0, 1, 2
MAX_ALLOWED = 6
MAX_REFUSED = 3
DEFAULT_PATH = "/health"
DEFAULT_TIMEOUT = 5.0
MAX_TIMEOUT = 60.0
# Sample origins: '.invalid' never resolves (RFC 6761), so no real site is named.
UNRELATED_ORIGIN = "https://cors-check.invalid"
SAMPLE_LABEL = "cors-check"
LOCAL_BASE = "http://service.internal"
# A request answered without its Access-Control-Allow-Origin is sent once more past any
# cache, which tells a stale cached answer from a proxy or policy problem.
BYPASS_CACHE_FOR = frozenset({"origin-not-forwarded", "policy-differs", "cors-headers-stripped"})
CACHE_HEADERS = ("x-cache", "x-cache-status", "cf-cache-status", "x-proxy-cache")
ACAO = "access-control-allow-origin"
ACAO_NAME = "'Access-Control-Allow-Origin'"
PREFLIGHT_PREFIX = "Response to preflight request doesn't pass access control check: "
CHROME_FIX = "Have the server send the header with a valid value."
REMOVE_PROXY_CORS = (
    "let the service alone send CORS headers: remove the proxy's (nginx "
    "'add_header Access-Control-...', Traefik's headers middleware 'accessControl...' "
    "options, ingress-nginx's 'enable-cors' and 'cors-...' annotations, an API gateway's "
    "CORS setting)"
)
STRIPPED_CAUSE = (
    "the service answered as the policy says (its CORS layer answered the origin's "
    "preflight 200: its Vary names the preflight's headers), but none of its "
    "Access-Control-* headers arrived: something in front removes every Access-Control-* "
    "response header (nginx 'proxy_hide_header Access-Control-...' lines, a CDN's or WAF's "
    "response-header policy that removes Access-Control-*, ingress-nginx "
    "'more_clear_headers' in a configuration snippet, an API gateway's response-header "
    "filter or allow list). Not another policy: the service's CORS layer never answers a "
    "preflight 200 without them, whatever its policy"
)
STRIPPED_FIX = (
    "let the service's Access-Control-* and Vary response headers through unchanged: "
    "remove those 'proxy_hide_header' or 'more_clear_headers' lines, the CDN's or WAF's "
    "rule, or add Access-Control-* to the gateway's allowed response headers; do not make "
    "the proxy write CORS headers of its own instead"
)


class CheckError(ValueError):
    """Unusable input to ``corsguard check``; the message names the value and the fix."""


@dataclass(frozen=True)
class Answer:
    """The status and headers of one response (names in lower case, in order)."""

    status: int | None  # None: the policy's headers for a request, whatever its status
    headers: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, status: int | None, headers: Iterable[tuple[str, str]]) -> Answer:
        return cls(status, tuple((name.lower(), value) for name, value in headers))

    def get(self, name: str) -> str | None:
        """The header's lines joined with ', ' (as browsers read them), or None."""
        lines = [value for key, value in self.headers if key == name]
        return ", ".join(lines) if lines else None

    def values(self, name: str) -> list[str]:
        text = self.get(name)
        return [] if text is None else [item.strip() for item in text.split(",") if item.strip()]

    def names(self, name: str) -> set[str]:
        return {value.lower() for value in self.values(name)}

    @property
    def is_redirect(self) -> bool:
        return self.status is not None and 300 <= self.status < 400

    @property
    def is_ok(self) -> bool:
        return self.status is None or 200 <= self.status < 300

    @property
    def has_cors(self) -> bool:
        return any(name.startswith("access-control-") for name, _ in self.headers)

    @property
    def varies_on_origin(self) -> bool:
        return bool({"origin", "*"} & self.names("vary"))

    @property
    def answers_preflight(self) -> bool:
        """Whether the service's CORS layer wrote this answer to a preflight: it varies on
        the preflight's own headers, which nothing in front adds."""
        return "access-control-request-method" in self.names("vary")

    def cache_hit(self) -> str | None:
        """The header that says a cache served this answer, if one does."""
        age = self.get("age")
        if age is not None and age.strip() not in ("", "0"):
            return f"Age: {age}"
        for name in CACHE_HEADERS:
            value = self.get(name)
            if value is not None and "HIT" in value.upper():
                return f"{name}: {value}"
        return None


# A preflight and a request for each origin; the redirect probe (the path with its
# trailing slash toggled); a request past any cache (with a fresh query string).
Kind = Literal["preflight", "request", "redirect probe", "cache bypass"]


@dataclass(frozen=True)
class Probe:
    """One request a browser would send, and what the policy decides for its origin."""

    kind: Kind
    path: str
    origin: str
    allowed: bool
    method: str = "GET"
    request_headers: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        if self.kind == "preflight":
            return f"preflight {self.method} {self.path} from {self.origin}"
        if self.kind == "redirect probe":
            return f"GET {self.path} from {self.origin} (trailing slash toggled)"
        if self.kind == "cache bypass":
            return f"GET {self.path}?{SAMPLE_LABEL}=... from {self.origin} (past any cache)"
        return f"GET {self.path} from {self.origin}"

    def headers(self) -> dict[str, str]:
        """The request headers a browser sends (no cookies: the check has none)."""
        headers = {
            "origin": self.origin,
            "sec-fetch-mode": "cors",
            "sec-fetch-site": "cross-site",
            "sec-fetch-dest": "empty",
        }
        if self.kind == "preflight":
            headers["access-control-request-method"] = self.method
            if self.request_headers:
                headers["access-control-request-headers"] = ",".join(self.request_headers)
        return headers


@dataclass(frozen=True)
class Finding:
    """One answer that differs from the policy: what, why, and what to change."""

    fault: str
    request: str
    expected: str
    got: str
    browser: str
    cause: str
    fix: str


@dataclass(frozen=True)
class Checked:
    request: str
    origin: str
    policy: str  # "allowed", "refused" or "-" (the redirect probe)
    status: int | None
    agrees: bool


@dataclass
class Report:
    url: str
    environment: str
    policies: dict[str, str] = field(default_factory=dict)  # path -> the policy deciding it
    checked: list[Checked] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0
    stopped: str | None = None

    @property
    def agrees(self) -> bool:
        return not self.findings

    def to_json(self) -> dict[str, object]:
        return {
            "url": self.url,
            "environment": self.environment,
            "policies": self.policies,
            "agrees": self.agrees,
            "requests": len(self.checked),
            "seconds": round(self.seconds, 3),
            "stopped": self.stopped,
            "checked": [asdict(row) for row in self.checked],
            "findings": [asdict(finding) for finding in self.findings],
        }

    def lines(self) -> list[str]:
        lines = [
            f"Checked {self.url} against the {self.environment} policy (profiles file, "
            "environment and .env applied):"
        ]
        lines += [f"  {self.url}{path}: {label}" for path, label in self.policies.items()]
        width = max((len(row.request) for row in self.checked), default=0)
        for row in self.checked:
            status = "-" if row.status is None else str(row.status)
            verdict = "ok" if row.agrees else "DIFFERS"
            lines.append(f"  {row.request:<{width}}  {row.policy:<7}  {status:>3}  {verdict}")
        summary = f"{len(self.checked)} requests in {self.seconds:.2f} s"
        if self.agrees:
            lines.append(f"AGREES: every answer is what the policy says ({summary}).")
            return lines
        differing = sum(not row.agrees for row in self.checked)
        lines.append(
            f"DISAGREES: {differing} of {len(self.checked)} answers differ from the policy "
            f"({summary})."
        )
        if self.stopped:
            lines.append(f"Stopped early: {self.stopped}")
        groups: dict[tuple[str, str, str], list[Finding]] = {}
        for finding in self.findings:
            groups.setdefault((finding.fault, finding.cause, finding.fix), []).append(finding)
        for (fault, cause, fix), findings in groups.items():
            first = findings[0]
            more = f" (and {len(findings) - 1} more)" if len(findings) > 1 else ""
            lines += [
                "",
                f"{fault}: {first.request}{more}",
                f"  expected: {first.expected}",
                f"  got:      {first.got}",
                f"  browser:  {first.browser}",
                f"  cause:    {cause}",
                f"  fix:      {fix}",
            ]
        return lines


# --- What to send ---------------------------------------------------------------------


def sample_origins(policy: CORSPolicy) -> tuple[list[str], list[str]]:
    """(allowed, refused): origins a browser could send, as the policy decides them.

    Allowed: each configured origin, a sample host for each pattern, any site for '*'.
    Refused: an unrelated site, one step outside the first entry (its other scheme, or a
    pattern's bare parent) and ``null``, where the policy refuses them.
    """
    allowed: list[str] = []
    near_miss: list[str] = []
    for entry in policy.entries:
        if entry == WILDCARD:
            allowed.append(UNRELATED_ORIGIN)
        elif is_pattern(entry):
            pattern = OriginPattern.parse(entry)
            allowed.append(_with_port(pattern, f"{SAMPLE_LABEL}.{pattern.parent}"))
            near_miss.append(_with_port(pattern, pattern.parent))
        else:
            allowed.append(entry)
            if entry != NULL:
                parts = urlsplit(entry)
                other = "http" if parts.scheme == "https" else "https"
                near_miss.append(f"{other}://{parts.netloc}")
    candidates = [UNRELATED_ORIGIN, *near_miss[:1], NULL]
    refused = [origin for origin in candidates if not policy.allows_origin(origin)]
    return list(dict.fromkeys(allowed))[:MAX_ALLOWED], refused[:MAX_REFUSED]


def _with_port(pattern: OriginPattern, host: str) -> str:
    port = "" if pattern.port is None else f":{pattern.port}"
    return f"{pattern.scheme}://{host}{port}"


def preflight_request(policy: CORSPolicy) -> tuple[str, tuple[str, ...]] | None:
    """The method and headers of the preflight a page would need for the policy's most
    demanding request; None when every allowed request is simple (no preflight)."""
    if WILDCARD in policy.allow_methods:
        method = "PUT"
    else:
        unsafe = [name for name in policy.allow_methods if name not in SIMPLE_METHODS]
        method = unsafe[0] if unsafe else "GET"
    names = sorted({name.lower() for name in policy.allow_headers if name != WILDCARD})
    if not names and WILDCARD in policy.allow_headers:
        names = [f"x-{SAMPLE_LABEL}"]
    if method in SIMPLE_METHODS and not names:
        return None
    return method, tuple(names)


def probes_for(policy: CORSPolicy, path: str) -> list[Probe]:
    allowed, refused = sample_origins(policy)
    preflight = preflight_request(policy)
    probes = []
    for origin in [*allowed, *refused]:
        is_allowed = origin in allowed
        if preflight is not None:
            method, headers = preflight
            probes.append(Probe("preflight", path, origin, is_allowed, method, headers))
        probes.append(Probe("request", path, origin, is_allowed))
    if path != "/":
        toggled = path[:-1] if path.endswith("/") else f"{path}/"
        probes.append(Probe("redirect probe", toggled, (allowed or [UNRELATED_ORIGIN])[0], True))
    return probes


# --- What the policy answers ----------------------------------------------------------


async def _empty(request: Request) -> Response:
    return Response()


class LocalAnswers:
    """The answers of the service's own CORS layer, installed by ``add_cors`` as
    ``create_app`` does, in front of an app that answers every path with an empty 200:
    what the service sends when nothing stands in front of it."""

    def __init__(self, settings: CORSSettings, runtime: RuntimeOrigins | None = None) -> None:
        self.app = FastAPI(openapi_url=None)
        self.app.add_api_route("/{path:path}", _empty, methods=["GET"])
        install_cors(self.app, settings, runtime)

    def answers(self, probes: Sequence[Probe]) -> list[Answer]:
        async def ask() -> list[Answer]:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url=LOCAL_BASE) as client:
                answers = []
                for probe in probes:
                    method = "OPTIONS" if probe.kind == "preflight" else "GET"
                    response = await client.request(method, probe.path, headers=probe.headers())
                    status = response.status_code if probe.kind == "preflight" else None
                    answers.append(Answer.of(status, response.headers.multi_items()))
                return answers

        return asyncio.run(ask())


# --- How a browser reads an answer ----------------------------------------------------


def browser_refusal(answer: Answer, probe: Probe, credentials: bool) -> str | None:
    """What a browser prints when it refuses ``answer`` (None: the page may read it)."""
    prefix = PREFLIGHT_PREFIX if probe.kind == "preflight" else ""
    if probe.kind == "preflight" and answer.is_redirect:
        return prefix + "Redirect is not allowed for a preflight request."
    origins = answer.values(ACAO)
    if not origins:
        return f"{prefix}No {ACAO_NAME} header is present on the requested resource."
    if len(origins) > 1:
        return (
            f"{prefix}The 'Access-Control-Allow-Origin' header contains multiple values "
            f"'{', '.join(origins)}', but only one is allowed. {CHROME_FIX}"
        )
    if origins[0] == WILDCARD and credentials:
        return (
            f"{prefix}The value of the 'Access-Control-Allow-Origin' header in the response "
            "must not be the wildcard '*' when the request's credentials mode is 'include'."
        )
    if origins[0] not in (WILDCARD, probe.origin):
        return (
            f"{prefix}The 'Access-Control-Allow-Origin' header has a value '{origins[0]}' "
            f"that is not equal to the supplied origin. {CHROME_FIX}"
        )
    allow_credentials = answer.get("access-control-allow-credentials")
    if credentials and allow_credentials != "true":
        return (
            f"{prefix}The value of the 'Access-Control-Allow-Credentials' header in the "
            f"response is '{allow_credentials or ''}' which must be 'true' when the request's "
            "credentials mode is 'include'."
        )
    if probe.kind != "preflight":
        return None
    if not answer.is_ok:
        return prefix + "It does not have HTTP ok status."
    methods = answer.values("access-control-allow-methods")
    any_method = WILDCARD in methods and not credentials
    if probe.method not in (*methods, *SIMPLE_METHODS) and not any_method:
        return (
            f"Method {probe.method} is not allowed by Access-Control-Allow-Methods in "
            "preflight response."
        )
    allowed_headers = answer.names("access-control-allow-headers")
    if WILDCARD in allowed_headers and not credentials:
        return None
    for name in probe.request_headers:
        if name not in allowed_headers:
            return (
                f"Request header field {name} is not allowed by Access-Control-Allow-Headers "
                "in preflight response."
            )
    return None


# --- Why an answer differs ------------------------------------------------------------


def describe(answer: Answer, name: str = ACAO) -> str:
    value = answer.get(name)
    shown = f"no {_title(name)}" if value is None else f"{_title(name)}: {value}"
    return shown if answer.status is None else f"{answer.status}, {shown}"


def _title(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))


CACHE_FIX = (
    "keep one cached answer per Origin: let the cache honour Vary (nginx does unless "
    "'proxy_ignore_headers Vary' is set; a CDN needs Origin in its cache key), or add the "
    "Origin to the cache key ('proxy_cache_key ...$http_origin'), or do not cache these answers"
)


@dataclass(frozen=True)
class Comparison:
    """One probe's answer from the deployment (``got``) beside the policy's (``expected``).

    ``earlier`` are the origins this check sent before, in probes of the same kind, to
    the same URL: an answer naming one of them came from a cache. ``layer_saw_origin``: the
    service's CORS layer answered this origin's preflight, so the Origin reaches it.
    ``stripped_origin``: the layer answered this origin's preflight 200, and it arrived
    without any Access-Control-* header (see :meth:`strips_every_header`).
    """

    probe: Probe
    expected: Answer
    got: Answer
    url: str
    credentials: bool
    earlier: tuple[str, ...] = ()
    layer_saw_origin: bool = False
    stripped_origin: bool = False

    @property
    def browser(self) -> str:
        refusal = browser_refusal(self.got, self.probe, self.credentials and self.probe.allowed)
        return refusal or "nothing: the page reads the answer"

    def finding(self, fault: str, cause: str, fix: str, name: str = ACAO) -> Finding:
        return Finding(
            fault,
            self.probe.label,
            describe(self.expected, name),
            describe(self.got, name),
            self.browser,
            cause,
            fix,
        )

    def first_difference(self) -> Finding | None:
        """The first way the answers differ that a browser or a cache would notice, with
        its likely cause and fix; None when they agree."""
        probe, got = self.probe, self.got
        if got.is_redirect:
            return self.redirect() if probe.allowed else None  # refused either way
        sent, wanted = got.values(ACAO), self.expected.values(ACAO)
        if len(sent) > 1:
            if not probe.allowed:
                return None  # refused either way; the allowed origins' answers show it
            return self.finding(
                "multiple-values",
                "something in front of the service (a proxy, an ingress, a gateway) adds its "
                "own Access-Control-Allow-Origin to the service's",
                REMOVE_PROXY_CORS,
            )
        if sent == wanted:
            return self.other_differences() if probe.allowed else None
        value = sent[0] if sent else None
        if value is None:
            return self.missing_header()
        hit = got.cache_hit()
        if value not in (WILDCARD, probe.origin) and (value in self.earlier or hit):
            evidence = hit or f"sent earlier by this check to {self.url}"
            return self.finding(
                "shared-cache",
                f"a cache in front stored the answer for {value} ({evidence}) and served it "
                "to another origin: it does not keep one answer per Origin",
                CACHE_FIX,
            )
        if not probe.allowed and browser_refusal(got, probe, credentials=False) is not None:
            return None  # the browser refuses, as the policy does
        return self.finding(
            "proxy-cors",
            f"something in front writes its own Access-Control-Allow-Origin ({value})"
            + ("" if wanted else ", for an origin the policy refuses"),
            REMOVE_PROXY_CORS,
        )

    def redirect(self) -> Finding | None:
        """A redirect: never followed for a preflight; followed for a request only when it
        passes the CORS check itself, and then with Origin: null to another origin."""
        target = urljoin(self.url, self.got.get("location") or "")
        browser = browser_refusal(self.got, self.probe, self.credentials)
        if browser is None:
            if _same_origin(self.url, target):
                return None  # the browser follows it, and nothing changes
            browser = f"it follows the redirect to {target} with Origin: null, which the policy "
            browser += "refuses"
        cause, fix = _redirect_cause(self.url, target)
        expected = "no redirect" if self.expected.status is None else f"{self.expected.status}"
        got = f"{self.got.status} redirect to {target}"
        return Finding("redirect", self.probe.label, expected, got, browser, cause, fix)

    def missing_header(self) -> Finding:
        """The policy sends Access-Control-Allow-Origin; the deployment does not."""
        got = self.got
        hit = got.cache_hit()
        if hit:
            return self.finding(
                "shared-cache",
                f"a cache in front served ({hit}) an answer stored for another origin, or for a "
                "request without Origin",
                CACHE_FIX,
            )
        if got.has_cors:  # the service sends none of them to an origin it refuses
            return self.finding(
                "header-stripped",
                "the service's other Access-Control-* headers arrived but this one did not: "
                "something in front removes it ('proxy_hide_header', a response-header allow "
                "list)",
                "let the service's Access-Control-* and Vary headers through unchanged",
            )
        if self.strips_every_header():
            return self.cors_headers_stripped()
        if got.answers_preflight or (got.varies_on_origin and self.layer_saw_origin):
            return self.policy_differs()
        if got.varies_on_origin:
            what = (
                f"the service answered {got.status} to a plain OPTIONS request, not a preflight"
                if self.probe.kind == "preflight"
                else "the service answered (its Vary: Origin is there) without CORS headers"
            )
            return self.finding(
                "origin-not-forwarded",
                f"{what}: the proxy or CDN does not forward the Origin (and "
                "Access-Control-Request-*) request headers, or the deployment runs another "
                "policy"
                + (
                    ""
                    if self.probe.kind == "preflight"
                    else ", or something in front removes every Access-Control-* response "
                    "header (no preflight of this origin tells which)"
                ),
                "forward Origin, Access-Control-Request-Method and "
                "Access-Control-Request-Headers to the service (a CDN forwards only the headers "
                "its policy lists); if they are forwarded, compare the deployment's variables "
                f"with `{PACKAGE} show`",
            )
        return self.answered_in_front()

    def strips_every_header(self) -> bool:
        """The answer lacks every Access-Control-* header that the policy sends, although
        the service wrote it as the policy says: a preflight the service's CORS layer
        answered 200 (its Vary names Access-Control-Request-Method; it never answers a
        preflight 200 without Access-Control-* headers, under any policy: a policy that
        refuses the origin, method or headers answers 400), or a request from an origin
        whose preflight showed that, with the service's Vary: Origin."""
        got, expected = self.got, self.expected
        if got.has_cors or not expected.has_cors:
            return False
        if self.probe.kind == "preflight":
            return got.answers_preflight and got.status == expected.status == 200
        return self.stripped_origin and got.varies_on_origin

    def cors_headers_stripped(self) -> Finding:
        """Every Access-Control-* header removed on the way: not another policy."""
        got, expected = self.got, self.expected
        sent = sorted(
            {name for name, _ in expected.headers if name.startswith("access-control-")} - {ACAO}
        )
        others = ", ".join(_title(name).removeprefix("Access-Control-") for name in sent)
        wanted = describe(expected) + (f" (and {others})" if others else "")
        vary = got.get("vary")
        shown = "no Access-Control-* header" + (f", Vary: {vary}" if vary else "")
        arrived = shown if got.status is None else f"{got.status}, {shown}"
        return Finding(
            "cors-headers-stripped",
            self.probe.label,
            wanted,
            arrived,
            self.browser,
            STRIPPED_CAUSE,
            STRIPPED_FIX,
        )

    def cached(self) -> Finding:
        """This answer lacked Access-Control-Allow-Origin; one past any cache had it."""
        return self.finding(
            "shared-cache",
            "the same request with a query string no cache has seen got its "
            "Access-Control-Allow-Origin: a cache in front served an answer it stored for a "
            "request without Origin or from another origin",
            CACHE_FIX,
        )

    def policy_differs(self) -> Finding:
        return self.finding(
            "policy-differs",
            "the service itself refused what this policy allows: the deployment runs another "
            "policy than the one checked (another image, other variables, another "
            "ENVIRONMENT)",
            f"check with the deployment's ENVIRONMENT and variables (`{PACKAGE} show` "
            "prints the policy checked), or deploy the current settings",
        )

    def answered_in_front(self) -> Finding:
        """No CORS header and no Vary: Origin: the service did not write this answer."""
        status, preflight = self.got.status, self.probe.kind == "preflight"
        if status in (401, 403, 407):
            why = (
                "browsers never send credentials on a preflight"
                if preflight
                else "this check sends no credentials; the page sees a CORS error, not the "
                f"{status}"
            )
            return self.finding(
                "auth-before-cors",
                f"an authentication layer in front answered {status} before the service ({why})",
                "let OPTIONS requests with Origin and Access-Control-Request-Method reach the "
                "service without authentication (oauth2-proxy: --skip-auth-preflight), keep "
                "public paths such as /health outside the auth layer, or authenticate in the "
                "service",
            )
        if status in (405, 501) and preflight:
            return self.finding(
                "options-refused",
                f"something in front refuses the OPTIONS method ({status}): a method allow "
                "list, 'limit_except', a firewall rule",
                "let OPTIONS requests through to the service: it answers preflights itself",
            )
        if status is not None and status >= 500:
            return self.finding(
                "upstream-error",
                f"the proxy answered {status} itself: the service behind it did not answer "
                "(down, wrong upstream address or port, timed out)",
                "make the service reachable from the proxy; the proxy's error page has no CORS "
                "headers, so browsers report a CORS error",
            )
        return self.finding(
            "answered-in-front",
            f"the answer ({status}) has neither CORS headers nor the Vary: Origin the service "
            "always sends: something in front answered (a proxy rule, another backend, a "
            "static page)",
            "route this path to the service, and let its headers through",
        )

    def other_differences(self) -> Finding | None:
        """Same Access-Control-Allow-Origin: the other headers of an allowed origin's answer."""
        probe, expected, got = self.probe, self.expected, self.got
        if probe.kind == "preflight" and not got.is_ok:
            return self.policy_differs() if got.answers_preflight else self.answered_in_front()
        names = ["access-control-allow-credentials"]
        if probe.kind == "preflight":
            names += [
                "access-control-allow-methods",
                "access-control-allow-headers",
                "access-control-max-age",
            ]
        else:
            names += ["access-control-expose-headers"]
        for name in names:
            if got.names(name) != expected.names(name):
                return self.finding(
                    "headers-differ",
                    f"{_title(name)} differs: something in front writes its own, or the "
                    "deployment runs another policy than this one (another image, other "
                    "variables)",
                    f"{REMOVE_PROXY_CORS}; then compare the deployment's variables with "
                    f"`{PACKAGE} show`",
                    name,
                )
        explicit = expected.values(ACAO) != [WILDCARD]
        if probe.kind == "request" and explicit and not got.varies_on_origin:
            return self.finding(
                "vary-missing",
                "the answer lost its Vary: Origin on the way: caches between the service and "
                "browsers may then serve one origin's answer to another",
                "let the service's Vary header through unchanged (no 'proxy_hide_header Vary')",
                "vary",
            )
        return None


def redirect_finding(probe: Probe, got: Answer, url: str) -> Finding | None:
    """The redirect probe: a redirect of the service must stay on the origin browsers call."""
    if not got.is_redirect:
        return None
    target = urljoin(url, got.get("location") or "")
    called, sent = urlsplit(url), urlsplit(target)
    if _same_origin(url, target):
        return None
    if called.hostname == sent.hostname and called.scheme != sent.scheme:
        fault = "scheme-lost"
        cause = (
            f"the service redirects to {sent.scheme}:// although browsers call "
            f"{called.scheme}://: it is not told the scheme browsers use"
        )
        fix = (
            "forward X-Forwarded-Proto (nginx: proxy_set_header X-Forwarded-Proto $scheme) and "
            "let the server trust the proxy: fastapi run / uvicorn --forwarded-allow-ips "
            "with the proxy's address (FORWARDED_ALLOW_IPS)"
        )
    else:
        fault = "host-rewritten"
        cause = (
            f"the service built its redirect from the Host it received, {sent.netloc!r}, not "
            f"the {called.netloc!r} browsers call: the proxy rewrites Host (or drops its port)"
        )
        fix = (
            "forward the Host browsers send: nginx 'proxy_set_header Host $http_host' ($host "
            "drops a non-default port), Traefik passHostHeader (on by default), ingress-nginx "
            "without the upstream-vhost annotation"
        )
    return Finding(
        fault,
        probe.label,
        f"a redirect within {called.scheme}://{called.netloc}",
        f"{got.status} redirect to {target}",
        f"it follows the redirect to {sent.scheme}://{sent.netloc}: blocked as mixed content "
        "from an https page, not reachable from outside, or sent with Origin: null, which the "
        "policy refuses",
        cause,
        fix,
    )


def _same_origin(url: str, other: str) -> bool:
    first, second = urlsplit(url), urlsplit(other)
    return (first.scheme, first.netloc) == (second.scheme, second.netloc)


def _redirect_cause(url: str, target: str) -> tuple[str, str]:
    called, sent = urlsplit(url), urlsplit(target)
    if called.netloc == sent.netloc and (called.scheme, sent.scheme) == ("http", "https"):
        final = target.split("?")[0]
        return (
            "the proxy redirects http to https; browsers do not follow a redirected "
            "preflight, and a redirect to another origin taints the request",
            f"call the https URL from the frontend ({final}) and check that one",
        )
    if (called.scheme, called.netloc) == (sent.scheme, sent.netloc) and (
        called.path.rstrip("/") == sent.path.rstrip("/")
    ):
        return (
            f"the proxy or the service redirects {called.path} to {sent.path} (a trailing "
            "slash added or removed)",
            f"call {sent.path} exactly as the service serves it, or stop the proxy's rewrite",
        )
    return (
        f"something in front redirects to {target}",
        "call the final URL from the frontend, or stop the redirect",
    )


# --- The check ------------------------------------------------------------------------


def service_url(text: str) -> str:
    """The service's base URL (scheme://host[:port][/prefix]), without a trailing '/'."""
    value = text.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        hint = (
            f"write 'https://{value}'"
            if "://" not in value
            else "use the http:// or https:// URL browsers call"
        )
        raise CheckError(f"URL {text!r} is not an http(s) URL: {hint}")
    if parts.query or parts.fragment:
        raise CheckError(
            f"URL {text!r} has a query or fragment: give the service's base URL, as in "
            f"'{parts.scheme}://{parts.netloc}', and the path with --path"
        )
    if "@" in parts.netloc:
        raise CheckError(f"URL {text!r} contains user info: leave credentials out of the URL")
    try:
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError:
        raise CheckError(f"URL {text!r} has a bad port: use a number from 1 to 65535") from None
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def request_path(text: str) -> str:
    if not text.startswith("/") or any(char in text for char in "?# "):
        raise CheckError(
            f"--path {text!r} must be a path starting with '/', without query or spaces, as "
            "in /public/items"
        )
    return text


def check(
    settings: CORSSettings,
    url: str,
    paths: Sequence[str] = (DEFAULT_PATH,),
    timeout: float = DEFAULT_TIMEOUT,
    transport: httpx.BaseTransport | None = None,
) -> Report:
    """Send the probes of every path to the deployed service at ``url``, and compare each
    answer with the local CORS layer's. ``transport`` replaces the network (tests)."""
    if not 0 < timeout <= MAX_TIMEOUT:  # also refuses nan and inf
        raise CheckError(
            f"--timeout {timeout:g} is no waiting time: give the seconds to wait for each "
            f"answer, above 0 and at most {MAX_TIMEOUT:g}, as in --timeout 5"
        )
    base = service_url(url)
    paths = list(dict.fromkeys(request_path(path) for path in paths))
    # The run-time origins as the service's store holds them now: probed like the others.
    runtime = runtime_origins(settings)
    policies = CORSPolicies.from_settings(settings)
    if runtime is not None:
        policies = policies.with_runtime(runtime.snapshot)
    local = LocalAnswers(settings, runtime)
    report = Report(base, settings.environment)
    start = time.monotonic()
    with httpx.Client(
        timeout=timeout,
        follow_redirects=False,
        transport=transport,
        headers={"user-agent": f"{PACKAGE}-cors-check"},
    ) as client:
        for path in paths:
            report.policies[path] = policy_label(policies, path)[1]
            policy = policies.for_path(path)
            if not _check_path(client, policy, local, base, probes_for(policy, path), report):
                break
    report.seconds = time.monotonic() - start
    return report


def _check_path(
    client: httpx.Client,
    policy: CORSPolicy,
    local: LocalAnswers,
    base: str,
    probes: list[Probe],
    report: Report,
) -> bool:
    """Send one path's probes, one at a time; False when the service stopped answering."""

    def send(probe: Probe, url: str) -> Answer | None:
        method = "OPTIONS" if probe.kind == "preflight" else "GET"
        try:
            with client.stream(method, url, headers=probe.headers()) as response:
                return Answer.of(response.status_code, response.headers.multi_items())
        except httpx.HTTPError as error:
            report.checked.append(Checked(probe.label, probe.origin, "-", None, False))
            report.findings.append(unreachable(probe, url, error))
            report.stopped = (
                f"no answer from {url} ({type(error).__name__}: {error}); the check sends no "
                "more requests and retries none"
            )
            return None

    sent: dict[str, list[str]] = {}  # probe kind -> origins, in order
    layer_saw: set[str] = set()  # origins whose preflight the service's CORS layer answered
    stripped: set[str] = set()  # origins whose preflight arrived without Access-Control-*
    redirected = False
    cache: bool | None = None  # whether a request past any cache proved one; None: not tried
    for probe, wanted in zip(probes, local.answers(probes), strict=True):
        target = base + probe.path
        got = send(probe, target)
        if got is None:
            return False
        if probe.kind == "redirect probe":
            found = None if redirected else redirect_finding(probe, got, target)
            report.checked.append(Checked(probe.label, probe.origin, "-", got.status, not found))
        else:
            earlier = tuple(sent.get(probe.kind, ()))
            saw = probe.origin in layer_saw
            credentials = policy.allow_credentials
            comparison = Comparison(
                probe, wanted, got, target, credentials, earlier, saw, probe.origin in stripped
            )
            found = comparison.first_difference()
            sent.setdefault(probe.kind, []).append(probe.origin)
            if probe.kind == "preflight" and got.answers_preflight:
                layer_saw.add(probe.origin)
            if found is not None and found.fault == "cors-headers-stripped":
                stripped.add(probe.origin)
            redirected = redirected or (found is not None and found.fault == "redirect")
            verdict = "allowed" if probe.allowed else "refused"
            row = Checked(probe.label, probe.origin, verdict, got.status, not found)
            report.checked.append(row)
            missing = found is not None and found.fault in BYPASS_CACHE_FOR
            if missing and probe.kind == "request" and cache is None:
                # Once per path: the same request with a query string no cache has seen.
                fresh_probe = replace(probe, kind="cache bypass")
                fresh = send(fresh_probe, f"{target}?{SAMPLE_LABEL}={secrets.token_hex(4)}")
                if fresh is None:
                    return False
                cache = fresh.values(ACAO) == wanted.values(ACAO)
                report.checked.append(
                    Checked(fresh_probe.label, probe.origin, "-", fresh.status, not cache)
                )
            if missing and probe.kind == "request" and cache:
                found = comparison.cached()
        if found is not None:
            report.findings.append(found)
    return True


def unreachable(probe: Probe, url: str, error: httpx.HTTPError) -> Finding:
    return Finding(
        "unreachable",
        probe.label,
        "an answer",
        f"none ({type(error).__name__}: {error})",
        "no CORS message: the request fails (net::ERR_..., TypeError: Failed to fetch)",
        "nothing answered at this URL within the timeout, or the TLS handshake failed",
        f"check that this is the URL browsers call and that it answers from here: curl -i {url}",
    )


# --- The command ----------------------------------------------------------------------


def check_command(settings_cls: type[CORSSettings], arguments: argparse.Namespace) -> int:
    """``corsguard check URL``: print the report (or JSON); 0 agrees, 1 differs, 2 bad input."""
    settings = settings_cls.load(environment=arguments.env)  # --env, or its variable (cli.py)
    try:
        report = check(settings, arguments.url, arguments.path or [DEFAULT_PATH], arguments.timeout)
    except CheckError as error:
        print(error, file=sys.stderr)
        return BAD_INPUT
    print(json.dumps(report.to_json(), indent=2) if arguments.json else "\n".join(report.lines()))
    return AGREES if report.agrees else DISAGREES
