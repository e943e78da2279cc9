"""Journey 5 from real releases: services generated at earlier template versions update
to the working tree, and the release tags are what CHANGELOG.md says.

The earlier versions come from this repository's own history (a clone with its history
is needed): the first template core, and every release that CHANGELOG.md names with its
commit. A temporary template repository holds them in order, each tagged, with the
working tree on top. An owner generates a service at an old version, grows it as a real
owner would (``tests/owner.py``), commits, and runs ``copier update`` to the newest.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import copier
import pytest

from . import owner
from .conftest import (
    ROOT,
    TEMPLATE_FILES,
    check_project,
    copy_template_files,
    git,
    owner_environment,
    run,
)

# The commit of the first template core, before any release was cut.
TEMPLATE_CORE = ("0.1.0.dev0", "e5999ba963c6")
RELEASE_HEADING = re.compile(r"^## \[([0-9][^]]*)\] - [0-9-]+ \(commit ([0-9a-f]+)\)$", re.M)
ANSWERS = {"project_name": "Orders API", "package_name": "orders_api"}
PACKAGE = "orders_api"


def releases() -> list[tuple[str, str]]:
    """(version, commit) of every release CHANGELOG.md names, oldest first."""
    found = RELEASE_HEADING.findall((ROOT / "CHANGELOG.md").read_text(encoding="utf-8"))
    return sorted(found, key=lambda release: [int(part) for part in release[0].split(".")])


STARTS = [TEMPLATE_CORE, *releases()]


def require_history() -> None:
    for _, commit in STARTS:
        found = subprocess.run(
            ["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=ROOT, capture_output=True
        )
        assert found.returncode == 0, (
            f"commit {commit} is not in this clone: the release tests need the repository's "
            "history (git fetch --unshallow)"
        )


def remove_template_files(destination: Path) -> None:
    for name in TEMPLATE_FILES:
        shutil.rmtree(destination / name, ignore_errors=True)
        (destination / name).unlink(missing_ok=True)


def checkout(commit: str, destination: Path) -> None:
    """The template's files as they were at ``commit``."""
    remove_template_files(destination)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, *TEMPLATE_FILES],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(destination, filter="data")


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A template repository: each earlier version tagged, the working tree on top."""
    require_history()
    repository = tmp_path_factory.mktemp("history")
    git(repository, "init", "-q", "-b", "main")
    for version, commit in STARTS:
        checkout(commit, repository)
        git(repository, "add", "-A")
        git(repository, "commit", "-q", "-m", f"{version} ({commit})")
        git(repository, "tag", f"v{version}")
    remove_template_files(repository)
    copy_template_files(repository)
    git(repository, "add", "-A")
    git(repository, "commit", "-q", "-m", "working tree")
    return repository


def generate_at(history: Path, version: str, project: Path) -> Path:
    copier.run_copy(
        str(history), str(project), data=ANSWERS, defaults=True, vcs_ref=f"v{version}", quiet=True
    )
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "Generate")
    return project


def conflicted(project: Path) -> list[str]:
    return sorted(
        line[3:]
        for line in git(project, "status", "--porcelain").splitlines()
        if line.startswith("UU")
    )


def rejected(project: Path) -> list[str]:
    return sorted(path.relative_to(project).as_posix() for path in project.rglob("*.rej"))


def test_the_tag_command_tags_what_the_changelog_says(tmp_path: Path) -> None:
    require_history()
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--no-local", str(ROOT), str(clone)], check=True)
    for tag in git(clone, "tag", "--list").split():
        git(clone, "tag", "-d", tag)
    # The command and the headings as they are in the working tree, committed or not.
    for name in ("CHANGELOG.md", ".ci/tag-releases"):
        shutil.copy2(ROOT / name, clone / name)
    first = subprocess.run(["bash", ".ci/tag-releases"], cwd=clone, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    tags = {
        tag: git(clone, "rev-parse", f"{tag}^{{commit}}").strip()
        for tag in git(clone, "tag", "--list").split()
    }
    assert tags == {
        f"v{version}": git(clone, "rev-parse", f"{commit}^{{commit}}").strip()
        for version, commit in releases()
    }
    assert len(tags) >= 2
    again = subprocess.run(["bash", ".ci/tag-releases"], cwd=clone, capture_output=True, text=True)
    assert again.returncode == 0 and "already on" in again.stdout
    # A tag that disagrees with the heading is reported, not moved.
    version, _ = releases()[0]
    git(clone, "tag", "-f", "-a", f"v{version}", "-m", "moved", "HEAD")
    moved = subprocess.run(["bash", ".ci/tag-releases"], cwd=clone, capture_output=True, text=True)
    assert moved.returncode == 1 and f"v{version}: already tags" in moved.stderr


# Files that both the owner and the template edit: the only ones an update may stop on.
SHARED_FILES = {
    "README.md",
    "pyproject.toml",
    f"src/{PACKAGE}/main.py",
    f"src/{PACKAGE}/settings.py",
    f"src/{PACKAGE}/settings.toml",
}
# The owner's room (0.3.0) moved the CORS code out of main.py and settings.py: an update
# from an earlier release stops once on each, and on the README the template rewrote.
MOVED = {"README.md", f"src/{PACKAGE}/main.py", f"src/{PACKAGE}/settings.py"}
ENGINE_VERSION = tomllib.loads((ROOT / "engine" / "pyproject.toml").read_text("utf-8"))["project"][
    "version"
]
DEPENDENCY = re.compile(r'^\s*"corsguard>=0\.4\.0,<0\.5",$', re.M)
NO_ENGINE_MODULE = f"""
import importlib.util, pathlib, corsguard, {PACKAGE}.main

assert importlib.util.find_spec("{PACKAGE}.cors") is None, "{PACKAGE}.cors still imports"
print(corsguard.__version__, pathlib.Path(corsguard.__file__).parent.parent.name)
"""


def compile_caches(project: Path) -> None:
    """What the owner's last ``uv run pytest`` left: ``__pycache__`` beside every module,
    which git ignores and so neither the owner's commit nor Copier's diff sees."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "src", "tests"], cwd=project, check=True
    )


def locked_engine(project: Path) -> dict[str, object]:
    lock = tomllib.loads((project / "uv.lock").read_text(encoding="utf-8"))
    (package,) = [entry for entry in lock["package"] if entry["name"] == "corsguard"]
    return dict(package)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["inline", "rej"])
@pytest.mark.parametrize("start", [version for version, _ in STARTS])
def test_a_service_from_an_earlier_release_updates_to_the_working_tree(
    history: Path, tmp_path: Path, start: str, mode: str
) -> None:
    project = generate_at(history, start, tmp_path / "project")
    before = owner.layout(project, PACKAGE)
    edits = owner.grow(project, PACKAGE)
    compile_caches(project)
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "A year of the owner's work")

    copier.run_update(
        str(project), defaults=True, overwrite=True, conflict=mode, vcs_ref="HEAD", quiet=True
    )

    stopped = (
        conflicted(project)
        if mode == "inline"
        else [name.removesuffix(".rej") for name in rejected(project)]
    )
    vendored = owner.vendored_left(project, PACKAGE, caches=False)
    caches = owner.vendored_left(project, PACKAGE)
    print(  # the measurements (pytest -rP shows them)
        f"MEASURED {start} {mode}: layout {before!r}; stopped on {stopped}; "
        f"lost {owner.lost_lines(project, edits)}; vendored files left {vendored}; "
        f"left with caches {len(caches)}"
    )
    assert set(stopped) <= SHARED_FILES, stopped
    if before == owner.SINGLE_PACKAGE:
        assert set(stopped) >= MOVED, stopped
    if mode == "inline":
        assert rejected(project) == []
    else:
        assert conflicted(project) == []
    assert owner.lost_lines(project, edits) == []
    # Copier deletes every file the old version rendered and the new one does not, but
    # not the caches beside them (git ignores them): the directories stay until the owner
    # removes them, after the commit.
    assert vendored == []
    assert owner.layout(project, PACKAGE) == owner.CORSGUARD
    assert bool(caches) is (before == owner.TWO_ROOMS)
    if stopped:
        # The owner's next `uv run pytest` names what is left to resolve, before anything
        # imports the half-merged code.
        subprocess.run(["uv", "sync", "--quiet"], cwd=project, env=owner_environment(), check=False)
        left = subprocess.run(
            ["uv", "run", "--no-sync", "pytest", "-q", "-p", "no:cacheprovider"],
            cwd=project,
            env=owner_environment(),
            capture_output=True,
            text=True,
            check=False,
        )
        if mode == "inline" and "pyproject.toml" in stopped:
            # Marker lines in pyproject.toml: uv itself stops first, naming that file.
            assert left.returncode == 2, left.stdout + left.stderr
            assert "Failed to parse: pyproject.toml" in left.stderr, left.stderr
        else:
            assert left.returncode == 1, left.stdout + left.stderr
            assert all(name in left.stderr for name in stopped), left.stderr

    owner.resolve(project, PACKAGE, edits, stopped)
    # As the docs say after carrying lines over: let ruff sort the imports and format.
    run(project, "uv", "run", "--quiet", "ruff", "check", "--fix", "--exit-zero", ".")
    run(project, "uv", "run", "--quiet", "ruff", "format", ".")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "Update: the engine is the corsguard dependency")
    owner.remove_engine_caches(project, PACKAGE)
    assert owner.vendored_left(project, PACKAGE) == []
    assert owner.lost_lines(project, edits) == []
    assert DEPENDENCY.search((project / "pyproject.toml").read_text(encoding="utf-8"))
    check_project(project)
    # corsguard came from the index built from this working tree, and the engine the
    # service imports is that one: no module of the old engine is left to import.
    engine = locked_engine(project)
    assert engine["version"] == ENGINE_VERSION
    index = os.environ["UV_INDEX"].partition("=")[2].removeprefix("file://")
    assert engine["source"] == {"registry": index}, engine["source"]
    imported = run(project, "uv", "run", "--no-sync", "python", "-c", NO_ENGINE_MODULE)
    assert imported.split() == [ENGINE_VERSION, "site-packages"], imported


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["inline", "rej"])
def test_the_update_from_0_3_0_deletes_the_vendored_engine_even_where_the_owner_edited_it(
    history: Path, tmp_path: Path, mode: str
) -> None:
    """What Copier does with the files 0.3.0 vendored: it deletes every file the old
    version rendered and the new one does not, edited or not, with no conflict. Inline, the
    owner's edit of such a file is gone without a word; with ``--conflict rej`` it is left
    in ``FILE.rej`` beside the deleted file (the service's conftest.py then names it). A
    file the owner added beside them stays, and so does its directory."""
    project = generate_at(history, "0.3.0", tmp_path / "project")
    errors = project / "src" / PACKAGE / "cors" / "errors.py"
    errors.write_text(
        errors.read_text(encoding="utf-8").replace("LOGGED_LENGTH = 200", "LOGGED_LENGTH = 80"),
        encoding="utf-8",
    )
    own = project / "tests" / "cors" / "test_own_origin.py"
    own.write_text("def test_own_origin() -> None:\n    assert True\n", encoding="utf-8")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "Edit the vendored engine, add a test beside it")

    copier.run_update(
        str(project), defaults=True, overwrite=True, conflict=mode, vcs_ref="HEAD", quiet=True
    )

    assert not errors.exists()
    assert conflicted(project) == []
    kept = ["tests/cors", "tests/cors/test_own_origin.py"]
    if mode == "inline":
        assert rejected(project) == []
        assert owner.vendored_left(project, PACKAGE) == kept
    else:
        rejection = f"src/{PACKAGE}/cors/errors.py.rej"
        assert rejected(project) == [rejection]
        assert "+LOGGED_LENGTH = 80\n" in (project / rejection).read_text(encoding="utf-8")
        assert owner.vendored_left(project, PACKAGE) == [
            f"src/{PACKAGE}/cors",
            rejection,
            *kept,
        ]
    deleted = {
        line[3:] for line in git(project, "status", "--porcelain").splitlines() if line[:3] == " D "
    }
    assert f"src/{PACKAGE}/cors/errors.py" in deleted
    assert "tests/cors/test_no_conflict_markers.py" in deleted
