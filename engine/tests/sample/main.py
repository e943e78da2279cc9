"""``uvicorn tests.sample.main:app``: the test service as a server imports it."""

from corsguard import app_or_exit

from . import create_app

app = app_or_exit(create_app)
