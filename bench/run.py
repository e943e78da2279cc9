"""Benchmarks of the template and of the service it generates, measured side by side.

Run from the repository root (a full run takes about six minutes; ``--quick`` is a
smoke run of well under a minute whose figures are only indicative):

    uv run python bench/run.py
    uv run python bench/run.py --quick

The run renders a service from the template as it is on disk (copied into a temporary
git repository, as ``copier copy`` reads it) with the example answers
(``docs/examples/answers.yml``, or ``--answers FILE``), runs ``uv sync`` in it, and
measures:

a) generating a service (in-process ``copier.run_copy``, warm, and the ``copier copy``
   command) and running the generated test suite;
b) the in-process cost of one request, driven straight into the ASGI app (no network,
   no HTTP client): a bare FastAPI app with the service's /health route, the same app
   with Starlette's CORSMiddleware given a list of origins, and the service's own CORS
   layer built by ``<package>.main.create_app(Settings(...))``, at 1, 100 and 10,000
   origins (the requested origin configured last) and with 1 and 100 subdomain patterns;
c) HTTP throughput through uvicorn (one worker) with and without the CORS layer, and
   for reference with a middleware that only appends the same headers and with stock
   CORSMiddleware, with wrk (``apt-get install -y wrk``) as the load generator;
d) import and start-up time of the generated service against ``import fastapi``;
e) run-time origins (``bench/runtime.py``, on the engine's sample app): the cost per
   request with 1, 1,000 and 100,000 of them against the same origins configured, the
   time from ``corsguard origins add``/``remove`` returning until every worker of two
   uvicorn processes answers accordingly (SQLite and PostgreSQL stores), and request
   latency while the PostgreSQL store is stopped and restarting. It needs the
   PostgreSQL server (``apt-get install -y postgresql``); ``--only runtime`` runs it
   alone, without rendering a service.

Measurements that need the generated code run in the service's own environment
(``bench/_inner.py`` under ``<service>/.venv/bin/python``). Every figure is the median of
repeated runs, and every ratio compares two figures measured in this same run, the
runs of the two sides taking turns. The output is Markdown: docs/benchmarks.md holds
a full run and how to read it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import copier
import runtime
import yaml

# bench/runtime.py (section e) builds its tables from this module's, imported as `run`.
sys.modules.setdefault("run", sys.modules[__name__])

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
TEMPLATE_FILES = ("copier.yml", "template", "validators")
DEFAULT_ANSWERS = ROOT / "docs" / "examples" / "answers.yml"
GIT_IDENTITY = ("-c", "user.name=Template Benchmarks", "-c", "user.email=bench@example.invalid")
WRK_INSTALL = "apt-get update && apt-get install -y wrk"


@dataclass(frozen=True)
class Plan:
    """How many times each figure is measured, and for how long."""

    copy_repeats: int
    cli_repeats: int
    pytest_repeats: int
    asgi_rounds: int
    asgi_batch_seconds: float
    wrk_servers: int  # uvicorn processes per configuration, used in turn
    wrk_rounds: int
    wrk_seconds: int
    wrk_warmup_seconds: int
    import_repeats: int
    warm: bool  # run each command once untimed first


FULL = Plan(
    copy_repeats=10,
    cli_repeats=5,
    pytest_repeats=3,
    asgi_rounds=21,
    asgi_batch_seconds=0.03,
    wrk_servers=3,
    wrk_rounds=24,
    wrk_seconds=2,
    wrk_warmup_seconds=1,
    import_repeats=15,
    warm=True,
)
QUICK = Plan(
    copy_repeats=3,
    cli_repeats=1,
    pytest_repeats=1,
    asgi_rounds=3,
    asgi_batch_seconds=0.003,
    wrk_servers=1,
    wrk_rounds=2,
    wrk_seconds=1,
    wrk_warmup_seconds=0,
    import_repeats=3,
    warm=False,
)


# --- Output ------------------------------------------------------------------------


@dataclass
class Row:
    """One line of a table: a median, optionally compared with a baseline."""

    measurement: str
    value: float
    unit: str
    baseline: str = ""
    baseline_value: float | None = None
    target: str = ""
    meets: Callable[[Row], bool] | None = None
    paired_ratio: float | None = None  # median of per-round ratios, where rounds pair up

    @property
    def ratio(self) -> float | None:
        if self.paired_ratio is not None:
            return self.paired_ratio
        if self.baseline_value is None:
            return None
        return self.value / self.baseline_value

    @property
    def verdict(self) -> bool | None:
        """Whether the target is met; None without a target."""
        return None if self.meets is None else self.meets(self)


def under_a_second(row: Row) -> bool:
    return row.value < 1.0


def ratio_at_most(limit: float) -> Callable[[Row], bool]:
    return lambda row: row.ratio is not None and row.ratio <= limit


def ratio_at_least(limit: float) -> Callable[[Row], bool]:
    return lambda row: row.ratio is not None and row.ratio >= limit


def figure(value: float, unit: str) -> str:
    if unit == "req/s":
        return f"{value:.0f} req/s"
    if unit == "µs":
        return f"{value:.2f} µs"
    return f"{value:.3f} s"


@dataclass
class Section:
    title: str
    note: str
    rows: list[Row] = field(default_factory=list)
    extra: str = ""

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", self.note, ""]
        if self.extra:
            lines += [self.extra, ""]
        lines += [
            "| Measurement | Median | Baseline (median) | Ratio | Target | Target met? |",
            "|---|---:|---|---:|---|---|",
        ]
        for row in self.rows:
            baseline = (
                f"{row.baseline}: {figure(row.baseline_value, row.unit)}"
                if row.baseline_value is not None
                else "—"
            )
            ratio = f"{row.ratio:.3f}" if row.ratio is not None else "—"
            verdict = {True: "met", False: "not met", None: "—"}[row.verdict]
            lines.append(
                f"| {row.measurement} | {figure(row.value, row.unit)} | {baseline} | {ratio} "
                f"| {row.target or '—'} | {verdict} |"
            )
        return "\n".join(lines)


# --- Processes -----------------------------------------------------------------------


def engine_index(directory: Path) -> None:
    """The service installs corsguard as built from this working tree (``.ci/local-index``),
    unless the caller already points uv at an index that serves it."""
    if "UV_INDEX" in os.environ:
        return
    exported = run(["bash", str(ROOT / ".ci" / "local-index"), str(directory)], ROOT)
    name, _, value = exported.strip().removeprefix("export ").partition("=")
    os.environ[name] = value


def clean_environment(**extra: str) -> dict[str, str]:
    """The caller's environment without what would steer the service or its tools.

    ``PYTHONDONTWRITEBYTECODE`` goes too: timed processes read cached bytecode, as on
    an ordinary installation (each command runs once untimed first, which writes it).
    """
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VIRTUAL_ENV", "UV_PROJECT", "PYTEST_", "BENCH_"))
        and key not in ("ENVIRONMENT", "PYTHONDONTWRITEBYTECODE")
        and "CORS_" not in key.upper()
    }
    environment.update(extra)
    return environment


def run(
    command: Sequence[str],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    cpus: frozenset[int] | None = None,
) -> str:
    """Run a command (on ``cpus`` only, if given); stop the benchmark with its output
    when it fails."""
    result = subprocess.run(
        list(command),
        cwd=cwd,
        env=dict(env or clean_environment()),
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=pin(cpus),
    )
    if result.returncode != 0:
        raise SystemExit(
            f"{' '.join(command)} failed in {cwd} (exit {result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result.stdout


def pin(cpus: frozenset[int] | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that keeps the child process on ``cpus``."""
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def split_cpus() -> tuple[frozenset[int] | None, frozenset[int] | None]:
    """One CPU for the server under load, the others for the load generator; with a
    single CPU, no pinning. Pinned, neither process migrates or steals the other's core."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(allowed) < 2:
        return None, None
    return frozenset(allowed[-1:]), frozenset(allowed[:-1])


def medians(
    tasks: Mapping[str, Callable[[int], object]], repeats: int, warm: bool
) -> dict[str, float]:
    """Median wall time in seconds of each task; the tasks take turns in every round.

    Each task gets the round number (to pick a fresh destination, say); with ``warm``,
    each runs once untimed before the rounds.
    """
    if warm:
        for task in tasks.values():
            task(-1)
    samples: dict[str, list[float]] = {name: [] for name in tasks}
    for repeat in range(repeats):
        for name, task in tasks.items():
            started = time.perf_counter()
            task(repeat)
            samples[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in samples.items()}


def warmed(plan: Plan) -> str:
    return "after one untimed run each" if plan.warm else "without an untimed run first"


# --- The template and the service -------------------------------------------------------


def git(cwd: Path, *args: str) -> None:
    run(["git", *GIT_IDENTITY, *args], cwd)


def template_repository(destination: Path) -> Path:
    """A git repository holding the template as it is on disk, committed."""
    destination.mkdir(parents=True)
    for name in TEMPLATE_FILES:
        source = ROOT / name
        if source.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(source, destination / name, ignore=ignore)
        else:
            shutil.copy2(source, destination / name)
    return committed(destination)


def committed(destination: Path) -> Path:
    """Make `destination` a git repository with its files in one commit, as Copier reads
    a template."""
    git(destination, "init", "-q", "-b", "main")
    git(destination, "add", "-A")
    git(destination, "commit", "-q", "-m", "template")
    return destination


def bare_template(destination: Path, files: int) -> Path:
    """A git repository holding a template of `files` plain files and no questions: what
    Copier spends on any template of that size (clone, one git call per file written)."""
    (destination / "template").mkdir(parents=True)
    (destination / "copier.yml").write_text("_subdirectory: template\n", encoding="utf-8")
    for number in range(files):
        (destination / "template" / f"file{number}.txt").write_text(f"{number}\n", encoding="utf-8")
    return committed(destination)


def render(template: Path, destination: Path, answers: Mapping[str, Any]) -> Path:
    """``copier copy --defaults`` with the answers, in this process."""
    copier.run_copy(
        str(template),
        str(destination),
        data=dict(answers),
        defaults=True,
        vcs_ref="HEAD",
        quiet=True,
    )
    return destination


def copier_command() -> list[str]:
    script = Path(sys.executable).with_name("copier")
    return [str(script)] if script.exists() else [sys.executable, "-m", "copier"]


@dataclass(frozen=True)
class Service:
    path: Path
    package: str
    origin: str  # an exact origin of the production profile, sent by the HTTP clients

    @property
    def python(self) -> str:
        return str(self.path / ".venv" / "bin" / "python")

    def inner(self, *args: str) -> Any:
        """Run bench/_inner.py in the service's environment; return its JSON."""
        env = clean_environment(BENCH_PACKAGE=self.package)
        return json.loads(run([self.python, str(BENCH / "_inner.py"), *args], self.path, env))


def production_origin(answers: Mapping[str, Any]) -> str:
    entries = answers.get("cors_origins", {}).get("production", [])
    exact = [entry for entry in entries if "*" not in entry and entry != "null"]
    if not exact:
        raise SystemExit(
            "the answers give no exact origin for production (cors_origins.production); "
            "the HTTP benchmark sends one: use answers like docs/examples/answers.yml"
        )
    return str(exact[0])


# --- a) Generate and test --------------------------------------------------------------


def section_generate(
    plan: Plan, work: Path, template: Path, answers_file: Path, answers: Mapping[str, Any]
) -> tuple[Section, Service]:
    service_path = render(template, work / "service", answers)  # cold: imports, caches
    copies = medians(
        {"copy": lambda repeat: render(template, work / f"copy-{repeat}", answers)},
        plan.copy_repeats,
        plan.warm,
    )
    cli = copier_command()
    copy = [*cli, "copy", "--quiet", "--defaults", "--vcs-ref", "HEAD"]
    files = sum(
        1 for path in service_path.rglob("*") if path.is_file() and ".git" not in path.parts
    )
    one_file = bare_template(work / "bare-1", 1)
    same_size = bare_template(work / f"bare-{files}", files)
    commands = medians(
        {
            "version": lambda repeat: run([*cli, "--version"], work),
            "copy": lambda repeat: run(
                [
                    *copy,
                    "--data-file",
                    str(answers_file),
                    str(template),
                    str(work / f"cli-{repeat}"),
                ],
                work,
            ),
            "one file": lambda repeat: run(
                [*copy, str(one_file), str(work / f"one-{repeat}")], work
            ),
            "same size": lambda repeat: run(
                [*copy, str(same_size), str(work / f"same-{repeat}")], work
            ),
        },
        plan.cli_repeats,
        plan.warm,
    )
    run(["uv", "sync", "--quiet"], service_path)
    suite = medians(
        {
            "collect": lambda repeat: run(
                ["uv", "run", "pytest", "-q", "--collect-only"], service_path
            ),
            "pytest": lambda repeat: run(["uv", "run", "pytest", "-q"], service_path),
        },
        plan.pytest_repeats,
        plan.warm,
    )
    section = Section(
        "a) Generate a service and run its tests",
        f"Wall time. `run_copy`: median of {plan.copy_repeats} after one cold run; commands: "
        f"median of {plan.cli_repeats} (copier) and {plan.pytest_repeats} (pytest) fresh "
        f"processes, {warmed(plan)}.",
        [
            Row(
                "generate, in-process `copier.run_copy` (warm)",
                copies["copy"],
                "s",
                target="< 1 s",
                meets=under_a_second,
            ),
            Row(
                "generate, `copier copy --defaults --data-file answers.yml` command",
                commands["copy"],
                "s",
                baseline="`copier --version`",
                baseline_value=commands["version"],
                target="≤ 1.3x",
                meets=ratio_at_most(1.3),
            ),
            Row(
                "Copier alone: a one-file template without questions",
                commands["one file"],
                "s",
                baseline="`copier --version`",
                baseline_value=commands["version"],
            ),
            Row(
                f"Copier alone: {files} plain files, no questions (as many as a service has)",
                commands["same size"],
                "s",
                baseline="`copier --version`",
                baseline_value=commands["version"],
            ),
            Row(
                "generate (command), against Copier alone with as many files",
                commands["copy"],
                "s",
                baseline=f"{files} plain files, no questions",
                baseline_value=commands["same size"],
            ),
            Row(
                "generated test suite, `uv run pytest -q`",
                suite["pytest"],
                "s",
                baseline="`uv run pytest -q --collect-only`",
                baseline_value=suite["collect"],
            ),
        ],
    )
    service = Service(service_path, str(answers["package_name"]), production_origin(answers))
    return section, service


# --- b) Per request, in process ----------------------------------------------------------


def section_asgi(plan: Plan, service: Service) -> Section:
    us = service.inner("asgi", str(plan.asgi_rounds), str(plan.asgi_batch_seconds))

    def label(config: str) -> str:
        kind, what, count = config.split("/")
        layer = "stock CORSMiddleware" if kind == "stock" else "generated layer"
        noun = "origin" if what == "origins" else "pattern"
        return f"{layer}, {int(count):,} {noun}{'s' if int(count) > 1 else ''}"

    matrix = [
        "| Configuration | simple GET, full app | preflight, full app | simple GET, layer alone |",
        "|---|---:|---:|---:|",
        f"| no CORS layer (bare FastAPI; layer alone: harness only) | {us['bare']['simple']:.2f} "
        f"| {us['bare']['preflight']:.2f} (405) | {us['bare']['layer']:.2f} |",
    ]
    for config, columns in us.items():
        if config != "bare" and not config.startswith("extra/"):
            matrix.append(
                f"| {label(config)} | {columns['simple']:.2f} | {columns['preflight']:.2f} "
                f"| {columns['layer']:.2f} |"
            )

    def compare(
        measurement: str,
        config: str,
        column: str,
        baseline: str,
        target: str = "",
        meets: Callable[[Row], bool] | None = None,
    ) -> Row:
        return Row(
            measurement,
            us[config][column],
            "µs",
            baseline=label(baseline) if baseline != "bare" else "no CORS layer",
            baseline_value=us[baseline][column],
            target=target,
            meets=meets,
        )

    no_more, flat = ratio_at_most(1.05), ratio_at_most(1.10)
    gen, stock = "generated/origins", "stock/origins"
    rows = [
        compare(
            "generated vs stock, 1 origin, simple (layer alone)",
            f"{gen}/1",
            "layer",
            f"{stock}/1",
            "≤ 1.05 (no more cost)",
            no_more,
        ),
        compare(
            "generated vs stock, 1 origin, preflight",
            f"{gen}/1",
            "preflight",
            f"{stock}/1",
            "≤ 1.05 (no more cost)",
            no_more,
        ),
        compare(
            "generated, 10,000 vs 1 origin, simple (layer alone)",
            f"{gen}/10000",
            "layer",
            f"{gen}/1",
            "≤ 1.10 (flat)",
            flat,
        ),
        compare(
            "generated, 10,000 vs 1 origin, preflight",
            f"{gen}/10000",
            "preflight",
            f"{gen}/1",
            "≤ 1.10 (flat)",
            flat,
        ),
        compare(
            "stock, 10,000 vs 1 origin, simple (layer alone)",
            f"{stock}/10000",
            "layer",
            f"{stock}/1",
        ),
        compare(
            "stock, 10,000 vs 1 origin, preflight", f"{stock}/10000", "preflight", f"{stock}/1"
        ),
        compare("stock vs no CORS, 1 origin, simple (full app)", f"{stock}/1", "simple", "bare"),
        compare(
            "generated vs stock, 1 origin, simple (full app)", f"{gen}/1", "simple", f"{stock}/1"
        ),
        compare(
            "generated, 10,000 vs 1 origin, simple (full app)", f"{gen}/10000", "simple", f"{gen}/1"
        ),
        compare(
            "stock, 10,000 vs 1 origin, simple (full app)", f"{stock}/10000", "simple", f"{stock}/1"
        ),
        compare(
            "generated vs stock, 1 pattern, preflight",
            "generated/patterns/1",
            "preflight",
            "stock/patterns/1",
        ),
        compare(
            "generated vs stock, 100 patterns, preflight",
            "generated/patterns/100",
            "preflight",
            "stock/patterns/100",
        ),
        compare(
            "generated, 100 vs 1 pattern, preflight",
            "generated/patterns/100",
            "preflight",
            "generated/patterns/1",
        ),
        compare(
            "stock, 100 vs 1 pattern, preflight",
            "stock/patterns/100",
            "preflight",
            "stock/patterns/1",
        ),
        Row(
            "write protection on vs off, cross-site POST from an allowed origin (layer alone)",
            us["extra/write/on"]["layer"],
            "µs",
            baseline="the same with CORS_CROSS_ORIGIN_PROTECTION=false",
            baseline_value=us["extra/write/off"]["layer"],
        ),
        Row(
            "write protection on vs off, cross-site GET (layer alone)",
            us["extra/read/on"]["layer"],
            "µs",
            baseline="the same with CORS_CROSS_ORIGIN_PROTECTION=false",
            baseline_value=us["extra/read/off"]["layer"],
        ),
        *(
            Row(
                f"generated layer, refused {size // 1024} KiB Origin, pattern profile",
                us[f"extra/long/{size}/generated"]["layer"],
                "µs",
                baseline="stock CORSMiddleware with its regex",
                baseline_value=us[f"extra/long/{size}/stock"]["layer"],
            )
            for size in (1024, 65536, 262144)
        ),
    ]
    return Section(
        "b) In-process cost per request (ASGI call, no network)",
        f"µs per request, median of {plan.asgi_rounds} rounds in which every configuration "
        "takes its turn. The requested origin is the last one configured (patterns: a host "
        "under the last pattern). Full app: FastAPI with the service's /health route. "
        "Stock: Starlette's CORSMiddleware given a list of origins, or one regex for the "
        "patterns. Generated layer: the middleware that `create_app(Settings(...))` "
        "installs. Layer alone: an app's middleware around a no-op ASGI app, which leaves "
        "out routing and the route: what the CORS layer itself costs. The no-more-cost "
        "and flatness targets are judged on the layer alone and on preflights, which the "
        "CORS layer answers itself.",
        rows,
        extra="\n".join(matrix),
    )


# --- c) HTTP throughput ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get(url: str, origin: str) -> tuple[int, list[tuple[str, str]]]:
    """The status and the CORS headers (``Access-Control-*`` and ``Vary``) of a GET."""
    request = urllib.request.Request(url, headers={"Origin": origin})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            status, headers = response.status, response.headers
    except urllib.error.HTTPError as error:
        status, headers = error.code, error.headers
    cors = [
        (name.lower(), value)
        for name, value in headers.items()
        if name.lower().startswith("access-control-") or name.lower() == "vary"
    ]
    return status, cors


@contextmanager
def uvicorn(
    service: Service,
    app: list[str],
    env: Mapping[str, str],
    log: Path,
    allow: str | None,
    cpus: frozenset[int] | None,
) -> Iterator[str]:
    """A one-worker uvicorn serving ``app``; yields the /health URL once it answers as
    expected (``allow``: the access-control-allow-origin the test origin must get)."""
    port = free_port()
    command = [service.python, "-m", "uvicorn", *app, "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", "1", "--no-access-log", "--log-level", "warning"]
    url = f"http://127.0.0.1:{port}/health"
    with log.open("w") as output:
        server = subprocess.Popen(
            command,
            cwd=service.path,
            env=dict(env),
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=pin(cpus),
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if server.poll() is not None:
                raise SystemExit(f"{' '.join(command)} exited:\n{log.read_text()[-3000:]}")
            try:
                status, cors = get(url, service.origin)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{url} did not answer within 30 s") from None
                time.sleep(0.05)
        header = dict(cors).get("access-control-allow-origin")
        if status != 200 or header != allow:
            raise SystemExit(
                f"{url} answered {status} with access-control-allow-origin {header!r} for "
                f"Origin {service.origin}, expected 200 and {allow!r}"
            )
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def wrk(url: str, origin: str, seconds: int, cpus: frozenset[int] | None) -> float:
    command = ["wrk", "-t1", "-c16", f"-d{seconds}s", "-H", f"Origin: {origin}", url]
    output = run(command, Path.cwd(), cpus=cpus)
    if "Non-2xx" in output or "Socket errors" in output:
        raise SystemExit(f"wrk saw failed requests against {url}:\n{output}")
    match = re.search(r"Requests/sec:\s*([0-9.]+)", output)
    if match is None:
        raise SystemExit(f"no Requests/sec in wrk's output:\n{output}")
    return float(match.group(1))


def section_http(plan: Plan, service: Service, work: Path) -> Section:
    server_cpus, load_cpus = split_cpus()
    inner = ["--app-dir", str(BENCH), "--factory"]
    inner_env = clean_environment(BENCH_PACKAGE=service.package, BENCH_ORIGIN=service.origin)
    generated_env = clean_environment(ENVIRONMENT="production")
    # name -> (uvicorn app, environment, the Access-Control-Allow-Origin it must send)
    configurations: dict[str, tuple[list[str], Mapping[str, str], str | None]] = {
        "without": ([*inner, "_inner:bare_app"], inner_env, None),
        "again": ([*inner, "_inner:bare_app"], inner_env, None),
        "with": ([f"{service.package}.main:app"], generated_env, service.origin),
        "headers": ([*inner, "_inner:headers_only_app"], inner_env, service.origin),
        "stock": ([*inner, "_inner:stock_server_app"], inner_env, service.origin),
    }
    urls: dict[str, list[str]] = {name: [] for name in configurations}
    samples: dict[str, list[float]] = {name: [] for name in configurations}
    sent: list[tuple[str, str]] = []
    with ExitStack() as servers:
        for name, (app, env, allow) in configurations.items():
            if name == "headers":
                # The headers the generated service sends to the origin, appended by a
                # middleware that decides nothing: the cost of the headers themselves.
                _, sent = get(urls["with"][0], service.origin)
                env = {**env, "BENCH_HEADERS": json.dumps(sent)}
            for index in range(plan.wrk_servers):
                log = work / f"uvicorn-{name}-{index}.log"
                server = uvicorn(service, app, env, log, allow, server_cpus)
                urls[name].append(servers.enter_context(server))
        if plan.wrk_warmup_seconds:
            for url in [url for group in urls.values() for url in group]:
                wrk(url, service.origin, plan.wrk_warmup_seconds, load_cpus)
        for round_number in range(plan.wrk_rounds):
            order = list(configurations)
            random.Random(round_number).shuffle(order)
            for name in order:
                url = urls[name][round_number % plan.wrk_servers]
                samples[name].append(wrk(url, service.origin, plan.wrk_seconds, load_cpus))
    rate = {name: statistics.median(values) for name, values in samples.items()}

    def against_without(measurement: str, name: str, **target: Any) -> Row:
        paired = [mine / base for mine, base in zip(samples[name], samples["without"], strict=True)]
        return Row(
            measurement,
            rate[name],
            "req/s",
            baseline="without CORS layer",
            baseline_value=rate["without"],
            paired_ratio=statistics.median(paired),
            **target,
        )

    pinned = (
        f" The servers run on CPU {min(server_cpus)}, wrk on CPU "
        f"{', '.join(str(cpu) for cpu in sorted(load_cpus))}."
        if server_cpus and load_cpus
        else ""
    )
    names = ", ".join(f"`{name}`" for name, _ in sent)
    processes = (
        f"{plan.wrk_servers} uvicorn processes per configuration, used in turn (one process "
        "can run a few per cent faster or slower than another running the same app)"
        if plan.wrk_servers > 1
        else "one uvicorn process per configuration"
    )
    return Section(
        "c) HTTP throughput through uvicorn (one worker, 127.0.0.1)",
        f"`wrk -t1 -c16 -d{plan.wrk_seconds}s -H 'Origin: {service.origin}'` on GET /health; "
        f"requests/s, median of {plan.wrk_rounds} rounds; in each round every configuration "
        f"runs once, in a shuffled order; {processes}. A ratio is the median of the "
        "per-round ratios to the server without CORS. With CORS: the generated `main:app` "
        "with `ENVIRONMENT=production`, whose profile allows that origin. Without: the same "
        "/health route in a bare FastAPI app; the second set of those servers shows the "
        "measurement's own noise. Headers only: the bare app with a middleware that "
        f"appends the headers the generated service sends to the origin ({names}) and "
        "decides nothing, what any CORS layer that sends them costs at least. Stock: the "
        f"bare app with Starlette's CORSMiddleware allowing the origin.{pinned}",
        [
            Row("without CORS layer", rate["without"], "req/s"),
            against_without(
                "with the generated CORS layer",
                "with",
                target="≥ 0.95",
                meets=ratio_at_least(0.95),
            ),
            against_without("without CORS layer, second servers (noise check)", "again"),
            against_without("headers only, no decision (reference)", "headers"),
            against_without("with stock CORSMiddleware (reference)", "stock"),
        ],
    )


# --- d) Import and start-up ----------------------------------------------------------------


def section_imports(plan: Plan, service: Service) -> Section:
    def python(code: str) -> Callable[[int], object]:
        return lambda repeat: run([service.python, "-c", code], service.path)

    times = medians(
        {
            "pass": python("pass"),
            "fastapi": python("import fastapi"),
            "service": python(f"import {service.package}.main"),
        },
        plan.import_repeats,
        plan.warm,
    )
    return Section(
        "d) Import and start-up of the generated service",
        f"Wall time of a fresh `python -c ...` in the service's environment, median of "
        f"{plan.import_repeats}, {warmed(plan)}. Importing "
        "`main` builds the app: settings loaded and validated, CORS layer installed.",
        [
            Row("interpreter start-up, `python -c pass`", times["pass"], "s"),
            Row(
                "`import fastapi`",
                times["fastapi"],
                "s",
                baseline="`python -c pass`",
                baseline_value=times["pass"],
            ),
            Row(
                f"`import {service.package}.main` (app built)",
                times["service"],
                "s",
                baseline="`import fastapi`",
                baseline_value=times["fastapi"],
            ),
        ],
    )


# --- Machine and main -----------------------------------------------------------------------


def machine(service: Service, load: float) -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    cpu = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    meminfo = Path("/proc/meminfo").read_text(encoding="utf-8", errors="replace")
    memory = re.search(r"^MemTotal:\s*(\d+) kB", meminfo, re.MULTILINE)
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    service_versions = service.inner("versions")
    packages = ", ".join(
        f"{name} {value}" for name, value in service_versions.items() if name != "python"
    )
    return "\n".join(
        [
            "### Machine",
            "",
            f"- CPUs (nproc): {os.cpu_count()}; CPU: {cpu.group(1).strip() if cpu else 'unknown'}",
            f"- Memory: {int(memory.group(1)) / 1024 / 1024:.1f} GiB" if memory else "- Memory: ?",
            f"- OS: {platform.platform()}; load average at start: {load:.2f}",
            f"- Python {platform.python_version()} (template), "
            f"{service_versions['python']} (service); copier {version('copier')}; "
            f"{run(['uv', '--version'], ROOT).strip()}; {wrk_version.stdout.splitlines()[0]}",
            f"- Service packages: {packages}",
        ]
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument(
        "--answers", type=Path, default=DEFAULT_ANSWERS, help="answers file (YAML) to render"
    )
    parser.add_argument(
        "--only",
        choices=["runtime"],
        help="run one section alone: runtime (e, run-time origins; no service is rendered)",
    )
    options = parser.parse_args(argv)
    if options.only is None and shutil.which("wrk") is None:
        raise SystemExit(
            f"wrk is not installed; the HTTP throughput benchmark uses it as its load "
            f"generator. Install it with: {WRK_INSTALL}"
        )
    if options.only is None and not options.answers.is_file():
        raise SystemExit(
            f"answers file {options.answers} not found: pass --answers FILE "
            "(see docs/examples/answers.yml)"
        )
    problem = runtime.missing()
    if problem:
        raise SystemExit(problem)
    plan = QUICK if options.quick else FULL
    runtime_plan = runtime.QUICK if options.quick else runtime.FULL
    started, load = time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="fastapi-cors-bench-") as directory:
        work = Path(directory)

        def section_runtime() -> Any:
            return runtime.section(
                runtime_plan, plan.asgi_rounds, plan.asgi_batch_seconds, work / "runtime"
            )

        if options.only == "runtime":
            sections = [section_runtime()]
            header = runtime.machine(load)
        else:
            answers = yaml.safe_load(options.answers.read_text(encoding="utf-8"))
            engine_index(work / "index")
            template = template_repository(work / "template")
            generate, service = section_generate(plan, work, template, options.answers, answers)
            sections = [
                generate,
                section_asgi(plan, service),
                section_http(plan, service, work),
                section_imports(plan, service),
                section_runtime(),
            ]
            header = machine(service, load)
    rows = [row for section in sections for row in section.rows if row.verdict is not None]
    met = sum(1 for row in rows if row.verdict)
    mode = "quick (smoke run, indicative only)" if options.quick else "full"
    print(f"## Benchmark results ({mode})\n")
    print(header, end="\n\n")
    for section in sections:
        print(section.markdown(), end="\n\n")
    print(
        f"Targets met: {met} of {len(rows)}. Run time: {time.perf_counter() - started:.0f} s; "
        f"load average at the end: {os.getloadavg()[0]:.2f}."
    )


if __name__ == "__main__":
    main()
