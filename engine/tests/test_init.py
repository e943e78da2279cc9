"""``corsguard init``: layouts found, the app's own origins offered, bad answers refused with
the engine's words, no existing file changed, and a patch that adopts the policy.

Each test writes a small project into a temporary directory and runs the command there, as
its owner would, without a terminal (scripted) unless it says otherwise. The patch init
prints is applied with ``git apply``; the adopted app is then imported in this process and
checked with ``corsguard doctor`` and the policy cases of the profiles init wrote.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import corsguard
from corsguard import doctor
from corsguard.cli import main
from corsguard.init import DEFAULTS, HELP
from corsguard.testing import assert_case, policy_cases

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

pytestmark = pytest.mark.usefixtures("isolated")

SETTINGS = '''
    """Settings."""

    from pydantic_settings import BaseSettings, SettingsConfigDict


    class Settings(BaseSettings):
        model_config = SettingsConfigDict(env_file=".env")

        title: str = "Shop"
'''
MAIN = """
    from fastapi import FastAPI
    from fastapi.middleware.cors import CORSMiddleware

    from {package}.settings import settings

    app = FastAPI(title=settings.title)

    app.add_middleware(
        CORSMiddleware,
        allow_origins={origins},
        allow_credentials={credentials},
        allow_methods=["GET", "POST"],
    )


    @app.get("/health")
    def health() -> dict[str, str]:
        return {{"status": "ok"}}
"""


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """The project's root as the current directory, no old CORS variables, and the
    modules a test imports from its project forgotten afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [name for name in os.environ if doctor.is_old_cors_name(name)]:
        monkeypatch.delenv(name)
    monkeypatch.delenv("ENVIRONMENT", raising=False)
    modules = set(sys.modules)
    yield
    for name in set(sys.modules) - modules:
        del sys.modules[name]


def forget(package: str) -> None:
    """Import the package afresh next time: its files have changed."""
    for name in [n for n in sys.modules if n == package or n.startswith(f"{package}.")]:
        del sys.modules[name]


def write(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


def shop(
    root: Path, package: str, origins: str = '["http://localhost:3000"]', credentials: bool = False
) -> None:
    """A package with module-level settings and app, and a tests folder."""
    write(
        root,
        {
            f"{package}/__init__.py": "",
            f"{package}/settings.py": textwrap.dedent(SETTINGS) + "\n\nsettings = Settings()\n",
            f"{package}/main.py": MAIN.format(
                package=package, origins=origins, credentials=credentials
            ),
            "tests/__init__.py": "",
            "tests/test_health.py": "def test_nothing() -> None:\n    pass\n",
        },
    )


def init(capsys: pytest.CaptureFixture[str], *arguments: str) -> tuple[int, str, str]:
    status = main(["init", *arguments])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def apply(root: Path, patch: str) -> None:
    """``git apply`` in the project, made a repository as an owner's is (so that a
    repository around the temporary directory cannot change where the paths point)."""
    for command in (["git", "init", "--quiet"], ["git", "apply", "-"]):
        result = subprocess.run(  # noqa: S603 - git from PATH, as an owner runs it
            command,
            input=patch,
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, f"{result.stderr}\n{patch}"


def profiles(path: Path) -> dict[str, dict[str, Any]]:
    environments: dict[str, dict[str, Any]] = tomllib.loads(path.read_text())["environments"]
    return environments


def init_with_origins(
    capsys: pytest.CaptureFixture[str], profiles_file: Path, **origins: str
) -> dict[str, dict[str, Any]]:
    """init once more, scripted, each environment's origins given: the profiles written."""
    arguments = ["--yes", "--environments", ",".join(origins)]
    for environment, value in origins.items():
        arguments += ["--origins", f"{environment}={value}"]
    status, _, err = init(capsys, *arguments)
    assert status == 0, err
    return profiles(profiles_file)


# --- Layouts ------------------------------------------------------------------------------


def test_module_level_app_adopts_and_doctor_is_clean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shop(tmp_path, "shop_a")
    status, patch, err = init(
        capsys, "--yes", "--environments", "dev,production",
        "--origins", "production=https://shop.example.com",
    )  # fmt: skip
    assert status == 0, err
    assert "the app is shop_a.main:app (shop_a/main.py)" in " ".join(err.split())
    assert "http://localhost:3000 from shop_a/main.py, line 10" in " ".join(err.split())
    written = profiles(tmp_path / "shop_a" / "cors.toml")
    assert written["dev"]["cors_allow_origins"] == ["http://localhost:3000"]
    assert written["production"]["cors_allow_origins"] == ["https://shop.example.com"]
    assert written["dev"]["cors_allow_methods"] == ["GET", "POST"]
    assert written["dev"]["cors_allow_credentials"] is False
    test = (tmp_path / "tests" / "test_cors_policy.py").read_text()
    assert "from shop_a.settings import Settings" in test
    assert "add_cors(app, case.settings" in test

    # The patch is the only thing on stdout; the files it names are unchanged until applied.
    assert patch.startswith("--- a/shop_a/main.py\n")
    assert "CORSMiddleware" in (tmp_path / "shop_a" / "main.py").read_text()
    apply(tmp_path, patch)
    main_py = (tmp_path / "shop_a" / "main.py").read_text()
    assert "CORSMiddleware" not in main_py
    assert main_py.index("from corsguard import add_cors") < main_py.index("from fastapi")
    assert "add_cors(app, settings)\n" in main_py
    settings_py = (tmp_path / "shop_a" / "settings.py").read_text()
    assert "class Settings(CORSSettings):" in settings_py
    assert 'CORSConfigDict(env_file=".env", cors_profiles="cors.toml")' in settings_py
    assert "pydantic_settings" not in settings_py

    assert main(["doctor", "shop_a.main:app"]) == 0, capsys.readouterr().out
    from shop_a.settings import Settings  # type: ignore[import-not-found]

    cases = policy_cases(Settings)
    assert {case.origin for case in cases if case.allowed} == {
        "http://localhost:3000",
        "https://shop.example.com",
    }


def test_factory_taking_settings_gets_the_layer_before_its_return(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(
        tmp_path,
        {
            "stock/__init__.py": "from .factory import create_app\n",
            "stock/settings.py": SETTINGS.replace('env_file=".env"', 'env_prefix="STOCK_"'),
            "stock/factory.py": """
                from fastapi import FastAPI
                from fastapi.middleware.gzip import GZipMiddleware

                from .settings import Settings


                def create_app(settings: Settings | None = None) -> FastAPI:
                    settings = settings or Settings()
                    app = FastAPI(title=settings.title)
                    app.add_middleware(GZipMiddleware)
                    return app
                """,
            "checks/test_stock.py": "def test_nothing() -> None:\n    pass\n",
            "pyproject.toml": '[tool.pytest.ini_options]\ntestpaths = ["checks"]\n',
        },
    )
    status, patch, err = init(
        capsys, "--yes", "--environment-variable", "STOCK_ENV",
        "--origins", "live=https://stock.example.com", "--expose-headers", "X-Request-ID",
    )  # fmt: skip
    assert status == 0, err
    assert "(stock/factory.py, a factory)" in " ".join(err.split())
    assert "tests are in checks/" in " ".join(err.split())
    written = profiles(tmp_path / "stock" / "cors.toml")
    assert list(written) == ["live"]  # the environments --origins names
    test = (tmp_path / "checks" / "test_cors_policy.py").read_text()
    assert "assert_case(create_app(case.settings(Settings)), case)" in test
    apply(tmp_path, patch)
    factory = (tmp_path / "stock" / "factory.py").read_text()
    assert "    add_cors(app, settings)\n    return app\n" in factory
    settings_py = (tmp_path / "stock" / "settings.py").read_text()
    assert 'cors_environment_variable="STOCK_ENV"' in settings_py
    assert 'env_prefix="STOCK_"' in settings_py
    pyproject = (tmp_path / "pyproject.toml").read_text()
    assert tomllib.loads(pyproject)["tool"]["corsguard"] == {"settings": "stock.settings:Settings"}

    from stock import create_app  # type: ignore[import-not-found]
    from stock.settings import Settings  # type: ignore[import-not-found]

    assert main(["doctor", "stock:create_app"]) == 0, capsys.readouterr().out
    for case in policy_cases(Settings):
        assert_case(create_app(case.settings(Settings)), case)


def test_single_main_py_without_settings_gets_a_settings_class(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(
        tmp_path,
        {
            "main.py": """
                from fastapi import FastAPI

                app = FastAPI()


                @app.get("/")
                def root() -> dict[str, str]:
                    return {"hello": "world"}
                """
        },
    )
    status, patch, err = init(capsys, "--yes", "--origins", "production=https://a.example.com")
    assert status == 0, err
    assert "no settings class: init adds one to main.py" in " ".join(err.split())
    assert (tmp_path / "tests" / "test_cors_policy.py").is_file()  # no tests folder: tests/
    apply(tmp_path, patch)
    text = (tmp_path / "main.py").read_text()
    assert "from corsguard import CORSConfigDict, CORSSettings, add_cors\n" in text
    assert (
        "\n\nclass Settings(CORSSettings):\n"
        '    model_config = CORSConfigDict(cors_profiles="cors.toml")\n'
        "\n\napp = FastAPI()\nadd_cors(app, Settings.load())\n"
    ) in text
    assert main(["doctor", "main:app"]) == 0, capsys.readouterr().out


def test_a_mounted_sub_app_is_not_the_app(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(
        tmp_path,
        {
            "site/__init__.py": "",
            "site/main.py": """
                from fastapi import FastAPI

                public = FastAPI()
                app = FastAPI()
                app.mount("/public", public)
                """,
        },
    )
    status, _, err = init(capsys, "--yes")
    assert status == 0, err
    assert "the app is site.main:app" in " ".join(err.split())


def test_several_apps_need_app(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = "from fastapi import FastAPI\n\nserver = FastAPI()\n"
    write(tmp_path, {"one.py": app, "two.py": app})
    status, _, err = init(capsys, "--yes")
    assert status == 2
    assert "--app" in err
    assert "one:server" in err
    assert "two:server" in err
    assert init(capsys, "--yes", "--app", "two:server")[0] == 0
    assert init(capsys, "--yes", "--app", "three:server", "--profiles", "b.toml")[0] == 2


def test_an_app_already_on_corsguard_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shop(tmp_path, "shop_b")
    settings = tmp_path / "shop_b" / "settings.py"
    settings.write_text(settings.read_text().replace("(BaseSettings)", "(CORSSettings)"))
    status, out, err = init(capsys, "--yes")
    assert (status, out) == (2, "")
    assert "already inherits corsguard's CORSSettings" in err
    assert "corsguard doctor shop_b.main:app" in err


# --- It never changes an existing file ------------------------------------------------------


@pytest.mark.parametrize(
    ("existing", "option"),
    [("shop_c/cors.toml", "--profiles NAME"), ("tests/test_cors_policy.py", "--policy-test PATH")],
)
def test_refuses_to_overwrite(
    existing: str, option: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shop(tmp_path, "shop_c")
    (tmp_path / existing).write_text("# the owner's\n")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    status, out, err = init(capsys, "--yes")
    assert (status, out) == (2, "")
    assert f"{existing} exists already: init never changes an existing file" in err
    assert option in err
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before  # nothing written, nothing changed


def test_another_profiles_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shop(tmp_path, "shop_d")
    (tmp_path / "shop_d" / "cors.toml").write_text("# the owner's\n")
    status, patch, err = init(capsys, "--yes", "--profiles", "browser.toml")
    assert status == 0, err
    assert (tmp_path / "shop_d" / "cors.toml").read_text() == "# the owner's\n"
    assert (tmp_path / "shop_d" / "browser.toml").is_file()
    assert 'cors_profiles="browser.toml"' in patch
    assert init(capsys, "--yes", "--profiles", "../x.toml")[0] == 2
    status, _, err = init(capsys, "--yes", "--profiles", "c.toml", "--policy-test", "../test_x.py")
    assert status == 2
    assert "name a test module inside the project" in err


# --- Bad answers: the engine's message, naming the value and the fix -----------------------


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        (["--origins", "production=https://a.example.com/app"],
         ["--origins production:", "'https://a.example.com/app' has a path", "use 'https://a.example.com'"]),
        (["--origins", "production=a.example.com"],
         ["'a.example.com' has no scheme: write 'https://a.example.com'"]),
        (["--origins", "production=https://*.com"], ["broader than a registrable domain"]),
        (["--origins", "production=https://a.example.com, HTTPS://A.example.com"],
         ["'HTTPS://A.example.com' repeats 'https://a.example.com'", "list it once"]),
        (["--origins", "production=null"], ["'null' is refused in production"]),
        (["--credentials", "--origins", "production=*"],
         ["production contains '*' while credentials is true", "list the origins"]),
        (["--origins", "staging=https://a.example.com"],
         ["'staging', which is not one of the chosen environments (production)"]),
        (["--origins", "https://a.example.com"], ["write ENVIRONMENT=ORIGIN"]),
        (["--methods", "GET,FETCH"], ["--methods:", "'FETCH' is not a registered HTTP method"]),
        (["--methods", ""], ["Choose at least one method."]),
        (["--headers", "X Request"], ["'X Request' is not a valid header name"]),
        (["--headers", "X-Token,x-token"],
         ["'X-Token' is listed twice (header names ignore case)"]),
        (["--credentials", "--expose-headers", "*"],
         ["response_headers contains '*' while credentials is true"]),
        (["--max-age", "ten"], ["'ten': write a number of seconds from 0 to 86400"]),
        (["--public-paths", "status"], ["'status' is not a path prefix: start it with '/'"]),
        (["--environment-variable", "APP-ENV"], ["'APP-ENV' is not a variable name"]),
        (["--environments", "prod uction"], ["'prod uction' is not a usable environment name"]),
    ],
)  # fmt: skip
def test_bad_answers_are_refused(
    arguments: list[str], words: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shop(tmp_path, "shop_e")
    if not any(a.startswith("--origins") for a in arguments) or "staging=" in arguments[-1]:
        arguments = ["--environments", "production", *arguments]
    status, out, err = init(capsys, "--yes", *arguments)
    assert (status, out) == (2, ""), err
    for word in words:
        assert word in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "shop_e" / "cors.toml").exists()


def test_without_a_terminal_every_answer_is_given_or_yes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shop(tmp_path, "shop_f")
    status, _, err = init(capsys)
    assert status == 2
    assert "--environment-variable is not given and there is no terminal to ask in" in err
    assert "--yes" in err
    everything = [
        "--environment-variable", "ENVIRONMENT", "--environments", "production",
        "--no-credentials", "--origins", "production=https://a.example.com",
        "--methods", "GET", "--headers", "", "--expose-headers", "", "--max-age", "60",
        "--public-paths", "/status", "--public-origins", "*",
    ]  # fmt: skip
    status, _, err = init(capsys, *everything)
    assert status == 0, err
    written = profiles(tmp_path / "shop_f" / "cors.toml")["production"]
    assert written["cors_max_age"] == 60
    assert written["cors_allow_headers"] == []
    public = written["cors_path_policies"]
    assert public == {
        "public": {
            "prefixes": ["/status"],
            "allow_origins": ["*"],
            "allow_credentials": False,
            "allow_methods": ["GET", "HEAD"],
            "allow_headers": [],
            "expose_headers": [],
            "max_age": 60,
        }
    }


class Terminal(io.StringIO):
    """stdin as a person's terminal: the lines they type."""

    def isatty(self) -> bool:
        return True


def test_interactive_answers_are_asked_again_until_valid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    shop(tmp_path, "shop_g", origins='["http://localhost:3000/"]', credentials=True)
    typed = [
        "APP_ENV",  # the variable
        "local, prod",
        "",  # credentials: the app's own (yes)
        "",  # local: the app's origin, offered
        "*",  # prod: refused with credentials
        "https://shop.example.com/",
        "", "", "", "", "",  # methods, headers, exposed, max age, public paths
    ]  # fmt: skip
    monkeypatch.setattr(sys, "stdin", Terminal("\n".join(typed) + "\n"))
    status, _, err = init(capsys)
    assert status == 0, err
    assert HELP["cors_allow_credentials"] in err
    assert "   [yes] > " in err
    assert "   [http://localhost:3000] > " in err  # the trailing '/' dropped
    assert "refused: prod contains '*' while credentials is true" in " ".join(err.split())
    written = profiles(tmp_path / "shop_g" / "cors.toml")
    assert written["local"]["cors_allow_origins"] == ["http://localhost:3000"]
    assert written["prod"]["cors_allow_origins"] == ["https://shop.example.com"]
    assert written["prod"]["cors_allow_credentials"] is True


def test_end_of_input_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    shop(tmp_path, "shop_h")
    monkeypatch.setattr(sys, "stdin", Terminal("APP_ENV\n"))
    status, _, err = init(capsys)
    assert status == 2
    assert "end of input" in err
    assert not (tmp_path / "shop_h" / "cors.toml").exists()


# --- Migration: what the app configures today becomes the default answers ----------------


def url_field(settings: Path, default: str) -> None:
    """Give the settings the full-stack template's BACKEND_CORS_ORIGINS: list[AnyHttpUrl]."""
    text = settings.read_text().replace(
        "from pydantic_settings", "from pydantic import AnyHttpUrl\nfrom pydantic_settings"
    )
    field = f"    BACKEND_CORS_ORIGINS: list[AnyHttpUrl] = {default}\n"
    settings.write_text(
        text.replace('    title: str = "Shop"\n', f'    title: str = "Shop"\n{field}')
    )


def test_anyhttpurl_field_with_its_value_in_dotenv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shop(tmp_path, "shop_i", origins="[str(o) for o in settings.BACKEND_CORS_ORIGINS]")
    url_field(tmp_path / "shop_i" / "settings.py", '["http://localhost:8000"]')
    (tmp_path / ".env").write_text(
        'TITLE=Shop\nBACKEND_CORS_ORIGINS=["http://localhost:5173/","HTTPS://Shop.Example.com:443"]\n'
    )
    status, patch, err = init(capsys, "--yes", "--environments", "local")
    assert status == 0, err
    shown = " ".join(err.split())
    assert "BACKEND_CORS_ORIGINS in .env (as AnyHttpUrl it gains a '/'" in shown
    assert "(offered as https://shop.example.com)" in shown
    written = profiles(tmp_path / "shop_i" / "cors.toml")
    assert written["local"]["cors_allow_origins"] == [
        "http://localhost:5173",
        "https://shop.example.com",
    ]
    # The field, its import and its .env line go; TITLE stays.
    assert "-    BACKEND_CORS_ORIGINS: list[AnyHttpUrl]" in patch
    assert "-from pydantic import AnyHttpUrl" in patch
    assert "-BACKEND_CORS_ORIGINS=" in patch
    assert "-TITLE" not in patch
    apply(tmp_path, patch)
    assert main(["doctor", "shop_i.main:app"]) == 0, capsys.readouterr().out


def test_anyhttpurl_default_without_dotenv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shop(tmp_path, "shop_j", origins="[str(o) for o in settings.BACKEND_CORS_ORIGINS]")
    url_field(tmp_path / "shop_j" / "settings.py", '["http://localhost:8000/"]')
    status, _, err = init(capsys, "--yes", "--environments", "local")
    assert status == 0, err
    assert "the default of Settings.BACKEND_CORS_ORIGINS (shop_j/settings.py, line 11)" in " ".join(
        err.split()
    )
    written = profiles(tmp_path / "shop_j" / "cors.toml")
    assert written["local"]["cors_allow_origins"] == ["http://localhost:8000"]


def test_literal_list_through_a_name_and_an_environment_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    shop(tmp_path, "shop_k", origins="origins")
    main_py = tmp_path / "shop_k" / "main.py"
    main_py.write_text(
        main_py.read_text().replace(
            "app = FastAPI(",
            "import os\n\n"
            'origins = os.environ.get("ALLOWED_ORIGINS", "http://localhost:4200").split(",")\n'
            "app = FastAPI(",
        )
    )  # fmt: skip
    status, _, err = init(capsys, "--yes", "--environments", "dev", "--profiles", "one.toml")
    assert status == 0, err
    assert profiles(tmp_path / "shop_k" / "one.toml")["dev"]["cors_allow_origins"] == [
        "http://localhost:4200"
    ]
    monkeypatch.setenv("ALLOWED_ORIGINS", "https://a.example.com,https://b.example.com")
    status, _, err = init(
        capsys, "--yes", "--environments", "dev", "--profiles", "two.toml",
        "--policy-test", "tests/test_policy_two.py",
    )  # fmt: skip
    assert status == 0, err
    assert "ALLOWED_ORIGINS in the environment" in err
    assert profiles(tmp_path / "shop_k" / "two.toml")["dev"]["cors_allow_origins"] == [
        "https://a.example.com",
        "https://b.example.com",
    ]


def test_origins_worked_out_at_run_time_are_asked_for_not_replaced_by_examples(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shop(tmp_path, "shop_r", origins="tenant_origins()")
    main_py = tmp_path / "shop_r" / "main.py"
    main_py.write_text(
        main_py.read_text().replace(
            "app = FastAPI(",
            "def tenant_origins() -> list[str]:\n"
            '    return [line.strip() for line in open("origins.txt")]\n\n\n'
            "app = FastAPI(",
        )
    )  # fmt: skip
    status, _, err = init(capsys, "--yes", "--environments", "development,production")
    assert status == 2, err
    shown = " ".join(err.split())
    assert (
        "not offered: allow_origins=tenant_origins() (shop_r/main.py, line 12) is worked out "
        "when the app runs" in shown
    ), shown
    assert "--origins development=ORIGIN,... is needed: init has no origins to offer" in shown
    assert not (tmp_path / "shop_r" / "cors.toml").exists(), "written without the origins"
    written = init_with_origins(
        capsys, tmp_path / "shop_r" / "cors.toml",
        development="http://localhost:8080", production="https://shop.example.org",
    )  # fmt: skip
    assert written["production"]["cors_allow_origins"] == ["https://shop.example.org"]
    assert written["development"]["cors_allow_origins"] == ["http://localhost:8080"]


def test_an_empty_list_of_origins_takes_the_examples(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shop(tmp_path, "shop_s", origins="[]")
    status, _, err = init(capsys, "--yes", "--environments", "development")
    assert status == 0, err
    assert "not offered" not in err
    written = profiles(tmp_path / "shop_s" / "cors.toml")
    assert written["development"]["cors_allow_origins"] == [
        o.strip() for o in DEFAULTS["development"].split(",")
    ]


def test_wildcard_with_credentials_is_refused_not_offered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shop(tmp_path, "shop_l", origins='["*"]', credentials=True)
    status, _, err = init(capsys, "--yes", "--environments", "development,production")
    assert status == 2
    shown = " ".join(err.split())
    assert (
        "* from shop_l/main.py, line 10: refused: browsers refuse '*' with allow_credentials=True"
        in shown
    )
    assert "give the real origins" in shown
    assert "--origins development=ORIGIN,... is needed" in shown
    written = init_with_origins(
        capsys, tmp_path / "shop_l" / "cors.toml",
        development="http://localhost:8080", production="https://www.example.org",
    )  # fmt: skip
    assert written["production"]["cors_allow_credentials"] is True
    assert written["production"]["cors_allow_origins"] == ["https://www.example.org"]


def test_null_is_offered_outside_production_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shop(tmp_path, "shop_m", origins='["null", "http://localhost:3000"]')
    status, _, err = init(capsys, "--yes", "--environments", "development,production")
    assert status == 0, err
    written = profiles(tmp_path / "shop_m" / "cors.toml")
    assert written["development"]["cors_allow_origins"] == ["null", "http://localhost:3000"]
    assert written["production"]["cors_allow_origins"] == ["http://localhost:3000"]
    assert "not offered, shop_m/main.py, line 10: 'null' is refused in production" in " ".join(
        err.split()
    )


def test_options_routes_are_removed_and_found_in_included_routers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shop(tmp_path, "shop_n")
    write(
        tmp_path,
        {
            "shop_n/items.py": """
                from fastapi import APIRouter, Response

                router = APIRouter(prefix="/items")


                @router.options("")
                def preflight() -> Response:
                    return Response(headers={"Access-Control-Allow-Origin": "*"})


                @router.get("")
                def items() -> list[str]:
                    return []
                """
        },
    )
    main_py = tmp_path / "shop_n" / "main.py"
    main_py.write_text(
        main_py.read_text().replace(
            "from shop_n.settings import settings",
            "from shop_n.items import router\nfrom shop_n.settings import settings",
        )
        + "\n\napp.include_router(router, prefix='/api')\n"
    )
    status, out, _ = main(["doctor", "shop_n.main:app"]), *capsys.readouterr()
    assert status == 1
    assert "route preflight (/api/items) answers OPTIONS itself" in out
    status, patch, err = init(capsys, "--yes")
    assert status == 0, err
    assert "-@router.options" in patch
    assert "-from fastapi import APIRouter, Response" in patch
    apply(tmp_path, patch)
    forget("shop_n")
    assert main(["doctor", "shop_n.main:app"]) == 0, capsys.readouterr().out
    # add_cors comes after the last call that configures the app.
    assert main_py.read_text().endswith(
        "app.include_router(router, prefix='/api')\nadd_cors(app, settings)\n"
    )


# --- Versions older than the engine's floors ------------------------------------------------


def test_pydantic_v1_and_old_fastapi_get_one_message_naming_the_floors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shop(tmp_path, "shop_o")
    settings = tmp_path / "shop_o" / "settings.py"
    settings.write_text(
        settings.read_text().replace(
            "from pydantic_settings import BaseSettings, SettingsConfigDict",
            "from pydantic import BaseSettings",
        )
    )
    (tmp_path / "requirements.txt").write_text("fastapi==0.99.1\npydantic<2\nuvicorn\n")
    status, out, err = init(capsys, "--yes")
    assert (status, out) == (2, "")
    assert err.startswith("corsguard init: the project is older than corsguard supports:")
    assert "requirements.txt pins fastapi==0.99.1; corsguard needs fastapi>=0.128.3" in err
    assert "requirements.txt limits pydantic<2; corsguard needs pydantic>=2.7" in err
    assert "shop_o/settings.py imports BaseSettings from pydantic, which is pydantic v1" in err
    assert "Traceback" not in err
    assert not (tmp_path / "shop_o" / "cors.toml").exists()


def test_installed_and_locked_versions_are_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    shop(tmp_path, "shop_p")
    (tmp_path / "uv.lock").write_text(
        'version = 1\n[[package]]\nname = "pydantic"\nversion = "1.10.13"\n'
    )
    monkeypatch.setattr(doctor, "installed_version", {"fastapi": "0.110.0"}.get)
    status, _, err = init(capsys, "--yes")
    assert status == 2
    assert "fastapi 0.110.0 is installed; corsguard needs fastapi>=0.128.3" in err
    assert "uv.lock has pydantic 1.10.13; corsguard needs pydantic>=2.7" in err


def test_a_mounted_apps_cors_middleware_is_found_and_removed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The "per-router CORS" recipe: a sub-app with a CORSMiddleware of its own."""
    write(
        tmp_path,
        {
            "portal/__init__.py": "",
            "portal/main.py": """
                from fastapi import FastAPI
                from fastapi.middleware.cors import CORSMiddleware

                public = FastAPI()
                public.add_middleware(CORSMiddleware, allow_origins=["*"])


                @public.get("/status")
                def status() -> dict[str, str]:
                    return {"status": "ok"}


                app = FastAPI()
                app.add_middleware(CORSMiddleware, allow_origins=["https://portal.example.com"])
                app.mount("/public", public)
                """,
        },
    )
    assert main(["doctor", "portal.main:app"]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert out.count("[stock-cors-middleware]") == 2
    assert "is still installed on the app mounted at /public (allow_origins=['*'])" in out
    status, patch, err = init(
        capsys, "--yes", "--environments", "production", "--public-paths", "/public"
    )
    assert status == 0, err
    shown = " ".join(err.split())
    assert "portal/main.py, line 5: another CORSMiddleware (public)" in shown
    assert "give the paths it serves a path policy" in shown
    written = profiles(tmp_path / "portal" / "cors.toml")["production"]
    assert written["cors_allow_origins"] == ["https://portal.example.com"]
    assert written["cors_path_policies"]["public"]["allow_origins"] == ["*"]
    apply(tmp_path, patch)
    text = (tmp_path / "portal" / "main.py").read_text()
    assert "CORSMiddleware" not in text
    assert text.endswith('app.mount("/public", public)\nadd_cors(app, Settings.load())\n')
    forget("portal")
    assert main(["doctor", "portal.main:app"]) == 0, capsys.readouterr().out


def test_a_module_level_app_from_its_factory_gets_app_or_exit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(
        tmp_path,
        {
            "depot/__init__.py": "",
            "depot/settings.py": SETTINGS,
            "depot/main.py": """
                from fastapi import FastAPI

                from depot.settings import Settings


                def create_app() -> FastAPI:
                    application = FastAPI(title=Settings().title)
                    return application


                app = create_app()
                """,
        },
    )
    status, patch, err = init(capsys, "--yes", "--origins", "production=https://depot.example.com")
    assert status == 0, err
    assert "the app is depot.main:create_app" in " ".join(err.split())
    apply(tmp_path, patch)
    text = (tmp_path / "depot" / "main.py").read_text()
    assert "from corsguard import add_cors, app_or_exit\n" in text
    assert "    add_cors(application, Settings.load())\n    return application\n" in text
    assert text.endswith("\napp = app_or_exit(create_app)\n")
    assert main(["doctor", "depot.main:app"]) == 0, capsys.readouterr().out


# --- The dependency -----------------------------------------------------------------------

PYPROJECTS = {
    "one line": '[project]\nname = "shop"\ndependencies = ["fastapi", "pydantic-settings"]\n',
    "one a line": (
        '[project]\nname = "shop"\ndependencies = [\n'
        '    "fastapi>=0.128.3",  # the web framework\n    "pydantic-settings"\n]\n\n'
        '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n'
    ),
}


@pytest.mark.parametrize("written", list(PYPROJECTS))
def test_the_dependency_joins_pyprojects_list_as_it_is_written(
    written: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shop(tmp_path, "shop_d")
    (tmp_path / "pyproject.toml").write_text(PYPROJECTS[written])
    status, patch, err = init(capsys, "--yes", "--origins", "production=https://shop.example.com")
    assert status == 0, err
    assert "declare the dependency" not in err
    apply(tmp_path, patch)
    text = (tmp_path / "pyproject.toml").read_text()
    declared = tomllib.loads(text)
    before = tomllib.loads(PYPROJECTS[written])["project"]["dependencies"]
    [requirement] = declared["project"]["dependencies"][len(before) :]
    assert declared["project"]["dependencies"] == [*before, requirement]
    major, minor = corsguard.__version__.split(".")[:2]
    assert requirement == f"corsguard>={major}.{minor}.0,<{major}.{int(minor) + 1}"
    assert declared["tool"]["corsguard"] == {"settings": "shop_d.settings:Settings"}
    if written == "one a line":  # the owner's layout and comment kept
        assert f'    "pydantic-settings",\n    "{requirement}",\n]\n' in text
        assert "# the web framework" in text


def test_a_dependency_list_it_cannot_follow_is_left_to_the_owner(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shop(tmp_path, "shop_e")
    # An inline table for [project]: valid TOML, but no list to add a line to.
    (tmp_path / "pyproject.toml").write_text('project = {name = "shop", dependencies = []}\n')
    status, patch, err = init(capsys, "--yes", "--origins", "production=https://shop.example.com")
    assert status == 0, err
    assert "declare the dependency: uv add 'corsguard>=" in " ".join(err.split())
    apply(tmp_path, patch)
    assert tomllib.loads((tmp_path / "pyproject.toml").read_text())["project"] == {
        "name": "shop",
        "dependencies": [],
    }
