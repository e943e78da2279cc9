"""``cors check``: a deployment that answers as the policy says passes; each fault of what
stands in front of it (proxy, cache, auth layer) is named, with its cause and fix.

The faults are played by a transport that stands where a proxy would: it forwards each
request to the app in-process and changes the request or the answer on the way. One test
serves the app with uvicorn on 127.0.0.1 and runs the command itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from .service import (
    AGREES,
    BAD_INPUT,
    DISAGREES,
    MAX_ALLOWED,
    MAX_REFUSED,
    SERVICE,
    UNRELATED_ORIGIN,
    Report,
    Settings,
    check,
    create_app,
    main,
)

pytestmark = pytest.mark.usefixtures("clean_environment")

ENVIRONMENT = next(iter(SERVICE.profiles))
URL = "http://api.example.test"
ALLOWED = "https://app.example.com"
PATTERN_SAMPLE = "https://cors-check.preview.example.com"
# Preflight and GET per origin, the redirect probe, one request past any cache.
MOST_REQUESTS = 2 * (MAX_ALLOWED + MAX_REFUSED) + 2

Forward = Callable[[httpx.Request], httpx.Response]
Fault = Callable[[httpx.Request, Forward], httpx.Response]


@pytest.fixture(autouse=True)
def policy(clean_environment: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """One policy for every test here, whatever settings.toml says; no proxy variables:
    the requests of these tests go to the app itself or to 127.0.0.1."""
    for name in [name for name in os.environ if name.lower().endswith("_proxy")]:
        monkeypatch.delenv(name)
    variables = {
        "cors_allow_origins": f"{ALLOWED},https://*.preview.example.com",
        "cors_allow_credentials": "true",
        "cors_allow_methods": "GET,POST,PUT",
        "cors_allow_headers": "Authorization,Content-Type",
        "cors_expose_headers": "X-Request-ID",
    }
    for field, value in variables.items():
        monkeypatch.setenv(Settings.env_name(field), value)


def settings() -> Settings:
    return Settings.load(environment=ENVIRONMENT)


class InFront(httpx.BaseTransport):
    """What stands in front of the service: passes each request to ``app`` in-process,
    through ``fault``; counts the requests."""

    def __init__(self, app: FastAPI, fault: Fault | None = None, scheme: str = "") -> None:
        self.app = app
        self.fault = fault
        self.scheme = scheme  # the scheme the service sees; "": the one browsers use
        self.requests = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.fault is None:
            return self.forward(request)
        return self.fault(request, self.forward)

    def forward(self, request: httpx.Request) -> httpx.Response:
        url = request.url.copy_with(scheme=self.scheme) if self.scheme else request.url

        async def ask() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport) as client:
                response = await client.request(request.method, url, headers=request.headers)
                return httpx.Response(response.status_code, headers=response.headers.multi_items())

        return asyncio.run(ask())


def run_check(
    fault: Fault | None = None, url: str = URL, scheme: str = ""
) -> tuple[Report, InFront]:
    transport = InFront(create_app(settings()), fault, scheme)
    report = check(settings(), url, timeout=2, transport=transport)
    return report, transport


def faults_of(report: Report) -> set[str]:
    return {finding.fault for finding in report.findings}


# --- A deployment that agrees ----------------------------------------------------------


def test_a_deployment_that_answers_as_the_policy_says_agrees() -> None:
    report, transport = run_check()
    assert report.agrees, report.lines()
    assert report.findings == []
    origins = {row.origin for row in report.checked}
    assert {ALLOWED, PATTERN_SAMPLE, UNRELATED_ORIGIN, "null"} <= origins, origins
    assert {row.policy for row in report.checked if row.origin == PATTERN_SAMPLE} == {"allowed"}
    assert {row.policy for row in report.checked if row.origin == "null"} == {"refused"}
    assert transport.requests == len(report.checked) <= MOST_REQUESTS
    assert "AGREES" in report.lines()[-1]


@pytest.mark.parametrize("environment", list(SERVICE.profiles))
def test_every_profile_agrees_with_itself(
    monkeypatch: pytest.MonkeyPatch, environment: str
) -> None:
    for name in [name for name in os.environ if name.startswith(Settings.env_name("cors_"))]:
        monkeypatch.delenv(name)
    profile = Settings.load(environment=environment)
    transport = InFront(create_app(profile))
    report = check(profile, URL, timeout=2, transport=transport)
    assert report.agrees, "\n".join(report.lines())
    assert transport.requests <= MOST_REQUESTS


def test_requests_are_bounded_however_many_origins_are_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    many = ",".join(f"https://app{number}.example.com" for number in range(40))
    monkeypatch.setenv(Settings.env_name("cors_allow_origins"), many)
    report, transport = run_check()
    assert report.agrees
    allowed = {row.origin for row in report.checked if row.policy == "allowed"}
    assert len(allowed) == MAX_ALLOWED
    assert transport.requests <= MOST_REQUESTS


def test_each_path_is_checked_against_the_policy_that_decides_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(Settings.policy_env_name("public", "prefixes"), "/public")
    monkeypatch.setenv(Settings.policy_env_name("public", "allow_origins"), "*")
    transport = InFront(create_app(settings()))
    report = check(settings(), URL, ["/health", "/public/items"], timeout=2, transport=transport)
    assert report.agrees, report.lines()
    assert "'public'" in report.policies["/public/items"]
    public = [row for row in report.checked if " /public/items from " in row.request]
    assert {row.origin for row in public} == {UNRELATED_ORIGIN}  # '*': any site is allowed


# --- Faults in front of the service ------------------------------------------------------


def add_allow_origin(request: httpx.Request, forward: Forward) -> httpx.Response:
    response = forward(request)  # the service's header stays, nginx's add_header adds one
    headers = [*response.headers.multi_items(), ("access-control-allow-origin", "*")]
    return httpx.Response(response.status_code, headers=headers)


def reflect_any_origin(request: httpx.Request, forward: Forward) -> httpx.Response:
    response = forward(request)
    if "origin" in request.headers:
        response.headers["access-control-allow-origin"] = request.headers["origin"]
    return response


def cache_ignoring_vary() -> Fault:
    stored: dict[str, httpx.Response] = {}

    def fault(request: httpx.Request, forward: Forward) -> httpx.Response:
        if request.method != "GET":
            return forward(request)
        key = str(request.url)  # the Origin is not part of the key
        if key not in stored:
            stored[key] = forward(request)
        return stored[key]

    return fault


def redirect_to_https(request: httpx.Request, forward: Forward) -> httpx.Response:
    if request.url.scheme == "https":
        return forward(request)
    location = str(request.url.copy_with(scheme="https"))
    return httpx.Response(301, headers={"location": location})


def auth_layer(request: httpx.Request, forward: Forward) -> httpx.Response:
    if "authorization" not in request.headers:
        return httpx.Response(401, headers={"www-authenticate": 'Bearer realm="api"'})
    return forward(request)


def options_refused(request: httpx.Request, forward: Forward) -> httpx.Response:
    return httpx.Response(405) if request.method == "OPTIONS" else forward(request)


def origin_dropped(request: httpx.Request, forward: Forward) -> httpx.Response:
    request.headers.pop("origin", None)
    return forward(request)


def allow_origin_dropped(request: httpx.Request, forward: Forward) -> httpx.Response:
    response = forward(request)
    response.headers.pop("access-control-allow-origin", None)
    return response


def every_cors_header_dropped(request: httpx.Request, forward: Forward) -> httpx.Response:
    """nginx 'proxy_hide_header Access-Control-...' for each of them, a CDN's header policy."""
    response = forward(request)
    headers = [
        (name, value)
        for name, value in response.headers.multi_items()
        if not name.lower().startswith("access-control-")
    ]
    return httpx.Response(response.status_code, headers=headers)


def vary_dropped(request: httpx.Request, forward: Forward) -> httpx.Response:
    response = forward(request)
    response.headers.pop("vary", None)
    return response


def own_methods(request: httpx.Request, forward: Forward) -> httpx.Response:
    response = forward(request)
    if "access-control-allow-methods" in response.headers:
        response.headers["access-control-allow-methods"] = "GET, POST"
    return response


def host_rewritten(request: httpx.Request, forward: Forward) -> httpx.Response:
    request.headers["host"] = "backend.internal:8000"
    return forward(request)


def upstream_down(request: httpx.Request, forward: Forward) -> httpx.Response:
    return httpx.Response(502, headers={"content-type": "text/html"})


# name -> (a new fault, the faults cors check must name)
FAULTS: dict[str, tuple[Callable[[], Fault], set[str]]] = {
    "proxy adds Access-Control-Allow-Origin": (
        lambda: add_allow_origin,
        {"multiple-values", "proxy-cors"},
    ),
    "proxy reflects any origin": (lambda: reflect_any_origin, {"proxy-cors"}),
    "cache ignores Vary: Origin": (cache_ignoring_vary, {"shared-cache"}),
    "http redirected to https": (lambda: redirect_to_https, {"redirect"}),
    "auth layer answers first": (lambda: auth_layer, {"auth-before-cors"}),
    "OPTIONS refused": (lambda: options_refused, {"options-refused"}),
    "Origin not forwarded": (lambda: origin_dropped, {"origin-not-forwarded"}),
    "Access-Control-Allow-Origin stripped": (lambda: allow_origin_dropped, {"header-stripped"}),
    "every Access-Control-* header stripped": (
        lambda: every_cors_header_dropped,
        {"cors-headers-stripped"},
    ),
    "Vary stripped": (lambda: vary_dropped, {"vary-missing"}),
    "proxy writes its own methods": (lambda: own_methods, {"headers-differ"}),
    "Host rewritten": (lambda: host_rewritten, {"host-rewritten"}),
    "upstream down": (lambda: upstream_down, {"upstream-error"}),
}


@pytest.mark.parametrize("name", FAULTS)
def test_each_fault_in_front_is_named_with_cause_and_fix(name: str) -> None:
    make, expected = FAULTS[name]
    report, transport = run_check(make())
    assert faults_of(report) == expected, "\n".join(report.lines())
    assert not report.agrees
    assert transport.requests == len(report.checked) <= MOST_REQUESTS
    for finding in report.findings:
        assert all((finding.cause, finding.fix, finding.browser)), finding
    text = "\n".join(report.lines())
    assert "DISAGREES" in text
    for fault_name in expected:
        assert f"\n{fault_name}: " in text


def test_a_redirect_names_the_target_and_the_fix() -> None:
    report, _ = run_check(redirect_to_https)
    [first, *_] = report.findings
    assert first.request.startswith("preflight PUT /health")
    assert "Redirect is not allowed for a preflight request" in first.browser
    assert "redirects http to https" in first.cause
    assert "https://api.example.test/health" in first.fix
    https_report, _ = run_check(redirect_to_https, url="https://api.example.test")
    assert https_report.agrees, "the https URL is not redirected"


def test_a_service_that_does_not_know_its_scheme_is_named() -> None:
    # Browsers call https; TLS ends at the proxy, which does not say so to the service.
    report, _ = run_check(url="https://api.example.test", scheme="http")
    assert faults_of(report) == {"scheme-lost"}, report.lines()
    [finding] = report.findings
    assert "X-Forwarded-Proto" in finding.fix
    assert "--forwarded-allow-ips" in finding.fix


def test_a_cache_filled_without_origin_is_told_from_a_proxy_fault() -> None:
    fault = cache_ignoring_vary()
    transport = InFront(create_app(settings()), fault)
    # A monitor polls /health without Origin; its answer is stored for everyone.
    with httpx.Client(transport=transport) as client:
        assert client.get(f"{URL}/health").status_code == 200
    report = check(settings(), URL, timeout=2, transport=transport)
    assert faults_of(report) == {"shared-cache"}, report.lines()
    assert any("past any cache" in row.request for row in report.checked)


def test_a_deployment_with_another_policy_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    deployed = create_app(settings())
    monkeypatch.setenv(
        Settings.env_name("cors_allow_origins"), f"{ALLOWED},https://new.example.com"
    )
    report = check(settings(), URL, timeout=2, transport=InFront(deployed))
    assert faults_of(report) == {"policy-differs"}, report.lines()
    assert all("https://new.example.com" in finding.request for finding in report.findings)


def test_a_proxy_that_strips_every_cors_header_is_not_another_policy() -> None:
    report, _ = run_check(every_cors_header_dropped)
    stripped = report.findings
    assert {finding.request for finding in stripped} == {
        f"{kind} /health from {origin}"
        for kind in ("preflight PUT", "GET")
        for origin in (ALLOWED, PATTERN_SAMPLE)
    }
    preflight = stripped[0]
    assert preflight.expected.startswith(f"200, Access-Control-Allow-Origin: {ALLOWED} (and ")
    assert "Allow-Methods" in preflight.expected
    assert preflight.got.startswith("200, no Access-Control-* header, Vary: Origin, ")
    assert "No 'Access-Control-Allow-Origin' header is present" in preflight.browser
    for finding in stripped:
        assert finding.fault == "cors-headers-stripped"
        for cause in ("proxy_hide_header", "CDN", "WAF", "more_clear_headers", "API gateway"):
            assert cause in finding.cause, cause
        assert "Not another policy" in finding.cause
        assert "through unchanged" in finding.fix
    # The refused origins' answers have no Access-Control-* header either way: they agree.
    assert all(row.agrees for row in report.checked if row.policy == "refused")
    text = "\n".join(report.lines())
    assert "\ncors-headers-stripped: preflight PUT /health from" in text
    assert "policy-differs" not in text


def test_stripped_headers_and_another_policy_are_named_each_for_its_origin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Behind a stripping proxy, a service that runs another policy: the origin it refuses
    gets a 400 to its preflight, which no proxy turns into the service's 200."""
    deployed = create_app(settings())
    monkeypatch.setenv(
        Settings.env_name("cors_allow_origins"), f"{ALLOWED},https://new.example.com"
    )
    transport = InFront(deployed, every_cors_header_dropped)
    report = check(settings(), URL, timeout=2, transport=transport)
    by_origin: dict[str, set[str]] = {}
    for finding in report.findings:
        by_origin.setdefault(finding.request.rsplit(" from ", 1)[1], set()).add(finding.fault)
    assert by_origin == {
        ALLOWED: {"cors-headers-stripped"},
        "https://new.example.com": {"policy-differs"},
    }, report.lines()


def test_a_preflight_refused_by_the_service_is_another_policy_even_without_headers() -> None:
    """A 400 from the service's layer without Access-Control-* headers: the layer refused
    the origin; stripping cannot be proven, so the policy is named."""

    def refuse_every_preflight(request: httpx.Request, forward: Forward) -> httpx.Response:
        response = every_cors_header_dropped(request, forward)
        if request.method == "OPTIONS":
            return httpx.Response(400, headers=response.headers.multi_items())
        return response

    report, _ = run_check(refuse_every_preflight)
    assert faults_of(report) == {"policy-differs"}, report.lines()


# --- The command, against a real server ------------------------------------------------


@pytest.fixture
def served() -> Iterator[str]:
    """The app served by uvicorn on 127.0.0.1, in a thread; its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(create_app(settings()), lifespan="off", ws="none", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped"
        assert time.monotonic() < deadline, "uvicorn did not start within 10 s"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def command(capsys: pytest.CaptureFixture[str], *arguments: str) -> tuple[int, str, str]:
    status = main(["check", *arguments])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_command_against_a_served_app_exits_0(
    served: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, output, _ = command(capsys, served, "--env", ENVIRONMENT)
    assert status == AGREES, output
    assert f"Checked {served} against the {ENVIRONMENT} policy" in output
    assert "AGREES" in output


def test_command_takes_the_environment_from_the_variable_and_prints_json(
    served: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVIRONMENT", ENVIRONMENT)
    status, output, _ = command(capsys, served, "--json", "--path", "/health")
    report = json.loads(output)
    assert status == AGREES
    assert report["agrees"] is True
    assert report["environment"] == ENVIRONMENT
    assert report["requests"] == len(report["checked"]) <= MOST_REQUESTS
    assert report["findings"] == []


def test_command_exits_1_when_the_deployment_differs(
    served: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(Settings.env_name("cors_allow_credentials"), "false")  # not deployed
    status, output, _ = command(capsys, served, "--env", ENVIRONMENT, "--json")
    assert status == DISAGREES
    assert {finding["fault"] for finding in json.loads(output)["findings"]} == {"headers-differ"}


def test_no_answer_stops_the_check_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as listening:  # accepts connections, never answers
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        url = f"http://127.0.0.1:{listening.getsockname()[1]}"
        start = time.monotonic()
        status, output, _ = command(capsys, url, "--env", ENVIRONMENT, "--timeout", "0.5", "--json")
        elapsed = time.monotonic() - start
    report = json.loads(output)
    assert status == DISAGREES
    assert report["requests"] == 1, "no retries, no further requests"
    assert [finding["fault"] for finding in report["findings"]] == ["unreachable"]
    assert elapsed < 5, elapsed


def test_nothing_listening_is_reported_in_words(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{unused.getsockname()[1]}"
    status, output, _ = command(capsys, url, "--env", ENVIRONMENT)
    assert status == DISAGREES
    assert "unreachable: preflight" in output
    assert "curl -i" in output


# --- Bad input: exit 2, the value and the fix named -------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["api.example.com"], "write 'https://api.example.com'"),
        (["ftp://api.example.com"], "use the http:// or https:// URL browsers call"),
        (["https://api.example.com/health?x=1"], "give the service's base URL"),
        (["https://user:secret@api.example.com"], "leave credentials out of the URL"),
        (["https://api.example.com:99999"], "bad port"),
        (["https://api.example.com", "--path", "health"], "must be a path starting with '/'"),
        (["https://api.example.com", "--timeout", "0"], "above 0 and at most 60"),
        (["https://api.example.com", "--timeout", "inf"], "--timeout inf is no waiting time"),
    ],
)
def test_bad_input_exits_2_naming_the_value_and_the_fix(
    capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    status, output, error = command(capsys, *arguments, "--env", ENVIRONMENT)
    assert status == BAD_INPUT, output
    assert message in error
    assert output == ""


def test_the_environment_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, error = command(capsys, URL)
    assert status == BAD_INPUT
    assert "--env" in error
    assert "ENVIRONMENT" in error


def test_an_unknown_environment_variable_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "nowhere")
    status, _, error = command(capsys, URL)
    assert status == BAD_INPUT
    assert "ENVIRONMENT='nowhere'" in error


def test_an_unknown_env_option_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", URL, "--env", "nowhere"]) == BAD_INPUT
    assert "--env 'nowhere' is not an environment of this app" in capsys.readouterr().err
