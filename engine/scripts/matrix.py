#!/usr/bin/env python3
"""Run the engine's test suite on every supported Python, at the newest and the oldest
versions its dependencies admit.

Each cell (one Python, one resolution) gets a fresh virtual environment in a temporary
directory, made with ``uv venv -p PYTHON``; the engine is installed editable with its dev
group (``uv pip install --resolution R -e . --group dev``), and the suite runs from the
engine's directory without the browser tests. ``highest`` proves the newest releases,
``lowest-direct`` proves the floors of ``[project] dependencies`` (and of the dev group).

    python engine/scripts/matrix.py                      # every cell, two at a time
    python engine/scripts/matrix.py -p 3.13 -r lowest-direct

One line per cell: Python, resolution, the resolved FastAPI, Starlette, pydantic and
pydantic-settings, and pytest's summary. The exit status is 1 if any cell failed.
Uses uv's cache; uv never downloads a Python here, so each one is named by its path.
"""

# ruff: noqa: S603 (the commands run are uv, pytest and the named interpreters)

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ENGINE = Path(__file__).resolve().parent.parent
PYTHONS_GLOB = "/root/.pyenv/versions/3.1[0-9]*/bin/python"
RESOLUTIONS = ("highest", "lowest-direct")
SHOWN = ("fastapi", "starlette", "pydantic", "pydantic-settings")
# A test still running after HANG_DUMP seconds has every thread's traceback written to
# stderr (pytest's faulthandler), so a cell that times out names the test and the line.
HANG_DUMP = 120
PYTEST_ARGS = (
    "-q", "-p", "no:cacheprovider", "--ignore", "tests/test_browser.py",
    "-o", f"faulthandler_timeout={HANG_DUMP}",
)  # fmt: skip
INSTALL_TIMEOUT = 600
SUITE_TIMEOUT = 900
_SUMMARY = re.compile(
    r"^=*\s*((?:\d+ (?:passed|failed|errors?|skipped|xfailed|xpassed|deselected|warnings?)"
    r"(?:, )?)+)(?: in [\d.]+s.*)?\s*=*$"
)
_COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected)")


@dataclass
class Cell:
    python: str  # the interpreter's path
    resolution: str
    version: str = "?"  # the interpreter's version, as 3.12.1
    versions: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    ok: bool = False
    seconds: float = 0.0
    output: str = ""  # what failed: the installer's or pytest's output

    @property
    def counts(self) -> dict[str, int]:
        found = {kind.rstrip("s"): int(n) for n, kind in _COUNT.findall(self.summary)}
        return found

    def line(self) -> str:
        versions = " ".join(f"{name}={self.versions.get(name, '-')}" for name in SHOWN)
        mark = "ok  " if self.ok else "FAIL"
        return (
            f"{mark} {self.version:<8} {self.resolution:<14} {versions}  "
            f"{self.summary or '(no pytest summary)'}  [{self.seconds:.0f}s]"
        )


def python_version(python: str) -> str:
    result = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def requires_python(engine: Path = ENGINE) -> str:
    with (engine / "pyproject.toml").open("rb") as file:
        return str(tomllib.load(file)["project"].get("requires-python", ""))


def satisfies(version: str, specifiers: str) -> bool:
    """Whether ``version`` (3.12.1) meets ``specifiers`` (>=3.10,<4): a small reading of
    PEP 440 that is enough for requires-python; packaging's when it is importable."""
    try:
        from packaging.specifiers import SpecifierSet
    except ModuleNotFoundError:
        pass
    else:
        return SpecifierSet(specifiers).contains(version)

    def key(text: str) -> tuple[int, ...]:
        return tuple(int(part) for part in text.split(".") if part.isdigit())

    operators = {
        ">=": lambda a, b: a >= b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        "<": lambda a, b: a < b,
        "==": lambda a, b: a[: len(b)] == b,
        "!=": lambda a, b: a[: len(b)] != b,
    }
    for spec in filter(None, (part.strip() for part in specifiers.split(","))):
        match = re.fullmatch(r"(>=|<=|==|!=|>|<|~=)\s*([\d.]+)(\.\*)?", spec)
        if match is None:
            raise ValueError(f"cannot read requires-python {specifiers!r}")
        operator, wanted, _ = match.groups()
        have, bound = key(version), key(wanted)
        if operator == "~=":
            if not (have >= bound and have[: len(bound) - 1] == bound[:-1]):
                return False
        elif not operators[operator](have, bound):
            return False
    return True


def default_pythons(engine: Path = ENGINE) -> list[str]:
    """Every pyenv Python 3.1x that the engine's requires-python admits, oldest first."""
    wanted = requires_python(engine)
    found = []
    for python in glob.glob(PYTHONS_GLOB):
        version = python_version(python)
        if satisfies(version, wanted):
            found.append((tuple(int(p) for p in version.split(".")[:3]), python))
    return [python for _, python in sorted(found)]


def find_python(minor: str) -> str | None:
    """The newest pyenv interpreter of ``minor`` (3.12), or None."""
    paths = glob.glob(f"/root/.pyenv/versions/{minor}.*/bin/python")
    paths = [p for p in paths if re.fullmatch(rf"{re.escape(minor)}\.\d+", Path(p).parts[-3])]
    if not paths:
        return None
    return max(paths, key=lambda p: tuple(int(x) for x in Path(p).parts[-3].split(".")))


def resolve_python(name: str) -> str:
    """A path, or a version (3.12 or 3.12.1) of a pyenv interpreter."""
    if os.sep in name:
        return name
    if name.count(".") >= 2:
        path = f"/root/.pyenv/versions/{name}/bin/python"
        return path
    return find_python(name) or f"/root/.pyenv/versions/{name}/bin/python"


def clean_environment() -> dict[str, str]:
    """The caller's environment without what would leak into the cell: the active
    virtual environment, pytest's and Python's settings (the cell's pytest is its own)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PYTEST_", "PYTHON", "VIRTUAL_ENV", "UV_PROJECT", "COV_"))
        and name not in {"UV_PYTHON", "UV_RESOLUTION", "CONDA_PREFIX"}
    }
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_cell(
    python: str,
    resolution: str,
    *,
    engine: Path = ENGINE,
    extra: tuple[str, ...] = (),
    pytest_args: tuple[str, ...] = (),
) -> Cell:
    """Build one cell's environment, run the suite in it and say how it went."""
    cell = Cell(python=python, resolution=resolution)
    started = time.monotonic()
    env = clean_environment()
    uv = shutil.which("uv") or "uv"
    if not Path(python).exists():
        cell.summary = f"no interpreter at {python}"
        return cell
    cell.version = python_version(python)
    with tempfile.TemporaryDirectory(prefix=f"corsguard-{cell.version}-{resolution}-") as tmp:
        venv = Path(tmp) / "venv"
        steps = [
            [uv, "venv", "-q", "-p", python, str(venv)],
            [
                uv, "pip", "install", "-q", "-p", str(venv), "--resolution", resolution,
                "--compile-bytecode", "-e", ".", "--group", "dev", *extra,
            ],
        ]  # fmt: skip
        for step in steps:
            done = subprocess.run(
                step, cwd=engine, env=env, capture_output=True, text=True,
                timeout=INSTALL_TIMEOUT,
            )  # fmt: skip
            if done.returncode != 0:
                cell.summary = f"`{' '.join(step[:3])}` failed"
                cell.output = done.stdout + done.stderr
                cell.seconds = time.monotonic() - started
                return cell
        probe = (
            "import importlib.metadata as m, json, sys; "
            "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
        )
        py = str(venv / "bin" / "python")
        shown = subprocess.run(
            [py, "-c", probe, *SHOWN], env=env, capture_output=True, text=True, check=False
        )
        if shown.returncode == 0:
            cell.versions = json.loads(shown.stdout)
        try:
            suite = subprocess.run(
                [py, "-m", "pytest", *PYTEST_ARGS, *pytest_args],
                cwd=engine, env=env, capture_output=True, text=True, timeout=SUITE_TIMEOUT,
            )  # fmt: skip
        except subprocess.TimeoutExpired as expired:
            cell.summary = f"pytest did not finish in {SUITE_TIMEOUT}s"
            cell.output = "\n".join(text(part) for part in (expired.stdout, expired.stderr))
            cell.seconds = time.monotonic() - started
            return cell
        output = suite.stdout + suite.stderr
        summaries = [line.strip() for line in output.splitlines() if _SUMMARY.match(line.strip())]
        cell.summary = summaries[-1].strip("= ") if summaries else ""
        counts = cell.counts
        cell.ok = (
            suite.returncode == 0
            and counts.get("passed", 0) > 0
            and not counts.get("failed")
            and not counts.get("error")
        )
        if not cell.ok:
            cell.output = output
    cell.seconds = time.monotonic() - started
    return cell


def text(output: str | bytes | None) -> str:
    # What a timed-out run had written: bytes, whatever text=True asked for.
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


def failures(cell: Cell, limit: int = 40) -> str:
    """The lines of a failed cell's output worth reading: pytest's short summary, or
    for a hung run the tracebacks faulthandler wrote (the test and the line it waits on),
    or else the last lines."""
    lines = cell.output.splitlines()
    picked = [line for line in lines if line.startswith(("FAILED ", "ERROR "))]
    if picked:
        return "\n".join(picked[:limit])
    hung = [n for n, line in enumerate(lines) if line.startswith("Timeout (")]
    if hung:
        return "\n".join(lines[hung[0] : hung[0] + 2 * limit])
    return "\n".join(lines[-limit:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "-p", "--python", action="append",
        help="a Python version (3.12) or path; default: every pyenv 3.1x that "
        "requires-python admits",
    )  # fmt: skip
    parser.add_argument(
        "-r", "--resolution", action="append", choices=("highest", "lowest", "lowest-direct"),
        help="default: highest and lowest-direct",
    )  # fmt: skip
    parser.add_argument("-j", "--jobs", type=int, default=2, help="cells at a time (2)")
    parser.add_argument(
        "--uv-arg", action="append", default=[],
        help="one more argument to `uv pip install` (e.g. --uv-arg=--overrides=o.txt)",
    )  # fmt: skip
    parser.add_argument("-v", "--verbose", action="store_true", help="show failures")
    args = parser.parse_args(argv)

    pythons = [resolve_python(p) for p in args.python] if args.python else default_pythons()
    resolutions = args.resolution or list(RESOLUTIONS)
    cells = [(python, resolution) for python in pythons for resolution in resolutions]
    if not cells:
        print("no Python found", file=sys.stderr)
        return 1
    started = time.monotonic()
    results: list[Cell] = []
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [
            pool.submit(run_cell, python, resolution, extra=tuple(args.uv_arg))
            for python, resolution in cells
        ]
        for future in futures:  # in the order of the table, as each one finishes
            cell = future.result()
            results.append(cell)
            print(cell.line(), flush=True)
            if not cell.ok and args.verbose:
                print("    " + failures(cell).replace("\n", "\n    "), flush=True)
    failed = [cell for cell in results if not cell.ok]
    print(
        f"{len(results) - len(failed)} of {len(results)} cells passed "
        f"in {time.monotonic() - started:.0f}s"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
