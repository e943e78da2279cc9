"""The engine's suite on every supported Python, at its newest and its oldest dependencies.

Each case is one cell of ``engine/scripts/matrix.py``: a fresh virtual environment with
``uv pip install --resolution R -e engine --group dev``, then the engine's own pytest
(without the browser tests). ``lowest-direct`` is what proves the floors written in
``engine/pyproject.toml``. The cases are separate so that xdist spreads them over the
workers; on two cores the eight of them take about a minute and a half.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
MATRIX_SCRIPT = ROOT / "engine" / "scripts" / "matrix.py"
# Every Python the engine supports: each one must be on the machine (a missing one fails).
SUPPORTED = ("3.10", "3.11", "3.12", "3.13")
RESOLUTIONS = ("highest", "lowest-direct")


def load_matrix() -> ModuleType:
    spec = importlib.util.spec_from_file_location("corsguard_matrix", MATRIX_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


matrix = load_matrix()


def test_the_supported_pythons_are_those_requires_python_admits() -> None:
    """SUPPORTED follows engine/pyproject.toml: a change of requires-python changes it."""
    wanted = matrix.requires_python()
    assert all(matrix.satisfies(f"{minor}.0", wanted) for minor in SUPPORTED), wanted
    assert not matrix.satisfies("3.9.0", wanted), "3.9 is admitted: add it to SUPPORTED"


@pytest.mark.slow
@pytest.mark.parametrize("resolution", RESOLUTIONS)
@pytest.mark.parametrize("minor", SUPPORTED)
def test_engine_suite(minor: str, resolution: str) -> None:
    python = matrix.find_python(minor)
    if python is None:
        pytest.fail(f"no Python {minor} under /root/.pyenv/versions: the matrix needs every one")
    cell = matrix.run_cell(python, resolution)
    detail = f"{cell.line()}\n{matrix.failures(cell)}"
    counts = cell.counts
    assert counts.get("passed", 0) > 0, detail
    assert not counts.get("failed") and not counts.get("error"), detail
    assert cell.ok, detail
