"""The ``corsguard`` command: ``show``, ``explain`` and ``check`` for an app's settings.

The settings are the app's own :class:`~corsguard.CORSSettings` subclass, named by
``--settings module:Class``, by ``CORSGUARD_SETTINGS``, or by ``settings`` in the
``[tool.corsguard]`` table of the project's ``pyproject.toml``; a profile that also sets
the app's own fields loads here as it does in the app.

Exit status: 0 when a browser would be allowed (``explain``) or the deployment agrees
(``check``), 1 when not, 2 on bad input or an invalid configuration.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .app import configure_logging
from .check import DEFAULT_PATH, DEFAULT_TIMEOUT, check_command
from .doctor import doctor_command
from .explain import describe_policies, explain
from .middleware import runtime_origins
from .origins import OriginError
from .settings import ConfigError, CORSSettings, variables_set
from .store import RuntimeOrigins, StoreError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ALLOWED, REFUSED, BAD_INPUT = 0, 1, 2
SETTINGS_VARIABLE = "CORSGUARD_SETTINGS"


def settings_class(given: str | None, start: Path | None = None) -> type[CORSSettings]:
    """The settings class named by ``given``, ``CORSGUARD_SETTINGS`` or pyproject.toml."""
    spec = given or os.environ.get(SETTINGS_VARIABLE) or _from_pyproject(start or Path.cwd())
    if not spec:
        raise ConfigError(
            "corsguard needs the app's settings class: pass --settings module:Class (as in "
            "--settings app.core.config:Settings), set CORSGUARD_SETTINGS, or add to "
            'pyproject.toml:\n  [tool.corsguard]\n  settings = "app.core.config:Settings"'
        )
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"{spec!r} is not module:Class: write it as app.core.config:Settings")
    # Like uvicorn: the current directory is importable, for apps that are not installed.
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise ConfigError(
            f"cannot import {module_name!r} (from {spec!r}): {error}; run corsguard from the "
            "project's root, in its environment (uv run corsguard ...)"
        ) from None
    found = getattr(module, attribute, None)
    if not (isinstance(found, type) and issubclass(found, CORSSettings)):
        raise ConfigError(
            f"{spec!r} is not a subclass of corsguard.CORSSettings: name the settings class "
            "that inherits from it"
        )
    return found


def _from_pyproject(start: Path) -> str | None:
    for folder in (start, *start.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            table = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {})
            value = table.get("corsguard", {}).get("settings")
            return str(value) if value else None
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="corsguard", description="Inspect an app's CORS policy and its deployment."
    )
    parser.add_argument(
        "--settings",
        metavar="MODULE:CLASS",
        help="the app's settings class (default: CORSGUARD_SETTINGS, or [tool.corsguard] "
        "settings in pyproject.toml)",
    )
    cors = parser.add_subparsers(dest="action", required=True)
    cors.add_parser("show", help="print every environment's effective policy")
    explain_parser = cors.add_parser(
        "explain", help="would a browser on ORIGIN be allowed? (exit 0 yes, 1 no, 2 bad input)"
    )
    explain_parser.add_argument(
        "--env",
        help="environment to check (default: the variable that picks the profile)",
    )
    explain_parser.add_argument("--origin", required=True, help="the page's origin or URL")
    explain_parser.add_argument("--method", default="GET", help="request method (default GET)")
    explain_parser.add_argument(
        "--header", action="append", default=[], metavar="NAME", help="a request header name"
    )
    explain_parser.add_argument(
        "--credentials", action="store_true", help="the request sends cookies or HTTP auth"
    )
    explain_parser.add_argument(
        "--path", default="/", help="the requested path: picks the policy (default /)"
    )
    check_parser = cors.add_parser(
        "check",
        help="does the deployed service at URL answer browsers as the policy says? "
        "(exit 0 yes, 1 no, 2 bad input)",
    )
    check_parser.add_argument(
        "url", help="the service's base URL as browsers call it; --path is added to it"
    )
    check_parser.add_argument(
        "--env",
        help="the deployment's environment (default: the variable that picks the profile)",
    )
    check_parser.add_argument(
        "--path",
        action="append",
        metavar="PATH",
        help=f"a path to check, repeatable: picks the policy (default {DEFAULT_PATH})",
    )
    check_parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds to wait for each answer (default {DEFAULT_TIMEOUT:g})",
    )
    check_parser.add_argument("--json", action="store_true", help="print the report as JSON")
    add_origins_parser(cors)
    doctor_parser = cors.add_parser(
        "doctor",
        help="what is left of the app's old CORS, each with its fix (exit 0 clean, 1 "
        "findings, 2 bad input)",
    )
    doctor_parser.add_argument(
        "app", help="the app as its server imports it: module:app, or module:factory"
    )
    doctor_parser.add_argument("--json", action="store_true", help="print the report as JSON")
    from .init import add_init_parser

    add_init_parser(cors)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    if arguments.action == "doctor":  # reads the app itself: no settings class needed
        return doctor_command(arguments.app, arguments.json)
    if arguments.action == "init":  # reads the project's source: --settings is only a hint
        from .init import init_command

        return init_command(arguments)
    try:
        settings_cls = settings_class(arguments.settings)
        if arguments.action == "show":
            return show(settings_cls)
        arguments.env = environment_of(settings_cls, arguments.env, arguments.action)
        if arguments.action == "origins":
            return origins_command(settings_cls, arguments)
        if arguments.action == "check":
            return check_command(settings_cls, arguments)
        return explain_command(settings_cls, arguments)
    except (ConfigError, OriginError, StoreError) as error:
        print(error, file=sys.stderr)
        return BAD_INPUT


def environment_of(settings_cls: type[CORSSettings], given: str | None, command: str) -> str:
    """``--env``, else the profile's variable (environment or ``.env``), as the app reads it."""
    profiles = list(settings_cls.profiles().profiles)
    if given is not None:
        if profiles and given not in profiles:
            raise ConfigError(
                f"--env {given!r} is not an environment of this app: use one of "
                f"{', '.join(profiles)}"
            )
        return given
    variable = settings_cls.environment_variable()
    settings = settings_cls.load()
    if profiles and not any(
        name.upper() == variable.upper() for name in variables_set(settings_cls)
    ):
        raise ConfigError(
            f"{command} needs the deployment's environment: pass --env (for example --env "
            f"{profiles[-1]}) or set {variable}"
        )
    return settings.environment


def show(settings_cls: type[CORSSettings]) -> int:
    # Load every environment first, so that an invalid one prints only its error.
    names = list(settings_cls.profiles().profiles) or [settings_cls.load().environment]
    policies = {}
    for name in names:
        settings = settings_cls.load(environment=name)
        policies[name] = describe_policies(settings, runtime_origins(settings))
    for environment, lines in policies.items():
        print(f"{environment or '(no profiles file)'}:")
        print("\n".join(lines))
    print("(the profiles, with the environment and .env applied)")
    return ALLOWED


def explain_command(settings_cls: type[CORSSettings], arguments: argparse.Namespace) -> int:
    if not arguments.path.startswith("/"):
        raise OriginError(f"--path {arguments.path!r} must start with '/', as in '/public/items'")
    if any(not header.strip() for header in arguments.header):
        raise OriginError("--header needs a header name, as in --header Authorization")
    settings = settings_cls.load(environment=arguments.env)
    runtime = runtime_origins(settings)
    verdict = explain(
        settings,
        arguments.origin,
        arguments.method,
        arguments.header,
        arguments.credentials,
        arguments.path,
        runtime,
    )
    headers = ", ".join(arguments.header) or "none"
    print(f"Effective policy of {arguments.env} (profiles, environment and .env applied):")
    print("\n".join(describe_policies(settings, runtime)))
    print(
        f"Request: origin {verdict.origin}, {arguments.method} {arguments.path}, headers {headers}"
    )
    print(f"Decided by {verdict.policy}")
    for note in verdict.notes:
        print(f"  note: {note}")
    if verdict.allowed:
        print(f"ALLOWED: origin allowed by {verdict.decided_by}")
        return ALLOWED
    print("REFUSED:")
    for problem in verdict.problems:
        print(f"  - {problem}")
    return REFUSED


def add_origins_parser(commands: Any) -> None:
    origins = commands.add_parser(
        "origins",
        help="add, remove or list run-time origins in the origin store (CORS_ORIGIN_STORE)",
    )
    actions = origins.add_subparsers(dest="origins_action", required=True)
    for verb, text in (
        ("add", "allow ORIGIN (or a pattern) from now on, in every process"),
        ("remove", "stop allowing ORIGIN, in every process"),
        ("list", "every run-time origin in the store, and the rows it skips"),
    ):
        sub = actions.add_parser(verb, help=text)
        if verb != "list":
            sub.add_argument("origin", help="an origin, as https://tenant.example.com")
            sub.add_argument("--by", help="who makes the change (logged and stored)")
        sub.add_argument(
            "--policy",
            default=None,
            help="the path policy the entry belongs to (default: the default policy)",
        )
        sub.add_argument(
            "--env",
            help="the environment whose rules apply (default: the variable that picks the profile)",
        )
        if verb == "list":
            sub.add_argument("--json", action="store_true", help="print the rows as JSON")


def origins_command(settings_cls: type[CORSSettings], arguments: argparse.Namespace) -> int:
    settings = settings_cls.load(environment=arguments.env)
    if not settings.cors_origin_store:
        variable = settings.env_name("cors_origin_store")
        raise ConfigError(
            f"{arguments.env} has no origin store: set {variable} (as in "
            f"{variable}=sqlite:////var/lib/service/origins.db, or a postgresql:// URL), or "
            "cors_origin_store in its profile"
        )
    # The change is logged once, by this process: on its stderr, as a server logs.
    configure_logging(settings.log_level)
    runtime = RuntimeOrigins(settings)
    store = runtime.store.name
    if arguments.origins_action == "list":
        return list_origins(runtime, arguments)
    policy = "the default policy" if not arguments.policy else f"the {arguments.policy!r} policy"
    if arguments.origins_action == "add":
        entry = runtime.add(arguments.origin, arguments.policy, arguments.by)
        print(
            f"{entry} is a run-time origin of {policy} ({store}); every process of the "
            "service applies it within a second"
        )
        return ALLOWED
    if runtime.remove(arguments.origin, arguments.policy, arguments.by):
        print(
            f"removed {arguments.origin} from {policy} ({store}); every process of the "
            "service stops allowing it within a second"
        )
        return ALLOWED
    print(
        f"{arguments.origin} is not a run-time origin of {policy} in {store}: see "
        "corsguard origins list",
        file=sys.stderr,
    )
    return REFUSED


def list_origins(runtime: RuntimeOrigins, arguments: argparse.Namespace) -> int:
    rows = [
        (row, problem)
        for row, problem in runtime.list()
        if arguments.policy is None or row.policy_name == arguments.policy
    ]
    if arguments.json:
        print(
            json.dumps(
                [
                    {
                        "origin": row.origin,
                        "policy": row.policy_name,
                        "added_by": row.added_by,
                        "added_at": row.added_at,
                        "skipped": problem,
                    }
                    for row, problem in rows
                ],
                indent=2,
            )
        )
        return ALLOWED
    print(f"run-time origins in {runtime.store.name}: {len(rows)}")
    for row, problem in rows:
        by = f" by {row.added_by}" if row.added_by else ""
        print(f"  {row.origin}  ({row.policy_name} policy, added {row.added_at}{by})")
        if problem:
            print(f"    SKIPPED, never applied: {problem}")
    return ALLOWED


if __name__ == "__main__":
    sys.exit(main())
