"""The generated service's CORS policy, as a real headless Chromium enforces it.

A service is rendered from answers naming an exact origin and a subdomain pattern, then
run under uvicorn. Pages served from allowed and refused origins call it, and each test
asserts what the page's own script observed: the status and body it could read, the
headers it could see, or the ``TypeError`` of a fetch the browser blocked. The service's
request log (``/__seen``) tells a request the browser blocked after it reached the
server from one it never sent.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from .browser_support import (
    CHROMIUM_ARGS,
    TEST_DOMAIN,
    chromium_path,
    free_port,
    page_server,
    requests_seen,
    running_service,
    write_e2e_app,
)
from .conftest import render, run
from .test_generate import ANSWER_SETS

pytestmark = pytest.mark.browser

PACKAGE = "browser_check"
ALLOWED = "app"  # exact origin http://app.example.test:<page port>
PATTERN_MEMBER = "pr-7.preview"  # matches http://*.preview.example.test:<page port>
PATTERN_PARENT = "preview"  # the bare parent: never covered by the pattern
OTHER = "other"  # a host name the policy does not name
BLOCKED = {"error": "TypeError", "message": "Failed to fetch"}
JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Stage:
    """The running service and the origins its pages are served from."""

    api: str  # as pages call it: http://api.example.test:<port>
    direct: str  # as the test reads the request log: http://127.0.0.1:<port>
    page_port: int

    def origin(self, host: str) -> str:
        return f"http://{host}.{TEST_DOMAIN}:{self.page_port}"

    def seen(self) -> dict[str, int]:
        return requests_seen(self.direct)


@pytest.fixture(scope="session")
def stage(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    root = tmp_path_factory.mktemp("browser")
    with page_server() as page_port:
        pages = f"{TEST_DOMAIN}:{page_port}"
        answers = {
            "project_name": "Browser Check",
            "package_name": PACKAGE,
            "environments": ["development"],
            "cors_origins": {"development": [f"http://app.{pages}", f"http://*.preview.{pages}"]},
            "cors_allow_credentials": True,
            "cors_allow_methods": ["GET", "POST", "PUT"],
            "cors_allow_headers": ["X-Custom"],
            "cors_expose_headers": ["X-Request-ID"],
            "cors_max_age": 600,
        }
        project = render(template_repo, root / "service", answers)
        run(project, "uv", "sync", "--quiet")
        write_e2e_app(project, PACKAGE)
        api_port = free_port()
        with running_service(project, api_port, root / "service.log") as direct:
            yield Stage(f"http://api.{TEST_DOMAIN}:{api_port}", direct, page_port)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    executable = chromium_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=CHROMIUM_ARGS, timeout=30_000
        )
        try:
            yield launched
        finally:
            launched.close()


class Visit:
    """A page loaded from one origin, calling the service from its own script."""

    def __init__(self, page: Page, api: str) -> None:
        self.page = page
        self.api = api
        self.console: list[str] = []
        page.on("console", self._record)

    def _record(self, message: ConsoleMessage) -> None:
        self.console.append(message.text)

    def fetch(
        self, path: str, init: dict[str, Any] | None = None, read: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """``fetch(api + path, init)`` in the page: status, body and ``read`` headers, or
        the error the page caught."""
        result: dict[str, Any] = self.page.evaluate(
            "([url, init, read]) => call(url, init, read)", [self.api + path, init or {}, read]
        )
        return result

    def socket(self, path: str) -> dict[str, Any]:
        """Open a WebSocket from the page, send "ping"; the events the page saw."""
        url = self.api.replace("http://", "ws://", 1) + path
        result: dict[str, Any] = self.page.evaluate("(url) => openSocket(url)", url)
        return result

    def blocked_by_cors(self) -> bool:
        return any("blocked by CORS policy" in text for text in self.console)


@pytest.fixture
def visit(browser: Browser, stage: Stage) -> Iterator[Callable[[str], Visit]]:
    """Open a page on ``http://<host>.example.test:<page port>``, in a fresh browser
    context (no cookies, no cached preflights from other tests)."""
    contexts = []

    def open_page(host: str) -> Visit:
        context = browser.new_context()
        contexts.append(context)
        context.set_default_timeout(15_000)
        page = context.new_page()
        opened = Visit(page, stage.api)
        page.goto(stage.origin(host) + "/")
        assert page.evaluate("location.origin") == stage.origin(host)
        return opened

    yield open_page
    for context in contexts:
        context.close()


def body(result: dict[str, Any]) -> Any:
    assert "status" in result, result
    return json.loads(result["body"])


def test_simple_get_from_the_allowed_origin_is_readable(visit: Callable[[str], Visit]) -> None:
    result = visit(ALLOWED).fetch("/api/data/simple")
    assert result.get("status") == 200, result
    assert body(result) == {"name": "simple"}


def test_pattern_member_is_allowed(visit: Callable[[str], Visit]) -> None:
    result = visit(PATTERN_MEMBER).fetch("/api/data/pattern")
    assert result.get("status") == 200, result
    assert body(result) == {"name": "pattern"}


@pytest.mark.parametrize("host", [PATTERN_PARENT, OTHER])
def test_refused_origin_cannot_read_the_response(
    visit: Callable[[str], Visit], stage: Stage, host: str
) -> None:
    page = visit(host)
    result = page.fetch(f"/api/data/refused-{host}")
    assert result == BLOCKED
    # The request reached the service; the browser withheld the answer.
    assert stage.seen().get(f"GET /api/data/refused-{host}") == 1
    assert page.blocked_by_cors(), page.console


def test_json_post_is_preflighted_then_allowed(visit: Callable[[str], Visit], stage: Stage) -> None:
    result = visit(ALLOWED).fetch(
        "/api/echo", {"method": "POST", "headers": JSON, "body": json.dumps({"n": 1})}
    )
    assert result.get("status") == 200, result
    assert body(result) == {"received": {"n": 1}}
    seen = stage.seen()
    assert seen.get("OPTIONS /api/echo") == 1
    assert seen.get("POST /api/echo") == 1


def test_method_outside_the_policy_is_never_sent(
    visit: Callable[[str], Visit], stage: Stage
) -> None:
    page = visit(ALLOWED)
    assert page.fetch("/api/items/doomed", {"method": "DELETE"}) == BLOCKED
    seen = stage.seen()
    assert seen.get("OPTIONS /api/items/doomed") == 1
    assert "DELETE /api/items/doomed" not in seen
    assert page.blocked_by_cors(), page.console


def test_allowed_custom_header_reaches_the_service(visit: Callable[[str], Visit]) -> None:
    result = visit(ALLOWED).fetch("/api/custom", {"headers": {"X-Custom": "v1"}})
    assert result.get("status") == 200, result
    assert body(result) == {"x_custom": "v1"}


def test_header_outside_the_policy_is_never_sent(
    visit: Callable[[str], Visit], stage: Stage
) -> None:
    page = visit(ALLOWED)
    path = "/api/data/unlisted-header"
    assert page.fetch(path, {"headers": {"X-Unlisted": "v1"}}) == BLOCKED
    seen = stage.seen()
    assert seen.get(f"OPTIONS {path}") == 1
    assert f"GET {path}" not in seen


def test_credentialed_request_carries_the_cookie_the_api_set(
    visit: Callable[[str], Visit],
) -> None:
    page = visit(ALLOWED)
    login = page.fetch("/api/login", {"credentials": "include"})
    assert login.get("status") == 200, login
    assert body(login) == {"logged_in": True}
    assert body(page.fetch("/api/whoami", {"credentials": "include"})) == {"session": "s3cret"}
    # Without credentials: "include", a cross-origin fetch leaves the cookie out.
    assert body(page.fetch("/api/whoami")) == {"session": None}


def test_only_exposed_headers_are_readable(visit: Callable[[str], Visit], stage: Stage) -> None:
    result = visit(ALLOWED).fetch("/api/headers", read=("X-Request-ID", "X-Hidden"))
    assert result.get("status") == 200, result
    assert result["headers"] == {"X-Request-ID": "req-42", "X-Hidden": None}
    # The service did send the hidden header: the browser is what withholds it.
    with urllib.request.urlopen(f"{stage.direct}/api/headers", timeout=5) as response:
        assert response.headers["X-Hidden"] == "hidden"


def test_unhandled_error_reads_as_a_500_not_a_cors_failure(
    visit: Callable[[str], Visit],
) -> None:
    page = visit(ALLOWED)
    result = page.fetch("/api/boom")
    assert result.get("status") == 500, result
    assert body(result) == {"detail": "Internal Server Error"}
    assert not page.blocked_by_cors(), page.console


def test_websocket_from_the_allowed_origin_connects(visit: Callable[[str], Visit]) -> None:
    result = visit(ALLOWED).socket("/ws")
    assert result == {"events": ["open", "message:echo:ping", "close:1000"]}


@pytest.mark.parametrize("host", [PATTERN_PARENT, OTHER])
def test_websocket_from_a_refused_origin_fails(visit: Callable[[str], Visit], host: str) -> None:
    result = visit(host).socket("/ws")
    assert result == {"events": ["error", "close:1006"]}


def test_preflight_is_cached_for_max_age(visit: Callable[[str], Visit], stage: Stage) -> None:
    page = visit(ALLOWED)
    init = {
        "method": "PUT",
        "headers": {**JSON, "X-Custom": "v1"},
        "body": json.dumps({"n": 2}),
    }
    results = [page.fetch("/api/items/cached", init) for _ in range(3)]
    assert [result.get("status") for result in results] == [200, 200, 200], results
    seen = stage.seen()
    assert seen.get("PUT /api/items/cached") == 3
    assert seen.get("OPTIONS /api/items/cached") == 1


@pytest.mark.slow
@pytest.mark.parametrize("answers", ["example", "public-wildcard"])
def test_generated_browser_suite_passes(template_repo: Path, tmp_path: Path, answers: str) -> None:
    """The opt-in browser suite a generated project ships, run as its owner would:
    every origin of every profile, with and without credentials and wildcards."""
    chromium_path()
    project = render(template_repo, tmp_path / answers, ANSWER_SETS[answers])
    run(project, "uv", "sync", "--quiet")
    output = run(
        project, "uv", "run", "--no-sync", "pytest", "-m", "browser", "-q", "-p", "no:cacheprovider"
    )
    summary = output.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ passed, \d+ deselected in .*", summary), output[-4000:]
