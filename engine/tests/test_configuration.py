"""Environment variables over the profile, and the start-up errors for bad values."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from corsguard import CORSConfigDict

from .service import (
    SERVICE,
    ConfigError,
    Settings,
    create_app,
    startup_line,
    unprefixed_variables,
)
from .support import send

pytestmark = pytest.mark.usefixtures("clean_environment")

ORIGINS = Settings.env_name("cors_allow_origins")
CREDENTIALS = Settings.env_name("cors_allow_credentials")
METHODS = Settings.env_name("cors_allow_methods")
EXPOSE = Settings.env_name("cors_expose_headers")
MAX_AGE = Settings.env_name("cors_max_age")
FIRST = next(iter(SERVICE.profiles))


def allowed(origin: str) -> bool:
    response = send(create_app(), "GET", headers={"Origin": origin})
    return response.headers.get("access-control-allow-origin") in (origin, "*")


def test_environment_variable_selects_the_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, profile in SERVICE.profiles.items():
        monkeypatch.setenv("ENVIRONMENT", name)
        settings = Settings.load()
        assert settings.environment == name
        default = Settings.model_fields["cors_max_age"].default
        assert settings.cors_max_age == profile.get("cors_max_age", default)


def test_default_environment_when_unset() -> None:
    assert Settings.load().environment == SERVICE.default_environment


@pytest.mark.parametrize(
    "value",
    [
        "https://other.example.com",
        "https://other.example.com, https://second.example.com",
        '["https://other.example.com", "https://second.example.com"]',
    ],
)
def test_origins_variable_replaces_the_profile(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(ORIGINS, value)
    settings = Settings.load()
    assert settings.cors_allow_origins[0] == "https://other.example.com"
    assert allowed("https://other.example.com")
    for origin in SERVICE.profiles[settings.environment]["cors_allow_origins"]:
        if origin not in settings.cors_allow_origins and "*" not in origin:
            assert not allowed(origin), origin


def test_empty_origins_variable_means_no_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ORIGINS, "")
    assert Settings.load().cors_allow_origins == ()
    assert not allowed("http://localhost:3000")


def test_variables_are_normalized(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ORIGINS, "HTTPS://Other.Example.com:443/, http://localhost:80")
    monkeypatch.setenv(METHODS, "get,post")
    settings = Settings.load()
    assert settings.cors_allow_origins == ("https://other.example.com", "http://localhost")
    assert settings.cors_allow_methods == ("GET", "POST")


def test_dotenv_overrides_the_profile_and_the_environment_overrides_dotenv(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    Path(".env").write_text(f"{ORIGINS}=https://from-dotenv.example.com\n{MAX_AGE}=42\n")
    settings = Settings.load()
    assert settings.cors_allow_origins == ("https://from-dotenv.example.com",)
    assert settings.cors_max_age == 42
    monkeypatch.setenv(ORIGINS, "https://from-process.example.com")
    assert Settings.load().cors_allow_origins == ("https://from-process.example.com",)


@pytest.mark.parametrize(
    ("variables", "named", "expected"),
    [
        ({ORIGINS: "http://localhost:3000/app"}, ORIGINS, "has a path"),
        ({ORIGINS: "localhost:3000"}, ORIGINS, "has no scheme"),
        ({ORIGINS: "ftp://files.example.com"}, ORIGINS, "scheme 'ftp'"),
        ({ORIGINS: "https://a.example.com https://b.example.com"}, ORIGINS, "contains a space"),
        ({ORIGINS: "https://a.example.com:99999"}, ORIGINS, "bad port"),
        ({ORIGINS: "https://*.com"}, ORIGINS, "broader than a registrable domain"),
        ({ORIGINS: "https://*.co.uk"}, ORIGINS, "broader than a registrable domain"),
        ({ORIGINS: "https://a.example.com,,https://b.example.com"}, ORIGINS, "empty entry"),
        ({ORIGINS: "['https://a.example.com']"}, ORIGINS, "not a valid JSON array"),
        ({ORIGINS: '["https://a.example.com"'}, ORIGINS, "not a valid JSON array"),
        ({ORIGINS: "*", CREDENTIALS: "true"}, ORIGINS, "'*'"),
        ({EXPOSE: "*", CREDENTIALS: "true"}, EXPOSE, "'*'"),
        ({CREDENTIALS: "maybe"}, CREDENTIALS, "write true or false"),
        ({MAX_AGE: "-1"}, MAX_AGE, "write a number of seconds from 0 to 86400"),
        ({MAX_AGE: "ten"}, MAX_AGE, "write a whole number"),
        ({METHODS: "GET,PO ST"}, METHODS, "not a valid method"),
        ({METHODS: "GET,FETCH"}, METHODS, "'FETCH' is not a registered HTTP method"),
        ({"ENVIRONMENT": "prod-typo"}, "ENVIRONMENT", "unknown environment"),
    ],
)
def test_bad_value_fails_with_the_variable_and_the_value(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], named: str, expected: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as error:
        create_app()
    message = str(error.value)
    assert named in message
    assert expected in message
    if named in variables:
        assert variables[named] in message


def test_null_is_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ORIGINS, "null")
    for name in SERVICE.profiles:
        monkeypatch.setenv("ENVIRONMENT", name)
        if name == "production":
            with pytest.raises(ConfigError, match="'null' is refused in production"):
                Settings.load()
        else:
            assert Settings.load().cors_allow_origins == ("null",)


def test_start_up_exits_non_zero_with_one_message(tmp_path: Path) -> None:
    environment = {ORIGINS: "http://localhost:3000/app", "PATH": ""}
    # Fixed arguments: this interpreter and the service's own package name.
    result = subprocess.run(
        [sys.executable, "-c", "import tests.sample.main"],
        cwd=Path(__file__).parent.parent,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 3  # uvicorn's STARTUP_FAILURE
    assert "Traceback" not in result.stderr
    assert f"{ORIGINS}='http://localhost:3000/app'" in result.stderr
    assert "use 'http://localhost:3000'" in result.stderr


def test_json_and_comma_forms_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    origins = ["https://a.example.com", "https://*.preview.example.com"]
    monkeypatch.setenv(ORIGINS, json.dumps(origins))
    from_json = Settings.load().cors_allow_origins
    monkeypatch.setenv(ORIGINS, ",".join(origins))
    assert Settings.load().cors_allow_origins == from_json == tuple(origins)


def test_a_misspelt_key_in_settings_toml_fails_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    profile = {**SERVICE.profiles[FIRST], "cors_allow_origin": ["https://a.example.com"]}
    monkeypatch.setitem(SERVICE.profiles, FIRST, profile)
    with pytest.raises(ConfigError, match="unknown key 'cors_allow_origin'"):
        create_app()


def test_path_policy_errors_name_the_real_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = Settings.env_name("cors_path_policies__partner")
    monkeypatch.setenv(f"{policy}__PREFIXES", "/partner")
    monkeypatch.setenv(f"{policy}__ALLOW_ORIGINS", "*")
    monkeypatch.setenv(f"{policy}__ALLOW_CREDENTIALS", "true")
    with pytest.raises(ConfigError) as error:
        create_app()
    assert f"{policy}__ALLOW_ORIGINS contains '*' while {policy}__ALLOW_CREDENTIALS" in str(
        error.value
    )


def test_an_origin_with_a_comma_inside_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ORIGINS, '["https://a.example.com,https://b.example.com"]')
    with pytest.raises(ConfigError, match="contains a comma"):
        create_app()


@pytest.mark.usefixtures("clean_environment")
@pytest.mark.parametrize(
    ("name", "closest"),
    [
        (Settings.env_name("cors_allowed_origins"), Settings.env_name("cors_allow_origins")),
        (Settings.env_name("cors_origins"), Settings.env_name("cors_allow_origins")),
        (Settings.env_name("cors_max_age_seconds"), Settings.env_name("cors_max_age")),
    ],
)
def test_a_misspelt_cors_variable_stops_start_up_naming_the_right_one(
    monkeypatch: pytest.MonkeyPatch, name: str, closest: str
) -> None:
    monkeypatch.setenv(name, "https://a.example.com")
    with pytest.raises(ConfigError) as error:
        Settings.load()
    assert f"{name} is not a setting of this service: did you mean {closest}?" in str(error.value)


@pytest.mark.usefixtures("clean_environment")
def test_a_misspelt_key_in_dot_env_stops_start_up_too(monkeypatch: pytest.MonkeyPatch) -> None:
    name = Settings.env_name("cors_allow_origin")
    Path(".env").write_text(f"{name}=https://a.example.com\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=f"{name} is not a setting of this service"):
        Settings.load()


@pytest.mark.usefixtures("clean_environment")
def test_the_start_up_line_names_the_environment_the_policy_and_the_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    environment = list(SERVICE.profiles)[-1]
    monkeypatch.setenv("ENVIRONMENT", environment)
    monkeypatch.setenv(Settings.env_name("cors_max_age"), "60")
    line = startup_line(Settings.load())
    assert line.startswith(f"CORS policy in force: ENVIRONMENT={environment}; origins ")
    assert line.endswith(f"from variables: {Settings.env_name('cors_max_age')}")
    assert "\n" not in line
    monkeypatch.delenv("ENVIRONMENT")
    assert "ENVIRONMENT not set: serving the" in startup_line(Settings.load())


class Prefixed(Settings):
    model_config = CORSConfigDict(env_prefix="ORDERS_")


@pytest.mark.usefixtures("clean_environment")
def test_unprefixed_cors_variables_are_reported_when_a_prefix_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CORS_ALLOW_ORIGINS", "https://other-service.example.com")
    assert unprefixed_variables(Prefixed) == ["CORS_ALLOW_ORIGINS"]
    assert "ignored (this service reads ORDERS_CORS_*): CORS_ALLOW_ORIGINS" in startup_line(
        Prefixed.load()
    )
