"""Every question's validator: good answers pass, bad ones are refused with the fix.

The origin rules exist twice, in Jinja for the questionnaire (validators/cors.jinja) and
in Python for start-up (engine/src/corsguard/origins.py); one table checks that
both accept and refuse the same entries with the same message.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import jinja2
import pytest
from jinja2.sandbox import SandboxedEnvironment
from jinja2_ansible_filters import AnsibleCoreFiltersExtension

from .conftest import ROOT, render


def refusal(template: Path, tmp_path: Path, data: dict[str, Any]) -> str:
    with pytest.raises(ValueError, match="Validation error") as error:
        render(template, tmp_path / "out", data)
    assert not (tmp_path / "out" / "pyproject.toml").exists()
    return str(error.value)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"project_name": "  "}, "must not be empty"),
        ({"package_name": "Orders-API"}, "'Orders-API' is not a valid package name"),
        ({"package_name": "2fast"}, "start with a lower-case letter"),
        ({"package_name": "billing_"}, "do not end with _"),
        ({"package_name": "class"}, "is a Python keyword"),
        ({"package_name": "fastapi"}, "would shadow a module"),
        ({"environments": []}, "at least one environment"),
        ({"production": "http://localhost:3000/app"}, "use 'http://localhost:3000'"),
        ({"production": "localhost:3000"}, "has no scheme: write 'http://localhost:3000'"),
        ({"production": "ftp://a.example.com"}, "scheme 'ftp'"),
        ({"production": "https://a.example.com https://b.example.com"}, "contains a space"),
        ({"production": "https://a.example.com:70000"}, "bad port '70000'"),
        ({"production": "https://*.com"}, "broader than a registrable domain"),
        ({"production": "https://*.co.uk"}, "'https://*.example.co.uk'"),
        ({"production": "null"}, "'null' is refused in production"),
        ({"staging": "https://u:p@a.example.com"}, "contains user info"),
        ({"development": "http://localhost:3000,,http://localhost:5173"}, "extra comma"),
        (
            {"production": "*", "cors_allow_credentials": True},
            "production: '*' with credentials (answered yes) is refused by browsers",
        ),
        (
            {
                "cors_origins": {"development": [], "staging": ["*"], "production": []},
                "cors_allow_credentials": True,
            },
            "staging: '*' with credentials (answered yes) is refused by browsers",
        ),
        (
            {"staging": "HTTPS://App.Example.com, https://app.example.com/"},
            "staging: 'https://app.example.com/' repeats 'HTTPS://App.Example.com'",
        ),
        (
            {
                "cors_origins": {
                    "development": [],
                    "staging": [],
                    "production": ["https://a.example.com", "https://a.example.com:443"],
                }
            },
            "production: 'https://a.example.com:443' repeats 'https://a.example.com'",
        ),
        (
            {
                "production": "https://a.example.com",
                "cors_origins": {"development": [], "staging": [], "production": []},
            },
            "production is asked only at generation: change cors_origins",
        ),
        (
            {"environments": ["production"], "cors_origins": {"production": [], "staging": []}},
            "origins are given for 'staging', which is not one of the chosen environments",
        ),
        (
            {"environments": ["staging", "production"], "cors_origins": {"production": []}},
            "no origins are given for 'staging'",
        ),
        ({"cors_origins": ["https://a.example.com"]}, "must map each environment"),
        (
            {
                "environments": ["production"],
                "cors_origins": {"production": ["https://*.github.io"]},
            },
            "production: 'https://*.github.io' is broader than a registrable domain",
        ),
        ({"cors_allow_headers": ["X Bad"]}, "'X Bad' contains a space: separate header names"),
        ({"cors_allow_headers": ["X-A", 123]}, "'123' is not a valid header name"),
        ({"cors_expose_headers": "X-Ok, Bad:Name"}, "'Bad:Name' is not a valid header name"),
        (
            {"cors_expose_headers": ["*"], "cors_allow_credentials": True},
            "'*' with credentials exposes nothing",
        ),
        ({"cors_allow_methods": []}, "at least one method"),
        ({"cors_public_paths": "public"}, "'public' is not a path prefix: start it with '/'"),
        ({"cors_public_paths": ["/"]}, "'/' covers every path"),
        ({"cors_public_paths": "/data?x=1"}, "not a plain path prefix"),
        (
            {"cors_public_paths": "/public", "cors_public_origins": "https://*.com"},
            "cors_public_origins: 'https://*.com' is broader than a registrable domain",
        ),
        (
            {"cors_public_paths": "/public", "cors_public_origins": "null"},
            "'null' is refused in production",
        ),
        ({"cors_max_age": -1}, "'-1' is not a number of seconds from 0 to 86400"),
        ({"cors_max_age": 86401}, "'86401' is not a number of seconds"),
        ({"max_age": "ten"}, "max_age: 'ten' is not a number of seconds"),
        ({"request_headers": "X/Bad, Authorization"}, "'X/Bad' is not a valid header name"),
        (
            {"response_headers": "*", "cors_allow_credentials": True},
            "'*' with credentials exposes nothing",
        ),
        ({"public_paths": "status"}, "'status' is not a path prefix: start it with '/'"),
        ({"env_prefix": "ORDERS"}, "for example 'ORDERS_'"),
        ({"env_prefix": "1X_"}, "is not a usable prefix"),
    ],
)
def test_bad_answer_is_refused_with_the_fix(
    template_repo: Path, tmp_path: Path, data: dict[str, Any], expected: str
) -> None:
    assert expected in refusal(template_repo, tmp_path, data)


@pytest.mark.parametrize(
    "data",
    [
        {"package_name": "orders_api2"},
        {"production": "https://app.example.com, https://*.preview.example.com"},
        {"production": "*"},
        {"production": ""},
        {"staging": "null, https://staging.example.com"},
        {"development": "http://[::1]:3000, http://127.0.0.1:8080"},
        {"cors_allow_headers": "Authorization, X-Request-ID", "cors_expose_headers": ["*"]},
        {"cors_max_age": 86400, "env_prefix": "Orders_"},
        {"cors_public_paths": ["/public", "/status/"]},
        {"cors_public_paths": "/embed", "cors_public_origins": "https://a.example.com, *"},
        {"cors_origin_store": "sqlite"},
        {"cors_origin_store": "postgresql", "kubernetes": True},
    ],
)
def test_good_answer_is_accepted(template_repo: Path, tmp_path: Path, data: dict[str, Any]) -> None:
    project = render(template_repo, tmp_path / "out", data)
    assert (project / "pyproject.toml").exists()


@pytest.mark.parametrize("store", ["mysql", "SQLite", "sqlite:///origins.db", ""])
def test_an_origin_store_that_is_no_choice_is_refused(
    template_repo: Path, tmp_path: Path, store: str
) -> None:
    """Copier checks a choice question itself, and names the value and the choices."""
    with pytest.raises(ValueError, match="Invalid choice") as error:
        render(template_repo, tmp_path / "out", {"cors_origin_store": store})
    assert f"'cors_origin_store': {store!r} is not in ['none', 'sqlite', 'postgresql']" in str(
        error.value
    )
    assert not (tmp_path / "out" / "pyproject.toml").exists()


def test_package_name_defaults_from_project_name(template_repo: Path, tmp_path: Path) -> None:
    project = render(template_repo, tmp_path / "out", {"project_name": "2nd Orders-API (EU)"})
    assert (project / "src" / "nd_orders_api_eu" / "main.py").exists()


# --- The same origin rules in Jinja and in Python -------------------------------------

ORIGIN_TABLE = [
    "https://app.example.com",
    "HTTPS://App.Example.com:443/",
    "http://localhost:80",
    "http://localhost:3000",
    "http://[::1]:3000",
    "https://*.preview.example.com",
    "https://*.example.co.uk:8443",
    "https://*.www.ck",
    "*",
    "null",
    "",
    "http://localhost:3000/app",
    "https://app.example.com/?q",
    "https://app.example.com#x",
    "localhost:3000",
    "app.example.com",
    "ftp://a.example.com",
    "https://a b.example.com",
    "https://a.example.com,https://b.example.com",
    "https://a.example.com:443:443",
    "http://127.1",
    "http://0x7f000001:8080",
    "https://999.1.1.1",
    "https://1.2.3.4.5",
    "http://127.0.0.1:8080",
    "http://[::1]:80",
    "https://*.1.2.3.4",
    "https://user@a.example.com",
    "https://a.example.com:0",
    "https://a.example.com:65536",
    "https://a.example.com:x",
    "https://a.example.com:",
    "https://",
    "https://a.example.com.",
    "https://a_b.example.com",
    "https://-a.example.com",
    "https://a-.example.com",
    "https://*.com",
    "https://*.co.uk",
    "https://*.github.io",
    "https://*.amazonaws.com",
    "https://*.core.windows.net",
    "https://*.railway.app",
    "https://*.kawasaki.jp",
    "https://*.tenant.amazonaws.com",
    "https://*.foo.ck",
    "https://*.localhost",
    "https://a.*.example.com",
    "https://*a.example.com",
    "https://*.*.example.com",
    "https://*.10.0.0.1",
    "https://[zz::1]",
    "https://[::1",
    "http://[0:0:0:0:0:0:0:1]:3000",
    "https://[2001:0DB8::1]",
    "https://[::ffff:1.2.3.4]",
    "https://[1:2]",
    "https://[2001:db8::1:0:0:1]:8443",
    # DNS limits: hosts of at most 253 characters, labels of at most 63.
    "https://" + "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".com",  # 253
    "https://" + "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 58 + ".com",  # 254
    "https://*." + "b" * 63 + "." + "c" * 63 + "." + "d" * 63 + "." + "e" * 56 + ".com",  # 254
    "https://*." + "b" * 63 + "." + "c" * 63 + "." + "d" * 63 + "." + "e" * 55 + ".com",  # 253
    "https://" + "a" * 64 + ".example.com",
]

# IPv6 addresses: the Jinja macro must give what Python's ipaddress gives (browsers
# send the same RFC 5952 form), and nothing for what is not an address.
IPV6_TABLE = [
    "::",
    "::1",
    "1::",
    "0:0:0:0:0:0:0:1",
    "2001:db8::1",
    "2001:0db8::1",
    "2001:db8:0:0:1:0:0:1",
    "1:0:0:2:0:0:0:3",
    "1:0:0:0:2:0:0:3",
    "0:0:1::",
    "fe80::0001",
    "abcd:ef01:2345:6789:abcd:ef01:2345:6789",
    "::1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7::",
    "::ffff:1.2.3.4",
    "::ffff:102:304",
    "::1.2.3.4",
    "1:2:3:4:5:6:1.2.3.4",
    "1.2.3.4::",
    "::ffff:01.2.3.4",
    "::ffff:1.2.3",
    "1::2::3",
    "1:2",
    "1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7:8:9",
    "12345::1",
    ":1:2:3:4:5:6:7",
]


# --- One line of 80 columns ------------------------------------------------------------
# Copier shows a refused interactive answer as one line, "Validation error for question
# 'NAME': " and the validator's first line, cut at the terminal's width; the lines after
# it only reach a scripted run. (data, question named, value, fix): the first line must
# be 'VALUE': FIX within 80 columns, the value shortened in the middle only if it must.
SHOWN = [
    ({"project_name": " "}, "project_name", "", "a name is needed, e.g. Orders API"),
    ({"package_name": "Orders-API"}, "package_name", "Orders-API", "try 'orders_api'"),
    ({"package_name": "class"}, "package_name", "class", "keyword; try 'class_api'"),
    ({"package_name": "fastapi"}, "package_name", "fastapi", "try 'fastapi_api'"),
    (
        {"package_name": "A-Very-Long-Package-Name-That-Goes-On"},
        "package_name",
        "A-Very-Long-Package-Name-That-Goes-On",
        "use a-z, 0-9 and _",
    ),
    (
        {"production": "http://localhost:3000/app"},
        "production",
        "http://localhost:3000/app",
        "drop the path",
    ),
    (
        {"staging": "https://staging.shop.example.com/app?x=1"},
        "staging",
        "https://staging.shop.example.com/app?x=1",
        "drop the path",
    ),
    (
        {"staging": "https://a.example.com?x=1"},
        "staging",
        "https://a.example.com?x=1",
        "drop the query",
    ),
    ({"development": "localhost:3000"}, "development", "localhost:3000", "add http://"),
    ({"production": "app.example.com"}, "production", "app.example.com", "add https://"),
    (
        {"production": "ftp://a.example.com"},
        "production",
        "ftp://a.example.com",
        "use http or https",
    ),
    (
        {"production": "https://a.example.com https://b.example.com"},
        "production",
        "https://a.example.com https://b.example.com",
        "use commas",
    ),
    (
        {"production": "https://a.example.com:70000"},
        "production",
        "https://a.example.com:70000",
        "port 1 to 65535",
    ),
    ({"production": "https://*.co.uk"}, "production", "https://*.co.uk", "name your domain"),
    ({"production": "null"}, "production", "null", "list real origins"),
    ({"test": "http://a.example.com."}, "test", "http://a.example.com.", "drop the final dot"),
    (
        {"development": "http://localhost:3000,,http://localhost:5173"},
        "development",
        "",
        "an extra comma: remove it",
    ),
    (
        {"production": "*", "cors_allow_credentials": True},
        "production",
        "*",
        "credentials on: list origins",
    ),
    (
        {"staging": "HTTPS://App.Example.com, https://app.example.com/"},
        "staging",
        "https://app.example.com",
        "twice: keep one",
    ),
    (
        {"production": "https://[2001:0DB8::1]"},
        "production",
        "https://[2001:0DB8::1]",
        "use [2001:db8::1]",
    ),
    (
        {"production": "x", "cors_origins": {"development": [], "staging": [], "production": []}},
        "production",
        "",
        "use --data cors_origins={...}",
    ),
    ({"request_headers": "X:Bad, Authorization"}, "request_headers", "X:Bad", "use A-Z, 0-9 and -"),
    (
        {"request_headers": "Authorization X-Request-ID"},
        "request_headers",
        "Authorization X-Request-ID",
        "use commas",
    ),
    (
        {"request_headers": "Authorization,,X-Trace"},
        "request_headers",
        "",
        "an extra comma: remove it",
    ),
    ({"response_headers": "X-Id, x-id"}, "response_headers", "x-id", "twice: keep one"),
    ({"public_paths": "/public /status"}, "public_paths", "/public /status", "use commas"),
    ({"public_paths": "/a, /a/"}, "public_paths", "/a/", "twice: keep one"),
    (
        {"public_paths": "/status", "cors_public_origins": "null"},
        "cors_public_origins",
        "null",
        "list real origins",
    ),
    (
        {"public_paths": "/status", "cors_public_origins": "https://*.com"},
        "cors_public_origins",
        "https://*.com",
        "name your domain",
    ),
    (
        {"staging": "https://*.amazonaws.com"},
        "staging",
        "https://*.amazonaws.com",
        "list origins",
    ),
    (
        {"response_headers": "*", "cors_allow_credentials": True},
        "response_headers",
        "*",
        "credentials on: name them",
    ),
    ({"max_age": "ten"}, "max_age", "ten", "use 0 to 86400 seconds"),
    ({"max_age": "90000"}, "max_age", "90000", "use 0 to 86400 seconds"),
    ({"public_paths": "status"}, "public_paths", "status", "start it with '/'"),
    ({"public_paths": "/data?x=1"}, "public_paths", "/data?x=1", "use a plain path"),
    ({"public_paths": "/"}, "public_paths", "/", "that is every path"),
    (
        {"public_paths": "/status", "cors_public_origins": "https://status.example.com/page"},
        "cors_public_origins",
        "https://status.example.com/page",
        "drop the path",
    ),
    ({"env_prefix": "orders"}, "env_prefix", "orders", "try 'ORDERS_'"),
    ({"cors_allow_headers": ["X Bad"]}, "cors_allow_headers", "X Bad", "use commas"),
]


def first_line_parts(message: str, question: str, fix: str) -> str:
    """The value as the first line shows it, after checking the frame around it."""
    first = message.split("\n")[0]
    prefix = f"Validation error for question '{question}': "
    assert len(first) <= 80, f"{len(first)} columns: {first}"
    assert first.startswith(prefix), first
    assert first.endswith(fix), first
    shown = first[len(prefix) : len(first) - len(fix)]
    if not shown:
        return ""
    assert shown.startswith("'") and shown.endswith("': "), first
    return shown[1:-3]


@pytest.mark.parametrize(("data", "question", "value", "fix"), SHOWN)
def test_a_refusal_names_value_and_fix_in_one_line_of_80_columns(
    template_repo: Path, tmp_path: Path, data: dict[str, Any], question: str, value: str, fix: str
) -> None:
    message = refusal(template_repo, tmp_path, data)
    shown = first_line_parts(message, question, fix)
    # http:// or https:// goes first when the value is too long, then its middle.
    values = {value, re.sub(r"^https?://", "", value, flags=re.IGNORECASE)}
    if "…" in shown:
        head, tail = shown.split("…")
        assert any(v.startswith(head) and v.endswith(tail) for v in values), shown
        assert min(len(head), len(tail)) >= 4, shown
    else:
        assert shown in values
    # The lines after the first give the whole message.
    assert len(message.split("\n")) > 1


@pytest.mark.parametrize("question", ["development", "cors_public_origins"])
def test_every_origin_rule_fits_one_line(validators: SandboxedEnvironment, question: str) -> None:
    """Each refused entry of the agreement table, under the shortest and the longest
    question name that asks for origins."""
    macro = validators.from_string(
        "{% from 'validators/cors.jinja' import problems_text, origin_problems %}"
        "{{ problems_text(question, origin_problems(value, 'production', false, question)) }}"
    )
    refused = 0
    for value in ORIGIN_TABLE:
        text = macro.render(question=question, value=value).strip()
        if text:
            refused += 1
            message = f"Validation error for question '{question}': {text}"
            assert len(message.split("\n")[0]) <= 80, message
            assert text.split("\n")[1].startswith(f"{question}: "), text
    assert refused > 30


@pytest.fixture(scope="module")
def origins() -> ModuleType:
    """The engine's origins.py, loaded once for the module's tests."""
    path = ROOT / "engine" / "src" / "corsguard" / "origins.py"
    spec = importlib.util.spec_from_file_location("template_origins", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def validators() -> SandboxedEnvironment:
    """A Jinja environment like Copier's, for importing validators/cors.jinja."""
    return SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(ROOT), extensions=[AnsibleCoreFiltersExtension]
    )


@pytest.fixture(scope="module")
def jinja_rules(validators: SandboxedEnvironment) -> jinja2.Template:
    return validators.from_string(
        "{% from 'validators/cors.jinja' import origin_error, normalize_origin %}"
        "{{ origin_error(value, environment) }}\n{{ normalize_origin(value) }}"
    )


@pytest.mark.parametrize("address", IPV6_TABLE)
def test_jinja_and_python_write_ipv6_addresses_alike(
    validators: SandboxedEnvironment, origins: ModuleType, address: str
) -> None:
    macro = validators.from_string(
        "{% from 'validators/cors.jinja' import ipv6_compressed %}{{ ipv6_compressed(address) }}"
    )
    assert macro.render(address=address) == (origins.ipv6_compressed(address) or "")


@pytest.mark.parametrize("environment", ["staging", "production"])
@pytest.mark.parametrize("value", ORIGIN_TABLE)
def test_jinja_and_python_rules_agree(
    jinja_rules: jinja2.Template, origins: ModuleType, value: str, environment: str
) -> None:
    jinja_error, jinja_normal = jinja_rules.render(value=value, environment=environment).split("\n")
    try:
        python_normal = origins.parse_origin(value, environment=environment)
        python_error = ""
    except origins.OriginError as error:
        python_error = str(error)
    assert jinja_error == python_error
    if not python_error:
        assert jinja_normal == python_normal


def test_the_public_suffix_snapshots_match_the_installed_list() -> None:
    """The questionnaire's copies of the list are what the service reads at start-up."""
    import importlib.util

    path = ROOT / "validators" / "update_public_suffixes.py"
    spec = importlib.util.spec_from_file_location("update_public_suffixes", path)
    assert spec is not None and spec.loader is not None
    update = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(update)
    snapshot = (ROOT / "validators" / "public_suffixes.txt").read_text(encoding="ascii")
    parents = (ROOT / "validators" / "public_suffix_parents.txt").read_text(encoding="ascii")
    assert snapshot == update.render(), "run: uv run python validators/update_public_suffixes.py"
    assert parents == update.render_parents(), (
        "run: uv run python validators/update_public_suffixes.py"
    )
    assert {"amazonaws.com", "core.windows.net", "railway.app"} <= set(parents.split())
