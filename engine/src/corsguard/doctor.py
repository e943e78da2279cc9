"""``corsguard doctor APP``: what is left of an app's old CORS, each finding with its fix.

``APP`` is ``module:attribute``, an app or a factory called with no arguments (as
``uvicorn --factory`` does), imported from the current directory as its server would.
Exit status: 0 when clean, 1 with findings, 2 on bad input.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.metadata
import inspect
import json
import os
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from .explain import asgi_request, run
from .middleware import PathScopedCORSMiddleware, PolicyCORSMiddleware
from .settings import CORSSettings, dotenv_file_values, variable_names

CLEAN, FINDINGS, BAD_INPUT = 0, 1, 2
PROBE_ORIGIN = "https://doctor-probe.invalid"
OUR_LAYERS = (PolicyCORSMiddleware, PathScopedCORSMiddleware)
# The oldest releases the engine runs on (pyproject.toml's floors).
FLOORS = {"fastapi": (0, 128, 3), "pydantic": (2, 7)}
_OLD_NAME = re.compile(r"(^|_)(FRONTEND_(HOST|URL|ORIGIN)S?|ALLOWED_HOSTS?)$")
_FIX_LAYER = (
    "install the policy last in the app factory: add_cors(app, Settings.load()), after "
    "every app.add_middleware(...) call"
)


class DoctorInputError(Exception):
    """APP cannot be imported or is not an app: exit 2."""


@dataclass(frozen=True)
class Finding:
    id: str
    what: str
    fix: str


def installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _release(version: str) -> tuple[int, ...]:
    numbers = []
    for part in version.split("."):
        digits = re.match(r"\d+", part)
        if digits is None:
            break
        numbers.append(int(digits.group()))
    return tuple(numbers)


def version_problems() -> list[str]:
    """The installed FastAPI or pydantic older than the engine's floor."""
    problems = []
    for distribution, floor in FLOORS.items():
        found = installed_version(distribution)
        if found is not None and _release(found) < floor:
            wanted = ".".join(map(str, floor))
            problems.append(
                f"{distribution} {found} is installed; corsguard needs {distribution}>={wanted}"
            )
    return problems


def load_app(spec: str) -> Starlette:
    """The app ``spec`` (``module:attribute``) names, as its server would import it."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise DoctorInputError(
            f"{spec!r} is not module:attribute: write it as uvicorn takes it, as in "
            "app.main:app (or app.main:create_app for a factory)"
        )
    # Like uvicorn: the current directory is importable, for apps that are not installed.
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except (ImportError, AttributeError) as error:
        problems = version_problems()
        if problems:
            raise DoctorInputError(
                f"cannot import {module_name!r} (from {spec!r}): {'; '.join(problems)}: "
                "upgrade them (fastapi>=0.128.3, pydantic>=2.7) and run doctor again"
            ) from None
        raise DoctorInputError(
            f"cannot import {module_name!r} (from {spec!r}): {error}; run corsguard from the "
            "project's root, in its environment (uv run corsguard doctor ...)"
        ) from None
    except Exception as error:
        raise DoctorInputError(
            f"importing {module_name!r} (from {spec!r}) failed: {type(error).__name__}: "
            f"{error}; fix the error, or run doctor where the app starts"
        ) from None
    if not hasattr(module, attribute):
        raise DoctorInputError(
            f"{module_name!r} has no attribute {attribute!r} (from {spec!r}): name the app "
            "or its factory, as in app.main:app"
        )
    found = getattr(module, attribute)
    if callable(found) and not isinstance(found, Starlette):
        try:
            inspect.signature(found).bind()
        except TypeError:
            raise DoctorInputError(
                f"the factory {spec!r} cannot be called with no arguments, as servers call "
                "it: name a factory that takes none, or the app"
            ) from None
        except ValueError:  # pragma: no cover - no signature: try calling it
            pass
        try:
            found = found()
        except Exception as error:
            raise DoctorInputError(
                f"the factory {spec!r} raised {type(error).__name__}: {error}\nthe app "
                "would not start either: fix that first, then run doctor again"
            ) from None
    if not isinstance(found, Starlette):
        raise DoctorInputError(
            f"{spec!r} is a {type(found).__name__}, not a FastAPI or Starlette app (nor a "
            "factory that returns one): name the app, as in app.main:app"
        )
    return found


def _name(cls: Any) -> str:
    return f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', cls)}"


def _options(middleware: Any) -> dict[str, Any]:
    """A middleware's options by name, positional ones too."""
    try:
        bound = inspect.signature(middleware.cls).bind_partial(
            None, *middleware.args, **middleware.kwargs
        )
    except (TypeError, ValueError):
        return dict(middleware.kwargs)
    options = dict(bound.arguments)
    options.pop(next(iter(inspect.signature(middleware.cls).parameters)), None)
    return options


async def _noop(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def probe(middleware: Any) -> dict[str, dict[str, str]]:
    """What ``middleware`` alone answers a preflight and a credentialed GET from the probe
    origin: ``{"preflight": {...}, "get": {...}}`` of the CORS headers it returned."""
    asgi = middleware.cls(_noop, *middleware.args, **middleware.kwargs)
    preflight = {"Origin": PROBE_ORIGIN, "Access-Control-Request-Method": "GET"}
    answers = {
        "preflight": run(asgi_request(asgi, "OPTIONS", "/", preflight)),
        "get": run(
            asgi_request(asgi, "GET", "/", {"Origin": PROBE_ORIGIN, "Cookie": "doctor=probe"})
        ),
    }
    wanted = ("access-control-allow-origin", "access-control-allow-credentials")
    return {
        kind: {name: answer.headers[name] for name in wanted if name in answer.headers}
        for kind, answer in answers.items()
    }


def _describe_answer(kind: str, headers: dict[str, str]) -> str:
    kind = "preflight" if kind == "preflight" else "GET (with a cookie)"
    if "access-control-allow-origin" not in headers:
        return f"its {kind} answer does not allow it"
    credentials = headers.get("access-control-allow-credentials", "absent")
    return (
        f"its {kind} answer says Access-Control-Allow-Origin: "
        f"{headers['access-control-allow-origin']}, Access-Control-Allow-Credentials: "
        f"{credentials}"
    )


def origin_with_path(origin: str) -> bool:
    parts = urlsplit(origin.strip())
    return bool(parts.scheme and parts.netloc) and bool(parts.path or parts.query)


def _origins_in(value: str) -> list[str]:
    """The origins a variable holds: a JSON list, or a comma-separated list."""
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if isinstance(parsed, list):
        return [str(item) for item in parsed]
    if isinstance(parsed, str):
        return [parsed]
    return [item.strip() for item in value.split(",") if item.strip()]


def _path_findings(where: str, origins: Iterable[str]) -> list[Finding]:
    return [
        Finding(
            "origin-with-path",
            f"{where} lists {origin!r}: a browser's Origin header has no path or trailing "
            f"slash, so it never equals this (AnyHttpUrl writes origins this way)",
            f"write the origin alone: {urlsplit(origin.strip()).scheme}://"
            f"{urlsplit(origin.strip()).netloc}",
        )
        for origin in origins
        if origin_with_path(origin)
    ]


def middleware_findings(app: Starlette) -> list[Finding]:
    stack = list(app.user_middleware)
    ours = [
        i for i, m in enumerate(stack) if isinstance(m.cls, type) and issubclass(m.cls, OUR_LAYERS)
    ]
    findings = []
    if not ours:
        findings.append(
            Finding(
                "no-corsguard-layer",
                "the app has no corsguard layer (PolicyCORSMiddleware or "
                "PathScopedCORSMiddleware) among its middleware: no policy answers browsers",
                _FIX_LAYER,
            )
        )
    elif ours[0] > 0:
        outside = ", ".join(_name(m.cls) for m in stack[: ours[0]])
        findings.append(
            Finding(
                "layer-not-outermost",
                f"the corsguard layer {_name(stack[ours[0]].cls)} is not the outermost "
                f"middleware: {outside} wraps it, so what that answers or rejects reaches "
                "browsers without the policy's CORS headers",
                _FIX_LAYER + " (the middleware added last is the outermost)",
            )
        )
    for mounted, middleware in _layers(app):
        cls = middleware.cls
        if not (isinstance(cls, type) and issubclass(cls, CORSMiddleware)):
            continue
        if issubclass(cls, OUR_LAYERS):  # pragma: no cover - ours are not subclasses today
            continue
        options = _options(middleware)
        shown = ", ".join(f"{key}={value!r}" for key, value in options.items()) or "defaults"
        try:
            answers = probe(middleware)
            answered = "; ".join(_describe_answer(kind, h) for kind, h in answers.items())
        except Exception as error:
            answered = f"it could not be probed ({type(error).__name__}: {error})"
        findings.append(
            Finding(
                "stock-cors-middleware",
                f"{_name(cls)} is still installed{mounted} ({shown}). Asked by {PROBE_ORIGIN}, an "
                f"origin no policy lists: {answered}",
                f"remove the app.add_middleware({cls.__name__}, ...) call (or its "
                "Middleware(...) entry): the corsguard layer answers every CORS request, and "
                "the origins belong in the profiles file",
            )
        )
        origins = options.get("allow_origins", ())
        origins = [origins] if isinstance(origins, str) else list(origins or ())
        if "*" in origins and options.get("allow_credentials"):
            findings.append(
                Finding(
                    "wildcard-with-credentials",
                    f"{_name(cls)} is configured with allow_origins=['*'] and "
                    "allow_credentials=True: it reflects any origin with credentials, so "
                    "every site can read your users' authenticated responses",
                    "remove it, and list the origins that may send credentials in the "
                    "profiles file (cors_allow_origins, cors_allow_credentials = true)",
                )
            )
        findings.extend(_path_findings(f"{cls.__name__}'s allow_origins", map(str, origins)))
    return findings


def _layers(app: Starlette, prefix: str = "") -> Iterable[tuple[str, Any]]:
    """The app's middleware, then that of each app mounted in it (the "per-router CORS"
    recipe): ("", middleware) or (" on the app mounted at /path", middleware)."""
    where = f" on the app mounted at {prefix}" if prefix else ""
    for middleware in app.user_middleware:
        yield where, middleware
    for route in app.routes:
        if isinstance(route, Mount) and isinstance(route.app, Starlette):
            yield from _layers(route.app, prefix + route.path)


def _routes(routes: Iterable[Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for route in routes:
        if isinstance(route, Mount):
            yield from _routes(route.routes, prefix + route.path)
        elif hasattr(route, "original_router"):
            # Newer FastAPI keeps an included router whole instead of copying its routes
            # into the app's; the router's routes carry its own prefix, the include's is
            # added here.
            context = getattr(route, "include_context", None)
            included = prefix + str(getattr(context, "prefix", "") or "")
            yield from _routes(route.original_router.routes, included)
        else:
            yield prefix + str(getattr(route, "path", "")), route


def route_findings(app: Starlette, layered: bool) -> list[Finding]:
    findings = []
    for path, route in _routes(app.routes):
        methods = getattr(route, "methods", None) if isinstance(route, Route) else None
        if not methods or "OPTIONS" not in methods:
            continue
        name = getattr(route, "name", "") or "?"
        what = (
            "the corsguard layer answers every preflight before it, so its CORS headers "
            "are never sent"
            if layered
            else "it answers browsers' preflights by hand, outside any policy"
        )
        findings.append(
            Finding(
                "route-answers-options",
                f"route {name} ({path}) answers OPTIONS itself: {what}",
                "remove OPTIONS from the route (or the @app.options handler): the policy "
                "answers preflights",
            )
        )
    return findings


def is_old_cors_name(name: str) -> bool:
    upper = name.upper()
    if upper.startswith("CORSGUARD_"):
        return False
    return "CORS" in upper or "ORIGIN" in upper or bool(_OLD_NAME.search(upper))


def variables(start: Path | None = None) -> dict[str, tuple[str, str]]:
    """The process environment and the cwd's ``.env``: name to (where, value)."""
    values = dotenv_file_values((start or Path.cwd()) / ".env")
    found = {name: (".env", value) for name, value in values.items()}
    found.update({k: ("the environment", v) for k, v in os.environ.items()})
    return found


def variable_findings(settings_cls: type[CORSSettings] | None) -> list[Finding]:
    known = {name.upper() for name in variable_names(settings_cls)} if settings_cls else set()
    findings = []
    for name, (where, value) in sorted(variables().items()):
        upper = name.upper()
        if not is_old_cors_name(name):
            continue
        read = upper in known or any(fnmatch.fnmatchcase(upper, p) for p in known)
        if not read:
            reader = (
                f"no setting of {settings_cls.__name__} reads it"
                if settings_cls
                else "the app has no corsguard settings to read it"
            )
            findings.append(
                Finding(
                    "old-cors-variable",
                    f"{name} is set in {where} ({value!r}) and {reader}",
                    "move its origins into the profiles file (or the variable the settings "
                    f"read, as in CORS_ALLOW_ORIGINS), then unset {name}",
                )
            )
        findings.extend(_path_findings(f"{name} (in {where})", _origins_in(value)))
    return findings


def diagnose(app: Starlette) -> list[Finding]:
    """Every finding about ``app`` and the variables of the process and the cwd's ``.env``."""
    settings = getattr(app.state, "cors_settings", None)
    settings_cls = type(settings) if isinstance(settings, CORSSettings) else None
    findings = middleware_findings(app)
    layered = not any(f.id == "no-corsguard-layer" for f in findings)
    return findings + route_findings(app, layered) + variable_findings(settings_cls)


def doctor_command(spec: str, as_json: bool = False, out: Callable[[str], None] = print) -> int:
    try:
        app = load_app(spec)
    except DoctorInputError as error:
        print(error, file=sys.stderr)
        return BAD_INPUT
    findings = diagnose(app)
    if as_json:
        out(json.dumps({"app": spec, "findings": [asdict(f) for f in findings]}, indent=2))
        return FINDINGS if findings else CLEAN
    if not findings:
        out(f"{spec}: no findings: the corsguard layer is outermost and nothing old is left")
        return CLEAN
    out(f"{spec}: {len(findings)} finding{'s' if len(findings) != 1 else ''}")
    for finding in findings:
        out(f"[{finding.id}] {finding.what}\n  fix: {finding.fix}")
    return FINDINGS
