"""The benchmark runs end to end and prints a coherent table (no timing thresholds)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

RUN = ROOT / "bench" / "run.py"
SECTIONS = (
    "### Machine",
    "### a) Generate a service and run its tests",
    "### b) In-process cost per request (ASGI call, no network)",
    "### c) HTTP throughput through uvicorn (one worker, 127.0.0.1)",
    "### d) Import and start-up of the generated service",
)
RESULT_HEADER = ["Measurement", "Median", "Baseline (median)", "Ratio", "Target", "Target met?"]
MATRIX_HEADER = [
    "Configuration",
    "simple GET, full app",
    "preflight, full app",
    "simple GET, layer alone",
]
MEASUREMENTS = (
    "generate, in-process `copier.run_copy` (warm)",
    "generated test suite, `uv run pytest -q`",
    "generated vs stock, 1 origin, preflight",
    "generated vs stock, 1 origin, simple (layer alone)",
    "generated, 10,000 vs 1 origin, simple (layer alone)",
    "stock, 10,000 vs 1 origin, preflight",
    "write protection on vs off, cross-site POST from an allowed origin (layer alone)",
    "generated layer, refused 256 KiB Origin, pattern profile",
    "with the generated CORS layer",
    "without CORS layer, second servers (noise check)",
    "headers only, no decision (reference)",
    "with stock CORSMiddleware (reference)",
    "`import orders_api.main` (app built)",
)
FIGURE = re.compile(r"^(\d+(?:\.\d+)?) (s|µs|req/s)$")
BASELINE = re.compile(r"^.+: (\d+(?:\.\d+)?) (s|µs|req/s)$")


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def interval(figure: str) -> tuple[float, float]:
    """The values that round to ``figure`` as printed."""
    decimals = len(figure.partition(".")[2])
    half = 0.5 * 10**-decimals
    return float(figure) - half, float(figure) + half


def tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table in ``text``: header row first, separator dropped."""
    found: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            if not re.fullmatch(r"\|[-:|]+\|", line.strip()):
                current.append(cells(line))
        elif current:
            found.append(current)
            current = []
    return found


@pytest.mark.slow
def test_quick_run_prints_every_section_with_parsable_figures() -> None:
    result = subprocess.run(
        [sys.executable, str(RUN), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    output = result.stdout
    positions = [output.find(section) for section in SECTIONS]
    assert -1 not in positions, [s for s, p in zip(SECTIONS, positions, strict=True) if p < 0]
    assert positions == sorted(positions), "sections out of order"

    found = tables(output)
    results = [table for table in found if table[0] == RESULT_HEADER]
    matrices = [table for table in found if table[0] == MATRIX_HEADER]
    assert len(results) == 4 and len(matrices) == 1, [table[0] for table in found]

    # Bare app, then 1, 100 and 10,000 origins and 1 and 100 patterns, stock and generated.
    matrix = matrices[0][1:]
    assert len(matrix) == 11, matrix
    for row in matrix:
        for cell in row[1:]:
            assert float(cell.removesuffix(" (405)")) > 0, row

    rows = [row for table in results for row in table[1:]]
    # HTTP ratios are medians of per-round ratios (each round pairs a server with the one
    # without CORS), so they are not the two printed medians divided.
    paired = {row[0] for row in results[2][1:]}
    names = [row[0] for row in rows]
    for name in MEASUREMENTS:
        assert name in names, name
    targets = 0
    for name, median, baseline, ratio, target, verdict in rows:
        value = FIGURE.match(median)
        assert value is not None and float(value.group(1)) > 0, (name, median)
        if baseline == "—":
            assert ratio == "—", name
        else:
            base = BASELINE.match(baseline)
            assert base is not None and base.group(2) == value.group(2), (name, baseline)
            if name in paired:
                assert 0 < float(ratio) < 10, (name, ratio)
            else:
                # The ratio is the two printed figures divided, up to their rounding.
                low_value, high_value = interval(value.group(1))
                low_base, high_base = interval(base.group(1))
                low, high = interval(ratio)
                assert low <= high_value / low_base and high >= low_value / high_base, name
        if target == "—":
            assert verdict == "—", name
        else:
            assert verdict in ("met", "not met"), name
            targets += 1
    met = sum(1 for row in rows if row[5] == "met")
    assert f"Targets met: {met} of {targets}." in output
    assert targets == 7


def test_missing_wrk_stops_the_run_with_the_install_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(RUN), "--quick"],
        cwd=ROOT,
        env={"PATH": str(tmp_path), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "wrk is not installed" in result.stderr
    assert "apt-get install -y wrk" in result.stderr
    assert "Benchmark results" not in result.stdout
