"""The profiles file and the variable that picks the profile are the settings' choice.

Also the start-up line's account of where the environment and the values came from:
``ENVIRONMENT`` read from ``.env`` (it used to say "not set" while the service read it),
and path-policy variables (they never appeared under "from variables").
"""

from __future__ import annotations

from pathlib import Path

import pytest

from corsguard import ConfigError, CORSConfigDict, CORSSettings, startup_line

PROFILES = """
[environments.local]
cors_allow_origins = ["http://localhost:5173"]

[environments.prod]
cors_allow_origins = ["https://app.example.com", "null"]
"""


def settings_class(tmp_path: Path, text: str, **config: str) -> type[CORSSettings]:
    path = tmp_path / "cors.toml"
    path.write_text(text, encoding="utf-8")

    class AppSettings(CORSSettings):
        model_config = CORSConfigDict(cors_profiles=path, **config)  # type: ignore[typeddict-item]

    return AppSettings


@pytest.fixture(autouse=True)
def in_empty_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.mark.usefixtures("clean_environment")
def test_the_app_names_its_variable_and_its_profiles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = settings_class(
        tmp_path, PROFILES.replace(', "null"', ""), cors_environment_variable="APP_ENV"
    )
    assert cls.load().environment == "local"  # the first profile when nothing picks one
    monkeypatch.setenv("APP_ENV", "prod")
    monkeypatch.setenv("ENVIRONMENT", "local")  # not this app's variable
    assert cls.load().cors_allow_origins == ("https://app.example.com",)
    monkeypatch.setenv("APP_ENV", "staging")
    with pytest.raises(ConfigError, match=r"APP_ENV='staging'.*use one of local, prod"):
        cls.load()


@pytest.mark.usefixtures("clean_environment")
def test_null_is_refused_in_a_profile_named_prod(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = settings_class(tmp_path, PROFILES, cors_environment_variable="APP_ENV")
    monkeypatch.setenv("APP_ENV", "prod")
    with pytest.raises(ConfigError, match="'null' is refused in production"):
        cls.load()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[environments.x", "cannot be read"),
        ("[service]\ntitel = 'x'\n[environments.a]\n", "unknown key 'titel' in \\[service\\]"),
        (
            "[service]\ndefault_environment = 'b'\n[environments.a]\n",
            "'b' has no \\[environments.b\\]",
        ),
        ("[service]\nenv_prefix = 'APP_'\n[environments.a]\n", "sets env_prefix='OTHER_'"),
    ],
)
@pytest.mark.usefixtures("clean_environment")
def test_a_bad_profiles_file_is_one_message_at_load(
    tmp_path: Path, text: str, message: str
) -> None:
    # Defining the class never raises: the app's import reaches app_or_exit, which prints
    # the message once and exits 3, instead of a traceback at import.
    cls = settings_class(tmp_path, text, env_prefix="OTHER_")
    with pytest.raises(ConfigError, match=message):
        cls.load()


@pytest.mark.usefixtures("clean_environment")
def test_a_missing_profiles_file_names_the_path_and_the_fix(tmp_path: Path) -> None:
    class Missing(CORSSettings):
        model_config = CORSConfigDict(cors_profiles=tmp_path / "nowhere.toml")

    with pytest.raises(ConfigError, match=r"nowhere\.toml' does not exist: create it"):
        Missing.load()


@pytest.mark.usefixtures("clean_environment")
def test_the_start_up_line_reads_the_environment_from_dotenv(tmp_path: Path) -> None:
    cls = settings_class(tmp_path, PROFILES.replace(', "null"', ""))
    (tmp_path / ".env").write_text("ENVIRONMENT=prod\n", encoding="utf-8")
    settings = cls.load()
    assert settings.environment == "prod"
    line = startup_line(settings)
    assert line.startswith("CORS policy in force: ENVIRONMENT=prod (from .env); origins ")
    assert "not set" not in line
    assert "from variables" not in line


@pytest.mark.usefixtures("clean_environment")
def test_path_policy_variables_are_named_in_the_start_up_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = settings_class(tmp_path, PROFILES.replace(', "null"', ""))
    monkeypatch.setenv("CORS_PATH_POLICIES__PUBLIC__PREFIXES", "/public")
    monkeypatch.setenv("CORS_PATH_POLICIES__PUBLIC__ALLOW_ORIGINS", "*")
    line = startup_line(cls.load())
    assert "path policies public (/public)" in line
    assert line.endswith(
        "from variables: CORS_PATH_POLICIES__PUBLIC__ALLOW_ORIGINS, "
        "CORS_PATH_POLICIES__PUBLIC__PREFIXES"
    )


@pytest.mark.usefixtures("clean_environment")
def test_a_relative_profiles_path_is_read_beside_the_settings_module(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    class Relative(CORSSettings):
        model_config = CORSConfigDict(cors_profiles="sample/settings.toml")

    monkeypatch.chdir(tmp_path)  # not where the server starts: where this module is
    assert Relative.profiles().path == Path(__file__).parent / "sample" / "settings.toml"
    assert Relative.load().environment == "development"


@pytest.mark.usefixtures("clean_environment")
def test_plain_construction_reports_like_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Existing apps write Settings(); it gives the same one message as Settings.load().
    cls = settings_class(tmp_path, PROFILES.replace(', "null"', ""))
    monkeypatch.setenv("CORS_ALLOW_ORIGINS", "http://localhost:3000/app")
    with pytest.raises(ConfigError, match=r"CORS_ALLOW_ORIGINS='http://localhost:3000/app' \(set"):
        cls()
    monkeypatch.delenv("CORS_ALLOW_ORIGINS")
    monkeypatch.setenv("CORS_ALOW_ORIGINS", "https://a.example.com")
    with pytest.raises(ConfigError, match="did you mean CORS_ALLOW_ORIGINS"):
        cls()


@pytest.mark.usefixtures("clean_environment")
def test_the_app_names_its_production_profiles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = PROFILES.replace("[environments.prod]", "[environments.live]")
    cls = settings_class(tmp_path, text, cors_production_environments=["live"])  # type: ignore[arg-type]
    monkeypatch.setenv("ENVIRONMENT", "live")
    with pytest.raises(ConfigError, match="'null' is refused in production"):
        cls.load()
    assert settings_class(tmp_path, text).load(environment="live").cors_allow_origins[-1] == "null"
