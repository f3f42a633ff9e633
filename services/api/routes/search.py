"""Finding an entity: ``GET /v1/entities?q=`` by name, INSEE code (SIREN for an EPCI) or postal code,
accent- and case-insensitive, ranked (services/api/search.py says how)."""

from __future__ import annotations

import re
import weakref
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from services.api import search
from services.api.deps import Api, ApiDep, CategoryQuery
from services.api.models import ERROR_RESPONSES, Answer
from services.api.search_models import EntityMatch, EntitySearchOut
from services.api.strata import stratum_of
from services.common.names import Category

router = APIRouter(prefix="/v1/entities", tags=["entities"])

MAX_LIMIT = 50
MAX_QUERY = 100
# Blanks are these six characters, the same in the OpenAPI pattern (ECMA) and in Python.
_BLANKS = " \t\n\r\f\v"
_NOT_BLANK = re.compile(r"[^ \t\n\r\f\v]")

# One index per api process and database (an Api object), dropped with it.
_INDEXES: weakref.WeakKeyDictionary[Api, search.EntityIndex] = weakref.WeakKeyDictionary()


def index_of(api: Api) -> search.EntityIndex:
    found = _INDEXES.get(api)
    if found is None:
        found = _INDEXES.setdefault(
            api,
            search.EntityIndex(
                lambda: search.registry_version(api.client(), api.db),
                lambda: search.load_rows(api.client(), api.db),
            ),
        )
    return found


def _query(value: object) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("invalid_parameter", "must be a single text value")
    if not _NOT_BLANK.search(value):
        raise PydanticCustomError(
            "invalid_parameter", "must not be blank: give a name, an INSEE code or a postal code"
        )
    if len(value) > MAX_QUERY:
        raise PydanticCustomError("invalid_parameter", f"at most {MAX_QUERY} characters")
    return value.strip(_BLANKS)


QQuery = Annotated[
    str,
    BeforeValidator(_query),
    Query(
        description="A name (or part of it: accents, case and punctuation ignored), an INSEE code "
        "(SIREN for an EPCI; 38185, 2A, 84), an id (COM:38185) or a postal code (38000); "
        f"not blank, at most {MAX_QUERY} characters.",
        examples=["grenoble"],
        json_schema_extra={"pattern": "[^ \\t\\n\\r\\f\\v]", "maxLength": MAX_QUERY},
    ),
]


@router.get(
    "",
    response_model=EntitySearchOut,
    responses={**ERROR_RESPONSES},
    summary="Find an entity by name, code or postal code",
    description="The entities best matching `q`, best first: exact code (INSEE code, SIREN, id or postal "
    "code), then the whole name, a name starting with `q`, a word of the name starting with `q`, a code "
    "or postal code starting with `q` (2 characters or more), `q` anywhere in the name; larger "
    "population first within each. Accents, case and punctuation are ignored (saint etienne finds "
    "Saint-Étienne). Shipped and imported entities (an import is found within 5 s); postal codes are "
    "those of the shipped registry's communes.",
)
async def search_entities(
    api: ApiDep,
    q: QQuery,
    category: CategoryQuery = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"At most {MAX_LIMIT}.")] = 10,
) -> Response:
    def compute() -> Answer[EntitySearchOut]:
        found = index_of(api).search(q, limit, None if category is None else category.value)
        items = [
            EntityMatch(
                entity_id=f.entity.entity_id,
                name=f.entity.name,
                category=Category(f.entity.category),
                population=f.entity.population,
                departement=f.entity.departement,
                region=f.entity.region,
                postal_codes=list(f.entity.postal_codes),
                stratum=stratum_of(f.entity.entity_id, f.entity.category, f.entity.population),
                match=f.match,
            )
            for f in found
        ]
        return Answer.of(EntitySearchOut(q=q, category=category, items=items))

    return (await api.cached(("search", q, category, limit), compute)).response()
