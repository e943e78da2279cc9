"""The generated service's CORS policy, as real headless browsers enforce it.

A service is rendered from answers naming exact origins and a subdomain pattern, then
run under uvicorn (once over http, once over TLS). Pages served from allowed and refused
origins call it, and each test asserts what the page's own script observed: the status
and body it could read, the headers it could see, or the ``TypeError`` of a fetch the
browser blocked; and what the browser's console said. The service's request log
(``/__seen``) tells a request the browser blocked after it reached the server from one
it never sent.

Every test that takes ``visit`` runs once per engine: Chromium (marker ``browser``) and
Firefox ESR (markers ``browser`` and ``firefox``). Where the engines differ, ``EXPECTED``
and ``CONSOLE`` say what each does, and why. A new case for both engines is one more
test function taking ``visit``; parametrize it over its own inputs only.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .browser_support import (
    OTHER_SITE,
    TEST_DOMAIN,
    Engine,
    Tab,
    chromium_path,
    free_port,
    make_tls,
    page_server,
    requests_seen,
    running_service,
    write_e2e_app,
)
from .conftest import ROOT, render, run
from .firefox_support import firefox_path

PACKAGE = "browser_check"
ALLOWED = f"app.{TEST_DOMAIN}"  # exact origins http:// and https://app.example.test:<port>
PATTERN_MEMBER = f"pr-7.preview.{TEST_DOMAIN}"  # matches http://*.preview.example.test:<port>
PATTERN_PARENT = f"preview.{TEST_DOMAIN}"  # the bare parent: never covered by the pattern
OTHER = f"other.{TEST_DOMAIN}"  # a host name the policy does not name
CROSS_SITE = f"app.{OTHER_SITE}"  # allowed over https, but another site than the API's
JSON = {"Content-Type": "application/json"}

# What a page's script catches from a fetch the browser blocked: the same TypeError,
# worded by each engine.
BLOCKED = {
    "chromium": {"error": "TypeError", "message": "Failed to fetch"},
    "firefox": {"error": "TypeError", "message": "NetworkError when attempting to fetch resource."},
}

# Everything the console shows for one page and one request, exactly as these tests
# capture it ({url}: the request's URL, {origin}: the page's origin), in order;
# docs/troubleshooting.md quotes each line.
CHROMIUM_FAILED = "Failed to load resource: net::ERR_FAILED"
FIREFOX_BLOCKED = (
    "Cross-Origin Request Blocked: The Same Origin Policy disallows reading the remote "
    "resource at {url}. "
)
CONSOLE: dict[str, dict[str, list[str]]] = {
    "chromium": {
        "origin refused": [
            "Access to fetch at '{url}' from origin '{origin}' has been blocked by CORS "
            "policy: No 'Access-Control-Allow-Origin' header is present on the requested "
            "resource.",
            CHROMIUM_FAILED,
        ],
        "preflight refused": [
            "Access to fetch at '{url}' from origin '{origin}' has been blocked by CORS "
            "policy: Response to preflight request doesn't pass access control check: It "
            "does not have HTTP ok status.",
            CHROMIUM_FAILED,
        ],
        "readable 500": [
            "Failed to load resource: the server responded with a status of 500 (Internal "
            "Server Error)"
        ],
        "wildcard with credentials": [
            "Access to fetch at '{url}' from origin '{origin}' has been blocked by CORS "
            "policy: The value of the 'Access-Control-Allow-Origin' header in the response "
            "must not be the wildcard '*' when the request's credentials mode is 'include'.",
            CHROMIUM_FAILED,
        ],
        "credentials not allowed": [
            "Access to fetch at '{url}' from origin '{origin}' has been blocked by CORS "
            "policy: The value of the 'Access-Control-Allow-Credentials' header in the "
            "response is '' which must be 'true' when the request's credentials mode is "
            "'include'.",
            CHROMIUM_FAILED,
        ],
        "no answer": ["Failed to load resource: net::ERR_CONNECTION_REFUSED"],
        "websocket refused": [
            "WebSocket connection to '{url}' failed: Error during WebSocket handshake: "
            "Unexpected response code: 403"
        ],
    },
    "firefox": {
        # Firefox names the missing header with typographic quotes, and adds the status.
        "origin refused": [
            FIREFOX_BLOCKED + "(Reason: CORS header \u2018Access-Control-Allow-Origin\u2019 "
            "missing). Status code: 200."
        ],
        # A refused preflight is reported twice: the preflight, then the request itself.
        "preflight refused": [
            FIREFOX_BLOCKED + "(Reason: CORS preflight response did not succeed). Status "
            "code: 400.",
            FIREFOX_BLOCKED + "(Reason: CORS request did not succeed). Status code: (null).",
        ],
        # Firefox logs nothing for an error response the page may read.
        "readable 500": [],
        # These two carry no status code; the first quotes the URL.
        "wildcard with credentials": [
            "Cross-Origin Request Blocked: The Same Origin Policy disallows reading the "
            "remote resource at \u2018{url}\u2019. (Reason: Credential is not supported if "
            "the CORS header \u2018Access-Control-Allow-Origin\u2019 is \u2018*\u2019)."
        ],
        "credentials not allowed": [
            FIREFOX_BLOCKED + "(Reason: expected \u2018true\u2019 in CORS header "
            "\u2018Access-Control-Allow-Credentials\u2019)."
        ],
        "no answer": [
            FIREFOX_BLOCKED + "(Reason: CORS request did not succeed). Status code: (null)."
        ],
        # No status code: the page cannot tell a refused handshake from a dead server.
        "websocket refused": ["Firefox can\u2019t establish a connection to the server at {url}."],
    },
}

# Which of the API's cookies (tests/browser_support.py, COOKIES) travel with a
# credentialed fetch, measured in each engine. Keyed by where the page is and how the
# cookies were set: by the page's own credentialed fetch, or by a visit to the API
# itself (a login page on the API's host).
ALL_SECURE = {"lax", "default", "none", "partitioned"}
EXPECTED_COOKIES: dict[str, dict[tuple[str, str], set[str]]] = {
    "chromium": {
        # Same site (app. and api.example.test): every cookie the browser stored travels.
        # SameSite=None without Secure is refused when set, in both engines.
        ("same-site", "by-fetch"): ALL_SECURE,
        ("same-site", "at-api"): ALL_SECURE,
        # Another site: only a Partitioned cookie, and only one set while the page's site
        # was the top-level site. Chromium, as launched here, blocks unpartitioned
        # third-party cookies; without SameSite it defaults to Lax.
        ("cross-site", "by-fetch"): {"partitioned"},
        ("cross-site", "at-api"): set(),
    },
    "firefox": {
        ("same-site", "by-fetch"): ALL_SECURE,
        ("same-site", "at-api"): ALL_SECURE,
        # Total Cookie Protection: a third-party cookie is kept in a jar of the top-level
        # site, so what the page's own fetch set comes back to that page, Partitioned or
        # not, and a cookie without SameSite counts as None (Firefox has no Lax default).
        # A cookie set at the API's own site lives in another jar and never travels.
        ("cross-site", "by-fetch"): {"default", "none", "partitioned"},
        ("cross-site", "at-api"): set(),
    },
}


@dataclass(frozen=True)
class Stage:
    """The running services and the origins their pages are served from."""

    api: str  # as pages call it: http://api.example.test:<port>
    tls_api: str  # https://api.example.test:<port>, the same app over TLS
    direct: str  # as the test reads the request log: http://127.0.0.1:<port>
    page_port: int
    tls_page_port: int

    def origin(self, host: str, secure: bool = False) -> str:
        if secure:
            return f"https://{host}:{self.tls_page_port}"
        return f"http://{host}:{self.page_port}"

    def seen(self) -> dict[str, int]:
        return requests_seen(self.direct)


@pytest.fixture(scope="session")
def stage(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    root = tmp_path_factory.mktemp("browser")
    tls = make_tls(root)
    with page_server() as page_port, page_server(tls.server) as tls_page_port:
        pages = f"{TEST_DOMAIN}:{page_port}"
        origins = [
            f"http://app.{pages}",
            f"http://*.preview.{pages}",
            f"https://{ALLOWED}:{tls_page_port}",
            f"https://{CROSS_SITE}:{tls_page_port}",
        ]
        answers = {
            "project_name": "Browser Check",
            "package_name": PACKAGE,
            "environments": ["development"],
            "cors_origins": {"development": origins},
            "cors_allow_credentials": True,
            "cors_allow_methods": ["GET", "POST", "PUT"],
            "cors_allow_headers": ["X-Custom"],
            "cors_expose_headers": ["X-Request-ID"],
            "cors_max_age": 600,
            "cors_public_paths": ["/api/public"],
            "cors_public_origins": "*",
        }
        # A second path policy, from the environment: the allowed page, no credentials.
        partner = {
            "CORS_PATH_POLICIES__PARTNER__PREFIXES": "/api/partner",
            "CORS_PATH_POLICIES__PARTNER__ALLOW_ORIGINS": f"http://app.{pages}",
            "CORS_PATH_POLICIES__PARTNER__ALLOW_CREDENTIALS": "false",
        }
        project = render(template_repo, root / "service", answers)
        run(project, "uv", "sync", "--quiet")
        write_e2e_app(project, PACKAGE)
        api_port, tls_api_port = free_port(), free_port()
        with (
            running_service(project, api_port, root / "service.log", None, partner) as direct,
            running_service(project, tls_api_port, root / "tls-service.log", tls, partner),
        ):
            yield Stage(
                f"http://api.{TEST_DOMAIN}:{api_port}",
                f"https://api.{TEST_DOMAIN}:{tls_api_port}",
                direct,
                page_port,
                tls_page_port,
            )


class Visit:
    """A page loaded from one origin, calling the service from its own script."""

    def __init__(self, tab: Tab, engine: str, api: str, origin: str) -> None:
        self.tab = tab
        self.engine = engine
        self.api = api
        self.origin = origin

    @property
    def console(self) -> list[str]:
        return self.tab.console

    @property
    def blocked(self) -> dict[str, str]:
        """What the page catches from a fetch this engine blocked."""
        return BLOCKED[self.engine]

    def fetch(
        self, path: str, init: dict[str, Any] | None = None, read: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """``fetch(api + path, init)`` in the page: status, body and ``read`` headers, or
        the error the page caught."""
        result: dict[str, Any] = self.tab.call("call", self.api + path, init or {}, list(read))
        return result

    def socket(self, path: str) -> dict[str, Any]:
        """Open a WebSocket from the page, send "ping"; the events the page saw."""
        url = self.api.replace("http://", "ws://", 1) + path
        result: dict[str, Any] = self.tab.call("openSocket", url)
        return result

    def expect_console(self, kind: str, url: str = "") -> None:
        """The console shows exactly this engine's messages of ``kind`` about ``url``.

        Engines report some messages a moment after the page saw the failure: wait for
        them (2 s at most), and a moment longer where nothing is expected."""
        expected = [line.format(url=url, origin=self.origin) for line in CONSOLE[self.engine][kind]]
        deadline = time.monotonic() + (2 if expected else 0.3)
        while self.console != expected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.console == expected


@pytest.fixture
def visit(engine: Engine, stage: Stage) -> Iterator[Callable[..., Visit]]:
    """Open a page on ``http://<host>:<page port>`` (``secure``: https and the service
    over TLS), each in a fresh private context: no cookies, no cached preflights from
    other tests."""

    def open_page(host: str, secure: bool = False, first: str | None = None) -> Visit:
        tab = engine.new_tab()
        if first is not None:
            tab.goto(first)  # a top-level visit before the page, in the same context
        origin = stage.origin(host, secure)
        tab.goto(origin + "/")
        assert tab.call("pageOrigin") == origin
        return Visit(tab, engine.name, stage.tls_api if secure else stage.api, origin)

    yield open_page
    engine.close_tabs()


def body(result: dict[str, Any]) -> Any:
    assert "status" in result, result
    return json.loads(result["body"])


def test_simple_get_from_the_allowed_origin_is_readable(visit: Callable[..., Visit]) -> None:
    result = visit(ALLOWED).fetch("/api/data/simple")
    assert result.get("status") == 200, result
    assert body(result) == {"name": "simple"}


def test_pattern_member_is_allowed(visit: Callable[..., Visit]) -> None:
    result = visit(PATTERN_MEMBER).fetch("/api/data/pattern")
    assert result.get("status") == 200, result
    assert body(result) == {"name": "pattern"}


@pytest.mark.parametrize("host", [PATTERN_PARENT, OTHER])
def test_refused_origin_cannot_read_the_response(
    visit: Callable[..., Visit], stage: Stage, host: str
) -> None:
    page = visit(host)
    path = f"/api/data/refused-{host}-{page.engine}"
    assert page.fetch(path) == page.blocked
    # The request reached the service; the browser withheld the answer.
    assert stage.seen().get(f"GET {path}") == 1
    page.expect_console("origin refused", stage.api + path)


def test_json_post_is_preflighted_then_allowed(visit: Callable[..., Visit], stage: Stage) -> None:
    page = visit(ALLOWED)
    path = f"/api/echo/{page.engine}"
    result = page.fetch(path, {"method": "POST", "headers": JSON, "body": json.dumps({"n": 1})})
    assert result.get("status") == 200, result
    assert body(result) == {"received": {"n": 1}}
    seen = stage.seen()
    assert seen.get(f"OPTIONS {path}") == 1
    assert seen.get(f"POST {path}") == 1


def test_method_outside_the_policy_is_never_sent(visit: Callable[..., Visit], stage: Stage) -> None:
    page = visit(ALLOWED)
    path = f"/api/items/doomed-{page.engine}"
    assert page.fetch(path, {"method": "DELETE"}) == page.blocked
    seen = stage.seen()
    assert seen.get(f"OPTIONS {path}") == 1
    assert f"DELETE {path}" not in seen
    page.expect_console("preflight refused", stage.api + path)


def test_allowed_custom_header_reaches_the_service(visit: Callable[..., Visit]) -> None:
    result = visit(ALLOWED).fetch("/api/custom", {"headers": {"X-Custom": "v1"}})
    assert result.get("status") == 200, result
    assert body(result) == {"x_custom": "v1"}


def test_header_outside_the_policy_is_never_sent(visit: Callable[..., Visit], stage: Stage) -> None:
    page = visit(ALLOWED)
    path = f"/api/data/unlisted-header-{page.engine}"
    assert page.fetch(path, {"headers": {"X-Unlisted": "v1"}}) == page.blocked
    seen = stage.seen()
    assert seen.get(f"OPTIONS {path}") == 1
    assert f"GET {path}" not in seen
    page.expect_console("preflight refused", stage.api + path)


def test_credentialed_request_carries_the_cookie_the_api_set(
    visit: Callable[..., Visit],
) -> None:
    page = visit(ALLOWED)
    login = page.fetch("/api/login", {"credentials": "include"})
    assert login.get("status") == 200, login
    assert body(login) == {"logged_in": True}
    assert body(page.fetch("/api/whoami", {"credentials": "include"})) == {"session": "s3cret"}
    # Without credentials: "include", a cross-origin fetch leaves the cookie out.
    assert body(page.fetch("/api/whoami")) == {"session": None}


@pytest.mark.parametrize("site", ["same-site", "cross-site"])
@pytest.mark.parametrize("set_by", ["by-fetch", "at-api"])
def test_which_cookies_travel_with_a_credentialed_request(
    visit: Callable[..., Visit], stage: Stage, site: str, set_by: str
) -> None:
    """Over https, from a page on the API's site (app.example.test) or on another site
    (app.frontend.test): the cookies a credentialed fetch carries, per engine."""
    at_api = stage.tls_api + "/api/cookies/set"
    page = visit(
        ALLOWED if site == "same-site" else CROSS_SITE,
        secure=True,
        first=(at_api if set_by == "at-api" else None),
    )
    if set_by == "by-fetch":
        result = page.fetch("/api/cookies/set", {"credentials": "include"})
        assert result.get("status") == 200, result
    sent = body(page.fetch("/api/cookies", {"credentials": "include"}))
    assert set(sent) == EXPECTED_COOKIES[page.engine][site, set_by], sent
    # Without credentials: "include", none is sent, whatever the browser stored.
    assert body(page.fetch("/api/cookies")) == []


@pytest.mark.parametrize(
    ("area", "kind"),
    [("public", "wildcard with credentials"), ("partner", "credentials not allowed")],
)
def test_credentials_where_the_path_policy_allows_none(
    visit: Callable[..., Visit], stage: Stage, area: str, kind: str
) -> None:
    """A path policy without credentials: readable without them, withheld with them."""
    page = visit(ALLOWED)
    path = f"/api/{area}/{page.engine}"
    assert body(page.fetch(path)) == {"name": page.engine}
    assert page.console == []
    assert page.fetch(path, {"credentials": "include"}) == page.blocked
    page.expect_console(kind, stage.api + path)


def test_no_answer_at_all_is_not_a_cors_decision(visit: Callable[..., Visit]) -> None:
    """Nothing listens: the page sees the same TypeError as for a refusal."""
    page = visit(ALLOWED)
    page.api = f"http://api.{TEST_DOMAIN}:{free_port()}"
    assert page.fetch("/health") == page.blocked
    page.expect_console("no answer", page.api + "/health")


def test_only_exposed_headers_are_readable(visit: Callable[..., Visit], stage: Stage) -> None:
    result = visit(ALLOWED).fetch("/api/headers", read=("X-Request-ID", "X-Hidden"))
    assert result.get("status") == 200, result
    assert result["headers"] == {"X-Request-ID": "req-42", "X-Hidden": None}
    # The service did send the hidden header: the browser is what withholds it.
    with urllib.request.urlopen(f"{stage.direct}/api/headers", timeout=5) as response:
        assert response.headers["X-Hidden"] == "hidden"


def test_unhandled_error_reads_as_a_500_not_a_cors_failure(
    visit: Callable[..., Visit],
) -> None:
    page = visit(ALLOWED)
    result = page.fetch("/api/boom")
    assert result.get("status") == 500, result
    assert body(result) == {"detail": "Internal Server Error"}
    page.expect_console("readable 500")


def test_websocket_from_the_allowed_origin_connects(visit: Callable[..., Visit]) -> None:
    result = visit(ALLOWED).socket("/ws")
    assert result == {"events": ["open", "message:echo:ping", "close:1000"]}


@pytest.mark.parametrize("host", [PATTERN_PARENT, OTHER])
def test_websocket_from_a_refused_origin_fails(
    visit: Callable[..., Visit], stage: Stage, host: str
) -> None:
    page = visit(host)
    assert page.socket("/ws") == {"events": ["error", "close:1006"]}
    page.expect_console("websocket refused", stage.api.replace("http://", "ws://", 1) + "/ws")


def test_preflight_is_cached_for_max_age(visit: Callable[..., Visit], stage: Stage) -> None:
    """max-age 600 is under both engines' caps (Chromium 7200 s, Firefox 86400 s)."""
    page = visit(ALLOWED)
    path = f"/api/items/cached-{page.engine}"
    init = {
        "method": "PUT",
        "headers": {**JSON, "X-Custom": "v1"},
        "body": json.dumps({"n": 2}),
    }
    results = [page.fetch(path, init) for _ in range(3)]
    assert [result.get("status") for result in results] == [200, 200, 200], results
    seen = stage.seen()
    assert seen.get(f"PUT {path}") == 3
    assert seen.get(f"OPTIONS {path}") == 1


def test_console_messages_are_quoted_in_troubleshooting() -> None:
    """docs/troubleshooting.md quotes every message of CONSOLE, with any URL and origin."""
    # Lines wrapped in the page's prose are joined before searching.
    page = " ".join((ROOT / "docs" / "troubleshooting.md").read_text(encoding="utf-8").split())
    for engine, kinds in CONSOLE.items():
        for kind, messages in kinds.items():
            for message in messages:
                parts = re.split(r"\{url\}|\{origin\}", message)
                pattern = r"\S+?".join(re.escape(part) for part in parts)
                assert re.search(pattern, page), f"{engine}, {kind}: {message}"


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize(
    "browser", ["chromium", pytest.param("firefox", marks=pytest.mark.firefox)]
)
def test_the_engine_browser_suite_passes(browser: str) -> None:
    """The engine's opt-in browser suite (engine/tests/test_browser.py), run as its
    docs say: every origin of every profile of its sample service, with and without
    credentials and wildcards, decided by the browser itself."""
    chromium_path() if browser == "chromium" else firefox_path()
    output = run(
        ROOT / "engine",
        "uv",
        "run",
        "--group",
        "browser",
        "pytest",
        "-m",
        "browser",
        "-q",
        "-p",
        "no:cacheprovider",
        env={"BROWSER_ENGINE": browser},
    )
    summary = output.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ passed, \d+ deselected in .*", summary), output[-4000:]
