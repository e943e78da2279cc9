"""Property-based tests: for generated policies and origins, the headers obey the rules.

The expected answer comes from a model written here from the rules themselves (string
prefix and suffix, not the label walk the service uses), so the two can disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .service import SERVICE, Settings, create_app
from .support import send

LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
PARENTS = ["example.com", "shop.example.org", "eu.example.co.uk", "example.test"]

labels = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True)
schemes = st.sampled_from(["http", "https"])
ports = st.one_of(st.none(), st.sampled_from([3000, 8080, 8443]))
parents = st.sampled_from(PARENTS)


def origin_text(scheme: str, host: str, port: int | None) -> str:
    return f"{scheme}://{host}" + ("" if port is None else f":{port}")


@st.composite
def exact_origins(draw: st.DrawFn) -> str:
    host = ".".join([*draw(st.lists(labels, min_size=0, max_size=2)), draw(parents)])
    return origin_text(draw(schemes), host, draw(ports))


@st.composite
def patterns(draw: st.DrawFn) -> tuple[str, str, int | None]:
    """(scheme, parent, port) of a pattern scheme://*.parent[:port]."""
    prefix = draw(st.lists(labels, min_size=0, max_size=1))
    return draw(schemes), ".".join([*prefix, draw(parents)]), draw(ports)


@dataclass(frozen=True)
class Policy:
    exact: list[str]
    patterns: list[tuple[str, str, int | None]]
    credentials: bool
    any_origin: bool

    @property
    def entries(self) -> list[str]:
        wild = [origin_text(scheme, f"*.{parent}", port) for scheme, parent, port in self.patterns]
        return [*self.exact, *wild, *(["*"] if self.any_origin else [])]

    def allows(self, origin: str) -> bool:
        """The model: exact membership, or scheme prefix + whole labels + parent suffix."""
        if self.any_origin or origin in self.exact:
            return True
        for scheme, parent, port in self.patterns:
            head = f"{scheme}://"
            tail = f".{parent}" + ("" if port is None else f":{port}")
            if origin.startswith(head) and origin.endswith(tail) and len(origin) > len(head + tail):
                sub = origin[len(head) : -len(tail)]
                if all(LABEL.fullmatch(label) for label in sub.split(".")):
                    return True
        return False

    def app(self) -> FastAPI:
        return create_app(
            Settings(
                _env_file=None,
                cors_allow_origins=self.entries,
                cors_allow_credentials=self.credentials,
                cors_allow_methods=["GET", "PUT"],
                cors_expose_headers=[],
            )
        )


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    credentials = draw(st.booleans())
    return Policy(
        exact=draw(st.lists(exact_origins(), max_size=4)),
        patterns=draw(st.lists(patterns(), max_size=3)),
        credentials=credentials,
        # '*' is refused together with credentials, so it is only drawn without them.
        any_origin=not credentials and draw(st.integers(0, 9)) == 0,
    )


@st.composite
def request_origins(draw: st.DrawFn, policy: Policy) -> str:
    """Origins near the policy: members, and members bent across a boundary."""
    candidates = [*policy.exact]
    for scheme, parent, port in policy.patterns:
        sub = ".".join(draw(st.lists(labels, min_size=1, max_size=3)))
        candidates += [
            origin_text(scheme, f"{sub}.{parent}", port),  # a member
            origin_text(scheme, parent, port),  # the bare parent
            origin_text(scheme, f"{sub}{parent}", port),  # a label glued to the parent
            origin_text("http" if scheme == "https" else "https", f"{sub}.{parent}", port),
            origin_text(scheme, f"{sub}.{parent}", 9999),
            origin_text(scheme, f"{sub}.{parent}.evil.test", port),
        ]
    base = draw(st.sampled_from(candidates)) if candidates else draw(exact_origins())
    scheme, rest = base.split("://", 1)
    bent = {
        "none": base,
        "upper": base.upper(),
        "slash": f"{base}/",
        "suffix": f"{base}.evil.test",
        "userinfo": f"{scheme}://user@{rest}",
        "dot": f"{base}.",
        "port": base if ":" in rest else f"{base}:1",
    }
    return bent[draw(st.sampled_from(sorted(bent)))]


PROPERTY_SETTINGS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(data=st.data(), policy=policies())
def test_allow_origin_is_absent_or_exactly_the_request_origin(
    data: st.DataObject, policy: Policy
) -> None:
    origin = data.draw(request_origins(policy))
    app = policy.app()
    allowed = policy.allows(origin)
    simple = send(app, "GET", headers={"Origin": origin})
    preflight = send(
        app, "OPTIONS", headers={"Origin": origin, "Access-Control-Request-Method": "PUT"}
    )
    for response in (simple, preflight):
        header = response.headers.get("access-control-allow-origin")
        if not allowed:
            assert header is None, (origin, policy)
            assert "access-control-allow-credentials" not in response.headers
        else:
            assert header == ("*" if policy.any_origin else origin), (origin, policy)
        if policy.credentials:
            assert header != "*"
    assert (preflight.status_code == 200) is allowed


@PROPERTY_SETTINGS
@given(pattern=patterns(), sub=labels, other=labels)
def test_patterns_never_match_across_a_boundary(
    pattern: tuple[str, str, int | None], sub: str, other: str
) -> None:
    scheme, parent, port = pattern
    entry = origin_text(scheme, f"*.{parent}", port)
    app = create_app(Settings(_env_file=None, cors_allow_origins=[entry]))
    other_scheme = "http" if scheme == "https" else "https"
    outside = [
        origin_text(scheme, parent, port),
        origin_text(scheme, f"{sub}{parent}", port),
        origin_text(scheme, f"{sub}-{parent}", port),
        origin_text(other_scheme, f"{sub}.{parent}", port),
        origin_text(scheme, f"{sub}.{parent}", 4 if port is None else None),
        origin_text(scheme, f"{sub}.{parent}.{other}", port),
        origin_text(scheme, f"{sub}.{parent}", port) + f"/{other}",
        origin_text(scheme, f"{other}@{sub}.{parent}", port),
    ]
    inside = origin_text(scheme, f"{other}.{sub}.{parent}", port)
    assert (
        send(app, "GET", headers={"Origin": inside}).headers["access-control-allow-origin"]
        == inside
    )
    for origin in outside:
        response = send(app, "GET", headers={"Origin": origin})
        assert "access-control-allow-origin" not in response.headers, origin


ADVERSARIAL: list[tuple[list[str], str, bool]] = [
    # (configured entries, request origin, allowed?)
    (["https://app.example.com"], "https://app.example.com", True),
    (["https://app.example.com"], "https://app.example.com.evil.test", False),
    (["https://app.example.com"], "https://evilapp.example.com", False),
    (["https://app.example.com"], "https://app-example.com", False),
    (["https://app.example.com"], "https://app.examp1e.com", False),
    (["https://app.example.com"], "https://APP.EXAMPLE.COM", False),
    (["https://app.example.com"], "https://app.example.com.", False),
    (["https://app.example.com"], "https://app.example.com:443", False),
    (["https://app.example.com"], "https://user@app.example.com", False),
    (["https://app.example.com"], "https://app.example.com@evil.test", False),
    (["https://app.example.com"], "http://app.example.com", False),
    (["https://app.example.com"], "null", False),
    (["https://app.example.com"], "https://app.example.com/", False),
    (["https://*.example.com"], "https://a.example.com", True),
    (["https://*.example.com"], "https://xn--bcher-kva.example.com", True),
    (["https://*.example.com"], "https://example.com", False),
    (["https://*.example.com"], "https://.example.com", False),
    (["https://*.example.com"], "https://a.example.com.evil.test", False),
    (["https://*.example.com"], "https://evil.test#.example.com", False),
    (["https://*.example.com"], "https://evil.test?.example.com", False),
    (["https://*.example.com"], "https://evil.test/.example.com", False),
    (["https://*.example.com"], "https://evil.test\\.example.com", False),
    (["https://*.example.com"], "https://a.example.com:8443", False),
    (["https://*.example.com"], "https://A.example.com", False),
    (["https://*.example.com"], "null", False),
]


NON_PRODUCTION = next((name for name in SERVICE.profiles if name != "production"), None)
if NON_PRODUCTION is not None:  # 'null' can only be allowed outside production
    ADVERSARIAL.append((["https://app.example.com", "null"], "null", True))


@pytest.mark.parametrize(("entries", "origin", "allowed"), ADVERSARIAL)
def test_adversarial_origins(entries: list[str], origin: str, allowed: bool) -> None:
    settings = Settings(
        _env_file=None,
        environment=NON_PRODUCTION or "production",
        cors_allow_origins=entries,
        cors_allow_credentials=True,
        cors_expose_headers=[],
    )
    response = send(create_app(settings), "GET", headers={"Origin": origin})
    expected = origin if allowed else None
    assert response.headers.get("access-control-allow-origin") == expected
