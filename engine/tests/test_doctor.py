"""``corsguard doctor``: each finding on an app that has it, a clean app, bad input, --json."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware

from corsguard import doctor
from corsguard.cli import main
from tests.sample import Settings, create_app

HERE = "tests.test_doctor"


@pytest.fixture(autouse=True)
def no_cors_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An empty directory (no .env), no variable that looks like CORS settings."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [name for name in os.environ if doctor.is_old_cors_name(name)]:
        monkeypatch.delenv(name)
    for name in [name for name in os.environ if name.upper() == Settings.environment_variable()]:
        monkeypatch.delenv(name)


def stock_wildcard() -> FastAPI:
    """The tutorial's app: '*' with credentials, no corsguard layer."""
    app = FastAPI()
    app.add_middleware(
        CORSMiddleware, allow_origins=["*"], allow_credentials=True, allow_methods=["*"]
    )
    return app


def stock_listed() -> FastAPI:
    """A stock layer with a list, one origin written as AnyHttpUrl writes it."""
    app = create_app(Settings.load())
    # Inside the corsguard layer (appended: innermost), so the layer stays outermost.
    app.user_middleware.append(
        Middleware(CORSMiddleware, allow_origins=["http://localhost:3000/"], allow_credentials=True)
    )
    return app


def not_outermost() -> FastAPI:
    app = create_app(Settings.load())
    app.add_middleware(GZipMiddleware)
    return app


def options_route() -> FastAPI:
    app = create_app(Settings.load())

    @app.options("/items")
    async def items_options() -> dict[str, str]:
        return {}

    return app


def bare() -> FastAPI:
    return FastAPI()


not_an_app = 42


def run(spec: str, *extra: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(["doctor", spec, *extra])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def findings(spec: str, capsys: pytest.CaptureFixture[str]) -> list[dict[str, str]]:
    status, out, err = run(spec, "--json", capsys=capsys)
    assert err == ""
    report = json.loads(out)
    assert status == (1 if report["findings"] else 0)
    found: list[dict[str, str]] = report["findings"]
    return found


def ids(spec: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [finding["id"] for finding in findings(spec, capsys)]


def test_clean_app_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run("tests.sample:create_app", capsys=capsys)
    assert (status, err) == (0, "")
    assert "no findings" in out


def test_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(f"{HERE}:stock_wildcard", "--json", capsys=capsys)
    report = json.loads(out)
    assert status == 1
    assert set(report) == {"app", "findings"}
    assert report["app"] == f"{HERE}:stock_wildcard"
    assert report["findings"]
    for finding in report["findings"]:
        assert set(finding) == {"id", "what", "fix"}
        assert all(isinstance(value, str) and value for value in finding.values())
    clean = json.loads(run("tests.sample:create_app", "--json", capsys=capsys)[1])
    assert clean == {"app": "tests.sample:create_app", "findings": []}


def test_no_layer(capsys: pytest.CaptureFixture[str]) -> None:
    assert ids(f"{HERE}:bare", capsys) == ["no-corsguard-layer"]


def test_stock_wildcard_with_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    found = {f["id"]: f for f in findings(f"{HERE}:stock_wildcard", capsys)}
    assert set(found) == {
        "no-corsguard-layer",
        "stock-cors-middleware",
        "wildcard-with-credentials",
    }
    stock = found["stock-cors-middleware"]["what"]
    assert "allow_origins=['*']" in stock
    assert "allow_credentials=True" in stock
    # What it answered the probe: the origin reflected, with credentials.
    assert f"Access-Control-Allow-Origin: {doctor.PROBE_ORIGIN}" in stock
    assert "Access-Control-Allow-Credentials: true" in stock


def test_probe_answers_of_the_stock_middleware_alone() -> None:
    middleware = stock_wildcard().user_middleware[0]
    answers = doctor.probe(middleware)
    for kind in ("preflight", "get"):
        assert answers[kind] == {
            "access-control-allow-origin": doctor.PROBE_ORIGIN,
            "access-control-allow-credentials": "true",
        }


def test_stock_listed_and_origin_with_path(capsys: pytest.CaptureFixture[str]) -> None:
    found = findings(f"{HERE}:stock_listed", capsys)
    assert [f["id"] for f in found] == ["stock-cors-middleware", "origin-with-path"]
    by_id = {f["id"]: f for f in found}
    assert "does not allow it" in by_id["stock-cors-middleware"]["what"]
    assert "http://localhost:3000/" in by_id["origin-with-path"]["what"]
    assert by_id["origin-with-path"]["fix"].endswith("http://localhost:3000")


def test_layer_not_outermost(capsys: pytest.CaptureFixture[str]) -> None:
    found = findings(f"{HERE}:not_outermost", capsys)
    assert [f["id"] for f in found] == ["layer-not-outermost"]
    assert "GZipMiddleware" in found[0]["what"]


def test_route_answers_options(capsys: pytest.CaptureFixture[str]) -> None:
    found = findings(f"{HERE}:options_route", capsys)
    assert [f["id"] for f in found] == ["route-answers-options"]
    assert "/items" in found[0]["what"]
    assert "never sent" in found[0]["what"]


def test_old_variables_in_environment_and_dotenv(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FRONTEND_HOST", "http://localhost:5173")
    (tmp_path / ".env").write_text(
        'BACKEND_CORS_ORIGINS=["http://localhost:3000/","https://app.example.com"]\n'
        "CORS_ALLOW_ORIGINS=https://app.example.com\n",
        encoding="utf-8",
    )
    found = findings("tests.sample:create_app", capsys)
    old = {f["what"].split()[0] for f in found if f["id"] == "old-cors-variable"}
    # CORS_ALLOW_ORIGINS is read by the settings: not reported.
    assert old == {"BACKEND_CORS_ORIGINS", "FRONTEND_HOST"}
    paths = [f["what"] for f in found if f["id"] == "origin-with-path"]
    assert len(paths) == 1
    assert "'http://localhost:3000/'" in paths[0]
    assert "BACKEND_CORS_ORIGINS" in paths[0]


def test_path_policy_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    name = Settings.policy_env_name("PUBLIC", "allow_origins")
    assert doctor.is_old_cors_name(name)
    monkeypatch.setenv(name, "https://app.example.com")
    monkeypatch.setenv("ALLOWED_ORIGINS", "https://app.example.com")
    found = doctor.variable_findings(Settings)
    assert [f.what.split()[0] for f in found] == ["ALLOWED_ORIGINS"]
    # Without corsguard settings, nothing reads either.
    assert len(doctor.variable_findings(None)) == 2


def test_failing_factory_names_its_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CORS_ALLOW_ORIGINS", "not an origin")
    status, out, err = run("tests.sample:create_app", capsys=capsys)
    assert (status, out) == (2, "")
    assert "'tests.sample:create_app' raised ConfigError" in err


def test_factory_in_a_module_written_for_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "doctor_factory_app.py").write_text(
        "from fastapi import FastAPI\n"
        "from fastapi.middleware.cors import CORSMiddleware\n\n"
        "def make() -> FastAPI:\n"
        "    app = FastAPI()\n"
        "    app.add_middleware(CORSMiddleware, allow_origins=['https://a.example.com'])\n"
        "    return app\n",
        encoding="utf-8",
    )
    assert ids("doctor_factory_app:make", capsys) == [
        "no-corsguard-layer",
        "stock-cors-middleware",
    ]


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("no_colon", ["'no_colon'", "module:attribute"]),
        ("doctor_missing_module:app", ["'doctor_missing_module'", "run corsguard"]),
        (f"{HERE}:missing", ["'missing'", "name the app"]),
        (f"{HERE}:not_an_app", ["int", "not a FastAPI"]),
    ],
)
def test_bad_input_exits_2(spec: str, words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(spec, capsys=capsys)
    assert (status, out) == (2, "")
    for word in words:
        assert word in err


def test_failing_factory_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "doctor_failing_app.py").write_text(
        "def make(required):\n    return None\n", encoding="utf-8"
    )
    status, _, err = run("doctor_failing_app:make", capsys=capsys)
    assert status == 2
    assert "'doctor_failing_app:make'" in err
    assert "no arguments" in err
    assert "Traceback" not in err


def test_old_floor_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "doctor_v1_app.py").write_text(
        "from pydantic import BaseSettings  # pydantic v1\n", encoding="utf-8"
    )
    versions = {"pydantic": "1.10.13", "fastapi": "0.99.1"}
    monkeypatch.setattr(doctor, "installed_version", versions.get)
    status, _, err = run("doctor_v1_app:app", capsys=capsys)
    assert status == 2
    assert "pydantic>=2.7" in err
    assert "fastapi>=0.128.3" in err
    assert "pydantic 1.10.13" in err
    assert "Traceback" not in err


def test_doctor_needs_no_settings_class(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CORSGUARD_SETTINGS", raising=False)
    assert run(f"{HERE}:bare", capsys=capsys)[0] == 1
    assert "tests" in sys.modules
