"""Settings: the environment's profile from settings.toml, overridden by the environment.

Precedence, highest first: keyword arguments to :class:`Settings`, process environment
variables, a local ``.env`` file, the profile of the selected ``ENVIRONMENT``, the
defaults below. List variables accept a JSON array or comma-separated values; an empty
value means an empty list.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from .origins import WILDCARD, OriginError, parse_origin

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SETTINGS_FILE = Path(__file__).with_name("settings.toml")
ENVIRONMENT_VARIABLE = "ENVIRONMENT"


@dataclass(frozen=True)
class ServiceFile:
    """The contents of settings.toml, written from the template's answers."""

    title: str
    env_prefix: str
    default_environment: str
    profiles: dict[str, dict[str, Any]]

    @classmethod
    def read(cls, path: Path = SETTINGS_FILE) -> ServiceFile:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        service = data["service"]
        return cls(
            title=service["title"],
            env_prefix=service["env_prefix"],
            default_environment=service["default_environment"],
            profiles=data["environments"],
        )


SERVICE = ServiceFile.read()


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


class Settings(BaseSettings):
    """Service settings. Every CORS field can be set by the variable of the same name."""

    model_config = SettingsConfigDict(
        env_prefix=SERVICE.env_prefix,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        frozen=True,
    )

    environment: str = Field(
        default=SERVICE.default_environment, validation_alias=ENVIRONMENT_VARIABLE
    )
    cors_allow_origins: Annotated[tuple[str, ...], NoDecode] = ()
    cors_allow_credentials: bool = False
    cors_allow_methods: Annotated[tuple[str, ...], NoDecode] = ("GET",)
    cors_allow_headers: Annotated[tuple[str, ...], NoDecode] = ()
    cors_expose_headers: Annotated[tuple[str, ...], NoDecode] = ()
    cors_max_age: int = Field(default=600, ge=0, le=86400)
    cors_allow_private_network: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, dotenv_settings, ProfileSource(settings_cls))

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("environment")
    @classmethod
    def _known_environment(cls, value: str) -> str:
        if value not in SERVICE.profiles:
            known = ", ".join(SERVICE.profiles)
            raise ValueError(f"unknown environment: use one of {known}")
        return value

    @field_validator(
        "cors_allow_origins",
        "cors_allow_methods",
        "cors_allow_headers",
        "cors_expose_headers",
        mode="before",
    )
    @classmethod
    def _split(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("cors_allow_origins")
    @classmethod
    def _valid_origins(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        environment = info.data.get("environment")
        try:
            origins = [parse_origin(entry, environment=environment) for entry in value]
        except OriginError as error:
            raise ValueError(str(error)) from None
        return tuple(dict.fromkeys(origins))

    @field_validator("cors_allow_methods")
    @classmethod
    def _upper_methods(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(_token(method, "method").upper() for method in value))

    @field_validator("cors_allow_headers", "cors_expose_headers")
    @classmethod
    def _header_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(_token(header, "header name") for header in value))

    @model_validator(mode="after")
    def _credentials_rules(self) -> Settings:
        if not self.cors_allow_credentials:
            return self
        if WILDCARD in self.cors_allow_origins:
            raise ValueError(
                f"{self.env_name('cors_allow_origins')} contains '*' while "
                f"{self.env_name('cors_allow_credentials')} is true: browsers refuse that "
                "combination, and reflecting every origin would let any site read your users' "
                "data; list the origins, or turn credentials off"
            )
        if WILDCARD in self.cors_expose_headers:
            raise ValueError(
                f"{self.env_name('cors_expose_headers')} contains '*' while "
                f"{self.env_name('cors_allow_credentials')} is true: with credentials browsers "
                "read '*' as a header named '*' and expose nothing; list the header names"
            )
        return self

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable that sets ``field``."""
        if field == "environment":
            return ENVIRONMENT_VARIABLE
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


class ProfileSource(PydanticBaseSettingsSource):
    """The profile of the selected environment, read from settings.toml.

    The environment itself comes from the sources above this one (keyword arguments,
    ``ENVIRONMENT`` or ``.env``), which pydantic-settings passes on as current state.
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        state = self.current_state
        environment = state.get(ENVIRONMENT_VARIABLE, state.get("environment"))
        if environment is None:
            environment = SERVICE.default_environment
        return dict(SERVICE.profiles.get(str(environment), {}))


def load_settings(**values: Any) -> Settings:
    """Build :class:`Settings`, turning validation errors into one :class:`ConfigError`."""
    try:
        return Settings(**values)
    except ValidationError as error:
        raise ConfigError(describe(error)) from None


def describe(error: ValidationError) -> str:
    """One line per problem: the variable, its value, where it came from, and the fix."""
    lines = ["Invalid configuration; the service cannot start:"]
    for problem in error.errors():
        message = problem["msg"].removeprefix("Value error, ")
        if not problem["loc"]:
            lines.append(f"  {message}")
            continue
        field = str(problem["loc"][0])
        name = Settings.env_name("environment" if field == ENVIRONMENT_VARIABLE else field)
        value = problem["input"]
        shown = value if isinstance(value, str) else json.dumps(value)
        origin = "set in the environment" if name in os.environ else "from .env or settings.toml"
        lines.append(f"  {name}={shown!r} ({origin}): {message}")
    return "\n".join(lines)
