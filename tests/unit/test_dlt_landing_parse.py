"""Parsing/validation of landing objects (pure functions: no stack needed)."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from ingestion.dlt_sources.landing_parse import (
    QUARANTINE_SCHEMA,
    parse_clickstream,
    parse_partner_feed,
    quarantine_table,
    validate_key,
    validate_prefix,
)

KEY = "clickstream/dt=2026-11-20/events-abc.json.gz"
FEED_KEY = "partner_feeds/partner_001/dt=2026-11-20/feed-abc.csv"
ETAG = "0123456789abcdef0123456789abcdef"


def event(i: int, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": f"ev-{i}",
        "event_type": "page_view",
        "event_ts": f"2026-11-20T10:00:{i % 60:02d}Z",
        "session_id": f"s-{i // 3}",
        "customer_id": i if i % 2 else None,
        "product_id": None,
        "order_id": None,
        "page_url": f"https://shop.example/p/{i}",
        "referrer": None,
        "campaign_id": None,
        "device": "mobile",
    }
    base.update(overrides)
    return base


def jsonl(lines: list[str]) -> bytes:
    return gzip.compress(("\n".join(lines) + "\n").encode())


def test_clean_object_loads_every_line_with_lineage_and_types() -> None:
    events = [event(i) for i in range(1, 101)]
    parsed = parse_clickstream(jsonl([json.dumps(e) for e in events]), KEY, ETAG)
    assert parsed.bad == []
    rows = parsed.rows
    assert rows is not None and rows.num_rows == 100
    assert rows.schema.field("event_ts").type == pa.timestamp("us", tz="UTC")
    assert rows.schema.field("event_date").type == pa.date32()
    assert rows.schema.field("customer_id").type == pa.int64()
    first = rows.slice(0, 1).to_pylist()[0]
    assert first["event_id"] == "ev-1" and first["customer_id"] == 1
    assert first["event_ts"] == dt.datetime(2026, 11, 20, 10, 0, 1, tzinfo=dt.UTC)
    assert first["event_date"] == dt.date(2026, 11, 20)
    assert rows["_line_number"].to_pylist() == list(range(1, 101))
    assert set(rows["_object_key"].to_pylist()) == {KEY}
    assert set(rows["_object_etag"].to_pylist()) == {ETAG}


def test_malformed_lines_are_quarantined_with_reasons_and_the_rest_loads() -> None:
    lines = [json.dumps(event(i)) for i in range(1, 11)]
    lines[1] = lines[1][:25]  # truncated JSON (line 2)
    lines[3] = "[1, 2, 3]"  # not an object (line 4)
    lines[4] = json.dumps(event(5, customer_id="abc"))  # wrong type (line 5)
    lines[6] = json.dumps({k: v for k, v in event(7).items() if k != "session_id"})  # missing (line 7)
    lines[7] = json.dumps(event(8, event_ts="yesterday"))  # bad timestamp (line 8)
    lines[8] = json.dumps(event(9, event_id=""))  # empty required field (line 9)
    parsed = parse_clickstream(jsonl(lines), KEY, ETAG)
    reasons = {number: reason for number, _raw, reason in parsed.bad}
    assert sorted(reasons) == [2, 4, 5, 7, 8, 9]
    assert reasons[2].startswith("invalid JSON")
    assert reasons[4].startswith("not a JSON object")
    assert reasons[5].startswith("customer_id: expected an integer")
    assert reasons[7] == "missing required field(s): session_id"
    assert reasons[8].startswith("event_ts is not an ISO-8601 timestamp")
    assert reasons[9] == "missing required field(s): event_id"
    raws = {number: raw for number, raw, _reason in parsed.bad}
    assert raws[2] == lines[1] and raws[8] == lines[7]
    assert parsed.rows is not None
    assert parsed.rows["_line_number"].to_pylist() == [1, 3, 6, 10]
    assert parsed.rows["event_id"].to_pylist() == ["ev-1", "ev-3", "ev-6", "ev-10"]


def test_validation_failures_in_an_otherwise_valid_object_keep_line_numbers() -> None:
    # valid JSON everywhere: Arrow parses the object in one go and validation is column-wise
    lines = [json.dumps(event(i)) for i in range(1, 6)]
    lines[2] = json.dumps(event(3, event_ts="2026-11-20T10:00:00"))  # no offset: rejected
    parsed = parse_clickstream(jsonl(lines), KEY, ETAG)
    assert [(n, r.split(":")[0]) for n, _raw, r in parsed.bad] == [
        (3, "event_ts is not an ISO-8601 timestamp with offset")
    ]
    assert parsed.rows is not None and parsed.rows["_line_number"].to_pylist() == [1, 2, 4, 5]


def test_offsets_and_precision_are_normalized_to_utc() -> None:
    lines = [
        json.dumps(event(1, event_ts="2026-11-20T23:30:00-02:00")),
        json.dumps(event(2, event_ts="2026-11-20T10:00:00.123456Z")),
    ]
    parsed = parse_clickstream(jsonl(lines), KEY, ETAG)
    assert parsed.rows is not None
    assert parsed.rows["event_ts"].to_pylist() == [
        dt.datetime(2026, 11, 21, 1, 30, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 20, 10, 0, 0, 123456, tzinfo=dt.UTC),
    ]
    assert parsed.rows["event_date"].to_pylist() == [dt.date(2026, 11, 21), dt.date(2026, 11, 20)]


def test_blank_lines_crlf_plain_and_multi_member_gzip() -> None:
    a, b = json.dumps(event(1)), json.dumps(event(2))
    plain = f"{a}\r\n\r\n   \n{b}\r\n".encode()
    parsed = parse_clickstream(plain, KEY, ETAG)
    assert parsed.bad == [] and parsed.rows is not None
    assert parsed.rows["_line_number"].to_pylist() == [1, 4]
    two_members = gzip.compress(f"{a}\n".encode()) + gzip.compress(f"{b}\n".encode())
    parsed = parse_clickstream(two_members, KEY, ETAG)
    assert parsed.rows is not None and parsed.rows["event_id"].to_pylist() == ["ev-1", "ev-2"]


def test_unreadable_object_is_one_quarantine_row() -> None:
    truncated = jsonl([json.dumps(event(1))])[:-6]
    parsed = parse_clickstream(truncated, KEY, ETAG)
    assert parsed.rows is None
    assert len(parsed.bad) == 1 and parsed.bad[0][0] == 0
    assert parsed.bad[0][2].startswith("cannot decompress object")
    assert parse_clickstream(b"", KEY, ETAG).rows is None


def test_non_utf8_line_is_quarantined() -> None:
    lines = [json.dumps(event(1)).encode(), b'{"event_id": "\xff\xfe"}', json.dumps(event(3)).encode()]
    parsed = parse_clickstream(gzip.compress(b"\n".join(lines)), KEY, ETAG)
    assert [n for n, _raw, _reason in parsed.bad] == [2]
    assert parsed.rows is not None and parsed.rows.num_rows == 2


FEED_HEADER = "partner_id,sku,partner_price,currency,stock_level,feed_date"


def feed(*rows: str, header: str = FEED_HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def test_partner_feed_rows_are_typed() -> None:
    parsed = parse_partner_feed(
        feed("partner_001,SKU-1,12.50,USD,7,2026-11-20", "partner_001,SKU-2,0.9999,EUR,0,2026-11-20"),
        FEED_KEY,
        ETAG,
    )
    assert parsed.bad == []
    assert parsed.rows is not None
    assert parsed.rows.schema.field("partner_price").type == pa.decimal128(18, 4)
    rows = parsed.rows.to_pylist()
    assert rows[0]["partner_price"] == Decimal("12.5000") and rows[0]["stock_level"] == 7
    assert rows[0]["feed_date"] == dt.date(2026, 11, 20)
    assert [r["_line_number"] for r in rows] == [2, 3]


def test_partner_feed_bad_rows_are_quarantined() -> None:
    parsed = parse_partner_feed(
        feed(
            "partner_001,SKU-1,12.50,USD,7,2026-11-20",
            "partner_001,SKU-2,12.50,USD,7",  # wrong column count
            "partner_001,SKU-3,12.50,USD,7,2026-11-20,unexpected",  # wrong column count
            "partner_001,SKU-4,N/A,USD,7,2026-11-20",  # non-numeric price
            'partner_001,SKU-5,"12,99 EUR",USD,7,2026-11-20',  # non-numeric price (quoted comma)
            "partner_001,SKU-6,12.50,USD,seven,2026-11-20",  # non-integer stock
            "partner_001,SKU-7,12.50,USD,7,20/11/2026",  # bad date
            "partner_002,SKU-8,12.50,USD,7,2026-11-20",  # partner does not match the key
            "partner_001,,12.50,USD,7,2026-11-20",  # missing sku
            "partner_001,SKU-10,1.23456,USD,7,2026-11-20",  # too many decimals
        ),
        FEED_KEY,
        ETAG,
    )
    reasons = {n: r for n, _raw, r in parsed.bad}
    assert sorted(reasons) == list(range(3, 12))
    assert reasons[3] == "wrong column count: expected 6, got 5"
    assert reasons[4] == "wrong column count: expected 6, got 7"
    assert reasons[5].startswith("non-numeric partner_price") and reasons[6].startswith("non-numeric")
    assert reasons[7].startswith("non-integer stock_level")
    assert reasons[8].startswith("feed_date is not a YYYY-MM-DD date")
    assert "does not match the object key" in reasons[9]
    assert reasons[10] == "missing required field(s): sku"
    assert reasons[11].startswith("partner_price has more than 4 decimals")
    assert parsed.rows is not None and parsed.rows["sku"].to_pylist() == ["SKU-1"]


def test_partner_feed_columns_in_any_order_and_header_mismatch() -> None:
    reordered = "sku,partner_id,currency,partner_price,feed_date,stock_level"
    parsed = parse_partner_feed(feed("SKU-1,partner_001,USD,3.10,2026-11-20,4", header=reordered), FEED_KEY, ETAG)
    assert parsed.rows is not None and parsed.rows.to_pylist()[0]["partner_price"] == Decimal("3.1")
    parsed = parse_partner_feed(
        feed("partner_001,SKU-1,3.10,USD,4", header="partner_id,sku,price,currency,stock"), FEED_KEY, ETAG
    )
    assert parsed.rows is None
    assert [n for n, _raw, _r in parsed.bad] == [1, 2]
    assert all(r.startswith("header mismatch") for _n, _raw, r in parsed.bad)


@pytest.mark.parametrize(
    ("kind", "key"),
    [
        ("clickstream", "clickstream/dt=2026-11-20/../../etc/passwd"),
        ("clickstream", "/clickstream/dt=2026-11-20/a.json.gz"),
        ("clickstream", "clickstream/dt=20261120/a.json.gz"),
        ("clickstream", "partner_feeds/p/dt=2026-11-20/a.csv"),
        ("clickstream", "clickstream/dt=2026-11-20/sub/a.json.gz"),
        ("clickstream", "clickstream/dt=2026-11-20/a'; drop table x.json.gz"),
        ("partner_feeds", "partner_feeds/dt=2026-11-20/a.csv"),
        ("partner_feeds", "partner_feeds/Partner!/dt=2026-11-20/a.csv"),
    ],
)
def test_keys_off_the_layout_are_rejected(kind: Any, key: str) -> None:
    with pytest.raises(ValueError, match="landing object key"):
        validate_key(kind, key)


def test_valid_keys_and_prefixes() -> None:
    assert validate_key("clickstream", KEY).group(1) == "2026-11-20"
    assert validate_key("partner_feeds", FEED_KEY).group(1) == "partner_001"
    assert validate_prefix("clickstream", "clickstream/dt=2026-11-20/") == "clickstream/dt=2026-11-20/"
    for bad in ("partner_feeds/", "clickstream/../x", "", "clickstream/*"):
        with pytest.raises(ValueError):
            validate_prefix("clickstream", bad)


def test_quarantine_table_shape() -> None:
    now = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    table = quarantine_table("clickstream", KEY, ETAG, [(3, "{oops", "invalid JSON: x")], now)
    assert table.schema == QUARANTINE_SCHEMA
    assert table.to_pylist() == [
        {
            "source": "clickstream",
            "object_key": KEY,
            "object_etag": ETAG,
            "line_number": 3,
            "raw": "{oops",
            "reason": "invalid JSON: x",
            "quarantined_at": now,
        }
    ]


def test_lines_only_arrow_rejects_are_isolated_not_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Last resort: a line orjson and the type checks accept but Arrow refuses is quarantined alone."""
    from ingestion.dlt_sources import landing_parse

    real = landing_parse._read_json

    def picky(data: bytes, longest_line: int = 0, strict: bool = False) -> pa.Table:
        if b"POISON" in data:
            raise pa.ArrowInvalid("simulated reader failure")
        return real(data, longest_line, strict)

    monkeypatch.setattr(landing_parse, "_read_json", picky)
    lines = [json.dumps(event(1)), json.dumps(event(2, page_url="POISON")), "{broken", json.dumps(event(4))]
    parsed = parse_clickstream(jsonl(lines), KEY, ETAG)
    assert [(n, r.split(":")[0]) for n, _raw, r in parsed.bad] == [
        (2, "rejected by the JSON reader"),
        (3, "invalid JSON"),
    ]
    assert parsed.rows is not None and parsed.rows["_line_number"].to_pylist() == [1, 4]


def test_fields_outside_the_contract_are_kept_not_dropped() -> None:
    """A producer adds fields: they survive as JSON in `_extra_fields` and are reported by name."""
    lines = [json.dumps(event(i, coupon=f"SAVE{i}", tags=["a"]) if i % 2 else event(i)) for i in range(1, 7)]
    parsed = parse_clickstream(jsonl(lines), KEY, ETAG)
    assert parsed.bad == [] and parsed.unknown_fields == {"coupon", "tags"}
    assert parsed.rows is not None
    extras = parsed.rows["_extra_fields"].to_pylist()
    assert extras[1] is None and json.loads(extras[0]) == {"coupon": "SAVE1", "tags": ["a"]}
    assert parsed.rows["event_id"].to_pylist() == [f"ev-{i}" for i in range(1, 7)]
    clean = parse_clickstream(jsonl([json.dumps(event(1))]), KEY, ETAG)
    assert clean.unknown_fields == set() and clean.rows is not None
    assert clean.rows["_extra_fields"].to_pylist() == [None]


def test_a_type_change_in_every_line_quarantines_every_line() -> None:
    lines = [json.dumps(event(i, customer_id=f"C{i}")) for i in range(1, 5)]
    parsed = parse_clickstream(jsonl(lines), KEY, ETAG)
    assert parsed.rows is None and [b[0] for b in parsed.bad] == [1, 2, 3, 4]
    assert all(b[2].startswith("customer_id: expected an integer") for b in parsed.bad)
