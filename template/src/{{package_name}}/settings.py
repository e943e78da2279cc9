"""The service's settings: add your own fields to :class:`Settings`.

Every CORS field comes from :class:`corsguard.CORSSettings`. A field you add here is read
like those: from the variable of the same name (upper case, with the service's variable
prefix if it has one), from a local ``.env`` file, or from the environment's profile in
``settings.toml``, else its default. ``ENVIRONMENT`` picks the profile.
"""

from __future__ import annotations

from pathlib import Path

from corsguard import CORSConfigDict, CORSSettings


class Settings(CORSSettings):
    """The CORS settings (inherited) and the service's own: add your fields below."""

    model_config = CORSConfigDict(cors_profiles=Path(__file__).with_name("settings.toml"))
