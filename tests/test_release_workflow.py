"""The release workflow: one tag publishes the engine and the template together.

GitHub runs .github/workflows/release.yml on a tag; here its steps run locally: the
check that tag, versions and changelogs agree, and the build of the engine's wheel and
sdist with the version the tag names. Publishing itself (trusted publishing) needs the
package index and is only read, not run.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import yaml

from .conftest import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"


def engine_version() -> str:
    text = (ROOT / "engine" / "pyproject.toml").read_text(encoding="utf-8")
    found = re.search(r'^version = "([^"]+)"$', text, re.M)
    assert found
    return found.group(1)


def release_check(root: Path, tag: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(root / ".ci" / "release-check"), tag],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )


def release_tree(tmp_path: Path, version: str) -> Path:
    """The files release-check reads, with both changelogs naming ``version``."""
    tree = tmp_path / "repo"
    (tree / ".ci").mkdir(parents=True)
    (tree / "engine").mkdir()
    (tree / "template").mkdir()
    shutil.copy2(ROOT / ".ci" / "release-check", tree / ".ci")
    shutil.copy2(ROOT / "engine" / "pyproject.toml", tree / "engine")
    shutil.copy2(ROOT / "template" / "pyproject.toml.jinja", tree / "template")
    (tree / "engine" / "CHANGELOG.md").write_text(f"## [{version}] - 2026-12-02\n")
    (tree / "CHANGELOG.md").write_text(f"## [{version}] - 2026-12-02 (commit 0123456789ab)\n")
    return tree


def test_the_template_depends_on_the_engine_it_is_released_with() -> None:
    template = (ROOT / "template" / "pyproject.toml.jinja").read_text(encoding="utf-8")
    assert f'"corsguard>={engine_version()},' in template


def test_release_check_passes_when_everything_names_the_tag(tmp_path: Path) -> None:
    version = engine_version()
    checked = release_check(release_tree(tmp_path, version), f"v{version}")
    assert checked.returncode == 0, checked.stderr
    assert f"agree on {version}" in checked.stdout


def test_release_check_names_each_disagreement(tmp_path: Path) -> None:
    tree = release_tree(tmp_path, engine_version())
    (tree / "engine" / "CHANGELOG.md").write_text("## [0.0.1] - 2026-01-01\n")
    checked = release_check(tree, "v9.9.9")
    assert checked.returncode == 1
    assert "engine/pyproject.toml says version" in checked.stderr
    assert 'depend on "corsguard>=9.9.9,...' in checked.stderr
    assert "engine/CHANGELOG.md has no heading '## [9.9.9]" in checked.stderr
    assert "CHANGELOG.md has no heading '## [9.9.9] - DATE (commit SHA)'" in checked.stderr
    assert release_check(tree, "release-1").returncode == 1


def test_the_build_step_makes_a_wheel_and_sdist_of_the_tagged_version(tmp_path: Path) -> None:
    job = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))["jobs"]["build"]
    [build] = [step["run"] for step in job["steps"] if step.get("name") == "Build corsguard"]
    subprocess.run(
        ["bash", "-c", build.replace("dist", str(tmp_path / "dist"))], cwd=ROOT, check=True
    )
    version = engine_version()
    wheel = tmp_path / "dist" / f"corsguard-{version}-py3-none-any.whl"
    assert (tmp_path / "dist" / f"corsguard-{version}.tar.gz").is_file()
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(f"corsguard-{version}.dist-info/METADATA").decode()
    assert "corsguard/py.typed" in names and "corsguard/testing.py" in names
    assert f"Version: {version}\n" in metadata
    assert "Requires-Dist: starlette" in metadata


def test_publishing_is_trusted_publishing_from_a_tag() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert workflow[True] == {"push": {"tags": ["v*"]}}  # YAML reads the key 'on' as True
    publish = workflow["jobs"]["publish"]
    assert publish["needs"] == "build"
    assert publish["permissions"] == {"id-token": "write"}
    assert [s["uses"] for s in publish["steps"]][-1] == "pypa/gh-action-pypi-publish@release/v1"
    assert "password" not in str(publish), "trusted publishing stores no token"
    assert workflow["permissions"] == {}
