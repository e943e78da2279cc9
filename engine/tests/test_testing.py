"""corsguard.testing: the cases a service's policy test runs, and that they can fail."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from corsguard import RuntimeOrigins
from corsguard.testing import Case, assert_case, policy_cases, profile_settings

from .service import Settings, create_app

CASES = policy_cases(Settings)


def test_cases_cover_every_environment_and_both_verdicts() -> None:
    assert {case.environment for case in CASES} == set(Settings.profiles().profiles)
    assert {case.allowed for case in CASES} == {True, False}
    assert (
        Case("staging", "default", "/corsguard-probe", "https://pr-1.preview.example.com", True)
        in CASES
    )
    refused = {case.origin for case in CASES if not case.allowed and case.environment == "staging"}
    assert {"https://preview.example.com", "http://staging.example.com", "null"} <= refused


@pytest.mark.parametrize("case", CASES, ids=str)
def test_the_sample_service_passes_its_cases(case: Case) -> None:
    assert_case(create_app(case.settings(Settings)), case)


def stock_layer(case: Case) -> FastAPI:
    """What a hand-written CORS setup often is: '*' with credentials, stock middleware."""
    app = FastAPI()
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_credentials=True,
        allow_methods=["*"],
        allow_headers=["*"],
    )
    app.state.cors_settings = case.settings(Settings)
    return app


def test_a_layer_that_allows_everyone_fails_the_refused_cases() -> None:
    refused = next(case for case in CASES if not case.allowed)
    with pytest.raises(AssertionError, match="refused"):
        assert_case(stock_layer(refused), refused)


def test_an_app_without_the_layer_is_named() -> None:
    with pytest.raises(AssertionError, match="no CORS layer"):
        assert_case(FastAPI(), CASES[0])


def test_profile_settings_leave_the_origin_store_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A profile that names a store still gives cases of the file alone: a tenant's row in
    the store must not turn a refused case into an allowed one."""
    store = f"sqlite:///{tmp_path / 'origins.db'}"
    profile = Settings.profiles().profiles["production"]
    monkeypatch.setitem(profile, "cors_origin_store", store)
    assert Settings.load(environment="production").cors_origin_store == store
    RuntimeOrigins(Settings.load(environment="production")).add("https://tenant.example.org")
    settings = profile_settings(Settings, "production")
    assert settings.cors_origin_store == ""
    app = create_app(settings)
    case = Case("production", "default", "/corsguard-probe", "https://tenant.example.org", False)
    assert_case(app, case)
