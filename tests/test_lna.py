"""Local Network Access replaces Private Network Access: no question asks about it.

Chrome put Private Network Access (PNA) preflights on hold and ships Local Network
Access instead, a permission prompt that needs nothing from the server (Chrome 142,
October 2025). The questions no longer ask whether to answer PNA preflights and the
generated profiles no longer write ``cors_allow_private_network``; the engine keeps the
field readable, off by default, as a legacy setting. A service generated while the
question existed, with ``cors_allow_private_network: true`` recorded, updates without a
conflict, and its owner turns the setting back on by a variable or by hand.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import copier
import pytest
import yaml
from corsguard import CORSConfigDict, CORSSettings

from .conftest import ROOT, copy_template, git, render

PACKAGE = Path("src", "orders_api")
ANSWERS = {"project_name": "Orders API", "package_name": "orders_api"}
SETTINGS_TOML = Path("template", "src", "{{package_name}}", "settings.toml.jinja")

# The question and the profile line as the template had them before Local Network Access.
OLD_QUESTION = """cors_allow_private_network:
  type: bool
  help: |-
    Should public websites reach this service on a private network (answer
       Private Network Access preflights)? Chrome has put these on hold; leave
       this off unless you serve an intranet or a local device.
  default: false

"""
OLD_PROFILE_LINE = (
    "cors_allow_private_network = {{ 'true' if cors_allow_private_network else 'false' }}\n"
)
PROFILE_ANCHOR = "cors_max_age = {{ cors_max_age }}\n"


def questions() -> dict[str, Any]:
    spec = yaml.safe_load((ROOT / "copier.yml").read_text(encoding="utf-8"))
    return {name: value for name, value in spec.items() if not name.startswith("_")}


def profiles(project: Path) -> dict[str, Any]:
    settings = tomllib.loads((project / PACKAGE / "settings.toml").read_text(encoding="utf-8"))
    return dict(settings["environments"])


def restore_the_pna_question(template: Path) -> None:
    """The template as it was before this change: the question and the profile line."""
    copier_yml = template / "copier.yml"
    text = copier_yml.read_text(encoding="utf-8")
    anchor = "env_prefix:\n"
    assert text.count(anchor) == 1, "copier.yml changed: adapt this test"
    copier_yml.write_text(text.replace(anchor, OLD_QUESTION + anchor), encoding="utf-8")
    profile = template / SETTINGS_TOML
    text = profile.read_text(encoding="utf-8")
    assert text.count(PROFILE_ANCHOR) == 1, "settings.toml.jinja changed: adapt this test"
    profile.write_text(text.replace(PROFILE_ANCHOR, PROFILE_ANCHOR + OLD_PROFILE_LINE), "utf-8")


def settings_class(project: Path, profiles_file: str = "settings.toml") -> type[CORSSettings]:
    """The service's settings, as its ``settings.py`` declares them. (The engine reads a
    profiles file once per process: a changed file is read under another name.)"""

    class Settings(CORSSettings):
        model_config = CORSConfigDict(cors_profiles=project / PACKAGE / profiles_file)

    return Settings


# --- The questions and a new service -----------------------------------------------------


def test_no_question_asks_about_private_network_access() -> None:
    found = questions()
    assert not [name for name in found if "private_network" in name]
    helps = " ".join(str(spec.get("help", "")) for spec in found.values())
    assert "Private Network Access" not in helps
    assert "cors_allow_private_network" not in (ROOT / "validators" / "cors.jinja").read_text()


def test_a_generated_profile_does_not_set_it(template_repo: Path, tmp_path: Path) -> None:
    project = render(template_repo, tmp_path / "project", ANSWERS)
    for environment, profile in profiles(project).items():
        assert "cors_allow_private_network" not in profile, environment
    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert "cors_allow_private_network" not in recorded
    readme = (project / "README.md").read_text(encoding="utf-8")
    assert "| `CORS_ALLOW_PRIVATE_NETWORK` |" not in readme  # no longer a per-profile value
    assert "Local Network Access" in readme and "legacy setting" in readme
    # The engine still reads the field: off unless the owner turns it on.
    assert settings_class(project).load(_env_file=None).cors_allow_private_network is False


def test_a_scripted_answer_of_the_old_question_is_ignored(
    template_repo: Path, tmp_path: Path
) -> None:
    """Data files written for the old questions still generate a service."""
    data = {**ANSWERS, "cors_allow_private_network": True}
    project = render(template_repo, tmp_path / "project", data)
    assert all("cors_allow_private_network" not in p for p in profiles(project).values())


# --- A service generated while the question existed --------------------------------------


@pytest.fixture
def updated_service(tmp_path: Path) -> Path:
    """Generated at v1 (the question answered true), committed, updated to v2 (now)."""
    template = tmp_path / "template"
    copy_template(template, "v0")
    restore_the_pna_question(template)
    git(template, "commit", "-q", "-am", "v1: the PNA question")
    git(template, "tag", "v1")
    git(template, "revert", "--no-edit", "HEAD")  # the template as it is on disk
    git(template, "tag", "v2")

    project = tmp_path / "project"
    copier.run_copy(
        str(template),
        str(project),
        data={**ANSWERS, "cors_allow_private_network": True},
        defaults=True,
        vcs_ref="v1",
        quiet=True,
    )
    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert recorded["cors_allow_private_network"] is True
    assert {p["cors_allow_private_network"] for p in profiles(project).values()} == {True}
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "Generate from the template")

    copier.run_update(
        str(project), defaults=True, overwrite=True, conflict="inline", vcs_ref="v2", quiet=True
    )
    return project


@pytest.mark.slow
def test_a_service_with_the_answer_recorded_updates_cleanly(updated_service: Path) -> None:
    project = updated_service
    changed = git(project, "status", "--porcelain").splitlines()
    assert not [line for line in changed if line[:2] in ("UU", "AA", "DU", "UD")], changed
    assert not list(project.rglob("*.rej"))
    for path in project.rglob("*"):
        if path.is_file() and ".git" not in path.relative_to(project).parts:
            text = path.read_text(encoding="utf-8", errors="replace")
            assert not re.search(r"^(<{7}|>{7}) ", text, re.M), path
    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert recorded["_commit"] == "v2"
    # Copier writes only the answers of questions the new version has.
    assert "cors_allow_private_network" not in recorded
    # The profile no longer sets it: the legacy setting is off again ...
    for environment, profile in profiles(project).items():
        assert "cors_allow_private_network" not in profile, environment
    settings = settings_class(project)
    assert settings.load(_env_file=None).cors_allow_private_network is False


def test_the_owner_turns_the_legacy_setting_back_on(
    updated_service: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What docs/updating.md tells an owner who still needs it: the variable, or the key
    kept in settings.toml by hand."""
    monkeypatch.setenv("CORS_ALLOW_PRIVATE_NETWORK", "true")
    by_variable = settings_class(updated_service).load(_env_file=None)
    assert by_variable.cors_allow_private_network is True
    monkeypatch.delenv("CORS_ALLOW_PRIVATE_NETWORK")

    updated = (updated_service / PACKAGE / "settings.toml").read_text(encoding="utf-8")
    kept = "cors_max_age = 600\ncors_allow_private_network = true\n"
    edited = updated_service / PACKAGE / "settings-by-hand.toml"
    edited.write_text(updated.replace("cors_max_age = 600\n", kept), encoding="utf-8")
    by_hand = settings_class(updated_service, edited.name).load(_env_file=None)
    assert by_hand.cors_allow_private_network is True


# --- The documentation ------------------------------------------------------------------


def test_the_docs_call_it_legacy_and_say_what_a_private_service_needs() -> None:
    configuration = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    section = configuration.split("### `CORS_ALLOW_PRIVATE_NETWORK`", 1)[1].split("\n### ", 1)[0]
    assert section.lstrip().startswith("**Legacy.**")
    for needed in ("Chrome 142", "9 October 2024", "targetAddressSpace", "local-network-access"):
        assert needed in section, needed
    assert "Built-in default: `false`" in section
    questions = (ROOT / "docs" / "questions.md").read_text(encoding="utf-8")
    assert "### `cors_allow_private_network`" not in questions
    updating = (ROOT / "docs" / "updating.md").read_text(encoding="utf-8")
    assert "CORS_ALLOW_PRIVATE_NETWORK=true" in updating
