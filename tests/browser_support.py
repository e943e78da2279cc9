"""What the browser suite runs: the browsers, servers for the pages, the generated service.

Every origin the suite needs lives on 127.0.0.1: Chromium maps the ``*.example.test``
and ``*.frontend.test`` host names there (``--host-resolver-rules``), Firefox the same
names (``network.dns.localDomains``), so one page server answers for all page origins
(the origin is the host name the browser asked for), and the service listens on its own
port as ``http://api.example.test:<port>``. A second page server and a second service
speak TLS, with a certificate from a throw-away CA (``trustme``), for what needs https:
``Secure`` cookies.

Both engines are seen through one small interface (``Engine`` and ``Tab``), so a test
written once runs in Chromium (Playwright) and in Firefox (WebDriver BiDi,
tests/firefox_support.py).
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

import pytest
import trustme
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
INSTALL_CHROMIUM = "apt-get update && apt-get install -y chromium"
TEST_DOMAIN = "example.test"  # the API's site
OTHER_SITE = "frontend.test"  # a site of its own: its pages call the API cross-site
# Firefox resolves only names it is given one by one; Chromium maps both domains.
HOSTS = (
    f"api.{TEST_DOMAIN}",
    f"app.{TEST_DOMAIN}",
    f"pr-7.preview.{TEST_DOMAIN}",
    f"preview.{TEST_DOMAIN}",
    f"other.{TEST_DOMAIN}",
    f"app.{OTHER_SITE}",
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    f"--host-resolver-rules=MAP *.{TEST_DOMAIN} 127.0.0.1, MAP *.{OTHER_SITE} 127.0.0.1",
]
FIREFOX_PREFS: dict[str, object] = {
    "network.dns.localDomains": ",".join(HOSTS),
    "network.proxy.type": 0,  # direct, whatever the machine's proxy settings say
    # Keep http:// page loads on http, as Chromium does here.
    "dom.security.https_first": False,
    "dom.security.https_first_schemeless": False,
}
# Every wait is bounded: a request the browser never settles fails the test instead of
# hanging it.
JS_TIMEOUT_MS = 10_000
START_TIMEOUT_S = 30.0

# Loaded by every page: small wrappers that report what the page's script observed.
PAGE_HTML = f"""<!doctype html>
<meta charset="utf-8">
<title>CORS browser check</title>
<script>
function pageOrigin() {{ return location.origin; }}

async function call(url, init = {{}}, read = []) {{
  try {{
    const response = await fetch(url, {{...init, signal: AbortSignal.timeout({JS_TIMEOUT_MS})}});
    const headers = {{}};
    for (const name of read) headers[name] = response.headers.get(name);
    return {{status: response.status, body: await response.text(), headers}};
  }} catch (error) {{
    return {{error: error.name, message: error.message}};
  }}
}}

function openSocket(url) {{
  return new Promise((resolve) => {{
    const events = [];
    const finish = (extra) => {{ clearTimeout(timer); resolve({{events, ...extra}}); }};
    const timer = setTimeout(() => finish({{timedOut: true}}), {JS_TIMEOUT_MS});
    const socket = new WebSocket(url);
    socket.onopen = () => {{ events.push("open"); socket.send("ping"); }};
    socket.onmessage = (event) => {{ events.push("message:" + event.data); socket.close(1000); }};
    socket.onerror = () => events.push("error");
    socket.onclose = (event) => {{ events.push("close:" + event.code); finish({{}}); }};
  }});
}}

</script>
"""

# The service as generated, plus routes that only this suite needs. Written into the
# rendered project, so it imports the package exactly as the owner's code would.
E2E_APP = '''"""Test-only ASGI factory: the generated app plus routes for the browser suite."""

import json
from collections import Counter
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse

from PACKAGE.main import create_app

COOKIES = {
    "lax": "; SameSite=Lax; Secure",
    "default": "; Secure",
    "none": "; SameSite=None; Secure",
    "partitioned": "; SameSite=None; Secure; Partitioned",
    "none_insecure": "; SameSite=None",
}


class RequestLog:
    """Counts every HTTP request by method and path before CORS answers it."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.seen: Counter[str] = Counter()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            if scope["path"] == "/__seen":
                body = json.dumps(self.seen).encode()
                headers = [(b"content-type", b"application/json")]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            self.seen[f"{scope['method']} {scope['path']}"] += 1
        await self.app(scope, receive, send)


def create() -> RequestLog:
    app = create_app()

    @app.get("/api/data/{name}")
    def data(name: str) -> dict[str, str]:
        return {"name": name}

    @app.post("/api/echo/{token}")
    def echo(payload: dict[str, Any]) -> dict[str, Any]:
        return {"received": payload}

    @app.put("/api/items/{name}")
    def store(name: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {"stored": name, "payload": payload}

    @app.delete("/api/items/{name}")
    def delete(name: str) -> dict[str, str]:
        return {"deleted": name}

    @app.get("/api/public/{name}")  # a path policy: any origin, no credentials
    @app.get("/api/partner/{name}")  # a path policy: one origin, no credentials
    def area(name: str) -> dict[str, str]:
        return {"name": name}

    @app.get("/api/custom")
    def custom(request: Request) -> dict[str, Any]:
        return {"x_custom": request.headers.get("x-custom")}

    @app.get("/api/boom")
    def boom() -> None:
        raise RuntimeError("failure inside a route")

    @app.get("/api/login")
    def login() -> JSONResponse:
        response = JSONResponse({"logged_in": True})
        response.set_cookie("session", "s3cret", httponly=True, samesite="lax")
        return response

    @app.get("/api/whoami")
    def whoami(request: Request) -> dict[str, Any]:
        return {"session": request.cookies.get("session")}

    @app.get("/api/headers")
    def headers() -> JSONResponse:
        exposed_and_not = {"X-Request-ID": "req-42", "X-Hidden": "hidden"}
        return JSONResponse({"ok": True}, headers=exposed_and_not)

    # Cookies with every SameSite and Secure combination, each named by its attributes.
    @app.get("/api/cookies/set")
    def set_cookies() -> JSONResponse:
        response = JSONResponse({"set": list(COOKIES)})
        for name, attributes in COOKIES.items():
            response.headers.append("set-cookie", f"{name}=1; Path=/{attributes}")
        return response

    @app.get("/api/cookies")
    def cookies(request: Request) -> list[str]:
        return sorted(request.cookies)

    @app.websocket("/ws")
    async def ws_echo(websocket: WebSocket) -> None:
        await websocket.accept()
        text = await websocket.receive_text()
        await websocket.send_text("echo:" + text)
        await websocket.close()

    return RequestLog(app)
'''


def chromium_path() -> Path:
    """Chromium from Debian; its absence fails the suite, it is never skipped."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing, and the browser tests need it: run "
            f"`{INSTALL_CHROMIUM}` (.ci/run does this), or deselect them with "
            "-m 'not browser'",
            pytrace=False,
        )
    return CHROMIUM


class Tab(Protocol):
    """A page in a private browser context of its own (cookies, caches), in either engine."""

    console: list[str]  # what the engine's console showed for this page, in order

    def goto(self, url: str) -> None:
        """Load ``url`` and wait until it has loaded."""

    def call(self, function: str, *args: Any) -> Any:
        """``await window[function](...args)`` in the page; its JSON value."""

    def evaluate(self, function: str, arg: Any = None) -> Any:
        """``await (function)(arg)``, a JavaScript function's source, as Playwright's
        ``page.evaluate`` takes it; its JSON value."""


class Engine(Protocol):
    name: str  # "chromium" or "firefox"
    version: str

    def new_tab(self) -> Tab: ...

    def close_tabs(self) -> None: ...

    def close(self) -> None: ...


class ChromiumTab:
    def __init__(self, context: BrowserContext) -> None:
        self.context = context
        self.page: Page = context.new_page()
        self.console: list[str] = []
        self.page.on("console", self._record)

    def _record(self, message: ConsoleMessage) -> None:
        self.console.append(message.text)

    def goto(self, url: str) -> None:
        self.page.goto(url)

    def call(self, function: str, *args: Any) -> Any:
        return self.page.evaluate("([name, args]) => window[name](...args)", [function, list(args)])

    def evaluate(self, function: str, arg: Any = None) -> Any:
        return self.page.evaluate(function, arg)


class ChromiumEngine:
    """Debian's Chromium, driven by Playwright (never its own browser download)."""

    name = "chromium"

    def __init__(self) -> None:
        self._playwright = sync_playwright().start()
        try:
            self.browser: Browser = self._playwright.chromium.launch(
                executable_path=str(chromium_path()),
                headless=True,
                args=CHROMIUM_ARGS,
                timeout=30_000,
            )
        except BaseException:
            self._playwright.stop()
            raise
        self.version = self.browser.version
        self._contexts: list[BrowserContext] = []

    def new_tab(self) -> ChromiumTab:
        # The test CA is not installed: certificate errors are ignored instead.
        context = self.browser.new_context(ignore_https_errors=True)
        context.set_default_timeout(15_000)
        self._contexts.append(context)
        return ChromiumTab(context)

    def close_tabs(self) -> None:
        for context in self._contexts:
            context.close()
        self._contexts.clear()

    def close(self) -> None:
        try:
            self.browser.close()
        finally:
            self._playwright.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _PageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = PAGE_HTML.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def page_server(tls: ssl.SSLContext | None = None) -> Iterator[int]:
    """Serve the page on 127.0.0.1 for every host name, over TLS if given; yield the port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass(frozen=True)
class Tls:
    """A throw-away CA and one certificate for every test host name, as files and contexts."""

    key_file: Path
    cert_file: Path
    server: ssl.SSLContext  # for the page server
    client: ssl.SSLContext  # trusts the CA: for the test's own requests


def make_tls(directory: Path) -> Tls:
    authority = trustme.CA()
    certificate = authority.issue_cert(*HOSTS, "127.0.0.1")
    key_file, cert_file = directory / "key.pem", directory / "cert.pem"
    certificate.private_key_pem.write_to_path(str(key_file))
    certificate.cert_chain_pems[0].write_to_path(str(cert_file))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    certificate.configure_cert(server)
    client = ssl.create_default_context()
    authority.configure_trust(client)
    return Tls(key_file, cert_file, server, client)


def write_e2e_app(project: Path, package: str) -> None:
    (project / "e2e_app.py").write_text(E2E_APP.replace("PACKAGE", package), encoding="utf-8")


def clean_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without anything that would change the service's policy."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key != "ENVIRONMENT"
        and not key.startswith(("CORS_", "VIRTUAL_ENV", "UV_PROJECT", "PYTEST_"))
    }
    environment.update(extra or {})
    return environment


@contextmanager
def running_service(
    project: Path,
    port: int,
    log: Path,
    tls: Tls | None = None,
    environment: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """Run ``e2e_app:create`` under uvicorn on 127.0.0.1:port (over TLS if given, with
    ``environment`` added to a clean one); yield its base URL."""
    command = [
        str(project / ".venv" / "bin" / "python"),
        "-m",
        "uvicorn",
        "--factory",
        "e2e_app:create",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    if tls is not None:
        command += ["--ssl-keyfile", str(tls.key_file), "--ssl-certfile", str(tls.cert_file)]
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=project,
            env=clean_environment(environment),
            stdout=output,
            stderr=output,
        )
    base = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    try:
        _wait_until_healthy(base, process, log, tls.client if tls else None)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_until_healthy(
    base: str, process: subprocess.Popen[bytes], log: Path, context: ssl.SSLContext | None
) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the service exited ({process.returncode}):\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2, context=context) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    pytest.fail(f"no answer on /health within {START_TIMEOUT_S} s:\n{log.read_text()[-4000:]}")


def requests_seen(base: str) -> dict[str, int]:
    """How often the service received each ``METHOD /path`` so far."""
    with urllib.request.urlopen(f"{base}/__seen", timeout=5) as response:
        seen: dict[str, int] = json.loads(response.read())
    return seen
