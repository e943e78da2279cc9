"""``corsguard init``: adopt the policy in an existing project, changing none of its files.

Run at the project's root. ``init`` reads the source (with ``ast``: nothing of the project
is imported or run) to find the app (``app = FastAPI()`` or a factory), its
pydantic-settings class and its tests folder, and the origins the app configures today:
a literal list given to Starlette's ``CORSMiddleware``, or the settings field that feeds
it (its default, or its value in ``.env`` or the environment). It asks the template's
questions with those as the defaults, checks every answer with the rules the app applies
at start-up, and writes two new files: the profiles file beside the settings module and
a policy test. It refuses to overwrite either. The changes to the project's own files
(the settings class, ``add_cors``, the old CORS code removed) are printed as a patch on
stdout, everything else on stderr, so that ``corsguard init > cors.patch`` then
``git apply cors.patch`` makes them. Exit status: 0 when written, 2 on bad input or a
refusal.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import re
import shutil
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar

from .doctor import FLOORS, _origins_in, _release, is_old_cors_name, version_problems
from .origins import WILDCARD, OriginError, parse_origin
from .settings import (
    ConfigError,
    CORSConfigDict,
    CORSSettings,
    credentials_problem,
    dotenv_file_values,
    header_list,
    method_list,
    path_prefix,
    split_list,
)
from .testing import profile_settings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

WRITTEN, BAD_INPUT, INTERRUPTED = 0, 2, 130
PROFILES_NAME = "cors.toml"
POLICY_TEST_NAME = "test_cors_policy.py"
DEFAULT_VARIABLE = "ENVIRONMENT"
DEFAULT_LINE_LENGTH = 88
# Folders that hold no source of the project's own.
SKIPPED_FOLDERS = frozenset({"node_modules", "site-packages", "build", "dist", "__pycache__"})
T = TypeVar("T")

# --- The questions: copier.yml's words (tests/test_adopt.py checks that they agree) -------

HELP = {
    "cors_allow_credentials": (
        'Do browsers send cookies or HTTP auth to the API (credentials: "include")?\n'
        "   Answer yes only if they must; then no environment may allow every origin\n"
        "   ('*'). Asked first, so that each origin answer is checked against it."
    ),
    "development": (
        "Development: which origins (where the frontend's pages come from) may call\n"
        "   the API? Comma-separated scheme://host[:port]. Leave empty for none."
    ),
    "test": (
        "Test: which origins may call the API? Comma-separated scheme://host[:port].\n"
        "   Leave empty for none."
    ),
    "staging": (
        "Staging: which origins may call the API? Comma-separated, e.g.\n"
        "   https://staging.example.com. A pattern such as https://*.pr.example.com\n"
        "   allows every subdomain of pr.example.com (not the bare domain). Leave\n"
        "   empty for none."
    ),
    "production": (
        "Production: which origins may call the API? Comma-separated, e.g.\n"
        "   https://app.example.com. Use * only for a public API without cookies."
    ),
    "cors_allow_methods": (
        "Which HTTP methods may browsers use from another origin? GET, HEAD and a\n"
        "   form POST need no preflight; the rest are checked by one first.\n"
        "   Comma-separated: GET, HEAD, POST, PUT, PATCH, DELETE (* for all)."
    ),
    "request_headers": (
        "Which request headers may the frontend send, comma-separated? Accept,\n"
        "   Accept-Language, Content-Language and Content-Type always pass.\n"
        "   E.g. Authorization, X-Request-ID. Empty for none; * for any."
    ),
    "response_headers": (
        "Which response headers may the frontend's scripts read, comma-separated?\n"
        "   Cache-Control, Content-Language, Content-Length, Content-Type, Expires,\n"
        "   Last-Modified and Pragma always can. E.g. X-Request-ID. Empty for none;\n"
        "   * for all (without credentials only)."
    ),
    "max_age": (
        "How many seconds may a browser cache a preflight answer? 0 to 86400\n"
        "   (Chromium caps it at 7200, Firefox at 86400)."
    ),
    "public_paths": (
        "Public endpoints that any website may read without cookies (open data, a\n"
        "   widget, a status page)? Their path prefixes, comma-separated (e.g. /public,\n"
        "   /status), or empty. They get GET and HEAD, never credentials; every other\n"
        "   path keeps the policy above."
    ),
    "cors_public_origins": (
        "Which origins may read the public paths? * for any website, or\n"
        "   comma-separated origins."
    ),
    # init's own questions: an existing app names its environments and their variable.
    "environment_variable": (
        "Which variable picks the environment's profile when the app starts?\n"
        "   ENVIRONMENT, unless the app names its environments in another (APP_ENV)."
    ),
    "environments": (
        "Which environments does the service run in? Comma-separated names.\n"
        "   Each gets its own CORS profile, picked at run time by {variable}=<name>."
    ),
    "other_origins": (
        "{title}: which origins may call the API? Comma-separated\n"
        "   scheme://host[:port]. Leave empty for none."
    ),
    "tests": (
        "Where do the app's tests live? A folder, from the project's root; the\n"
        "   policy test goes there."
    ),
    "app": (
        "Which app does the server run? module:attribute as uvicorn takes it, an app\n"
        "   or a factory (as in app.main:app)."
    ),
}
# copier.yml's defaults, for an app whose own configuration says nothing.
DEFAULTS = {
    "environments": "development, staging, production",
    "cors_allow_credentials": "no",
    "development": "http://localhost:3000, http://localhost:5173",
    "test": "http://localhost:3000",
    "staging": "https://staging.example.com",
    "production": "https://app.example.com",
    "cors_allow_methods": "GET, POST, PUT, PATCH, DELETE",
    "request_headers": "Authorization, Content-Type",
    "response_headers": "",
    "max_age": "600",
    "public_paths": "",
    "cors_public_origins": "*",
}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class InitError(Exception):
    """Bad input, an answer missing, or a file init will not overwrite: exit 2."""


# --- Checking answers: the engine's rules, the template's words for what they add ----------


def _items(text: str) -> list[str]:
    try:
        items = split_list(text)
    except ValueError as error:
        raise ValueError(f"{text!r} {error}") from None
    return [str(item).strip() for item in items]


def check_environments(text: str) -> tuple[str, ...]:
    names = _items(text)
    if not names:
        raise ValueError("Choose at least one environment.")
    for name in names:
        if not _NAME.match(name):
            raise ValueError(
                f"{name!r} is not a usable environment name: use letters, digits, '-' and "
                "'_', starting with a letter, as in production"
            )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"{repeated[0]!r} is listed twice: list each environment once")
    return tuple(names)


def check_variable(text: str) -> str:
    if not _VARIABLE.match(text):
        raise ValueError(
            f"{text!r} is not a variable name: use letters, digits and '_', as in APP_ENV"
        )
    return text


def check_bool(text: str) -> bool:
    answer = text.strip().lower()
    if answer in ("y", "yes", "true", "1"):
        return True
    if answer in ("n", "no", "false", "0"):
        return False
    raise ValueError(f"{text!r} is not yes or no: answer y or n")


def check_origins(text: str, environment: str, credentials: bool) -> tuple[str, ...]:
    """One environment's origins, normalized; ValueError naming the value and the fix."""
    seen: dict[str, str] = {}
    for raw in _items(text):
        try:
            origin = parse_origin(raw, environment=environment)
        except OriginError as error:
            raise ValueError(str(error)) from None
        if origin in seen:
            raise ValueError(f"{raw!r} repeats {seen[origin]!r} (both are {origin}): list it once")
        seen[origin] = raw
    origins = tuple(seen)
    if credentials:
        problem = credentials_problem(
            origins, (), (environment, "credentials", "the response headers")
        )
        if problem:
            raise ValueError(problem)
    return origins


def check_methods(text: str) -> tuple[str, ...]:
    methods = _items(text)
    if not methods:
        raise ValueError("Choose at least one method.")
    return method_list(tuple(methods))


def check_headers(text: str, question: str, credentials: bool = False) -> tuple[str, ...]:
    names = _items(text)
    lowered = [name.lower() for name in names]
    for name in names:
        if lowered.count(name.lower()) > 1:
            raise ValueError(f"{name!r} is listed twice (header names ignore case): list it once")
    headers = header_list(tuple(names))
    if credentials:
        problem = credentials_problem((), headers, ("", "credentials", question))
        if problem:
            raise ValueError(problem)
    return headers


def check_max_age(text: str) -> int:
    try:
        seconds = int(text.strip())
    except ValueError:
        seconds = -1
    if not 0 <= seconds <= 86400:
        raise ValueError(
            f"{text!r}: write a number of seconds from 0 to 86400 (Chromium caps it at 7200)"
        )
    return seconds


def check_prefixes(text: str) -> tuple[str, ...]:
    prefixes = tuple(path_prefix(prefix) for prefix in _items(text))
    repeated = sorted({prefix for prefix in prefixes if prefixes.count(prefix) > 1})
    if repeated:
        raise ValueError(f"{repeated[0]!r} is listed twice: list each prefix once")
    return prefixes


def check_public_origins(text: str) -> tuple[str, ...]:
    origins = check_origins(text, "", credentials=False)
    if not origins:
        raise ValueError("name the origins that may read the public paths, or * for any")
    return origins


# --- Reading the project ------------------------------------------------------------------


@dataclass
class Source:
    """One Python file of the project, parsed."""

    root: Path
    path: Path
    text: str
    tree: ast.Module

    @property
    def relative(self) -> str:
        return self.path.relative_to(self.root).as_posix()

    @property
    def module(self) -> str:
        parts = list(self.path.relative_to(self.root).with_suffix("").parts)
        if parts[0] == "src" and len(parts) > 1:
            parts = parts[1:]
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        return ".".join(parts)

    @property
    def package(self) -> str:
        if self.path.name == "__init__.py":
            return self.module
        return self.module.rpartition(".")[0]

    @property
    def is_test(self) -> bool:
        parts = self.path.relative_to(self.root).parts
        name = parts[-1]
        return (
            any(part in ("tests", "test") for part in parts[:-1])
            or name.startswith("test_")
            or name == "conftest.py"
        )

    def line(self, number: int) -> str:
        return self.text.splitlines()[number - 1]


def read_sources(root: Path) -> list[Source]:
    sources = []
    for folder, folders, files in os.walk(root):
        here = Path(folder)
        folders[:] = sorted(
            name
            for name in folders
            if not name.startswith(".")
            and name not in SKIPPED_FOLDERS
            and not (here / name / "pyvenv.cfg").exists()
        )
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = here / name
            try:
                text = path.read_text(encoding="utf-8")
                tree = ast.parse(text, filename=str(path))
            except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
                continue
            sources.append(Source(root, path, text, tree))
    return sources


def dotted(node: ast.AST | None) -> str:
    """``a.b.c`` for a name or an attribute chain, else ""."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def _last(name: str) -> str:
    return name.rpartition(".")[2]


def _literal(node: ast.AST | None) -> tuple[bool, Any]:
    if node is None:
        return False, None
    try:
        return True, ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def _first_line(node: ast.stmt) -> int:
    decorators: list[ast.expr] = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)])


def _last_line(node: ast.AST) -> int:
    return int(getattr(node, "end_lineno", None) or getattr(node, "lineno", None) or 0)


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _is_fastapi(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Call) and dotted(node.func) in ("FastAPI", "fastapi.FastAPI")


def _assigned(statement: ast.stmt) -> tuple[str, ast.expr] | None:
    """``(name, value)`` of ``name = value`` or ``name: T = value``."""
    if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
        target = statement.targets[0]
        if isinstance(target, ast.Name):
            return target.id, statement.value
    if (
        isinstance(statement, ast.AnnAssign)
        and isinstance(statement.target, ast.Name)
        and statement.value is not None
    ):
        return statement.target.id, statement.value
    return None


def _names(node: ast.AST) -> set[str]:
    """Every name and attribute a node reads."""
    found: set[str] = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Name):
            found.add(child.id)
        elif isinstance(child, ast.Attribute):
            found.add(child.attr)
    return found


def imported(source: Source) -> dict[str, tuple[str, str]]:
    """The module-level names a module imports: local name -> (module, name)."""
    found = {}
    for statement in source.tree.body:
        if isinstance(statement, ast.ImportFrom):
            module = statement.module or ""
            if statement.level:
                parts = source.package.split(".") if source.package else []
                base = parts[: len(parts) - (statement.level - 1)]
                module = ".".join([*base, *([module] if module else [])])
            for alias in statement.names:
                found[alias.asname or alias.name] = (module, alias.name)
    return found


@dataclass
class AppSite:
    """The app the server runs: a module-level ``app = FastAPI()`` or a factory."""

    source: Source
    attribute: str  # what uvicorn is given after the colon
    variable: str  # the app's variable where it is built
    assignment: ast.stmt
    factory: ast.FunctionDef | None = None
    returns: ast.Return | None = None
    served: ast.stmt | None = None  # a module-level `app = create_app()`

    @property
    def spec(self) -> str:
        return f"{self.source.module}:{self.attribute}"


def find_apps(sources: Iterable[Source]) -> list[AppSite]:
    apps = []
    for source in sources:
        if source.is_test:
            continue
        mounted = set()
        for node in ast.walk(source.tree):
            if isinstance(node, ast.Call) and _last(dotted(node.func)) == "mount":
                values = [*node.args[1:2], *(k.value for k in node.keywords if k.arg == "app")]
                mounted |= {dotted(value) for value in values}
        factories: dict[str, AppSite] = {}
        for statement in source.tree.body:
            if not isinstance(statement, ast.FunctionDef):
                continue
            built = next(
                (
                    found
                    for found in map(_assigned, statement.body)
                    if found is not None and _is_fastapi(found[1])
                ),
                None,
            )
            returns = [
                node
                for node in statement.body
                if isinstance(node, ast.Return) and built and dotted(node.value) == built[0]
            ]
            if built and returns:
                assignment = next(s for s in statement.body if _assigned(s) == built)
                factories[statement.name] = AppSite(
                    source, statement.name, built[0], assignment, statement, returns[-1]
                )
        for statement in source.tree.body:
            found = _assigned(statement)
            if found is None:
                continue
            name, value = found
            if _is_fastapi(value) and name not in mounted:
                apps.append(AppSite(source, name, name, statement))
            elif (
                isinstance(value, ast.Call)
                and dotted(value.func) in factories
                and not value.args
                and not value.keywords
            ):
                factories[dotted(value.func)].served = statement
        apps += factories.values()
    return apps


@dataclass
class SettingsSite:
    """The app's pydantic-settings class."""

    source: Source
    node: ast.ClassDef
    base: ast.expr
    config: ast.stmt | None
    # model_config's entries: (keyword, value source); None for a ** entry.
    entries: list[tuple[str | None, str]]
    literals: dict[str, Any]

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def spec(self) -> str:
        return f"{self.source.module}:{self.name}"

    @property
    def env_prefix(self) -> str:
        return str(self.literals.get("env_prefix") or "")

    @property
    def env_files(self) -> list[str]:
        files = self.literals.get("env_file")
        if isinstance(files, str):
            return [files]
        if isinstance(files, (list, tuple)):
            return [str(item) for item in files]
        return []

    def fields(self) -> dict[str, ast.AnnAssign]:
        return {
            s.target.id: s
            for s in self.node.body
            if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
        }

    def methods(self) -> dict[str, ast.FunctionDef]:
        return {s.name: s for s in self.node.body if isinstance(s, ast.FunctionDef)}


def _settings_site(source: Source, node: ast.ClassDef, base: ast.expr) -> SettingsSite:
    config = None
    entries: list[tuple[str | None, str]] = []
    literals: dict[str, Any] = {}
    for statement in node.body:
        found = _assigned(statement)
        if found is None or found[0] != "model_config":
            continue
        config, value = statement, found[1]
        pairs: list[tuple[str | None, ast.expr]] = []
        if isinstance(value, ast.Call):
            pairs = [(keyword.arg, keyword.value) for keyword in value.keywords]
        elif isinstance(value, ast.Dict) and all(
            key is None or (isinstance(key, ast.Constant) and isinstance(key.value, str))
            for key in value.keys
        ):
            pairs = [
                (None if key is None else str(getattr(key, "value", "")), item)
                for key, item in zip(value.keys, value.values, strict=True)
            ]
        else:
            pairs = [(None, value)]
        for name, item in pairs:
            entries.append((name, ast.get_source_segment(source.text, item) or ""))
            ok, literal = _literal(item)
            if name and ok:
                literals[name] = literal
    return SettingsSite(source, node, base, config, entries, literals)


def find_settings(sources: Iterable[Source]) -> tuple[list[SettingsSite], list[SettingsSite]]:
    """(pydantic-settings classes, classes that already inherit CORSSettings)."""
    plain, adopted = [], []
    for source in sources:
        if source.is_test:
            continue
        for node in source.tree.body:
            if not isinstance(node, ast.ClassDef):
                continue
            for base in node.bases:
                if _last(dotted(base)) == "BaseSettings":
                    plain.append(_settings_site(source, node, base))
                elif _last(dotted(base)) == "CORSSettings":
                    adopted.append(_settings_site(source, node, base))
    return plain, adopted


def uses_pydantic_v1(site: SettingsSite) -> bool:
    """The class is pydantic v1's BaseSettings (``from pydantic import BaseSettings``)."""
    if dotted(site.base) == "pydantic.BaseSettings":
        return True
    origin = imported(site.source).get(dotted(site.base))
    return origin == ("pydantic", "BaseSettings")


_PIN = re.compile(
    r"^\s*(?P<name>fastapi|pydantic)\s*(\[[^\]]*\])?\s*(?P<op>==|~=|<=|<)\s*(?P<version>\d[\w.]*)",
    re.IGNORECASE,
)


def _floor(name: str) -> str:
    return ".".join(map(str, FLOORS[name]))


def declared_problems(root: Path) -> list[str]:
    """Versions older than the engine's floors, as the project declares or locks them."""
    requirements: list[tuple[str, str]] = []
    for path in sorted(root.glob("requirements*.txt")):
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        requirements += [(path.name, line.split("#")[0]) for line in lines]
    pyproject = root / "pyproject.toml"
    data = _toml(pyproject)
    dependencies = data.get("project", {}).get("dependencies", [])
    requirements += [("pyproject.toml", str(item)) for item in dependencies]
    problems = []
    for where, requirement in requirements:
        match = _PIN.match(requirement)
        if match is None:
            continue
        name, op = match.group("name").lower(), match.group("op")
        version = _release(match.group("version"))
        floor = FLOORS[name]
        if (op in ("==", "~=", "<=") and version < floor) or (op == "<" and version <= floor):
            verb = "pins" if op in ("==", "~=") else "limits"
            problems.append(
                f"{where} {verb} {requirement.strip()}; corsguard needs {name}>={_floor(name)}"
            )
    for package in _toml(root / "uv.lock").get("package", []):
        name = str(package.get("name", "")).lower()
        if name in FLOORS and _release(str(package.get("version", ""))) < FLOORS[name]:
            problems.append(
                f"uv.lock has {name} {package.get('version')}; corsguard needs "
                f"{name}>={_floor(name)}"
            )
    return problems


def _toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}


def find_tests(root: Path) -> str | None:
    paths = _toml(root / "pyproject.toml").get("tool", {}).get("pytest", {})
    testpaths = paths.get("ini_options", {}).get("testpaths", [])
    for candidate in [*testpaths, "tests", "test"]:
        if (root / candidate).is_dir():
            return Path(candidate).as_posix()
    return None


# --- What the app configures today ------------------------------------------------------


@dataclass(frozen=True)
class Migrated:
    """An origin as the app configures it today, and where it is written."""

    value: str
    where: str


@dataclass
class CORSSite:
    """A Starlette CORSMiddleware the app installs."""

    source: Source
    call: ast.Call
    statement: ast.stmt | None  # the statement to remove; None inside a middleware=[...]
    receiver: str  # the app it is added to
    options: dict[str, ast.expr]

    @property
    def where(self) -> str:
        return f"{self.source.relative}, line {self.call.lineno}"


def find_cors_sites(sources: Iterable[Source]) -> list[CORSSite]:
    sites = []
    for source in sources:
        if source.is_test:
            continue
        parents = _parents(source.tree)
        for node in ast.walk(source.tree):
            if not (isinstance(node, ast.Call) and node.args):
                continue
            if _last(dotted(node.args[0])) != "CORSMiddleware":
                continue
            name = dotted(node.func)
            options = {k.arg: k.value for k in node.keywords if k.arg}
            if _last(name) == "add_middleware":
                statement = parents.get(node)
                if not isinstance(statement, ast.Expr):
                    statement = None
                receiver = name.rpartition(".")[0]
                sites.append(CORSSite(source, node, statement, receiver, options))
            elif _last(name) == "Middleware":
                sites.append(CORSSite(source, node, None, "", options))
    return sites


_ENVIRON_CALLS = ("os.environ.get", "os.getenv", "environ.get", "getenv")


class Migration:
    """The origins and options the app's CORSMiddleware gets today, and where from."""

    def __init__(self, root: Path, sources: list[Source], settings: SettingsSite | None) -> None:
        self.root = root
        self.sources = sources
        self.settings = settings
        self.sites = find_cors_sites(sources)
        self.origins: list[Migrated] = []
        self.options: dict[str, tuple[Any, str]] = {}
        self.fed_by: set[str] = set()  # settings fields and properties that fed it
        self.notes: list[str] = []
        self.unread: list[str] = []  # allow_origins whose value init could not find

    def read(self, app: AppSite) -> None:
        """Read the CORSMiddleware on ``app`` (else the first one found)."""
        own = [s for s in self.sites if s.source is app.source and s.receiver == app.variable]
        chosen = (own or self.sites)[:1]
        for site in self.sites:
            if site not in chosen:
                self.notes.append(
                    f"{site.where}: another CORSMiddleware ({site.receiver or 'in a list'}); "
                    "its origins are not offered: give the paths it serves a path policy "
                    "(the public_paths question, or cors_path_policies in the profiles)"
                )
        for site in chosen:
            expression = site.options.get("allow_origins")
            if expression is not None:
                listed = self.list_of(expression, site)
                if not listed and not self.empty(expression, site):
                    code = ast.get_source_segment(site.source.text, expression) or "..."
                    self.unread.append(
                        f"not offered: allow_origins={code} ({site.where}) is worked out "
                        "when the app runs, or read from a variable that is not set here, "
                        "so init cannot tell which origins it allows: give each "
                        "environment's origins"
                    )
                self.origins += listed
            for option in ("allow_credentials", "max_age"):
                if option in site.options:
                    found = self.scalar(site.options[option], site)
                    if found is not None:
                        self.options[option] = found
            for option in ("allow_methods", "allow_headers", "expose_headers"):
                if option in site.options:
                    values = self.list_of(site.options[option], site)
                    if values:
                        self.options[option] = (
                            [v.value for v in values],
                            values[0].where,
                        )
            if "allow_origin_regex" in site.options:
                self.notes.append(
                    f"{site.where}: allow_origin_regex is not carried over: write what it "
                    "matches as origin patterns, as in https://*.example.com"
                )
        if not self.sites and self.settings is not None:
            # No CORSMiddleware: a settings field whose name says CORS may still hold them.
            for name in self.settings.fields():
                if is_old_cors_name(name):
                    values = self.field_values(name)
                    if values:
                        self.origins += values
                        self.fed_by.add(name)

    def assignment(self, site: CORSSite, name: str) -> ast.expr | None:
        """The value last assigned to ``name`` above the site, in the site's module."""
        value = None
        for node in ast.walk(site.source.tree):
            if not isinstance(node, ast.stmt) or node.lineno >= site.call.lineno:
                continue
            found = _assigned(node)
            if found and found[0] == name:
                value = found[1]
        return value

    def resolved(self, expression: ast.expr, site: CORSSite) -> ast.expr:
        """``expression``, or what the names it goes through were last assigned (three at
        most), up to a value that is not a name assigned in the site's module."""
        for _ in range(3):
            if _literal(expression)[0] or not isinstance(expression, ast.Name):
                break
            assigned = self.assignment(site, expression.id)
            if assigned is None:
                break
            expression = assigned
        return expression

    def empty(self, expression: ast.expr, site: CORSSite) -> bool:
        """Whether ``expression`` is written as an empty list (directly or through a name)."""
        ok, value = _literal(self.resolved(expression, site))
        return ok and not value

    def list_of(self, expression: ast.expr, site: CORSSite) -> list[Migrated]:
        expression = self.resolved(expression, site)
        ok, value = _literal(expression)
        where = f"{site.source.relative}, line {expression.lineno}"
        if ok:
            items = [value] if isinstance(value, str) else list(value or ())
            return [Migrated(str(item), where) for item in items]
        found: list[Migrated] = []
        for name in sorted(_names(expression)):
            found += self.field_values(name)
        for node in ast.walk(expression):
            if isinstance(node, ast.Call) and dotted(node.func) in _ENVIRON_CALLS and node.args:
                found += self.variable_values(node, site)
        return found

    def scalar(self, expression: ast.expr, site: CORSSite) -> tuple[Any, str] | None:
        where = f"{site.source.relative}, line {expression.lineno}"
        ok, value = _literal(expression)
        if not ok and isinstance(expression, ast.Name):
            assigned = self.assignment(site, expression.id)
            ok, value = _literal(assigned)
        return (value, where) if ok else None

    def field_values(self, name: str, depth: int = 0) -> list[Migrated]:
        settings = self.settings
        if settings is None:
            return []
        fields, methods = settings.fields(), settings.methods()
        if name in methods and depth < 2:
            found = []
            for read in sorted(_names(methods[name]) & set(fields)):
                found += self.field_values(read, depth + 1)
            if found:
                self.fed_by.add(name)
            return found
        if name not in fields:
            return []
        statement = fields[name]
        self.fed_by.add(name)
        annotation = ast.get_source_segment(settings.source.text, statement.annotation) or ""
        url = (
            " (as AnyHttpUrl it gains a '/' that browsers never send)"
            if "Url" in annotation
            else ""
        )
        variable = f"{settings.env_prefix}{name}"
        for where, values in self._variables(settings.env_files):
            for key, value in values.items():
                if key.upper() == variable.upper():
                    return [Migrated(o, f"{variable} in {where}{url}") for o in _origins_in(value)]
        default: ast.expr | None = statement.value
        if isinstance(default, ast.Call) and _last(dotted(default.func)) == "Field":
            keyword = {k.arg: k.value for k in default.keywords}
            default = default.args[0] if default.args else keyword.get("default")
        ok, value = _literal(default)
        if not ok or value is None:
            return []
        items = [value] if isinstance(value, str) else list(value)
        where = f"the default of {settings.name}.{name} ({settings.source.relative}, line "
        return [Migrated(str(item), f"{where}{statement.lineno}){url}") for item in items]

    def _variables(self, env_files: Sequence[str]) -> Iterator[tuple[str, dict[str, str]]]:
        yield "the environment", dict(os.environ)
        for name in env_files:
            yield name, dotenv_file_values(self.root / name)

    def variable_values(self, call: ast.Call, site: CORSSite) -> list[Migrated]:
        ok, variable = _literal(call.args[0])
        if not ok or not isinstance(variable, str):
            return []
        for where, values in self._variables([".env"]):
            if variable in values:
                return [
                    Migrated(o, f"{variable} in {where}") for o in _origins_in(values[variable])
                ]
        ok, default = _literal(call.args[1]) if len(call.args) > 1 else (False, None)
        if ok and isinstance(default, str):
            where = f"the default of {variable} ({site.where})"
            return [Migrated(o, where) for o in _origins_in(default)]
        return []

    def credentials(self) -> tuple[bool, str] | None:
        found = self.options.get("allow_credentials")
        if found is None:
            return None
        value, where = found
        return (value if isinstance(value, bool) else str(value).lower() == "true"), where

    def default_origins(self, environment: str, credentials: bool) -> tuple[str | None, list[str]]:
        """The default answer for one environment's origins (None: it must be answered),
        and why entries the app has today are not offered."""
        if not self.origins:
            if self.unread:  # an example origin in place of the app's own would be wrong
                return None, list(self.unread)
            return DEFAULTS.get(environment, ""), []
        kept: list[str] = []
        notes = []
        for item in self.origins:
            try:
                origin = parse_origin(item.value, environment=environment)
            except OriginError as error:
                notes.append(f"not offered, {item.where}: {error}")
                continue
            if origin == WILDCARD and credentials:
                app_credentials = self.credentials()
                if app_credentials and app_credentials[0]:
                    continue  # said with the app's origins already
                notes.append(
                    f"not offered: '*' ({item.where}) with credentials is refused: browsers "
                    "refuse it, and reflecting every origin would let any site read your "
                    "users' data; give the real origins"
                )
                continue
            if origin not in kept:
                kept.append(origin)
        if not kept and self.origins:
            return None, notes
        return ", ".join(kept), notes


# --- Changes to the project's files, as a patch ------------------------------------------


class FileEdit:
    """Line-range changes to one file, applied together."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines(keepends=True)
        self.changes: list[tuple[int, int, list[str]]] = []  # first, last (1-based), new

    def replace(self, first: int, last: int, new: Sequence[str]) -> bool:
        for done_first, done_last, _ in self.changes:
            if first <= done_last and done_first <= last:
                return False  # overlaps a change already made
        self.changes.append(
            (first, last, [line if line.endswith("\n") else f"{line}\n" for line in new])
        )
        return True

    def insert(self, before: int, new: Sequence[str]) -> None:
        lines = [line if line.endswith("\n") else f"{line}\n" for line in new]
        self.changes.append((before, before - 1, lines))

    def delete(self, first: int, last: int, comments: bool = True) -> bool:
        """Remove lines ``first`` to ``last``, the comment lines right above them, and the
        blank lines that would then be one group too many."""
        indent = _indent(self.lines[first - 1])
        while (
            comments
            and first > 1
            and self.lines[first - 2].strip().startswith("#")
            and _indent(self.lines[first - 2]) == indent
        ):
            first -= 1
        above = 0
        while first - above > 1 and not self.lines[first - above - 2].strip():
            above += 1
        below = 0
        while last + below < len(self.lines) and not self.lines[last + below].strip():
            below += 1
        if last + below == len(self.lines):
            first -= above  # no blank lines left at the end of the file
            last += below
        elif first - above == 1:
            last += below
        else:
            last += min(above, below)
        return self.replace(first, last, [])

    def segment(self, node: ast.AST, text: str) -> bool:
        """Replace ``node``'s text on its line with ``text``."""
        number = int(getattr(node, "lineno", 0))
        line = self.lines[number - 1]
        start = _column(line, int(getattr(node, "col_offset", 0)))
        end = _column(line, int(getattr(node, "end_col_offset", 0)))
        return self.replace(number, number, [line[:start] + text + line[end:]])

    def result(self) -> str:
        lines = list(self.lines)
        ordered = sorted(self.changes, key=lambda change: (change[0], change[1] >= change[0]))
        for first, last, new in reversed(ordered):
            lines[first - 1 : last] = new
        return "".join(lines)


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _column(line: str, offset: int) -> int:
    """The character index of ``ast``'s UTF-8 byte offset in ``line``."""
    return len(line.encode("utf-8")[:offset].decode("utf-8", "replace"))


def _import_order(name: str) -> tuple[int, str]:
    """isort's order by type: CONSTANTS, Classes, functions."""
    return (0 if name.isupper() else 1 if name[:1].isupper() else 2, name)


def render_import(module: str, names: Sequence[str], indent: str, width: int) -> list[str]:
    line = f"{indent}from {module} import {', '.join(names)}"
    if len(line) <= width:
        return [f"{line}\n"]
    return [
        f"{indent}from {module} import (\n",
        *(f"{indent}    {name},\n" for name in names),
        f"{indent})\n",
    ]


def _alias(alias: ast.alias) -> str:
    return alias.name if alias.asname is None else f"{alias.name} as {alias.asname}"


def _used(tree: ast.AST) -> set[str]:
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}


class Imports:
    """Drop the imports the changes left unused; add the ones they need."""

    def __init__(self, first_party: set[str], width: int) -> None:
        self.first_party = first_party
        self.width = width

    def section(self, statement: ast.stmt) -> str:
        if isinstance(statement, ast.ImportFrom) and statement.level:
            return "first-party"
        if isinstance(statement, ast.ImportFrom):
            top = (statement.module or "").partition(".")[0]
        elif isinstance(statement, ast.Import):
            top = statement.names[0].name.partition(".")[0]
        else:
            return ""
        if top == "__future__" or top in sys.stdlib_module_names:
            return "standard"
        return "first-party" if top in self.first_party else "third-party"

    def finish(self, before: str, after: str, wanted: dict[str, list[str]]) -> str:
        """``after`` without the imports the changes from ``before`` left unused, and with
        ``wanted`` (module -> names) imported."""
        tree = ast.parse(after)
        unused = _used(ast.parse(before)) - _used(tree)
        edit = FileEdit(after)
        statements = [s for s in tree.body if isinstance(s, (ast.Import, ast.ImportFrom))]
        # A third-party import removed whole: corsguard's goes there if no other is left
        # to sort it among.
        anchor: ast.stmt | None = None
        gone: list[ast.stmt] = []
        for statement in statements:
            keep = [a for a in statement.names if (a.asname or a.name).split(".")[0] not in unused]
            if len(keep) == len(statement.names):
                continue
            if keep:
                indent = _indent(edit.lines[statement.lineno - 1])
                if isinstance(statement, ast.ImportFrom):
                    module = "." * statement.level + (statement.module or "")
                    text = render_import(module, [_alias(a) for a in keep], indent, self.width)
                else:
                    text = [f"{indent}import {', '.join(_alias(a) for a in keep)}\n"]
                edit.replace(statement.lineno, _last_line(statement), text)
            elif anchor is None and self.section(statement) == "third-party":
                anchor = statement
                gone.append(statement)
            else:
                edit.delete(statement.lineno, _last_line(statement), comments=False)
                gone.append(statement)
        statements = [s for s in statements if s not in gone]
        for module, names in wanted.items():
            existing = next(
                (
                    s
                    for s in statements
                    if isinstance(s, ast.ImportFrom) and not s.level and s.module == module
                ),
                None,
            )
            if existing is not None:
                merged = {_alias(a) for a in existing.names} | set(names)
                text = render_import(module, sorted(merged, key=_import_order), "", self.width)
                edit.replace(existing.lineno, _last_line(existing), text)
                continue
            names = sorted(set(names), key=_import_order)
            text = render_import(module, names, "", self.width)
            third_party = [s for s in statements if self.section(s) == "third-party"]
            if module == "corsguard" and anchor is not None and not third_party:
                edit.replace(anchor.lineno, _last_line(anchor), text)
                anchor = None
                continue
            self._insert(edit, tree, statements, module, text)
        if anchor is not None:
            edit.delete(anchor.lineno, _last_line(anchor), comments=False)
        return edit.result()

    def _insert(
        self,
        edit: FileEdit,
        tree: ast.Module,
        statements: list[ast.Import | ast.ImportFrom],
        module: str,
        text: list[str],
    ) -> None:
        section = "first-party" if module.partition(".")[0] in self.first_party else "third-party"
        same = [s for s in statements if self.section(s) == section]
        later = [s for s in same if (getattr(s, "module", None) or "") > module]
        if section == "third-party" and later:
            edit.insert(later[0].lineno, text)
        elif same:
            edit.insert(_last_line(same[-1]) + 1, text)
        elif statements:
            edit.insert(_last_line(statements[-1]) + 1, ["\n", *text])
        else:
            docstring = (
                tree.body
                and isinstance(tree.body[0], ast.Expr)
                and isinstance(tree.body[0].value, ast.Constant)
            )
            line = _last_line(tree.body[0]) + 1 if docstring else 1
            edit.insert(line, [*(["\n"] if docstring else []), *text, "\n"])


def unified(relative: str, before: str, after: str) -> str:
    """A patch that ``git apply`` (or ``patch -p1``) takes."""
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        f"a/{relative}",
        f"b/{relative}",
    )
    return "".join(
        line if line.endswith("\n") else f"{line}\n\\ No newline at end of file\n" for line in lines
    )


# --- The command ---------------------------------------------------------------------------


@dataclass
class Answers:
    variable: str
    environments: tuple[str, ...]
    credentials: bool
    origins: dict[str, tuple[str, ...]]
    methods: tuple[str, ...]
    headers: tuple[str, ...]
    expose: tuple[str, ...]
    max_age: int
    public_paths: tuple[str, ...] = ()
    public_origins: tuple[str, ...] = ()


@dataclass
class Plan:
    """What init writes and what it prints."""

    files: dict[str, str] = field(default_factory=dict)  # new files: path -> text
    patch: str = ""
    notes: list[str] = field(default_factory=list)


class Init:
    def __init__(self, arguments: argparse.Namespace, root: Path) -> None:
        self.arguments = arguments
        self.root = root
        self.interactive = sys.stdin.isatty() and not arguments.yes
        self.width = min(max(shutil.get_terminal_size((80, 24)).columns, 40), 100)

    # Talking to the person (stderr; stdout carries the patch only).

    def say(self, text: str = "", indent: str = "") -> None:
        for paragraph in text.splitlines() or [""]:
            lines = textwrap.wrap(
                paragraph,
                self.width - 1,
                initial_indent=indent,
                subsequent_indent=indent + "  ",
                break_on_hyphens=False,
                break_long_words=False,
            )
            sys.stderr.write("\n".join(lines or [""]) + "\n")
        sys.stderr.flush()

    def ask(
        self,
        key: str,
        default: str | None,
        check: Callable[[str], T],
        given: str | None,
        option: str,
        help_text: str | None = None,
        notes: Sequence[str] = (),
    ) -> T:
        """The answer given as an option, else asked (else the default, with --yes)."""
        if given is not None:
            try:
                return check(given)
            except ValueError as error:
                raise InitError(f"{option.partition('=')[0]}: {error}") from None
        if not self.interactive:
            for note in notes:
                self.say(note, "  ")
            if not self.arguments.yes:
                raise InitError(
                    f"{option} is not given and there is no terminal to ask in: pass it, "
                    "or --yes to take the defaults (corsguard init --help lists the options)"
                )
            if default is None:
                raise InitError(f"{option} is needed: init has no origins to offer (above)")
            try:
                return check(default)
            except ValueError as error:
                raise InitError(f"{option}, default {default!r}: {error}") from None
        text = help_text if help_text is not None else HELP[key]
        sys.stderr.write("\n?  " + text + "\n")
        for note in notes:
            self.say(note, "   ")
        while True:
            shown = "" if default is None else f"[{default or 'empty'}] "
            sys.stderr.write(f"   {shown}> ")
            sys.stderr.flush()
            line = sys.stdin.readline()
            if not line:
                raise InitError("no answer (end of input): nothing was written")
            answer = line.strip()
            if answer == "" and default is not None:
                answer = default
            try:
                return check(answer)
            except ValueError as error:
                self.say(f"refused: {error}", "   ")

    # The steps.

    def run(self) -> int:
        sources = read_sources(self.root)
        app = self.choose_app(sources)
        settings = self.choose_settings(sources, app)
        problems = version_problems() + declared_problems(self.root)
        if settings is not None and uses_pydantic_v1(settings):
            problems.append(
                f"{settings.source.relative} imports BaseSettings from pydantic, which is "
                f"pydantic v1; corsguard needs pydantic>={_floor('pydantic')} and "
                "pydantic-settings"
            )
        if problems:
            raise InitError(
                "the project is older than corsguard supports:\n"
                + "\n".join(f"  - {problem}" for problem in problems)
                + f"\nupgrade to fastapi>={_floor('fastapi')} and pydantic>="
                f"{_floor('pydantic')} with pydantic-settings (bump-pydantic moves v1 code "
                "over), then run init again"
            )
        found_tests = None if self.arguments.tests else find_tests(self.root)
        tests = found_tests or self.ask("tests", "tests", _folder, self.arguments.tests, "--tests")
        home = (settings or app).source.path.parent
        profiles = home / _profiles_name(self.arguments.profiles)
        policy_test = self.root / _policy_test_path(
            self.arguments.policy_test or f"{tests}/{POLICY_TEST_NAME}"
        )
        for path, option in ((profiles, "--profiles NAME"), (policy_test, "--policy-test PATH")):
            if path.exists():
                raise InitError(
                    f"{_relative(path, self.root)} exists already: init never changes an "
                    f"existing file; move it away, or name another with {option}"
                )
        self.say(
            f"corsguard init: the app is {app.spec} ({app.source.relative}"
            f"{', a factory' if app.factory else ''}); "
            + (
                f"its settings are {settings.spec} ({settings.source.relative})"
                if settings
                else f"it has no settings class: init adds one to {app.source.relative}"
            )
            + f"; its tests are in {tests}/."
        )
        migration = Migration(self.root, sources, settings)
        migration.read(app)
        if migration.origins:
            self.say("The origins the app allows today (offered as the answers):")
            found = migration.credentials()
            for item in migration.origins:
                self.say(f"{item.value}  from {item.where}{_refusal(item, found)}", "  ")
        for note in migration.notes:
            self.say(note, "  ")
        answers = self.questions(migration, settings)
        plan = Plan()
        profiles_text = render_profiles(answers, settings.env_prefix if settings else "")
        validate_profiles(profiles_text, answers)
        plan.files[_relative(profiles, self.root)] = profiles_text
        plan.files[_relative(policy_test, self.root)] = render_policy_test(
            app, settings, _relative(profiles, self.root)
        )
        Changes(self.root, sources, app, settings, migration, answers, plan).make(profiles.name)
        for relative, text in plan.files.items():
            write_new(self.root / relative, text)
        self.report(app, plan, answers)
        return WRITTEN

    def choose_app(self, sources: list[Source]) -> AppSite:
        apps = find_apps(sources)
        given = self.arguments.app
        if given:
            module, _, attribute = given.partition(":")
            found = [a for a in apps if a.source.module == module and a.attribute == attribute]
            if not found:
                known = ", ".join(a.spec for a in apps) or "none"
                raise InitError(
                    f"--app {given!r}: init finds no app or factory of that name in the "
                    f"project (it found: {known}); name it as uvicorn takes it, module:attribute"
                )
            return found[0]
        if not apps:
            raise InitError(
                f"init finds no FastAPI app in {self.root}: run it at the project's root, "
                "or name the app with --app module:app"
            )

        def rank(found: AppSite) -> tuple[bool, bool]:
            # A factory that a module-level app is built from, then the usual names.
            return found.served is None, found.attribute not in ("app", "create_app")

        ranked = sorted(apps, key=rank)
        best = [found for found in ranked if rank(found) == rank(ranked[0])]
        if len(best) == 1:
            return best[0]
        specs = {a.spec: a for a in apps}
        if not self.interactive:
            raise InitError(
                f"init finds several apps ({', '.join(specs)}): name the one the server runs "
                "with --app, as in --app " + best[0].spec
            )

        def check(text: str) -> AppSite:
            if text not in specs:
                raise ValueError(f"{text!r} is not one of {', '.join(specs)}")
            return specs[text]

        help_text = HELP["app"] + "\n   Found: " + ", ".join(specs)
        return self.ask("app", best[0].spec, check, None, "--app", help_text)

    def choose_settings(self, sources: list[Source], app: AppSite) -> SettingsSite | None:
        plain, adopted = find_settings(sources)
        if adopted:
            raise InitError(
                f"{adopted[0].spec} already inherits corsguard's CORSSettings: init is for an "
                "app that does not use corsguard yet; edit its profiles file, and run "
                f"corsguard doctor {app.spec} to find what is left of the old CORS"
            )
        hint = self.arguments.settings
        if hint:
            found = [s for s in plain if s.spec == hint]
            if not found:
                known = ", ".join(s.spec for s in plain) or "none"
                raise InitError(
                    f"--settings {hint!r}: no pydantic-settings class of that name (init "
                    f"found: {known}); write it as module:Class"
                )
            return found[0]
        named = [s for s in plain if s.name == "Settings"] or plain
        if len(named) > 1:
            raise InitError(
                f"init finds several settings classes ({', '.join(s.spec for s in named)}): "
                "name the app's with --settings, as in corsguard --settings "
                f"{named[0].spec} init"
            )
        return named[0] if named else None

    def questions(self, migration: Migration, settings: SettingsSite | None) -> Answers:
        arguments = self.arguments
        given_origins = _origins_option(arguments.origins or [])
        variable = self.ask(
            "environment_variable",
            DEFAULT_VARIABLE,
            check_variable,
            arguments.environment_variable,
            "--environment-variable",
        )
        own = [n for n in (settings.fields() if settings else {}) if n.upper() == variable.upper()]
        if own:
            self.say(
                f"note: {settings.name if settings else ''} has a field {own[0]}; corsguard's "
                f"own environment field reads {variable} to pick the profile: remove yours, "
                "or choose another variable",
                "  ",
            )
        default_environments = (
            ", ".join(given_origins) if given_origins else DEFAULTS["environments"]
        )
        environments = self.ask(
            "environments",
            default_environments,
            check_environments,
            arguments.environments,
            "--environments",
            HELP["environments"].format(variable=variable),
        )
        for name in given_origins:
            if name not in environments:
                raise InitError(
                    f"--origins {name}=...: origins are given for {name!r}, which is not one "
                    f"of the chosen environments ({', '.join(environments)}): add it to "
                    "--environments or remove its origins"
                )
        found = migration.credentials()
        credentials = self.ask(
            "cors_allow_credentials",
            ("yes" if found[0] else "no") if found else DEFAULTS["cors_allow_credentials"],
            check_bool,
            None if arguments.credentials is None else str(arguments.credentials),
            "--credentials (or --no-credentials)",
            notes=[f"the app today: allow_credentials={found[0]} ({found[1]})"] if found else [],
        )
        origins = {}
        for environment in environments:
            default, notes = migration.default_origins(environment, credentials)
            text = HELP.get(environment) or HELP["other_origins"].format(
                title=environment[:1].upper() + environment[1:]
            )
            origins[environment] = self.ask(
                environment,
                default,
                _origins_of(environment, credentials),
                given_origins.get(environment),
                f"--origins {environment}=ORIGIN,...",
                text,
                notes,
            )

        def option(name: str, key: str) -> str:
            found = migration.options.get(name)
            return ", ".join(map(str, found[0])) if found else DEFAULTS[key]

        methods = self.ask(
            "cors_allow_methods",
            option("allow_methods", "cors_allow_methods"),
            check_methods,
            arguments.methods,
            "--methods",
        )
        headers = self.ask(
            "request_headers",
            option("allow_headers", "request_headers"),
            lambda answer: check_headers(answer, "request_headers"),
            arguments.headers,
            "--headers",
        )
        expose = self.ask(
            "response_headers",
            option("expose_headers", "response_headers"),
            lambda answer: check_headers(answer, "response_headers", credentials),
            arguments.expose_headers,
            "--expose-headers",
        )
        age = migration.options.get("max_age")
        max_age = self.ask(
            "max_age",
            str(age[0]) if age else DEFAULTS["max_age"],
            check_max_age,
            arguments.max_age,
            "--max-age",
        )
        public = self.ask(
            "public_paths",
            DEFAULTS["public_paths"],
            check_prefixes,
            arguments.public_paths,
            "--public-paths",
        )
        public_origins: tuple[str, ...] = ()
        if public:
            public_origins = self.ask(
                "cors_public_origins",
                DEFAULTS["cors_public_origins"],
                check_public_origins,
                arguments.public_origins,
                "--public-origins",
            )
        return Answers(
            variable,
            environments,
            credentials,
            origins,
            methods,
            headers,
            expose,
            max_age,
            public,
            public_origins,
        )

    def report(self, app: AppSite, plan: Plan, answers: Answers) -> None:
        self.say()
        for relative in plan.files:
            self.say(f"wrote {relative}", "  ")
        for environment in answers.environments:
            origins = ", ".join(answers.origins[environment]) or "none"
            self.say(f"{environment}: {origins}", "    ")
        for note in plan.notes:
            self.say(f"note: {note}", "  ")
        if plan.patch:
            self.say(
                "\nChange your files as the patch below says (init changed none of them); "
                "git apply takes it as it is: corsguard init ... > cors.patch, then git "
                "apply cors.patch."
            )
        self.say(
            f"Then run your tests (the policy test among them) and: corsguard doctor {app.spec}"
        )
        if plan.patch:
            if sys.stdout.isatty():
                sys.stderr.write("\n")
            sys.stdout.write(plan.patch)
            sys.stdout.flush()


def _refusal(item: Migrated, credentials: tuple[bool, str] | None) -> str:
    """Why an origin the app has today cannot be offered as it is, if it cannot."""
    try:
        origin = parse_origin(item.value)
    except OriginError as error:
        return f": refused: {error}"
    if origin == WILDCARD and credentials and credentials[0]:
        return (
            f": refused: browsers refuse '*' with allow_credentials=True ({credentials[1]}), "
            "and reflecting every origin would let any site read your users' data; give "
            "the real origins"
        )
    return "" if origin == item.value.strip() else f" (offered as {origin})"


def _origins_of(environment: str, credentials: bool) -> Callable[[str], tuple[str, ...]]:
    def check(answer: str) -> tuple[str, ...]:
        return check_origins(answer, environment, credentials)

    return check


def _folder(text: str) -> str:
    path = Path(text.strip())
    if not text.strip() or path.is_absolute() or ".." in path.parts:
        raise ValueError(f"{text!r}: name a folder inside the project, as in tests")
    return path.as_posix()


def _policy_test_path(given: str) -> str:
    try:
        path = _folder(given)
    except ValueError:
        path = ""
    if not path.endswith(".py") or not Path(path).name.startswith("test"):
        raise InitError(
            f"--policy-test {given!r}: name a test module inside the project, as in "
            f"tests/{POLICY_TEST_NAME}"
        )
    return path


def _profiles_name(given: str | None) -> str:
    name = given or PROFILES_NAME
    if "/" in name or "\\" in name or not name.endswith(".toml"):
        raise InitError(
            f"--profiles {name!r}: name a TOML file beside the settings module, as in cors.toml"
        )
    return name


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _origins_option(values: Sequence[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for value in values:
        environment, equals, origins = value.partition("=")
        if not equals or not _NAME.match(environment.strip()):
            raise InitError(
                f"--origins {value!r}: write ENVIRONMENT=ORIGIN,..., as in --origins "
                "production=https://app.example.com,https://admin.example.com"
            )
        if environment.strip() in found:
            raise InitError(f"--origins {environment.strip()}=... is given twice: give it once")
        found[environment.strip()] = origins
    return found


def write_new(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        raise InitError(f"{path} exists already: init never changes an existing file") from None


# --- The two new files ---------------------------------------------------------------------


def _toml_list(values: Iterable[str]) -> str:
    return "[" + ", ".join(json.dumps(value) for value in values) + "]"


def render_profiles(answers: Answers, prefix: str) -> str:
    first = answers.environments[0]
    variable = f"{prefix}CORS_ALLOW_ORIGINS".upper()
    header = (
        f"The CORS policy of each environment, written by corsguard init. {answers.variable} "
        f"picks one ({first} when it is unset); a variable overrides a field of the "
        f"profile, as in {variable}=https://a.example.com,https://b.example.com."
    )
    lines = [
        *textwrap.wrap(header, 88, initial_indent="# ", subsequent_indent="# "),
        "",
        "[service]",
        f"default_environment = {json.dumps(first)}",
    ]
    for environment in answers.environments:
        lines += [
            "",
            f"[environments.{environment}]",
            f"cors_allow_origins = {_toml_list(answers.origins[environment])}",
            f"cors_allow_credentials = {'true' if answers.credentials else 'false'}",
            f"cors_allow_methods = {_toml_list(answers.methods)}",
            f"cors_allow_headers = {_toml_list(answers.headers)}",
            f"cors_expose_headers = {_toml_list(answers.expose)}",
            f"cors_max_age = {answers.max_age}",
        ]
        if answers.public_paths:
            lines += [
                "",
                f"[environments.{environment}.cors_path_policies.public]",
                "# Paths any website may read without credentials; the longest matching "
                "prefix wins.",
                f"prefixes = {_toml_list(answers.public_paths)}",
                f"allow_origins = {_toml_list(answers.public_origins)}",
                "allow_credentials = false",
                'allow_methods = ["GET", "HEAD"]',
                "allow_headers = []",
                f"expose_headers = {_toml_list(answers.expose)}",
                f"max_age = {answers.max_age}",
            ]
    return "\n".join(lines) + "\n"


def validate_profiles(text: str, answers: Answers) -> None:
    """Load every profile as the app will, before anything is written."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / PROFILES_NAME
        path.write_text(text, encoding="utf-8")

        class Answered(CORSSettings):
            model_config = CORSConfigDict(
                cors_profiles=path, cors_environment_variable=answers.variable, env_file=None
            )

        try:
            for environment in answers.environments:
                profile_settings(Answered, environment)
        except ConfigError as error:
            raise InitError(
                f"the answers do not load as the app would load them:\n{error}"
            ) from None


def takes_settings(app: AppSite, settings: SettingsSite | None) -> bool:
    """Whether the factory's first parameter is the settings."""
    if app.factory is None or not app.factory.args.args:
        return False
    first = app.factory.args.args[0]
    named = settings.name if settings else "Settings"
    return first.arg == "settings" or (
        first.annotation is not None and named in _names(first.annotation)
    )


def render_policy_test(app: AppSite, settings: SettingsSite | None, profiles: str) -> str:
    cls = settings.name if settings else "Settings"
    module = settings.source.module if settings else app.source.module
    head = [f'"""The CORS policy of every profile in {profiles}, as browsers see it."""', ""]
    if takes_settings(app, settings):
        imports = [
            "import pytest",
            "from corsguard.testing import Case, assert_case, policy_cases",
            "",
            *sorted(
                {f"from {app.source.module} import {app.attribute}", f"from {module} import {cls}"}
            ),
        ]
        body = [f"    assert_case({app.attribute}(case.settings({cls})), case)"]
    else:
        imports = [
            "import pytest",
            "from corsguard import add_cors",
            "from corsguard.testing import Case, assert_case, policy_cases",
            "from fastapi import FastAPI",
            "",
            f"from {module} import {cls}",
        ]
        body = [
            "    app = FastAPI()",
            f"    add_cors(app, case.settings({cls}))",
            "    assert_case(app, case)",
        ]
    return (
        "\n".join(
            [
                *head,
                *imports,
                "",
                "",
                f'@pytest.mark.parametrize("case", policy_cases({cls}), ids=str)',
                "def test_browsers_see_the_policy(case: Case) -> None:",
                *body,
            ]
        )
        + "\n"
    )


# --- The changes to the project's own files -----------------------------------------------


class Changes:
    """Work out the project's edits in memory; put the patch and notes into ``plan``."""

    def __init__(
        self,
        root: Path,
        sources: list[Source],
        app: AppSite,
        settings: SettingsSite | None,
        migration: Migration,
        answers: Answers,
        plan: Plan,
    ) -> None:
        self.root = root
        self.sources = sources
        self.app = app
        self.settings = settings
        self.migration = migration
        self.answers = answers
        self.plan = plan
        self.edits: dict[str, FileEdit] = {}
        self.wanted: dict[str, dict[str, list[str]]] = {}  # file -> module -> names
        self.removed: dict[str, list[tuple[int, int]]] = {}  # file -> line ranges
        pyproject = _toml(root / "pyproject.toml").get("tool", {})
        self.width = int(
            pyproject.get("ruff", {}).get("line-length")
            or pyproject.get("black", {}).get("line-length")
            or DEFAULT_LINE_LENGTH
        )
        first_party = {s.module.partition(".")[0] for s in sources if not s.is_test}
        self.imports = Imports(first_party, self.width)

    def edit(self, source: Source) -> FileEdit:
        return self.edits.setdefault(source.relative, FileEdit(source.text))

    def want(self, source: Source, module: str, name: str) -> None:
        names = self.wanted.setdefault(source.relative, {}).setdefault(module, [])
        if name not in names:
            names.append(name)

    def remove(self, source: Source, node: ast.stmt) -> bool:
        first, last = _first_line(node), _last_line(node)
        if self.edit(source).delete(first, last):
            self.removed.setdefault(source.relative, []).append((first, last))
            return True
        return False

    def make(self, profiles_name: str) -> None:
        self.remove_old_cors()
        self.adopt_settings(profiles_name)
        self.add_layer()
        patches = []
        for relative in sorted(self.edits, key=lambda r: (r != self.app.source.relative, r)):
            source = next(s for s in self.sources if s.relative == relative)
            after = self.edits[relative].result()
            try:
                final = self.imports.finish(source.text, after, self.wanted.get(relative, {}))
                ast.parse(final)
            except SyntaxError as error:
                raise InitError(
                    f"init could not work out the changes to {relative} ({error}); nothing "
                    "was written: make them by hand, as docs/existing-app.md shows"
                ) from None
            if final != source.text:
                patches.append(unified(relative, source.text, final))
        patches += self.other_files()
        self.plan.patch = "".join(patches)

    # The old CORS: the stock middleware, hand-written OPTIONS routes, the fields that fed it.

    def remove_old_cors(self) -> None:
        for site in self.migration.sites:
            statement: ast.stmt | None = site.statement
            if statement is None:
                self.plan.notes.append(
                    f"{site.where}: remove Middleware(CORSMiddleware, ...) from the "
                    "middleware list by hand"
                )
                continue
            parent = _parents(site.source.tree).get(statement)
            if isinstance(parent, ast.If) and parent.body == [statement] and not parent.orelse:
                statement = parent
            holder = _parents(site.source.tree).get(statement)
            if isinstance(holder, (ast.FunctionDef, ast.If, ast.With, ast.For)) and getattr(
                holder, "body", None
            ) == [statement]:
                indent = _indent(site.source.line(statement.lineno))
                first, last = _first_line(statement), _last_line(statement)
                if self.edit(site.source).replace(first, last, [f"{indent}pass"]):
                    self.removed.setdefault(site.source.relative, []).append((first, last))
                continue
            self.remove(site.source, statement)
        for source in self.sources:
            if source.is_test:
                continue
            for node in ast.walk(source.tree):
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                routes = [
                    d
                    for d in node.decorator_list
                    if isinstance(d, ast.Call) and _last(dotted(d.func)) == "options"
                ]
                if not routes:
                    continue
                where = f"{source.relative}, line {routes[0].lineno}"
                if self.referenced(node.name, exclude=source, within=node):
                    self.plan.notes.append(
                        f"{where}: {node.name} answers OPTIONS itself and is used elsewhere: "
                        "remove its route by hand (the policy answers preflights)"
                    )
                else:
                    self.remove(source, node)
        self.remove_fields()

    def referenced(
        self, name: str, exclude: Source | None = None, within: ast.AST | None = None
    ) -> list[str]:
        """Where ``name`` is read outside the lines being removed (and outside ``within``)."""
        found = []
        inside = (
            range(_first_line(within), _last_line(within) + 1)
            if isinstance(within, ast.stmt)
            else range(0)
        )
        for source in self.sources:
            removed = self.removed.get(source.relative, [])
            for node in ast.walk(source.tree):
                hit = (
                    (isinstance(node, ast.Name) and node.id == name)
                    or (isinstance(node, ast.Attribute) and node.attr == name)
                    or (isinstance(node, ast.Constant) and node.value == name)
                )
                line = int(getattr(node, "lineno", 0))
                if not hit or any(first <= line <= last for first, last in removed):
                    continue
                if source is exclude and line in inside:
                    continue
                found.append(f"{source.relative}, line {line}")
        return found

    def remove_fields(self) -> None:
        settings = self.settings
        if settings is None:
            return
        members = {**settings.fields(), **settings.methods()}
        for name in sorted(self.migration.fed_by):
            statement = members.get(name)
            if statement is None:
                continue
            validators = [
                m
                for m in settings.methods().values()
                if any(
                    isinstance(d, ast.Call)
                    and d.args
                    and all(isinstance(a, ast.Constant) and a.value == name for a in d.args)
                    for d in m.decorator_list
                )
            ]
            elsewhere = [
                where
                for where in self.referenced(name, exclude=settings.source, within=statement)
                if not any(
                    where == f"{settings.source.relative}, line {line}"
                    for v in validators
                    for line in range(_first_line(v), _last_line(v) + 1)
                )
            ]
            if elsewhere:
                self.plan.notes.append(
                    f"{settings.name}.{name} fed the old CORS and is still read "
                    f"({elsewhere[0]}): it stays; nothing CORS reads it now"
                )
                continue
            self.remove(settings.source, statement)
            for validator in validators:
                self.remove(settings.source, validator)

    # The settings class: CORSSettings, and model_config naming the profiles.

    def config_line(
        self, entries: list[tuple[str | None, str]], profiles_name: str, indent: str
    ) -> list[str]:
        own = [
            f"**{value}" if name is None else f"{name}={value}"
            for name, value in entries
            if name not in ("cors_profiles", "cors_environment_variable")
        ]
        own.append(f"cors_profiles={json.dumps(profiles_name)}")
        if self.answers.variable != DEFAULT_VARIABLE:
            own.append(f"cors_environment_variable={json.dumps(self.answers.variable)}")
        line = f"{indent}model_config = CORSConfigDict({', '.join(own)})"
        if len(line) <= self.width:
            return [line]
        return [
            f"{indent}model_config = CORSConfigDict(",
            *(f"{indent}    {item}," for item in own),
            f"{indent})",
        ]

    def adopt_settings(self, profiles_name: str) -> None:
        settings = self.settings
        if settings is None:
            self.add_settings_class(profiles_name)
            return
        source, node = settings.source, settings.node
        edit = self.edit(source)
        edit.segment(settings.base, "CORSSettings")
        self.want(source, "corsguard", "CORSSettings")
        self.want(source, "corsguard", "CORSConfigDict")
        body = node.body
        indent = _indent(source.line(body[0].lineno))
        if settings.config is not None:
            config = settings.config
            edit.replace(
                config.lineno,
                _last_line(config),
                self.config_line(settings.entries, profiles_name, indent),
            )
            return
        line = self.config_line([], profiles_name, indent)
        docstring = isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
        if body[0].lineno == node.lineno:
            self.plan.notes.append(
                f"{source.relative}, line {node.lineno}: add to {settings.name}'s body: "
                + line[0].strip()
            )
        elif docstring:
            edit.insert(_last_line(body[0]) + 1, ["\n", *line])
        else:
            edit.insert(_first_line(body[0]), line)

    def add_settings_class(self, profiles_name: str) -> None:
        source = self.app.source
        anchor = self.app.factory or self.app.assignment
        first = _first_line(anchor)
        lines = source.text.splitlines()
        blank = 0
        while first - blank > 1 and not lines[first - blank - 2].strip():
            blank += 1
        cls = [
            *(["\n"] * max(0, 2 - blank)),
            "class Settings(CORSSettings):",
            *self.config_line([], profiles_name, "    "),
            "\n",
            "\n",
        ]
        self.edit(source).insert(first, cls)
        self.want(source, "corsguard", "CORSSettings")
        self.want(source, "corsguard", "CORSConfigDict")

    # The layer: add_cors after every middleware the app adds.

    def provider(self) -> tuple[str, str, str]:
        """(module, name, expression) of what gives the app its settings."""
        settings = self.settings
        if settings is None:
            return self.app.source.module, "Settings", "Settings.load()"
        for statement in settings.source.tree.body:
            found = _assigned(statement)
            if found and isinstance(found[1], ast.Call) and dotted(found[1].func) == settings.name:
                return settings.source.module, found[0], found[0]
        for source in self.sources:
            if source.is_test:
                continue
            for statement in source.tree.body:
                if isinstance(statement, ast.FunctionDef) and any(
                    isinstance(node, ast.Return)
                    and isinstance(node.value, ast.Call)
                    and _last(dotted(node.value.func)) == settings.name
                    for node in ast.walk(statement)
                ):
                    return source.module, statement.name, f"{statement.name}()"
        return settings.source.module, settings.name, f"{settings.name}.load()"

    def settings_expression(self) -> str:
        app, settings = self.app, self.settings
        module, name, expression = self.provider()
        if app.factory is not None and settings is not None:
            local = None
            nullable = False
            for argument in app.factory.args.args:
                if argument.annotation is not None and settings.name in _names(argument.annotation):
                    local = argument.arg
                    nullable = "None" in (
                        ast.get_source_segment(app.source.text, argument.annotation) or ""
                    )
            makers = {settings.name, f"{settings.name}.load", name}

            def gives_settings(value: ast.expr) -> bool:
                """``Settings()``, ``Settings.load()``, ``get_settings()``, or one of them
                after ``or``."""
                if isinstance(value, ast.BoolOp):
                    return any(map(gives_settings, value.values))
                return isinstance(value, ast.Call) and dotted(value.func) in makers

            assigned = [
                found[0]
                for node in ast.walk(app.factory)
                if isinstance(node, ast.stmt)
                and (found := _assigned(node)) is not None
                and gives_settings(found[1])
            ]
            if assigned:
                return assigned[0]
            if local and not nullable:
                return local
            expression = f"{local} or {expression}" if local else expression
        if module == app.source.module:
            return expression
        local_names = {origin: alias for alias, origin in imported(app.source).items()}
        alias = local_names.get((module, name))
        if alias is None:
            self.want(app.source, module, name)
            return expression
        return expression.replace(name, alias, 1)

    def add_layer(self) -> None:
        app, source = self.app, self.app.source
        edit = self.edit(source)
        expression = self.settings_expression()
        self.want(source, "corsguard", "add_cors")
        if app.factory is not None and app.returns is not None:
            indent = _indent(source.line(app.returns.lineno))
            edit.insert(app.returns.lineno, [f"{indent}add_cors({app.variable}, {expression})"])
            if app.served is not None:
                found = _assigned(app.served)
                if found:
                    edit.replace(
                        app.served.lineno,
                        _last_line(app.served),
                        [f"{found[0]} = app_or_exit({app.attribute})"],
                    )
                    self.want(source, "corsguard", "app_or_exit")
            return
        removed = self.removed.get(source.relative, [])
        last: ast.stmt = app.assignment
        for statement in source.tree.body:
            if statement.lineno <= app.assignment.lineno:
                continue
            if any(first <= statement.lineno <= end for first, end in removed):
                continue
            if self.configures(statement, app.variable):
                last = statement
        line = f"add_cors({app.variable}, {expression})"
        if isinstance(last, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            edit.insert(_last_line(last) + 1, ["\n", "\n", line])
        else:
            edit.insert(_last_line(last) + 1, [line])

    @staticmethod
    def configures(statement: ast.stmt, variable: str) -> bool:
        """Whether a module-level statement adds middleware or routers to the app."""
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return any(
                dotted(getattr(d, "func", d))
                in (f"{variable}.middleware", f"{variable}.exception_handler")
                for d in statement.decorator_list
            )
        for node in ast.walk(statement):
            if isinstance(node, ast.Call) and (
                dotted(node.func).startswith(f"{variable}.")
                or any(dotted(argument) == variable for argument in node.args)
            ):
                return True
        return False

    # .env, requirements.txt and pyproject.toml.

    @staticmethod
    def unread(variable: str, names: set[str], prefix: str) -> bool:
        """An old CORS variable (doctor's rule) that no setting reads any more."""
        upper = variable.upper()
        policies = f"{prefix}CORS_PATH_POLICIES__"
        return is_old_cors_name(variable) and upper not in names and not upper.startswith(policies)

    def other_files(self) -> list[str]:
        patches = []
        settings = self.settings
        prefix = settings.env_prefix.upper() if settings else ""
        names = {f"{prefix}{n}".upper() for n in CORSSettings.model_fields}
        names |= {f"{prefix}{n}".upper() for n in (settings.fields() if settings else ())}
        removed = self.removed.get(settings.source.relative, []) if settings else []
        if settings:
            for name, statement in settings.fields().items():
                if any(first <= statement.lineno <= last for first, last in removed):
                    names.discard(f"{settings.env_prefix}{name}".upper())
        env_files = settings.env_files if settings else [".env"]
        for name in env_files or [".env"]:
            path = self.root / name
            if not path.is_file():
                continue
            text = path.read_text(encoding="utf-8")
            lines = text.splitlines(keepends=True)
            kept = []
            for line in lines:
                key = line.split("=", 1)[0].strip().removeprefix("export ").strip()
                if "=" in line and self.unread(key, names, prefix):
                    continue
                kept.append(line)
            if kept == lines:
                continue
            try:
                relative = _relative(path.resolve(), self.root.resolve())
            except ValueError:
                self.plan.notes.append(f"remove the old CORS variables from {name}")
                continue
            patches.append(unified(relative, text, "".join(kept)))
        for variable in sorted(os.environ):
            if self.unread(variable, names, prefix):
                self.plan.notes.append(
                    f"{variable} is set in the environment and nothing reads it now: unset it "
                    "where the app is deployed"
                )
        requirements = self.root / "requirements.txt"
        pyproject = self.root / "pyproject.toml"
        declared = _toml(pyproject)
        before = after = pyproject.read_text(encoding="utf-8") if pyproject.is_file() else ""
        dependencies = declared.get("project", {}).get("dependencies")
        requirement = dependency()
        if requirements.is_file():
            text = requirements.read_text(encoding="utf-8")
            if not re.search(r"^corsguard\b", text, re.MULTILINE | re.IGNORECASE):
                ending = "" if not text or text.endswith("\n") else "\n"
                changed = f"{text}{ending}{requirement}\n"
                patches.append(unified("requirements.txt", text, changed))
        elif dependencies is not None and not any(
            re.match(r"corsguard\b", str(item), re.IGNORECASE) for item in dependencies
        ):
            added = with_dependency(before, requirement)
            if added is None:
                self.plan.notes.append(
                    f"declare the dependency: uv add '{requirement}' (or add it to "
                    "[project] dependencies in pyproject.toml)"
                )
            else:
                after = added
        if pyproject.is_file() and "corsguard" not in declared.get("tool", {}):
            spec = self.settings.spec if self.settings else f"{self.app.source.module}:Settings"
            ending = "" if after.endswith("\n") else "\n"
            after = f'{after}{ending}\n[tool.corsguard]\nsettings = "{spec}"\n'
        if after != before:
            patches.append(unified("pyproject.toml", before, after))
        return patches


def dependency() -> str:
    """The requirement a project adds: this release's public interface, as the
    template's services declare it (``corsguard>=0.4.0,<0.5``)."""
    major, minor = (int(part) for part in re.findall(r"\d+", version("corsguard"))[:2])
    upper = f"{major + 1}" if major else f"{major}.{minor + 1}"
    return f"corsguard>={major}.{minor}.0,<{upper}"


def with_dependency(text: str, requirement: str) -> str | None:
    """``text`` (a pyproject.toml) with ``requirement`` at the end of ``[project]``
    ``dependencies``, written as the list is written (one line, or one item a line); None
    when the list is written in a way this does not follow."""
    project = re.search(r"^\[project\][ \t]*(#.*)?$", text, re.MULTILINE)
    if project is None:
        return None
    following = re.search(r"^\[", text[project.end() :], re.MULTILINE)
    end = project.end() + following.start() if following else len(text)
    key = re.compile(r"^dependencies[ \t]*=[ \t]*\[", re.MULTILINE)
    found = key.search(text, project.end(), end)
    if found is None:
        return None
    opening = found.end() - 1
    closing, last = _list_end(text, opening)
    if closing is None:
        return None
    item = f'"{requirement}"'
    line_start = text.rfind("\n", 0, closing) + 1
    if "\n" in text[opening:closing] and not text[line_start:closing].strip():
        # One item a line, the bracket on a line of its own: a line before it.
        previous = text[text.rfind("\n", 0, last) + 1 : last + 1]
        indent = "    "  # an empty list: four spaces, as uv writes one
        if last > opening:
            indent = previous[: len(previous) - len(previous.lstrip(" \t"))]
        comma = "" if text[last] in ",[" else ","
        changed = f"{text[: last + 1]}{comma}{text[last + 1 : line_start]}{indent}{item},\n"
        changed += text[line_start:]
    else:
        joint = "" if text[last] == "[" else " " if text[last] == "," else ", "
        changed = f"{text[: last + 1]}{joint}{item}{text[last + 1 :]}"
    try:
        old = tomllib.loads(text)["project"]["dependencies"]
        new = tomllib.loads(changed)["project"]["dependencies"]
    except (tomllib.TOMLDecodeError, KeyError, TypeError):
        return None
    return changed if new == [*old, requirement] else None


def _list_end(text: str, opening: int) -> tuple[int | None, int]:
    """The index of the bracket closing the TOML array opened at ``opening``, and of the
    last character before it that is neither space nor comment."""
    depth, index, last = 0, opening, opening
    while index < len(text):
        char = text[index]
        if char in "\"'":
            quote = text[index : index + 3] if text[index : index + 3] in ('"""', "'''") else char
            index = text.find(quote, index + len(quote))
            while index > 0 and quote[0] == '"' and _escaped(text, index):
                index = text.find(quote, index + 1)
            if index < 0:
                return None, last
            index += len(quote)
            last = index - 1
            continue
        if char == "#":
            newline = text.find("\n", index)
            index = len(text) if newline < 0 else newline
            continue
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth == 0:
                return index, last
        if not char.isspace():
            last = index
        index += 1
    return None, last


def _escaped(text: str, index: int) -> bool:
    """Whether the character at ``index`` follows an odd run of backslashes."""
    backslashes = 0
    while index - backslashes > 0 and text[index - backslashes - 1] == "\\":
        backslashes += 1
    return backslashes % 2 == 1


def add_init_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "init",
        help="adopt the policy in an existing app: ask the template's questions, write the "
        "profiles and a policy test, print the changes to make (exit 0 written, 2 bad input)",
        description="Run at the project's root. Writes the profiles file and a policy test, "
        "never changes an existing file, and prints the changes to the app and its settings "
        "as a patch on stdout (corsguard init > cors.patch && git apply cors.patch). Every "
        "question is also an option; without a terminal, give them all, or --yes.",
    )
    parser.add_argument(
        "--app", metavar="MODULE:ATTRIBUTE", help="the app or factory, as uvicorn takes it"
    )
    parser.add_argument("--tests", metavar="DIR", help="the tests folder (default: found)")
    parser.add_argument(
        "--profiles",
        metavar="NAME",
        help=f"the profiles file beside the settings module (default {PROFILES_NAME})",
    )
    parser.add_argument(
        "--policy-test",
        metavar="PATH",
        help=f"the policy test to write (default TESTS/{POLICY_TEST_NAME})",
    )
    parser.add_argument(
        "--environment-variable",
        metavar="NAME",
        help="the variable that picks the profile (ENVIRONMENT)",
    )
    parser.add_argument("--environments", metavar="A,B", help="the environments, comma-separated")
    parser.add_argument(
        "--origins",
        action="append",
        metavar="ENV=ORIGIN,...",
        help="an environment's origins, repeatable: --origins production=https://app.example.com",
    )
    parser.add_argument(
        "--credentials",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="browsers send cookies or HTTP auth",
    )
    parser.add_argument(
        "--methods", metavar="M,...", help="methods browsers may use, as in GET,POST"
    )
    parser.add_argument("--headers", metavar="H,...", help="request headers the frontend may send")
    parser.add_argument(
        "--expose-headers", metavar="H,...", help="response headers scripts may read"
    )
    parser.add_argument("--max-age", metavar="SECONDS", help="seconds a preflight answer is cached")
    parser.add_argument(
        "--public-paths", metavar="P,...", help="path prefixes any website may read"
    )
    parser.add_argument(
        "--public-origins", metavar="O,...", help="origins that may read the public paths"
    )
    parser.add_argument(
        "--yes", action="store_true", help="ask nothing: take the defaults for what is not given"
    )


def init_command(arguments: argparse.Namespace, root: Path | None = None) -> int:
    try:
        return Init(arguments, root or Path.cwd()).run()
    except InitError as error:
        print(f"corsguard init: {error}", file=sys.stderr)
        return BAD_INPUT
    except KeyboardInterrupt:
        print("\ncorsguard init: interrupted; nothing was written", file=sys.stderr)
        return INTERRUPTED
