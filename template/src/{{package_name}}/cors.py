"""The CORS policy built from the settings, and its installation in the app.

Validation and normalization happen once, when the settings load; Starlette's
``CORSMiddleware`` then does the header work on every request with ready-made data:
a frozenset of exact origins and one anchored regex for the subdomain patterns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from .origins import WILDCARD, OriginPattern, is_pattern
from .settings import Settings


@dataclass(frozen=True)
class CORSPolicy:
    """What browsers on other origins may do. Built from validated settings."""

    origins: frozenset[str]
    patterns: tuple[OriginPattern, ...]
    allow_credentials: bool
    allow_methods: tuple[str, ...]
    allow_headers: tuple[str, ...]
    expose_headers: tuple[str, ...]
    max_age: int

    @classmethod
    def from_settings(cls, settings: Settings) -> CORSPolicy:
        entries = settings.cors_allow_origins
        return cls(
            origins=frozenset(entry for entry in entries if not is_pattern(entry)),
            patterns=tuple(OriginPattern.parse(entry) for entry in entries if is_pattern(entry)),
            allow_credentials=settings.cors_allow_credentials,
            allow_methods=settings.cors_allow_methods,
            allow_headers=settings.cors_allow_headers,
            expose_headers=settings.cors_expose_headers,
            max_age=settings.cors_max_age,
        )

    @property
    def allows_any_origin(self) -> bool:
        return WILDCARD in self.origins

    @property
    def origin_regex(self) -> str | None:
        """One anchored alternation of every pattern, or None without patterns."""
        if not self.patterns:
            return None
        return "|".join(f"(?:{pattern.regex()})" for pattern in self.patterns)

    def allows_origin(self, origin: str) -> bool:
        """Whether a request carrying this ``Origin`` header may read the response."""
        if self.allows_any_origin or origin in self.origins:
            return True
        regex = self.origin_regex
        return regex is not None and re.fullmatch(regex, origin) is not None


def add_cors(app: FastAPI, policy: CORSPolicy) -> None:
    """Install Starlette's CORS middleware configured with ``policy``."""
    app.add_middleware(
        CORSMiddleware,
        allow_origins=policy.origins,
        allow_origin_regex=policy.origin_regex,
        allow_credentials=policy.allow_credentials,
        allow_methods=policy.allow_methods,
        allow_headers=policy.allow_headers,
        expose_headers=policy.expose_headers,
        max_age=policy.max_age,
    )
