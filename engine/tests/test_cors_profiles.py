"""Every environment's profile, as a browser sees it.

The cases are derived from settings.toml: change the origins there (or with
``copier update --data``) and these tests check the new policy.
"""

from __future__ import annotations

import sys
from urllib.parse import urlsplit

import httpx
import pytest

from .service import (
    NULL,
    SERVICE,
    WILDCARD,
    CORSPolicies,
    OriginPattern,
    Settings,
    create_app,
    is_pattern,
)
from .support import profile_settings, send

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PROFILES: dict[str, Settings] = {name: profile_settings(name) for name in SERVICE.profiles}


def default_path(settings: Settings) -> str:
    """A path that the default policy decides (no path policy claims it)."""
    policies = CORSPolicies.from_settings(settings)
    return next(p for p in ("/health", "/cors-default-probe") if policies.name_for(p) is None)


PATHS = {name: default_path(settings) for name, settings in PROFILES.items()}


def exact_origins() -> list[tuple[str, str]]:
    return [
        (name, origin)
        for name, settings in PROFILES.items()
        for origin in settings.cors_allow_origins
        if origin not in (WILDCARD, NULL) and not is_pattern(origin)
    ]


def patterns() -> list[tuple[str, OriginPattern]]:
    return [
        (name, OriginPattern.parse(entry))
        for name, settings in PROFILES.items()
        for entry in settings.cors_allow_origins
        if is_pattern(entry)
    ]


def with_port(pattern: OriginPattern, host: str, scheme: str | None = None) -> str:
    port = f":{pattern.port}" if pattern.port is not None else ""
    return f"{scheme or pattern.scheme}://{host}{port}"


def pattern_members(pattern: OriginPattern) -> list[str]:
    """Origins the pattern must allow: one label and several labels deep."""
    return [
        with_port(pattern, f"pr-1.{pattern.parent}"),
        with_port(pattern, f"a.b-2.{pattern.parent}"),
    ]


def near_misses_of_origin(origin: str) -> list[str]:
    """Origins one step outside an exact origin."""
    parts = urlsplit(origin)
    other_scheme = "http" if parts.scheme == "https" else "https"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or ""
    return [
        f"{other_scheme}://{parts.netloc}",
        f"{parts.scheme}://{host}:{port + 1}",
        f"{origin}.evil.test",
        f"{parts.scheme}://evil{host}" + (f":{parts.port}" if parts.port else ""),
        NULL,
    ]


def near_misses_of_pattern(pattern: OriginPattern) -> list[str]:
    """Origins one step outside a pattern: its bare parent, a sibling, look-alikes."""
    grandparent = pattern.parent.split(".", 1)[1]
    other_port = (pattern.port or 443) + 1
    return [
        with_port(pattern, pattern.parent),
        with_port(
            pattern, f"pr-1.{pattern.parent}", "http" if pattern.scheme == "https" else "https"
        ),
        f"{pattern.scheme}://pr-1.{pattern.parent}:{other_port}",
        with_port(pattern, f"pr-1.other-{pattern.parent.split('.', 1)[0]}.{grandparent}"),
        with_port(pattern, f"pr-1x{pattern.parent}"),
        with_port(pattern, f"pr-1.{pattern.parent}.evil.test"),
        NULL,
    ]


def refused_cases() -> list[tuple[str, str]]:
    cases = []
    for name, settings in PROFILES.items():
        listed = set(settings.cors_allow_origins)
        candidates = [
            miss
            for env, origin in exact_origins()
            if env == name
            for miss in near_misses_of_origin(origin)
        ]
        candidates += [
            miss
            for env, pattern in patterns()
            if env == name
            for miss in near_misses_of_pattern(pattern)
        ]
        # A near miss that the profile itself lists (say two ports of localhost) is no miss;
        # decided from the entries as written, not by asking the policy under test.
        cases += [(name, origin) for origin in dict.fromkeys(candidates) if origin not in listed]
    return cases


def allowed_cases() -> list[tuple[str, str]]:
    members = [
        (name, origin) for name, pattern in patterns() for origin in pattern_members(pattern)
    ]
    return exact_origins() + members


def preflight(environment: str, origin: str, method: str) -> httpx.Response:
    settings = PROFILES[environment]
    headers = {"Origin": origin, "Access-Control-Request-Method": method}
    if settings.cors_allow_headers and WILDCARD not in settings.cors_allow_headers:
        headers["Access-Control-Request-Headers"] = ", ".join(settings.cors_allow_headers)
    return send(create_app(settings), "OPTIONS", PATHS[environment], headers=headers)


def test_every_profile_of_the_file_loads_its_own_origins() -> None:
    assert SERVICE.path is not None
    written = tomllib.loads(SERVICE.path.read_text(encoding="utf-8"))["environments"]
    assert list(PROFILES) == list(written)
    for name, settings in PROFILES.items():
        assert settings.environment == name
        assert list(settings.cors_allow_origins) == written[name]["cors_allow_origins"]


@pytest.mark.parametrize(("environment", "origin"), allowed_cases())
def test_preflight_allows_configured_origin(environment: str, origin: str) -> None:
    settings = PROFILES[environment]
    for method in settings.cors_allow_methods:
        response = preflight(environment, origin, method)
        assert response.status_code == 200, (method, response.text)
        assert response.headers["access-control-allow-origin"] == origin
        allowed_methods = {
            m.strip() for m in response.headers["access-control-allow-methods"].split(",")
        }
        assert method in allowed_methods
        assert response.headers["access-control-max-age"] == str(settings.cors_max_age)
        assert "Origin" in response.headers["vary"]
        if settings.cors_allow_credentials:
            assert response.headers["access-control-allow-credentials"] == "true"
        else:
            assert "access-control-allow-credentials" not in response.headers


@pytest.mark.parametrize(("environment", "origin"), allowed_cases())
def test_simple_request_echoes_configured_origin(environment: str, origin: str) -> None:
    settings = PROFILES[environment]
    response = send(create_app(settings), "GET", PATHS[environment], headers={"Origin": origin})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == origin
    assert "Origin" in response.headers["vary"]
    if settings.cors_expose_headers:
        exposed = {h.strip() for h in response.headers["access-control-expose-headers"].split(",")}
        assert exposed == set(settings.cors_expose_headers)
    if settings.cors_allow_credentials:
        assert response.headers["access-control-allow-credentials"] == "true"
    else:
        assert "access-control-allow-credentials" not in response.headers


@pytest.mark.parametrize(("environment", "origin"), refused_cases())
def test_origin_outside_the_policy_is_refused(environment: str, origin: str) -> None:
    settings = PROFILES[environment]
    simple = send(create_app(settings), "GET", PATHS[environment], headers={"Origin": origin})
    assert not [name for name in simple.headers if name.startswith("access-control-")]
    assert "Origin" in simple.headers["vary"]
    refused = preflight(environment, origin, settings.cors_allow_methods[0])
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers


@pytest.mark.parametrize("environment", list(PROFILES))
def test_unlisted_origin_gets_wildcard_or_nothing(environment: str) -> None:
    settings = PROFILES[environment]
    response = send(
        create_app(settings),
        "GET",
        PATHS[environment],
        headers={"Origin": "https://unlisted.example.net"},
    )
    if WILDCARD in settings.cors_allow_origins:
        assert not settings.cors_allow_credentials
        assert response.headers["access-control-allow-origin"] == "*"
    else:
        assert not [name for name in response.headers if name.startswith("access-control-")]


@pytest.mark.parametrize("environment", list(PROFILES))
def test_request_without_origin_gets_no_cors_headers(environment: str) -> None:
    response = send(create_app(PROFILES[environment]), "GET", PATHS[environment])
    assert response.status_code == (200 if PATHS[environment] == "/health" else 404)
    assert not [name for name in response.headers if name.startswith("access-control-")]


def owning_policy(settings: Settings, path: str) -> str | None:
    """The path policy whose longest prefix covers ``path`` by whole segments, as the
    docs state the rule; None for the default policy."""
    covering = [
        (len(prefix), name)
        for name, policy in settings.cors_path_policies.items()
        for prefix in policy.prefixes
        if path == prefix or path.startswith(prefix + "/")
    ]
    return max(covering)[1] if covering else None


@pytest.mark.parametrize("environment", list(PROFILES))
def test_every_path_is_decided_by_its_policy(environment: str) -> None:
    """Under each path prefix its path policy decides; elsewhere the default policy."""
    settings = PROFILES[environment]
    app = create_app(settings)
    scoped = settings.cors_path_policies.values()
    paths = [PATHS[environment]]
    paths += [path for policy in scoped for p in policy.prefixes for path in (p, f"{p}/item")]
    entries = [
        *settings.cors_allow_origins,
        *(o for policy in scoped for o in policy.allow_origins),
    ]
    probes = [o for o in dict.fromkeys(entries) if o != WILDCARD and not is_pattern(o)]
    for path in paths:
        name = owning_policy(settings, path)
        policy = settings.default_policy if name is None else settings.cors_path_policies[name]
        credentials = policy.allow_credentials
        for origin in [*probes, "https://unlisted.example.net"]:
            response = send(app, "GET", path, headers={"Origin": origin})
            header = response.headers.get("access-control-allow-origin")
            if WILDCARD in policy.allow_origins and not credentials:
                assert header == "*", (path, origin)
            elif origin in policy.allow_origins or WILDCARD in policy.allow_origins:
                assert header == origin, (path, origin)
            else:
                assert header is None, (path, origin)
            if credentials and header is not None:
                assert response.headers["access-control-allow-credentials"] == "true"
            else:
                assert "access-control-allow-credentials" not in response.headers
