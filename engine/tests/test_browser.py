"""Every environment's CORS policy, enforced by a real headless browser (opt-in).

Run with ``uv run pytest -m browser``; add ``-k production`` to check one environment.
The plain ``uv run pytest`` leaves these tests out. ``BROWSER_ENGINE`` picks the engine:
``chromium`` (the default) or ``firefox``.

- Chromium or Chrome: ``CHROMIUM_PATH``, /usr/bin/chromium, or ``chromium``,
  ``chromium-browser`` or ``google-chrome`` on PATH (Debian and Ubuntu: ``apt-get
  install chromium``), driven by Playwright: ``playwright install`` is not needed.
- Firefox: ``FIREFOX_PATH``, /usr/bin/firefox-esr, /usr/bin/firefox, or ``firefox-esr``
  or ``firefox`` on PATH (Debian: ``apt-get install firefox-esr``), driven over WebDriver
  BiDi, which Firefox speaks natively: no geckodriver, no Selenium.

Without the chosen browser the tests fail, saying what to install.

How: a page is opened at each origin of each profile in settings.toml, exactly as
written (https and default ports included). The driver answers the page load itself
(Playwright's routing, or BiDi's network interception), so nothing is fetched from your
real hosts. Then interception is switched off and the page's own script calls the
service, which runs in this process on 127.0.0.1 (one app per environment, under
/<environment>/), so every preflight reaches the service and the browser alone decides
what the page may read. Chromium is told to treat the service as a public address, so
its Local Network Access checks stay out of the way; Firefox has no such checks.

Not covered: the ``null`` origin, cookies (the page and the service are different
sites here; credentials are checked through the credentials mode of the requests), and
path policies (the checks use each profile's default policy, on paths none claims).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
import uvicorn
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse
from playwright.sync_api import BrowserContext, Page, Playwright, Route, sync_playwright
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from .service import (
    NULL,
    SERVICE,
    WILDCARD,
    CORSPolicy,
    OriginPattern,
    Settings,
    create_app,
    is_pattern,
)
from .support import profile_settings

pytestmark = pytest.mark.browser

BROWSER_ENGINE = "BROWSER_ENGINE"
CHROMIUM_PATH = "CHROMIUM_PATH"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FIREFOX_PATH = "FIREFOX_PATH"
FIREFOX_NAMES = ("firefox-esr", "firefox")
JS_TIMEOUT_MS = 10_000
START_TIMEOUT_S = 10.0
ANY_SITE = "https://any-site.browser-check.test"  # stands for every origin under '*'
REFUSED_SITE = "https://refused.browser-check.test"
HIDDEN_HEADER = "X-Browser-Check-Hidden"
# What a page's script catches from a fetch the browser blocked, in each engine's words.
BLOCKED_MESSAGES = {
    "chromium": "Failed to fetch",
    "firefox": "NetworkError when attempting to fetch resource.",
}
# Methods and headers a page's script may not use at all (the Fetch standard).
FORBIDDEN_METHODS = {"CONNECT", "TRACE", "TRACK"}
FORBIDDEN_HEADERS = {
    "accept-charset", "accept-encoding", "access-control-request-headers",
    "access-control-request-method", "connection", "content-length", "cookie", "cookie2",
    "date", "dnt", "expect", "host", "keep-alive", "origin", "referer", "set-cookie", "te",
    "trailer", "transfer-encoding", "upgrade", "via",
}  # fmt: skip
# Response headers every page may read anyway, or that the server sets itself.
NOT_EXPOSABLE = {
    "cache-control", "content-language", "content-length", "content-type", "expires",
    "last-modified", "pragma", "set-cookie", "set-cookie2", "transfer-encoding", "connection",
}  # fmt: skip

PAGE = """<!doctype html>
<meta charset="utf-8">
<link rel="icon" href="data:,">
<title>CORS browser check</title>
<script>
async function call(url, init = {}, read = []) {
  try {
    const response = await fetch(url, {...init, signal: AbortSignal.timeout(TIMEOUT_MS)});
    const headers = {};
    for (const name of read) headers[name] = response.headers.get(name);
    return {status: response.status, body: await response.text(), headers};
  } catch (error) {
    return {error: error.name, message: error.message};
  }
}

function openSocket(url) {
  return new Promise((resolve) => {
    const events = [];
    const finish = (extra) => { clearTimeout(timer); resolve({events, ...extra}); };
    const timer = setTimeout(() => finish({timedOut: true}), TIMEOUT_MS);
    const socket = new WebSocket(url);
    socket.onopen = () => { events.push("open"); socket.send("ping"); };
    socket.onmessage = (event) => { events.push("message:" + event.data); socket.close(1000); };
    socket.onerror = () => events.push("error");
    socket.onclose = (event) => { events.push("close:" + event.code); finish({}); };
  });
}
</script>
""".replace("TIMEOUT_MS", str(JS_TIMEOUT_MS))

PROFILES: dict[str, Settings] = {name: profile_settings(name) for name in SERVICE.profiles}


def _origin(scheme: str, host: str, port: int | None) -> str:
    return f"{scheme}://{host}" + (f":{port}" if port is not None else "")


def allowed_page_origins(settings: Settings) -> list[str]:
    """One page origin per entry of the profile: the origin itself, a member of a pattern."""
    origins = []
    for entry in settings.cors_allow_origins:
        if entry == WILDCARD:
            origins.append(ANY_SITE)
        elif is_pattern(entry):
            pattern = OriginPattern.parse(entry)
            origins.append(_origin(pattern.scheme, f"browser-check.{pattern.parent}", pattern.port))
        elif entry != NULL:
            origins.append(entry)
    return list(dict.fromkeys(origins))


def refused_page_origins(settings: Settings) -> list[str]:
    """Origins one step outside the profile: the other scheme, a pattern's bare parent,
    an unrelated site; those the profile happens to allow are left out."""
    candidates = [REFUSED_SITE]
    for entry in settings.cors_allow_origins:
        if is_pattern(entry):
            pattern = OriginPattern.parse(entry)
            candidates.append(_origin(pattern.scheme, pattern.parent, pattern.port))
        elif entry not in (WILDCARD, NULL):
            scheme, rest = entry.split("://", 1)
            candidates.append(f"{'http' if scheme == 'https' else 'https'}://{rest}")
    policy = CORSPolicy.from_settings(settings)
    return [origin for origin in dict.fromkeys(candidates) if not policy.allows_origin(origin)]


ALLOWED = [(name, origin) for name, s in PROFILES.items() for origin in allowed_page_origins(s)]
REFUSED = [(name, origin) for name, s in PROFILES.items() for origin in refused_page_origins(s)]


def case_id(case: tuple[str, str]) -> str:
    return f"{case[0]}-{case[1]}"


def request_headers(settings: Settings) -> dict[str, str]:
    """A value for every request header the profile allows; the JSON content type makes
    even a GET need a preflight."""
    names = [n for n in settings.cors_allow_headers if n != WILDCARD]
    if WILDCARD in settings.cors_allow_headers:
        names.append("X-Browser-Check")
    left_out = FORBIDDEN_HEADERS | {"content-type"}
    headers = {name: "browser-check" for name in names if name.lower() not in left_out}
    return {**headers, "Content-Type": "application/json"}


def exposed_headers(settings: Settings) -> list[str]:
    return [
        name
        for name in settings.cors_expose_headers
        if name != WILDCARD and name.lower() not in NOT_EXPOSABLE
    ]


class RequestLog:
    """Counts every HTTP request by method and path, before CORS answers it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen[f"{scope['method']} {scope['path']}"] += 1
        await self.app(scope, receive, send)


def app_for(settings: Settings) -> FastAPI:
    """The service with this profile, plus routes that only these tests call."""
    app = create_app(settings)
    exposed = {name: "browser-check" for name in exposed_headers(settings)}
    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

    @app.api_route("/browser-check/echo/{token}", methods=methods)
    def echo(request: Request) -> dict[str, Any]:
        return {"method": request.method, "headers": dict(request.headers)}

    @app.get("/browser-check/headers")
    def headers() -> JSONResponse:
        return JSONResponse({"ok": True}, headers={**exposed, HIDDEN_HEADER: "hidden"})

    @app.get("/browser-check/error")
    def error() -> None:
        raise RuntimeError("raised on purpose by the browser tests")

    @app.websocket("/browser-check/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("echo:" + await websocket.receive_text())
        await websocket.close()

    return app


@dataclass
class Service:
    base: str
    log: RequestLog

    def url(self, environment: str, path: str) -> str:
        return f"{self.base}/{environment}{path}"

    def seen(self, environment: str, path: str) -> dict[str, int]:
        """How often each method reached this path."""
        suffix = f" /{environment}{path}"
        return {k.removesuffix(suffix): n for k, n in self.log.seen.items() if k.endswith(suffix)}


@pytest.fixture(scope="session")
def service() -> Iterator[Service]:
    """Every environment's app, on one uvicorn server in a thread."""
    mounts = [Mount(f"/{name}", app=app_for(settings)) for name, settings in PROFILES.items()]
    log = RequestLog(Starlette(routes=mounts))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = int(listener.getsockname()[1])
    config = uvicorn.Config(log, log_level="warning", lifespan="off", ws="websockets-sansio")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            assert thread.is_alive(), "the test server stopped while starting"
            assert time.monotonic() < deadline, f"no test server after {START_TIMEOUT_S} s"
            time.sleep(0.05)
        yield Service(f"http://127.0.0.1:{port}", log)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()


def engine_name() -> str:
    """The engine ``BROWSER_ENGINE`` names: chromium (the default) or firefox."""
    name = os.environ.get(BROWSER_ENGINE, "chromium").strip().lower() or "chromium"
    if name not in BLOCKED_MESSAGES:
        pytest.fail(
            f"{BROWSER_ENGINE}={name!r}: use one of {', '.join(BLOCKED_MESSAGES)}",
            pytrace=False,
        )
    return name


def find_browser(variable: str, paths: tuple[str, ...], names: tuple[str, ...]) -> str:
    """The executable ``variable`` names, else the first of ``paths`` or ``names`` on
    PATH; fails, saying what to install, when there is none."""
    configured = os.environ.get(variable)
    if configured:
        if not Path(configured).is_file():
            pytest.fail(
                f"{variable}={configured!r} is not a file: set it to the browser's "
                "executable, or unset it",
                pytrace=False,
            )
        return configured
    found = next((path for path in paths if Path(path).is_file()), None)
    found = found or next((hit for name in names if (hit := shutil.which(name))), None)
    if found is None:
        package = "chromium" if variable == CHROMIUM_PATH else "firefox-esr"
        pytest.fail(
            f"no browser found (looked at ${variable}, {', '.join(paths)}, then "
            f"{', '.join(names)} on PATH): install one (Debian: apt-get install {package}) "
            f"or set {variable}; or run without -m browser",
            pytrace=False,
        )
    return found


class Tab(Protocol):
    """A page at one origin, in a browser context of its own."""

    def call(self, function: str, *args: Any) -> Any:
        """``await window[function](...args)`` in the page; its JSON value."""


class Driver(Protocol):
    def open(self, origin: str) -> Tab:
        """A page at ``origin``, served by the driver itself, then left to the network."""

    def close(self) -> None: ...


def _serve_page(route: Route) -> None:
    route.fulfill(status=200, content_type="text/html; charset=utf-8", body=PAGE)


class ChromiumTab:
    def __init__(self, page: Page) -> None:
        self.page = page

    def call(self, function: str, *args: Any) -> Any:
        return self.page.evaluate("([name, args]) => window[name](...args)", [function, list(args)])


class ChromiumDriver:
    """Chromium or Chrome, driven by Playwright."""

    def __init__(self, executable: str, service_port: str) -> None:
        args = [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
            # Only the test server is reachable; page loads never reach the network.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            # Local Network Access would stop a public page from calling 127.0.0.1.
            f"--ip-address-space-overrides=127.0.0.1:{service_port}=public",
            "--disable-features=LocalNetworkAccessChecks,HttpsUpgrades",
        ]
        self.playwright: Playwright = sync_playwright().start()
        try:
            self.browser = self.playwright.chromium.launch(
                executable_path=executable, headless=True, args=args, timeout=30_000
            )
        except BaseException:
            self.playwright.stop()
            raise
        self.contexts: list[BrowserContext] = []

    def open(self, origin: str) -> Tab:
        context = self.browser.new_context()
        self.contexts.append(context)
        context.set_default_timeout(15_000)
        context.route("**/*", _serve_page)
        page = context.new_page()
        page.goto(origin + "/")
        assert page.evaluate("location.origin") == origin
        # From here on requests go to the network, so the service answers every preflight.
        context.unroute_all(behavior="wait")
        return ChromiumTab(page)

    def close(self) -> None:
        try:
            for context in self.contexts:
                context.close()
            self.browser.close()
        finally:
            self.playwright.stop()


# --- begin WebDriver BiDi client ---
BIDI_START_TIMEOUT_S = 30.0
BIDI_COMMAND_TIMEOUT_S = 30.0
_CLOSED = {"type": "error", "error": "connection closed", "message": "Firefox went away"}


class BiDiError(Exception):
    """The browser refused a command, or did not answer it in time."""


class FirefoxBiDi:
    """Firefox driven over WebDriver BiDi, the remote protocol Firefox speaks natively.

    Firefox is started with ``--remote-debugging-port=0`` and a profile of its own; the
    test talks to it over one WebSocket (``websockets``). No geckodriver, no Selenium.
    """

    def __init__(
        self, executable: str, prefs: Mapping[str, object], accept_insecure_certs: bool = False
    ) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="firefox-bidi-"))
        lines = [f"user_pref({json.dumps(k)}, {json.dumps(v)});" for k, v in prefs.items()]
        (self.profile / "user.js").write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.log = self.profile / "firefox.log"
        command = [executable, "-headless", "-no-remote", "-profile", str(self.profile)]
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(  # noqa: S603 - a fixed command line
                [*command, "--remote-debugging-port=0"],
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self._next_id = 0
        self._closed = False
        self._lock = threading.Lock()
        self._answers: dict[int, queue.Queue[dict[str, Any]]] = {}
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._handlers: dict[str, list[Callable[[dict[str, Any]], None]]] = {}
        self._exit = contextlib.ExitStack()
        try:
            url = self._endpoint() + "/session"
            self._socket = self._exit.enter_context(connect(url, max_size=None))
            threading.Thread(target=self._read, daemon=True).start()
            threading.Thread(target=self._dispatch, daemon=True).start()
            capabilities = {"alwaysMatch": {"acceptInsecureCerts": accept_insecure_certs}}
            session = self.send("session.new", {"capabilities": capabilities})
        except BaseException:
            self.close()
            raise
        self.version: str = session["capabilities"]["browserVersion"]

    def _endpoint(self) -> str:
        deadline = time.monotonic() + BIDI_START_TIMEOUT_S
        while time.monotonic() < deadline:
            output = self.log.read_text(encoding="utf-8", errors="replace")
            found = re.search(r"WebDriver BiDi listening on (ws://\S+)", output)
            if found:
                return found.group(1)
            if self.process.poll() is not None:
                raise BiDiError(f"Firefox exited ({self.process.returncode}):\n{output[-2000:]}")
            time.sleep(0.05)
        raise BiDiError(f"Firefox did not open WebDriver BiDi in {BIDI_START_TIMEOUT_S} s")

    def _read(self) -> None:
        try:
            for raw in self._socket:
                message = json.loads(raw)
                if "id" in message:
                    with self._lock:
                        waiting = self._answers.get(message["id"])
                    if waiting is not None:
                        waiting.put(message)
                elif message.get("type") == "event":
                    self._events.put(message)
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                self._closed = True
                for waiting in self._answers.values():
                    waiting.put(_CLOSED)
            self._events.put(None)

    def _dispatch(self) -> None:
        # Events are handled here, not on the reader thread, so a handler may send commands.
        while (event := self._events.get()) is not None:
            for handler in self._handlers.get(event["method"], []):
                handler(event["params"])

    def on(self, event: str, handler: Callable[[dict[str, Any]], None]) -> None:
        """Call ``handler`` with the parameters of every ``event`` (subscribe separately)."""
        self._handlers.setdefault(event, []).append(handler)

    def send(self, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Send one command; its result, or BiDiError with the browser's message."""
        answer: queue.Queue[dict[str, Any]] = queue.Queue()
        with self._lock:
            if self._closed:
                raise BiDiError(f"{method}: {_CLOSED['message']}")
            self._next_id += 1
            command_id = self._next_id
            self._answers[command_id] = answer
        try:
            self._socket.send(json.dumps({"id": command_id, "method": method, "params": params}))
            message = answer.get(timeout=BIDI_COMMAND_TIMEOUT_S)
        except queue.Empty:
            raise BiDiError(f"{method}: no answer in {BIDI_COMMAND_TIMEOUT_S} s") from None
        finally:
            with self._lock:
                del self._answers[command_id]
        if message.get("type") == "error":
            raise BiDiError(f"{method}: {message.get('error')}: {message.get('message')}")
        result: dict[str, Any] = message["result"]
        return result

    def call(self, context: str, function: str, *args: Any) -> Any:
        """``await window[function](...args)`` in the page; its value, through JSON."""
        return self.evaluate(context, f"(args) => window[{json.dumps(function)}](...args)", args)

    def evaluate(self, context: str, function: str, arg: Any = None) -> Any:
        """``await (function)(arg)`` in the page, ``function`` being JavaScript source;
        its value, through JSON (``undefined`` reads as None)."""
        declaration = (
            f"async (payload) => JSON.stringify(await ({function})(JSON.parse(payload))) ?? 'null'"
        )
        params = {
            "functionDeclaration": declaration,
            "arguments": [{"type": "string", "value": json.dumps(arg)}],
            "awaitPromise": True,
            "target": {"context": context},
        }
        result = self.send("script.callFunction", params)
        if result["type"] == "exception":
            raise BiDiError(f"the page threw: {result['exceptionDetails']['text']}")
        return json.loads(result["result"]["value"])

    def close(self) -> None:
        try:
            if hasattr(self, "_socket"):
                with contextlib.suppress(BiDiError, ConnectionClosed):
                    self.send("browser.close", {})
            else:
                self.process.terminate()
            self._exit.close()
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)


# --- end WebDriver BiDi client ---


class FirefoxTab:
    def __init__(self, firefox: FirefoxBiDi, context: str) -> None:
        self.firefox = firefox
        self.context = context

    def call(self, function: str, *args: Any) -> Any:
        return self.firefox.call(self.context, function, *args)


FIREFOX_PREFS: dict[str, object] = {
    "network.proxy.type": 0,  # direct: the service is on 127.0.0.1
    # Keep http:// origins on http: HTTPS-First would load another origin.
    "dom.security.https_first": False,
    "dom.security.https_first_schemeless": False,
}


class FirefoxDriver:
    """Firefox, driven over WebDriver BiDi; page loads answered by network interception."""

    def __init__(self, executable: str) -> None:
        self.firefox = FirefoxBiDi(executable, FIREFOX_PREFS)
        self.intercepts: set[str] = set()
        self.firefox.on("network.beforeRequestSent", self._serve_page)
        self.firefox.send("session.subscribe", {"events": ["network.beforeRequestSent"]})

    def _serve_page(self, event: dict[str, Any]) -> None:
        if not event.get("isBlocked") or not self.intercepts & set(event.get("intercepts", [])):
            return
        content_type = {"type": "string", "value": "text/html; charset=utf-8"}
        response = {
            "request": event["request"]["request"],
            "statusCode": 200,
            "reasonPhrase": "OK",
            "headers": [{"name": "Content-Type", "value": content_type}],
            "body": {"type": "string", "value": PAGE},
        }
        with contextlib.suppress(BiDiError):  # the navigation then fails, and says why
            self.firefox.send("network.provideResponse", response)

    def open(self, origin: str) -> Tab:
        user_context = self.firefox.send("browser.createUserContext", {})["userContext"]
        params = {"type": "tab", "userContext": user_context}
        context = self.firefox.send("browsingContext.create", params)["context"]
        phases = {"phases": ["beforeRequestSent"], "contexts": [context]}
        intercept = self.firefox.send("network.addIntercept", phases)["intercept"]
        self.intercepts.add(intercept)
        try:
            navigation = {"context": context, "url": origin + "/", "wait": "complete"}
            self.firefox.send("browsingContext.navigate", navigation)
        finally:
            # From here on requests go to the network, so the service answers every preflight.
            self.firefox.send("network.removeIntercept", {"intercept": intercept})
            self.intercepts.discard(intercept)
        assert self.firefox.evaluate(context, "() => location.origin") == origin
        return FirefoxTab(self.firefox, context)

    def close(self) -> None:
        self.firefox.close()


@pytest.fixture(scope="session")
def engine() -> str:
    return engine_name()


@pytest.fixture(scope="session")
def browser(engine: str, service: Service) -> Iterator[Driver]:
    driver: Driver
    if engine == "firefox":
        paths = ("/usr/bin/firefox-esr", "/usr/bin/firefox")
        driver = FirefoxDriver(find_browser(FIREFOX_PATH, paths, FIREFOX_NAMES))
    else:
        executable = find_browser(CHROMIUM_PATH, ("/usr/bin/chromium",), CHROMIUM_NAMES)
        driver = ChromiumDriver(executable, service.base.rsplit(":", 1)[1])
    try:
        yield driver
    finally:
        driver.close()


class Visit:
    """A page at one origin, calling the service from its own script."""

    def __init__(self, tab: Tab, service: Service, environment: str) -> None:
        self.tab = tab
        self.service = service
        self.environment = environment

    def fetch(
        self, path: str, init: dict[str, Any] | None = None, read: list[str] | None = None
    ) -> dict[str, Any]:
        """What the page saw: status, body and the ``read`` headers, or the error."""
        url = self.service.url(self.environment, path)
        result: dict[str, Any] = self.tab.call("call", url, init or {}, read or [])
        return result

    def socket(self, path: str) -> dict[str, Any]:
        url = self.service.url(self.environment, path).replace("http://", "ws://", 1)
        result: dict[str, Any] = self.tab.call("openSocket", url)
        return result


@pytest.fixture(scope="session")
def visit(browser: Driver, service: Service) -> Callable[[str, str], Visit]:
    """The page at an origin, opened once and reused by every test of that origin.

    Each origin gets a browser context of its own, and every preflighted request goes to
    a path of its own, so no cached preflight carries over from one test to another.
    """
    pages: dict[tuple[str, str], Visit] = {}

    def open_page(environment: str, origin: str) -> Visit:
        if (environment, origin) not in pages:
            pages[environment, origin] = Visit(browser.open(origin), service, environment)
        return pages[environment, origin]

    return open_page


@pytest.fixture(scope="session")
def blocked(engine: str) -> dict[str, str]:
    """What the page catches from a fetch this engine blocked."""
    return {"error": "TypeError", "message": BLOCKED_MESSAGES[engine]}


def unique_path() -> str:
    return f"/browser-check/echo/{uuid.uuid4().hex}"


@pytest.mark.parametrize("case", ALLOWED, ids=case_id)
def test_allowed_origin_reads_a_simple_response(
    visit: Callable[[str, str], Visit], case: tuple[str, str]
) -> None:
    result = visit(*case).fetch("/health")
    assert result.get("status") == 200, result
    assert json.loads(result["body"]) == {"status": "ok"}


@pytest.mark.parametrize("case", ALLOWED, ids=case_id)
def test_allowed_origin_passes_the_preflight_for_every_method(
    visit: Callable[[str, str], Visit], service: Service, case: tuple[str, str]
) -> None:
    environment, _ = case
    settings = PROFILES[environment]
    page = visit(*case)
    headers = request_headers(settings)
    methods = (
        ["PUT"] if WILDCARD in settings.cors_allow_methods else list(settings.cors_allow_methods)
    )
    for method in [m for m in methods if m not in FORBIDDEN_METHODS]:
        path = unique_path()
        result = page.fetch(path, {"method": method, "headers": headers})
        assert result.get("status") == 200, (method, result)
        if method != "HEAD":
            received = json.loads(result["body"])
            assert received["method"] == method
            for name, value in headers.items():
                assert received["headers"][name.lower()] == value, name
        assert service.seen(environment, path) == {"OPTIONS": 1, method: 1}, method


@pytest.mark.parametrize("case", ALLOWED, ids=case_id)
def test_credentialed_request_follows_the_credentials_setting(
    visit: Callable[[str, str], Visit], blocked: dict[str, str], case: tuple[str, str]
) -> None:
    result = visit(*case).fetch("/health", {"credentials": "include"})
    if PROFILES[case[0]].cors_allow_credentials:
        assert result.get("status") == 200, result
    else:
        # Without Access-Control-Allow-Credentials the browser withholds the response.
        assert result == blocked


@pytest.mark.parametrize("case", ALLOWED, ids=case_id)
def test_only_exposed_headers_are_readable(
    visit: Callable[[str, str], Visit], case: tuple[str, str]
) -> None:
    settings = PROFILES[case[0]]
    exposed = exposed_headers(settings)
    result = visit(*case).fetch("/browser-check/headers", read=[*exposed, HIDDEN_HEADER])
    assert result.get("status") == 200, result
    everything = WILDCARD in settings.cors_expose_headers  # only without credentials
    expected: dict[str, str | None] = {name: "browser-check" for name in exposed}
    expected[HIDDEN_HEADER] = "hidden" if everything else None
    assert result["headers"] == expected


@pytest.mark.parametrize("case", ALLOWED, ids=case_id)
def test_unhandled_error_reads_as_a_500(
    visit: Callable[[str, str], Visit], case: tuple[str, str]
) -> None:
    result = visit(*case).fetch("/browser-check/error")
    assert result.get("status") == 500, result
    assert json.loads(result["body"]) == {"detail": "Internal Server Error"}


@pytest.mark.parametrize("case", ALLOWED, ids=case_id)
def test_allowed_origin_opens_a_websocket(
    visit: Callable[[str, str], Visit], case: tuple[str, str]
) -> None:
    result = visit(*case).socket("/browser-check/ws")
    assert result == {"events": ["open", "message:echo:ping", "close:1000"]}


@pytest.mark.parametrize("case", REFUSED, ids=case_id)
def test_refused_origin_cannot_read_the_response(
    visit: Callable[[str, str], Visit],
    service: Service,
    blocked: dict[str, str],
    case: tuple[str, str],
) -> None:
    environment, _ = case
    path = unique_path()
    assert visit(*case).fetch(path) == blocked
    # The request reached the service; the browser withheld the answer.
    assert service.seen(environment, path) == {"GET": 1}


@pytest.mark.parametrize("case", REFUSED, ids=case_id)
def test_refused_origin_cannot_open_a_websocket(
    visit: Callable[[str, str], Visit], case: tuple[str, str]
) -> None:
    result = visit(*case).socket("/browser-check/ws")
    assert "open" not in result["events"], result
    assert result["events"][-1] == "close:1006", result
