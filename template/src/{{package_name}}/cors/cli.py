"""Command line: ``<package> cors show``, ``<package> cors explain`` and ``<package> cors check``.

The settings are the service's own ``Settings`` class (``<package>/settings.py``), so a
profile that also sets the owner's fields loads here as it does in the app.

Exit status of ``explain``: 0 when a browser would be allowed, 1 when refused, 2 on
bad input or an invalid configuration.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ..settings import Settings
from .check import DEFAULT_PATH, DEFAULT_TIMEOUT, check_command
from .explain import describe_policies, explain
from .origins import OriginError
from .settings import ENVIRONMENT_VARIABLE, SERVICE, ConfigError

ALLOWED, REFUSED, BAD_INPUT = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=__name__.split(".")[0], description=SERVICE.title)
    commands = parser.add_subparsers(dest="command", required=True)
    cors = commands.add_parser("cors", help="inspect the CORS policy").add_subparsers(
        dest="action", required=True
    )
    cors.add_parser("show", help="print every environment's effective policy")
    explain_parser = cors.add_parser(
        "explain", help="would a browser on ORIGIN be allowed? (exit 0 yes, 1 no, 2 bad input)"
    )
    explain_parser.add_argument(
        "--env",
        choices=list(SERVICE.profiles),
        help="environment to check (default: the ENVIRONMENT variable)",
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
        choices=list(SERVICE.profiles),
        help="the deployment's environment (default: the ENVIRONMENT variable)",
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    try:
        if arguments.action == "show":
            return show()
        arguments.env = environment_of(arguments.env, f"cors {arguments.action}")
        if arguments.action == "check":
            return check_command(arguments)
        return explain_command(arguments)
    except (ConfigError, OriginError) as error:
        print(error, file=sys.stderr)
        return BAD_INPUT


def environment_of(given: str | None, command: str) -> str:
    """``--env``, else the ``ENVIRONMENT`` variable, as the service itself would read it."""
    environment = given or os.environ.get(ENVIRONMENT_VARIABLE)
    if not environment:
        raise ConfigError(
            f"{command} needs the deployment's environment: pass --env (for example --env "
            f"{list(SERVICE.profiles)[-1]}) or set {ENVIRONMENT_VARIABLE}"
        )
    return environment


def show() -> int:
    # Load every environment first, so that an invalid one prints only its error.
    policies = {
        name: describe_policies(Settings.load(environment=name)) for name in SERVICE.profiles
    }
    for environment, lines in policies.items():
        print(f"{environment}:")
        print("\n".join(lines))
    print("(profiles from settings.toml, with the environment and .env applied)")
    return ALLOWED


def explain_command(arguments: argparse.Namespace) -> int:
    if not arguments.path.startswith("/"):
        raise OriginError(f"--path {arguments.path!r} must start with '/', as in '/public/items'")
    if any(not header.strip() for header in arguments.header):
        raise OriginError("--header needs a header name, as in --header Authorization")
    settings = Settings.load(environment=arguments.env)
    verdict = explain(
        settings,
        arguments.origin,
        arguments.method,
        arguments.header,
        arguments.credentials,
        arguments.path,
    )
    headers = ", ".join(arguments.header) or "none"
    print(f"Effective policy of {arguments.env} (settings.toml, environment and .env applied):")
    print("\n".join(describe_policies(settings)))
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


if __name__ == "__main__":
    sys.exit(main())
