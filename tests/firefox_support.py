"""Firefox for the browser suite: Debian's Firefox ESR, driven over WebDriver BiDi.

Firefox speaks WebDriver BiDi natively, so the suite talks to it directly over one
WebSocket: no geckodriver, no Selenium, no browser download (docs/design.md says why).
The client between the two marker lines is copied verbatim into the generated project's
opt-in harness (engine/tests/test_browser.py);
tests/test_firefox_client.py keeps the two copies equal.
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

FIREFOX = Path("/usr/bin/firefox-esr")
INSTALL_FIREFOX = "apt-get update && apt-get install -y firefox-esr"


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
            self.process = subprocess.Popen(
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


def firefox_path() -> Path:
    """Firefox ESR from Debian; its absence fails the suite, it is never skipped."""
    if not FIREFOX.exists():
        pytest.fail(
            f"{FIREFOX} is missing, and the Firefox browser tests need it: run "
            f"`{INSTALL_FIREFOX}` (.ci/run does this), or deselect them with "
            "-m 'not firefox'",
            pytrace=False,
        )
    return FIREFOX


class FirefoxTab:
    """One tab in a user context of its own (a container: own cookies, own caches)."""

    def __init__(self, firefox: FirefoxBiDi, user_context: str, context: str) -> None:
        self.firefox = firefox
        self.user_context = user_context
        self.context = context
        self.console: list[str] = []

    def goto(self, url: str) -> None:
        params = {"context": self.context, "url": url, "wait": "complete"}
        self.firefox.send("browsingContext.navigate", params)

    def call(self, function: str, *args: Any) -> Any:
        return self.firefox.call(self.context, function, *args)

    def evaluate(self, function: str, arg: Any = None) -> Any:
        return self.firefox.evaluate(self.context, function, arg)


class FirefoxEngine:
    """The suite's view of Firefox: fresh tabs, each with its console."""

    name = "firefox"

    def __init__(self, prefs: Mapping[str, object]) -> None:
        self.firefox = FirefoxBiDi(str(firefox_path()), prefs, accept_insecure_certs=True)
        self.version = self.firefox.version
        self._tabs: dict[str, FirefoxTab] = {}
        self.firefox.on("log.entryAdded", self._log)
        self.firefox.send("session.subscribe", {"events": ["log.entryAdded"]})

    def _log(self, entry: dict[str, Any]) -> None:
        tab = self._tabs.get(entry.get("source", {}).get("context", ""))
        if tab is not None:
            tab.console.append(entry["text"])

    def new_tab(self) -> FirefoxTab:
        user_context = self.firefox.send("browser.createUserContext", {})["userContext"]
        params = {"type": "tab", "userContext": user_context}
        context = self.firefox.send("browsingContext.create", params)["context"]
        tab = FirefoxTab(self.firefox, user_context, context)
        self._tabs[context] = tab
        return tab

    def close_tabs(self) -> None:
        for tab in self._tabs.values():
            self.firefox.send("browser.removeUserContext", {"userContext": tab.user_context})
        self._tabs.clear()

    def close(self) -> None:
        self.firefox.close()
