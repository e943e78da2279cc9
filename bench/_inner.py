"""The measurements that need the generated service: run with the service's own Python.

``bench/run.py`` starts this file as ``<service>/.venv/bin/python bench/_inner.py ...``
and reads one JSON document from its standard output. It is also the module that
uvicorn imports (``--app-dir bench --factory _inner:bare_app``) for the servers without
the generated CORS layer. The package of the generated service is named by ``BENCH_PACKAGE``.

Commands:
  asgi ROUNDS BATCH_SECONDS  time in-process requests driven straight into the ASGI apps
  versions                   the versions of the packages the service runs on
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The CORS options of the example answers' production profile, given to stock and
# generated layers alike so that only the origin lookup differs.
METHODS = ["GET", "POST", "PUT", "DELETE"]
HEADERS = ["Authorization", "Content-Type"]
EXPOSE = ["X-Request-ID"]
MAX_AGE = 600
ORIGIN_COUNTS = (1, 100, 10_000)
LONG_ORIGINS = (1024, 65536, 262144)
PATTERN_COUNTS = (1, 100)


def package() -> str:
    name = os.environ.get("BENCH_PACKAGE", "")
    if not name:
        raise SystemExit("BENCH_PACKAGE is not set: name the generated service's package")
    return name


def bare_app() -> FastAPI:
    """The service's own /health route in a FastAPI app without any middleware."""
    health = importlib.import_module(f"{package()}.routers.health")
    app = FastAPI()
    app.include_router(health.router)
    return app


def stock_app(origins: list[str] | None = None, origin_regex: str | None = None) -> FastAPI:
    """Starlette's CORSMiddleware as documented: a list of origins, or one regex."""
    app = bare_app()
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins or [],
        allow_origin_regex=origin_regex,
        allow_credentials=True,
        allow_methods=METHODS,
        allow_headers=HEADERS,
        expose_headers=EXPOSE,
        max_age=MAX_AGE,
    )
    return app


def stock_server_app() -> FastAPI:
    """For uvicorn: the stock middleware allowing the one origin named by ``BENCH_ORIGIN``."""
    return stock_app(origins=[os.environ["BENCH_ORIGIN"]])


class AppendHeaders:
    """Appends fixed headers to every response and decides nothing."""

    def __init__(self, app: ASGIApp, headers: list[tuple[bytes, bytes]]) -> None:
        self.app = app
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *self.headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def headers_only_app() -> FastAPI:
    """For uvicorn: the bare app plus :class:`AppendHeaders` with ``BENCH_HEADERS`` (a
    JSON list of name/value pairs): what sending the CORS headers costs, whoever
    decides them."""
    pairs = json.loads(os.environ["BENCH_HEADERS"])
    app = bare_app()
    app.add_middleware(
        AppendHeaders,  # type: ignore[arg-type]
        headers=[(name.encode("latin-1"), value.encode("latin-1")) for name, value in pairs],
    )
    return app


def generated_app(entries: list[str], **extra: Any) -> FastAPI:
    """The generated service's app, its origins given through Settings."""
    main = importlib.import_module(f"{package()}.main")
    settings = importlib.import_module(f"{package()}.settings")
    return main.create_app(  # type: ignore[no-any-return]
        settings.Settings(
            _env_file=None,
            environment="production",
            cors_allow_origins=entries,
            cors_allow_credentials=True,
            cors_allow_methods=METHODS,
            cors_allow_headers=HEADERS,
            cors_expose_headers=EXPOSE,
            cors_max_age=MAX_AGE,
            **extra,
        )
    )


def exact_origins(count: int) -> list[str]:
    return [f"https://app{index}.example.com" for index in range(count)]


def patterns(count: int) -> list[str]:
    return [f"https://*.tenant{index}.example.com" for index in range(count)]


def stock_regex(count: int) -> str:
    """The regex a careful user would write for the same patterns (escaped dots)."""
    return "|".join(
        rf"https://(?:[a-z0-9-]+\.)+tenant{index}\.example\.com" for index in range(count)
    )


async def harness_app(scope: Scope, receive: Receive, send: Send) -> None:
    """No application at all: what the harness itself costs per request."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def request_scope(
    method: str, origin: str | None, extra: list[tuple[bytes, bytes]] | None = None
) -> Scope:
    headers = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench"), *(extra or [])]
    if origin is not None:
        headers.append((b"origin", origin.encode("latin-1")))
    if method == "OPTIONS":
        headers += [
            (b"access-control-request-method", b"PUT"),
            (b"access-control-request-headers", b"authorization"),
        ]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": "/health",
        "raw_path": b"/health",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


_REQUEST_BODY: Message = {"type": "http.request", "body": b"", "more_body": False}


async def _receive() -> Message:
    return _REQUEST_BODY


async def _discard(message: Message) -> None:
    return None


def layer_of(app: FastAPI) -> ASGIApp:
    """The app's own middleware (its CORS layer) around the no-op app, nothing else.

    Built the way Starlette builds its stack, from the middleware that ``create_app``
    added, so a simple request pays for the CORS work only, not for routing and the
    route itself.
    """
    layer: ASGIApp = harness_app
    for middleware in reversed(app.user_middleware):
        layer = middleware.cls(layer, *middleware.args, **middleware.kwargs)
    return layer


@dataclass
class Case:
    """One app and one request, timed per request."""

    config: str
    column: str
    app: ASGIApp
    scope: Scope
    status: int
    allow_origin: str | None
    per_call: int = 1
    samples: list[float] = field(default_factory=list)

    async def check(self) -> None:
        """Fail unless the response is the one the measurement claims to time."""
        sent: list[Message] = []

        async def keep(message: Message) -> None:
            sent.append(message)

        await self.app(dict(self.scope), _receive, keep)
        start = sent[0]
        headers = {key.decode(): value.decode() for key, value in start.get("headers", [])}
        allow = headers.get("access-control-allow-origin")
        if start["status"] != self.status or allow != self.allow_origin:
            raise SystemExit(
                f"{self.config} ({self.column}): expected status {self.status} and "
                f"access-control-allow-origin {self.allow_origin!r}, got {start['status']} "
                f"and {allow!r}; the benchmark would not measure what it reports"
            )

    async def batch(self, count: int) -> float:
        """Seconds per request over ``count`` requests."""
        app, scope = self.app, self.scope
        started = time.perf_counter()
        for _ in range(count):
            await app(dict(scope), _receive, _discard)
        return (time.perf_counter() - started) / count


def cases() -> list[Case]:
    """Every configuration, each with a simple request and a preflight through the full
    app, and a simple request through its middleware alone."""
    found: list[Case] = []

    def add(config: str, app: FastAPI, origin: str) -> None:
        found.append(Case(config, "simple", app, request_scope("GET", origin), 200, origin))
        found.append(Case(config, "preflight", app, request_scope("OPTIONS", origin), 200, origin))
        layer = layer_of(app)
        found.append(Case(config, "layer", layer, request_scope("GET", origin), 200, origin))

    bare, origin = bare_app(), exact_origins(1)[-1]
    found.append(Case("bare", "simple", bare, request_scope("GET", origin), 200, None))
    # Without a CORS layer FastAPI routes the preflight to /health, which answers 405.
    found.append(Case("bare", "preflight", bare, request_scope("OPTIONS", origin), 405, None))
    found.append(Case("bare", "layer", harness_app, request_scope("GET", origin), 200, None))
    for count in ORIGIN_COUNTS:
        origins = exact_origins(count)
        add(f"stock/origins/{count}", stock_app(origins=origins), origins[-1])
        add(f"generated/origins/{count}", generated_app(origins), origins[-1])
    for count in PATTERN_COUNTS:
        origin = f"https://app.tenant{count - 1}.example.com"
        add(f"stock/patterns/{count}", stock_app(origin_regex=stock_regex(count)), origin)
        add(f"generated/patterns/{count}", generated_app(patterns(count)), origin)
    found += extra_cases()
    return found


def extra_cases() -> list[Case]:
    """The layer alone: a cross-site POST from an allowed origin with the cross-origin
    write protection on and off, and refused Origins of 1 KiB to 256 KiB (a host of
    dots) against a profile with a pattern, beside stock CORSMiddleware with its regex."""
    found: list[Case] = []
    origin = exact_origins(1)[-1]
    cross_site = [(b"sec-fetch-site", b"cross-site")]
    for state, on in (("on", True), ("off", False)):
        app = generated_app([origin], cors_cross_origin_protection=on)
        scope = request_scope("POST", origin, cross_site)
        found.append(Case(f"extra/write/{state}", "layer", layer_of(app), scope, 200, origin))
        scope = request_scope("GET", origin, cross_site)
        found.append(Case(f"extra/read/{state}", "layer", layer_of(app), scope, 200, origin))
    generated = layer_of(generated_app([origin, *patterns(1)]))
    stock = layer_of(stock_app(origins=[origin], origin_regex=stock_regex(1)))
    for size in LONG_ORIGINS:
        long_origin = "https://" + "a." * ((size - len("https://example.net")) // 2) + "example.net"
        scope = request_scope("GET", long_origin)
        found.append(Case(f"extra/long/{size}/generated", "layer", generated, scope, 200, None))
        found.append(Case(f"extra/long/{size}/stock", "layer", stock, scope, 200, None))
    return found


async def measure(rounds: int, batch_seconds: float) -> dict[str, dict[str, float]]:
    """Median µs per request of every case; in each round every case takes its turn, so
    a slow spell on the machine hits all of them alike instead of one."""
    found = cases()
    for case in found:
        await case.check()
        for _ in range(50):  # warm: middleware stack built, caches filled
            await case.batch(1)
        probe = max(await case.batch(20), 1e-7)
        case.per_call = max(20, int(batch_seconds / probe))
    for _ in range(rounds):
        for case in found:
            gc.collect()
            case.samples.append(await case.batch(case.per_call))
    result: dict[str, dict[str, float]] = {}
    for case in found:
        result.setdefault(case.config, {})[case.column] = statistics.median(case.samples) * 1e6
    return result


def versions() -> dict[str, str]:
    names = ("fastapi", "starlette", "pydantic", "pydantic-settings", "uvicorn", "uvloop")
    found = {name: version(name) for name in names}
    found["python"] = sys.version.split()[0]
    return found


def main(argv: list[str]) -> None:
    if argv[:1] == ["asgi"] and len(argv) == 3:
        result = asyncio.run(measure(int(argv[1]), float(argv[2])))
    elif argv == ["versions"]:
        result = versions()
    else:
        raise SystemExit(__doc__)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
