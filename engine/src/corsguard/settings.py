"""The CORS settings: the environment's profile from settings.toml, overridden by variables.

:class:`CORSSettings` holds every CORS field and its validation; the service's own
``Settings`` (``<package>/settings.py``) subclasses it and adds the owner's fields, which
load the same way. Precedence, highest first: keyword arguments, process environment
variables, a local ``.env`` file, the profile of the selected ``ENVIRONMENT``, the
defaults below. List variables accept a JSON array or comma-separated values; an empty
value means an empty list.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from dotenv import dotenv_values
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from .origins import NULL, WILDCARD, OriginError, is_production, parse_origin
from .store import redacted, store_url_problem

if sys.version_info >= (3, 11):
    from typing import Self

    import tomllib
else:  # pragma: no cover
    import tomli as tomllib
    from typing_extensions import Self

DEFAULT_ENVIRONMENT_VARIABLE = "ENVIRONMENT"


class CORSConfigDict(SettingsConfigDict, total=False):
    """``model_config`` of a :class:`CORSSettings` subclass: pydantic-settings' keys and two
    of this package's.

    ``cors_profiles``: the profiles file (TOML, one ``[environments.NAME]`` table per
    environment, an optional ``[service]`` table); a relative path is taken from the
    directory of the module that defines the settings class. Without it
    there are no profiles: fields come from variables, ``.env`` and defaults.
    ``cors_environment_variable``: the variable that picks the profile (``ENVIRONMENT``).
    ``cors_production_environments``: the profiles where ``null`` is refused (default:
    ``production`` and ``prod``).
    """

    cors_profiles: str | Path | None
    cors_environment_variable: str
    cors_production_environments: tuple[str, ...] | list[str]


@dataclass(frozen=True)
class ServiceFile:
    """The contents of a profiles file (``settings.toml`` in a generated service)."""

    title: str
    env_prefix: str
    default_environment: str | None
    profiles: dict[str, dict[str, Any]]
    path: Path | None = None

    @classmethod
    def read(cls, path: str | Path | None) -> ServiceFile:
        """Read ``path``; None gives no profiles. Raises :class:`ConfigError` naming the file
        and the fix when it is missing or malformed."""
        if path is None:
            return cls(title="", env_prefix="", default_environment=None, profiles={})
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"the CORS profiles file {str(path)!r} does not exist: create it, or point "
                "cors_profiles in the settings' model_config at it (a path relative to the "
                "module is safest: Path(__file__).with_name('settings.toml'))"
            ) from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise ConfigError(
                f"the CORS profiles file {str(path)!r} cannot be read ({error}): fix the TOML"
            ) from None
        service = data.get("service", {})
        environments = data.get("environments", {})
        problem = _file_problem(service, environments)
        if problem:
            raise ConfigError(f"the CORS profiles file {str(path)!r}: {problem}")
        default = service.get("default_environment", next(iter(environments), None))
        return cls(
            title=str(service.get("title", "")),
            env_prefix=str(service.get("env_prefix", "")),
            default_environment=default,
            profiles=environments,
            path=path,
        )


def _file_problem(service: Any, environments: Any) -> str | None:
    if not isinstance(service, dict) or not isinstance(environments, dict):
        return "[service] and [environments.NAME] must be tables"
    unknown = sorted(set(service) - {"title", "env_prefix", "default_environment"})
    if unknown:
        return f"unknown key {unknown[0]!r} in [service]; the keys are title, env_prefix, " + (
            "default_environment"
        )
    for name, profile in environments.items():
        if not isinstance(profile, dict):
            return f"environments.{name} must be a table of settings"
    default = service.get("default_environment")
    if default is not None and default not in environments:
        known = ", ".join(environments) or "none"
        return (
            f"default_environment {default!r} has no [environments.{default}] table "
            f"(profiles: {known}): add it, or name one of them"
        )
    return None


@cache
def _read_profiles(path: Path | None) -> ServiceFile:
    return ServiceFile.read(path)


class ConfigError(Exception):
    """The CORS configuration is invalid; the message names each variable and value."""


def split_list(value: Any) -> Any:
    """Read a list from a JSON array or from comma-separated text.

    ``""`` is an empty list. Text that starts with ``[`` must be a JSON array of
    strings; it is never split on commas as a fallback.
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text == "":
        return []
    if text.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"not a valid JSON array ({error.msg}): write a JSON array of strings such "
                'as ["https://a.example.com"], or comma-separated values'
            ) from None
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise ValueError("the JSON array must contain strings only")
        return items
    items = [item.strip() for item in text.split(",")]
    if "" in items:
        raise ValueError("contains an empty entry: remove the extra comma")
    return items


def origin_list(value: tuple[str, ...], environment: str | None = None) -> tuple[str, ...]:
    """Normalized, de-duplicated origins; ValueError naming the first bad entry."""
    try:
        origins = [parse_origin(entry, environment=environment) for entry in value]
    except OriginError as error:
        raise ValueError(str(error)) from None
    return tuple(dict.fromkeys(origins))


# The IANA HTTP Method Registry, less CONNECT and TRACE, which browsers never send from
# a page. A method outside it is far more likely a typo (GET,FETCH) than a need.
REGISTERED_METHODS = frozenset(
    [
        "ACL",
        "BASELINE-CONTROL",
        "BIND",
        "CHECKIN",
        "CHECKOUT",
        "COPY",
        "DELETE",
        "GET",
        "HEAD",
        "LABEL",
        "LINK",
        "LOCK",
        "MERGE",
        "MKACTIVITY",
        "MKCALENDAR",
        "MKCOL",
        "MKREDIRECTREF",
        "MKWORKSPACE",
        "MOVE",
        "OPTIONS",
        "ORDERPATCH",
        "PATCH",
        "POST",
        "PROPFIND",
        "PROPPATCH",
        "PUT",
        "QUERY",
        "REBIND",
        "REPORT",
        "SEARCH",
        "UNBIND",
        "UNCHECKOUT",
        "UNLINK",
        "UNLOCK",
        "UPDATE",
        "UPDATEREDIRECTREF",
        "VERSION-CONTROL",
    ]
)


def method_list(value: tuple[str, ...]) -> tuple[str, ...]:
    methods = tuple(dict.fromkeys(_token(method, "method").upper() for method in value))
    for method in methods:
        if method != WILDCARD and method not in REGISTERED_METHODS:
            raise ValueError(
                f"{method!r} is not a registered HTTP method that browsers send: check the "
                "spelling (GET, HEAD, POST, PUT, PATCH, DELETE, ...), or use '*' for the "
                "standard ones"
            )
    return methods


def header_list(value: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(_token(header, "header name") for header in value))


def credentials_problem(
    origins: tuple[str, ...], expose: tuple[str, ...], names: tuple[str, str, str]
) -> str | None:
    """What is wrong with credentials on, given the origins and exposed headers, if anything.

    ``names`` are how the message calls the origins, credentials and expose fields.
    """
    origins_name, credentials_name, expose_name = names
    if WILDCARD in origins:
        return (
            f"{origins_name} contains '*' while {credentials_name} is true: browsers refuse "
            "that combination, and reflecting every origin would let any site read your "
            "users' data; list the origins, or turn credentials off"
        )
    if WILDCARD in expose:
        return (
            f"{expose_name} contains '*' while {credentials_name} is true: with credentials "
            "browsers read '*' as a header named '*' and expose nothing; list the header names"
        )
    return None


def path_prefix(value: str) -> str:
    """A path prefix such as ``/public``, without a trailing ``/``."""
    text = value.strip()
    if not text.startswith("/"):
        raise ValueError(f"{text!r} is not a path prefix: start it with '/', as in '/public'")
    if any(char in "?#*%" or char.isspace() for char in text) or {".", ".."} & set(text.split("/")):
        raise ValueError(
            f"{text!r} is not a plain path prefix: no query, fragment, '*', '%', spaces or "
            "dot segments, as in '/public'"
        )
    prefix = text.rstrip("/")
    if not prefix:
        raise ValueError("'/' covers every path: put those settings in the default policy instead")
    return prefix


LIST_FIELDS = ("prefixes", "allow_origins", "allow_methods", "allow_headers", "expose_headers")


class PathPolicy(BaseModel):
    """A CORS policy for the paths under ``prefixes``; the longest matching prefix wins.

    Set from the environment as ``CORS_PATH_POLICIES__<NAME>__<FIELD>``, for example
    ``CORS_PATH_POLICIES__PUBLIC__ALLOW_ORIGINS=*``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    prefixes: Annotated[tuple[str, ...], NoDecode] = Field(min_length=1)
    allow_origins: Annotated[tuple[str, ...], NoDecode] = ()
    allow_credentials: bool = False
    allow_methods: Annotated[tuple[str, ...], NoDecode] = ("GET",)
    allow_headers: Annotated[tuple[str, ...], NoDecode] = ()
    expose_headers: Annotated[tuple[str, ...], NoDecode] = ()
    max_age: int = Field(default=600, ge=0, le=86400)
    # Answering Private Network Access preflights is decided per policy: a public '*'
    # policy does not let every website reach a private network unless asked to.
    allow_private_network: bool = False

    @field_validator(*LIST_FIELDS, mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("prefixes")
    @classmethod
    def _prefixes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(path_prefix(prefix) for prefix in value))

    @field_validator("allow_origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return origin_list(value)

    @field_validator("allow_methods")
    @classmethod
    def _methods(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return method_list(value)

    @field_validator("allow_headers", "expose_headers")
    @classmethod
    def _headers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return header_list(value)


class CORSSettings(BaseSettings):
    """The CORS fields, the environment and the log level; subclass it to add fields.

    Every field, a subclass's too, is set by the variable of the same name (with the
    prefix), by ``.env``, or by the selected environment's profile. Point the subclass at
    its profiles file, and choose the variable that selects the profile::

        class Settings(CORSSettings):
            model_config = CORSConfigDict(
                cors_profiles=Path(__file__).with_name("settings.toml"),
                cors_environment_variable="APP_ENV",  # default: ENVIRONMENT
            )
    """

    model_config = CORSConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        env_nested_delimiter="__",
        frozen=True,
    )

    # Filled in by the profile source: the variable named by cors_environment_variable,
    # else the profiles file's default_environment, else its first profile.
    environment: str = ""
    cors_allow_origins: Annotated[tuple[str, ...], NoDecode] = ()
    cors_allow_credentials: bool = False
    cors_allow_methods: Annotated[tuple[str, ...], NoDecode] = ("GET",)
    cors_allow_headers: Annotated[tuple[str, ...], NoDecode] = ()
    cors_expose_headers: Annotated[tuple[str, ...], NoDecode] = ()
    cors_max_age: int = Field(default=600, ge=0, le=86400)
    cors_allow_private_network: bool = False
    cors_path_policies: dict[str, PathPolicy] = {}
    # Cross-origin write protection: an unsafe request that a browser marks as
    # cross-origin, from an origin the path's policy does not allow, is refused (403).
    cors_cross_origin_protection: bool = True
    cors_cross_origin_bypass: Annotated[tuple[str, ...], NoDecode] = ()
    # Run-time origins (corsguard.store): a sqlite:/// or postgresql:// URL, "" for none.
    cors_origin_store: str = ""
    # A store unreachable at start-up: false serves the static profile and says so (the
    # watcher keeps trying), true refuses to start.
    cors_origin_store_required: bool = False
    # Seconds between reloads when no change is pushed (a row written by hand, a lost push).
    cors_origin_poll: float = Field(default=30.0, ge=1.0, le=3600.0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        # A missing or malformed profiles file, or a prefix that disagrees with it, is
        # reported by load() (inside app_or_exit: one message, exit 3), not at import.
        try:
            cls._apply_profiles_prefix()
        except ConfigError as error:
            cls._class_error = error
        else:
            cls._class_error = None

    _class_error: ClassVar[ConfigError | None] = None

    @classmethod
    def _apply_profiles_prefix(cls) -> None:
        """The profiles file may name the variables' prefix ([service] env_prefix, as a
        generated service's does); a prefix the class sets itself must agree with it."""
        service = cls.profiles()
        own = str(cls.model_config.get("env_prefix", ""))
        if service.env_prefix and own and own.upper() != service.env_prefix.upper():
            raise ConfigError(
                f"{cls.__name__} sets env_prefix={own!r} but {service.path} says "
                f"env_prefix = {service.env_prefix!r}: keep one of them"
            )
        if service.env_prefix and not own:
            cls.model_config["env_prefix"] = service.env_prefix

    @classmethod
    def profiles(cls) -> ServiceFile:
        """The profiles file this class reads (read once per path)."""
        path = cls.model_config.get("cors_profiles")
        if path is None:
            return _read_profiles(None)
        path = Path(path)
        if not path.is_absolute():
            # Relative to the module that defines the settings, not to the directory the
            # server happens to start in.
            module = sys.modules.get(cls.__module__)
            where = getattr(module, "__file__", None)
            path = (Path(where).parent if where else Path.cwd()) / path
        return _read_profiles(path.resolve())

    @classmethod
    def is_production(cls, environment: str | None) -> bool:
        """Whether ``environment`` is production, where 'null' is refused: the names in
        ``cors_production_environments`` (default: production, prod), in any case."""
        names = cls.model_config.get("cors_production_environments")
        if names is None:
            return is_production(environment)
        return environment is not None and environment.lower() in {n.lower() for n in names}

    @classmethod
    def environment_variable(cls) -> str:
        """The name of the variable that picks the profile."""
        name = cls.model_config.get("cors_environment_variable")
        return str(name or DEFAULT_ENVIRONMENT_VARIABLE)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Checked here, so that Settings() reports them as load() does.
        _cors_class(settings_cls)._check_variables()
        # The environment is read from its own variable only (never as <prefix>ENVIRONMENT).
        return (
            init_settings,
            EnvironmentSource(settings_cls, dotenv_settings),
            WithoutEnvironment(env_settings),
            WithoutEnvironment(dotenv_settings),
            ProfileSource(settings_cls),
        )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("environment")
    @classmethod
    def _known_environment(cls, value: str) -> str:
        profiles = cls.profiles().profiles
        if profiles and value not in profiles:
            known = ", ".join(profiles)
            raise ValueError(f"unknown environment: use one of {known}")
        return value

    @field_validator(
        "cors_allow_origins",
        "cors_allow_methods",
        "cors_allow_headers",
        "cors_expose_headers",
        "cors_cross_origin_bypass",
        mode="before",
    )
    @classmethod
    def _split(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("cors_allow_origins")
    @classmethod
    def _valid_origins(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        environment = info.data.get("environment")
        return origin_list(value, "production" if cls.is_production(environment) else environment)

    @field_validator("cors_allow_methods")
    @classmethod
    def _upper_methods(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return method_list(value)

    @field_validator("cors_allow_headers", "cors_expose_headers")
    @classmethod
    def _header_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return header_list(value)

    @field_validator("cors_origin_store")
    @classmethod
    def _store_url(cls, value: str) -> str:
        problem = store_url_problem(value.strip())
        if problem:
            raise ValueError(problem)
        return value.strip()

    @field_validator("cors_cross_origin_bypass")
    @classmethod
    def _bypass_prefixes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(prefix.strip().rstrip("/") == "" for prefix in value):
            raise ValueError(
                "'/' would exempt every path: turn the protection off with "
                f"{cls.env_name('cors_cross_origin_protection')}=false instead, or name the "
                "paths that need it, as in '/webhooks'"
            )
        return tuple(dict.fromkeys(path_prefix(prefix) for prefix in value))

    @field_validator("cors_path_policies")
    @classmethod
    def _policy_names(cls, value: dict[str, PathPolicy]) -> dict[str, PathPolicy]:
        for name in value:
            if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                raise ValueError(
                    f"path policy name {name!r} is not usable: use lower-case letters, "
                    "digits and '_', starting with a letter, as in 'public'"
                )
        return value

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Self:
        if self.cors_allow_credentials:
            names = (
                self.policy_env_name(None, "allow_origins"),
                self.policy_env_name(None, "allow_credentials"),
                self.policy_env_name(None, "expose_headers"),
            )
            problem = credentials_problem(self.cors_allow_origins, self.cors_expose_headers, names)
            if problem:
                raise ValueError(problem)
        owners: dict[str, str] = {}
        for name, policy in self.cors_path_policies.items():
            if policy.allow_credentials:
                names = (
                    self.policy_env_name(name, "allow_origins"),
                    self.policy_env_name(name, "allow_credentials"),
                    self.policy_env_name(name, "expose_headers"),
                )
                problem = credentials_problem(policy.allow_origins, policy.expose_headers, names)
                if problem:
                    raise ValueError(problem)
            if self.is_production(self.environment) and NULL in policy.allow_origins:
                raise ValueError(
                    f"{self.policy_env_name(name, 'allow_origins')} contains 'null', which is "
                    "refused in production: any site can send it; list the real origins instead"
                )
            for prefix in policy.prefixes:
                if prefix in owners:
                    raise ValueError(
                        f"the path prefix {prefix!r} is in both {owners[prefix]!r} and {name!r} "
                        f"path policies ({self.env_name('cors_path_policies')}): keep it in one"
                    )
                owners[prefix] = name
        return self

    @classmethod
    def _check_variables(cls) -> None:
        """A bad profiles file, or a variable that looks like a setting but is none."""
        if cls._class_error is not None:
            raise ConfigError(
                f"Invalid configuration; the service cannot start:\n  {cls._class_error}"
            )
        misspelt = unknown_variables(cls)
        if misspelt:
            raise ConfigError(
                "Invalid configuration; the service cannot start:\n"
                + "\n".join(f"  {problem}" for problem in misspelt)
            )

    @model_validator(mode="wrap")
    @classmethod
    def _one_message(cls, data: Any, handler: Callable[[Any], Any]) -> Any:
        """Every validation error as one :class:`ConfigError`, for ``Settings()`` too."""
        try:
            return handler(data)
        except ValidationError as error:
            raise ConfigError(describe(error, cls)) from None

    @classmethod
    def load(cls, **values: Any) -> Self:
        """Read the settings, turning every validation error into one :class:`ConfigError`.

        ``values`` take precedence over every source, as keyword arguments do.
        """
        try:
            return cls(**values)
        except ValidationError as error:
            raise ConfigError(describe(error, cls)) from None
        except SettingsError as error:
            # pydantic-settings could not decode a variable (a JSON object such as
            # CORS_PATH_POLICIES); its message names the field.
            raise ConfigError(
                f"Invalid configuration; the service cannot start:\n  {error}: write a JSON "
                f"object, or set single fields such as "
                f"{cls.policy_env_name('public', 'prefixes')}=/public"
            ) from None

    @property
    def default_policy(self) -> PathPolicy:
        """The default policy's fields in the shape of a path policy (without prefixes)."""
        return PathPolicy.model_construct(
            prefixes=(),
            allow_origins=self.cors_allow_origins,
            allow_credentials=self.cors_allow_credentials,
            allow_methods=self.cors_allow_methods,
            allow_headers=self.cors_allow_headers,
            expose_headers=self.cors_expose_headers,
            max_age=self.cors_max_age,
            allow_private_network=self.cors_allow_private_network,
        )

    @classmethod
    def policy_env_name(cls, policy: str | None, field: str) -> str:
        """The variable that sets ``field`` (such as ``allow_origins``) of a policy.

        ``policy`` None is the default policy.
        """
        if policy is None:
            return cls.env_name(f"cors_{field}")
        return cls.env_name(f"cors_path_policies__{policy}__{field}")

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable that sets ``field``."""
        if field == "environment":
            return cls.environment_variable()
        return f"{cls.model_config.get('env_prefix', '')}{field}".upper()


_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


def _token(value: str, what: str) -> str:
    if not value or not set(value) <= _TOKEN_CHARS:
        raise ValueError(
            f"{value!r} is not a valid {what}: use letters, digits and hyphens, as in "
            "X-Request-ID, and separate names with commas"
        )
    return value


class EnvironmentSource(PydanticBaseSettingsSource):
    """The ``environment`` field from its own variable (``ENVIRONMENT`` unless the class
    names another), in the process environment or else in the ``.env`` file that
    ``dotenv`` reads; names compare case-insensitively, as pydantic-settings' do."""

    def __init__(self, settings_cls: type[BaseSettings], dotenv: PydanticBaseSettingsSource):
        super().__init__(settings_cls)
        self.dotenv = dotenv

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        cls = _cors_class(self.settings_cls)
        found = environment_setting(cls, getattr(self.dotenv, "env_file", None))
        return {} if found is None else {"environment": found[0]}


def environment_setting(settings_cls: type[CORSSettings], env_file: Any) -> tuple[str, str] | None:
    """The value of the variable that picks the profile, and where it is set ("the
    environment", else ".env" read from ``env_file``); None when it is set nowhere. Names
    compare case-insensitively, as pydantic-settings' do."""
    wanted = settings_cls.environment_variable().upper()
    for name, value in os.environ.items():
        if name.upper() == wanted:
            return value, "the environment"
    for name, value in dotenv_file_values(env_file).items():  # read only when needed
        if name.upper() == wanted:
            return value, ".env"
    return None


class WithoutEnvironment(PydanticBaseSettingsSource):
    """A pydantic-settings source with its ``environment`` value dropped: that field has a
    variable of its own (:class:`EnvironmentSource`), never ``<prefix>ENVIRONMENT``."""

    def __init__(self, source: PydanticBaseSettingsSource):
        super().__init__(source.settings_cls)
        self.source = source

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values = self.source()
        values.pop("environment", None)
        return values


class ProfileSource(PydanticBaseSettingsSource):
    """The profile of the selected environment, read from the profiles file.

    The environment itself comes from the sources above this one (keyword arguments,
    its variable or ``.env``), which pydantic-settings passes on as current state;
    without one, the file's default environment is chosen, and given as the value.
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        service = _cors_class(self.settings_cls).profiles()
        environment = self.current_state.get("environment")
        chosen: dict[str, Any] = {}
        if environment is None:
            environment = service.default_environment
            if environment is not None:
                chosen["environment"] = environment
        profile = dict(service.profiles.get(str(environment), {}))
        fields = self.settings_cls.model_fields
        unknown = sorted(set(profile) - set(fields) - {"environment"})
        if unknown:
            # A misspelt key would otherwise be ignored, and its field silently default.
            where = service.path.name if service.path else "the profiles file"
            raise ConfigError(
                "Invalid configuration; the service cannot start:\n  "
                f"{where}, [environments.{environment}]: unknown key "
                f"{unknown[0]!r}; the keys are {', '.join(fields)}"
            )
        profile.pop("environment", None)
        return {**profile, **chosen}


def _cors_class(settings_cls: type[BaseSettings]) -> type[CORSSettings]:
    if not issubclass(settings_cls, CORSSettings):  # pragma: no cover - installed by it
        raise TypeError(f"{settings_cls.__name__} is not a CORSSettings subclass")
    return settings_cls


def dotenv_file_values(env_file: Any) -> dict[str, str]:
    """The variables of a ``.env`` file (or of each of several), as pydantic-settings reads
    them; nothing when there is none."""
    files = env_file if isinstance(env_file, (list, tuple)) else [env_file]
    found: dict[str, str] = {}
    for path in files:
        if isinstance(path, (str, Path)) and Path(path).is_file():
            values = dotenv_values(path)
            found.update({k: v for k, v in values.items() if v is not None})
    return found


def variable_names(settings_cls: type[CORSSettings]) -> set[str]:
    """Every variable the settings read, path-policy fields as their ``__`` pattern."""
    names = {settings_cls.env_name(name) for name in settings_cls.model_fields}
    return names | {settings_cls.policy_env_name("*", name) for name in PathPolicy.model_fields}


def variables_set(settings_cls: type[CORSSettings]) -> dict[str, str]:
    """The process environment and ``.env``, as the settings would read them."""
    found = dotenv_file_values(settings_cls.model_config.get("env_file"))
    found.update(os.environ)
    return found


def unknown_variables(settings_cls: type[CORSSettings]) -> list[str]:
    """Variables that look like this service's CORS settings but are none of them
    (``CORS_ALLOWED_ORIGINS``): the service would silently serve the profile instead."""
    prefix = f"{settings_cls.model_config.get('env_prefix', '')}CORS_".upper()
    known = variable_names(settings_cls)
    problems = []
    for name in sorted(variables_set(settings_cls)):
        upper = name.upper()
        if not upper.startswith(prefix) or upper in known:
            continue
        if fnmatch.fnmatchcase(upper, settings_cls.policy_env_name("*", "*")):
            continue  # a path-policy field: its own validation names a misspelt one
        # A list of origins is meant (CORS_ORIGINS): suggest the origins field, not the store.
        candidates = [k for k in known if k.endswith("ORIGINS")] if "ORIGINS" in upper else known
        closest = difflib.get_close_matches(upper, sorted(candidates), n=1, cutoff=0.6)
        hint = f"did you mean {closest[0]}? " if closest else ""
        problems.append(
            f"{name} is not a setting of this service: {hint}rename or unset it (the "
            f"settings are listed by `corsguard show`)"
        )
    return problems


def unprefixed_variables(settings_cls: type[CORSSettings]) -> list[str]:
    """``CORS_*`` variables this service does not read because it has a prefix."""
    prefix = str(settings_cls.model_config.get("env_prefix", "")).upper()
    if not prefix:
        return []
    return sorted(name for name in os.environ if name.upper().startswith("CORS_"))


# pydantic's generic wording, replaced by what to write instead.
FIXES = {
    "bool_parsing": "write true or false",
    "bool_type": "write true or false",
    "int_parsing": "write a whole number",
    "int_from_float": "write a whole number",
    "literal_error": "write one of {expected}",
}


def problem_message(problem: Any) -> str:
    kind = problem["type"]
    context = problem.get("ctx", {})
    if kind in FIXES:
        return FIXES[kind].format(**context)
    bounded = kind in ("greater_than_equal", "less_than_equal")
    if bounded and problem["loc"] and str(problem["loc"][-1]).endswith("max_age"):
        return "write a number of seconds from 0 to 86400 (Chromium caps it at 7200)"
    return str(problem["msg"]).removeprefix("Value error, ")


def describe(error: ValidationError, settings_cls: type[CORSSettings]) -> str:
    """One line per problem: the variable, its value, where it came from, and the fix."""
    lines = ["Invalid configuration; the service cannot start:"]
    for problem in error.errors():
        message = problem_message(problem)
        if not problem["loc"]:
            lines.append(f"  {message}")
            continue
        field = "__".join(str(part) for part in problem["loc"] if not isinstance(part, int))
        name = settings_cls.env_name(field)
        value = problem["input"]
        shown = value if isinstance(value, str) else json.dumps(value)
        if field == "cors_origin_store" and isinstance(value, str):
            shown = redacted(value)  # a PostgreSQL URL may carry a password
        origin = (
            "set in the environment" if _in_environment(name) else "from .env or the profiles file"
        )
        lines.append(f"  {name}={shown!r} ({origin}): {message}")
    return "\n".join(lines)


def _in_environment(name: str) -> bool:
    """Whether the process environment sets ``name`` or a field below it (any case)."""
    upper = name.upper()
    return any(key.upper() == upper or key.upper().startswith(f"{upper}__") for key in os.environ)
