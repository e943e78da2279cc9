"""Three existing FastAPI apps, as their owners wrote them before adopting corsguard.

Each is small but shaped like a real one, with its own passing tests:

- ``fullstack``: an ``app/`` package in the layout of FastAPI's full-stack template,
  settings in ``app/core/config.py``, routers under ``app/api/routes/``, a fake database
  fixture in ``tests/conftest.py``, and Starlette's ``CORSMiddleware`` fed by
  ``BACKEND_CORS_ORIGINS``, a list of ``AnyHttpUrl`` set in ``.env`` (so that each origin
  reaches the middleware with the trailing ``/`` that ``AnyHttpUrl`` writes);
- ``factory``: a flat package ``inventory`` with an app factory (``inventory/factory.py:
  create_app``), settings with their own variable prefix in ``inventory/settings.py``, a
  middleware of its own (a request id), a ``CORSMiddleware`` with a literal list and
  exposed headers, and a hand-written ``OPTIONS`` route;
- ``classic``: the older layout of FastAPI's "bigger applications" tutorial, ``app/main.py``,
  ``app/config.py``, ``app/dependencies.py`` and ``app/routers/``, its dependencies in
  ``requirements.txt``, and the CORS tutorial's ``allow_origins=["*"]`` with
  ``allow_credentials=True``.

Each fixture's CORS is what adopting corsguard replaces; ``leftovers`` are the findings
that ``corsguard doctor`` must name before (issue 24, item 2).

``tests/test_adopt.py`` writes each into a temporary directory, runs its tests, applies the
lines that ``docs/existing-app.md`` shows for it, and checks what the app then does. The
attributes of :class:`Fixture` beyond ``files`` say how to drive the adopted app.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path


def _files(files: dict[str, str]) -> dict[str, str]:
    return {path: textwrap.dedent(text).lstrip("\n") for path, text in files.items()}


@dataclass(frozen=True)
class Fixture:
    """An existing app, and how its adopted version is driven."""

    name: str
    description: str
    files: dict[str, str]
    # The dependencies the app installs before adopting (uv pip install ...).
    install: tuple[str, ...]
    # The settings class, as `corsguard --settings` names it.
    settings: str
    # How the corsguard command finds it: "option" (--settings), "pyproject"
    # ([tool.corsguard], which the page adds) or "variable" (CORSGUARD_SETTINGS).
    cli: str
    # The variable that picks the profile, the profiles, and the production one.
    environment_variable: str
    profiles: tuple[str, ...]
    production: str
    allowed_origin: str  # an origin of the production profile
    refused_origin: str
    # Python that leaves the adopted app in ``app`` (with the settings of the environment).
    app_code: str
    # Python that starts the app as a server would import it.
    start_code: str
    # The variable that sets the allowed origins, and a real route that writes.
    origins_variable: str
    write_path: str
    write_json: dict[str, object] = field(default_factory=dict)
    # Variables the app's own tests need (none of these apps needs one).
    env: dict[str, str] = field(default_factory=dict)
    # What `corsguard doctor APP` names before adopting, and APP as its server takes it.
    leftovers: frozenset[str] = frozenset()
    doctor_app: str = ""
    # The answers a script gives `corsguard init` (the rest: the app's own, or --yes), and
    # the origins the app allows today, as init must offer them (normalized).
    init_options: str = ""
    offered: tuple[str, ...] = ()

    def write(self, root: Path) -> list[Path]:
        """Write the app under ``root``; return the files written."""
        written = []
        for relative, text in self.files.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(path)
        return written


# --- a) the full-stack layout: app/core/config.py, app/api/routes/ -------------------------

FULLSTACK = Fixture(
    name="fullstack",
    description="app/ package, settings in app/core/config.py, routers in app/api/routes/",
    install=("fastapi", "pydantic-settings", "pytest", "httpx"),
    settings="app.core.config:Settings",
    cli="option",
    environment_variable="APP_ENV",
    profiles=("local", "staging", "prod"),
    production="prod",
    allowed_origin="https://dashboard.example.com",
    refused_origin="https://dashboard.example.net",
    app_code="from app.main import app",
    start_code="import app.main",
    origins_variable="CORS_ALLOW_ORIGINS",
    write_path="/api/v1/items/",
    write_json={"title": "Teapot", "description": "short and stout"},
    leftovers=frozenset(
        {"no-corsguard-layer", "stock-cors-middleware", "old-cors-variable", "origin-with-path"}
    ),
    doctor_app="app.main:app",
    offered=("http://localhost:5173", "http://localhost:3000"),
    init_options=(
        "--environment-variable APP_ENV "
        "--environments local,staging,prod "
        "--origins staging=https://dashboard.staging.example.com,https://*.preview.example.com "
        "--origins prod=https://dashboard.example.com "
        "--methods GET,POST,PUT,DELETE "
        "--headers Authorization,Content-Type"
    ),
    files=_files(
        {
            "pyproject.toml": """
                [project]
                name = "fullstack-backend"
                version = "0.1.0"
                requires-python = ">=3.10"
                dependencies = ["fastapi", "pydantic-settings"]

                [tool.pytest.ini_options]
                testpaths = ["tests"]
                """,
            ".env": """
                # Local settings; never committed.
                PROJECT_NAME="Full Stack FastAPI Project"
                BACKEND_CORS_ORIGINS=["http://localhost:5173","http://localhost:3000"]
                """,
            "app/__init__.py": "",
            "app/core/__init__.py": "",
            "app/core/config.py": '''
                """The app's settings, from the environment and .env."""

                import secrets

                from pydantic import AnyHttpUrl
                from pydantic_settings import BaseSettings, SettingsConfigDict


                class Settings(BaseSettings):
                    model_config = SettingsConfigDict(env_file=".env", env_ignore_empty=True)

                    PROJECT_NAME: str = "Full Stack FastAPI Project"
                    API_V1_STR: str = "/api/v1"
                    SECRET_KEY: str = secrets.token_urlsafe(32)
                    SQLALCHEMY_DATABASE_URI: str = "sqlite:///./app.db"
                    BACKEND_CORS_ORIGINS: list[AnyHttpUrl] = []


                settings = Settings()
                ''',
            "app/core/db.py": '''
                """The database: a small in-memory store standing in for SQLAlchemy here."""

                from app.core.config import settings


                class Database:
                    def __init__(self, url: str) -> None:
                        self.url = url
                        self.items: dict[int, dict[str, object]] = {}

                    def add_item(self, title: str, description: str | None) -> dict[str, object]:
                        key = len(self.items) + 1
                        item = {"id": key, "title": title, "description": description}
                        self.items[key] = item
                        return item


                engine = Database(settings.SQLALCHEMY_DATABASE_URI)
                ''',
            "app/models.py": """
                from pydantic import BaseModel


                class ItemCreate(BaseModel):
                    title: str
                    description: str | None = None


                class ItemPublic(ItemCreate):
                    id: int
                """,
            "app/api/__init__.py": "",
            "app/api/deps.py": """
                from typing import Annotated

                from fastapi import Depends

                from app.core.db import Database, engine


                def get_db() -> Database:
                    return engine


                SessionDep = Annotated[Database, Depends(get_db)]
                """,
            "app/api/main.py": """
                from fastapi import APIRouter

                from app.api.routes import items, utils

                api_router = APIRouter()
                api_router.include_router(items.router)
                api_router.include_router(utils.router)
                """,
            "app/api/routes/__init__.py": "",
            "app/api/routes/items.py": """
                from fastapi import APIRouter, HTTPException

                from app.api.deps import SessionDep
                from app.models import ItemCreate, ItemPublic

                router = APIRouter(prefix="/items", tags=["items"])


                @router.get("/", response_model=list[ItemPublic])
                def read_items(session: SessionDep):
                    return list(session.items.values())


                @router.post("/", response_model=ItemPublic)
                def create_item(session: SessionDep, item_in: ItemCreate):
                    return session.add_item(item_in.title, item_in.description)


                @router.get("/{item_id}", response_model=ItemPublic)
                def read_item(session: SessionDep, item_id: int):
                    if item_id not in session.items:
                        raise HTTPException(status_code=404, detail="Item not found")
                    return session.items[item_id]
                """,
            "app/api/routes/utils.py": """
                from fastapi import APIRouter

                router = APIRouter(prefix="/utils", tags=["utils"])


                @router.get("/health-check/")
                async def health_check() -> bool:
                    return True
                """,
            "app/main.py": """
                from fastapi import FastAPI
                from fastapi.middleware.cors import CORSMiddleware

                from app.api.main import api_router
                from app.core.config import settings

                app = FastAPI(
                    title=settings.PROJECT_NAME,
                    openapi_url=f"{settings.API_V1_STR}/openapi.json",
                )

                # Set all CORS enabled origins
                if settings.BACKEND_CORS_ORIGINS:
                    app.add_middleware(
                        CORSMiddleware,
                        allow_origins=[str(origin) for origin in settings.BACKEND_CORS_ORIGINS],
                        allow_credentials=True,
                        allow_methods=["*"],
                        allow_headers=["*"],
                    )

                app.include_router(api_router, prefix=settings.API_V1_STR)
                """,
            "tests/__init__.py": "",
            "tests/conftest.py": '''
                from collections.abc import Iterator

                import pytest
                from fastapi.testclient import TestClient

                from app.api.deps import get_db
                from app.core.db import Database
                from app.main import app


                @pytest.fixture
                def db() -> Iterator[Database]:
                    """A fresh, empty database for each test, in place of the real one."""
                    fake = Database("sqlite://")
                    app.dependency_overrides[get_db] = lambda: fake
                    yield fake
                    app.dependency_overrides.clear()


                @pytest.fixture
                def client(db: Database) -> Iterator[TestClient]:
                    with TestClient(app) as c:
                        yield c
                ''',
            "tests/test_items.py": """
                from fastapi.testclient import TestClient

                from app.core.config import settings
                from app.core.db import Database


                def test_create_item(client: TestClient, db: Database) -> None:
                    data = {"title": "Foo", "description": "Fighters"}
                    response = client.post(f"{settings.API_V1_STR}/items/", json=data)
                    assert response.status_code == 200
                    assert response.json() == {"id": 1, **data}
                    assert db.items[1]["title"] == "Foo"


                def test_read_items(client: TestClient, db: Database) -> None:
                    db.add_item("One", None)
                    db.add_item("Two", "second")
                    response = client.get(f"{settings.API_V1_STR}/items/")
                    assert [item["title"] for item in response.json()] == ["One", "Two"]


                def test_read_item_not_found(client: TestClient) -> None:
                    response = client.get(f"{settings.API_V1_STR}/items/999")
                    assert response.status_code == 404
                    assert response.json() == {"detail": "Item not found"}


                def test_create_item_needs_a_title(client: TestClient) -> None:
                    response = client.post(f"{settings.API_V1_STR}/items/", json={})
                    assert response.status_code == 422
                """,
            "tests/test_utils.py": """
                from fastapi.testclient import TestClient

                from app.core.config import settings


                def test_health_check(client: TestClient) -> None:
                    response = client.get(f"{settings.API_V1_STR}/utils/health-check/")
                    assert response.status_code == 200
                    assert response.json() is True


                def test_openapi_is_under_the_api_prefix(client: TestClient) -> None:
                    response = client.get(f"{settings.API_V1_STR}/openapi.json")
                    assert response.json()["info"]["title"] == settings.PROJECT_NAME
                """,
        }
    ),
)


# --- b) a flat package with an app factory -------------------------------------------------

FACTORY = Fixture(
    name="factory",
    description="package inventory/ with an app factory (inventory/factory.py: create_app)",
    install=("fastapi", "pydantic-settings", "pytest", "httpx"),
    settings="inventory.settings:Settings",
    cli="pyproject",
    environment_variable="INVENTORY_ENV",
    profiles=("dev", "qa", "live"),
    production="live",
    allowed_origin="https://shop.example.com",
    refused_origin="https://shop.example.com:8443",
    app_code="from inventory import create_app\napp = create_app()",
    start_code="from inventory import create_app\ncreate_app()",
    origins_variable="INVENTORY_CORS_ALLOW_ORIGINS",
    write_path="/products",
    write_json={"sku": "TEA-1", "name": "Teapot", "quantity": 3},
    leftovers=frozenset({"no-corsguard-layer", "stock-cors-middleware", "route-answers-options"}),
    doctor_app="inventory:create_app",
    offered=("http://localhost:3000", "http://127.0.0.1:3000"),
    init_options=(
        "--environment-variable INVENTORY_ENV "
        "--environments dev,qa,live "
        "--origins qa=https://qa.shop.example.com,https://*.qa.shop.example.com "
        "--origins live=https://shop.example.com "
        "--max-age 3600"
    ),
    files=_files(
        {
            "pyproject.toml": """
                [project]
                name = "inventory"
                version = "1.4.0"
                requires-python = ">=3.10"
                dependencies = ["fastapi", "pydantic-settings"]

                [tool.pytest.ini_options]
                testpaths = ["tests"]
                """,
            "inventory/__init__.py": '''
                """Inventory service: serve it with uvicorn --factory inventory:create_app."""

                from .factory import create_app

                __all__ = ["create_app"]
                ''',
            "inventory/settings.py": '''
                """Settings: INVENTORY_* variables."""

                from functools import lru_cache
                from pathlib import Path

                from pydantic_settings import BaseSettings, SettingsConfigDict

                BASE_DIR = Path(__file__).resolve().parent.parent


                class Settings(BaseSettings):
                    model_config = SettingsConfigDict(env_prefix="INVENTORY_")

                    title: str = "Inventory"
                    database_url: str = f"sqlite:///{BASE_DIR / 'inventory.db'}"
                    page_size: int = 50


                @lru_cache
                def get_settings() -> Settings:
                    return Settings()
                ''',
            "inventory/store.py": '''
                """Products, kept in memory for each app (a database in the real service)."""

                from pydantic import BaseModel, Field


                class Product(BaseModel):
                    sku: str
                    name: str
                    quantity: int = Field(ge=0)


                class Store:
                    def __init__(self, url: str) -> None:
                        self.url = url
                        self.products: dict[str, Product] = {}
                ''',
            "inventory/products.py": """
                from fastapi import APIRouter, HTTPException, Request, Response

                from .store import Product, Store

                router = APIRouter(prefix="/products")


                @router.options("")
                def products_preflight() -> Response:
                    # Written before the CORSMiddleware was added, for the shop's POST.
                    return Response(
                        headers={
                            "Access-Control-Allow-Origin": "*",
                            "Access-Control-Allow-Methods": "GET, POST",
                            "Access-Control-Allow-Headers": "Content-Type",
                        }
                    )


                def store(request: Request) -> Store:
                    return request.app.state.store


                @router.get("")
                def list_products(request: Request) -> list[Product]:
                    page_size = request.app.state.settings.page_size
                    return list(store(request).products.values())[:page_size]


                @router.post("", status_code=201)
                def add_product(request: Request, product: Product) -> Product:
                    store(request).products[product.sku] = product
                    return product


                @router.get("/{sku}")
                def get_product(request: Request, sku: str) -> Product:
                    try:
                        return store(request).products[sku]
                    except KeyError:
                        raise HTTPException(404, f"no product {sku}") from None
                """,
            "inventory/factory.py": '''
                """The app factory."""

                import uuid

                from fastapi import FastAPI, Request
                from fastapi.middleware.cors import CORSMiddleware

                from . import products
                from .settings import Settings, get_settings
                from .store import Store


                def create_app(settings: Settings | None = None) -> FastAPI:
                    settings = settings or get_settings()
                    app = FastAPI(title=settings.title)
                    app.state.settings = settings
                    app.state.store = Store(settings.database_url)
                    app.include_router(products.router)
                    app.add_middleware(
                        CORSMiddleware,
                        allow_origins=["http://localhost:3000", "http://127.0.0.1:3000"],
                        allow_methods=["GET", "POST"],
                        allow_headers=["Content-Type"],
                        expose_headers=["X-Request-ID"],
                    )

                    @app.middleware("http")
                    async def request_id(request: Request, call_next):
                        response = await call_next(request)
                        response.headers["X-Request-ID"] = str(uuid.uuid4())
                        return response

                    return app
                ''',
            "tests/__init__.py": "",
            "tests/conftest.py": """
                import pytest
                from fastapi.testclient import TestClient

                from inventory import create_app
                from inventory.settings import Settings


                @pytest.fixture
                def client() -> TestClient:
                    return TestClient(create_app(Settings(database_url="sqlite://", page_size=2)))
                """,
            "tests/test_products.py": """
                from fastapi.testclient import TestClient

                TEAPOT = {"sku": "TEA-1", "name": "Teapot", "quantity": 3}


                def test_add_and_get_a_product(client: TestClient) -> None:
                    assert client.post("/products", json=TEAPOT).status_code == 201
                    assert client.get("/products/TEA-1").json() == TEAPOT


                def test_unknown_product(client: TestClient) -> None:
                    response = client.get("/products/NOPE")
                    assert response.status_code == 404
                    assert response.json() == {"detail": "no product NOPE"}


                def test_quantity_cannot_be_negative(client: TestClient) -> None:
                    response = client.post("/products", json={**TEAPOT, "quantity": -1})
                    assert response.status_code == 422


                def test_the_list_is_one_page(client: TestClient) -> None:
                    for number in range(3):
                        client.post("/products", json={**TEAPOT, "sku": f"TEA-{number}"})
                    assert len(client.get("/products").json()) == 2
                """,
            "tests/test_request_id.py": """
                import uuid

                from fastapi.testclient import TestClient


                def test_every_response_has_a_request_id(client: TestClient) -> None:
                    response = client.get("/products")
                    assert uuid.UUID(response.headers["X-Request-ID"])
                """,
        }
    ),
)


# --- c) the older layout: app/main.py, app/config.py, app/routers/ ------------------------

CLASSIC = Fixture(
    name="classic",
    description="app/main.py, app/config.py, app/dependencies.py, app/routers/; requirements.txt",
    install=("-r", "requirements.txt", "pytest", "httpx"),
    settings="app.config:Settings",
    cli="variable",
    environment_variable="ENVIRONMENT",
    profiles=("development", "production"),
    production="production",
    allowed_origin="https://www.example.org",
    refused_origin="http://www.example.org",
    app_code="from app.main import app",
    start_code="import app.main",
    origins_variable="CORS_ALLOW_ORIGINS",
    write_path="/users/",
    write_json={"username": "morty"},
    leftovers=frozenset(
        {"no-corsguard-layer", "stock-cors-middleware", "wildcard-with-credentials"}
    ),
    doctor_app="app.main:app",
    init_options=(
        "--environments development,production "
        "--origins development=http://localhost:8080 "
        "--origins production=https://www.example.org,https://*.apps.example.org "
        "--headers Content-Type,X-Token"
    ),
    files=_files(
        {
            "requirements.txt": """
                fastapi
                pydantic-settings
                """,
            "app/__init__.py": "",
            "app/config.py": """
                from pydantic_settings import BaseSettings


                class Settings(BaseSettings):
                    app_name: str = "Awesome API"
                    admin_email: str = "admin@example.com"
                    items_per_user: int = 50
                """,
            "app/dependencies.py": """
                from functools import lru_cache
                from typing import Annotated

                from fastapi import Header, HTTPException

                from .config import Settings


                @lru_cache
                def get_settings():
                    return Settings()


                async def get_token_header(x_token: Annotated[str, Header()]):
                    if x_token != "fake-super-secret-token":
                        raise HTTPException(status_code=400, detail="X-Token header invalid")
                """,
            "app/routers/__init__.py": "",
            "app/routers/items.py": """
                from fastapi import APIRouter, Depends, HTTPException

                from ..dependencies import get_token_header

                router = APIRouter(
                    prefix="/items",
                    tags=["items"],
                    dependencies=[Depends(get_token_header)],
                )

                fake_items_db = {"plumbus": {"name": "Plumbus"}, "gun": {"name": "Portal Gun"}}


                @router.get("/")
                async def read_items():
                    return fake_items_db


                @router.get("/{item_id}")
                async def read_item(item_id: str):
                    if item_id not in fake_items_db:
                        raise HTTPException(status_code=404, detail="Item not found")
                    return {"name": fake_items_db[item_id]["name"], "item_id": item_id}
                """,
            "app/routers/users.py": """
                from fastapi import APIRouter
                from pydantic import BaseModel

                router = APIRouter()

                users = [{"username": "Rick"}]


                class User(BaseModel):
                    username: str


                @router.get("/users/", tags=["users"])
                async def read_users():
                    return users


                @router.post("/users/", tags=["users"])
                async def create_user(user: User):
                    users.append(user.model_dump())
                    return user
                """,
            "app/main.py": """
                from typing import Annotated

                from fastapi import Depends, FastAPI
                from fastapi.middleware.cors import CORSMiddleware

                from .config import Settings
                from .dependencies import get_settings
                from .routers import items, users

                app = FastAPI()

                app.add_middleware(
                    CORSMiddleware,
                    allow_origins=["*"],
                    allow_credentials=True,
                    allow_methods=["*"],
                    allow_headers=["*"],
                )

                app.include_router(users.router)
                app.include_router(items.router)


                @app.get("/info")
                async def info(settings: Annotated[Settings, Depends(get_settings)]):
                    return {"app_name": settings.app_name, "admin_email": settings.admin_email}
                """,
            "tests/__init__.py": "",
            "tests/test_main.py": """
                from fastapi.testclient import TestClient

                from app.config import Settings
                from app.dependencies import get_settings
                from app.main import app

                client = TestClient(app)


                def get_settings_override():
                    return Settings(admin_email="testing_admin@example.com")


                app.dependency_overrides[get_settings] = get_settings_override


                def test_info():
                    response = client.get("/info")
                    assert response.json() == {
                        "app_name": "Awesome API",
                        "admin_email": "testing_admin@example.com",
                    }


                def test_read_items():
                    response = client.get("/items/", headers={"X-Token": "fake-super-secret-token"})
                    assert response.status_code == 200
                    assert "plumbus" in response.json()


                def test_read_items_bad_token():
                    response = client.get("/items/", headers={"X-Token": "hailhydra"})
                    assert response.status_code == 400


                def test_read_missing_item():
                    token = {"X-Token": "fake-super-secret-token"}
                    response = client.get("/items/foo", headers=token)
                    assert response.status_code == 404


                def test_users():
                    assert client.post("/users/", json={"username": "Morty"}).status_code == 200
                    assert {"username": "Morty"} in client.get("/users/").json()
                """,
        }
    ),
)

FIXTURES = {fixture.name: fixture for fixture in (FULLSTACK, FACTORY, CLASSIC)}
