"""Path policies: public paths readable by any site, the rest for the first-party frontend."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, WebSocket
from starlette.types import Message

from .service import ALLOWED, REFUSED, ConfigError, Settings, create_app, main
from .support import send

FRONTEND = "https://app.example.com"
ANY_SITE = "https://blog.example.net"
PUBLIC = {
    "prefixes": ["/public", "/status/"],
    "allow_origins": ["*"],
    "allow_methods": ["GET", "HEAD"],
    "expose_headers": ["X-Request-ID"],
    "max_age": 60,
}
PARTNER = {
    "prefixes": ["/public/partner"],
    "allow_origins": ["https://partner.example.org"],
    "allow_credentials": True,
    "allow_methods": ["GET", "POST"],
}


def app_with(policies: dict[str, Any]) -> FastAPI:
    settings = Settings(
        _env_file=None,
        cors_allow_origins=[FRONTEND],
        cors_allow_credentials=True,
        cors_allow_methods=["GET", "POST", "DELETE"],
        cors_allow_headers=["Authorization"],
        cors_expose_headers=[],
        cors_path_policies=policies,
    )
    app = create_app(settings)

    @app.get("/private/data")
    @app.get("/public/data")
    @app.get("/publicity")
    def data() -> dict[str, str]:
        return {"data": "yes"}

    @app.get("/public/boom")
    @app.get("/private/boom")
    def boom() -> None:
        raise RuntimeError("boom")

    @app.websocket("/public/ws")
    @app.websocket("/private/ws")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.close()

    return app


@pytest.fixture
def app() -> FastAPI:
    return app_with({"public": PUBLIC, "partner": PARTNER})


def allow_origin(app: FastAPI, path: str, origin: str, method: str = "GET") -> str | None:
    response = send(app, method, path, headers={"Origin": origin})
    header: str | None = response.headers.get("access-control-allow-origin")
    return header


def test_public_path_answers_any_origin_without_credentials(app: FastAPI) -> None:
    response = send(app, "GET", "/public/data", headers={"Origin": ANY_SITE})
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["access-control-expose-headers"] == "X-Request-ID"
    assert "access-control-allow-credentials" not in response.headers


def test_public_only_origin_is_refused_on_a_private_path(app: FastAPI) -> None:
    response = send(app, "GET", "/private/data", headers={"Origin": ANY_SITE, "Cookie": "s=1"})
    assert response.status_code == 200  # the server answers; the browser may not read it
    assert not [h for h in response.headers if h.startswith("access-control-")]


def test_preflight_for_a_private_path_from_a_public_only_origin_is_refused(app: FastAPI) -> None:
    headers = {"Origin": ANY_SITE, "Access-Control-Request-Method": "DELETE"}
    response = send(app, "OPTIONS", "/private/data", headers=headers)
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


def test_frontend_keeps_credentials_on_private_paths(app: FastAPI) -> None:
    response = send(app, "GET", "/private/data", headers={"Origin": FRONTEND})
    assert response.headers["access-control-allow-origin"] == FRONTEND
    assert response.headers["access-control-allow-credentials"] == "true"


def test_public_preflight_follows_the_public_policy(app: FastAPI) -> None:
    allowed = {"Origin": ANY_SITE, "Access-Control-Request-Method": "GET"}
    response = send(app, "OPTIONS", "/public/data", headers=allowed)
    assert response.status_code == 200
    assert response.headers["access-control-max-age"] == "60"
    refused = {"Origin": ANY_SITE, "Access-Control-Request-Method": "DELETE"}
    assert send(app, "OPTIONS", "/public/data", headers=refused).status_code == 400


def test_longest_prefix_wins(app: FastAPI) -> None:
    partner = "https://partner.example.org"
    assert allow_origin(app, "/public/partner/feed", partner) == partner
    assert allow_origin(app, "/public/partner/feed", ANY_SITE) is None
    assert allow_origin(app, "/public/partner", partner) == partner
    assert allow_origin(app, "/public/partners", ANY_SITE) == "*"  # under /public only


def test_prefixes_match_whole_segments(app: FastAPI) -> None:
    assert allow_origin(app, "/publicity", ANY_SITE) is None
    assert allow_origin(app, "/status", ANY_SITE) == "*"  # given as "/status/"
    assert allow_origin(app, "/status/", ANY_SITE) == "*"


def answer_to_failure(app: FastAPI, path: str, origin: str) -> httpx.Response:
    """The layer's 500, without the exception it raises again for the server to log."""

    async def one() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.get(path, headers={"Origin": origin})

    return asyncio.run(one())


def test_errors_follow_the_policy_of_their_path(app: FastAPI) -> None:
    public = answer_to_failure(app, "/public/boom", ANY_SITE)
    assert (public.status_code, public.headers["access-control-allow-origin"]) == (500, "*")
    private = answer_to_failure(app, "/private/boom", ANY_SITE)
    assert private.status_code == 500
    assert "access-control-allow-origin" not in private.headers


def first_message(
    app: FastAPI, path: str, origin: str, extra: list[tuple[bytes, bytes]] | None = None
) -> Message:
    scope = {
        "type": "websocket",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"origin", origin.encode()), *(extra or [])],
        "scheme": "ws",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 1234),
        "subprotocols": [],
        "asgi": {"version": "3.0"},
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"} if not sent else {"type": "websocket.disconnect"}

    async def collect(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, collect))
    return sent[0]


def test_websockets_follow_the_policy_of_their_path(app: FastAPI) -> None:
    assert first_message(app, "/public/ws", ANY_SITE)["type"] == "websocket.accept"
    assert first_message(app, "/private/ws", ANY_SITE)["type"] == "websocket.close"
    assert first_message(app, "/private/ws", FRONTEND)["type"] == "websocket.accept"


# --- Environment variables ---------------------------------------------------------------

ORIGINS = Settings.policy_env_name("widget", "allow_origins")
PREFIXES = Settings.policy_env_name("widget", "prefixes")
CREDENTIALS = Settings.policy_env_name("widget", "allow_credentials")


@pytest.mark.usefixtures("clean_environment")
def test_environment_variables_set_a_path_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PREFIXES, "/widget,/embed")
    monkeypatch.setenv(ORIGINS, '["https://a.example.net", "https://*.example.org"]')
    policy = Settings.load().cors_path_policies["widget"]
    assert policy.prefixes == ("/widget", "/embed")
    assert policy.allow_origins == ("https://a.example.net", "https://*.example.org")
    assert (
        allow_origin(create_app(), "/embed/x", "https://b.example.org") == "https://b.example.org"
    )


@pytest.mark.usefixtures("clean_environment")
@pytest.mark.parametrize(
    ("variables", "named", "expected"),
    [
        ({PREFIXES: "/w", ORIGINS: "https://a.example.net/x"}, ORIGINS, "has a path"),
        ({PREFIXES: "widget"}, PREFIXES, "start it with '/'"),
        ({PREFIXES: "/"}, PREFIXES, "covers every path"),
        ({PREFIXES: "/w*"}, PREFIXES, "not a plain path prefix"),
        (
            {PREFIXES: "/w", ORIGINS: "*", CREDENTIALS: "true"},
            Settings.env_name("cors_path_policies__widget"),
            "'*'",
        ),
        ({PREFIXES: "/w", ORIGINS: "*", CREDENTIALS: "maybe"}, CREDENTIALS, "write true or false"),
        ({ORIGINS: "*"}, PREFIXES, "Field required"),
        (
            {PREFIXES: "/w", Settings.policy_env_name("widget", "allow_origin"): "*"},
            Settings.policy_env_name("widget", "allow_origin"),
            "Extra inputs are not permitted",
        ),
    ],
)
def test_bad_path_policy_variable_fails_start_up_naming_it(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], named: str, expected: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as error:
        create_app()
    assert named in str(error.value)
    assert expected in str(error.value)


def test_a_prefix_in_two_policies_is_refused() -> None:
    with pytest.raises(ConfigError, match="'/public' is in both 'public' and 'copy'"):
        app_with({"public": PUBLIC, "copy": {**PUBLIC, "prefixes": ["/public/"]}})


# --- explain --path ------------------------------------------------------------------------


@pytest.mark.usefixtures("clean_environment")
def test_explain_says_which_policy_decided(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(Settings.env_name("cors_allow_origins"), FRONTEND)
    monkeypatch.setenv(PREFIXES, "/open")
    monkeypatch.setenv(ORIGINS, "*")
    environment = Settings.load().environment
    base = ["explain", "--env", environment, "--origin", ANY_SITE]

    assert main([*base, "--path", "/open/data"]) == ALLOWED
    public = capsys.readouterr().out
    assert "Decided by the path policy 'widget' (prefix /open)" in public
    assert "ALLOWED: origin allowed by the entry '*'" in public

    assert main([*base, "--path", "/private"]) == REFUSED
    private = capsys.readouterr().out
    assert "Decided by the default policy (no path prefix covers /private)" in private
    assert f"is not in {Settings.env_name('cors_allow_origins')}" in private

    assert main([*base, "--path", "/open/data", "--credentials"]) == REFUSED
    assert f"{CREDENTIALS} is false" in capsys.readouterr().out


def test_path_policies_see_the_path_below_the_root_path() -> None:
    """Behind a proxy or ``--root-path /api`` the policy still follows the route path."""
    app = app_with({"admin": {"prefixes": ["/private"], "allow_origins": []}})

    async def get(path: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, root_path="/api")
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.get(path, headers={"Origin": FRONTEND})

    refused = asyncio.run(get("/api/private/data"))
    assert refused.status_code == 200
    assert "access-control-allow-origin" not in refused.headers
    allowed = asyncio.run(get("/api/publicity"))
    assert allowed.headers["access-control-allow-origin"] == FRONTEND


def test_a_policy_without_credentials_strips_cookies_from_websockets() -> None:
    seen: list[str | None] = []
    app = app_with({"public": PUBLIC})

    @app.websocket("/public/cookie")
    async def cookie(websocket: WebSocket) -> None:
        seen.append(websocket.headers.get("cookie"))
        await websocket.accept()
        await websocket.close()

    message = first_message(app, "/public/cookie", ANY_SITE, [(b"cookie", b"session=1")])
    assert message["type"] == "websocket.accept"
    assert seen == [None]


@pytest.mark.usefixtures("clean_environment")
@pytest.mark.parametrize("value", ["garbage", '{"widget": ', ""])
def test_undecodable_path_policies_variable_fails_start_up(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(Settings.env_name("cors_path_policies"), value)
    with pytest.raises(ConfigError, match="cors_path_policies"):
        create_app()


@pytest.mark.usefixtures("clean_environment")
@pytest.mark.parametrize("prefix", ["/x%2Fy", "/a/../b", "/a/./b"])
def test_prefixes_that_can_never_match_are_refused(
    monkeypatch: pytest.MonkeyPatch, prefix: str
) -> None:
    monkeypatch.setenv(PREFIXES, prefix)
    with pytest.raises(ConfigError, match="not a plain path prefix"):
        create_app()


def test_explain_follows_starlette_for_any_method() -> None:
    from .service import explain

    settings = Settings(_env_file=None, cors_allow_origins=[FRONTEND], cors_allow_methods=["*"])
    assert explain(settings, FRONTEND, "PATCH").allowed
    assert not explain(settings, FRONTEND, "PROPFIND").allowed
    preflight = {"Origin": FRONTEND, "Access-Control-Request-Method": "PROPFIND"}
    assert send(create_app(settings), "OPTIONS", headers=preflight).status_code == 400


PRIVATE_NETWORK = {
    "Origin": ANY_SITE,
    "Access-Control-Request-Method": "GET",
    "Access-Control-Request-Private-Network": "true",
}


def test_private_network_access_is_decided_per_policy() -> None:
    """A public '*' policy does not let every website reach a private network because
    the default policy answers Private Network Access preflights."""
    settings = Settings(
        _env_file=None,
        cors_allow_origins=[ANY_SITE],
        cors_allow_private_network=True,
        cors_path_policies={"public": PUBLIC},
    )
    app = create_app(settings)
    assert send(app, "OPTIONS", "/private/data", headers=PRIVATE_NETWORK).status_code == 200
    assert send(app, "OPTIONS", "/public/data", headers=PRIVATE_NETWORK).status_code == 400
    asked = {**PUBLIC, "allow_private_network": True}
    settings = Settings(_env_file=None, cors_path_policies={"public": asked})
    response = send(create_app(settings), "OPTIONS", "/public/data", headers=PRIVATE_NETWORK)
    assert response.headers["access-control-allow-private-network"] == "true"
