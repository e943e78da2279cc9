"""The service's settings: add your own fields to :class:`Settings`.

Every CORS field comes from :class:`~.cors.CORSSettings`, which the template maintains.
A field you add here is read like those: from the variable of the same name (upper
case, with the service's variable prefix if it has one), from a local ``.env`` file, or
from the environment's profile in ``settings.toml``, else its default.
"""

from __future__ import annotations

from .cors import CORSSettings


class Settings(CORSSettings):
    """The CORS settings (inherited) and the service's own: add your fields below."""
