"""S3 landing objects -> bronze/landing/* on the real emulator: exactly once, quarantine, partitions."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import logging
import shutil
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from deltalake import DeltaTable

from ingestion.dlt_sources import (
    benchmark_clickstream_load,
    landing_source,
    load_summary,
    make_pipeline,
    raise_on_failed,
    rows_by_table,
)
from lakehouse import duck
from lakehouse.settings import Settings
from lakehouse.stack.resources import s3_client


def event(i: int, day: str = "2026-11-20", **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": f"ev-{day}-{i}",
        "event_type": "page_view",
        "event_ts": f"{day}T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z",
        "session_id": f"s-{i // 4}",
        "customer_id": i if i % 3 else None,
        "product_id": 100 + i % 7 if i % 2 else None,
        "order_id": None,
        "page_url": f"https://shop.example/p/{i}",
        "referrer": None,
        "campaign_id": "cmp_000001" if i % 5 == 0 else None,
        "device": "desktop",
    }
    return base | overrides


def put_lines(settings: Settings, key: str, lines: list[str]) -> str:
    body = gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0)
    response = s3_client(settings).put_object(Bucket=settings.landing_bucket, Key=key, Body=body)
    return str(response["ETag"]).strip('"')


def bronze(settings: Settings, table: str) -> list[dict[str, Any]]:
    uri = settings.lake_uri("bronze", "landing", table)
    options = settings.delta_storage_options
    if not DeltaTable.is_deltatable(uri, storage_options=options):
        return []
    return DeltaTable(uri, storage_options=options).to_pyarrow_table().to_pylist()


def version(settings: Settings, table: str) -> int:
    uri = settings.lake_uri("bronze", "landing", table)
    return int(DeltaTable(uri, storage_options=settings.delta_storage_options).version())


def test_clickstream_exactly_once_with_quarantine(
    isolated_settings: Callable[[], Settings], caplog: pytest.LogCaptureFixture
) -> None:
    settings = isolated_settings()
    key_a = "clickstream/dt=2026-11-20/events-a.json.gz"
    key_b = "clickstream/dt=2026-11-21/events-b.json.gz"
    good_a = [event(i) for i in range(200)]
    lines_a = [json.dumps(e) for e in good_a]
    lines_a[10] = lines_a[10][:40]  # broken JSON
    lines_a[20] = json.dumps({k: v for k, v in good_a[20].items() if k != "event_ts"})  # missing field
    lines_a[30] = json.dumps(good_a[30] | {"product_id": "p-30"})  # wrong type
    expected_a = [e for i, e in enumerate(good_a) if i not in (10, 20, 30)]
    etag_a = put_lines(settings, key_a, lines_a)
    # object b spans two event dates (late events of the previous day)
    events_b = [event(i, "2026-11-21") for i in range(150)] + [event(i, "2026-11-20") for i in range(500, 550)]
    put_lines(settings, key_b, [json.dumps(e) for e in events_b])
    pipeline = make_pipeline(settings, "bronze_landing_clickstream")

    # the sensor's way: explicit keys
    raise_on_failed(pipeline.run(landing_source(settings, object_keys=[key_a, key_b])))
    assert rows_by_table(pipeline) == {"clickstream": 197 + 200, "_quarantine": 3}
    rows = bronze(settings, "clickstream")
    assert len(rows) == 397
    loaded_a = sorted((r for r in rows if r["_object_key"] == key_a), key=lambda r: r["_line_number"])
    assert [r["event_id"] for r in loaded_a] == [e["event_id"] for e in expected_a]
    assert {r["_object_etag"] for r in loaded_a} == {etag_a}
    assert [r["_line_number"] for r in loaded_a][:11] == [*range(1, 11), 12]
    sample = next(r for r in loaded_a if r["event_id"] == "ev-2026-11-20-61")
    assert sample["customer_id"] == 61 and sample["product_id"] == 105 and sample["referrer"] is None
    assert sample["event_ts"] == dt.datetime(2026, 11, 20, 0, 1, 1, tzinfo=dt.UTC)
    quarantine = sorted(bronze(settings, "_quarantine"), key=lambda r: r["line_number"])
    assert [(q["source"], q["object_key"], q["line_number"]) for q in quarantine] == [
        ("clickstream", key_a, 11),
        ("clickstream", key_a, 21),
        ("clickstream", key_a, 31),
    ]
    assert quarantine[0]["raw"] == lines_a[10] and quarantine[0]["reason"].startswith("invalid JSON")
    assert quarantine[1]["reason"] == "missing required field(s): event_ts"
    assert quarantine[2]["reason"].startswith("product_id: expected an integer")
    assert all(q["object_etag"] == etag_a and q["quarantined_at"] is not None for q in quarantine)

    # partitioned by event_date; DuckDB reads it through delta_scan
    table = DeltaTable(
        settings.lake_uri("bronze", "landing", "clickstream"), storage_options=settings.delta_storage_options
    )
    assert table.metadata().partition_columns == ["event_date"]
    with duck.connect(settings) as con:
        per_day = con.execute(
            "select event_date::varchar, count(*) from delta_scan(?) group by 1 order by 1",
            [settings.lake_uri("bronze", "landing", "clickstream")],
        ).fetchall()
    assert per_day == [("2026-11-20", 247), ("2026-11-21", 150)]

    # re-delivery of the same objects (sensor fires twice, S3 event duplicated): nothing is added
    versions = (version(settings, "clickstream"), version(settings, "_quarantine"))
    raise_on_failed(pipeline.run(landing_source(settings, object_keys=[key_a, key_b])))
    assert sum(rows_by_table(pipeline).values()) == 0
    put_lines(settings, key_a, lines_a)  # same bytes uploaded again -> same ETag
    raise_on_failed(pipeline.run(landing_source(settings)))  # prefix mode
    assert sum(rows_by_table(pipeline).values()) == 0
    assert (version(settings, "clickstream"), version(settings, "_quarantine")) == versions

    # prefix mode loads only the new object
    key_c = "clickstream/dt=2026-11-22/events-c.json.gz"
    put_lines(settings, key_c, [json.dumps(event(i, "2026-11-22")) for i in range(25)])
    raise_on_failed(pipeline.run(landing_source(settings)))
    assert rows_by_table(pipeline) == {"clickstream": 25}
    assert len(bronze(settings, "clickstream")) == 422

    # the working dir (dlt state) is lost: the bronze table itself still prevents duplicates
    shutil.rmtree(settings.state_path / "dlt" / "bronze_landing_clickstream")
    fresh = make_pipeline(settings, "bronze_landing_clickstream")
    raise_on_failed(fresh.run(landing_source(settings)))
    with caplog.at_level(logging.INFO, logger="ingestion.dlt_sources.landing"):
        other = make_pipeline(settings, "other_pipeline", dataset="landing")  # no state at all
        raise_on_failed(other.run(landing_source(settings)))
    assert sum(rows_by_table(other).values()) == 0
    assert caplog.text.count("is already in bronze; recorded and skipped") == 3
    assert len(bronze(settings, "clickstream")) == 422
    assert len(bronze(settings, "_quarantine")) == 3

    # a new version of an object (same key, other content -> other ETag) is a new delivery
    put_lines(settings, key_c, [json.dumps(event(i, "2026-11-22")) for i in range(25, 30)])
    raise_on_failed(fresh.run(landing_source(settings, object_keys=[key_c])))
    assert rows_by_table(fresh) == {"clickstream": 5}
    summary = load_summary(settings, fresh)
    assert summary["clickstream"].rows == 5 and summary["clickstream"].delta_version == version(settings, "clickstream")
    assert summary["partner_feeds"].delta_version is None


def test_reprocessing_never_duplicates_quarantine_rows(isolated_settings: Callable[[], Settings]) -> None:
    """An object whose every line is bad leaves no trace in the data table; quarantine merges insert-only."""
    settings = isolated_settings()
    key = "clickstream/dt=2026-11-20/events-bad.json.gz"
    put_lines(settings, key, ["{oops", "not json", json.dumps(event(1, event_ts="soon"))])
    for name in ("p_one", "p_two"):  # two pipelines = no shared dlt state
        raise_on_failed(make_pipeline(settings, name, dataset="landing").run(landing_source(settings, [key])))
    quarantine = bronze(settings, "_quarantine")
    assert sorted(q["line_number"] for q in quarantine) == [1, 2, 3]
    assert bronze(settings, "clickstream") == []


def test_partner_feeds_load_with_quarantine(isolated_settings: Callable[[], Settings]) -> None:
    settings = isolated_settings()
    key = "partner_feeds/partner_007/dt=2026-11-20/feed-1.csv"
    body = "\n".join(
        [
            "partner_id,sku,partner_price,currency,stock_level,feed_date",
            "partner_007,SKU-1,12.50,USD,5,2026-11-20",
            "partner_007,SKU-2,N/A,USD,5,2026-11-20",
            "partner_007,SKU-3,7.25,EUR,0,2026-11-20",
            "partner_007,SKU-4,7.25,EUR",
        ]
    )
    s3_client(settings).put_object(Bucket=settings.landing_bucket, Key=key, Body=body.encode())
    pipeline = make_pipeline(settings, "bronze_landing_partner_feeds")
    raise_on_failed(pipeline.run(landing_source(settings, kind="partner_feeds")))
    assert rows_by_table(pipeline) == {"partner_feeds": 2, "_quarantine": 2}
    rows = sorted(bronze(settings, "partner_feeds"), key=lambda r: r["sku"])
    assert [(r["sku"], r["partner_price"], r["currency"], r["stock_level"], r["_line_number"]) for r in rows] == [
        ("SKU-1", Decimal("12.5"), "USD", 5, 2),
        ("SKU-3", Decimal("7.25"), "EUR", 0, 4),
    ]
    assert rows[0]["feed_date"] == dt.date(2026, 11, 20)
    quarantine = sorted(bronze(settings, "_quarantine"), key=lambda r: r["line_number"])
    assert [(q["source"], q["line_number"], q["reason"]) for q in quarantine] == [
        ("partner_feeds", 3, "non-numeric partner_price: 'N/A'"),
        ("partner_feeds", 5, "wrong column count: expected 6, got 4"),
    ]
    raise_on_failed(pipeline.run(landing_source(settings, kind="partner_feeds")))
    assert sum(rows_by_table(pipeline).values()) == 0
    # a key the sensor saw but that is gone by now (lifecycle, manual delete) is skipped, not fatal
    gone = "partner_feeds/partner_007/dt=2026-11-21/feed-gone.csv"
    raise_on_failed(pipeline.run(landing_source(settings, object_keys=[key, gone], kind="partner_feeds")))
    assert sum(rows_by_table(pipeline).values()) == 0


def test_synthetic_landing_objects_and_benchmark(isolated_settings: Callable[[], Settings]) -> None:
    """The real generators' objects: every good record loads, every broken one is quarantined."""
    generate = pytest.importorskip("lakehouse.synthetic.entities").generate
    settings = isolated_settings()
    common: dict[str, Any] = {"seed": 11, "start_date": "2026-10-01", "days": 3}
    generate(settings, "customers", 100, **common)
    generate(settings, "products", 30, **common)
    generate(settings, "campaigns", 5, **common)
    clicks = generate(settings, "clickstream", 400, malformed_rate=0.02, **common)
    feeds = generate(settings, "partner_feeds", 2, malformed_rate=0.05, **common)
    good = {o["key"]: o["good"] for o in clicks.objects + feeds.objects}
    bad = {o["key"]: o["bad"] for o in clicks.objects + feeds.objects}
    assert sum(bad.values()) > 0, "the generator should have broken some records"

    result = benchmark_clickstream_load(settings)
    assert result.rows == sum(good[o["key"]] for o in clicks.objects) and result.rows_per_second > 0
    feeds_pipeline = make_pipeline(settings, "bronze_landing_partner_feeds")
    raise_on_failed(feeds_pipeline.run(landing_source(settings, kind="partner_feeds")))

    for table in ("clickstream", "partner_feeds"):
        loaded: dict[str, int] = {}
        for row in bronze(settings, table):
            loaded[row["_object_key"]] = loaded.get(row["_object_key"], 0) + 1
        assert loaded == {k: n for k, n in good.items() if k.startswith(table) and n}
    quarantined: dict[str, int] = {}
    for row in bronze(settings, "_quarantine"):
        quarantined[row["object_key"]] = quarantined.get(row["object_key"], 0) + 1
    assert quarantined == {k: n for k, n in bad.items() if n}
    assert benchmark_clickstream_load(settings).rows == 0  # already loaded


def test_verify_reconciles_state_with_bronze(isolated_settings: Callable[[], Settings]) -> None:
    """dlt advances its state at extract time; `verify=True` trusts only what bronze really holds."""
    settings = isolated_settings()
    key = "clickstream/dt=2026-11-20/events-v.json.gz"
    put_lines(settings, key, [json.dumps(event(i)) for i in range(10)])
    pipeline = make_pipeline(settings, "bronze_landing_clickstream")
    raise_on_failed(pipeline.run(landing_source(settings)))
    assert rows_by_table(pipeline) == {"clickstream": 10}
    # simulate a load that never reached the lake although the state recorded the object
    s3 = s3_client(settings)
    listing = s3.list_objects_v2(Bucket=settings.lake_bucket, Prefix="bronze/landing/clickstream/")
    s3.delete_objects(Bucket=settings.lake_bucket, Delete={"Objects": [{"Key": o["Key"]} for o in listing["Contents"]]})
    raise_on_failed(pipeline.run(landing_source(settings)))
    assert sum(rows_by_table(pipeline).values()) == 0  # the state alone believes it is loaded
    raise_on_failed(pipeline.run(landing_source(settings, verify=True)))
    assert rows_by_table(pipeline) == {"clickstream": 10}
    raise_on_failed(pipeline.run(landing_source(settings, verify=True)))
    assert sum(rows_by_table(pipeline).values()) == 0
    assert len(bronze(settings, "clickstream")) == 10
