"""corsguard.testing: the cases a service's policy test runs, and that they can fail."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from corsguard.testing import Case, assert_case, policy_cases

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
