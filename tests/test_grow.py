"""Journey 8: the owner grows the service as its README shows, and everything stays green.

A router with a POST route and its test, a setting read from a variable, GZip and a
request-ID middleware, a dependency added with ``uv add``: each step takes its code from
the generated README (``tests/owner.py``). Afterwards the service passes its own tests,
lint, format check and strict type check, and the CORS layer still decides every
response, those of the new route and of the new middleware included.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from . import owner
from .conftest import check_project, git, render, run
from .test_generate import ANSWER_SETS, package_of, settings_of

GROWN = ["example", "single-environment", "env-prefix"]

PROBE = """
import asyncio, json, sys

import httpx

from {package}.main import create_app
from {package}.settings import Settings


async def main() -> None:
    environment, origin = sys.argv[1], sys.argv[2]
    app = create_app(Settings(_env_file=None, environment=environment))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        preflight = await client.options("/items", headers={{
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        }})
        created = await client.post("/items", json={{"name": "x"}}, headers={{"Origin": origin}})
        refused = await client.post(
            "/items", json={{"name": "x"}}, headers={{"Origin": "https://evil.example.net"}}
        )
    print(json.dumps({{
        "preflight": preflight.status_code,
        "created": created.status_code,
        "allow_origin": created.headers.get("access-control-allow-origin"),
        "expose": created.headers.get("access-control-expose-headers", ""),
        "request_id": created.headers.get("x-request-id", ""),
        "refused": refused.status_code,
        "refused_allow_origin": refused.headers.get("access-control-allow-origin"),
    }}))


asyncio.run(main())
"""


@pytest.mark.slow
@pytest.mark.parametrize("answers", GROWN)
def test_the_readme_journeys_keep_the_service_green(
    template_repo: Path, tmp_path: Path, answers: str
) -> None:
    project = render(template_repo, tmp_path / answers, ANSWER_SETS[answers])
    package = package_of(project)
    git(project, "init", "-q", "-b", "main")
    edits = owner.grow(project, package)
    assert {"tests/test_items.py", "tests/test_request_id.py", "tests/test_settings.py"} <= set(
        edits.lines
    )

    check_project(project)

    profiles = settings_of(project)["environments"]
    environment = list(profiles)[-1]
    policy = profiles[environment]
    origin = next(o for o in policy["cors_allow_origins"] if "*" not in o and o != "null")
    seen = json.loads(
        run(
            project,
            "uv",
            "run",
            "--no-sync",
            "python",
            "-c",
            PROBE.format(package=package),
            environment,
            origin,
        )
    )
    assert seen["created"] == 201 and seen["allow_origin"] == origin, seen
    assert seen["preflight"] == (200 if "POST" in policy["cors_allow_methods"] else 400), seen
    assert len(seen["request_id"]) == 32, seen
    # A write from a refused origin is stopped by the CORS layer, outside the owner's
    # middleware, before any handler runs.
    assert seen["refused"] == 403, seen
    exposed = "X-Request-ID" in policy["cors_expose_headers"]
    assert ("X-Request-ID" in seen["expose"]) is exposed, seen
    assert seen["refused_allow_origin"] is None, seen
