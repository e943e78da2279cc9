"""Journey 9: verify a deployment. ``cors check`` through a real nginx from Debian.

A service generated from the example answers runs with uvicorn on 127.0.0.1 under its
production profile; for each case an nginx of its own (a temporary configuration, a free
port on 127.0.0.1, no master process, no daemon) stands in front of it, configured
correctly or with one of the faults that block browsers in production although the
service is right: a proxy that adds its own Access-Control-Allow-Origin, a cache that
ignores Vary: Origin, a redirected preflight, an auth layer or a method rule that
answers OPTIONS, a proxy that drops the Origin request header, a response header or
every Access-Control-* response header, a proxy that rewrites Host. One more case puts a
correct nginx in front and checks another policy than the service runs (settings changed,
not deployed): the check must tell it from a proxy that strips the headers. The check
must pass (exit 0) through the correct ones and name each fault (exit 1) through the
others. Every request goes to 127.0.0.1; the check sends at most ten.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import EXAMPLE_ANSWERS_FILE, ROOT, render, run
from .test_deploy import started as deploy_started

EXAMPLE = yaml.safe_load(EXAMPLE_ANSWERS_FILE.read_text(encoding="utf-8"))
PACKAGE = EXAMPLE["package_name"]
ENVIRONMENT = "production"
ALLOWED = EXAMPLE["cors_origins"][ENVIRONMENT][0]
NGINX_INSTALL = "apt-get update && apt-get install -y nginx"
JQ_INSTALL = "apt-get update && apt-get install -y jq"
# Four origins (one allowed, three refused) x 2 and the redirect probe; one more request
# past any cache when an allowed origin's answer lacks its header.
HEALTHY_REQUESTS = 9
MAX_REQUESTS = 10
START_TIMEOUT_S = 30.0
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only

# The nginx configuration; each case fills in the blanks. Temporary paths live under
# the case's own directory, so that nginx needs no root and writes nothing elsewhere.
NGINX_CONF = """\
daemon off;
master_process off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    {http}
    server {{
        listen 127.0.0.1:{port};
        {server}
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version 1.1;
            proxy_set_header Host {host};
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            {location}
        }}
    }}
}}
"""
CACHE_ZONE = "proxy_cache_path {root}/cache keys_zone=api:1m;"
# Cache /health for a minute although the service sends no Cache-Control, as a CDN
# configured to cache everything would.
CACHE = "proxy_cache api; proxy_cache_valid 200 1m; proxy_ignore_headers Cache-Control Expires;"
# Every Access-Control-* response header the service can send, hidden by nginx.
CORS_RESPONSE_HEADERS = (
    "Allow-Origin",
    "Allow-Credentials",
    "Allow-Methods",
    "Allow-Headers",
    "Expose-Headers",
    "Max-Age",
    "Allow-Private-Network",
)
HIDE_EVERY_CORS_HEADER = " ".join(
    f"proxy_hide_header Access-Control-{name};" for name in CORS_RESPONSE_HEADERS
)
# The policy checked when the deployment runs another: settings.toml moved production to
# a new frontend origin, and the service was not redeployed (it still allows ALLOWED).
NEW_ORIGIN = "https://shop.example.com"


@pytest.fixture(scope="session")
def nginx() -> Path:
    found = shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx", "/usr/bin/nginx") if Path(path).is_file()), None
    )
    if found is None:
        pytest.fail(f"nginx is missing: install it with `{NGINX_INSTALL}` (as root)")
    return Path(found)


# case -> (the blanks of NGINX_CONF, the faults cors check must name). Two blanks are not
# nginx's: "prime" (a path requested once before the check, without Origin) and
# "checked" (VARIABLE=value, set for the check only: it checks another policy).
CASES: dict[str, tuple[dict[str, str], set[str]]] = {
    "correct": ({}, set()),
    "cache-honouring-vary": ({"http": CACHE_ZONE, "location": CACHE}, set()),
    "proxy-adds-allow-origin": (
        {"location": "add_header Access-Control-Allow-Origin * always;"},
        {"multiple-values", "proxy-cors"},
    ),
    "cache-ignores-vary": (
        {"http": CACHE_ZONE, "location": CACHE + " proxy_ignore_headers Vary;"},
        {"shared-cache"},
    ),
    # The same cache, first filled by a request without Origin (a monitor polling /health).
    "cache-ignores-vary-primed": (
        {"http": CACHE_ZONE, "location": CACHE + " proxy_ignore_headers Vary;", "prime": "/health"},
        {"shared-cache"},
    ),
    "redirect-to-https": ({"server": "return 301 https://$http_host$request_uri;"}, {"redirect"}),
    "redirect-trailing-slash": (
        {"server": "location = /health { return 308 /health/; }"},
        {"redirect"},
    ),
    "auth-before-service": (
        {"location": 'auth_basic "orders"; auth_basic_user_file {root}/htpasswd;'},
        {"auth-before-cors"},
    ),
    "options-refused": (
        {"location": "if ($request_method = OPTIONS) { return 405; }"},
        {"options-refused"},
    ),
    "origin-not-forwarded": (
        {"location": 'proxy_set_header Origin "";'},
        {"origin-not-forwarded"},
    ),
    "response-header-stripped": (
        {"location": "proxy_hide_header Access-Control-Allow-Origin;"},
        {"header-stripped"},
    ),
    "every-cors-header-stripped": (
        {"location": HIDE_EVERY_CORS_HEADER},
        {"cors-headers-stripped"},
    ),
    "another-policy-deployed": (
        {"checked": f"CORS_ALLOW_ORIGINS={NEW_ORIGIN}"},
        {"policy-differs"},
    ),
    "host-rewritten": ({"host": "backend.internal:8000"}, {"host-rewritten"}),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment(**extra: str) -> dict[str, str]:
    """The test's environment without the service's variables or proxies: every request
    here goes to 127.0.0.1."""
    kept = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VIRTUAL_ENV", "UV_PROJECT", "PYTEST_"))
        and key not in ("ENVIRONMENT", "LOG_LEVEL")
        and "CORS_" not in key
        and not key.lower().endswith("_proxy")
    }
    return {**kept, **extra}


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, f"exited with {process.returncode}:\n{log.read_text()}"
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {START_TIMEOUT_S} s")


@contextmanager
def started(
    command: list[str], port: int, log: Path, cwd: Path, env: Mapping[str, str]
) -> Iterator[None]:
    """Run ``command`` in its own process group until the block ends, once it listens on
    ``port``; the group is stopped as tests/test_deploy.py stops its servers."""
    with deploy_started(command, cwd, env, log) as process:
        wait_for_port(port, process, log)
        yield


@pytest.fixture(scope="module")
def service(
    template_repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, int]]:
    """The generated service under its production profile, on 127.0.0.1."""
    project = render(template_repo, tmp_path_factory.mktemp("proxy") / "orders-api", EXAMPLE)
    run(project, "uv", "sync", "--quiet")
    port = free_port()
    command = ["uv", "run", "--no-sync", "uvicorn", f"{PACKAGE}.main:app"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    log = project / "uvicorn.log"
    with started(command, port, log, project, environment(ENVIRONMENT=ENVIRONMENT)):
        yield project, port


@contextmanager
def nginx_in_front(
    nginx: Path, root: Path, upstream: int, blanks: Mapping[str, str]
) -> Iterator[int]:
    """An nginx on a free port of 127.0.0.1 that proxies to ``upstream``."""
    port = free_port()
    root.mkdir(exist_ok=True)
    values = {"http": "", "server": "", "location": "", "host": "$http_host", **blanks}
    prime = values.pop("prime", "")
    values.pop("checked", None)
    values = {key: value.replace("{root}", str(root)) for key, value in values.items()}
    config = root / "nginx.conf"
    config.write_text(NGINX_CONF.format(root=root, port=port, upstream=upstream, **values))
    (root / "htpasswd").write_text("orders:{PLAIN}not-sent-by-browsers\n")
    command = [str(nginx), "-p", str(root), "-c", str(config), "-e", str(root / "error.log")]
    with started(command, port, root / "nginx.out", root, environment()):
        if prime:
            request = urllib.request.Request(f"http://127.0.0.1:{port}{prime}")
            with DIRECT.open(request, timeout=5) as response:
                assert response.status == 200
        yield port


def cors_check(
    project: Path, port: int, *options: str, variables: Mapping[str, str] | None = None
) -> tuple[int, dict[str, Any], float]:
    """Run ``cors check --json`` as a user would, with ``variables`` set for it (none of
    the service's own); its exit status, report and duration."""
    command = ["uv", "run", "--no-sync", "corsguard", "check", f"http://127.0.0.1:{port}"]
    command += ["--env", ENVIRONMENT, "--timeout", "5", "--json", *options]
    start = time.monotonic()
    env = environment(**(variables or {}))
    result = subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=120
    )
    seconds = time.monotonic() - start
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return result.returncode, json.loads(result.stdout), seconds


@pytest.mark.slow
def test_check_agrees_with_the_service_itself(service: tuple[Path, int]) -> None:
    project, port = service
    status, report, seconds = cors_check(project, port)
    print(f"cors check against the service itself: {seconds:.2f} s, {report['seconds']} s inside")
    assert (status, report["findings"]) == (0, []), report
    assert report["requests"] == HEALTHY_REQUESTS
    allowed = [row for row in report["checked"] if row["policy"] == "allowed"]
    assert {row["origin"] for row in allowed} == {ALLOWED}


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_check_through_nginx(
    service: tuple[Path, int], nginx: Path, tmp_path: Path, case: str
) -> None:
    project, upstream = service
    blanks, faults = CASES[case]
    checked = blanks.get("checked")
    variables = dict([checked.split("=", 1)]) if checked else None
    with nginx_in_front(nginx, tmp_path, upstream, blanks) as port:
        status, report, seconds = cors_check(project, port, variables=variables)
    named = {finding["fault"] for finding in report["findings"]}
    print(f"{case}: exit {status}, {sorted(named)}, {seconds:.2f} s")
    assert named == faults, json.dumps(report, indent=2)
    assert status == (1 if faults else 0)
    assert report["agrees"] is (not faults)
    assert report["requests"] <= MAX_REQUESTS
    for finding in report["findings"]:
        assert finding["cause"] and finding["fix"] and finding["browser"], finding


@pytest.mark.slow
def test_a_stripping_proxy_is_told_from_another_policy(
    service: tuple[Path, int], nginx: Path, tmp_path: Path
) -> None:
    """Both leave the allowed origin's answers without Access-Control-Allow-Origin, with
    the service's Vary: Origin. Only the proxy leaves the service's 200 to the preflight;
    the other policy answers it 400 and the fix is not the proxy's."""
    project, upstream = service
    strip, _ = CASES["every-cors-header-stripped"]
    with nginx_in_front(nginx, tmp_path / "strip", upstream, strip) as port:
        _, stripped, _ = cors_check(project, port)
    preflight, request = stripped["findings"][0], stripped["findings"][1]
    assert preflight["request"] == f"preflight PUT /health from {ALLOWED}"
    assert preflight["got"].startswith("200, no Access-Control-* header, Vary: Origin, ")
    assert request["got"] == "200, no Access-Control-* header, Vary: Origin"
    for finding in stripped["findings"]:
        assert "proxy_hide_header" in finding["cause"] and "more_clear_headers" in finding["fix"]
        assert "Not another policy" in finding["cause"]
    with nginx_in_front(nginx, tmp_path / "other", upstream, {}) as port:
        _, other, _ = cors_check(project, port, variables={"CORS_ALLOW_ORIGINS": NEW_ORIGIN})
    [refused, *_] = other["findings"]
    assert refused["request"] == f"preflight PUT /health from {NEW_ORIGIN}"
    assert refused["got"] == "400, no Access-Control-Allow-Origin"
    assert all(finding["fault"] == "policy-differs" for finding in other["findings"])
    assert all("corsguard show" in finding["fix"] for finding in other["findings"])
    assert all("proxy_hide_header" not in finding["cause"] for finding in other["findings"])


@pytest.mark.slow
def test_check_stops_at_the_first_request_without_an_answer(service: tuple[Path, int]) -> None:
    project, _ = service
    status, report, _ = cors_check(project, free_port())
    assert status == 1
    assert report["requests"] == 1, "no retries, no further requests"
    assert [finding["fault"] for finding in report["findings"]] == ["unreachable"]
    assert "retries none" in report["stopped"]


# --- Where the generated project shows and runs the check ------------------------------


def deployment_step(project: Path) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The workflow's manual trigger inputs, its deployment job, and the check's script."""
    workflow = yaml.safe_load((project / ".github" / "workflows" / "ci.yml").read_text())
    inputs = workflow[True]["workflow_dispatch"]["inputs"]  # YAML reads the key 'on' as True
    job = workflow["jobs"]["deployment"]
    [script] = [step["run"] for step in job["steps"] if "corsguard check" in step.get("run", "")]
    return inputs, job, script


def test_readme_and_workflow_show_the_check(template_repo: Path, tmp_path: Path) -> None:
    project = render(template_repo, tmp_path / "orders-api", EXAMPLE)
    readme = (project / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Debug a blocked origin", 1)[1].split("\n## ", 1)[0]
    assert "uv run corsguard check https://api.example.com --env production" in section
    for option in ("--path", "--timeout", "--json"):
        assert option in section, option
    inputs, job, script = deployment_step(project)
    assert job["if"] == "github.event_name == 'workflow_dispatch'"
    assert inputs["url"]["required"] is True
    assert inputs["environment"]["options"] == EXAMPLE["environments"]
    assert inputs["environment"]["default"] == ENVIRONMENT
    assert "uv run --no-dev corsguard check" in script


@pytest.mark.slow
def test_the_workflow_step_passes_and_fails_with_the_deployment(
    service: tuple[Path, int], nginx: Path, tmp_path: Path
) -> None:
    """The deployment job's script, as GitHub runs it, with a manual trigger's event file."""
    project, upstream = service
    _, _, script = deployment_step(project)
    if shutil.which("jq") is None:
        pytest.fail(f"jq is missing (GitHub's runners have it): install it with `{JQ_INSTALL}`")

    def run_step(port: int) -> subprocess.CompletedProcess[str]:
        event = tmp_path / f"event-{port}.json"
        inputs = {"url": f"http://127.0.0.1:{port}", "environment": ENVIRONMENT}
        event.write_text(json.dumps({"inputs": inputs}))
        return subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            cwd=project,
            env=environment(GITHUB_EVENT_PATH=str(event)),
            capture_output=True,
            text=True,
            timeout=120,
        )

    healthy = run_step(upstream)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "AGREES" in healthy.stdout
    blanks, _ = CASES["proxy-adds-allow-origin"]
    with nginx_in_front(nginx, tmp_path / "nginx", upstream, blanks) as port:
        faulty = run_step(port)
    assert faulty.returncode == 1, faulty.stdout + faulty.stderr
    assert "\nmultiple-values: " in faulty.stdout


# --- The deployment page tells what the check does --------------------------------------

CHECK_SOURCE = ROOT / "engine" / "src" / "corsguard" / "check.py"
DEPLOYMENT_PAGE = ROOT / "docs" / "deployment.md"


def page_table(heading: str) -> list[list[str]]:
    """The rows of the first table after ``heading`` in docs/deployment.md, as cells."""
    text = DEPLOYMENT_PAGE.read_text(encoding="utf-8").split(heading, 1)[1]
    lines = text.split("\n|", 1)[1].split("\n\n", 1)[0].splitlines()
    rows = ["|" + lines[0], *lines[2:]]  # without the separator line
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows[1:]]


def test_deployment_page_lists_every_fault_the_check_names() -> None:
    source = CHECK_SOURCE.read_text(encoding="utf-8")
    named = set(re.findall(r'(?:finding\(|Finding\(|fault = )\s*"([a-z]+(?:-[a-z]+)*)"', source))
    assert "multiple-values" in named and "unreachable" in named, named
    listed = {
        fault
        for row in page_table("The faults it names:")
        for fault in re.findall(r"`([a-z]+(?:-[a-z]+)*)`", row[0])
    }
    assert listed == named


def test_deployment_page_measures_every_nginx_case() -> None:
    rows = page_table("### Measured: the faults, as a browser and `corsguard check` see them")
    says = " ".join(row[2] for row in rows)
    for _, faults in CASES.values():
        for fault in faults:
            assert f"`{fault}`" in says, fault
    assert {row[3] for row in rows} == {"0", "1"}
