"""S3 landing objects -> bronze/landing/* on the real emulator: exactly once, quarantine, partitions."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from deltalake import DeltaTable

from ingestion.dlt_sources import LandingLoad, benchmark_clickstream_load, load_landing
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


def test_clickstream_exactly_once_with_quarantine(isolated_settings: Callable[[], Settings]) -> None:
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

    # the sensor's way: explicit keys
    report = load(settings, object_keys=[key_a, key_b])
    assert (report.rows, report.quarantined, len(report.objects)) == (197 + 200, 3, 2)
    rows = bronze(settings, "clickstream")
    assert len(rows) == 397
    loaded_a = sorted((r for r in rows if r["_object_key"] == key_a), key=lambda r: r["_line_number"])
    assert [r["event_id"] for r in loaded_a] == [e["event_id"] for e in expected_a]
    assert {r["_object_etag"] for r in loaded_a} == {etag_a}
    assert {r["_dlt_load_id"] for r in rows} == {report.load_id}
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
    manifest = bronze(settings, "_objects")
    assert sorted((m["object_key"], m["status"], m["rows"], m["quarantined_lines"]) for m in manifest) == [
        (key_a, "loaded", 197, 3),
        (key_a, "staged", 197, 3),
        (key_b, "loaded", 200, 0),
        (key_b, "staged", 200, 0),
    ]

    # partitioned by event_date; DuckDB reads it through delta_scan (also the files written here)
    table = DeltaTable(
        settings.lake_uri("bronze", "landing", "clickstream"), storage_options=settings.delta_storage_options
    )
    assert table.metadata().partition_columns == ["event_date"]
    with duck.connect(settings) as con:
        per_day = con.execute(
            "select event_date::varchar, count(*) from delta_scan(?) group by 1 order by 1",
            [settings.lake_uri("bronze", "landing", "clickstream")],
        ).fetchall()
        # file statistics written by the loader let DuckDB skip files (a wrong min/max would lose rows)
        one = con.execute(
            "select count(*) from delta_scan(?) where _object_key = ?",
            [settings.lake_uri("bronze", "landing", "clickstream"), key_b],
        ).fetchone()
    assert per_day == [("2026-11-20", 247), ("2026-11-21", 150)]
    assert one == (200,)

    # re-delivery of the same objects (sensor fires twice, S3 event duplicated): nothing is written
    versions = {t: version(settings, t) for t in ("clickstream", "_quarantine", "_objects")}
    assert load(settings, object_keys=[key_a, key_b]).objects == []
    put_lines(settings, key_a, lines_a)  # same bytes uploaded again -> same ETag
    assert load(settings).objects == []  # prefix mode
    assert {t: version(settings, t) for t in versions} == versions

    # prefix mode loads only the new object
    key_c = "clickstream/dt=2026-11-22/events-c.json.gz"
    put_lines(settings, key_c, [json.dumps(event(i, "2026-11-22")) for i in range(25)])
    report = load(settings)
    assert [(o.key, o.rows, o.replaced) for o in report.objects] == [(key_c, 25, False)]
    assert len(bronze(settings, "clickstream")) == 422
    assert report.delta_versions["clickstream"] == version(settings, "clickstream")
    assert report.delta_versions["_objects"] == version(settings, "_objects")


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
    report = load(settings, kind="partner_feeds")
    assert (report.rows, report.quarantined) == (2, 2)
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
    [loaded] = [m for m in bronze(settings, "_objects") if m["status"] == "loaded"]
    assert (loaded["kind"], loaded["event_dates"]) == ("partner_feeds", [dt.date(2026, 11, 20)])
    assert load(settings, kind="partner_feeds").objects == []
    # a key the sensor saw but that is gone by now (lifecycle, manual delete) is skipped, not fatal
    gone = "partner_feeds/partner_007/dt=2026-11-21/feed-gone.csv"
    assert load(settings, object_keys=[key, gone], kind="partner_feeds").objects == []


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
    load(settings, kind="partner_feeds")

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


def test_verify_reloads_what_bronze_lost(isolated_settings: Callable[[], Settings]) -> None:
    """The manifest is the ledger; `verify=True` checks the data table itself against it."""
    settings = isolated_settings()
    key = "clickstream/dt=2026-11-20/events-v.json.gz"
    put_lines(settings, key, [json.dumps(event(i)) for i in range(10)])
    assert load(settings).rows == 10
    # the data table is lost (restored from an old backup, deleted by hand...) but the manifest is not
    s3 = s3_client(settings)
    listing = s3.list_objects_v2(Bucket=settings.lake_bucket, Prefix="bronze/landing/clickstream/")
    s3.delete_objects(Bucket=settings.lake_bucket, Delete={"Objects": [{"Key": o["Key"]} for o in listing["Contents"]]})
    assert load(settings).objects == []  # the manifest alone believes it is loaded
    assert load(settings, verify=True).rows == 10
    assert load(settings, verify=True).objects == []
    assert len(bronze(settings, "clickstream")) == 10


def load(settings: Settings, **kwargs: Any) -> LandingLoad:
    return load_landing(settings, **kwargs)


def test_a_corrected_object_replaces_all_its_earlier_rows(isolated_settings: Callable[[], Settings]) -> None:
    """Version 2 drops a day and moves an event to another day: bronze must hold exactly version 2."""
    settings = isolated_settings()
    key = "clickstream/dt=2026-11-20/events-fix.json.gz"
    other = "clickstream/dt=2026-11-25/events-other.json.gz"
    v1 = [event(i, "2026-11-20") for i in range(6)] + [event(i, "2026-11-21") for i in range(6, 10)]
    etag_1 = put_lines(settings, key, [json.dumps(e) for e in v1])
    put_lines(settings, other, [json.dumps(event(i, "2026-11-25")) for i in range(5)])
    load(settings)
    uri = settings.lake_uri("bronze", "landing", "clickstream")
    table = DeltaTable(uri, storage_options=settings.delta_storage_options)
    untouched = sorted(f for f in table.file_uris() if "event_date=2026-11-25" in f)
    before = table.version()

    # version 2: 2026-11-21 dropped, ev-2026-11-20-5 moved to 2026-11-22, one event corrected
    v2 = [event(i, "2026-11-20") for i in range(5)] + [event(5, "2026-11-20", event_ts="2026-11-22T08:00:00Z")]
    v2[0]["event_type"] = "add_to_cart"
    etag_2 = put_lines(settings, key, [json.dumps(e) for e in v2])
    assert etag_2 != etag_1
    load(settings)
    table = DeltaTable(uri, storage_options=settings.delta_storage_options)
    rows = [r for r in table.to_pyarrow_table().to_pylist() if r["_object_key"] == key]
    assert sorted((r["event_id"], str(r["event_date"]), r["event_type"]) for r in rows) == sorted(
        (e["event_id"], e["event_ts"][:10], e["event_type"]) for e in v2
    )
    assert {r["_object_etag"] for r in rows} == {etag_2}
    # one atomic commit replaced the object; the other object's day was not rewritten
    assert table.version() == before + 1
    assert sorted(f for f in table.file_uris() if "event_date=2026-11-25" in f) == untouched

    # the manifest lists both versions with the days each touched, the newer loaded later
    manifest = bronze(settings, "_objects")
    mine = sorted(
        (m for m in manifest if m["object_key"] == key and m["status"] == "loaded"), key=lambda m: m["loaded_at"]
    )
    # each version was recorded (status staged, no loaded_at) before its data moved
    intents = [m for m in manifest if m["object_key"] == key and m["status"] == "staged"]
    assert sorted(m["object_etag"] for m in intents) == sorted([etag_1, etag_2])
    assert all(m["loaded_at"] is None and m["recorded_at"] is not None for m in intents)
    assert [(m["kind"], m["object_etag"], [str(d) for d in m["event_dates"]], m["rows"]) for m in mine] == [
        ("clickstream", etag_1, ["2026-11-20", "2026-11-21"], 10),
        ("clickstream", etag_2, ["2026-11-20", "2026-11-22"], 6),
    ]
    assert mine[0]["loaded_at"] < mine[1]["loaded_at"]
    assert {r["_dlt_load_id"] for r in rows} == {mine[1]["load_id"]}

    load(settings)  # nothing new: neither table changes
    assert DeltaTable(uri, storage_options=settings.delta_storage_options).version() == before + 1
    assert len(bronze(settings, "_objects")) == len(manifest)


def test_a_crash_between_the_commits_neither_doubles_nor_loses_rows(
    isolated_settings: Callable[[], Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loader dies after the data commit, before the `loaded` manifest row (the worst place):
    the retry replaces instead of appending, and a version that arrived meanwhile still removes
    the days the interrupted one had added."""
    from ingestion.dlt_sources import landing as landing_module

    settings = isolated_settings()
    key, mixed = "clickstream/dt=2026-11-20/events-k.json.gz", "clickstream/dt=2026-11-20/events-m.json.gz"
    put_lines(settings, key, [json.dumps(event(i, "2026-11-20")) for i in range(4)])
    assert load(settings).rows == 4
    real_append = landing_module.append_rows

    def dies_before_done(settings: Settings, uri: str, rows: Any, *args: Any) -> int:
        if rows["status"][0].as_py() == "loaded":
            raise RuntimeError("killed")
        return int(real_append(settings, uri, rows, *args))

    # version 2 adds 2026-11-21; a second object has good and bad lines
    put_lines(
        settings, key, [json.dumps(event(i, "2026-11-20")) for i in range(4)] + [json.dumps(event(9, "2026-11-21"))]
    )
    put_lines(settings, mixed, [json.dumps(event(20, "2026-11-20")), "{oops"])
    monkeypatch.setattr(landing_module, "append_rows", dies_before_done)
    with pytest.raises(RuntimeError, match="killed"):
        load(settings)
    monkeypatch.setattr(landing_module, "append_rows", real_append)
    assert sorted(str(r["event_date"]) for r in bronze(settings, "clickstream") if r["_object_key"] == key) == [
        "2026-11-20"
    ] * 4 + ["2026-11-21"]  # version 2 reached bronze, unrecorded

    # version 3 arrives before any retry, and drops 2026-11-21 (only the unrecorded version 2 had it)
    etag_3 = put_lines(settings, key, [json.dumps(event(i, "2026-11-22")) for i in range(3)])
    report = load(settings)  # the retry: both objects again
    assert sorted((o.key, o.rows, o.quarantined) for o in report.objects) == [(key, 3, 0), (mixed, 1, 1)]
    rows = [r for r in bronze(settings, "clickstream") if r["_object_key"] == key]
    assert sorted((str(r["event_date"]), r["_object_etag"]) for r in rows) == [("2026-11-22", etag_3)] * 3
    assert len([r for r in bronze(settings, "clickstream") if r["_object_key"] == mixed]) == 1
    assert len(bronze(settings, "_quarantine")) == 1  # the interrupted attempt's row was replaced
    assert load(settings).objects == []


def test_a_table_from_the_old_loader_gets_its_manifest_and_loses_superseded_versions(
    isolated_settings: Callable[[], Settings],
) -> None:
    """Before the manifest, corrected objects were appended next to their earlier version."""
    import pyarrow as pa
    from deltalake import write_deltalake

    from ingestion.dlt_sources.landing_parse import BRONZE_SCHEMAS

    settings = isolated_settings()
    key = "clickstream/dt=2026-11-20/events-old.json.gz"
    put_lines(settings, key, [json.dumps(event(i)) for i in range(3)])  # the current version in S3
    current = s3_client(settings).head_object(Bucket=settings.landing_bucket, Key=key)["ETag"].strip('"')

    def legacy(etag: str, day: str, load_id: str, n: int) -> pa.Table:
        base = {f.name: pa.nulls(n, f.type) for f in BRONZE_SCHEMAS["clickstream"]}
        base |= {
            "event_id": pa.array([f"ev-{day}-{i}" for i in range(n)]),
            "event_ts": pa.array([dt.datetime.fromisoformat(f"{day}T00:00:0{i}+00:00") for i in range(n)]),
            "event_date": pa.array([dt.date.fromisoformat(day)] * n),
            "_object_key": pa.array([key] * n),
            "_object_etag": pa.array([etag] * n),
            "_line_number": pa.array(range(1, n + 1), pa.int64()),
            "_dlt_load_id": pa.array([load_id] * n),
        }
        return pa.table(base, schema=BRONZE_SCHEMAS["clickstream"])

    uri = settings.lake_uri("bronze", "landing", "clickstream")
    old = pa.concat_tables(
        [legacy("0ld", "2026-11-19", "1700000000.1", 2), legacy(current, "2026-11-20", "1700000100.2", 3)]
    )
    write_deltalake(uri, old, partition_by=["event_date"], storage_options=settings.delta_storage_options)

    assert load(settings).objects == []  # the current version is recognised as loaded
    rows = bronze(settings, "clickstream")
    assert sorted((r["_object_etag"], str(r["event_date"])) for r in rows) == [(current, "2026-11-20")] * 3
    manifest = sorted(
        (m["object_etag"], m["status"], [str(d) for d in m["event_dates"]]) for m in bronze(settings, "_objects")
    )
    assert manifest == [("0ld", "loaded", ["2026-11-19"]), (current, "loaded", ["2026-11-20"])]
