"""Cross-origin writes, as a real headless Chromium sends them.

CORS hides responses; it does not stop a page from making the browser send a form POST,
a ``no-cors`` fetch or a beacon, with the user's cookie. The generated service refuses
such writes from origins its policy does not allow before any handler runs. Here a user
logs in to the API (its cookie is set), then pages on other origins send each kind of
write; the service reports which requests arrived and which handlers ran.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, sync_playwright

from .browser_support import (
    CHROMIUM_ARGS,
    TEST_DOMAIN,
    chromium_path,
    free_port,
    page_server,
    running_service,
)
from .conftest import render, run

pytestmark = pytest.mark.browser

PACKAGE = "write_check"
ATTACKER_SITE = "attacker.invalid"  # another site altogether
WAIT_S = 10.0

# The generated app, a login route that sets the API's cookie, a write route that
# records every run of its handler, and a count of the requests that reached the server
# (outside the CORS layer): a write the browser never sent cannot pass for a refused one.
WRITES_APP = '''"""Test-only ASGI factory for the cross-origin write checks."""

import json
from collections import Counter

from fastapi import Request
from fastapi.responses import JSONResponse

from PACKAGE.main import create_app

ran: list[dict[str, str | None]] = []


class Seen:
    def __init__(self, app):
        self.app = app
        self.count = Counter()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/__seen":
            body = json.dumps({"seen": self.count, "ran": ran}).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        if scope["type"] == "http":
            self.count[f"{scope['method']} {scope['path']}"] += 1
        await self.app(scope, receive, send)


def create():
    app = create_app()

    @app.get("/api/login")
    def login() -> JSONResponse:
        response = JSONResponse({"logged_in": True})
        response.set_cookie("session", "s3cret", httponly=True, samesite="lax")
        return response

    @app.post("/api/transfer/{kind}")
    async def transfer(kind: str, request: Request) -> dict[str, bool]:
        await request.body()
        ran.append({"kind": kind, "session": request.cookies.get("session")})
        return {"done": True}

    return Seen(app)
'''

# Each way a page sends a write without asking first (no preflight).
WRITES = {
    "form": """([url]) => {
        const frame = document.createElement("iframe"); frame.name = "sink-form";
        document.body.appendChild(frame);
        const form = document.createElement("form");
        form.method = "POST"; form.action = url; form.target = "sink-form";
        const field = document.createElement("input"); field.name = "amount"; field.value = "100";
        form.appendChild(field); document.body.appendChild(form); form.submit();
    }""",
    "multipart": """([url]) => {
        const frame = document.createElement("iframe"); frame.name = "sink-multipart";
        document.body.appendChild(frame);
        const form = document.createElement("form");
        form.method = "POST"; form.action = url; form.target = "sink-multipart";
        form.enctype = "multipart/form-data";
        const field = document.createElement("input"); field.name = "amount"; field.value = "100";
        form.appendChild(field); document.body.appendChild(form); form.submit();
    }""",
    "no-cors": """([url]) => fetch(url, {method: "POST", mode: "no-cors", credentials: "include",
        headers: {"Content-Type": "text/plain"}, body: "amount=100"}).then(() => "sent")""",
    "beacon": """([url]) => navigator.sendBeacon(url, "amount=100")""",
}


@dataclass(frozen=True)
class Stage:
    api: str  # as pages call it
    direct: str  # as the test reads what arrived
    page_port: int

    def origin(self, host: str) -> str:
        return f"http://{host}:{self.page_port}"

    def report(self) -> dict[str, object]:
        with urllib.request.urlopen(f"{self.direct}/__seen", timeout=5) as response:
            report: dict[str, object] = json.loads(response.read())
        return report


@pytest.fixture(scope="module")
def stage(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    root = tmp_path_factory.mktemp("writes")
    with page_server() as page_port:
        answers = {
            "project_name": "Write Check",
            "package_name": PACKAGE,
            "environments": ["development"],
            "cors_origins": {"development": [f"http://app.{TEST_DOMAIN}:{page_port}"]},
            "cors_allow_credentials": True,
            "cors_allow_methods": ["GET", "POST"],
            "cors_allow_headers": [],
            "cors_expose_headers": [],
        }
        project = render(template_repo, root / "service", answers)
        run(project, "uv", "sync", "--quiet")
        (project / "e2e_app.py").write_text(WRITES_APP.replace("PACKAGE", PACKAGE), "utf-8")
        api_port = free_port()
        with running_service(project, api_port, root / "service.log") as direct:
            yield Stage(f"http://api.{TEST_DOMAIN}:{api_port}", direct, page_port)


class BrowserThread:
    """A Chromium driven from a thread of its own: Playwright's sync API refuses to start
    in a thread where another test module's browser already runs its loop."""

    def __init__(self, arguments: list[str]) -> None:
        self.jobs: queue.Queue[tuple[Callable[[Browser], Any], Future[Any]] | None]
        self.jobs = queue.Queue()
        self.started: Future[None] = Future()
        self.thread = threading.Thread(target=self._serve, args=(arguments,), daemon=True)
        self.thread.start()
        self.started.result(timeout=60)

    def _serve(self, arguments: list[str]) -> None:
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(chromium_path()), args=arguments, timeout=30_000
                )
                self.started.set_result(None)
                while (job := self.jobs.get()) is not None:
                    work, result = job
                    try:
                        result.set_result(work(browser))
                    except BaseException as error:  # handed to the test's thread
                        result.set_exception(error)
                browser.close()
        except BaseException as error:
            if not self.started.done():
                self.started.set_exception(error)

    def run(self, work: Callable[[Browser], Any]) -> Any:
        result: Future[Any] = Future()
        self.jobs.put((work, result))
        return result.result(timeout=120)

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[BrowserThread]:
    chromium_path()  # fails with the install line when Chromium is missing
    arguments = [
        *CHROMIUM_ARGS,
        f"--host-resolver-rules=MAP *.{TEST_DOMAIN} 127.0.0.1, MAP *.{ATTACKER_SITE} 127.0.0.1",
    ]
    thread = BrowserThread(arguments)
    try:
        yield thread
    finally:
        thread.close()


def send_writes(
    browser: BrowserThread, stage: Stage, page_host: str, label: str
) -> list[dict[str, str]]:
    """Log in to the API, then send every kind of write from a page on ``page_host``;
    wait until all of them reached the server; return the handler runs of this round."""
    before = stage.report()

    def visit(chromium: Browser) -> None:
        context = chromium.new_context()
        try:
            page = context.new_page()
            page.goto(f"{stage.api}/api/login")  # first-party: the API's cookie is set
            page.goto(stage.origin(page_host) + "/")
            for kind, script in WRITES.items():
                page.evaluate(script, [f"{stage.api}/api/transfer/{label}-{kind}"])
            wait_until_arrived(stage, label)
        finally:
            context.close()

    browser.run(visit)
    ran = stage.report()["ran"]
    assert isinstance(ran, list) and isinstance(before["ran"], list)
    return [run for run in ran[len(before["ran"]) :] if run["kind"].startswith(label)]


def wait_until_arrived(stage: Stage, label: str) -> None:
    """Until every write of this round reached the server (the page stays open)."""
    deadline = time.monotonic() + WAIT_S
    seen: object = {}
    while time.monotonic() < deadline:
        seen = stage.report()["seen"]
        assert isinstance(seen, dict)
        arrived = [k for k in WRITES if seen.get(f"POST /api/transfer/{label}-{k}", 0)]
        if len(arrived) == len(WRITES):
            return
        time.sleep(0.1)
    pytest.fail(f"not every write reached the server within {WAIT_S} s: {seen}")


@pytest.mark.parametrize(
    "page_host",
    [
        pytest.param(f"other.{TEST_DOMAIN}", id="same-site-page-with-the-cookie"),
        pytest.param(f"www.{ATTACKER_SITE}", id="cross-site-page"),
    ],
)
def test_writes_from_a_refused_origin_never_reach_a_handler(
    browser: BrowserThread, stage: Stage, page_host: str
) -> None:
    label = page_host.split(".")[0]
    assert send_writes(browser, stage, page_host, label) == []


def test_writes_from_the_allowed_origin_run_with_the_cookie(
    browser: BrowserThread, stage: Stage
) -> None:
    ran = send_writes(browser, stage, f"app.{TEST_DOMAIN}", "app")
    assert sorted(run["kind"] for run in ran) == sorted(f"app-{kind}" for kind in WRITES)
    assert {run["session"] for run in ran} == {"s3cret"}
