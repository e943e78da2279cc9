"""Journey 1, interactively: a newcomer answers in plain text, with no YAML to write."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pexpect
import pytest
import yaml

COPIER = str(Path(sys.executable).with_name("copier"))

# (text the prompt shows, what the user types): "" accepts the default; a yes/no question
# takes a single key, without Enter; None only waits for the text.
KEY = "key:"
# A prompt of None answers the question still on screen after a refused answer.
CONVERSATION: list[tuple[str | None, str | None]] = [
    ("What is the service called?", "Shop Front"),
    ("Python package name", ""),
    ("Which environments", ""),
    ("Do browsers send cookies", KEY + "y"),
    ("Development: which browser origins", "http://localhost:5173"),
    ("Staging: which browser origins", "https://staging.shop.example.com/app"),
    ("has a path, query or fragment", None),  # refused; the prompt is asked again
    (
        "Staging: which browser origins",
        "https://staging.shop.example.com, https://*.pr.shop.example.com",
    ),
    ("Production: which browser origins", "*"),
    ("'*' with credentials (answered yes) is refused by browsers", None),
    (None, "https://shop.example.com/, HTTPS://Shop.Example.com"),  # the same prompt, again
    ("repeats 'https://shop.example.com/'", None),  # one origin twice, once normalized
    (None, "https://shop.example.com/"),
    ("Which HTTP methods", ""),
    ("Which request headers", "Authorization, X-Request-ID"),
    ("Which response headers", "X-Request-ID"),
    ("How many seconds", ""),
    ("Does the API have public endpoints", "/status"),
    ("Which origins may read the public paths", ""),
    ("Private Network Access", ""),
    ("Prefix for the service's CORS environment variables", ""),
    ("Add Kubernetes manifests", ""),
]


def test_plain_text_answers_make_a_service(template_repo: Path, tmp_path: Path) -> None:
    destination = tmp_path / "shop"
    child = pexpect.spawn(
        COPIER,
        ["copy", "--vcs-ref", "HEAD", str(template_repo), str(destination)],
        encoding="utf-8",
        timeout=30,
        dimensions=(50, 200),
    )
    try:
        for prompt, answer in CONVERSATION:
            if prompt is not None:
                child.expect_exact(prompt)
            if answer is None:
                continue
            if answer.startswith(KEY):
                child.send(answer.removeprefix(KEY))
            elif answer:
                child.send("\x15")  # Ctrl-U: clear the pre-filled default
                child.sendline(answer)
            else:
                child.sendline("")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before

    settings = tomllib.loads((destination / "src/shop_front/settings.toml").read_text())
    profiles = settings["environments"]
    assert profiles["development"]["cors_allow_origins"] == ["http://localhost:5173"]
    assert profiles["staging"]["cors_allow_origins"] == [
        "https://staging.shop.example.com",
        "https://*.pr.shop.example.com",
    ]
    assert profiles["production"]["cors_allow_origins"] == ["https://shop.example.com"]
    assert profiles["production"]["cors_allow_credentials"] is True
    assert profiles["production"]["cors_allow_headers"] == ["Authorization", "X-Request-ID"]
    assert profiles["production"]["cors_path_policies"]["public"]["prefixes"] == ["/status"]
    # One record per answer: the origins live in cors_origins only, and nothing was asked
    # twice (the conversation above has no question for cors_origins).
    answers = yaml.safe_load((destination / ".copier-answers.yml").read_text())
    assert answers["cors_origins"]["production"] == ["https://shop.example.com/"]
    assert not {f"{name}_origins" for name in profiles} & set(answers)


@pytest.fixture(autouse=True)
def _copier_is_installed() -> None:
    assert Path(COPIER).exists(), f"copier is not installed beside {sys.executable}"
