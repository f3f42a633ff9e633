"""Open data: the barometer of a month as a Frictionless Data Package in a zip (services/api/opendata.py)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from services.api import opendata
from services.api.deps import ApiDep, now
from services.api.models import ERROR_RESPONSES, ErrorBody
from services.api.routes.reports import MonthQuery
from services.common.web import ApiError

router = APIRouter(prefix="/v1/exports", tags=["exports"])


@router.get(
    "/opendata",
    response_class=Response,
    responses={
        **ERROR_RESPONSES,
        200: {
            "content": {opendata.MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
            "description": "A zip: `datapackage.json` (a Tabular Data Package with a Table Schema for each "
            "resource) and `presence.csv`, `rankings.csv`, `scores.csv`, `coverage.csv`. "
            '`Content-Disposition: attachment; filename="barometre-opendata-YYYY-MM.zip"`.',
            "headers": {
                "Content-Disposition": {
                    "description": 'attachment; filename="barometre-opendata-YYYY-MM.zip"',
                    "schema": {"type": "string"},
                }
            },
        },
        404: {"model": ErrorBody, "description": "The month has not begun yet."},
    },
    summary="The month's barometer as open data (Frictionless Data Package)",
    description="The barometer of `month` as open data in the form of data.gouv.fr: a zip holding a "
    "Frictionless Tabular Data Package (`datapackage.json`, licence Licence Ouverte / Etalab 2.0, sources "
    "with the attribution of INSEE's Code officiel géographique) and four UTF-8 CSV files, each described "
    "by a Table Schema (types, constraints, primary key, French titles and descriptions): presence by "
    "entity and platform at the month's end, the month's top 5 growths per category and platform (the "
    "monthly report's), the average good-practice score per category and platform, and the coverage per "
    "category and platform. Figures are as of the month's last millisecond (now for the current month, "
    "`partial: true` in the descriptor), over every entity of the registry. Every row has a `simulated` "
    "column and the descriptor a `simulated` property: true when simulated data are counted. A month "
    "without observations gives a valid package with empty resources (coverage still lists the "
    "registry). A month not begun yet is a 404, a malformed one a 422.",
)
async def get_opendata(api: ApiDep, month: MonthQuery) -> Response:
    current = now().date().replace(day=1)
    if month > current:
        raise ApiError(
            404, "not_found", f"no data for {month:%Y-%m} yet: the latest month is {current:%Y-%m}"
        )
    package = await opendata.build(api, month)
    return Response(
        content=package.to_zip(),
        media_type=opendata.MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{opendata.file_stem(month)}.zip"'},
    )
