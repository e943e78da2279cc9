"""The generated service's automation, run here the way GitHub runs it: the check job of
``.github/workflows/ci.yml`` on each Python of its matrix that this machine has (and its
lowest-direct cell), the pre-commit configuration, and the two jobs of
``.github/workflows/update.yml`` (a template release, a package release).

Each case starts as the owner does: render, ``uv lock`` (what the first ``uv sync``
writes), ``git commit``; then a shallow clone stands for ``actions/checkout``. Every
``run:`` step of the job runs in order, in bash as GitHub starts it, with the job's and the
step's environment; an ``if:`` is evaluated against the matrix cell. Steps that ``uses:``
an action are not run, except that setup-uv's ``python-version`` becomes ``UV_PYTHON``
(uv cannot download a Python here: the interpreters are /root/.pyenv's). A step's timing is
printed (``pytest -rP`` shows it).

The full check job runs on the floor, at the locked and at the lowest-direct versions; on
the other Pythons here, the install and the tests run (lint and format do not depend on
the Python; mypy runs at the floor, where the oldest typing rules apply).
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import time
import tomllib
from collections.abc import Mapping
from glob import glob
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.version import Version

from .conftest import EXAMPLE_ANSWERS_FILE, copy_template, git, owner_environment, render

EXAMPLE = yaml.safe_load(EXAMPLE_ANSWERS_FILE.read_text(encoding="utf-8"))
PACKAGE = EXAMPLE["package_name"]
# The Pythons of the matrix that are on this machine: each one must be (a missing one fails).
LOCAL_PYTHONS = ("3.10", "3.11", "3.12", "3.13")
FLOOR = LOCAL_PYTHONS[0]
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
COMPARISON = re.compile(r"^(matrix\.[\w-]+|github\.event_name)\s*==\s*'([^']*)'$")
BIN = str(Path(shutil.which("uv") or "uv").parent)
pytestmark = pytest.mark.slow


def find_python(minor: str) -> str:
    found = sorted(glob(f"/root/.pyenv/versions/{minor}.*/bin/python"))
    if not found:
        pytest.fail(f"no Python {minor} under /root/.pyenv/versions: the matrix needs it here")
    return found[-1]


# --- The service, as its owner commits it -----------------------------------------------


def commit_service(template: Path, destination: Path) -> Path:
    render(template, destination, EXAMPLE)
    subprocess.run(["uv", "lock", "--quiet"], cwd=destination, env=owner_environment(), check=True)
    git(destination, "init", "-q", "-b", "main")
    git(destination, "add", "-A")
    git(destination, "commit", "-q", "-m", "Generate from the template")
    return destination


@pytest.fixture(scope="module")
def service(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return commit_service(template_repo, tmp_path_factory.mktemp("ci") / "orders-api")


def checkout(repository: Path, destination: Path) -> Path:
    """What actions/checkout leaves: a clone of the pushed commit, one commit deep."""
    subprocess.run(
        ["git", "clone", "--quiet", "--depth", "1", f"file://{repository}", str(destination)],
        check=True,
    )
    return destination


# --- The workflow, read and run as GitHub does -------------------------------------------


def workflow(project: Path, name: str) -> dict[Any, Any]:
    data = yaml.safe_load((project / ".github" / "workflows" / name).read_text())
    assert isinstance(data, dict)
    return data


def cells(job: Mapping[str, Any]) -> list[dict[str, str]]:
    """The matrix's combinations, with GitHub's rule for include: an entry extends the
    combinations whose original values it matches, or is a combination of its own."""
    matrix = job["strategy"]["matrix"]
    keys = [key for key in matrix if key not in ("include", "exclude")]
    originals = [
        dict(zip(keys, values, strict=True))
        for values in itertools.product(*(matrix[key] for key in keys))
    ]
    combinations = [dict(cell) for cell in originals]
    for extra in matrix.get("include", []):
        matching = [
            index
            for index, cell in enumerate(originals)
            if all(cell[key] == value for key, value in extra.items() if key in keys)
        ]
        if matching:
            for index in matching:
                combinations[index].update(extra)
        else:
            combinations.append({key: str(value) for key, value in extra.items()})
    return [{key: str(value) for key, value in cell.items()} for cell in combinations]


def substitute(text: str, context: Mapping[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match[1]
        assert name in context, f"expression ${{{{ {name} }}}} is not known to this runner"
        return context[name]

    return EXPRESSION.sub(value, text)


def condition(expression: str, context: Mapping[str, str]) -> bool:
    match = COMPARISON.match(expression.strip())
    assert match, f"if: {expression!r} is not a form this runner evaluates"
    assert match[1] in context, expression
    return context[match[1]] == match[2]


def shell_of(data: Mapping[Any, Any], job: Mapping[str, Any], step: Mapping[str, Any]) -> list[str]:
    shell = (
        step.get("shell")
        or job.get("defaults", {}).get("run", {}).get("shell")
        or data.get("defaults", {}).get("run", {}).get("shell")
    )
    if shell == "bash":
        return ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c"]
    assert shell is None, f"shell {shell!r}: not one this runner knows"
    return ["bash", "-e", "-c"]  # GitHub's default on Linux


def run_job(
    data: Mapping[Any, Any],
    job_name: str,
    cwd: Path,
    runner_temp: Path,
    cell: Mapping[str, str] | None = None,
    *,
    names: set[str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    expect_failure: str | None = None,
) -> tuple[list[tuple[str, float]], dict[str, str], str]:
    """Run the job's ``run:`` steps in order; return (step, seconds) pairs, the steps'
    outputs (GITHUB_OUTPUT) by step id and name, and the joined output. With ``names``,
    only the steps of those names run. With ``expect_failure``, that step must fail and
    the job stops there, as it does on GitHub."""
    job = data["jobs"][job_name]
    context = {f"matrix.{key}": value for key, value in (cell or {}).items()}
    context["github.event_name"] = "push"
    runner_temp.mkdir(parents=True, exist_ok=True)
    environment = owner_environment()
    for key in list(environment):
        if key.startswith("UV_") and key not in ("UV_INDEX", "UV_CACHE_DIR"):
            del environment[key]
    environment.update(
        CI="true",
        GITHUB_ACTIONS="true",
        RUNNER_TEMP=str(runner_temp),
        PATH=f"{BIN}:{environment['PATH']}",
    )
    environment.update(extra_env or {})
    environment.update(
        {key: substitute(str(value), context) for key, value in job.get("env", {}).items()}
    )
    timings: list[tuple[str, float]] = []
    outputs: dict[str, str] = {}
    log: list[str] = []
    for number, step in enumerate(job["steps"]):
        name = step.get("name") or step.get("uses") or f"step {number}"
        if "uses" in step:
            if step["uses"].startswith("astral-sh/setup-uv@"):
                version = step.get("with", {}).get("python-version")
                if version is not None:
                    environment["UV_PYTHON"] = find_python(substitute(str(version), context))
            continue
        if "if" in step and not condition(step["if"], context):
            continue
        if names is not None and name not in names:
            continue
        output_file = runner_temp / f"output-{number}"
        output_file.write_text("")
        step_env = {
            **environment,
            **{key: substitute(str(value), context) for key, value in step.get("env", {}).items()},
            "GITHUB_OUTPUT": str(output_file),
        }
        started = time.monotonic()
        result = subprocess.run(
            [*shell_of(data, job, step), step["run"]],
            cwd=cwd,
            env=step_env,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        seconds = time.monotonic() - started
        timings.append((name, seconds))
        command = step["run"].strip().splitlines()[0]
        print(f"{job_name} {dict(cell or {})} | {name}: {command} | {seconds:.1f} s")
        log.append(result.stdout + result.stderr)
        if expect_failure == name:
            assert result.returncode != 0, f"{name} passed:\n{result.stdout}\n{result.stderr}"
            return timings, outputs, "\n".join(log)
        assert result.returncode == 0, (
            f"{job_name} step {name!r} failed ({result.returncode}):\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
        for line in output_file.read_text().splitlines():
            key, _, value = line.partition("=")
            outputs[f"{step.get('id', name)}.{key}"] = value
            context[f"steps.{step.get('id', name)}.outputs.{key}"] = value
    assert expect_failure is None, f"{expect_failure} did not run"
    return timings, outputs, "\n".join(log)


# --- CI: the check job -------------------------------------------------------------------


def declared_floors(pyproject: Path) -> dict[str, str]:
    """name -> the version after >= of each requirement, dependencies and dev group."""
    data = tomllib.loads(pyproject.read_text())
    floors: dict[str, str] = {}
    for requirement in [*data["project"]["dependencies"], *data["dependency-groups"]["dev"]]:
        match = re.match(r"([A-Za-z0-9_.-]+)(\[[^]]*\])?\s*>=\s*([\w.]+)", requirement)
        assert match, f"{requirement}: no floor (>=) for lowest-direct to test"
        floors[match[1].lower()] = match[3]
    return floors


def check_cell(service: Path, python: str, resolution: str) -> dict[str, str]:
    [cell] = [
        cell
        for cell in cells(workflow(service, "ci.yml")["jobs"]["check"])
        if cell == {"python": python, "resolution": resolution}
    ]
    return cell


@pytest.mark.parametrize(
    ("python", "resolution"),
    [(FLOOR, "highest"), (FLOOR, "lowest-direct")]
    + [(minor, "highest") for minor in LOCAL_PYTHONS[1:]],
)
def test_the_check_job_passes_here(
    service: Path, tmp_path: Path, python: str, resolution: str
) -> None:
    """Each step of a cell of the check job, in order, in a fresh checkout."""
    project = checkout(service, tmp_path / "checkout")
    cell = check_cell(service, python, resolution)
    data = workflow(project, "ci.yml")
    steps = [step.get("name") for step in data["jobs"]["check"]["steps"] if "run" in step]
    names = (
        None
        if python == FLOOR
        else {name for name in steps if name.startswith("Install")} | {"Tests"}
    )
    timings, _, log = run_job(data, "check", project, tmp_path / "runner", cell, names=names)
    ran = [name for name, _ in timings]
    assert ran[0].startswith("Install") and ran[-1] == "Tests", ran
    if python == FLOOR:
        assert ran[1:] == ["Lint", "Format", "Types", "Tests"], ran
    versions = subprocess.run(
        ["uv", "pip", "list", "--python", str(project / ".venv"), "--format", "freeze"],
        capture_output=True,
        text=True,
        check=True,
        env=owner_environment(),
    ).stdout
    installed = dict(line.split("==", 1) for line in versions.splitlines() if "==" in line)
    executable = os.path.realpath(project / ".venv" / "bin" / "python")
    assert f"/{python}." in executable or executable.endswith(f"python{python}"), executable
    locked: dict[str, set[str]] = {}
    for package in tomllib.loads((service / "uv.lock").read_text())["package"]:
        locked.setdefault(package["name"], set()).add(package.get("version", ""))
    if resolution == "highest":
        # --locked installs uv.lock as committed (one of its versions where it forks by
        # Python), and leaves it as it was.
        for name in ("fastapi", "corsguard", "mypy", "pytest", "ruff"):
            assert installed[name] in locked[name], (name, installed[name], locked[name])
        status = git(project, "status", "--porcelain", "uv.lock")
        assert not status, status
    else:
        # Each direct dependency at the floor pyproject.toml declares for it (fastapi
        # 0.128.3, corsguard 0.4.0, mypy, pytest, ruff): the floors are what CI tests.
        floors = declared_floors(project / "pyproject.toml")
        assert {"fastapi", "corsguard", "mypy", "pytest", "ruff"} <= set(floors), floors
        for name, floor in floors.items():
            assert Version(installed[name]) == Version(floor), (name, installed[name], floor)
    assert re.search(r"\b\d+ passed\b", log), log[-2000:]


def test_a_lock_that_drifted_from_pyproject_fails_the_install(
    service: Path, tmp_path: Path
) -> None:
    """--locked: a pyproject.toml changed without `uv lock` stops CI at its first step."""
    project = checkout(service, tmp_path / "checkout")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"pytest>=8"', '"pytest>=8.1"'))
    cell = check_cell(service, FLOOR, "highest")
    _, _, log = run_job(
        workflow(project, "ci.yml"),
        "check",
        project,
        tmp_path / "runner",
        cell,
        expect_failure="Install",
    )
    assert "uv lock" in log, log


# --- pre-commit --------------------------------------------------------------------------


def test_pre_commit_runs_the_checks_of_ci(service: Path, tmp_path: Path) -> None:
    """All hooks pass on the generated service; a badly formatted module, a lint error and
    a type error each stop the commit."""
    project = checkout(service, tmp_path / "checkout")
    config = yaml.safe_load((project / ".pre-commit-config.yaml").read_text())
    [local] = config["repos"]
    assert local["repo"] == "local"
    entries = {hook["id"]: hook["entry"] for hook in local["hooks"]}
    assert entries == {
        "ruff-check": "uv run --locked ruff check --fix --force-exclude",
        "ruff-format": "uv run --locked ruff format --force-exclude",
        "mypy": "uv run --locked mypy",
    }
    environment = owner_environment()
    environment["PRE_COMMIT_HOME"] = str(tmp_path / "pre-commit-home")

    def pre_commit() -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        result = subprocess.run(
            [
                "uv",
                "run",
                "--with",
                "pre-commit",
                "pre-commit",
                "run",
                "--all-files",
                "--color",
                "never",
            ],
            cwd=project,
            env=environment,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        print(
            f"pre-commit run --all-files: {result.returncode} in {time.monotonic() - started:.1f} s"
        )
        return result

    passed = pre_commit()
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert not subprocess.run(
        ["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True
    ).stdout

    module = project / "src" / PACKAGE / "extra.py"
    module.write_text("def  double( x:int )->int :\n    return x*2\n")
    git(project, "add", str(module))
    formatted = pre_commit()
    assert formatted.returncode == 1, formatted.stdout
    assert re.search(r"ruff format\.+Failed", formatted.stdout), formatted.stdout
    assert module.read_text() == "def double(x: int) -> int:\n    return x * 2\n"

    module.write_text("import os\n\n\ndef double(x: int) -> str:\n    return x * 2\n")
    git(project, "add", str(module))
    failed = pre_commit()
    assert failed.returncode == 1, failed.stdout
    assert re.search(r"ruff check --fix\.+Failed", failed.stdout), failed.stdout
    assert re.search(r"mypy\.+Failed", failed.stdout), failed.stdout
    assert "Incompatible return value type" in failed.stdout, failed.stdout


# --- The update workflow -----------------------------------------------------------------


def runner_git(tmp_path: Path) -> dict[str, str]:
    """A runner's git: no user identity of its own."""
    config = tmp_path / "runner-gitconfig"
    config.write_text("")
    return {"GIT_CONFIG_GLOBAL": str(config), "GIT_CONFIG_NOSYSTEM": "1"}


def test_the_update_workflow_brings_a_template_release(tmp_path: Path) -> None:
    """Up to date: nothing. A new tag: `copier update` on the branch update/template-<v>,
    uv.lock in step, a pull request body that names the conflicts. Once that branch exists,
    the run leaves it alone."""
    template = copy_template(tmp_path / "template", tag="v1")
    service = commit_service(template, tmp_path / "orders-api")
    data = workflow(service, "update.yml")
    git_env = runner_git(tmp_path)

    # The template has no newer release.
    project = checkout(service, tmp_path / "checkout-1")
    _, outputs, log = run_job(data, "template", project, tmp_path / "runner-1", extra_env=git_env)
    assert outputs == {}, outputs
    assert "newest version, 1." in log, log

    # v2: a new line in a generated file; and the owner changed the same line of another.
    gitignore = template / "template" / ".gitignore.jinja"
    gitignore.write_text(gitignore.read_text() + ".coverage\n")
    dockerignore = template / "template" / ".dockerignore"
    first = dockerignore.read_text().splitlines()[0]
    dockerignore.write_text(dockerignore.read_text().replace(first, first + " # from v2", 1))
    git(template, "commit", "-q", "-am", "v2")
    git(template, "tag", "v2")
    owned = service / ".dockerignore"
    owned.write_text(owned.read_text().replace(first, first + " # the owner's", 1))
    git(service, "commit", "-q", "-am", "The owner's edit")

    project = checkout(service, tmp_path / "checkout-2")
    timings, outputs, log = run_job(
        data, "template", project, tmp_path / "runner-2", extra_env=git_env
    )
    assert outputs == {"update.branch": "update/template-2", "update.version": "2"}, outputs
    assert "_commit: v2" in (project / ".copier-answers.yml").read_text()
    assert ".coverage" in (project / ".gitignore").read_text()
    body = (tmp_path / "runner-2" / "template.md").read_text()
    assert "template 1 to 2" in body, body
    assert "- `.dockerignore`" in body, body
    assert "<<<<<<<" in (project / ".dockerignore").read_text()
    assert not git(project, "diff", "--name-only", "--diff-filter=U"), "an unmerged index"
    lock = subprocess.run(
        ["uv", "lock", "--locked"],
        cwd=project,
        env=owner_environment(),
        capture_output=True,
        text=True,
    )
    assert lock.returncode == 0, lock.stderr  # what CI's `uv sync --locked` needs
    print("template update:", timings)

    # The branch for 2 exists (its pull request is open): the next run leaves it alone.
    git(service, "branch", "update/template-2")
    project = checkout(service, tmp_path / "checkout-3")
    _, outputs, log = run_job(data, "template", project, tmp_path / "runner-3", extra_env=git_env)
    assert outputs == {}, outputs
    assert "update/template-2 exists" in log, log
    assert not subprocess.run(
        ["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True
    ).stdout


def test_the_update_workflow_brings_package_releases(service: Path, tmp_path: Path) -> None:
    """uv.lock with an older ruff (as if a release came out since the lock): the packages
    job upgrades it and writes the pull request's body; on a newest lock it does nothing."""
    old = tmp_path / "old"
    shutil.copytree(service, old, ignore=shutil.ignore_patterns(".venv"))
    environment = owner_environment()
    subprocess.run(
        ["uv", "lock", "--quiet", "--upgrade-package", "ruff==0.8.0"],
        cwd=old,
        env=environment,
        check=True,
    )
    git(old, "commit", "-q", "-am", "uv.lock with ruff 0.8.0")
    data = workflow(old, "update.yml")

    project = checkout(old, tmp_path / "checkout-1")
    timings, outputs, _ = run_job(data, "packages", project, tmp_path / "runner-1")
    assert outputs == {"upgrade.changed": "true"}, outputs
    body = (tmp_path / "runner-1" / "packages.md").read_text()
    assert re.search(r"^Updated ruff v0\.8\.0 -> v", body, re.MULTILINE), body
    assert (project / "uv.lock").read_text() == (service / "uv.lock").read_text()
    print("package upgrade:", timings)

    project = checkout(service, tmp_path / "checkout-2")
    _, outputs, log = run_job(data, "packages", project, tmp_path / "runner-2")
    assert outputs == {}, outputs
    assert "Every package is at the newest version" in log, log
