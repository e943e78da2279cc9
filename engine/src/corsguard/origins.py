"""Origin rules: what an entry of CORS_ALLOW_ORIGINS may be, and its normal form.

An entry is an exact origin (``https://app.example.com``), a subdomain pattern
(``https://*.preview.example.com``), ``*`` (any origin) or ``null``. Spellings that
browsers would send differently are normalized (case, a trailing ``/``, the scheme's
default port); anything else is refused with an :class:`OriginError` that names the
value, the rule and the fix. The questionnaire that generated this service applied the
same rules to its answers.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import publicsuffixlist
from publicsuffixlist import PublicSuffixList

WILDCARD = "*"
NULL = "null"
DEFAULT_PORTS = {"http": 80, "https": 443}
# DNS limits (RFC 1035, 2.3.4): a host name of at most 253 characters (255 octets on the
# wire), each label of at most 63. Configured entries are held to them here, and the
# middleware refuses a requested host beyond them before a pattern can allow it.
MAX_HOST_LENGTH = 253
MAX_LABEL_LENGTH = 63

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST_NAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
_SUBDOMAINS = re.compile(rf"(?:{_LABEL}\.)+")
_IPV6 = re.compile(r"^\[[0-9a-f:.]+\]$")
_IPV4 = re.compile(r"^[0-9.]+$")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4_CANONICAL = re.compile("^" + r"\.".join([_OCTET] * 4) + "$")
_PORT = re.compile(r"^[1-9][0-9]{0,4}$")
_LOCAL = re.compile(r"^(localhost|127\.0\.0\.1)([:/]|$)")
_LONG_LABEL = re.compile(rf"[^.]{{{MAX_LABEL_LENGTH + 1}}}")


class OriginError(ValueError):
    """An entry that is not a usable origin; the message says why and how to fix it."""


@dataclass(frozen=True)
class OriginPattern:
    """``scheme://*.parent[:port]``: any host one or more labels below ``parent``."""

    scheme: str
    parent: str
    port: int | None

    @classmethod
    def parse(cls, entry: str) -> OriginPattern:
        scheme, rest = entry.split("://", 1)
        host, _, port = rest.partition(":")
        return cls(scheme=scheme, parent=host.removeprefix("*."), port=int(port) if port else None)

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}://*.{self.parent}{port}"


class PatternSet:
    """Subdomain patterns, indexed by scheme, parent domain and port.

    A lookup walks the labels of the requested host, so its cost depends on the length
    of the origin, never on the number of patterns configured.
    """

    def __init__(self, patterns: Iterable[OriginPattern]) -> None:
        self._index = {
            (p.scheme, p.parent, "" if p.port is None else str(p.port)): p for p in patterns
        }
        # Only parents this long or shorter can match: the walk never looks further left.
        self._longest = max((len(parent) for _, parent, _ in self._index), default=0)

    def __bool__(self) -> bool:
        return bool(self._index)

    def __iter__(self) -> Iterator[OriginPattern]:
        return iter(self._index.values())

    def match(self, origin: str) -> OriginPattern | None:
        """The pattern that allows ``origin`` exactly as a browser sends it, if any.

        The walk goes right to left over the host's dots and stops once the candidate
        parent is longer than any configured one, so its work is linear in the length of
        the host whatever the number of dots in it. The most specific parent wins.
        """
        scheme, separator, rest = origin.partition("://")
        if not separator or not self._index:
            return None
        host, colon, port = rest.partition(":")
        if colon and not port:
            return None  # 'https://a.example.com:' is not how a browser sends an origin
        if len(host) > MAX_HOST_LENGTH:
            return None  # no DNS name is this long (labels over 63: _SUBDOMAINS below)
        found, found_at = None, -1
        dot = host.rfind(".")
        while dot != -1 and len(host) - dot - 1 <= self._longest:
            pattern = self._index.get((scheme, host[dot + 1 :], port))
            if pattern is not None:
                found, found_at = pattern, dot
            dot = host.rfind(".", 0, dot)
        # Everything left of the parent must be whole, valid DNS labels (checked once).
        if found is not None and _SUBDOMAINS.fullmatch(host, 0, found_at + 1):
            return found
        return None


def is_pattern(entry: str) -> bool:
    """Whether a normalized entry is a subdomain pattern."""
    return "://*." in entry


def normalize_origin(value: str) -> str:
    """Lower-case scheme and host, drop a lone trailing ``/`` and the default port.

    Only spellings that mean the same origin are changed; the result is then checked by
    :func:`parse_origin`.
    """
    text = value.strip()
    if text.lower() in (WILDCARD, NULL):
        return text.lower()
    match = _SCHEME.match(text)
    if match is None:
        return text
    scheme = match.group(1).lower()
    after = text[match.end() :]
    authority_end = next((i for i, char in enumerate(after) if char in "/?#"), len(after))
    authority, rest = after[:authority_end].lower(), after[authority_end:]
    default_port = DEFAULT_PORTS.get(scheme)
    one_port = authority.rsplit("]", 1)[-1].count(":") == 1  # not 'host:443:443'
    if default_port is not None and one_port and authority.endswith(f":{default_port}"):
        authority = authority[: -len(f":{default_port}")]
    return f"{scheme}://{authority}{'' if rest == '/' else rest}"


# Profiles under these names are production: 'null' is refused there.
PRODUCTION_ENVIRONMENTS = frozenset({"production", "prod"})


def is_production(environment: str | None) -> bool:
    return environment is not None and environment.lower() in PRODUCTION_ENVIRONMENTS


def parse_origin(value: str, *, environment: str | None = None) -> str:
    """Return the normal form of one entry, or raise :class:`OriginError`.

    ``environment`` is the profile being loaded: ``null`` is refused in production.
    """
    raw = value.strip()
    entry = normalize_origin(raw)
    if raw == "":
        raise OriginError("an empty origin: remove the extra comma")
    if "," in raw:
        raise OriginError(f"{raw!r} contains a comma: list each origin as an entry of its own")
    if any(char.isspace() for char in raw):
        raise OriginError(
            f"{raw!r} contains a space: separate origins with commas and write each one "
            "as scheme://host[:port]"
        )
    if entry == WILDCARD:
        return entry
    if entry == NULL:
        if is_production(environment):
            raise OriginError(
                "'null' is refused in production: sandboxed iframes, file: and data: pages on "
                "any site send it, so allowing it allows everyone; list the real origins instead"
            )
        return entry
    if "://" not in entry:
        scheme = "http" if _LOCAL.match(raw) else "https"
        raise OriginError(f"{raw!r} has no scheme: write '{scheme}://{raw}'")
    _check_structure(raw, entry)
    return entry


def _check_structure(raw: str, entry: str) -> None:
    scheme, after = entry.split("://", 1)
    authority_end = next((i for i, char in enumerate(after) if char in "/?#"), len(after))
    authority, rest = after[:authority_end], after[authority_end:]
    host_port = authority.rsplit("@", 1)[-1]
    if host_port.startswith("["):
        host = host_port[: host_port.find("]") + 1] if "]" in host_port else host_port
    else:
        host = host_port.split(":")[0]
    port_part = host_port[len(host) :]
    port = port_part[1:]

    if scheme not in DEFAULT_PORTS:
        raise OriginError(
            f"{raw!r} uses the scheme '{scheme}': a CORS origin starts with http:// or https://"
        )
    if rest:
        raise OriginError(
            f"{raw!r} has a path, query or fragment ('{rest}'): an origin is "
            f"scheme://host[:port] only; use '{scheme}://{authority}'"
        )
    if "@" in authority:
        userinfo = authority.rsplit("@", 1)[0]
        raise OriginError(
            f"{raw!r} contains user info ('{userinfo}@'): browsers never send it in an "
            f"origin; use '{scheme}://{host_port}'"
        )
    if port_part and (not port_part.startswith(":") or not _PORT.match(port) or int(port) > 65535):
        shown = port if port_part.startswith(":") else port_part
        raise OriginError(
            f"{raw!r} has a bad port '{shown}': use a number from 1 to 65535, or leave it "
            "out for the default (80 for http, 443 for https)"
        )
    if host == "":
        raise OriginError(f"{raw!r} has no host name: write it as {scheme}://host[:port]")
    if not host.isascii():
        raise OriginError(
            f"{raw!r} has a host name that is not ASCII: browsers send international names "
            f"in punycode (xn--...); write that form{_punycode_hint(scheme, host, port_part)}"
        )
    if host.startswith("["):
        address = host[1:-1]
        canonical = ipv6_compressed(address) if _IPV6.match(host) else None
        if canonical is None:
            raise OriginError(f"{raw!r} has a bad IPv6 address '{host}': write it as [2001:db8::1]")
        if canonical != address:
            raise OriginError(
                f"{raw!r} spells the IPv6 address differently from browsers, which send "
                f"'[{canonical}]': use '{scheme}://[{canonical}]{port_part}'"
            )
        return
    if host.endswith("."):
        raise OriginError(
            f"{raw!r} has a host name ending in a dot: remove the dot (browsers treat "
            f"'{host}' and '{host[:-1]}' as different origins)"
        )
    if WILDCARD in host and (not host.startswith("*.") or WILDCARD in host[2:]):
        raise OriginError(
            f"{raw!r}: '*' may only stand for the leftmost labels of a host name, as in "
            f"'{scheme}://*.example.com'"
        )
    if _LONG_LABEL.search(host):
        raise OriginError(
            f"{raw!r} has a label of more than {MAX_LABEL_LENGTH} characters in its host "
            f"name: DNS allows at most {MAX_LABEL_LENGTH} between dots; use a shorter name"
        )
    if not _HOST_NAME.match(host.removeprefix("*.")):
        raise OriginError(
            f"{raw!r} has an invalid host name '{host}': use letters, digits and hyphens "
            "between dots"
        )
    if len(host) > MAX_HOST_LENGTH:
        raise OriginError(
            f"{raw!r} has a host name of {len(host)} characters: DNS names have at most "
            f"{MAX_HOST_LENGTH}, so no browser sends it (and the service refuses such a host "
            "under a pattern); use a shorter name"
        )
    numeric = _NUMERIC_LABEL.match(host.rsplit(".", 1)[-1])
    if numeric and not host.startswith("*.") and not _IPV4_CANONICAL.match(host):
        # Browsers read such a host as an IPv4 address and send it dotted, in decimal.
        raise OriginError(
            f"{raw!r} has a host that browsers read as an IPv4 address: write the address "
            "as four decimal numbers from 0 to 255, as in 127.0.0.1"
        )
    if host.startswith("*."):
        parent = host[2:]
        if _IPV4.match(parent):
            raise OriginError(
                f"{raw!r}: a pattern needs a domain name, not an IP address; list the exact "
                "origins instead"
            )
        if is_public_suffix(parent):
            raise OriginError(
                f"{raw!r} is broader than a registrable domain: '*.{parent}' matches sites "
                f"that other people own; name your own domain, as in "
                f"'{scheme}://*.example.{parent}'"
            )
        if has_public_suffix_below(parent):
            raise OriginError(
                f"{raw!r} reaches sites that other people own: the public suffix list has "
                f"suffixes under '{parent}' (hosting where anyone gets a subdomain); list "
                "your exact origins, or a pattern under a domain that is yours alone"
            )


def ipv6_compressed(address: str) -> str | None:
    """The form browsers send an IPv6 address in, None if it is not one.

    That is the WHATWG URL serializer's: eight groups in lower-case hex without leading
    zeros, the first longest run of two or more zero groups written '::' (RFC 5952).
    An embedded IPv4 address is written in hex too (``new URL('http://[::ffff:1.2.3.4]')``
    has the host ``[::ffff:102:304]``). ``ipaddress`` is only trusted to parse: from
    Python 3.13 on its ``compressed`` keeps the dotted form for IPv4-mapped addresses.
    """
    try:
        parsed = ipaddress.IPv6Address(address)
    except ValueError:
        return None
    if parsed.scope_id is not None:
        return None  # a zone ('%eth0'): URLs have none
    value = int(parsed)
    groups = [(value >> shift) & 0xFFFF for shift in range(112, -1, -16)]
    best, best_length, start = -1, 1, -1  # a lone zero group is not compressed
    for index, group in enumerate([*groups, 1]):  # the sentinel ends a trailing run
        if group == 0:
            start = index if start == -1 else start
            continue
        if start != -1 and index - start > best_length:
            best, best_length = start, index - start
        start = -1
    hexes = [f"{group:x}" for group in groups]
    if best == -1:
        return ":".join(hexes)
    return ":".join(hexes[:best]) + "::" + ":".join(hexes[best + best_length :])


def _punycode_hint(scheme: str, host: str, port_part: str) -> str:
    try:
        encoded = host.encode("idna").decode("ascii")
    except UnicodeError:
        return ""
    return f": '{scheme}://{encoded}{port_part}'"


@cache
def _public_suffixes() -> PublicSuffixList:
    # Loaded on first use: only services with patterns pay for reading the list.
    return PublicSuffixList()


def is_public_suffix(domain: str) -> bool:
    """Whether ``domain`` is a public suffix (``com``, ``co.uk``, ``github.io``, ...)."""
    return "." not in domain or _public_suffixes().is_public(domain)


@cache
def _parents_of_public_suffixes() -> frozenset[str]:
    """Every domain with a public-suffix rule below it (``amazonaws.com`` has
    ``s3.amazonaws.com``), read once from the list that ``publicsuffixlist`` ships."""
    source = Path(publicsuffixlist.__file__).with_name("public_suffix_list.dat")
    parents = set()
    for line in source.read_text(encoding="utf-8").splitlines():
        rule = line.strip().lower()
        if not rule or rule.startswith(("//", "!")):
            continue
        labels = [_ascii_label(label) for label in rule.removeprefix("*.").split(".")]
        if rule.startswith("*."):
            parents.add(".".join(labels))  # every child of it is public
        parents.update(".".join(labels[i:]) for i in range(1, len(labels)))
    return frozenset(parents)


def _ascii_label(label: str) -> str:
    """A label as browsers send it: punycode when it is not ASCII."""
    return label if label.isascii() else "xn--" + label.encode("punycode").decode("ascii")


def has_public_suffix_below(domain: str) -> bool:
    """Whether a public-suffix rule lies below ``domain``: a pattern on it would allow
    hosts that the list's owners hand out to anyone (``*.amazonaws.com``)."""
    return domain in _parents_of_public_suffixes()
