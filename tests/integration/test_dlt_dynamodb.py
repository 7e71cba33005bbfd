"""DynamoDB -> bronze/dynamodb/<table> against the real emulator and a real Delta table on S3."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer
from deltalake import DeltaTable

from ingestion.dlt_sources import dynamodb as dynamodb_module
from ingestion.dlt_sources import dynamodb_source, load_summary, make_pipeline, raise_on_failed, rows_by_table
from lakehouse.settings import Settings
from lakehouse.stack.resources import dynamodb_client

START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
_serializer = TypeSerializer()


def iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def put(settings: Settings, table: str, items: list[dict[str, Any]]) -> None:
    client = dynamodb_client(settings)
    for lo in range(0, len(items), 25):
        requests = [
            {"PutRequest": {"Item": {k: _serializer.serialize(v) for k, v in item.items()}}}
            for item in items[lo : lo + 25]
        ]
        response = client.batch_write_item(RequestItems={settings.dynamodb_table(table): requests})
        assert not response.get("UnprocessedItems")


def cart(i: int, updated: dt.datetime, status: str = "active") -> dict[str, Any]:
    return {
        "cart_id": f"cart-{i:04d}",
        "customer_id": 1000 + i,
        "items": [
            {"product_id": 10 + k, "quantity": k + 1, "unit_price": Decimal(f"{k + 1}9.99")} for k in range(i % 3 + 1)
        ],
        "status": status,
        "created_at": iso(START),
        "updated_at": iso(updated),
    }


def session(i: int, updated: dt.datetime) -> dict[str, Any]:
    item: dict[str, Any] = {
        "session_id": f"sess-{i:04d}",
        "started_at": iso(updated - dt.timedelta(minutes=5)),
        "ended_at": iso(updated),
        "device": "mobile",
        "channel": "direct",
        "page_views": i % 7 + 1,
        "updated_at": iso(updated),
    }
    if i % 2:
        item["customer_id"] = 2000 + i  # anonymous sessions have none
    if i % 5 == 0:
        item["campaign_id"] = "cmp_000001"
    return item


def review(i: int, updated: dt.datetime) -> dict[str, Any]:
    return {
        "review_id": f"rev-{i:04d}",
        "product_id": 10 + i % 4,
        "customer_id": 3000 + i,
        "rating": i % 5 + 1,
        "title": f"title {i}",
        "body": "fine",
        "created_at": iso(START),
        "updated_at": iso(updated),
    }


def bronze(settings: Settings, table: str, key: str) -> dict[str, dict[str, Any]]:
    uri = settings.lake_uri("bronze", "dynamodb", table)
    rows = DeltaTable(uri, storage_options=settings.delta_storage_options).to_pyarrow_table().to_pylist()
    by_key = {row[key]: row for row in rows}
    assert len(by_key) == len(rows), f"duplicate keys in bronze {table}"
    return by_key


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Records every Scan and BatchGetItem request the source sends (the real client still answers)."""
    calls: list[dict[str, Any]] = []
    gets: list[dict[str, Any]] = []
    real_client = dynamodb_module._client

    def recording_client(settings: Settings) -> Any:
        client = real_client(settings)
        real_scan, real_get = client.scan, client.batch_get_item

        def scan(**kwargs: Any) -> dict[str, Any]:
            response = real_scan(**kwargs)
            calls.append({**kwargs, "_returned": len(response.get("Items", []))})
            return response

        def batch_get_item(**kwargs: Any) -> dict[str, Any]:
            gets.append(kwargs["RequestItems"])
            return dict(real_get(**kwargs))

        client.scan, client.batch_get_item = scan, batch_get_item
        return client

    monkeypatch.setattr(dynamodb_module, "_client", recording_client)
    return calls, gets


def test_dynamodb_load_merge_and_incremental(
    isolated_settings: Callable[[], Settings], recorded: tuple[list[dict[str, Any]], list[dict[str, Any]]]
) -> None:
    scans, gets = recorded
    settings = isolated_settings()
    t0 = START + dt.timedelta(days=1)
    put(settings, "carts", [cart(i, t0 + dt.timedelta(seconds=i)) for i in range(60)])
    put(settings, "sessions", [session(i, t0 + dt.timedelta(seconds=i)) for i in range(40)])
    put(settings, "reviews", [review(i, t0 + dt.timedelta(seconds=i)) for i in range(30)])
    pipeline = make_pipeline(settings, "bronze_dynamodb")

    # 1st run: everything, in 4 parallel segments of small pages
    raise_on_failed(pipeline.run(dynamodb_source(settings, segments=4, page_size=7)))
    assert rows_by_table(pipeline) == {"carts": 60, "sessions": 40, "reviews": 30}
    carts_table = settings.dynamodb_table("carts")
    first_run = [c for c in scans if c["TableName"] == carts_table]
    assert {c["Segment"] for c in first_run} == {0, 1, 2, 3} and {c["TotalSegments"] for c in first_run} == {4}
    assert len(first_run) > 4 and all("FilterExpression" not in c for c in first_run)

    carts = bronze(settings, "carts", "cart_id")
    assert len(carts) == 60
    c7 = carts["cart-0007"]
    assert c7["customer_id"] == 1007 and c7["status"] == "active"
    assert c7["updated_at"] == t0 + dt.timedelta(seconds=7)  # typed timestamp(us, UTC)
    assert json.loads(c7["items"]) == [
        {"product_id": 10, "quantity": 1, "unit_price": 19.99},
        {"product_id": 11, "quantity": 2, "unit_price": 29.99},
    ]
    sessions = bronze(settings, "sessions", "session_id")
    assert sessions["sess-0002"]["customer_id"] is None and sessions["sess-0003"]["customer_id"] == 2003
    assert sessions["sess-0005"]["campaign_id"] == "cmp_000001" and sessions["sess-0005"]["page_views"] == 6
    reviews = bronze(settings, "reviews", "review_id")
    assert reviews["rev-0004"]["rating"] == 5 and isinstance(reviews["rev-0004"]["rating"], int)
    versions = {t: s.delta_version for t, s in load_summary(settings, pipeline).items()}
    assert versions == {"carts": 0, "sessions": 0, "reviews": 0}

    # 2nd run, nothing changed: the scan ships keys and updated_at only, no item is fetched
    scans.clear()
    gets.clear()
    raise_on_failed(pipeline.run(dynamodb_source(settings)))
    assert sum(rows_by_table(pipeline).values()) == 0
    second_run = [c for c in scans if c["TableName"] == carts_table]
    assert {c["ProjectionExpression"] for c in second_run} == {"#k, #u"}
    assert {tuple(sorted(c["ExpressionAttributeNames"].values())) for c in second_run} == {("cart_id", "updated_at")}
    assert sum(c["_returned"] for c in second_run) == 60 and "FilterExpression" not in second_run[0]
    assert gets == []
    assert {t: s.delta_version for t, s in load_summary(settings, pipeline).items()} == versions

    # 3rd run: 3 carts change, 2 are new, one review is edited -> exactly those are extracted and merged
    t1 = t0 + dt.timedelta(hours=1)
    put(settings, "carts", [cart(i, t1, status="converted") for i in (3, 4, 5)])
    put(settings, "carts", [cart(i, t1 + dt.timedelta(seconds=1)) for i in (60, 61)])
    edited = review(9, t1) | {"rating": 1, "body": "changed my mind"}
    put(settings, "reviews", [edited])
    raise_on_failed(pipeline.run(dynamodb_source(settings)))
    assert rows_by_table(pipeline) == {"carts": 5, "reviews": 1}
    fetched = sorted(k["cart_id"]["S"] for keys in gets for k in keys.get(carts_table, {}).get("Keys", []))
    assert fetched == ["cart-0003", "cart-0004", "cart-0005", "cart-0060", "cart-0061"]  # only the changed ones
    carts = bronze(settings, "carts", "cart_id")
    assert len(carts) == 62
    assert {k for k, v in carts.items() if v["status"] == "converted"} == {"cart-0003", "cart-0004", "cart-0005"}
    assert carts["cart-0004"]["updated_at"] == t1
    reviews = bronze(settings, "reviews", "review_id")
    assert (
        len(reviews) == 30 and reviews["rev-0009"]["rating"] == 1 and reviews["rev-0009"]["body"] == "changed my mind"
    )
    summary = load_summary(settings, pipeline)
    assert summary["carts"].delta_version == 1 and summary["sessions"].delta_version == 0


def test_an_item_updated_during_a_scan_is_not_lost(isolated_settings: Callable[[], Settings]) -> None:
    """A scan is not a snapshot: an item written while it runs (or by a writer whose clock is
    behind) can carry an `updated_at` older than items the scan returned. The cursor stops at the
    scan's start minus a safety margin, so the next run still reads such an item."""
    settings = isolated_settings()
    now = dt.datetime.now(dt.UTC)
    put(settings, "carts", [cart(1, now + dt.timedelta(hours=1))])  # stamped by a clock ahead of ours
    pipeline = make_pipeline(settings, "bronze_dynamodb")
    raise_on_failed(pipeline.run(dynamodb_source(settings, tables=["carts"])))
    assert rows_by_table(pipeline) == {"carts": 1}

    put(settings, "carts", [cart(2, now)])  # older than the newest item the first scan saw
    raise_on_failed(pipeline.run(dynamodb_source(settings, tables=["carts"])))
    assert rows_by_table(pipeline) == {"carts": 1}  # cart 2 only: unchanged cart 1 is skipped
    assert set(bronze(settings, "carts", "cart_id")) == {"cart-0001", "cart-0002"}


def test_dynamodb_synthetic_items_round_trip(isolated_settings: Callable[[], Settings]) -> None:
    """The real generators' items (DynamoDB numbers, nested items, optional attributes) load as-is."""
    generate = pytest.importorskip("lakehouse.synthetic.entities").generate
    settings = isolated_settings()
    common: dict[str, Any] = {"seed": 7, "start_date": "2026-10-01", "days": 5}
    generate(settings, "customers", 50, **common)
    generate(settings, "products", 20, **common)
    generate(settings, "campaigns", 5, **common)
    counts = {
        t: generate(settings, t, n, **common).counts[t] for t, n in (("carts", 40), ("sessions", 60), ("reviews", 30))
    }
    pipeline = make_pipeline(settings, "bronze_dynamodb")
    raise_on_failed(pipeline.run(dynamodb_source(settings)))
    assert rows_by_table(pipeline) == counts

    client = dynamodb_client(settings)
    source = client.scan(TableName=settings.dynamodb_table("carts"))["Items"]
    carts = bronze(settings, "carts", "cart_id")
    assert set(carts) == {item["cart_id"]["S"] for item in source}
    for item in source[:10]:
        row = carts[item["cart_id"]["S"]]
        expected_items = [
            {k: float(v["N"]) if "." in v["N"] else int(v["N"]) for k, v in line["M"].items()}
            for line in item["items"]["L"]
        ]
        assert json.loads(row["items"]) == expected_items
        assert row["updated_at"] == dt.datetime.fromisoformat(item["updated_at"]["S"])
        assert row["customer_id"] == int(item["customer_id"]["N"])
    raise_on_failed(pipeline.run(dynamodb_source(settings)))
    assert sum(rows_by_table(pipeline).values()) == 0


def test_deleted_and_expired_items_leave_bronze(isolated_settings: Callable[[], Settings]) -> None:
    """A deleted item, and one past its TTL that DynamoDB has not removed yet, leave bronze; a key
    created again comes back. Nothing else is rewritten."""
    settings = isolated_settings()
    client = dynamodb_client(settings)
    table = settings.dynamodb_table("carts")
    client.update_time_to_live(
        TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
    )
    t0 = START + dt.timedelta(days=1)
    in_an_hour = int((dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).timestamp())
    put(settings, "carts", [cart(i, t0 + dt.timedelta(seconds=i)) | {"expires_at": in_an_hour} for i in range(6)])
    pipeline = make_pipeline(settings, "bronze_dynamodb")
    raise_on_failed(pipeline.run(dynamodb_source(settings, tables=["carts"])))
    assert set(bronze(settings, "carts", "cart_id")) == {f"cart-{i:04d}" for i in range(6)}

    client.delete_item(TableName=table, Key={"cart_id": {"S": "cart-0001"}})
    an_hour_ago = int((dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).timestamp())
    put(settings, "carts", [cart(2, t0 + dt.timedelta(hours=1)) | {"expires_at": an_hour_ago}])  # expired
    raise_on_failed(pipeline.run(dynamodb_source(settings, tables=["carts"])))
    assert set(bronze(settings, "carts", "cart_id")) == {"cart-0000", "cart-0003", "cart-0004", "cart-0005"}

    put(settings, "carts", [cart(1, t0 + dt.timedelta(hours=2), status="converted")])  # the key is reused
    raise_on_failed(pipeline.run(dynamodb_source(settings, tables=["carts"])))
    carts = bronze(settings, "carts", "cart_id")
    assert set(carts) == {"cart-0000", "cart-0001", "cart-0003", "cart-0004", "cart-0005"}
    assert carts["cart-0001"]["status"] == "converted"
    version = load_summary(settings, pipeline)["carts"].delta_version
    raise_on_failed(pipeline.run(dynamodb_source(settings, tables=["carts"])))
    assert sum(rows_by_table(pipeline).values()) == 0  # no change: no delete re-sent, nothing merged
    assert load_summary(settings, pipeline)["carts"].delta_version == version


def test_updated_at_with_a_space_or_another_offset_is_not_dropped(isolated_settings: Callable[[], Settings]) -> None:
    """The cursor compares instants: a writer's `2026-11-02 10:00:00` or `...T05:00:00-05:00` is
    newer than the cursor although it sorts lower as a string."""
    settings = isolated_settings()
    t0 = START + dt.timedelta(days=1)
    put(settings, "carts", [cart(i, t0 + dt.timedelta(seconds=i)) for i in range(3)])
    pipeline = make_pipeline(settings, "bronze_dynamodb")
    raise_on_failed(pipeline.run(dynamodb_source(settings, tables=["carts"])))
    later = t0 + dt.timedelta(hours=3)  # at -05:00 that is the day before, as text
    spaced = cart(10, later) | {"updated_at": later.strftime("%Y-%m-%d %H:%M:%S")}
    offset = cart(11, later) | {"updated_at": later.astimezone(dt.timezone(dt.timedelta(hours=-5))).isoformat()}
    put(settings, "carts", [spaced, offset])
    raise_on_failed(pipeline.run(dynamodb_source(settings, tables=["carts"])))
    assert rows_by_table(pipeline) == {"carts": 2}
    carts = bronze(settings, "carts", "cart_id")
    assert carts["cart-0010"]["updated_at"] == later and carts["cart-0011"]["updated_at"] == later
