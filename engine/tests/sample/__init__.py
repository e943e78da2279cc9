"""The service these tests run against: what a generated service's code amounts to."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from corsguard import CORSConfigDict, CORSSettings, add_cors, configure_logging


class Settings(CORSSettings):
    model_config = CORSConfigDict(cors_profiles=Path(__file__).with_name("settings.toml"))


def create_app(settings: Settings | None = None) -> FastAPI:
    if settings is None:
        settings = Settings.load()
    configure_logging(settings.log_level)
    app = FastAPI(title=Settings.profiles().title)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    add_cors(app, settings)
    return app
