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
import re
import shutil
import subprocess
import tarfile
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
# The two-room layout moved the CORS code out of main.py and settings.py: an update from
# an earlier release stops once on each, and on the README the template rewrote.
MOVED = {"README.md", f"src/{PACKAGE}/main.py", f"src/{PACKAGE}/settings.py"}


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["inline", "rej"])
@pytest.mark.parametrize("start", [version for version, _ in STARTS])
def test_a_service_from_an_earlier_release_updates_to_the_working_tree(
    history: Path, tmp_path: Path, start: str, mode: str
) -> None:
    project = generate_at(history, start, tmp_path / "project")
    edits = owner.grow(project, PACKAGE)
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
    assert MOVED <= set(stopped) <= SHARED_FILES, stopped
    if mode == "inline":
        assert rejected(project) == []
    else:
        assert conflicted(project) == []
    assert owner.lost_lines(project, edits) == []
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
    assert left.returncode == 1, left.stdout + left.stderr
    assert all(name in left.stderr for name in stopped), left.stderr

    owner.resolve(project, PACKAGE, edits, stopped)
    # As the docs say after carrying lines over: let ruff sort the imports and format.
    run(project, "uv", "run", "--quiet", "ruff", "check", "--fix", "--exit-zero", ".")
    run(project, "uv", "run", "--quiet", "ruff", "format", ".")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "Update to the two-room layout")
    assert owner.lost_lines(project, edits) == []
    check_project(project)
