"""Journey 5: move a generated service to a newer template version without losing work.

Every test builds its own template repository (the template as it is on disk, tagged
v1), generates and commits a service at v1, works on it as its owner would, releases v2
of the template and runs ``copier update``. The CORS engine is no template file but the
service's dependency, corsguard: one test publishes a fix of it (0.4.1, beside the
working tree's 0.4.0) to a package index on disk and moves a grown service to it with
``uv lock --upgrade-package corsguard``. Everything happens in temporary directories.
The slow tests run the service's own tool chain; the others check files and git state
in-process.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import copier
import pytest
import yaml

from . import owner
from .conftest import ROOT, check_project, copy_template, git, run

ANSWERS: dict[str, Any] = {"project_name": "Orders API", "package_name": "orders_api"}
PACKAGE = Path("src", "orders_api")
NEW_ORIGIN = "https://new.example.com"

# --- The template's releases -------------------------------------------------------------

V2_HEALTH_DOCSTRING = '"""Health endpoint (template v2): GET /health answers 200 while serving."""'
V2_MAIN_DOCSTRING = '"""The app (template v2): ``fastapi run`` serves ``app``.'
V2_README_LINE = "Kept up to date with `copier update` (template v2)."
V2_ENV_EXAMPLE_LINE = "# Template v2: ENVIRONMENT=production in every deployed container."
V2_NEW_MODULE = '"""Which template release generated this service."""\n\nTEMPLATE_RELEASE = "v2"\n'


def commit(repository: Path, message: str) -> None:
    git(repository, "add", "-A")
    git(repository, "commit", "-q", "-m", message)


def replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{path} should contain {old!r} once; adapt this test"
    path.write_text(text.replace(old, new), encoding="utf-8")


def replace_docstring_line(path: Path, docstring: str) -> None:
    """Replace the first line of the module docstring that opens a Python file."""
    first, rest = path.read_text(encoding="utf-8").split("\n", 1)
    assert first.startswith('"""'), f"{path}: {first!r}"
    path.write_text(f"{docstring}\n{rest}", encoding="utf-8")


def release(template: Path, tag: str, change: Callable[[Path], None]) -> None:
    """Change the template repository, commit and tag the result."""
    change(template)
    commit(template, f"Release {tag}")
    git(template, "tag", tag)


def next_release(template: Path) -> None:
    """An ordinary new version: edits to generated files, and one new file."""
    source = template / "template" / "src" / "{{package_name}}"
    replace_docstring_line(source / "routers" / "health.py", V2_HEALTH_DOCSTRING)
    replace_docstring_line(source / "main.py", V2_MAIN_DOCSTRING)
    (source / "about.py").write_text(V2_NEW_MODULE, encoding="utf-8")
    readme = template / "template" / "README.md.jinja"
    title = "# {{ project_name }}\n"
    replace_once(readme, title, f"{title}\n{V2_README_LINE}\n")
    env_example = template / "template" / ".env.example.jinja"
    env_example.write_text(
        env_example.read_text(encoding="utf-8") + V2_ENV_EXAMPLE_LINE + "\n", encoding="utf-8"
    )


def rename_question(
    template: Path, old: str, new: str, default: object, prompt_also_reads_old: bool = False
) -> None:
    """Rename a question in copier.yml and everywhere the template's Jinja reads it; with
    prompt_also_reads_old, the question asked under a short name that feeds it is asked
    only when neither name is recorded (docs/updating.md, "Renaming a question")."""
    word = re.compile(rf"\b{old}\b")

    def renamed(value: object) -> object:
        if isinstance(value, str):
            return word.sub(new, value)
        if isinstance(value, dict):
            return {key: renamed(item) for key, item in value.items()}
        if isinstance(value, list):
            return [renamed(item) for item in value]
        return value

    copier_yml = template / "copier.yml"
    questions = yaml.safe_load(copier_yml.read_text(encoding="utf-8"))
    assert old in questions, f"copier.yml has no question {old!r}; adapt this test"
    questions = {new if key == old else key: renamed(value) for key, value in questions.items()}
    questions[new]["default"] = default
    if prompt_also_reads_old:
        (prompt,) = [
            name for name, spec in questions.items() if f"{new} is not defined" in str(spec)
        ]
        questions[prompt]["when"] = f"{{{{ {new} is not defined and {old} is not defined }}}}"
    copier_yml.write_text(yaml.safe_dump(questions, sort_keys=False, width=1000), encoding="utf-8")
    # Only inside Jinja tags: generated Python reads settings.cors_max_age, not the answer.
    tag = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
    for path in (template / "template").rglob("*.jinja"):
        text = path.read_text(encoding="utf-8")
        path.write_text(tag.sub(lambda match: word.sub(new, match.group()), text), "utf-8")


# --- The owner's side ------------------------------------------------------------------

OWNER_README_SECTION = owner.OWNER_README_SECTION
OWNER_HEALTH_DOCSTRING = '"""Health endpoint, polled every 5 s by the load balancer."""'


def owner_edits(project: Path) -> owner.Edits:
    """What the README's "Grow the service" shows, but the dependency (offline here); no
    hand edit of settings.toml, whose lines these tests change through the answers."""
    return owner.grow(project, "orders_api", dependency=False, settings_toml=False)


def generate(template: Path, project: Path, data: dict[str, Any] | None = None) -> Path:
    """``copier copy`` at v1, then the project's first commit."""
    copier.run_copy(
        str(template),
        str(project),
        data={**ANSWERS, **(data or {})},
        defaults=True,
        vcs_ref="v1",
        quiet=True,
    )
    git(project, "init", "-q", "-b", "main")
    commit(project, "Generate from the template")
    return project


def update(project: Path, vcs_ref: str | copier.VcsRef = "v2", **options: Any) -> None:
    copier.run_update(
        str(project),
        defaults=True,
        overwrite=True,
        conflict="inline",
        vcs_ref=vcs_ref,
        quiet=True,
        **options,
    )


def recorded_answers(project: Path) -> dict[str, Any]:
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert isinstance(answers, dict)
    return answers


def profiles(project: Path) -> dict[str, Any]:
    settings = tomllib.loads((project / PACKAGE / "settings.toml").read_text(encoding="utf-8"))
    return dict(settings["environments"])


def status(project: Path) -> list[str]:
    return git(project, "status", "--porcelain").splitlines()


def tree(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` but git's own, by relative path."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and ".git" not in path.relative_to(root).parts
    }


def conflict_check(project: Path) -> subprocess.CompletedProcess[str]:
    """The generated project's conflict check: its top-level ``conftest.py``, which needs
    nothing but the standard library and exits 1 naming every marker line and ``.rej``
    file (it is what ``uv run pytest`` loads first). The template's interpreter runs it."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "conftest.py"],
        cwd=project,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def template(tmp_path: Path) -> Path:
    return copy_template(tmp_path / "template", "v1")


# --- Tests -------------------------------------------------------------------------------


def test_update_equals_a_fresh_copy_plus_the_owners_edits(template: Path, tmp_path: Path) -> None:
    project = generate(template, tmp_path / "project")
    answers = {k: v for k, v in recorded_answers(project).items() if not k.startswith("_")}
    owner_edits(project)
    commit(project, "Items")
    release(template, "v2", next_release)

    update(project)

    assert not [line for line in status(project) if line.startswith("UU")]
    fresh = tmp_path / "fresh"
    copier.run_copy(
        str(template), str(fresh), data=answers, defaults=True, vcs_ref="v2", quiet=True
    )
    owner_edits(fresh)
    updated, expected = tree(project), tree(fresh)
    assert sorted(updated) == sorted(expected)
    assert [path for path in updated if updated[path] != expected[path]] == []
    assert recorded_answers(project)["_commit"] == "v2"


@pytest.mark.slow
def test_updated_project_keeps_the_owners_work_and_passes_its_checks(
    template: Path, tmp_path: Path
) -> None:
    project = generate(template, tmp_path / "project")
    edits = owner_edits(project)
    commit(project, "Items")
    release(template, "v2", next_release)

    update(project)

    assert not [line for line in status(project) if line.startswith("UU")]
    main = (project / PACKAGE / "main.py").read_text(encoding="utf-8")
    assert main.startswith(V2_MAIN_DOCSTRING)  # the template's change
    assert "from .routers import health, items\n" in main  # the owner's wiring
    assert "    app.include_router(items.router)\n" in main
    assert "    app.add_middleware(RequestIDMiddleware)\n" in main
    assert owner.lost_lines(project, edits) == []
    readme = (project / "README.md").read_text(encoding="utf-8")
    assert V2_README_LINE in readme and readme.endswith(OWNER_README_SECTION)
    assert (project / PACKAGE / "about.py").read_text(encoding="utf-8") == V2_NEW_MODULE
    commit(project, "Update to template v2")

    # Then an answer changes, at the same template version.
    origins = recorded_answers(project)["cors_origins"]
    origins["production"] = [*origins["production"], NEW_ORIGIN]
    update(project, vcs_ref=copier.VcsRef.CURRENT, data={"cors_origins": origins})
    assert NEW_ORIGIN in profiles(project)["production"]["cors_allow_origins"]
    commit(project, "Allow the new frontend")

    check_project(project)
    preflights = run(project, "uv", "run", "--no-sync", "python", "-c", PREFLIGHT_SCRIPT)
    assert preflights.split() == [
        f"{NEW_ORIGIN}:200:{NEW_ORIGIN}",
        "https://unlisted.example.com:400:-",
    ]


PREFLIGHT_SCRIPT = f"""
import asyncio

import httpx

from orders_api.main import create_app
from orders_api.settings import Settings


async def preflight(origin: str) -> str:
    app = create_app(Settings(_env_file=None, environment="production"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        headers = {{"Origin": origin, "Access-Control-Request-Method": "GET"}}
        response = await client.options("/health", headers=headers)
    allowed = response.headers.get("access-control-allow-origin", "-")
    return f"{{origin}}:{{response.status_code}}:{{allowed}}"


for origin in ("{NEW_ORIGIN}", "https://unlisted.example.com"):
    print(asyncio.run(preflight(origin)))
"""


# --- An engine fix: a corsguard release, not a template release -------------------------

ENGINE = ROOT / "engine"
VERSION = tomllib.loads((ENGINE / "pyproject.toml").read_text("utf-8"))["project"]["version"]
FIXED_VERSION = re.sub(r"\d+$", lambda patch: str(int(patch.group()) + 1), VERSION)
FIX_CHECK = """
import corsguard
from corsguard.errors import loggable

print(corsguard.__version__, len(loggable("a" * 500)))
"""


def publish(engine: Path, index: Path) -> None:
    """Build ``engine`` into ``index`` (PEP 503, on disk) beside what it holds already,
    as a package index keeps every release it has served."""
    files = index / "simple" / "corsguard"
    files.mkdir(parents=True, exist_ok=True)
    run(engine, "uv", "build", "--quiet", "--out-dir", str(files))
    (files / ".gitignore").unlink(missing_ok=True)
    links = "".join(
        f'<a href="{path.name}#sha256={hashlib.sha256(path.read_bytes()).hexdigest()}">'
        f"{path.name}</a>\n"
        for path in sorted(files.iterdir())
        if path.name.endswith((".whl", ".tar.gz"))
    )
    (files / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")
    (index / "simple" / "index.html").write_text(
        '<!DOCTYPE html><html><body><a href="corsguard/">corsguard</a></body></html>\n'
    )


def engine_fix(destination: Path) -> Path:
    """The next patch release of corsguard (0.4.1 above the working tree's 0.4.0): the
    engine with one fix, request-derived values cut after 160 characters in the log
    instead of 200."""
    shutil.copytree(
        ENGINE,
        destination,
        ignore=shutil.ignore_patterns(".venv", "*_cache", ".hypothesis", "__pycache__", "dist"),
    )
    version, fixed = f'version = "{VERSION}"', f'version = "{FIXED_VERSION}"'
    replace_once(destination / "pyproject.toml", f"\n{version}\n", f"\n{fixed}\n")
    source = destination / "src" / "corsguard"
    init = source / "__init__.py"
    # __version__: written out, or read from the installed distribution's metadata.
    if f'__version__ = "{VERSION}"' in init.read_text(encoding="utf-8"):
        replace_once(init, f'__version__ = "{VERSION}"', f'__version__ = "{FIXED_VERSION}"')
    replace_once(source / "errors.py", "LOGGED_LENGTH = 200", "LOGGED_LENGTH = 160")
    return destination


def locked_corsguard(project: Path) -> str:
    lock = tomllib.loads((project / "uv.lock").read_text(encoding="utf-8"))
    (version,) = [entry["version"] for entry in lock["package"] if entry["name"] == "corsguard"]
    return str(version)


@pytest.mark.slow
def test_an_engine_fix_reaches_a_grown_service_as_a_dependency_update(
    template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine is a dependency: its fixes arrive through the package index and
    ``uv lock --upgrade-package corsguard``, with no ``copier update`` and no file of the
    service changed but ``uv.lock``."""
    index = tmp_path / "index"
    publish(ENGINE, index)  # 0.4.0, the working tree
    monkeypatch.setenv("UV_INDEX", f"corsguard=file://{index / 'simple'}")
    project = generate(template, tmp_path / "project")
    edits = owner.grow(project, "orders_api")  # everything the README shows, uv add included
    run(project, "uv", "lock")
    commit(project, "A year of the owner's work")
    assert locked_corsguard(project) == VERSION

    publish(engine_fix(tmp_path / "engine-0.4.1"), index)
    run(project, "uv", "lock", "--upgrade-package", "corsguard")
    run(project, "uv", "sync")

    assert locked_corsguard(project) == FIXED_VERSION
    assert status(project) == [" M uv.lock"]
    before, after = (
        {entry["name"]: entry for entry in tomllib.loads(text)["package"]}
        for text in (git(project, "show", "HEAD:uv.lock"), (project / "uv.lock").read_text())
    )
    assert [name for name in after if after[name] != before.get(name)] == ["corsguard"]
    assert sorted(before) == sorted(after)
    fixed = run(project, "uv", "run", "--no-sync", "python", "-c", FIX_CHECK)
    assert fixed.split() == [FIXED_VERSION, str(len(repr("a" * 160)) + 3)]
    assert owner.lost_lines(project, edits) == []
    commit(project, "corsguard 0.4.1")
    check_project(project)


V2_FACTORY_IMPORT = "from .routers import health  # liveness and readiness"
V2_FACTORY_APP = '    app = FastAPI(title=Settings.profiles().title, docs_url="/docs")'


def factory_change(template: Path) -> None:
    """A release that changes the app factory, the owner's room: one line the owner
    also changed, one line the owner did not touch, and the docstring."""
    main = template / "template" / "src" / "{{package_name}}" / "main.py"
    replace_docstring_line(main, V2_MAIN_DOCSTRING)
    replace_once(main, "from .routers import health\n", V2_FACTORY_IMPORT + "\n")
    app = "    app = FastAPI(title=Settings.profiles().title)\n"
    replace_once(main, app, V2_FACTORY_APP + "\n")


def test_a_change_to_the_app_factory_conflicts_only_where_both_changed(
    template: Path, tmp_path: Path
) -> None:
    project = generate(template, tmp_path / "project")
    edits = owner_edits(project)
    commit(project, "A year of the owner's work")
    release(template, "v2", factory_change)

    update(project)

    main_relative = f"{PACKAGE.as_posix()}/main.py"
    assert [line for line in status(project) if line.startswith("UU")] == [f"UU {main_relative}"]
    main = (project / PACKAGE / "main.py").read_text(encoding="utf-8")
    [(ours, theirs)] = owner.CONFLICT.findall(main)  # one hunk: the import both changed
    assert "from .routers import health, items\n" in ours
    assert theirs == V2_FACTORY_IMPORT + "\n"
    outside = owner.CONFLICT.sub("", main)
    assert outside.startswith(V2_MAIN_DOCSTRING) and V2_FACTORY_APP + "\n" in outside
    assert owner.lost_lines(project, edits) == []


def test_conflicting_edit_is_marked_inline_and_fails_the_generated_tests(
    template: Path, tmp_path: Path
) -> None:
    project = generate(template, tmp_path / "project")
    health = project / PACKAGE / "routers" / "health.py"
    clean = conflict_check(project)
    assert clean.returncode == 0, clean.stderr  # a clean project passes
    replace_docstring_line(health, OWNER_HEALTH_DOCSTRING)
    commit(project, "Describe the health endpoint")
    release(template, "v2", next_release)

    update(project)

    relative = (PACKAGE / "routers" / "health.py").as_posix()
    assert f"UU {relative}" in status(project)
    assert not list(project.rglob("*.rej"))
    lines = health.read_text(encoding="utf-8").splitlines()
    assert lines[:5] == [
        "<<<<<<< before updating",
        OWNER_HEALTH_DOCSTRING,  # the owner's line is kept ...
        "=======",
        V2_HEALTH_DOCSTRING,  # ... next to the template's
        ">>>>>>> after updating",
    ]
    # The rest of the release arrived around the conflict.
    assert (project / PACKAGE / "about.py").exists()

    check = conflict_check(project)
    assert check.returncode == 1, check.stdout + check.stderr
    assert f"{relative}:1: <<<<<<< before updating" in check.stderr
    assert f"{relative}:5: >>>>>>> after updating" in check.stderr

    # Resolved (the owner keeps the template's line): the check passes again.
    health.write_text("\n".join([V2_HEALTH_DOCSTRING, *lines[5:]]) + "\n", encoding="utf-8")
    git(project, "add", relative)
    resolved = conflict_check(project)
    assert resolved.returncode == 0, resolved.stderr


def change_origins_with_data(project: Path, origins: dict[str, list[str]]) -> None:
    update(project, vcs_ref=copier.VcsRef.CURRENT, data={"cors_origins": origins})


def change_origins_with_data_file(project: Path, origins: dict[str, list[str]]) -> None:
    data_file = project.parent / "answers.yml"
    data_file.write_text(yaml.safe_dump({"cors_origins": origins}), encoding="utf-8")
    run(
        project,
        *(sys.executable, "-m", "copier", "update", "--quiet", "--defaults"),
        *("--vcs-ref", ":current:", "--data-file", str(data_file)),
    )


@pytest.mark.parametrize("change", [change_origins_with_data, change_origins_with_data_file])
def test_changing_an_answer_rerenders_settings_at_the_same_version(
    template: Path,
    tmp_path: Path,
    change: Callable[[Path, dict[str, list[str]]], None],
) -> None:
    project = generate(template, tmp_path / "project")
    owner_edits(project)
    commit(project, "Items")
    before = profiles(project)
    release(template, "v2", next_release)  # a newer version exists, but is not taken
    origins = recorded_answers(project)["cors_origins"]
    assert NEW_ORIGIN not in before["production"]["cors_allow_origins"]
    origins["production"] = [*origins["production"], NEW_ORIGIN.upper() + "/"]

    change(project, origins)

    after = profiles(project)
    assert after["production"]["cors_allow_origins"] == [
        *before["production"]["cors_allow_origins"],
        NEW_ORIGIN,  # normalized when rendered
    ]
    assert {name: p for name, p in after.items() if name != "production"} == {
        name: p for name, p in before.items() if name != "production"
    }
    answers = recorded_answers(project)
    assert answers["_commit"] == "v1"
    assert answers["cors_origins"] == origins
    assert not (project / PACKAGE / "about.py").exists()
    assert (project / PACKAGE / "routers" / "items.py").exists()
    assert (project / "README.md").read_text(encoding="utf-8").endswith(OWNER_README_SECTION)


@pytest.mark.parametrize(
    ("default", "expected"),
    [
        pytest.param(
            "{{ cors_max_age | default(max_age | default(600)) }}",
            1200,
            id="new-name-reads-old-answer",
        ),
        pytest.param("{{ max_age | default(600) }}", 600, id="plain-rename-forgets-the-answer"),
    ],
)
def test_renamed_question_keeps_its_answer_when_its_default_reads_the_old_name(
    template: Path, tmp_path: Path, default: object, expected: int
) -> None:
    project = generate(template, tmp_path / "project", {"cors_max_age": 1200})
    release(
        template,
        "v2",
        partial(
            rename_question,
            old="cors_max_age",
            new="preflight_max_age",
            default=default,
            prompt_also_reads_old=expected != 600,
        ),
    )

    update(project)

    assert not [line for line in status(project) if line.startswith("UU")]
    answers = recorded_answers(project)
    assert answers["preflight_max_age"] == expected
    assert "cors_max_age" not in answers
    assert {profile["cors_max_age"] for profile in profiles(project).values()} == {expected}


def ship_env_file(template: Path, *, keep_skip_if_exists: bool) -> None:
    """A release whose template renders a .env of its own."""
    (template / "template" / ".env.jinja").write_text("ENVIRONMENT=production\n", "utf-8")
    if not keep_skip_if_exists:
        copier_yml = template / "copier.yml"
        settings = yaml.safe_load(copier_yml.read_text(encoding="utf-8"))
        settings.pop("_skip_if_exists")
        copier_yml.write_text(yaml.safe_dump(settings, sort_keys=False, width=1000), "utf-8")


@pytest.mark.parametrize(
    ("keep_skip_if_exists", "kept"),
    [
        pytest.param(True, True, id="template-as-is"),
        pytest.param(False, False, id="without-skip-if-exists"),
    ],
)
def test_owners_env_file_survives_a_release_that_ships_one(
    template: Path, tmp_path: Path, keep_skip_if_exists: bool, kept: bool
) -> None:
    project = generate(template, tmp_path / "project")
    own = "ENVIRONMENT=staging\nCORS_ALLOW_ORIGINS=http://localhost:4200\n"
    (project / ".env").write_text(own, encoding="utf-8")  # ignored by git, never committed
    release(template, "v2", partial(ship_env_file, keep_skip_if_exists=keep_skip_if_exists))

    update(project)

    assert ((project / ".env").read_text(encoding="utf-8") == own) is kept


def test_deleted_generated_files_stay_deleted(template: Path, tmp_path: Path) -> None:
    project = generate(template, tmp_path / "project")
    git(project, "rm", "-q", ".env.example", "tests/test_health.py")
    commit(project, "Drop files this service does not use")
    release(template, "v2", next_release)  # changes .env.example, not test_health.py

    update(project)

    assert not (project / ".env.example").exists()  # v2's change to it is not applied
    assert not (project / "tests" / "test_health.py").exists()
    assert (project / PACKAGE / "about.py").exists()  # the rest of v2 arrived
    changed = {line[3:] for line in status(project)}
    assert ".env.example" not in changed and "tests/test_health.py" not in changed


def test_the_readme_command_that_changes_an_answer_works(template: Path, tmp_path: Path) -> None:
    project = generate(template, tmp_path / "project")
    lines = (project / "README.md").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if "--vcs-ref :current:" in line)
    command = lines[start].removesuffix("\\") + lines[start + 1]
    assert command.startswith("uvx copier update")
    result = subprocess.run(
        f"{sys.executable} -m {command.removeprefix('uvx ')}",
        shell=True,
        cwd=project,
        check=True,
        capture_output=True,
        text=True,
    )
    # After the update, Copier says what to check before committing.
    assert '"Orders API" is updated. Before you commit:' in result.stderr
    assert "uv run pytest" in result.stderr and "hunk by hunk" in result.stderr
    production = profiles(project)["production"]["cors_allow_origins"]
    assert production[-1] == "https://new.example.com"
    assert recorded_answers(project)["_commit"] == "v1"


def update_with_data(project: Path, key: str, value: str) -> subprocess.CompletedProcess[str]:
    """The answers file's own instruction: update at the same version with --data."""
    return subprocess.run(
        [
            *(sys.executable, "-m", "copier", "update", "--quiet", "--defaults"),
            *("--vcs-ref", ":current:", "--data", f"{key}={value}"),
        ],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("key", "value", "setting", "expected"),
    [
        ("cors_max_age", "900", "cors_max_age", 900),
        (
            "cors_allow_headers",
            "Authorization, X-Trace-Id",
            "cors_allow_headers",
            ["Authorization", "X-Trace-Id"],
        ),
        (
            "cors_expose_headers",
            "[X-Request-ID, X-Total-Count]",
            "cors_expose_headers",
            ["X-Request-ID", "X-Total-Count"],
        ),
        ("cors_allow_credentials", "true", "cors_allow_credentials", True),
    ],
)
def test_every_recorded_answer_changes_with_data(
    template: Path, tmp_path: Path, key: str, value: str, setting: str, expected: object
) -> None:
    project = generate(template, tmp_path / "project")
    before = profiles(project)["production"]
    assert before[setting] != expected

    result = update_with_data(project, key, value)

    assert result.returncode == 0, result.stderr
    assert profiles(project)["production"][setting] == expected


@pytest.mark.parametrize(
    ("key", "value", "recorded"),
    [
        ("production", "https://new.example.com", "cors_origins"),
        ("max_age", "900", "cors_max_age"),
        ("request_headers", "X-Trace-Id", "cors_allow_headers"),
        ("public_paths", "/status", "cors_public_paths"),
    ],
)
def test_a_question_asked_only_at_generation_is_refused_on_update(
    template: Path, tmp_path: Path, key: str, value: str, recorded: str
) -> None:
    """No silent no-op: the short-named questions only feed a recorded answer, so giving
    one on update is refused with the key that works, and nothing changes."""
    project = generate(template, tmp_path / "project")
    before = profiles(project)

    result = update_with_data(project, key, value)

    assert result.returncode != 0
    assert f"Validation error for question '{key}': use " in result.stderr, result.stderr
    assert f"{key} is asked only at generation: change {recorded}" in result.stderr
    assert profiles(project) == before
    assert git(project, "status", "--porcelain") == ""
