"""Origins added while the service runs, as a real headless browser sees them.

One generated service runs under uvicorn with a SQLite origin store
(``CORS_ORIGIN_STORE``). A page on an origin its profile does not name calls it with a
credentialed fetch and is refused; its owner runs ``corsguard origins add`` for that
origin, and the same page, in the same service process, reads the JSON; after
``corsguard origins remove`` it is refused again. The time from the command returning
to the page's first fetch with the new answer is printed as a ``MEASURED`` line
(``pytest -rP`` shows it). The service's in-memory request count runs on through every
step: one process answered them all, and every refused fetch reached it.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .browser_support import (
    OTHER_SITE,
    TEST_DOMAIN,
    Engine,
    Tab,
    free_port,
    page_server,
    requests_seen,
    running_service,
    write_e2e_app,
)
from .conftest import owner_environment, render, run

pytestmark = pytest.mark.browser

PACKAGE = "runtime_check"
PAGE_HOST = f"app.{OTHER_SITE}"  # the origin added and removed while the service runs
APPLIED_WITHIN_S = 3.0  # how soon every process applies a change (the store pushes it)
RETRY_S = 0.02
CREDENTIALED = {"credentials": "include"}
ENV = ("--env", "development")  # the profile the service runs, named as its owner does


@dataclass(frozen=True)
class Stage:
    project: Path
    store: str  # the CORS_ORIGIN_STORE both the service and the owner's commands use
    api: str  # as pages call it: http://api.example.test:<port>
    direct: str  # as the test reads the request log: http://127.0.0.1:<port>
    page_port: int

    def origins(self, *arguments: str) -> str:
        """``uv run corsguard origins ...`` in the project, as its owner types it."""
        command = ("uv", "run", "--no-sync", "corsguard", "origins", *arguments, *ENV)
        return run(self.project, *command, env={"CORS_ORIGIN_STORE": self.store})


@pytest.fixture(scope="module")
def stage(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    root = tmp_path_factory.mktemp("runtime")
    store = f"sqlite:///{root / 'origins.db'}"  # an absolute path: sqlite:////...
    with page_server() as page_port:
        answers = {
            "project_name": "Runtime Check",
            "package_name": PACKAGE,
            "environments": ["development"],
            "cors_origins": {"development": [f"http://app.{TEST_DOMAIN}:{page_port}"]},
            "cors_allow_credentials": True,
            "cors_allow_methods": ["GET"],
            "cors_allow_headers": [],
            "cors_expose_headers": [],
        }
        project = render(template_repo, root / "service", answers)
        run(project, "uv", "sync", "--quiet")
        write_e2e_app(project, PACKAGE)
        api_port = free_port()
        environment = {"CORS_ORIGIN_STORE": store}
        with running_service(project, api_port, root / "service.log", None, environment) as direct:
            yield Stage(project, store, f"http://api.{TEST_DOMAIN}:{api_port}", direct, page_port)


@dataclass
class Change:
    """How long after an ``origins`` command returned the page first saw its effect."""

    seconds: float
    fetches: int
    result: dict[str, Any]


def first_change(tab: Tab, url: str, readable: bool, since: float) -> Change:
    """Fetch ``url`` from the page until it is ``readable`` (or refused), for at most
    APPLIED_WITHIN_S after ``since``."""
    fetches = 0
    while True:
        result: dict[str, Any] = tab.call("call", url, CREDENTIALED)
        fetches += 1
        seconds = time.monotonic() - since
        if ("status" in result) == readable:
            return Change(seconds, fetches, result)
        if seconds > APPLIED_WITHIN_S:
            state = "read the answer" if readable else "be refused"
            pytest.fail(
                f"the page on {PAGE_HOST} did not {state} within {APPLIED_WITHIN_S} s of "
                f"the command ({fetches} fetches of {url}); last result: {result}"
            )
        time.sleep(RETRY_S)


def refused(result: dict[str, Any]) -> bool:
    """What a page's script catches from a fetch the browser blocked."""
    return result.get("error") == "TypeError"


def test_an_origin_added_and_removed_at_run_time_reaches_the_browser(
    engine: Engine, stage: Stage
) -> None:
    origin = f"http://{PAGE_HOST}:{stage.page_port}"
    path = f"/api/data/runtime-{engine.name}"
    url = stage.api + path
    tab = engine.new_tab()
    added = False
    try:
        tab.goto(origin + "/")
        before = tab.call("call", url, CREDENTIALED)
        assert refused(before), f"{origin} is in no profile, yet its page read {url}: {before}"

        output = stage.origins("add", origin, "--by", "owner")
        added = True
        assert origin in output, output
        allowed = first_change(tab, url, readable=True, since=time.monotonic())
        assert allowed.result["status"] == 200, allowed.result
        assert json.loads(allowed.result["body"]) == {"name": f"runtime-{engine.name}"}

        stage.origins("remove", origin)
        added = False
        removed = first_change(tab, url, readable=False, since=time.monotonic())
        assert refused(removed.result), removed.result
    finally:
        engine.close_tabs()
        if added:  # leave the store as the next engine's run expects it
            subprocess.run(
                ["uv", "run", "--no-sync", "corsguard", "origins", "remove", origin, *ENV],
                cwd=stage.project,
                env={**owner_environment(), "CORS_ORIGIN_STORE": stage.store},
                capture_output=True,
                check=False,
            )

    # One process answered every fetch, refused ones included: its count never restarted.
    fetches = 1 + allowed.fetches + removed.fetches
    assert requests_seen(stage.direct).get(f"GET {path}") == fetches
    print(
        f"MEASURED {engine.name} {engine.version}: origins add -> the page reads the JSON "
        f"after {allowed.seconds * 1000:.0f} ms ({allowed.fetches} fetch(es)); origins remove "
        f"-> the page is refused after {removed.seconds * 1000:.0f} ms "
        f"({removed.fetches} fetch(es))"
    )
