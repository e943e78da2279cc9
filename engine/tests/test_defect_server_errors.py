"""An owner's bug reaches the server and the test client: the layer answers the JSON 500
with CORS headers, then re-raises, as Starlette's ``ServerErrorMiddleware`` does."""

from __future__ import annotations

import logging
import warnings

import pytest
from fastapi import FastAPI

from .service import Settings, create_app

with warnings.catch_warnings():
    # Starlette 1.10 asks for httpx2 in its test client; httpx still works, and is what
    # the dev group installs (the Starlette floor, 0.51, knows no httpx2). Starlette 0.51's
    # test client names an alias that new anyio releases deprecate.
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette.testclient`")
    warnings.filterwarnings("ignore", message=r"The anyio.abc.BlockingPortal alias")
    from fastapi.testclient import TestClient

ALLOWED = "https://app.example.com"


def failing_app() -> FastAPI:
    settings = Settings(_env_file=None, cors_allow_origins=[ALLOWED], cors_allow_credentials=True)
    app = create_app(settings)

    @app.get("/divide")
    def divide() -> float:
        return 1 / 0

    return app


def test_the_test_client_raises_the_owner_s_exception() -> None:
    with TestClient(failing_app()) as client, pytest.raises(ZeroDivisionError):
        client.get("/divide", headers={"Origin": ALLOWED})


def test_without_raising_the_client_gets_the_json_500_with_cors_headers() -> None:
    with TestClient(failing_app(), raise_server_exceptions=False) as client:
        response = client.get("/divide", headers={"Origin": ALLOWED})
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal Server Error"}
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert response.headers["access-control-allow-credentials"] == "true"


def test_the_traceback_is_left_to_the_server(caplog: pytest.LogCaptureFixture) -> None:
    """The server logs the re-raised exception with its traceback (uvicorn: "Exception in
    ASGI application"); a second traceback from the layer would only double it."""
    client = TestClient(failing_app(), raise_server_exceptions=False)
    with caplog.at_level(logging.DEBUG, logger="corsguard"), client:
        client.get("/divide", headers={"Origin": ALLOWED})
    assert [r for r in caplog.records if r.exc_info] == []
