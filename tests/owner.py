"""What an owner does to a generated service in its first year, as its README says.

The steps take their code from the generated README's "Grow the service" section, so a
README that shows something that does not work fails the tests that use them. Three
layouts have been generated: one package (releases up to 0.2.0: ``main.py``,
``settings.py`` and ``health.py`` side by side), two rooms (0.3.0: the owner's
``main.py``, ``settings.py`` and ``routers/``, the template's vendored ``cors/`` and
``tests/cors/``) and the corsguard dependency (since: the owner's files only). The owner's
room is the same in the last two, so they grow alike; the first gets the same changes in
the shape its files had then. Every step returns the lines it added, so that tests can
check that an update loses none of them.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

README_SECTION = "## Grow the service"
OWNER_README_SECTION = "\n## Deployment\n\nThe platform team deploys this service from main.\n"
HAND_EDITED_ORIGIN = "https://admin.example.com"
DEPENDENCY = "humanize"


@dataclass
class Edits:
    """The lines an owner added, by file (relative path), in the order added."""

    lines: dict[str, list[str]] = field(default_factory=dict)

    def add(self, relative: str, text: str) -> None:
        own = [line for line in text.splitlines() if line.strip()]
        self.lines.setdefault(relative, []).extend(own)


def readme_blocks(project: Path) -> list[str]:
    """The fenced code blocks of the README's "Grow the service" section, in order."""
    readme = (project / "README.md").read_text(encoding="utf-8")
    assert README_SECTION in readme, f"the generated README has no {README_SECTION!r}"
    section = readme.split(README_SECTION, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```(?:python|bash)\n(.*?)^```$", section, flags=re.M | re.S)


def insert(path: Path, anchor: str, text: str, *, before: bool = False) -> None:
    """Insert ``text`` after (or before) the one line that equals ``anchor``."""
    content = path.read_text(encoding="utf-8")
    line = anchor + "\n"
    assert content.count(line) == 1, f"{path} should contain {anchor!r} once"
    new = text + line if before else line + text
    path.write_text(content.replace(line, new), encoding="utf-8")


SINGLE_PACKAGE, TWO_ROOMS, CORSGUARD = "single package", "two rooms", "corsguard"


def layout(project: Path, package: str) -> str:
    """Which of the generated layouts ``project`` has."""
    source = project / "src" / package
    if not (source / "routers" / "health.py").exists():
        return SINGLE_PACKAGE
    if (source / "cors" / "__init__.py").exists():
        return TWO_ROOMS
    return CORSGUARD


def owners_room(project: Path, package: str) -> bool:
    """``main.py``, ``settings.py`` and ``routers/`` as the owner's room (0.3.0 and since)."""
    return layout(project, package) != SINGLE_PACKAGE


def vendored_directories(project: Path, package: str) -> list[Path]:
    """Where 0.3.0 kept the engine it vendored."""
    return [project / "src" / package / "cors", project / "tests" / "cors"]


def vendored_left(project: Path, package: str, *, caches: bool = True) -> list[str]:
    """Whatever is left of the engine that 0.3.0 vendored (``src/<package>/cors/``,
    ``tests/cors/``); without ``caches``, only what is not under ``__pycache__``. A
    directory that is left, even with nothing but ``__pycache__`` in it, still imports as
    the (empty, namespace) package ``<package>.cors``."""
    return sorted(
        path.relative_to(project).as_posix()
        for directory in vendored_directories(project, package)
        if directory.exists()
        for path in [directory, *directory.rglob("*")]
        if caches or not ({"__pycache__"} & set(path.relative_to(project).parts) or path.is_dir())
    )


def remove_engine_caches(project: Path, package: str) -> None:
    """What the owner runs once the update that drops the vendored engine is committed:
    Copier deleted the engine's files, but not the caches beside them, which git ignores,
    so the directories stay. ``git clean -x`` removes untracked files only: a file of the
    owner's there (committed, as Copier requires) stays, and so does its directory. Run
    before the commit, it leaves the directories empty (git still knows their files)."""
    directories = [path for path in vendored_directories(project, package) if path.exists()]
    if directories:
        subprocess.run(
            ["git", "clean", "-q", "-f", "-d", "-x", "--", *map(str, directories)],
            cwd=project,
            check=True,
        )


def grow(
    project: Path, package: str, *, dependency: bool = True, settings_toml: bool = True
) -> Edits:
    """Add a router and its test, a setting, two middlewares and a dependency, a README
    section and a hand edit to settings.toml."""
    edits = Edits()
    if owners_room(project, package):
        grow_owners_room(project, package, edits)
    else:
        grow_single_package(project, package, edits)
    readme = project / "README.md"
    readme.write_text(readme.read_text(encoding="utf-8") + OWNER_README_SECTION, "utf-8")
    edits.add("README.md", OWNER_README_SECTION)
    if settings_toml:
        hand_edit_settings_toml(project, package, edits)
    if dependency:
        add_dependency(project, edits)
    return edits


def grow_owners_room(project: Path, package: str, edits: Edits) -> None:
    """The README's steps, in the owner's room of 0.3.0 and of the corsguard layout: the
    same anchors (the router import, ``include_router(health.router)``, the middleware
    comment above ``add_cors``, the ``Settings`` class last in settings.py)."""
    source = project / "src" / package
    blocks = readme_blocks(project)
    assert len(blocks) == 10, f"expected 10 code blocks in {README_SECTION!r}: {len(blocks)}"
    (
        items,
        router_import,
        include,
        items_test,
        setting,
        setting_test,
        middleware,
        request_id,
        request_id_test,
        add,
    ) = blocks
    write(project, f"src/{package}/routers/items.py", items, edits)
    main = source / "main.py"
    replace_line(main, "from .routers import health", router_import.strip())
    edits.add(f"src/{package}/main.py", router_import)
    insert(main, "    app.include_router(health.router)", include)
    edits.add(f"src/{package}/main.py", include)
    write(project, "tests/test_items.py", items_test, edits)

    head = 'class Settings(CORSSettings):\n    """..."""\n'
    assert setting.startswith(head), setting
    field_line = setting.removeprefix(head)
    settings = source / "settings.py"
    settings.write_text(settings.read_text(encoding="utf-8") + field_line, encoding="utf-8")
    edits.add(f"src/{package}/settings.py", field_line)
    write(project, "tests/test_settings.py", setting_test, edits)

    imports = (
        "from fastapi.middleware.gzip import GZipMiddleware\n",
        "from .request_id import RequestIDMiddleware\n",
    )
    readme = (project / "README.md").read_text(encoding="utf-8")
    assert all(f"`{line.strip()}`" in readme for line in imports), imports
    insert(main, "from fastapi import FastAPI", imports[0])
    insert(main, router_import.strip(), imports[1], before=True)
    edits.add(f"src/{package}/main.py", "".join(imports))
    insert(
        main,
        "    # Middleware: add yours above this line. add_cors must stay last, so that the CORS",
        middleware,
        before=True,
    )
    edits.add(f"src/{package}/main.py", middleware)
    write(project, f"src/{package}/request_id.py", request_id, edits)
    write(project, "tests/test_request_id.py", request_id_test, edits)
    assert add.startswith(f"uv add {DEPENDENCY} "), add


def grow_single_package(project: Path, package: str, edits: Edits) -> None:
    """The same changes in a service generated before the owner's room, where
    ``main.py``, ``settings.py`` (every CORS field) and ``health.py`` sat side by side."""
    source = project / "src" / package
    main = source / "main.py"
    write(project, f"src/{package}/items.py", OLD_ITEMS, edits)
    line = "from .items import router as items_router\n"
    insert(main, "from .health import router as health_router", line)
    edits.add(f"src/{package}/main.py", line)
    line = "    app.include_router(items_router)\n"
    insert(main, "    app.include_router(health_router)", line)
    edits.add(f"src/{package}/main.py", line)
    write(project, "tests/test_items.py", OLD_ITEMS_TEST.format(package=package), edits)

    line = '    database_url: str = "sqlite:///./service.db"\n'
    settings = source / "settings.py"
    insert(settings, "    cors_max_age: int = Field(default=600, ge=0, le=86400)", line)
    edits.add(f"src/{package}/settings.py", line)

    line = "from fastapi.middleware.gzip import GZipMiddleware\n"
    insert(main, "from fastapi import FastAPI", line)
    edits.add(f"src/{package}/main.py", line)
    line = "    app.add_middleware(GZipMiddleware, minimum_size=1000)\n"
    add_cors = next(
        text
        for text in main.read_text(encoding="utf-8").splitlines()
        if text.startswith("    add_cors(app, ")
    )
    insert(main, add_cors, line, before=True)
    edits.add(f"src/{package}/main.py", line)


OLD_ITEMS = '''\
"""Items: the service's first resource."""

from fastapi import APIRouter
from pydantic import BaseModel

router = APIRouter(prefix="/items", tags=["items"])


class Item(BaseModel):
    name: str


@router.post("", status_code=201)
async def create_item(item: Item) -> Item:
    return item
'''

OLD_ITEMS_TEST = """\
from fastapi.testclient import TestClient

from {package}.main import create_app
from {package}.settings import Settings


def test_create_item() -> None:
    client = TestClient(create_app(Settings(_env_file=None)))
    response = client.post("/items", json={{"name": "first"}})
    assert response.status_code == 201
    assert response.json() == {{"name": "first"}}
"""


def write(project: Path, relative: str, text: str, edits: Edits) -> None:
    path = project / relative
    assert not path.exists(), f"{relative} exists already"
    path.write_text(text, encoding="utf-8")
    edits.add(relative, text)


def replace_line(path: Path, old: str, new: str) -> None:
    content = path.read_text(encoding="utf-8")
    assert content.count(old + "\n") == 1, f"{path} should contain {old!r} once"
    path.write_text(content.replace(old + "\n", new + "\n"), encoding="utf-8")


def hand_edit_settings_toml(project: Path, package: str, edits: Edits) -> None:
    """Add an origin to the last profile's list by hand (not through the answers)."""
    path = project / "src" / package / "settings.toml"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    index = max(i for i, line in enumerate(lines) if line.startswith("cors_allow_origins = ["))
    old = lines[index].rstrip("\n")
    new = old[:-1] + (", " if old != "cors_allow_origins = []" else "") + f'"{HAND_EDITED_ORIGIN}"]'
    lines[index] = new + "\n"
    path.write_text("".join(lines), encoding="utf-8")
    edits.add(f"src/{package}/settings.toml", new)


def add_dependency(project: Path, edits: Edits) -> None:
    """``uv add``, as the README says; it resolves against the package index."""
    before = (project / "pyproject.toml").read_text(encoding="utf-8").splitlines()
    uv_add(project)
    after = (project / "pyproject.toml").read_text(encoding="utf-8").splitlines()
    added = [line for line in after if line not in before]
    assert any(DEPENDENCY in line for line in added), added
    edits.add("pyproject.toml", "\n".join(added))


def uv_add(project: Path) -> None:
    """``uv add DEPENDENCY`` without syncing. The index that stands in for corsguard's
    (``UV_INDEX``, set by tests/conftest.py) is passed as an extra index instead: given as
    an index, ``uv add`` would pin the new dependency to it and find nothing there."""
    environment = dict(os.environ)
    name, _, url = environment.pop("UV_INDEX", "").partition("=")
    if url:
        environment["UV_EXTRA_INDEX_URL"] = url
    elif name:
        environment["UV_EXTRA_INDEX_URL"] = name
    added = subprocess.run(
        ["uv", "add", "--quiet", "--no-sync", DEPENDENCY],
        cwd=project,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert added.returncode == 0, added.stderr


def lost_lines(project: Path, edits: Edits) -> list[str]:
    """Owner lines found nowhere in the project after an update: not in the file, not in
    a conflict hunk, not in a ``.rej`` file."""
    texts = "\n".join(
        path.read_text(encoding="utf-8", errors="replace")
        for path in project.rglob("*")
        if path.is_file()
        and ".git" not in path.parts
        and ".venv" not in path.parts
        and path.suffix not in {".pyc", ".lock"}
    )
    present = {line.strip() for line in texts.splitlines()}
    # A .rej file is a diff: the owner's lines start with '+'.
    present |= {line[1:].strip() for line in texts.splitlines() if line.startswith("+")}
    return [
        f"{relative}: {line}"
        for relative, lines in edits.lines.items()
        for line in lines
        if line.strip() not in present
    ]


# --- Resolving an update's conflicts as the docs say -------------------------------------

CONFLICT = re.compile(
    r"^<<<<<<< before updating\n(.*?)^=======\n(.*?)^>>>>>>> after updating\n", re.M | re.S
)
MIDDLEWARE_COMMENT = "    # Middleware: add yours above this line."


def resolve(project: Path, package: str, edits: Edits, conflicts: list[str]) -> None:
    """Resolve each conflicted file hunk by hunk: keep the template's lines, then carry
    the owner's lines that are missing over to where the new file wants them; finally
    let ruff sort the imports. A ``.rej`` file's file already holds the template's lines.
    """
    for relative in conflicts:
        path = project / relative
        text = CONFLICT.sub(lambda match: match.group(2), path.read_text(encoding="utf-8"))
        path.write_text(text, encoding="utf-8")
        (project / f"{relative}.rej").unlink(missing_ok=True)
        missing = [
            line
            for line in edits.lines.get(relative, [])
            if line.strip() not in {existing.strip() for existing in text.splitlines()}
        ]
        if missing:
            carry_over(project, package, relative, missing)


def carry_over(project: Path, package: str, relative: str, lines: list[str]) -> None:
    path = project / relative
    text = path.read_text(encoding="utf-8")
    if relative == f"src/{package}/main.py":
        imports = "".join(f"{line}\n" for line in lines if not line.startswith(" "))
        body = "".join(f"{line}\n" for line in lines if line.startswith(" "))
        anchor = "from fastapi import FastAPI\n"
        text = text.replace(anchor, anchor + imports, 1)
        comment = next(line for line in text.splitlines() if line.startswith(MIDDLEWARE_COMMENT))
        text = text.replace(comment + "\n", body + comment + "\n", 1)
    elif relative == f"src/{package}/settings.py":
        text += "".join(f"{line}\n" for line in lines)  # fields of the Settings class
    elif relative == "README.md":
        text += "\n" + "\n\n".join(lines) + "\n"
    elif relative == "pyproject.toml":
        uv_add(project)
        return
    elif relative == f"src/{package}/settings.toml":
        hand_edit_settings_toml(project, package, Edits())
        return
    else:
        raise AssertionError(f"no documented way to carry {relative} over: {lines}")
    path.write_text(text, encoding="utf-8")
