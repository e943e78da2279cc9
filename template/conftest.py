"""Loaded by pytest before anything imports the service: reports every conflict that
``copier update`` (or a git merge) left unresolved, and every ``.rej`` file, before the
tests are collected; a marker in ``main.py`` would otherwise surface as the SyntaxError
of whatever imports it first.

``copier update`` writes a hunk that both you and the template changed between two
marker lines, labelled "before updating" (yours) and "after updating" (the template's).
With ``--conflict rej`` it keeps the template's version in the file and writes your hunk
to ``FILE.rej`` beside it: carry its lines into the file by hand, then delete it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent

# Seven '<' or '>' at the start of a line, then a label or nothing. A lone "=======" is
# left alone: it is also a Markdown and reStructuredText underline.
MARKER = re.compile(r"^(?:<{7}|>{7})(?: |$)")

# Walked only outside a git work tree: tool caches and environments, never sources.
NOT_SOURCES = frozenset(
    {
        ".git",
        ".venv",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        "__pycache__",
        "build",
        "dist",
        "node_modules",
    }
)


def project_files() -> list[Path]:
    """Files git tracks or would track (not ignored); every source file outside git."""
    git = shutil.which("git")
    if git is not None:
        # Fixed arguments and the git found on PATH: nothing untrusted reaches the call.
        listed = subprocess.run(  # noqa: S603
            [git, "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=PROJECT,
            capture_output=True,
            check=False,
        )
        if listed.returncode == 0:
            tracked = dict.fromkeys(listed.stdout.decode("utf-8").split("\0"))
            return [PROJECT / name for name in tracked if name and (PROJECT / name).is_file()]
    files = []
    for directory, subdirectories, names in os.walk(PROJECT):
        subdirectories[:] = [name for name in subdirectories if name not in NOT_SOURCES]
        files += [Path(directory, name) for name in names]
    return files


def conflict_markers(path: Path) -> list[str]:
    """``file:line: marker`` for each marker line of a text file; binary files have none."""
    content = path.read_bytes()
    if b"\0" in content:
        return []
    relative = path.relative_to(PROJECT).as_posix()
    return [
        f"{relative}:{number}: {line.rstrip()}"
        for number, line in enumerate(content.decode("utf-8", "replace").splitlines(), 1)
        if MARKER.match(line)
    ]


def rejected_hunks() -> list[str]:
    """The ``.rej`` files that ``copier update --conflict rej`` left."""
    return sorted(
        path.relative_to(PROJECT).as_posix() for path in project_files() if path.suffix == ".rej"
    )


MARKERS_LEFT = (
    "Unresolved conflict (from copier update or a git merge): keep the lines you want, "
    "delete the marker lines, then run the tests again."
)
REJECTS_LEFT = (
    "copier update could not apply these hunks of yours (--conflict rej). Carry your lines "
    "from each .rej file into the file beside it, which holds the template's new version (if "
    "there is none, the template removed or moved that file: keep what you still need "
    "elsewhere), delete the .rej file, then run the tests again."
)


def unresolved() -> str:
    """Everything left to resolve, as one message; empty when nothing is."""
    found = [marker for path in project_files() for marker in conflict_markers(path)]
    rejected = rejected_hunks()
    parts = []
    if found:
        parts.append(MARKERS_LEFT + "\n" + "\n".join(found))
    if rejected:
        parts.append(REJECTS_LEFT + "\n" + "\n".join(rejected))
    return "\n\n".join(parts)


if problems := unresolved():
    sys.stderr.write(problems + "\n")
    raise SystemExit(1)
