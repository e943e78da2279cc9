"""The service's routers: one module per resource, included in ``main.create_app``."""
