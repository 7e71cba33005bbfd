"""Marketing REST API -> bronze/marketing/* with the dlt marketing source, against the real synthetic API.

The API app runs in-process (uvicorn on a free port) bound to an isolated PostgreSQL database, so
the test controls every row it serves.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest
import uvicorn
from deltalake import DeltaTable
from fastapi import FastAPI, Request

from ingestion.dlt_sources import load_summary, make_pipeline, marketing_source, raise_on_failed, rows_by_table
from lakehouse.settings import Settings
from lakehouse.stack.process import free_port

entities = pytest.importorskip("lakehouse.synthetic.entities")
api = pytest.importorskip("lakehouse.synthetic.api")


class ServedApi:
    def __init__(self, settings: Settings, app: FastAPI) -> None:
        self.settings = settings
        self.requests: list[tuple[str, dict[str, str]]] = []
        #: called after each response (path, query): lets a test change data between two pages
        self.after_response: Callable[[str, dict[str, str]], None] | None = None

        @app.middleware("http")
        async def record(request: Request, call_next: Any) -> Any:
            query = dict(request.query_params)
            self.requests.append((request.url.path, query))
            response = await call_next(request)
            if self.after_response is not None:
                self.after_response(request.url.path, query)
            return response

        port = free_port()
        self.url = f"http://{settings.host}:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host=settings.host, port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServedApi:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            assert time.monotonic() < deadline, "API did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def served(isolated_settings: Callable[[], Settings]) -> Iterator[ServedApi]:
    settings = isolated_settings()
    common: dict[str, Any] = {"seed": 5, "start_date": "2026-10-01", "days": 10}
    entities.generate(settings, "campaigns", 45, **common)
    entities.generate(settings, "ad_spend", 8, **common)
    with ServedApi(settings, api.create_app(settings)) as server:
        yield server


def postgres_rows(settings: Settings, table: str) -> list[dict[str, Any]]:
    with psycopg.connect(settings.postgres_dsn) as conn:
        cur = conn.execute(f"select * from {settings.marketing_schema}.{table}")
        names = [c.name for c in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def bronze(settings: Settings, table: str) -> list[dict[str, Any]]:
    uri = settings.lake_uri("bronze", "marketing", table)
    return DeltaTable(uri, storage_options=settings.delta_storage_options).to_pyarrow_table().to_pylist()


def duplicated_keys(rows: list[dict[str, Any]], *key: str) -> dict[tuple[Any, ...], int]:
    """Keys held by more than one bronze row (counted on the table itself, not through a dict)."""
    counts = Counter(tuple(row[k] for k in key) for row in rows)
    return {k: n for k, n in counts.items() if n > 1}


def test_marketing_paginated_incremental_merge(served: ServedApi) -> None:
    settings = served.settings
    campaigns = {r["campaign_id"]: r for r in postgres_rows(settings, "campaigns")}
    spend = {(r["campaign_id"], r["spend_date"]): r for r in postgres_rows(settings, "ad_spend")}
    assert len(campaigns) == 45 and len(spend) > 10
    pipeline = make_pipeline(settings, "bronze_marketing")

    # 1st run: page_size 10 < rows -> several pages per resource
    raise_on_failed(pipeline.run(marketing_source(settings, page_size=10, base_url=served.url)))
    assert rows_by_table(pipeline) == {"campaigns": 45, "ad_spend": len(spend)}
    cursors = [q.get("after") for path, q in served.requests if path.endswith("/campaigns")]
    assert len(cursors) == 5 and cursors[0] is None and None not in cursors[1:]  # keyset pages
    assert {q["page_size"] for _path, q in served.requests} == {"10"}
    loaded = {r["campaign_id"]: r for r in bronze(settings, "campaigns")}
    assert loaded.keys() == campaigns.keys()
    for cid, source in campaigns.items():
        row = loaded[cid]
        assert row["daily_budget"] == source["daily_budget"]  # decimal(12,2) end to end
        assert row["start_date"] == source["start_date"] and row["end_date"] == source["end_date"]
        assert row["updated_at"] == source["updated_at"] and row["status"] == source["status"]
    loaded_spend = {(r["campaign_id"], r["spend_date"]): r for r in bronze(settings, "ad_spend")}
    assert loaded_spend.keys() == spend.keys()
    assert all(
        loaded_spend[k]["spend"] == v["spend"] and loaded_spend[k]["clicks"] == v["clicks"] for k, v in spend.items()
    )

    # 2nd run: nothing changed -> the cursor goes back as updated_since and nothing is loaded
    served.requests.clear()
    versions = {t: s.delta_version for t, s in load_summary(settings, pipeline).items()}
    raise_on_failed(pipeline.run(marketing_source(settings, page_size=10, base_url=served.url)))
    assert sum(rows_by_table(pipeline).values()) == 0
    newest = max(c["updated_at"] for c in campaigns.values()).astimezone(dt.UTC)
    sent = {q["updated_since"] for path, q in served.requests if path.endswith("/campaigns")}
    assert sent == {newest.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
    assert {t: s.delta_version for t, s in load_summary(settings, pipeline).items()} == versions

    # 3rd run: three campaigns and one day of spend change -> exactly those rows are merged
    changed = sorted(campaigns)[:3]
    latest = max([c["updated_at"] for c in campaigns.values()] + [r["updated_at"] for r in spend.values()])
    later = latest.astimezone(dt.UTC) + dt.timedelta(hours=1)
    some_spend = sorted(spend)[0]
    with psycopg.connect(settings.postgres_dsn) as conn:
        conn.execute(
            f"update {settings.marketing_schema}.campaigns set status = 'paused', updated_at = %s"
            " where campaign_id = any(%s)",
            (later, changed),
        )
        conn.execute(
            f"update {settings.marketing_schema}.ad_spend set spend = 1234.56, updated_at = %s"
            " where campaign_id = %s and spend_date = %s",
            (later, *some_spend),
        )
    raise_on_failed(pipeline.run(marketing_source(settings, page_size=10, base_url=served.url)))
    assert rows_by_table(pipeline) == {"campaigns": 3, "ad_spend": 1}
    loaded = {r["campaign_id"]: r for r in bronze(settings, "campaigns")}
    assert len(loaded) == 45
    assert {cid for cid, r in loaded.items() if r["updated_at"] == later} == set(changed)
    assert all(loaded[cid]["status"] == "paused" for cid in changed)
    loaded_spend = {(r["campaign_id"], r["spend_date"]): r for r in bronze(settings, "ad_spend")}
    assert len(loaded_spend) == len(spend) and loaded_spend[some_spend]["spend"] == Decimal("1234.56")
    summary = load_summary(settings, pipeline)
    assert summary["campaigns"].delta_version == (versions["campaigns"] or 0) + 1
    assert summary["campaigns"].uri == settings.lake_uri("bronze", "marketing", "campaigns")


def test_a_row_updated_between_two_pages_is_not_skipped(served: ServedApi) -> None:
    """Page numbers would skip a row here: the first campaign is updated after page 1 was served,
    moves to the end, and every later row shifts up one place. The keyset cursor sees them all."""
    settings = served.settings
    first = min(postgres_rows(settings, "campaigns"), key=lambda r: (r["updated_at"], r["campaign_id"]))
    later = max(r["updated_at"] for r in postgres_rows(settings, "campaigns")) + dt.timedelta(minutes=5)

    def update_after_first_page(path: str, query: dict[str, str]) -> None:
        if path.endswith("/campaigns") and "after" not in query:
            with psycopg.connect(settings.postgres_dsn) as conn:
                conn.execute(
                    f"update {settings.marketing_schema}.campaigns set status = 'paused', updated_at = %s"
                    " where campaign_id = %s",
                    (later, first["campaign_id"]),
                )
            served.after_response = None

    served.after_response = update_after_first_page
    pipeline = make_pipeline(settings, "bronze_marketing")
    raise_on_failed(pipeline.run(marketing_source(settings, page_size=10, base_url=served.url)))
    rows = bronze(settings, "campaigns")
    # the campaign was read twice in this load (page 1, then again at the end): one row, the newest
    assert duplicated_keys(rows, "campaign_id") == {}
    assert len(rows) == len(postgres_rows(settings, "campaigns")) == 45
    loaded = {r["campaign_id"]: r for r in rows}
    assert loaded.keys() == {r["campaign_id"] for r in postgres_rows(settings, "campaigns")}
    assert loaded[first["campaign_id"]]["status"] == "paused"  # read again at the end, in its new state
    assert loaded[first["campaign_id"]]["updated_at"] == later
    assert duplicated_keys(bronze(settings, "ad_spend"), "campaign_id", "spend_date") == {}


def test_a_row_committed_late_with_an_older_stamp_is_loaded(served: ServedApi) -> None:
    """`updated_at = now()` is the transaction start: a long transaction commits a row stamped
    before rows that another transaction committed (and a load read) in the meantime. The cursor
    keeps a safety margin, so the next load still asks for that stamp."""
    settings = served.settings
    table = f"{settings.marketing_schema}.campaigns"
    ids = sorted(r["campaign_id"] for r in postgres_rows(settings, "campaigns"))
    pipeline = make_pipeline(settings, "bronze_marketing")
    raise_on_failed(pipeline.run(marketing_source(settings, page_size=10, base_url=served.url)))
    with psycopg.connect(settings.postgres_dsn) as slow:
        # the trigger stamps now(): the start of this still-open transaction
        slow.execute(f"update {table} set status = 'ended' where campaign_id = %s", (ids[0],))
        with psycopg.connect(settings.postgres_dsn, autocommit=True) as fast:
            fast.execute(f"update {table} set status = 'paused' where campaign_id = %s", (ids[1],))
        raise_on_failed(pipeline.run(marketing_source(settings, page_size=10, base_url=served.url)))
        assert rows_by_table(pipeline) == {"campaigns": 1}  # only the committed change is visible
        slow.commit()
    stamps = {r["campaign_id"]: r["updated_at"] for r in postgres_rows(settings, "campaigns")}
    assert stamps[ids[0]] < stamps[ids[1]], "the slow transaction's row carries the older stamp"
    raise_on_failed(pipeline.run(marketing_source(settings, page_size=10, base_url=served.url)))
    assert rows_by_table(pipeline) == {"campaigns": 1}  # the late row; the unchanged one is skipped
    rows = bronze(settings, "campaigns")
    assert duplicated_keys(rows, "campaign_id") == {}
    loaded = {r["campaign_id"]: r for r in rows}
    assert (loaded[ids[0]]["status"], loaded[ids[1]]["status"]) == ("ended", "paused")
    raise_on_failed(pipeline.run(marketing_source(settings, page_size=10, base_url=served.url)))
    assert sum(rows_by_table(pipeline).values()) == 0  # inside the margin, unchanged rows are not reloaded
