"""Tests of an app's own policy, derived from its profiles: ``corsguard.testing``.

A service's policy test reads in a minute::

    from corsguard.testing import Case, assert_case, policy_cases

    @pytest.mark.parametrize("case", policy_cases(Settings), ids=str)
    def test_browsers_see_the_policy(case: Case) -> None:
        assert_case(create_app(case.settings(Settings)), case)

The cases come from the profiles file: every configured origin (and two members of each
pattern) is allowed on every path of its policy; origins one step outside (the other
scheme, another port, a look-alike host, a pattern's bare parent, ``null``) are refused,
and a refused origin's cross-site form POST never reaches a handler. What "allowed" means
is worked out here from the configured entries alone, never by asking the engine, so a
fault in the engine fails these tests. Requests go through the whole app, in-process.
"""

# ruff: noqa: S101 (assertions are what these helpers are for)
from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI, Request, Response

from .origins import NULL, WILDCARD, OriginPattern, is_pattern
from .settings import CORSSettings, PathPolicy

S = TypeVar("S", bound=CORSSettings)

PROBE = "corsguard-probe"  # the last segment of the paths the cases use
ANOTHER_SITE = "https://unlisted.example.net"


@dataclass(frozen=True)
class Case:
    """One origin on one path of one environment, and whether browsers may read."""

    environment: str
    policy: str  # "default", or the path policy's name
    path: str
    origin: str
    allowed: bool

    def __str__(self) -> str:
        verdict = "allowed" if self.allowed else "refused"
        return f"{self.environment}-{self.policy}-{self.origin}-{verdict}"

    def settings(self, settings_cls: type[S]) -> S:
        """The settings of this case's environment, from the profiles file alone."""
        return profile_settings(settings_cls, self.environment)


@contextmanager
def _without_variables(settings_cls: type[CORSSettings]) -> Iterator[None]:
    """The process environment without the variables these settings read."""
    prefix = settings_cls.env_name("cors_")
    own = {settings_cls.environment_variable().upper()} | {
        settings_cls.env_name(name) for name in settings_cls.model_fields
    }
    saved = {
        name: value
        for name, value in os.environ.items()
        if name.upper() in own or name.upper().startswith(prefix)
    }
    for name in saved:
        del os.environ[name]
    try:
        yield
    finally:
        os.environ.update(saved)


def profile_settings(settings_cls: type[S], environment: str) -> S:
    """The settings of ``environment`` from its profile and the defaults: no variables, no
    ``.env``, and no origin store (its rows change while the service runs), so that the
    tests describe the profiles file and not the shell or the store."""
    with _without_variables(settings_cls):
        return settings_cls.load(_env_file=None, environment=environment, cors_origin_store="")


def policy_cases(settings_cls: type[CORSSettings]) -> list[Case]:
    """Every case of every environment in the settings' profiles file."""
    environments = list(settings_cls.profiles().profiles) or [
        profile_settings(settings_cls, "").environment
    ]
    cases: list[Case] = []
    for environment in environments:
        settings = profile_settings(settings_cls, environment)
        policies = [("default", settings.default_policy)]
        policies += list(settings.cors_path_policies.items())
        for label, policy in policies:
            cases += _cases_of(environment, label, _path_of(settings, policy), policy)
    return cases


def _path_of(settings: CORSSettings, policy: PathPolicy) -> str:
    if policy.prefixes:
        return f"{policy.prefixes[0]}/{PROBE}"
    claimed = [p for named in settings.cors_path_policies.values() for p in named.prefixes]
    path = f"/{PROBE}"
    while any(path == p or path.startswith(p + "/") for p in claimed):
        path = f"/x{path}"
    return path


def _cases_of(environment: str, label: str, path: str, policy: PathPolicy) -> list[Case]:
    entries = policy.allow_origins
    allowed = [e for e in entries if e not in (WILDCARD, NULL) and not is_pattern(e)]
    misses: list[str] = []
    for origin in allowed:
        misses += _near_misses_of_origin(origin)
    for pattern in (OriginPattern.parse(e) for e in entries if is_pattern(e)):
        allowed += [_with_port(pattern, f"pr-1.{pattern.parent}")]
        allowed += [_with_port(pattern, f"a.b-2.{pattern.parent}")]
        misses += _near_misses_of_pattern(pattern)
    if WILDCARD not in entries:
        misses.append(ANOTHER_SITE)
    if NULL in entries:
        allowed.append(NULL)
    refused = [m for m in dict.fromkeys(misses) if not _listed(m, entries)]
    return [
        *(Case(environment, label, path, origin, True) for origin in dict.fromkeys(allowed)),
        *(Case(environment, label, path, origin, False) for origin in refused),
    ]


def _listed(origin: str, entries: tuple[str, ...]) -> bool:
    """Whether ``origin`` is one of ``entries`` or under one of their patterns, by the
    rules as documented (written out here, independent of the engine's matcher)."""
    if WILDCARD in entries or origin in entries:
        return True
    parts = urlsplit(origin)
    for entry in entries:
        if not is_pattern(entry):
            continue
        pattern = OriginPattern.parse(entry)
        host = parts.hostname or ""
        if (
            parts.scheme == pattern.scheme
            and parts.port == pattern.port
            and host.endswith(f".{pattern.parent}")
        ):
            return True
    return False


def _with_port(pattern: OriginPattern, host: str, scheme: str | None = None) -> str:
    port = f":{pattern.port}" if pattern.port is not None else ""
    return f"{scheme or pattern.scheme}://{host}{port}"


def _near_misses_of_origin(origin: str) -> list[str]:
    parts = urlsplit(origin)
    other_scheme = "http" if parts.scheme == "https" else "https"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or ""
    suffix = f":{parts.port}" if parts.port else ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
        return [f"{other_scheme}://{parts.netloc}", f"{parts.scheme}://{host}:{port + 1}", NULL]
    return [
        f"{other_scheme}://{parts.netloc}",
        f"{parts.scheme}://{host}:{port + 1}",
        f"{parts.scheme}://{host}.evil.test{suffix}",
        f"{parts.scheme}://evil{host}{suffix}",
        NULL,
    ]


def _near_misses_of_pattern(pattern: OriginPattern) -> list[str]:
    other_scheme = "http" if pattern.scheme == "https" else "https"
    first, _, rest = pattern.parent.partition(".")
    return [
        _with_port(pattern, pattern.parent),
        _with_port(pattern, f"pr-1.{pattern.parent}", other_scheme),
        f"{pattern.scheme}://pr-1.{pattern.parent}:{(pattern.port or 443) + 1}",
        _with_port(pattern, f"pr-1.other-{first}.{rest}"),
        _with_port(pattern, f"pr-1x{pattern.parent}"),
        _with_port(pattern, f"pr-1.{pattern.parent}.evil.test"),
        NULL,
    ]


def assert_case(app: FastAPI, case: Case) -> None:
    """Send what a browser on ``case.origin`` would send to ``case.path`` through ``app``
    (built with the case's settings) and assert what the browser must see."""
    settings = getattr(app.state, "cors_settings", None)
    assert isinstance(settings, CORSSettings), "the app has no CORS layer: call add_cors(app, ...)"
    policy = settings.default_policy
    if case.policy != "default":
        policy = settings.cors_path_policies[case.policy]
    calls: list[str] = []

    async def probe(request: Request) -> Response:
        calls.append(request.method)
        return Response("probe")

    app.add_api_route(case.path, probe, methods=["GET", "POST"], include_in_schema=False)
    if case.allowed:
        _assert_allowed(app, case, policy)
    else:
        _assert_refused(app, case, policy)
    _assert_write(app, case, policy, settings, calls)


def _assert_allowed(app: FastAPI, case: Case, policy: PathPolicy) -> None:
    expected = "*" if WILDCARD in policy.allow_origins and not policy.allow_credentials else None
    simple = send(app, "GET", case.path, {"Origin": case.origin})
    shown = simple.headers.get("access-control-allow-origin")
    assert shown == (expected or case.origin), f"{case}: GET got Allow-Origin {shown!r}"
    assert "Origin" in simple.headers.get("vary", ""), f"{case}: GET without Vary: Origin"
    _assert_credentials(simple, case, policy)
    exposed = simple.headers.get("access-control-expose-headers", "")
    names = {name.strip().lower() for name in exposed.split(",") if name.strip()}
    wanted = {name.lower() for name in policy.expose_headers}
    assert names == wanted, f"{case}: exposes {sorted(names)}, the profile {sorted(wanted)}"
    for method in (m for m in policy.allow_methods if m != WILDCARD):
        answer = preflight(app, case, method, policy.allow_headers)
        assert answer.status_code == 200, f"{case}: preflight {method}: {answer.status_code}"
        shown = answer.headers.get("access-control-allow-origin")
        assert shown == (expected or case.origin), f"{case}: preflight Allow-Origin {shown!r}"
        listed = answer.headers.get("access-control-allow-methods", "")
        assert method in {m.strip() for m in listed.split(",")}, f"{case}: {method} not allowed"
        assert answer.headers.get("access-control-max-age") == str(policy.max_age), str(case)
        _assert_credentials(answer, case, policy)


def _assert_refused(app: FastAPI, case: Case, policy: PathPolicy) -> None:
    simple = send(app, "GET", case.path, {"Origin": case.origin})
    cors = sorted(name for name in simple.headers if name.startswith("access-control-"))
    assert not cors, f"{case}: a refused origin got {cors}"
    assert "Origin" in simple.headers.get("vary", ""), f"{case}: GET without Vary: Origin"
    answer = preflight(app, case, policy.allow_methods[0], ())
    assert answer.status_code == 400, f"{case}: preflight got {answer.status_code}"
    assert "access-control-allow-origin" not in answer.headers, str(case)


def _assert_credentials(response: httpx.Response, case: Case, policy: PathPolicy) -> None:
    value = response.headers.get("access-control-allow-credentials")
    wanted = "true" if policy.allow_credentials else None
    assert value == wanted, f"{case}: Allow-Credentials {value!r}, the profile says {wanted}"


def _assert_write(
    app: FastAPI, case: Case, policy: PathPolicy, settings: CORSSettings, calls: list[str]
) -> None:
    """A form POST from ``case.origin`` that the browser marks cross-site: it reaches the
    handler only when the policy allows the origin and POST (or protection is off)."""
    headers = {
        "Origin": case.origin,
        "Sec-Fetch-Site": "cross-site",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    calls.clear()
    answer = send(app, "POST", case.path, headers, content=b"a=1")
    methods = policy.allow_methods
    bypassed = any(
        case.path == p or case.path.startswith(p + "/") for p in settings.cors_cross_origin_bypass
    )
    runs = (
        not settings.cors_cross_origin_protection
        or bypassed
        or (case.allowed and ("POST" in methods or WILDCARD in methods))
    )
    if runs:
        assert calls == ["POST"], f"{case}: the form POST did not reach the handler"
    else:
        assert answer.status_code == 403, f"{case}: cross-site form POST got {answer.status_code}"
        assert calls == [], f"{case}: a refused cross-site POST reached the handler"


def preflight(
    app: FastAPI, case: Case, method: str, request_headers: tuple[str, ...]
) -> httpx.Response:
    headers = {"Origin": case.origin, "Access-Control-Request-Method": method}
    named = [h for h in request_headers if h != WILDCARD]
    if named:
        headers["Access-Control-Request-Headers"] = ", ".join(named)
    return send(app, "OPTIONS", case.path, headers)


def send(
    app: FastAPI,
    method: str,
    path: str,
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
) -> httpx.Response:
    """One request through the whole app (every middleware), without a network."""

    async def one() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.request(method, path, headers=headers, content=content)

    return asyncio.run(one())
