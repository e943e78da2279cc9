"""Journey 1 and 4: generate a service from a set of answers, then use it as its owner would.

Each answer set is rendered once; the fast tests inspect the files, the slow ones run
the generated project's own tool chain (uv sync, pytest, ruff, mypy).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import EXAMPLE_ANSWERS_FILE, PROMPTED, ROOT, check_project, render

EXAMPLE = yaml.safe_load(EXAMPLE_ANSWERS_FILE.read_text(encoding="utf-8"))

ANSWER_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "example": {**EXAMPLE, "kubernetes": True},
    "public-wildcard": {
        "project_name": "Public Data",
        "environments": ["development", "production"],
        "cors_origins": {"development": ["http://localhost:5173"], "production": ["*"]},
        "cors_allow_credentials": False,
        "cors_allow_methods": ["GET", "HEAD"],
        "cors_allow_headers": [],
        "cors_expose_headers": ["*"],
        "cors_max_age": 7200,
    },
    "single-environment": {
        "project_name": "Edge",
        "package_name": "edge_svc",
        "environments": ["production"],
        "production": "https://App.Example.com:443/, https://*.Example.co.uk",
        "cors_allow_credentials": True,
        "cors_allow_headers": "Authorization, X-Trace-Id",
        "cors_expose_headers": "X-Request-ID, X-Total-Count",
        "cors_public_paths": "/public, /status/",
    },
    "env-prefix": {
        "project_name": "Payments",
        "environments": ["development", "test", "staging", "production"],
        "env_prefix": "payments_",
        "test": "",
        "cors_max_age": 0,
    },
    # Run-time origins: one set per store (each a slow case of its own, below).
    "sqlite-store": {
        "project_name": "Tenants",
        "environments": ["development", "test", "production"],
        "test": "",
        "cors_public_paths": "/public",
        "cors_origin_store": "sqlite",
    },
    "postgresql-store": {
        "project_name": "Tenants",
        "env_prefix": "tenants_",
        "cors_allow_credentials": True,
        "cors_origin_store": "postgresql",
    },
}
STORES = {
    name: data["cors_origin_store"]
    for name, data in ANSWER_SETS.items()
    if "cors_origin_store" in data
}
# The engine's version range, as the template writes it (the version it is released with).
ENGINE = re.escape(
    tomllib.loads((ROOT / "engine" / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "version"
    ]
)


@pytest.fixture(scope="session")
def rendered(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("rendered")
    return {name: render(template_repo, root / name, data) for name, data in ANSWER_SETS.items()}


def package_of(project: Path) -> str:
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    return str(pyproject["tool"]["uv"]["build-backend"]["module-name"])


def settings_of(project: Path) -> dict[str, Any]:
    path = project / "src" / package_of(project) / "settings.toml"
    return tomllib.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("answers", ANSWER_SETS)
def test_no_leftover_jinja(rendered: dict[str, Path], answers: str) -> None:
    project = rendered[answers]
    for path in project.rglob("*"):
        assert not path.name.endswith(".jinja"), path
        assert "{{" not in path.name and "{%" not in path.name, path
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            if ".github" in path.parts:
                # GitHub's own expressions, ${{ matrix.python }}, are meant to be there.
                text = re.sub(r"\$\{\{[^{}]*\}\}", "", text)
            assert not re.search(r"\{\{|\{%|\{#|%\}|#\}", text), path


@pytest.mark.parametrize("answers", ANSWER_SETS)
def test_answers_file_records_the_answers(rendered: dict[str, Path], answers: str) -> None:
    recorded = yaml.safe_load((rendered[answers] / ".copier-answers.yml").read_text())
    assert recorded["_commit"] == "v1"
    for key, value in ANSWER_SETS[answers].items():
        if key in PROMPTED:
            continue  # asked under a short name and folded into the recorded answer
        assert recorded[key] == value, key
    assert set(recorded["cors_origins"]) == set(recorded["environments"])
    assert not PROMPTED & set(recorded), "prompt-only answers are not kept"


def test_example_answers_reach_the_profiles(rendered: dict[str, Path]) -> None:
    settings = settings_of(rendered["example"])
    assert settings["service"] == {
        "title": "Orders API",
        "env_prefix": "",
        "default_environment": "development",
    }
    for environment, origins in EXAMPLE["cors_origins"].items():
        profile = settings["environments"][environment]
        assert profile["cors_allow_origins"] == origins
        assert profile["cors_allow_credentials"] is True
        assert profile["cors_allow_methods"] == EXAMPLE["cors_allow_methods"]
        assert profile["cors_allow_headers"] == EXAMPLE["cors_allow_headers"]
        assert profile["cors_expose_headers"] == EXAMPLE["cors_expose_headers"]
        assert profile["cors_max_age"] == 600


def test_spellings_are_normalized_at_generation(rendered: dict[str, Path]) -> None:
    profile = settings_of(rendered["single-environment"])["environments"]["production"]
    assert profile["cors_allow_origins"] == ["https://app.example.com", "https://*.example.co.uk"]
    assert profile["cors_allow_headers"] == ["Authorization", "X-Trace-Id"]


def test_only_chosen_environments_get_profiles(rendered: dict[str, Path]) -> None:
    assert list(settings_of(rendered["single-environment"])["environments"]) == ["production"]
    profiles = settings_of(rendered["env-prefix"])["environments"]
    assert list(profiles) == ["development", "test", "staging", "production"]
    assert profiles["test"]["cors_allow_origins"] == []


def test_env_prefix_is_used_everywhere(rendered: dict[str, Path]) -> None:
    project = rendered["env-prefix"]
    assert settings_of(project)["service"]["env_prefix"] == "PAYMENTS_"
    assert "PAYMENTS_CORS_ALLOW_ORIGINS" in (project / "README.md").read_text()
    assert "PAYMENTS_CORS_ALLOW_ORIGINS" in (project / ".env.example").read_text()


def test_readme_tables_every_variable_per_environment(rendered: dict[str, Path]) -> None:
    readme = (rendered["example"] / "README.md").read_text()
    header = next(line for line in readme.splitlines() if line.startswith("| Variable"))
    assert header.count("|") == 6  # variable, meaning, three environments
    for name in (
        "CORS_ALLOW_ORIGINS",
        "CORS_ALLOW_CREDENTIALS",
        "CORS_ALLOW_METHODS",
        "CORS_ALLOW_HEADERS",
        "CORS_EXPOSE_HEADERS",
        "CORS_MAX_AGE",
        "ENVIRONMENT",
    ):
        assert f"| `{name}` |" in readme, name
    assert "`https://*.preview.orders.example.com`" in readme


# --- Run-time origins: the cors_origin_store answer -----------------------------------


def dependencies_of(project: Path) -> list[str]:
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    return list(pyproject["project"]["dependencies"])


@pytest.mark.parametrize("answers", ANSWER_SETS)
def test_the_store_answer_reaches_the_profiles(rendered: dict[str, Path], answers: str) -> None:
    store = STORES.get(answers, "none")
    project = rendered[answers]
    app = package_of(project).replace("_", "-")
    for environment, profile in settings_of(project)["environments"].items():
        if store == "sqlite":
            expected = (
                "sqlite:///origins.db"
                if environment == "development"
                else f"sqlite:////var/lib/{app}/origins.db"
            )
            assert profile["cors_origin_store"] == expected, environment
        else:
            # postgresql: the URL holds a password, so it comes from a variable only.
            assert "cors_origin_store" not in profile, environment
        if store == "none":
            assert "cors_origin_store_required" not in profile, environment
        else:
            # The documented decision: serve the profile alone while the store is down.
            assert profile["cors_origin_store_required"] is False, environment
    text = (project / "src" / package_of(project) / "settings.toml").read_text(encoding="utf-8")
    assert ("cors_origin_store_required = false: " in text) is (store != "none")


@pytest.mark.parametrize("answers", ANSWER_SETS)
def test_the_engine_dependency_carries_the_driver_of_the_store(
    rendered: dict[str, Path], answers: str
) -> None:
    store = STORES.get(answers, "none")
    [engine] = [name for name in dependencies_of(rendered[answers]) if name.startswith("corsguard")]
    extra = r"\[postgresql\]" if store == "postgresql" else ""
    assert re.fullmatch(rf"corsguard{extra}>={ENGINE},<\d+\.\d+", engine), engine


@pytest.mark.parametrize("answers", ANSWER_SETS)
def test_store_variants_get_their_tests_readme_and_ignores(
    rendered: dict[str, Path], answers: str
) -> None:
    store = STORES.get(answers, "none")
    project = rendered[answers]
    assert (project / "tests" / "test_runtime_origins.py").exists() is (store != "none")
    readme = (project / "README.md").read_text(encoding="utf-8")
    assert ("## Origins added at run time" in readme) is (store != "none")
    assert ("uv run corsguard origins add https://tenant.example.com --by you" in readme) is (
        store != "none"
    )
    assert ("request.app.state.cors_origins" in readme) is (store != "none")
    ignored = (project / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert ("/origins.db" in ignored and "/origins.db-*" in ignored) is (store == "sqlite")
    workflow = (project / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8")
    assert ("TEST_CORS_ORIGIN_STORE" in workflow) is (store == "postgresql")


@pytest.mark.slow
@pytest.mark.parametrize("answers", ANSWER_SETS)
def test_generated_project_passes_its_own_checks(rendered: dict[str, Path], answers: str) -> None:
    project = rendered[answers]
    check_project(project)
