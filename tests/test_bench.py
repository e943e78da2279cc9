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
    "### e) Run-time origins (the engine's sample app)",
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
RUNTIME_MATRIX_HEADER = [
    "Origins",
    "static, simple",
    "run-time, simple",
    "static, preflight",
    "run-time, preflight",
]
CHANGES_HEADER = ["Change", "Changes", "Median", "p99", "Max", "Target", "Target met?"]
OUTAGE_HEADER = [
    "Phase",
    "Requests",
    "Median",
    "p99",
    "Max",
    "p99 vs store up",
    "Target",
    "Target met?",
    "Statuses",
]
FAULTS_HEADER = ["Fault", "What the service did", "What it logged", "What a browser saw"]
RUNTIME_RATIO = re.compile(
    r"^run-time vs static, (\d[\d,]*) origins?, (simple \(layer alone\)|preflight)$"
)
RUNTIME_FLAT = re.compile(
    r"^run-time, (\d[\d,]*) origins vs 1, (simple \(layer alone\)|preflight)$"
)
CHANGES = [
    f"`corsguard origins {verb}` returned → every worker {effect} it, {store}"
    for store in ("SQLite", "PostgreSQL")
    for verb, effect in (("add", "allows"), ("remove", "refuses"))
]
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
    assert len(results) == 5 and len(matrices) == 1, [table[0] for table in found]
    runtime_targets = check_runtime_section(output, found, results[4])

    # Bare app, then 1, 100 and 10,000 origins and 1 and 100 patterns, stock and generated.
    matrix = matrices[0][1:]
    assert len(matrix) == 11, matrix
    for row in matrix:
        for cell in row[1:]:
            assert float(cell.removesuffix(" (405)")) > 0, row

    rows = [row for table in results for row in table[1:]]
    # HTTP ratios and section e's are medians of per-round ratios (each round pairs a
    # server with the one without CORS, a run-time case with its static twin), so they
    # are not the two printed medians divided.
    paired = {row[0] for table in (results[2], results[4]) for row in table[1:]}
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
    met += sum(1 for verdict in runtime_targets if verdict == "met")
    assert f"Targets met: {met} of {targets + len(runtime_targets)}." in output
    # Sections a-d: 7 targets; e: 8 per request (in the results table), 4 changes, 2 outage.
    assert targets == 15 and len(runtime_targets) == 6


def check_runtime_section(
    output: str, found: list[list[list[str]]], results: list[list[str]]
) -> list[str]:
    """Section e: every ratio present and numeric, every latency a figure; returns the
    verdicts of the targets outside its results table."""
    section = output[output.index(SECTIONS[-1]) :]
    assert "Targets met:" in section  # the last section printed
    [matrix] = [table for table in found if table[0] == RUNTIME_MATRIX_HEADER]
    sizes = [row[0] for row in matrix[1:]]
    assert len(sizes) == 3 and sizes[0] == "1 origin", sizes
    for row in matrix[1:]:
        assert all(float(cell) > 0 for cell in row[1:]), row

    names = [row[0] for row in results[1:]]
    ratios = [RUNTIME_RATIO.match(name) for name in names]
    flat = [RUNTIME_FLAT.match(name) for name in names]
    assert sum(1 for match in ratios if match) == 6, names
    assert sum(1 for match in flat if match) == 2, names
    for row in results[1:]:
        assert 0 < float(row[3]) < 10, row  # the ratio, numeric
        assert row[5] in ("met", "not met"), row

    [changes] = [table for table in found if table[0] == CHANGES_HEADER]
    assert [row[0] for row in changes[1:]] == CHANGES
    verdicts = []
    for row in changes[1:]:
        assert int(row[1]) >= 1, row
        for cell in row[2:5]:
            value = re.fullmatch(r"(\d+\.\d{3}) s", cell)
            assert value is not None and float(value.group(1)) < 5, row  # within the bound
        assert float(row[2][:-2]) <= float(row[3][:-2]) <= float(row[4][:-2]), row
        verdicts.append(row[6])

    [outage] = [table for table in found if table[0] == OUTAGE_HEADER]
    assert [row[0] for row in outage[1:]] == ["store up", "store stopped", "store restarting"]
    for row in outage[1:]:
        requests = int(row[1])
        for cell in row[2:5]:
            assert re.fullmatch(r"\d+\.\d{2} ms", cell) and float(cell[:-3]) > 0, row
        assert row[8] == f"200: {requests}", row  # never a 5xx while the store is down
    for row in outage[2:]:
        assert 0 < float(row[5]) < 100, row
        verdicts.append(row[7])
    assert all(verdict in ("met", "not met") for verdict in verdicts), verdicts

    [faults] = [table for table in found if table[0] == FAULTS_HEADER]
    assert len(faults) == 6, faults  # five faults
    assert all(all(cell for cell in row) for row in faults), faults
    return verdicts


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
