"""Helpers for the tests: profile settings and requests sent straight to the ASGI app."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import httpx
from fastapi import FastAPI

from .service import Settings


def profile_settings(environment: str, **values: Any) -> Settings:
    """The settings of one profile, ignoring any .env file."""
    return Settings(_env_file=None, environment=environment, **values)


def send(
    app: FastAPI,
    method: str,
    path: str = "/health",
    headers: Mapping[str, str] | list[tuple[str, str]] | None = None,
) -> httpx.Response:
    """Send one request through the whole middleware stack, without a network."""

    async def _send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.request(method, path, headers=headers)

    return asyncio.run(_send())
