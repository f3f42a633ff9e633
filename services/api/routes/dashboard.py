"""The dashboard: one static page (``/``, and ``/entite/{entity_id}`` for an entity) whose JavaScript reads
the JSON API, its static files under ``/static/``, and ``GET /v1/territories``, the régions and
départements its filters offer.

Nothing is fetched from another server at run time: third-party code is vendored under
``services/api/static/vendor/`` (see its README). Wiring, in the api application factory::

    app.include_router(dashboard.router)
    dashboard.mount(app)
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

from clickhouse_connect.driver.client import Client
from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from services.api.deps import ApiDep
from services.common.names import Category, Table

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
INDEX = STATIC_DIR / "index.html"
# The page is small and changes with each release: always revalidated (ETag), never stale.
PAGE_HEADERS = {"Cache-Control": "no-cache"}

router = APIRouter()


@router.get("/", include_in_schema=False)
async def dashboard_page() -> FileResponse:
    """The dashboard (presence barometer, live rankings, alert feed)."""
    return FileResponse(INDEX, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


@router.get("/entite/{entity_id}", include_in_schema=False)
async def entity_page(entity_id: str) -> FileResponse:
    """An entity's page: the same document, which reads the entity id from its own URL."""
    return FileResponse(INDEX, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


class Region(BaseModel):
    entity_id: str
    code: str
    name: str


class Departement(BaseModel):
    entity_id: str
    code: str
    name: str
    region: str | None


class Territories(BaseModel):
    """The ``region`` and ``departement`` values ``GET /v1/rankings`` filters on, with their names."""

    regions: list[Region]
    departements: list[Departement]


def _sort_key(name: str) -> str:
    # French order without a locale: accents do not count ("Île-de-France" sorts with the I's).
    return "".join(c for c in unicodedata.normalize("NFD", name.casefold()) if not unicodedata.combining(c))


def _read_territories(client: Client, db: str) -> Territories:
    rows = client.query(
        f"""SELECT entity_id, name, category, ifNull(departement, ''), ifNull(region, '')
            FROM {db}.{Table.ENTITIES} FINAL
            WHERE category IN {{categories:Array(String)}}
            ORDER BY entity_id""",
        parameters={"categories": [Category.REGION.value, Category.DEPARTEMENT.value]},
    ).result_rows
    regions: list[Region] = []
    departements: list[Departement] = []
    for entity_id, name, category, departement, region in rows:
        own_code = str(entity_id).partition(":")[2]
        if category == Category.REGION.value:
            regions.append(Region(entity_id=entity_id, code=region or own_code, name=name))
        else:
            code = departement or own_code
            departements.append(Departement(entity_id=entity_id, code=code, name=name, region=region or None))
    regions.sort(key=lambda r: (_sort_key(r.name), r.code))
    departements.sort(key=lambda d: d.code)
    return Territories(regions=regions, departements=departements)


@router.get(
    "/v1/territories",
    response_model=Territories,
    tags=["dashboard"],
    summary="Régions and départements, for territory filters",
    description="Every région and département of the registry (shipped or imported): the codes that "
    "`GET /v1/rankings` takes as `region` and `departement`, with their names; régions sorted by name, "
    "départements by code.",
)
async def territories(api: ApiDep) -> Territories:
    return await api.cached(("territories",), lambda: _read_territories(api.client(), api.db))


def mount(app: FastAPI) -> None:
    """Serve the dashboard's static files (HTML, CSS, JavaScript, vendored libraries) under ``/static``."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
