"""Why a browser would be allowed or refused: the logic behind ``cors explain``.

The verdict uses the same :class:`~.middleware.CORSPolicies` as the middleware; this module
only adds the words: which policy and rule decided, and what to change when the answer
is no.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.middleware.cors import SAFELISTED_HEADERS

from .middleware import SAFE_METHODS, CORSPolicies, CORSPolicy
from .origins import WILDCARD, OriginError, is_pattern, parse_origin
from .settings import CORSSettings

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
) -> Verdict:
    """Judge one cross-origin request to ``path`` against the effective policies."""
    policies = CORSPolicies.from_settings(settings)
    name, label = policy_label(policies, path)
    policy = policies.for_path(path)
    origin, notes = origin_of(origin_text)
    method, method_note = sent_method(method)
    notes += method_note

    def variable(field_name: str) -> str:
        return settings.policy_env_name(name, field_name)

    problems: list[str] = []
    decided_by = _origin_rule(policy, origin)
    if decided_by is None:
        problems.append(_origin_problem(policy, origin, variable("allow_origins")))
        decided_by = f"no entry of {variable('allow_origins')}"

    if method not in SIMPLE_METHODS or any(h.strip().lower() not in _SAFELISTED for h in headers):
        notes.append("the browser sends a preflight (OPTIONS) first")
        if not policy.allows_method(method):
            methods = variable("allow_methods")
            fix = (
                f"write {method.upper()!r} in the page ({methods} is upper-cased)"
                if method != method.upper()
                else f"add it, e.g. {methods}={','.join((*policy.allow_methods, method))}"
            )
            problems.append(
                f"method {method} is not in {methods} ({', '.join(policy.allow_methods)}): {fix}"
            )
        for header in (h.strip() for h in headers if not policy.allows_header(h)):
            allowed = ", ".join(policy.allow_headers) or "none besides the safelisted ones"
            names = variable("allow_headers")
            problems.append(
                f"request header {header} is not in {names} ({allowed}): add it, "
                f"e.g. {names}={','.join((*policy.allow_headers, header))}"
            )
    if credentials and not policy.allow_credentials:
        flag = variable("allow_credentials")
        problems.append(
            f"the request sends credentials (cookies or HTTP auth) but {flag} is false: the "
            f"browser hides the response; set {flag}=true (not possible together with the "
            "origin '*')"
        )
    notes += write_protection_notes(settings, policies, path, method, not problems)
    return Verdict(origin, label, not problems, decided_by, problems, notes)


def write_protection_notes(
    settings: CORSSettings, policies: CORSPolicies, path: str, method: str, allowed: bool
) -> list[str]:
    """What cross-origin write protection does with this request, for unsafe methods."""
    if method in SAFE_METHODS:
        return []
    switch = settings.env_name("cors_cross_origin_protection")
    if not policies.protect_writes:
        return [
            f"cross-origin write protection is off ({switch}=false): a {method} that needs no "
            "preflight (a form, sendBeacon, a no-cors fetch) from any site reaches the handler"
        ]
    if not policies.writes_protected(path):
        bypass = settings.env_name("cors_cross_origin_bypass")
        return [f"{path} is under {bypass}: cross-origin {method} requests reach the handler"]
    if allowed:
        return [f"cross-origin write protection lets this {method} through: the policy allows it"]
    return [
        f"cross-origin write protection refuses this {method} with 403 before any handler "
        "runs, also when the browser sends it without a preflight (a form, sendBeacon, a "
        "no-cors fetch)"
    ]


def _origin_rule(policy: CORSPolicy, origin: str) -> str | None:
    if policy.allows_any_origin:
        return "the entry '*' (any origin)"
    if origin in policy.origins:
        return f"the entry {origin!r}"
    pattern = policy.patterns.match(origin)
    return None if pattern is None else f"the pattern {str(pattern)!r}"


def _origin_problem(policy: CORSPolicy, origin: str, variable: str) -> str:
    """The policy's reason for refusing ``origin``, then the fix."""
    fix = f"add it: {variable}={','.join((*policy.entries, origin))}"
    refusal = policy.refusal(origin)
    if refusal.kind == "null":
        return f"{refusal.reason}: serve the page from a real origin instead"
    if refusal.kind == "scheme":
        return f"{refusal.reason}: serve the page over {refusal.detail}, or {fix}"
    if refusal.kind == "port":
        return f"{refusal.reason}: a port is part of the origin; {fix}"
    if refusal.kind == "unlisted":
        listed = ", ".join(policy.entries) or "nothing"
        return f"origin {origin!r} is not in {variable} ({listed}): {fix}"
    return f"{refusal.reason}: {fix}"


def describe_policies(settings: CORSSettings) -> list[str]:
    """The effective policies, one ``VARIABLE  value`` line per field."""
    rows: dict[str, str] = {}
    policies = [(None, settings.default_policy), *settings.cors_path_policies.items()]
    for name, policy in policies:
        for field_name, value in (
            ("prefixes", _listed(policy.prefixes)),
            ("allow_origins", _listed(policy.allow_origins)),
            ("allow_credentials", _flag(policy.allow_credentials)),
            ("allow_methods", ", ".join(policy.allow_methods)),
            ("allow_headers", _listed(policy.allow_headers)),
            ("expose_headers", _listed(policy.expose_headers)),
            ("max_age", str(policy.max_age)),
            ("allow_private_network", _flag(policy.allow_private_network)),
        ):
            if name is not None or field_name != "prefixes":
                rows[settings.policy_env_name(name, field_name)] = value
    protection = settings.env_name("cors_cross_origin_protection")
    rows[protection] = _flag(settings.cors_cross_origin_protection)
    rows[settings.env_name("cors_cross_origin_bypass")] = _listed(settings.cors_cross_origin_bypass)
    width = max(len(variable) for variable in rows)
    return [f"  {variable:<{width}}  {value}" for variable, value in rows.items()]


def _listed(values: Sequence[str]) -> str:
    return ", ".join(values) or "(none)"


def _flag(value: bool) -> str:
    return "true" if value else "false"
