"""The documentation site: it builds, and it describes what the template really has.

The pages are written by hand; these tests keep them from drifting. Every question of
copier.yml has a section in questions.md quoting its help, type, default and choices;
every setting of the engine (``CORSSettings`` in engine/src/corsguard/settings.py) has a
section in configuration.md with its built-in default; engine.md names every public
name of ``corsguard.__all__`` and every key of ``CORSConfigDict``; every page is in the
nav; the `corsguard explain` options used in the pages exist; the settings.toml quoted
in environments.md is what the example answers render; and (slow) every command in a
```console block prints what the page shows, run in a service generated from the
example answers.
"""

from __future__ import annotations

import ast
import html
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import EXAMPLE_ANSWERS_FILE, ROOT, render, run

DOCS = ROOT / "docs"
# The CORS engine, a package of its own that the generated service depends on.
ENGINE = ROOT / "engine" / "src" / "corsguard"
MKDOCS = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
QUESTIONS: dict[str, dict[str, Any]] = {
    name: spec
    for name, spec in yaml.safe_load((ROOT / "copier.yml").read_text(encoding="utf-8")).items()
    if not name.startswith("_")
}
EXAMPLE_ANSWERS = yaml.safe_load(EXAMPLE_ANSWERS_FILE.read_text(encoding="utf-8"))
# The package of the service the example answers generate (its settings.toml is quoted).
EXAMPLE_PACKAGE = EXAMPLE_ANSWERS["package_name"]
NOT_LITERAL = object()


# --- Reading the pages ----------------------------------------------------------------


def page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def nav_pages(entries: Any) -> Iterator[str]:
    """Every page named in the nav of mkdocs.yml, at any depth."""
    if isinstance(entries, str):
        yield entries
    elif isinstance(entries, list):
        for entry in entries:
            yield from nav_pages(entry)
    elif isinstance(entries, dict):
        for value in entries.values():
            yield from nav_pages(value)


def code_sections(markdown: str) -> dict[str, str]:
    """The level-3 sections whose heading is one code span: ``### `name` `` -> body."""
    sections: dict[str, str] = {}
    current: str | None = None
    for line in markdown.splitlines():
        heading = re.match(r"^(#{1,6}) (.*)$", line)
        if heading and len(heading.group(1)) <= 3:
            code = re.fullmatch(r"`([^`]+)`", heading.group(2).strip())
            current = code.group(1) if code and len(heading.group(1)) == 3 else None
            if current is not None:
                assert current not in sections, f"two sections for {current}"
                sections[current] = ""
            continue
        if current is not None:
            sections[current] += line + "\n"
    return sections


def plain(text: str) -> str:
    """Text without Markdown quoting, code spans or HTML escapes, on one line."""
    text = re.sub(r"^\s*>\s?", "", text, flags=re.MULTILINE)
    return " ".join(html.unescape(text.replace("`", "")).split())


def console_blocks(markdown: str) -> Iterator[tuple[str, list[str]]]:
    """(command, expected output lines) for each ``$ `` line of each ```console block."""
    for match in re.finditer(r"^( *)```console\n(.*?)^\1```$", markdown, re.DOTALL | re.MULTILINE):
        lines = textwrap.dedent(match.group(2)).splitlines()
        command: str | None = None
        output: list[str] = []
        for line in lines:
            if line.startswith("$ "):
                if command is not None:
                    yield command, output
                command, output = line[2:], []
            elif command is not None and command.endswith("\\"):
                command = command[:-1] + " " + line.strip()
            else:
                output.append(line)
        if command is not None:
            yield command, output


def documented_commands() -> list[tuple[str, str, list[str]]]:
    """(page, command, expected output) for the commands the tests can run."""
    found = []
    for path in sorted(DOCS.glob("*.md")):
        for command, output in console_blocks(path.read_text(encoding="utf-8")):
            words = [w for w in shlex.split(command) if not re.match(r"^[A-Z_][A-Z0-9_]*=", w)]
            if words[:2] == ["uv", "run"]:
                found.append((path.name, command, output))
    return found


def output_matches(expected: list[str], actual: list[str]) -> bool:
    """Line by line; a line that is only ``...`` stands for any number of lines."""
    if not expected:
        return not actual
    if expected[0].strip() == "...":
        return any(output_matches(expected[1:], actual[i:]) for i in range(len(actual) + 1))
    return bool(actual) and expected[0] == actual[0] and output_matches(expected[1:], actual[1:])


def shown(value: Any) -> str:
    """How questions.md writes a literal default (YAML flow style)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(shown(item) for item in value) + "]"
    if value == "":
        return '""'
    return str(value)


def shown_setting(value: Any) -> str:
    """How configuration.md writes a built-in default (as the variable would be set)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list, dict)):
        return json.dumps(list(value) if isinstance(value, tuple) else value)
    if value == "":
        return '""'  # a code span cannot be empty
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 30, as the variable is written, rather than 30.0
    return str(value)


# --- What the template has ------------------------------------------------------------


def settings_fields() -> dict[str, Any]:
    """Environment variable -> built-in default of each field of ``CORSSettings``.

    ``environment`` is read from its own variable (``ENVIRONMENT`` unless the settings
    class names another) and filled in from the profiles file when unset: its default
    is no literal that the pages could quote.
    """
    tree = ast.parse((ENGINE / "settings.py").read_text(encoding="utf-8"))
    constants = {
        node.targets[0].id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Constant)
    }
    settings = next(
        node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "CORSSettings"
    )
    fields: dict[str, Any] = {}
    for statement in settings.body:
        if not isinstance(statement, ast.AnnAssign) or not isinstance(statement.target, ast.Name):
            continue
        name, value = statement.target.id, statement.value
        if name.startswith("_") or "ClassVar" in ast.unparse(statement.annotation):
            continue  # class attributes, not settings
        variable, default = name.upper(), NOT_LITERAL
        keywords = {}
        if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "Field":
            keywords = {keyword.arg: keyword.value for keyword in value.keywords}
            value = keywords.get("default")
        alias = keywords.get("validation_alias") or keywords.get("alias")
        if isinstance(alias, ast.Name):
            variable = constants[alias.id]
        elif isinstance(alias, ast.Constant):
            variable = alias.value
        if value is not None and name != "environment":
            try:
                default = ast.literal_eval(value)
            except ValueError:
                default = NOT_LITERAL
        fields[variable] = default
    return fields


def explain_options() -> set[str]:
    """The options that corsguard's cli.py declares (``--env``, ``--origin``, ...)."""
    tree = ast.parse((ENGINE / "cli.py").read_text(encoding="utf-8"))
    return {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "attr", "") == "add_argument"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and str(node.args[0].value).startswith("--")
    }


# --- The site -------------------------------------------------------------------------


def test_site_builds_strictly(tmp_path: Path) -> None:
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for name in nav_pages(MKDOCS["nav"]):
        built = "index.html" if name == "index.md" else name.removesuffix(".md") + "/index.html"
        assert (site / built).is_file(), built


def test_every_page_is_in_the_nav() -> None:
    pages = {path.relative_to(DOCS).as_posix() for path in DOCS.rglob("*.md")}
    in_nav = list(nav_pages(MKDOCS["nav"]))
    assert len(in_nav) == len(set(in_nav)), f"a page is in the nav twice: {in_nav}"
    assert sorted(pages - set(in_nav)) == [], "pages missing from the nav of mkdocs.yml"
    assert sorted(set(in_nav) - pages) == [], "nav entries of mkdocs.yml without a page"


def test_mkdocs_is_strict_and_fails_on_omitted_pages() -> None:
    assert MKDOCS["strict"] is True
    assert MKDOCS["docs_dir"] == "docs"
    assert MKDOCS["validation"]["nav"]["omitted_files"] == "warn"
    assert MKDOCS["validation"]["links"]["anchors"] == "warn"


# --- questions.md covers copier.yml ----------------------------------------------------


def test_every_question_has_a_section() -> None:
    documented = set(code_sections(page("questions.md")))
    assert sorted(set(QUESTIONS) - documented) == [], "questions of copier.yml not documented"
    assert sorted(documented - set(QUESTIONS)) == [], "sections for questions copier.yml lacks"


def test_questions_are_documented_in_the_order_they_are_asked() -> None:
    documented = [name for name in code_sections(page("questions.md")) if name in QUESTIONS]
    assert documented == [name for name in QUESTIONS if name in documented]


@pytest.mark.parametrize("name", QUESTIONS)
def test_question_section_agrees_with_copier_yml(name: str) -> None:
    spec = QUESTIONS[name]
    section = code_sections(page("questions.md")).get(name)
    assert section is not None, f"questions.md has no section ### `{name}`"
    assert plain(spec["help"]) in plain(section), f"{name}: help text differs from copier.yml"
    assert f"`{spec.get('type', 'str')}`" in section, f"{name}: type"
    assert ("multiselect" in section) == bool(spec.get("multiselect")), f"{name}: multiselect"
    default = spec.get("default")
    if isinstance(default, str) and ("{{" in default or "{%" in default):
        assert "computed" in section.lower(), f"{name}: say how the default is computed"
    else:
        assert f"`{shown(default)}`" in section, f"{name}: default {shown(default)}"
    for choice in spec.get("choices", []):
        assert f"`{choice}`" in section, f"{name}: choice {choice}"
    assert ("**Asked only when**" in section) == ("when" in spec), f"{name}: when"
    assert ("**Validation:**" in section) == ("validator" in spec), f"{name}: validator"


def test_plain_drops_markup_but_keeps_words() -> None:
    assert plain("> Served as `<package>.main:app`,\n> e.g. &quot;x&quot;") == (
        'Served as <package>.main:app, e.g. "x"'
    )
    assert plain("> Served as `<package>.main:app`") != plain("> Served as <package>.app")


# --- configuration.md covers Settings -------------------------------------------------


def test_settings_fields_are_found() -> None:
    fields = settings_fields()
    assert "ENVIRONMENT" in fields and "CORS_ALLOW_ORIGINS" in fields, fields
    assert fields["CORS_MAX_AGE"] == 600


@pytest.mark.parametrize("variable", settings_fields())
def test_every_setting_is_documented_with_its_default(variable: str) -> None:
    section = code_sections(page("configuration.md")).get(variable)
    assert section is not None, f"configuration.md has no section ### `{variable}`"
    default = settings_fields()[variable]
    if default is NOT_LITERAL:
        assert "Built-in default:" in section, variable
    else:
        assert f"Built-in default: `{shown_setting(default)}`" in section, variable


def test_defaults_table_lists_every_setting_with_its_default() -> None:
    rows = {
        match.group(1): match.group(2)
        for match in re.finditer(r"^\| `([A-Z_]+)` \| ([^|]+) \|", page("configuration.md"), re.M)
    }
    assert sorted(rows) == sorted(settings_fields())
    for variable, default in settings_fields().items():
        if default is not NOT_LITERAL:
            assert rows[variable].strip() == f"`{shown_setting(default)}`", variable


def test_configuration_documents_no_setting_that_does_not_exist() -> None:
    documented = set(code_sections(page("configuration.md")))
    assert sorted(documented - set(settings_fields())) == []


# --- engine.md covers corsguard's public interface ------------------------------------


def public_names() -> list[str]:
    """``corsguard.__all__``, read from the engine's ``__init__.py``."""
    tree = ast.parse((ENGINE / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "__all__":
            names = ast.literal_eval(node.value)
            assert isinstance(names, list)
            return [str(name) for name in names]
    raise AssertionError("corsguard/__init__.py has no __all__")


def config_dict_keys() -> list[str]:
    """The keys ``CORSConfigDict`` adds to pydantic-settings' ``SettingsConfigDict``."""
    tree = ast.parse((ENGINE / "settings.py").read_text(encoding="utf-8"))
    config = next(
        node
        for node in tree.body
        if isinstance(node, ast.ClassDef) and node.name == "CORSConfigDict"
    )
    return [
        statement.target.id
        for statement in config.body
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
    ]


def test_engine_page_lists_the_public_interface() -> None:
    names = public_names()
    assert "CORSSettings" in names and "add_cors" in names, names
    text = page("engine.md")
    missing = [name for name in names if f"`{name}`" not in text]
    assert missing == [], f"engine.md does not name {missing}"


def test_engine_page_documents_every_config_dict_key() -> None:
    keys = config_dict_keys()
    assert "cors_profiles" in keys and "cors_environment_variable" in keys, keys
    sections = code_sections(page("engine.md"))
    assert sorted(set(keys) - set(sections)) == [], "CORSConfigDict keys without a section"


# --- Commands quoted in the pages -----------------------------------------------------


def test_explain_commands_use_options_that_exist() -> None:
    options = explain_options()
    assert {"--env", "--origin"} <= options, options
    used = 0
    for path in sorted(DOCS.glob("*.md")):
        text = re.sub(r"\\\n\s*", " ", path.read_text(encoding="utf-8"))  # join continued lines
        for line in text.splitlines():
            if "corsguard explain" in line:
                for option in re.findall(r"(?<![\w-])--[a-z][a-z-]*", line):
                    used += 1
                    assert option in options, f"{path.name}: {option} in {line.strip()!r}"
    assert used > 0


def test_documented_commands_are_found() -> None:
    commands = documented_commands()
    assert len(commands) >= 10
    for name, command, _ in commands:
        assert "uv run corsguard " in command or "uv run python" in command, f"{name}: {command}"


def test_output_matcher() -> None:
    assert output_matches(["a", "...", "d"], ["a", "b", "c", "d"])
    assert output_matches(["a", "...", "b"], ["a", "b"])
    assert not output_matches(["a", "...", "d"], ["a", "b", "c"])
    assert not output_matches(["a"], ["a", "b"])


def test_quoted_settings_toml_is_what_the_example_answers_render(
    template_repo: Path, tmp_path: Path
) -> None:
    project = render(template_repo, tmp_path / "orders-api", EXAMPLE_ANSWERS)
    rendered = (project / "src" / EXAMPLE_PACKAGE / "settings.toml").read_text(encoding="utf-8")
    quoted = re.search(
        r"^```toml\n(# Service settings.*?)^```$", page("environments.md"), re.S | re.M
    )
    assert quoted is not None, "environments.md quotes no settings.toml"
    assert quoted.group(1) == rendered


def run_documented(project: Path, command: str) -> list[str]:
    """Run a documented ``[VAR=value ...] uv run ...`` command in ``project``."""
    words = shlex.split(command)
    assignments = {}
    while re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
        name, _, value = words.pop(0).partition("=")
        assignments[name] = value
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VIRTUAL_ENV", "UV_PROJECT", "PYTEST_"))
        and "CORS_" not in key
        and key not in ("ENVIRONMENT", "LOG_LEVEL")
    }
    environment.update(assignments)
    result = subprocess.run(
        ["uv", "run", "--no-sync", *words[2:]],
        cwd=project,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = (result.stdout + result.stderr).rstrip("\n").splitlines()
    return [line.rstrip() for line in lines]


@pytest.mark.slow
def test_quoted_commands_print_what_the_pages_say(template_repo: Path, tmp_path: Path) -> None:
    project = render(template_repo, tmp_path / "orders-api", EXAMPLE_ANSWERS)
    # Bytecode at install: the 25 commands below are 25 fresh processes, each of which
    # would compile FastAPI and pydantic again where PYTHONDONTWRITEBYTECODE is set.
    run(project, "uv", "sync", "--quiet", "--compile-bytecode")
    failures = []
    for name, command, expected in documented_commands():
        actual = run_documented(project, command)
        if not output_matches([line.rstrip() for line in expected], actual):
            failures.append(
                f"{name}: $ {command}\n--- the page says:\n"
                + "\n".join(expected)
                + "\n--- the service prints:\n"
                + "\n".join(actual)
            )
    assert not failures, "\n\n".join(failures)
