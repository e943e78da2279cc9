"""The origin rules: what is normalized, what is refused and what the message says."""

from __future__ import annotations

from typing import Any

import pytest

from corsguard.origins import ipv6_compressed

from .service import OriginError, OriginPattern, PatternSet, parse_origin


@pytest.mark.parametrize(
    ("given", "normal"),
    [
        ("https://app.example.com", "https://app.example.com"),
        ("https://App.Example.COM", "https://app.example.com"),
        ("HTTPS://app.example.com", "https://app.example.com"),
        ("https://app.example.com/", "https://app.example.com"),
        ("https://app.example.com:443", "https://app.example.com"),
        ("http://localhost:80/", "http://localhost"),
        ("http://localhost:3000", "http://localhost:3000"),
        ("https://app.example.com:8443", "https://app.example.com:8443"),
        ("http://127.0.0.1:5173", "http://127.0.0.1:5173"),
        ("http://[::1]:3000", "http://[::1]:3000"),
        ("http://[::FFFF:102:304]:3000", "http://[::ffff:102:304]:3000"),
        ("  https://app.example.com  ", "https://app.example.com"),
        ("https://*.preview.example.com", "https://*.preview.example.com"),
        ("https://*.Example.co.uk:8443/", "https://*.example.co.uk:8443"),
        ("https://xn--bcher-kva.example", "https://xn--bcher-kva.example"),
        ("*", "*"),
        ("NULL", "null"),
    ],
)
def test_unambiguous_spellings_are_normalized(given: str, normal: str) -> None:
    assert parse_origin(given) == normal


@pytest.mark.parametrize(
    ("given", "reason", "fix"),
    [
        ("http://localhost:3000/app", "has a path", "use 'http://localhost:3000'"),
        ("https://app.example.com?x=1", "query", "use 'https://app.example.com'"),
        ("https://app.example.com#top", "fragment", "use 'https://app.example.com'"),
        ("localhost:3000", "has no scheme", "'http://localhost:3000'"),
        ("app.example.com", "has no scheme", "'https://app.example.com'"),
        ("ftp://app.example.com", "scheme 'ftp'", "http:// or https://"),
        ("https://user:pw@app.example.com", "user info", "use 'https://app.example.com'"),
        ("https://app .example.com", "contains a space", "commas"),
        ("https://app.example.com:0", "bad port '0'", "1 to 65535"),
        ("https://app.example.com:65536", "bad port '65536'", "1 to 65535"),
        ("https://app.example.com:http", "bad port 'http'", "1 to 65535"),
        ("https://", "has no host name", "https://host[:port]"),
        ("https://bücher.example", "not ASCII", "'https://xn--bcher-kva.example'"),
        ("https://app.example.com.", "ending in a dot", "remove the dot"),
        ("https://app_1.example.com", "invalid host name", "letters, digits and hyphens"),
        ("https://-app.example.com", "invalid host name", "letters, digits and hyphens"),
        ("https://*.com", "broader than a registrable domain", "'https://*.example.com'"),
        ("https://*.co.uk", "broader than a registrable domain", "'https://*.example.co.uk'"),
        ("https://*.github.io", "broader than a registrable domain", "name your own domain"),
        ("https://*.localhost", "broader than a registrable domain", "name your own domain"),
        ("https://*.amazonaws.com", "public suffix list has suffixes under", "yours alone"),
        ("https://*.core.windows.net", "public suffix list has suffixes under", "yours alone"),
        ("https://*.railway.app", "public suffix list has suffixes under", "yours alone"),
        ("https://app.*.example.com", "leftmost labels", "'https://*.example.com'"),
        ("https://*app.example.com", "leftmost labels", "'https://*.example.com'"),
        ("https://*.*.example.com", "leftmost labels", "'https://*.example.com'"),
        ("https://*.0.0.1", "not an IP address", "exact origins"),
        ("https://[zz::1]", "bad IPv6 address", "[2001:db8::1]"),
        ("http://[1:2]:3000", "bad IPv6 address", "[2001:db8::1]"),
        ("http://[0:0:0:0:0:0:0:1]:3000", "differently from browsers", "'http://[::1]:3000'"),
        ("https://[::ffff:1.2.3.4]", "differently from browsers", "'https://[::ffff:102:304]'"),
        ("https://[::1.2.3.4]", "differently from browsers", "'https://[::102:304]'"),
        ("https://[1:0:0:2:0:0:0:3]", "differently from browsers", "'https://[1:0:0:2::3]'"),
        ("", "empty origin", "extra comma"),
        ("https://a.example.com,https://b.example.com", "contains a comma", "entry of its own"),
        ("http://127.1", "read as an IPv4 address", "127.0.0.1"),
        ("http://0x7f000001", "read as an IPv4 address", "four decimal numbers"),
        ("https://a.example.com:443:443", "bad port '443:443'", "1 to 65535"),
    ],
)
def test_bad_entries_are_refused_with_reason_and_fix(given: str, reason: str, fix: str) -> None:
    with pytest.raises(OriginError) as error:
        parse_origin(given)
    assert reason in str(error.value)
    assert fix in str(error.value)


@pytest.mark.parametrize(
    ("address", "browser"),
    [
        # What `new URL(`http://[${address}]`).host` gives, in Chromium and Firefox alike.
        ("::ffff:1.2.3.4", "::ffff:102:304"),  # Python 3.13's ipaddress keeps it dotted
        ("::ffff:102:304", "::ffff:102:304"),
        ("::1.2.3.4", "::102:304"),
        ("64:ff9b::192.0.2.33", "64:ff9b::c000:221"),
        ("0:0:0:0:0:0:0:1", "::1"),
        ("::", "::"),
        ("1::", "1::"),
        ("2001:DB8:0:0:0:0:0:0001", "2001:db8::1"),
        ("1:0:0:2:0:0:0:3", "1:0:0:2::3"),  # the longest run of zeros
        ("1:0:0:0:2:0:0:0", "1::2:0:0:0"),  # the first of two as long
        ("1:2:3:4:5:6:7:0", "1:2:3:4:5:6:7:0"),  # a lone zero group is kept
        ("1:0:3:4:5:6:7:8", "1:0:3:4:5:6:7:8"),
        ("zz::1", None),
        ("1:2", None),
        ("fe80::1%eth0", None),
    ],
)
def test_ipv6_addresses_take_the_form_browsers_send(address: str, browser: str | None) -> None:
    assert ipv6_compressed(address) == browser


def test_null_is_refused_only_in_production() -> None:
    assert parse_origin("null", environment="staging") == "null"
    with pytest.raises(OriginError, match="refused in production"):
        parse_origin("null", environment="production")


@pytest.mark.parametrize(
    ("pattern", "origin", "matches"),
    [
        ("https://*.example.com", "https://a.example.com", True),
        ("https://*.example.com", "https://a.b.example.com", True),
        ("https://*.example.com", "https://example.com", False),
        ("https://*.example.com", "http://a.example.com", False),
        ("https://*.example.com", "https://a.example.com:8443", False),
        ("https://*.example.com", "https://aexample.com", False),
        ("https://*.example.com", "https://a.example.com.evil.test", False),
        ("https://*.example.com", "https://a.example.com/path", False),
        ("https://*.example.com", "https://evil.test/?a.example.com", False),
        ("https://*.example.com", "https://user@a.example.com", False),
        ("https://*.example.com", "https://.example.com", False),
        ("https://*.example.com:8443", "https://a.example.com:8443", True),
        ("https://*.example.com:8443", "https://a.example.com", False),
        ("https://*.example.com:8443", "https://a.example.com:08443", False),
        ("https://*.example.com", "https://a.example.com:443", False),
        ("https://*.example.com", "https://A.example.com", False),
        ("https://*.example.com", "https://a_b.example.com", False),
        ("https://*.example.com", "https://-a.example.com", False),
        ("https://*.example.com", "https://a..example.com", False),
        ("https://*.example.com", "https://a.example.com.", False),
        ("https://*.example.com", "https://a.example.com:", False),
        ("https://*.example.com:8443", "https://a.example.com:", False),
    ],
)
def test_patterns_match_whole_labels_only(pattern: str, origin: str, matches: bool) -> None:
    patterns = PatternSet([OriginPattern.parse(parse_origin(pattern))])
    assert (patterns.match(origin) is not None) is matches


def test_the_most_specific_pattern_decides() -> None:
    broad = OriginPattern.parse("https://*.example.com")
    narrow = OriginPattern.parse("https://*.preview.example.com")
    patterns = PatternSet([broad, narrow])
    assert patterns.match("https://pr-1.preview.example.com") == narrow
    assert patterns.match("https://www.example.com") == broad


def test_a_host_of_many_labels_is_walked_only_as_far_as_the_longest_parent() -> None:
    """The walk stops once a candidate parent is longer than any configured one: a host
    of 100 labels costs what a short one does, and one of 100,000 is refused by its length
    before any (bench/ measures it)."""
    patterns = PatternSet([OriginPattern.parse("https://*.example.com")])
    looked_up: list[str] = []

    class Recording(dict[tuple[str, str, str], OriginPattern]):
        def get(self, key: Any, default: Any = None) -> Any:
            looked_up.append(key[1])
            return super().get(key, default)

    patterns._index = Recording(patterns._index)
    assert patterns.match("https://" + "a." * 100 + "example.net") is None
    assert looked_up == ["net", "example.net"]
    looked_up.clear()  # longer than any DNS name: refused before the walk
    assert patterns.match("https://" + "a." * 100_000 + "example.net") is None
    assert looked_up == []


# DNS limits: a host name of at most 253 characters, labels of at most 63.
HOST_253 = "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 53 + ".example"
HOST_254 = "x." + HOST_253[1:]


def test_a_host_of_253_characters_is_accepted() -> None:
    assert len(HOST_253) == 253
    assert parse_origin(f"https://{HOST_253}") == f"https://{HOST_253}"


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        (f"https://{HOST_254}", "has a host name of 254 characters: DNS names have at most 253"),
        (f"https://*.{HOST_254[2:]}", "has a host name of 254 characters"),  # '*.' + 252
        ("https://" + "a" * 64 + ".example.com", "a label of more than 63 characters"),
    ],
)
def test_a_host_beyond_the_dns_limits_is_refused(given: str, reason: str) -> None:
    with pytest.raises(OriginError) as error:
        parse_origin(given)
    assert repr(given) in str(error.value)
    assert reason in str(error.value)
    assert "use a shorter name" in str(error.value)


def test_a_pattern_whose_shortest_host_fits_253_characters_is_accepted() -> None:
    pattern = f"https://*.{HOST_253[2:]}"  # covers 'x.' + parent: 253 characters
    assert parse_origin(pattern) == pattern


def test_a_pattern_does_not_match_a_host_longer_than_253() -> None:
    patterns = PatternSet([OriginPattern.parse("https://*.example.com")])
    fits = "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 49 + ".example.com"
    assert len(fits) == 253
    assert patterns.match(f"https://{fits}") is not None
    assert patterns.match(f"https://x{fits}") is None
    assert patterns.match("https://" + "a" * 64 + ".example.com") is None
