"""Every question's validator: good answers pass, bad ones are refused with the fix.

The origin rules exist twice, in Jinja for the questionnaire (validators/cors.jinja) and
in Python for start-up (template/src/{{package_name}}/cors/origins.py); one table checks that
both accept and refuse the same entries with the same message.
"""

from __future__ import annotations

import importlib.util
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
        ({"production_origins": "http://localhost:3000/app"}, "use 'http://localhost:3000'"),
        ({"production_origins": "localhost:3000"}, "has no scheme: write 'http://localhost:3000'"),
        ({"production_origins": "ftp://a.example.com"}, "scheme 'ftp'"),
        ({"production_origins": "https://a.example.com https://b.example.com"}, "contains a space"),
        ({"production_origins": "https://a.example.com:70000"}, "bad port '70000'"),
        ({"production_origins": "https://*.com"}, "broader than a registrable domain"),
        ({"production_origins": "https://*.co.uk"}, "'https://*.example.co.uk'"),
        ({"production_origins": "null"}, "'null' is refused in production"),
        ({"staging_origins": "https://u:p@a.example.com"}, "contains user info"),
        ({"development_origins": "http://localhost:3000,,http://localhost:5173"}, "extra comma"),
        (
            {"production_origins": "*", "cors_allow_credentials": True},
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
            {"staging_origins": "HTTPS://App.Example.com, https://app.example.com/"},
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
                "production_origins": "https://a.example.com",
                "cors_origins": {"development": [], "staging": [], "production": []},
            },
            "production_origins is asked only at generation: change cors_origins",
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
        ({"cors_allow_headers": ["X Bad"]}, "'X Bad' is not a valid header name"),
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
        ({"cors_max_age": -1}, "out of range"),
        ({"cors_max_age": 86401}, "out of range"),
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
        {"production_origins": "https://app.example.com, https://*.preview.example.com"},
        {"production_origins": "*"},
        {"production_origins": ""},
        {"staging_origins": "null, https://staging.example.com"},
        {"development_origins": "http://[::1]:3000, http://127.0.0.1:8080"},
        {"cors_allow_headers": "Authorization, X-Request-ID", "cors_expose_headers": ["*"]},
        {"cors_max_age": 86400, "env_prefix": "Orders_"},
        {"cors_public_paths": ["/public", "/status/"]},
        {"cors_public_paths": "/embed", "cors_public_origins": "https://a.example.com, *"},
    ],
)
def test_good_answer_is_accepted(template_repo: Path, tmp_path: Path, data: dict[str, Any]) -> None:
    project = render(template_repo, tmp_path / "out", data)
    assert (project / "pyproject.toml").exists()


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


@pytest.fixture(scope="module")
def origins() -> ModuleType:
    """The generated service's origins.py, loaded once for the module's tests."""
    path = ROOT / "template" / "src" / "{{package_name}}" / "cors" / "origins.py"
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
