"""The synthetic data API against the real stack: generation, 422s that change nothing, marketing pages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from lakehouse.settings import DYNAMODB_TABLES, Settings
from lakehouse.stack import LocalStack
from lakehouse.stack.resources import dynamodb_client, s3_client
from lakehouse.synthetic.api import create_app
from lakehouse.synthetic.checks import integrity_violations, table_counts
from lakehouse.synthetic.entities import ENTITIES
from tests.fixtures.aws import count_items, list_keys

START = "2024-06-01"


def snapshot(settings: Settings) -> dict[str, Any]:
    """Everything the generators can change: table counts, DynamoDB item counts, landing keys."""
    dynamodb = dynamodb_client(settings)
    items = {t: count_items(dynamodb, settings.dynamodb_table(t)) for t in DYNAMODB_TABLES}
    keys = sorted(list_keys(s3_client(settings), settings.landing_bucket))
    return {"tables": table_counts(settings), "items": items, "keys": keys}


@pytest.fixture
def api(isolated_settings: Callable[[], Settings]) -> Iterator[tuple[TestClient, Settings]]:
    settings = isolated_settings()
    with TestClient(create_app(settings)) as client:
        yield client, settings


def post(client: TestClient, entity: str, **params: Any) -> dict[str, Any]:
    response = client.post(f"/api/generate/{entity}", params={"start_date": START, "seed": 3, **params})
    assert response.status_code == 200, response.text
    return response.json()


def test_every_entity_can_be_generated(api: tuple[TestClient, Settings]) -> None:
    client, settings = api
    counts = {
        "customers": 200, "products": 40, "campaigns": 8, "ad_spend": 8, "orders": 1_000, "addresses": 30,
        "inventory": 20, "carts": 60, "sessions": 150, "reviews": 80, "clickstream": 120, "partner_feeds": 2,
    }  # fmt: skip
    assert set(counts) == set(ENTITIES)
    results = {entity: post(client, entity, count=n, days=10) for entity, n in counts.items()}
    for entity in ("customers", "products", "campaigns", "orders", "addresses", "inventory"):
        assert results[entity]["counts"][entity] == counts[entity], results[entity]
    assert results["orders"]["counts"]["payments"] == 1_000
    assert results["ad_spend"]["counts"]["ad_spend"] > 0
    for entity in ("carts", "sessions", "reviews"):
        assert results[entity]["counts"][entity] == counts[entity]
    assert results["clickstream"]["counts"]["clickstream_objects"] == 10  # one per day of the window
    assert results["partner_feeds"]["counts"]["partner_feed_objects"] == 2 * 10
    assert all(r["seed"] == 3 and r["start_date"] == START and r["elapsed_seconds"] >= 0 for r in results.values())
    state = snapshot(settings)
    assert state["items"] == {"carts": 60, "sessions": 150, "reviews": 80}
    objects = results["clickstream"]["objects"] + results["partner_feeds"]["objects"]
    assert state["keys"] == sorted(o["key"] for o in objects)
    assert set(integrity_violations(settings).values()) == {0}


@pytest.mark.parametrize(
    "query",
    [
        "orders?count=0",
        "orders?count=-4",
        "orders?count=100000000",
        "nonsense?count=3",
        "customers?count=5&start_date=2024-02-31",
        "customers?count=5&days=0",
        "orders?count=50",  # no customers yet: a domain error, still 422
        "clickstream?count=5&malformed_rate=2",
        "carts?count=5",  # needs customers and products
    ],
)
def test_bad_requests_are_422_and_change_nothing(api: tuple[TestClient, Settings], query: str) -> None:
    client, settings = api
    post(client, "products", count=5)  # some state, so "nothing changed" is not trivially true
    before = snapshot(settings)
    response = client.post(f"/api/generate/{query}")
    assert response.status_code == 422, response.text
    assert response.json()["detail"]
    assert snapshot(settings) == before


def _all_pages(client: TestClient, resource: str, page_size: int, since: str | None = None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    page: int | None = 1
    total_pages = total = None
    while page is not None:
        params: dict[str, Any] = {"page": page, "page_size": page_size}
        if since:
            params["updated_since"] = since
        body = client.get(f"/api/marketing/{resource}", params=params).json()
        assert body["page"] == page and body["page_size"] == page_size
        total_pages = body["total_pages"] if total_pages is None else total_pages
        total = body["total"] if total is None else total
        assert (body["total_pages"], body["total"]) == (total_pages, total)
        assert len(body["data"]) <= page_size
        rows.extend(body["data"])
        page = body["next_page"]
    assert len(rows) == total
    return rows


def test_marketing_pagination_and_updated_since(api: tuple[TestClient, Settings]) -> None:
    client, _ = api
    post(client, "campaigns", count=45, days=30)
    post(client, "ad_spend", count=45, days=30)
    campaigns = _all_pages(client, "campaigns", page_size=7)
    assert len(campaigns) == 45
    assert len({c["campaign_id"] for c in campaigns}) == 45
    keys = [(c["updated_at"], c["campaign_id"]) for c in campaigns]
    assert keys == sorted(keys)  # stable order (updated_at, campaign_id)
    first = campaigns[0]
    assert (
        isinstance(first["daily_budget"], float)
        and first["start_date"] == dt.date.fromisoformat(first["start_date"]).isoformat()
    )
    assert first["updated_at"].endswith("Z")

    spend = _all_pages(client, "ad_spend", page_size=100)
    assert len(spend) > 45
    assert len({(r["campaign_id"], r["spend_date"]) for r in spend}) == len(spend)
    spend_keys = [(r["updated_at"], r["campaign_id"], r["spend_date"]) for r in spend]
    assert spend_keys == sorted(spend_keys)
    assert all(r["clicks"] <= r["impressions"] and isinstance(r["spend"], float) for r in spend)

    # updated_since is an inclusive lower bound
    cut = spend[len(spend) // 2]["updated_at"]
    newer = _all_pages(client, "ad_spend", page_size=1000, since=cut)
    assert newer and all(r["updated_at"] >= cut for r in newer)
    assert len(newer) == sum(1 for r in spend if r["updated_at"] >= cut)
    assert any(r["updated_at"] == cut for r in newer)
    assert _all_pages(client, "campaigns", 10, since="2999-01-01T00:00:00Z") == []
    # the '+' of an offset that was not URL-encoded arrives as a space and still parses
    raw = client.get(f"/api/marketing/ad_spend?updated_since={cut.replace('Z', '+00:00')}&page_size=1000")
    assert raw.status_code == 200 and raw.json()["total"] == len(newer)

    past_end = client.get("/api/marketing/campaigns", params={"page": 99, "page_size": 10}).json()
    assert past_end["data"] == [] and past_end["next_page"] is None and past_end["total_pages"] == 5


def test_marketing_keyset_cursor_pages_through_everything_once(api: tuple[TestClient, Settings]) -> None:
    client, _ = api
    post(client, "campaigns", count=23, days=30)
    by_page = _all_pages(client, "campaigns", page_size=5)
    rows: list[dict[str, Any]] = []
    params: dict[str, Any] = {"page_size": 5}
    while True:
        body = client.get("/api/marketing/campaigns", params=params).json()
        rows.extend(body["data"])
        if "after" in params:
            assert body["next_page"] is None  # keyset pages have no page numbers
        if body["next_cursor"] is None:
            break
        params["after"] = body["next_cursor"]
    assert rows == by_page and len(rows) == 23


def test_the_stack_serves_the_api(local_stack: LocalStack, settings: Settings) -> None:
    """The API process the stack started (uvicorn) answers on its port."""
    assert httpx.get(f"{settings.api_url}/health", timeout=5).json() == {"status": "ok"}
    body = httpx.get(f"{settings.api_url}/api/marketing/campaigns", params={"page_size": 5}, timeout=10).json()
    assert {"data", "page", "page_size", "total_pages", "next_page"} <= body.keys()
    assert httpx.post(f"{settings.api_url}/api/generate/orders", params={"count": 0}, timeout=10).status_code == 422
