"""Cross-origin writes, as a real headless Chromium sends them.

CORS hides responses; it does not stop a page from making the browser send a form POST,
a ``no-cors`` fetch or a beacon, with the user's cookie. The generated service refuses
such writes from origins its policy does not allow before any handler runs. Here a user
logs in to the API (its cookie is set), then pages on other origins send each kind of
write; the service reports which requests arrived and which handlers ran.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .browser_support import (
    OTHER_SITE,
    TEST_DOMAIN,
    Engine,
    free_port,
    page_server,
    running_service,
)
from .conftest import render, run

pytestmark = pytest.mark.browser

PACKAGE = "write_check"
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


def send_writes(engine: Engine, stage: Stage, page_host: str, label: str) -> list[dict[str, str]]:
    """Log in to the API, then send every kind of write from a page on ``page_host``;
    wait until all of them reached the server; return the handler runs of this round."""
    before = stage.report()
    tab = engine.new_tab()
    try:
        tab.goto(f"{stage.api}/api/login")  # first-party: the API's cookie is set
        tab.goto(stage.origin(page_host) + "/")
        for kind, script in WRITES.items():
            tab.evaluate(script, [f"{stage.api}/api/transfer/{label}-{kind}"])
        wait_until_arrived(stage, label)
    finally:
        engine.close_tabs()
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
        pytest.param(f"app.{OTHER_SITE}", id="cross-site-page"),
    ],
)
def test_writes_from_a_refused_origin_never_reach_a_handler(
    engine: Engine, stage: Stage, page_host: str
) -> None:
    label = f"{engine.name}-{page_host.split('.')[1]}"
    assert send_writes(engine, stage, page_host, label) == []


def test_writes_from_the_allowed_origin_run_with_the_cookie(engine: Engine, stage: Stage) -> None:
    label = f"{engine.name}-app"
    ran = send_writes(engine, stage, f"app.{TEST_DOMAIN}", label)
    assert sorted(run["kind"] for run in ran) == sorted(f"{label}-{kind}" for kind in WRITES)
    assert {run["session"] for run in ran} == {"s3cret"}
