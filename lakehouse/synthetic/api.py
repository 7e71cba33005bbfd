"""Synthetic data API (FastAPI): generate data into every source, serve the marketing store.

Run by the stack as `python -m lakehouse.cli api`; OpenAPI docs at /docs. Handlers are plain `def`
(run in the thread pool) and open one PostgreSQL connection per request.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import psycopg
from fastapi import FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from lakehouse.settings import Settings
from lakehouse.synthetic.common import MAX_DAYS, SyntheticDataError
from lakehouse.synthetic.db import connect
from lakehouse.synthetic.entities import ENTITIES, MAX_STARTER_SCALE, STARTER, entity_names, generate
from lakehouse.synthetic.marketing import MAX_PAGE_SIZE, fetch_page, validate_page_request
from lakehouse.synthetic.schema import ensure_schema


class GenerateResponse(BaseModel):
    entity: str
    seed: int = Field(description="Seed used (pass it again to reproduce the data).")
    start_date: str
    days: int
    counts: dict[str, int] = Field(description="Rows / items / records written per target.")
    elapsed_seconds: float
    objects: list[dict[str, Any]] = Field(description="Landing objects: key, good and bad record counts.")
    steps: list[dict[str, Any]] = Field(description="Per-entity results of the starter set.")


class Page(BaseModel):
    data: list[dict[str, Any]]
    page: int
    page_size: int
    total: int
    total_pages: int
    next_page: int | None = Field(description="Next page number (page mode); null on the last page.")
    next_cursor: str | None = Field(
        description="Pass as `after` for the next page (keyset mode, never skips rows); null on the last page."
    )


class EntityInfo(BaseModel):
    name: str
    count_unit: str
    default_count: int
    max_count: int
    target: str


SinceQuery = Annotated[
    str | None, Query(description="Only rows with updated_at >= this ISO-8601 timestamp (inclusive).")
]
PageQuery = Annotated[int, Query(ge=1, description="1-based page number.")]
AfterQuery = Annotated[
    str | None, Query(description="Keyset cursor: the `next_cursor` of the previous page (instead of `page`).")
]
SizeQuery = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description=f"Rows per page (max {MAX_PAGE_SIZE}).")]


def _parse_since(value: str | None) -> dt.datetime | None:
    """ISO-8601 timestamp or date; without a zone it is UTC."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if "T" in text:
        text = text.replace(" ", "+")  # the '+' of an offset arrives as a space when not URL-encoded
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise SyntheticDataError(f"updated_since must be an ISO-8601 timestamp, got {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def create_app(settings: Settings) -> FastAPI:
    """The API bound to `settings` (tests build one per isolated database)."""
    app = FastAPI(
        title="E-commerce synthetic data API",
        description=(
            "Generates deterministic synthetic e-commerce data into PostgreSQL, DynamoDB and the S3 "
            "landing bucket, and serves the marketing store for dlt. See docs/synthetic-data.md."
        ),
    )
    schema_ready = False

    @app.exception_handler(SyntheticDataError)
    def _bad_request(_request: Request, exc: SyntheticDataError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    @app.exception_handler(psycopg.OperationalError)
    def _unavailable(_request: Request, exc: psycopg.OperationalError) -> JSONResponse:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        return JSONResponse(status_code=503, content={"detail": f"PostgreSQL unavailable: {reason}"})

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/entities", response_model=list[EntityInfo])
    def entities() -> list[EntityInfo]:
        """What `POST /api/generate/{entity}` accepts, with default and maximum counts."""
        infos = [
            EntityInfo(
                name=e.name,
                count_unit=e.unit,
                default_count=e.default_count,
                max_count=e.max_count,
                target=e.target,
            )
            for e in ENTITIES.values()
        ]
        infos.append(
            EntityInfo(
                name=STARTER,
                count_unit="scale factor of the starter set",
                default_count=1,
                max_count=MAX_STARTER_SCALE,
                target="every source",
            )
        )
        return infos

    @app.post("/api/generate/{entity}", response_model=GenerateResponse)
    def generate_entity(
        entity: Annotated[str, Path(description="One of: " + ", ".join(entity_names()))],
        count: Annotated[int | None, Query(description="How many (default per entity; see /api/entities).")] = None,
        seed: Annotated[int | None, Query(ge=0, description="RNG seed; random (and returned) if absent.")] = None,
        start_date: Annotated[str | None, Query(description="First day of the window, YYYY-MM-DD.")] = None,
        days: Annotated[int | None, Query(description=f"Days in the window (1-{MAX_DAYS}, default 30).")] = None,
        malformed_rate: Annotated[
            float, Query(description="clickstream/partner_feeds only: share of broken records (0-1).")
        ] = 0.0,
    ) -> dict[str, Any]:
        """Generate data; 422 with a message (and nothing written) on bad parameters."""
        return generate(settings, entity, count, seed, start_date, days, malformed_rate).to_dict()

    def _page(resource: str, updated_since: str | None, page: int, page_size: int, after: str | None) -> dict[str, Any]:
        nonlocal schema_ready
        since = _parse_since(updated_since)
        validate_page_request(resource, page, page_size, after)
        if not schema_ready:
            ensure_schema(settings)
            schema_ready = True
        with connect(settings) as conn:
            return fetch_page(conn, settings, resource, since, page, page_size, after)

    @app.get("/api/marketing/campaigns", response_model=Page)
    def campaigns(
        updated_since: SinceQuery = None,
        page: PageQuery = 1,
        page_size: SizeQuery = 100,
        after: AfterQuery = None,
    ) -> dict[str, Any]:
        """Campaigns ordered by (updated_at, campaign_id)."""
        return _page("campaigns", updated_since, page, page_size, after)

    @app.get("/api/marketing/ad_spend", response_model=Page)
    def ad_spend(
        updated_since: SinceQuery = None,
        page: PageQuery = 1,
        page_size: SizeQuery = 100,
        after: AfterQuery = None,
    ) -> dict[str, Any]:
        """Daily spend ordered by (updated_at, campaign_id, spend_date)."""
        return _page("ad_spend", updated_since, page, page_size, after)

    return app
