"""Journey 9, adopt: existing apps take up corsguard, by hand as docs/existing-app.md
says, or with ``corsguard init``; ``corsguard doctor`` names what is left of their old CORS.

For each app of ``tests/adopt_fixtures.py``: write it, give it a virtual environment of its
own (``uv venv`` and ``uv pip install``; corsguard comes from the index that conftest's
``pytest_configure`` builds from engine/), run its own tests, then

- by hand: apply the page's blocks for it (read from the page, so that the page and this
  test cannot drift), then check its tests, its policy test, the corsguard command, write
  protection, the JSON 500, WebSocket handshakes, a bad origin at start-up and doctor;
- with init (issue 24): doctor names every leftover the app has, ``corsguard init`` is
  answered by a script, its patch is applied with ``git apply``, and then the app's own
  tests, the policy test init wrote and doctor pass; the figures are printed as lines
  starting ``MEASURED`` (``pytest -rP``) and must be the page's table. One app is adopted
  interactively too, in an 80-column terminal.

The page marks each block with an HTML comment naming the app and the file:
``<!-- adopt: NAME PATH -->`` before a fenced block. A ``diff`` block is applied to the
app's file (hunks separated by ``@@``; `` ``/``-`` lines must be in the file, in order); any
other block is the whole file; ``PATH`` ``commands`` is a bash block of corsguard commands,
each with its expected exit status in a trailing ``# exit N`` (0 without one).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pexpect
import pyte
import pytest
import yaml
from corsguard import CORSConfigDict, CORSSettings
from corsguard.doctor import is_old_cors_name
from corsguard.init import DEFAULTS, HELP
from corsguard.testing import profile_settings

from .adopt_fixtures import FIXTURES, Fixture
from .conftest import ROOT, owner_environment

PAGE = ROOT / "docs" / "existing-app.md"
POLICY_TEST = "tests/test_cors_policy.py"
MARKER = re.compile(
    r"^<!-- adopt: (?P<fixture>[\w-]+) (?P<path>\S+) -->\n```(?P<lang>\w*)\n(?P<body>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)


# --- Reading the page ------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    fixture: str
    path: str
    lang: str
    body: str


def page_blocks() -> list[Block]:
    text = PAGE.read_text(encoding="utf-8")
    return [Block(**match.groupdict()) for match in MARKER.finditer(text)]


def blocks_of(fixture: str) -> list[Block]:
    return [block for block in page_blocks() if block.fixture == fixture]


@dataclass
class Hunk:
    old: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    added: int = 0  # non-blank lines added or changed
    removed: int = 0  # non-blank lines removed
    statements: int = 0  # statements among the added lines (a call over 5 lines is 1)


def hunks(diff: str) -> list[Hunk]:
    """The hunks of a diff block; a blank line is a blank context line."""
    found = [Hunk()]
    depth = 0  # open brackets in the new text: a line inside them continues a statement
    for line in diff.splitlines():
        if line.startswith("@@"):
            found.append(Hunk())
            depth = 0
            continue
        hunk = found[-1]
        kind, text = (line[:1], line[1:]) if line else (" ", "")
        if kind == " ":
            hunk.old.append(text)
            hunk.new.append(text)
        elif kind == "-":
            hunk.old.append(text)
            hunk.removed += bool(text.strip())
            continue
        elif kind == "+":
            hunk.new.append(text)
            hunk.added += bool(text.strip())
            hunk.statements += bool(text.strip()) and depth == 0
        else:
            raise AssertionError(f"not a diff line: {line!r}")
        depth += sum(text.count(c) for c in "([{") - sum(text.count(c) for c in ")]}")
    return [hunk for hunk in found if hunk.old or hunk.new]


def apply_diff(text: str, diff: str, where: str) -> str:
    """``text`` with each hunk's old lines replaced by its new ones; a hunk without old
    lines is appended."""
    lines = text.splitlines()
    for hunk in hunks(diff):
        if not hunk.old:
            lines += hunk.new
            continue
        size = len(hunk.old)
        starts = [i for i in range(len(lines) - size + 1) if lines[i : i + size] == hunk.old]
        assert len(starts) == 1, f"{where}: the page's hunk matches {len(starts)} times:\n" + (
            "\n".join(hunk.old)
        )
        lines[starts[0] : starts[0] + size] = hunk.new
    return "\n".join(lines) + "\n"


@dataclass
class Adoption:
    """What applying the page's blocks did to one app."""

    edited: dict[str, tuple[int, int]] = field(default_factory=dict)  # path -> (+, -)
    statements: dict[str, int] = field(default_factory=dict)  # path -> statements added
    created: dict[str, int] = field(default_factory=dict)  # path -> lines
    commands: list[tuple[dict[str, str], list[str], int]] = field(default_factory=list)

    def code_lines_added(self) -> int:
        return sum(added for path, (added, _) in self.edited.items() if path.endswith(".py"))

    def code_statements_added(self) -> int:
        return sum(n for path, n in self.statements.items() if path.endswith(".py"))

    def code_lines_removed(self) -> int:
        return sum(removed for path, (_, removed) in self.edited.items() if path.endswith(".py"))


def adopt(fixture: Fixture, project: Path) -> Adoption:
    """Apply the page's blocks for ``fixture`` to the app in ``project``."""
    blocks = blocks_of(fixture.name)
    assert blocks, f"{PAGE.name} has no blocks for {fixture.name}"
    done = Adoption()
    for block in blocks:
        where = f"{PAGE.name}, {fixture.name} {block.path}"
        if block.path == "commands":
            done.commands += parse_commands(block.body)
            continue
        target = project / block.path
        if block.lang == "diff":
            assert target.is_file(), f"{where}: the app has no such file"
            target.write_text(
                apply_diff(target.read_text(encoding="utf-8"), block.body, where), encoding="utf-8"
            )
            added = sum(h.added for h in hunks(block.body))
            removed = sum(h.removed for h in hunks(block.body))
            previous = done.edited.get(block.path, (0, 0))
            done.edited[block.path] = (previous[0] + added, previous[1] + removed)
            statements = sum(h.statements for h in hunks(block.body))
            done.statements[block.path] = done.statements.get(block.path, 0) + statements
        else:
            assert not target.exists(), f"{where}: the page would overwrite the app's file"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.body, encoding="utf-8")
            done.created[block.path] = len(block.body.splitlines())
    return done


def parse_commands(body: str) -> list[tuple[dict[str, str], list[str], int]]:
    """(variables, argv, expected exit status) for each corsguard line of a bash block."""
    variables: dict[str, str] = {}
    commands = []
    for line in body.splitlines():
        line, _, comment = line.partition("  #")
        words = shlex.split(line)
        if not words:
            continue
        if words[0] == "export":
            name, _, value = words[1].partition("=")
            variables[name] = value
            continue
        assert words[0] == "corsguard", f"not a corsguard command: {line}"
        status = re.fullmatch(r"\s*exit (\d)\s*", comment)
        commands.append((dict(variables), words, int(status.group(1)) if status else 0))
    return commands


# --- Running the app's tools -------------------------------------------------------------


def clean_environment(fixture: Fixture, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """An owner's shell: none of this run's variables, none of the app's CORS ones."""
    prefixes = ("CORS_", "APP_", "INVENTORY_", "CORSGUARD_")
    environment = {
        key: value
        for key, value in owner_environment().items()
        if not key.upper().startswith(prefixes)
        and key.upper() != fixture.environment_variable
        and not is_old_cors_name(key)  # doctor would name it
    }
    environment.update({"PYTHONDONTWRITEBYTECODE": "1", **fixture.env, **(extra or {})})
    return environment


def run(
    fixture: Fixture,
    project: Path,
    *command: str,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command,
        cwd=project,
        env=clean_environment(fixture, env),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if check:
        assert result.returncode == 0, (
            f"{' '.join(command)} failed in {project} ({result.returncode}):\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def bin_path(project: Path, name: str) -> str:
    return str(project / ".venv" / "bin" / name)


def install(fixture: Fixture, project: Path, *packages: str) -> None:
    """``uv pip install`` into the app's venv; corsguard from the index UV_INDEX names."""
    python = bin_path(project, "python")
    options = ("--quiet", "--compile-bytecode", "--python", python)
    run(fixture, project, "uv", "pip", "install", *options, *packages)


def pytest_counts(fixture: Fixture, project: Path, *arguments: str) -> int:
    """Run the app's pytest; return how many passed (every test must pass)."""
    result = run(
        fixture, project, bin_path(project, "python"), "-m", "pytest", "-q", "-p",
        "no:cacheprovider", *arguments, check=False,
    )  # fmt: skip
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    passed = re.search(r"(\d+) passed", summary)
    assert result.returncode == 0 and passed and not re.search(r"failed|error", summary), (
        f"{fixture.name}: pytest {' '.join(arguments)}:\n{result.stdout[-6000:]}"
        f"\n{result.stderr[-3000:]}"
    )
    return int(passed.group(1))


CHECK_SCRIPT = r"""
import json, os, sys
sys.path.insert(0, os.getcwd())  # the app's root, as uvicorn imports it
from fastapi.testclient import TestClient
from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect

config = json.loads(sys.argv[1])
namespace = {}
exec(config["app_code"], namespace)
app = namespace["app"]


@app.get("/adopt-probe/boom")
def boom():
    raise RuntimeError("a bug in a route")


@app.websocket("/adopt-probe/ws")
async def ws(websocket: WebSocket):
    await websocket.accept()
    await websocket.send_text("hello")
    await websocket.close()


client = TestClient(app, raise_server_exceptions=False)
allowed, refused = config["allowed"], config["refused"]
results = {}
form = {
    "Origin": refused,
    "Sec-Fetch-Site": "cross-site",
    "Content-Type": "application/x-www-form-urlencoded",
}
answer = client.post(config["write_path"], headers=form, content=b"a=1")
results["refused_write"] = [answer.status_code, answer.json()]
answer = client.post(
    config["write_path"],
    headers={"Origin": allowed, "Sec-Fetch-Site": "cross-site"},
    json=config["write_json"],
)
results["allowed_write"] = [answer.status_code, answer.headers.get("access-control-allow-origin")]
answer = client.get("/adopt-probe/boom", headers={"Origin": allowed})
results["error"] = [
    answer.status_code,
    answer.headers.get("content-type"),
    answer.text,
    answer.headers.get("access-control-allow-origin"),
    answer.headers.get("vary"),
]
answer = client.get("/adopt-probe/boom", headers={"Origin": refused})
results["error_refused"] = [answer.status_code, answer.headers.get("access-control-allow-origin")]


def handshake(origin):
    try:
        with client.websocket_connect("/adopt-probe/ws", headers={"Origin": origin}) as socket:
            return ["accepted", socket.receive_text()]
    except WebSocketDisconnect as closed:
        return ["closed", closed.code]


results["ws_refused"] = handshake(refused)
results["ws_allowed"] = handshake(allowed)
print(json.dumps(results))
"""


def browser_checks(fixture: Fixture, project: Path) -> dict[str, list[object]]:
    """What the adopted app, in its production profile, answers browsers."""
    config = {
        "app_code": fixture.app_code,
        "allowed": fixture.allowed_origin,
        "refused": fixture.refused_origin,
        "write_path": fixture.write_path,
        "write_json": fixture.write_json,
    }
    script = project.parent / "browser_checks.py"
    script.write_text(CHECK_SCRIPT, encoding="utf-8")
    result = run(
        fixture, project, bin_path(project, "python"), str(script), json.dumps(config),
        env={fixture.environment_variable: fixture.production},
    )  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- The journey -------------------------------------------------------------------------

REPORT: dict[str, dict[str, object]] = {}
EXPECTED_STATEMENTS = {"fullstack": 5, "factory": 6, "classic": 5}


def test_the_page_has_blocks_for_every_fixture() -> None:
    names = {block.fixture for block in page_blocks()}
    assert names == set(FIXTURES), names
    for name in FIXTURES:
        paths = [block.path for block in blocks_of(name)]
        assert POLICY_TEST in paths, f"{name}: no policy test on the page"
        assert "commands" in paths, f"{name}: no corsguard commands on the page"
        assert any(path.endswith(".toml") and "cors" in path for path in paths), name


def test_diff_application() -> None:
    text = "a\nb\n\nc\n"
    diff = " a\n-b\n+B\n\n@@\n c\n+d"
    assert apply_diff(text, diff, "here") == "a\nB\n\nc\nd\n"
    assert [(h.added, h.removed) for h in hunks(diff)] == [(1, 1), (1, 0)]
    call = "+x = f(\n+    a,\n+    b,\n+)\n+y = 1"
    assert [(h.added, h.statements) for h in hunks(call)] == [(5, 2)]
    with pytest.raises(AssertionError, match="matches 0 times"):
        apply_diff(text, "-x", "here")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_an_existing_app_adopts_corsguard(name: str, tmp_path: Path) -> None:
    fixture = FIXTURES[name]
    project = tmp_path / name
    timings: dict[str, float] = {}
    start = time.perf_counter()

    written = fixture.write(project)
    run(fixture, project, "uv", "venv", "--quiet", ".venv")
    python = bin_path(project, "python")
    install(fixture, project, *fixture.install)
    timings["setup"] = time.perf_counter() - start
    before = pytest_counts(fixture, project)
    timings["tests before"] = time.perf_counter() - start - timings["setup"]

    # Adopt: the page's lines, files and install step.
    mark = time.perf_counter()
    adoption = adopt(fixture, project)
    if (project / "requirements.txt").is_file():
        install(fixture, project, "-r", "requirements.txt")
    else:
        install(fixture, project, "corsguard")  # what `uv add corsguard` does to the venv
    assert (project / ".venv" / "bin" / "corsguard").is_file()

    # The app's own tests still pass, and the policy test passes.
    own_after = pytest_counts(fixture, project, "--ignore", POLICY_TEST)
    assert own_after == before
    policy = pytest_counts(fixture, project, POLICY_TEST)
    assert policy >= 5 * len(fixture.profiles), policy

    # The corsguard command, as the page runs it.
    assert adoption.commands, "no commands"
    explained = set()
    for variables, argv, status in adoption.commands:
        if fixture.cli == "option":
            assert "--settings" in argv
        command = [bin_path(project, "corsguard"), *argv[1:]]
        result = run(fixture, project, *command, env=variables, check=False)
        assert result.returncode == status, (
            f"{' '.join(argv)}: exit {result.returncode}, the page says {status}\n"
            f"{result.stdout}\n{result.stderr}"
        )
        if "show" in argv:
            for profile in fixture.profiles:
                assert f"{profile}:" in result.stdout.splitlines(), result.stdout
            assert fixture.origins_variable in result.stdout, result.stdout
        if "explain" in argv:
            origin = argv[argv.index("--origin") + 1]
            assert argv[argv.index("--env") + 1] == fixture.production
            explained.add((origin, status))
            assert ("ALLOWED" if status == 0 else "REFUSED") in result.stdout, result.stdout
    assert explained == {(fixture.allowed_origin, 0), (fixture.refused_origin, 1)}, explained
    if fixture.cli == "variable":
        assert all("CORSGUARD_SETTINGS" in variables for variables, _, _ in adoption.commands)

    # What browsers see from the production profile.
    seen = browser_checks(fixture, project)
    status, body = seen["refused_write"]
    assert status == 403, seen
    assert "Cross-origin POST refused" in str(body), body
    assert seen["allowed_write"] == [200 if name != "factory" else 201, fixture.allowed_origin]
    status, content_type, text, allow_origin, vary = seen["error"]
    assert status == 500 and content_type == "application/json", seen
    assert json.loads(str(text)) == {"detail": "Internal Server Error"}
    assert allow_origin == fixture.allowed_origin and "Origin" in str(vary), seen
    assert seen["error_refused"] == [500, None], seen
    assert seen["ws_refused"] == ["closed", 1008], seen
    assert seen["ws_allowed"] == ["accepted", "hello"], seen

    # A bad origin in the app's own variable stops start-up with one message naming it.
    bad = f"{fixture.allowed_origin}/app"
    result = run(
        fixture, project, python, "-c", fixture.start_code, check=False,
        env={fixture.environment_variable: fixture.production, fixture.origins_variable: bad},
    )  # fmt: skip
    assert result.returncode != 0
    assert result.stderr.count("Invalid configuration; the service cannot start:") == 1
    assert f"{fixture.origins_variable}={bad!r} (set in the environment)" in result.stderr
    assert "has a path" in result.stderr and "ValidationError" not in result.stderr
    traceback = "Traceback" in result.stderr
    # ... and a misspelt one too (pydantic alone would ignore it).
    misspelt = fixture.origins_variable.replace("ALLOW_ORIGINS", "ALLOWED_ORIGINS")
    result = run(
        fixture, project, python, "-c", fixture.start_code, check=False,
        env={misspelt: fixture.allowed_origin},
    )  # fmt: skip
    assert result.returncode != 0 and f"did you mean {fixture.origins_variable}?" in result.stderr
    # Nothing of the old CORS is left.
    assert doctor_findings(fixture, project) == []

    timings["adopt and check"] = time.perf_counter() - mark
    REPORT[name] = {
        "files written": len(written),
        "code statements added or changed by hand": adoption.code_statements_added(),
        "code lines added or changed by hand": adoption.code_lines_added(),
        "code lines removed": adoption.code_lines_removed(),
        "edited": adoption.edited,
        "files created from the page": adoption.created,
        "own tests before": before,
        "own tests after": own_after,
        "policy cases": policy,
        "start-up failure has a traceback": traceback,
        "seconds": {key: round(value, 1) for key, value in timings.items()},
    }
    print(f"\nadopt {name}: {json.dumps(REPORT[name])}", file=sys.stderr)
    # What adopting takes today, in statements of Python: the settings base class and its
    # import, model_config, Settings.load() (for the one message and the misspelt-variable
    # check), add_cors and its import, and `from pathlib import Path` where the module had
    # none (cors_profiles relative to the current directory otherwise). The target
    # is five; this pins the count so that a change of the engine's API shows here. The
    # factory has a sixth: its import of Response goes with its hand-written OPTIONS route.
    assert adoption.code_statements_added() == EXPECTED_STATEMENTS[name], REPORT[name]


def test_environment_is_clean_of_fixture_variables() -> None:
    fixture = FIXTURES["classic"]
    environment = clean_environment(fixture, {"X": "1"})
    assert "ENVIRONMENT" not in environment and environment["X"] == "1"
    assert not any(key.startswith("CORS_") for key in environment)
    assert os.environ.get("UV_INDEX", "").startswith("corsguard=file://")
    assert environment["UV_INDEX"] == os.environ["UV_INDEX"]


# --- corsguard doctor and corsguard init (issue 24) -----------------------------------------

TABLE_ROW = re.compile(r"^\| `(?P<name>[\w-]+)` \|(?P<cells>.*)\|$", re.MULTILINE)


def doctor_findings(fixture: Fixture, project: Path) -> list[dict[str, str]]:
    """``corsguard doctor --json`` on the app as its server imports it."""
    result = run(
        fixture, project, bin_path(project, "corsguard"), "doctor", fixture.doctor_app, "--json",
        check=False,
    )  # fmt: skip
    report = json.loads(result.stdout or "null")
    assert report is not None, result.stderr
    findings: list[dict[str, str]] = report["findings"]
    assert result.returncode == (1 if findings else 0), result.stderr
    return findings


def files_of(project: Path) -> dict[str, bytes]:
    """The project's files, without its virtual environment and caches."""
    return {
        path.relative_to(project).as_posix(): path.read_bytes()
        for path in project.rglob("*")
        if path.is_file()
        and not {".venv", ".git", "__pycache__", ".pytest_cache"} & set(path.parts)
    }


def patch_lines(patch: str) -> tuple[int, int, int]:
    """(files changed, non-blank lines added, non-blank lines removed) of a patch."""
    lines = patch.splitlines()
    files = sum(line.startswith("--- a/") for line in lines)
    added = sum(line.startswith("+") and not line.startswith("+++") and bool(line[1:].strip())
                for line in lines)  # fmt: skip
    removed = sum(line.startswith("-") and not line.startswith("---") and bool(line[1:].strip())
                  for line in lines)  # fmt: skip
    return files, added, removed


def page_measurements() -> dict[str, list[str]]:
    """The cells of the page's table of init's measurements, by fixture."""
    section = PAGE.read_text(encoding="utf-8").split("## What `init` takes, measured", 1)[-1]
    return {
        match.group("name"): [cell.strip() for cell in match.group("cells").split("|")]
        for match in TABLE_ROW.finditer(section)
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_init_and_doctor_adopt_an_existing_app(name: str, tmp_path: Path) -> None:
    fixture = FIXTURES[name]
    project = tmp_path / name
    start = time.perf_counter()
    fixture.write(project)
    run(fixture, project, "uv", "venv", "--quiet", ".venv")
    install(fixture, project, *fixture.install, "corsguard")
    run(fixture, project, "git", "init", "--quiet")  # as an owner's project is
    before = pytest_counts(fixture, project)

    # Before: doctor names every leftover of the old CORS that this app has.
    found = doctor_findings(fixture, project)
    assert {finding["id"] for finding in found} == fixture.leftovers, found
    described = " ".join(finding["what"] for finding in found)
    if "origin-with-path" in fixture.leftovers:
        assert all(f"'{origin}/'" in described for origin in fixture.offered), described
    if "old-cors-variable" in fixture.leftovers:
        assert "BACKEND_CORS_ORIGINS is set in .env" in described, described

    # init, answered by a script: the app's own origins offered, no file of the app changed.
    files = files_of(project)
    command = [bin_path(project, "corsguard"), "init", *shlex.split(fixture.init_options), "--yes"]
    result = run(fixture, project, *command, check=False)
    assert result.returncode == 0, result.stderr
    shown = " ".join(result.stderr.split())
    for origin in fixture.offered:
        assert f"{origin} from " in shown, shown
    if "wildcard-with-credentials" in fixture.leftovers:
        assert "* from app/main.py" in shown, shown
        assert "refused: browsers refuse '*' with allow_credentials=True" in shown, shown
    after_init = files_of(project)
    assert {path: after_init[path] for path in files} == files, "init changed a file"
    written = sorted(set(after_init) - set(files))
    profiles_file = next(path for path in written if path.endswith(".toml"))
    profiles = tomllib.loads(after_init[profiles_file].decode())["environments"]
    if fixture.offered:  # the first environment takes the app's own origins
        first = next(iter(profiles.values()))
        assert first["cors_allow_origins"] == list(fixture.offered), profiles
    assert set(profiles) == set(fixture.profiles), profiles

    # The owner applies the printed changes; the dependency, where a file declares it.
    patch = tmp_path / "cors.patch"
    patch.write_text(result.stdout, encoding="utf-8")
    run(fixture, project, "git", "apply", str(patch))
    if (project / "requirements.txt").is_file():
        assert "corsguard" in (project / "requirements.txt").read_text(encoding="utf-8")
        install(fixture, project, "-r", "requirements.txt")

    # After: the app's own tests, the policy test init wrote, doctor clean.
    policy_test = next(path for path in written if path.endswith(".py"))
    own_after = pytest_counts(fixture, project, "--ignore", policy_test)
    assert own_after == before
    policy = pytest_counts(fixture, project, policy_test)
    assert policy >= 5 * len(fixture.profiles), policy
    left = doctor_findings(fixture, project)
    assert left == [], left

    files_changed, added, removed = patch_lines(result.stdout)
    measured = {
        "files written": len(written),
        "files the patch changes": files_changed,
        "lines added": added,
        "lines removed": removed,
        "doctor findings": f"{len(found)} → {len(left)}",
        "own tests": f"{before} → {own_after}",
        "policy cases": policy,
    }
    print(
        f"MEASURED {name}: "
        + ", ".join(f"{key} {value}" for key, value in measured.items())
        + f" ({time.perf_counter() - start:.1f} s)"
    )
    assert page_measurements().get(name) == [str(value) for value in measured.values()], (
        f"docs/existing-app.md's table of init's measurements says otherwise for {name}"
    )


# --- init in a terminal: the questions at real prompts, the app's origins as defaults -----

COLUMNS, ROWS = 80, 24
CORSGUARD = str(Path(sys.executable).with_name("corsguard"))


class Terminal:
    """A command in a pseudo-terminal of 80 columns, and the screen a person sees."""

    def __init__(self, command: str, arguments: list[str], cwd: Path, env: dict[str, str]):
        self.child = pexpect.spawn(
            command, arguments, cwd=str(cwd), env=env, encoding="utf-8", timeout=30,
            dimensions=(ROWS, COLUMNS),
        )  # fmt: skip
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self.stream = pyte.Stream(self.screen)
        self.transcript = ""

    def read(self, timeout: float = 0.2) -> None:
        text = self.child.read_nonblocking(65536, timeout=timeout)
        self.transcript += text
        self.stream.feed(text)

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display]

    def wait_for(self, what: str, timeout: float = 20) -> str:
        """Read until the screen shows ``what`` (words may wrap); return the screen."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shown = " ".join(" ".join(self.lines()).split())
            if what in shown:
                return shown
            try:
                self.read()
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF:
                break
        raise AssertionError(f"not on the screen: {what!r}\n" + "\n".join(self.lines()))


def first_line(text: str) -> str:
    return text.splitlines()[0]


@pytest.mark.slow  # a whole conversation in a terminal, as test_interactive's copy is
def test_init_in_an_80_column_terminal(tmp_path: Path) -> None:
    fixture = FIXTURES["fullstack"]
    project = tmp_path / fixture.name
    fixture.write(project)
    # (what the screen shows, what the person types, the refusal the answer gets)
    conversation: list[tuple[str, str, str | None]] = [
        (first_line(HELP["environment_variable"]), "APP_ENV", None),
        ("Each gets its own CORS profile, picked at run time by APP_ENV=<name>.",
         "local, staging, prod", None),
        ("the app today: allow_credentials=True (app/main.py, line 17) [yes] >", "", None),
        ("Local: which origins may call the API? Comma-separated", "", None),
        (first_line(HELP["staging"]), "https://dashboard.staging.example.com/app",
         "refused: 'https://dashboard.staging.example.com/app' has a path, query or fragment"),
        ("use 'https://dashboard.staging.example.com'",
         "https://dashboard.staging.example.com, https://*.preview.example.com", None),
        ("Prod: which origins may call the API?", "*",
         "refused: prod contains '*' while credentials is true"),
        ("list the origins, or turn credentials off", "https://dashboard.example.com/", None),
        (first_line(HELP["cors_allow_methods"]), "GET, POST, PUT, DELETE", None),
        (first_line(HELP["request_headers"]), "Authorization, Content-Type", None),
        (first_line(HELP["response_headers"]), "", None),
        (first_line(HELP["max_age"]), "ten", "refused: 'ten': write a number of seconds"),
        ("[600] >", "", None),
        (first_line(HELP["public_paths"]), "", None),
    ]  # fmt: skip
    terminal = Terminal(CORSGUARD, ["init"], project, clean_environment(fixture))
    try:
        for shown, typed, refusal in conversation:
            screen = terminal.wait_for(shown)
            if shown.startswith("Local:"):
                # The app's origins, from .env, without the '/' AnyHttpUrl adds: the default.
                assert f"[{', '.join(fixture.offered)}] >" in screen, screen
            terminal.child.sendline(typed)
            if refusal is not None:
                terminal.wait_for(refusal)
        terminal.child.expect(pexpect.EOF)
        terminal.transcript += terminal.child.before or ""
    finally:
        terminal.child.close()
    assert terminal.child.exitstatus == 0, terminal.transcript[-3000:]
    # Each help text of the questions asked was on a line of its own, whole at 80 columns.
    lines = [line.strip() for line in terminal.transcript.replace("\r", "").splitlines()]
    for key in ("cors_allow_credentials", "staging", "request_headers", "max_age"):
        for line in HELP[key].splitlines():
            assert any(shown.endswith(line.strip()) for shown in lines), line
    # What init writes (not what the person types after a prompt's "> ") fits in 80 columns.
    prose = terminal.transcript.replace("\r", "").split("\n--- a/", 1)[0].splitlines()
    widest = max((line.split(" > ", 1)[0] for line in prose), key=len)
    assert len(widest) <= COLUMNS, widest

    profiles = tomllib.loads((project / "app/core/cors.toml").read_text())["environments"]
    assert profiles["local"]["cors_allow_origins"] == list(fixture.offered)
    assert profiles["staging"]["cors_allow_origins"] == [
        "https://dashboard.staging.example.com",
        "https://*.preview.example.com",
    ]
    assert profiles["prod"]["cors_allow_origins"] == ["https://dashboard.example.com"]
    assert profiles["prod"]["cors_allow_credentials"] is True
    assert profiles["prod"]["cors_allow_methods"] == ["GET", "POST", "PUT", "DELETE"]
    assert profiles["prod"]["cors_max_age"] == 600
    assert "+add_cors(app, settings)" in terminal.transcript


def test_init_names_the_floors_for_an_old_project(tmp_path: Path) -> None:
    fixture = FIXTURES["classic"]
    project = tmp_path / "old"
    fixture.write(project)
    (project / "requirements.txt").write_text("fastapi==0.99.1\npydantic==1.10.13\n")
    config = project / "app" / "config.py"
    config.write_text(
        config.read_text().replace("from pydantic_settings import", "from pydantic import")
    )
    result = run(fixture, project, CORSGUARD, "init", "--yes", check=False)
    assert (result.returncode, result.stdout) == (2, ""), result.stderr
    assert result.stderr.count("corsguard init:") == 1 and "Traceback" not in result.stderr
    assert "fastapi==0.99.1; corsguard needs fastapi>=0.128.3" in result.stderr
    assert "pydantic==1.10.13; corsguard needs pydantic>=2.7" in result.stderr
    assert "app/config.py imports BaseSettings from pydantic, which is pydantic v1" in result.stderr
    assert not (project / "app" / "cors.toml").exists()


def test_init_asks_the_templates_questions_in_its_words() -> None:
    questions = yaml.safe_load((ROOT / "copier.yml").read_text(encoding="utf-8"))
    shared = [
        "cors_allow_credentials", "development", "test", "staging", "production",
        "request_headers", "response_headers", "max_age", "public_paths", "cors_public_origins",
    ]  # fmt: skip
    for key in shared:
        assert HELP[key] == questions[key]["help"], key
    # Copier's multiselect is a comma-separated answer here: one line more says so.
    assert HELP["cors_allow_methods"].startswith(questions["cors_allow_methods"]["help"] + "\n")
    for key, default in DEFAULTS.items():
        template = questions[key]["default"]
        if isinstance(template, bool):
            template = "yes" if template else "no"
        elif isinstance(template, list):
            template = ", ".join(template)
        assert default == str(template), key


def test_every_profiles_file_on_the_page_loads() -> None:
    blocks = re.findall(r"^```toml\n(.*?)^```$", PAGE.read_text(encoding="utf-8"), re.M | re.S)
    profiles = [block for block in blocks if "[environments." in block]
    assert len(profiles) >= 6, len(profiles)
    for block in profiles:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "cors.toml"
            path.write_text(block, encoding="utf-8")

            class Page(CORSSettings):
                model_config = CORSConfigDict(cors_profiles=path, env_file=None)

            for environment in tomllib.loads(block)["environments"]:
                profile_settings(Page, environment)  # raises ConfigError, naming the value
