"""Why a browser would be allowed or refused: the logic behind ``cors explain``.

The verdict uses the same :class:`~.cors.CORSPolicy` as the middleware; this module
only adds the words: which rule decided, and what to change when the answer is no.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.middleware.cors import SAFELISTED_HEADERS

from .cors import CORSPolicy
from .origins import NULL, WILDCARD, OriginError, OriginPattern, is_pattern, parse_origin
from .settings import Settings

# Requests a browser sends without a preflight (when they carry only safelisted headers).
SIMPLE_METHODS = frozenset({"GET", "HEAD", "POST"})


@dataclass(frozen=True)
class Verdict:
    """Whether a browser would let the page read the response, and why."""

    origin: str
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
    if (
        parts.scheme
        and parts.netloc
        and (parts.path not in ("", "/") or parts.query or parts.fragment)
    ):
        trimmed = f"{parts.scheme}://{parts.netloc}"
        notes.append(
            f"{value!r} has a trailing path, query or fragment: a page there sends the origin "
            f"{trimmed!r}, which is what is checked below (CORS_ALLOW_ORIGINS entries take no path)"
        )
        value = trimmed
    origin = parse_origin(value)
    if origin == WILDCARD or is_pattern(origin):
        raise OriginError(f"{text!r} is not an origin a browser sends: give one page's origin")
    if origin != value:
        notes.append(f"browsers send {value!r} as {origin!r}")
    return origin, notes


def explain(
    settings: Settings,
    origin_text: str,
    method: str = "GET",
    headers: Sequence[str] = (),
    credentials: bool = False,
) -> Verdict:
    """Judge one cross-origin request against the effective policy of ``settings``."""
    policy = CORSPolicy.from_settings(settings)
    origin, notes = origin_of(origin_text)
    method = method.strip().upper()
    names = [Settings.env_name(name) for name in _FIELDS]
    origins_var, methods_var, headers_var, credentials_var = names

    problems: list[str] = []
    decided_by = _origin_rule(policy, origin)
    if decided_by is None:
        problems.append(_origin_problem(policy, origin, origins_var, settings))
        decided_by = f"no entry of {origins_var}"

    unlisted_headers = [h for h in headers if not policy.allows_header(h)]
    needs_preflight = method not in SIMPLE_METHODS or any(
        h.strip().lower() not in _SAFELISTED for h in headers
    )
    if needs_preflight:
        notes.append("the browser sends a preflight (OPTIONS) first")
        if not policy.allows_method(method):
            problems.append(
                f"method {method} is not in {methods_var} ({', '.join(policy.allow_methods)}): "
                f"add it, e.g. {methods_var}={','.join((*policy.allow_methods, method))}"
            )
        for header in unlisted_headers:
            allowed = ", ".join(policy.allow_headers) or "none besides the safelisted ones"
            problems.append(
                f"request header {header.strip()} is not in {headers_var} ({allowed}): add it, "
                f"e.g. {headers_var}={','.join((*policy.allow_headers, header.strip()))}"
            )
    if credentials and not policy.allow_credentials:
        problems.append(
            f"the request sends credentials (cookies or HTTP auth) but {credentials_var} is "
            f"false: the browser hides the response; set {credentials_var}=true (not "
            "possible together with the origin '*')"
        )
    return Verdict(origin, not problems, decided_by, problems, notes)


_FIELDS = (
    "cors_allow_origins",
    "cors_allow_methods",
    "cors_allow_headers",
    "cors_allow_credentials",
)
_SAFELISTED = frozenset(name.lower() for name in SAFELISTED_HEADERS)


def _origin_rule(policy: CORSPolicy, origin: str) -> str | None:
    if policy.allows_any_origin:
        return "the entry '*' (any origin)"
    if origin in policy.origins:
        return f"the entry {origin!r}"
    pattern = policy.patterns.match(origin)
    return None if pattern is None else f"the pattern {str(pattern)!r}"


def _origin_problem(policy: CORSPolicy, origin: str, variable: str, settings: Settings) -> str:
    listed = ", ".join(settings.cors_allow_origins) or "nothing"
    fix = f"add it: {variable}={','.join((*settings.cors_allow_origins, origin))}"
    if origin == NULL:
        return (
            "the origin 'null' comes from sandboxed iframes, file: and data: pages, which any "
            "site can create: serve the page from a real origin instead"
        )
    parts = urlsplit(origin)
    for entry in sorted(policy.origins):
        other = urlsplit(entry)
        if other.hostname == parts.hostname and other.scheme != parts.scheme:
            return (
                f"origin {origin!r} differs from the allowed {entry!r} in its scheme: serve the "
                f"page over {other.scheme}, or {fix}"
            )
        if other.hostname == parts.hostname and other.port != parts.port:
            return (
                f"origin {origin!r} differs from the allowed {entry!r} in its port: a port is "
                f"part of the origin; {fix}"
            )
    for pattern in policy.patterns:
        hint = _pattern_hint(pattern, origin, parts.hostname or "", fix)
        if hint:
            return hint
    return f"origin {origin!r} is not in {variable} ({listed}): {fix}"


def _pattern_hint(pattern: OriginPattern, origin: str, host: str, fix: str) -> str:
    if host == pattern.parent:
        return (
            f"pattern {str(pattern)!r} does not cover the bare domain {host!r} ('*' stands "
            f"for one or more labels): {fix}"
        )
    if host.endswith(f".{pattern.parent}"):
        return (
            f"origin {origin!r} is below {pattern.parent!r} but pattern {str(pattern)!r} "
            f"requires the scheme {pattern.scheme!r} and "
            f"{'port ' + str(pattern.port) if pattern.port else 'the default port'}: {fix}"
        )
    return ""


def describe_policy(settings: Settings) -> list[str]:
    """The effective policy, one ``VARIABLE  value`` line per field."""
    rows = {
        "cors_allow_origins": ", ".join(settings.cors_allow_origins) or "(none)",
        "cors_allow_credentials": str(settings.cors_allow_credentials).lower(),
        "cors_allow_methods": ", ".join(settings.cors_allow_methods),
        "cors_allow_headers": ", ".join(settings.cors_allow_headers) or "(safelisted only)",
        "cors_expose_headers": ", ".join(settings.cors_expose_headers) or "(none)",
        "cors_max_age": str(settings.cors_max_age),
        "cors_allow_private_network": str(settings.cors_allow_private_network).lower(),
    }
    width = max(len(Settings.env_name(name)) for name in rows)
    return [f"  {Settings.env_name(name):<{width}}  {value}" for name, value in rows.items()]
